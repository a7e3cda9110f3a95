#!/usr/bin/env python
"""Tag named entities in a file with a trained CLNER model; JSON lines out.

    python scripts/predict.py --model out/ --input sentences.txt --output entities.jsonl
    python scripts/predict.py --model org/clner-wnut17 --revision <sha> --trust_remote_code \\
        --input dev.jsonl --context_field context --batch_size 32 --output -
    python scripts/predict.py --model out/ --input tweets.txt --retrieve --retriever bm25 --corpus wiki.jsonl

Input: a text file (one sentence per line; blank lines give empty results) or a JSON-lines file (`.jsonl`/`.json`)
of objects with ``{"text": "..."}`` or ``{"tokens": [...]}`` and, optionally, a context (a list of snippets or a
string) under `--context_field`. Output: one JSON object per input line, in order, with the input's other fields
(``id`` ...), ``entities`` (``entity_group``, ``word``, ``start``, ``end``, ``score``, ...), ``context_used`` and
``note``; for ``tokens`` inputs also ``tags`` (one per token).

By default the model is loaded with this project's `modeling_clner` / `pipeline_clner` (no remote code);
`--trust_remote_code` loads the repository's own code instead, pinned by `--revision`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

logger = logging.getLogger("predict")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, help="trained CLNER model: a folder or a Hub id")
    p.add_argument("--input", required=True, help="text file (one sentence a line) or .jsonl; '-' for stdin")
    p.add_argument("--output", default="-", help="JSON-lines output file; '-' for stdout")
    p.add_argument("--format", choices=["text", "jsonl"], help="input format (default: from the extension)")
    p.add_argument("--batch_size", type=int, default=16, help="windows per forward pass")
    p.add_argument("--context_field", default="context", help="JSONL field holding each sentence's context")
    p.add_argument("--text_field", default="text", help="JSONL field holding raw text")
    p.add_argument("--tokens_field", default="tokens", help="JSONL field holding pre-split words")
    p.add_argument("--max_seq_length", type=int, help="sub-token budget of a view (default: the model's)")
    p.add_argument("--word_splitter", choices=["regex", "whitespace"], default="regex",
                   help="how raw text is split into words")
    g = p.add_argument_group("live retrieval (for inputs without a context)")
    g.add_argument("--retrieve", action="store_true", help="retrieve a context for each input that has none")
    g.add_argument("--retriever", default="duckduckgo", choices=["duckduckgo", "bm25", "random"],
                   help="retrieval_clner backend")
    g.add_argument("--corpus", help="bm25 / random: corpus file")
    g.add_argument("--no_rerank", action="store_true", help="keep the backend's order (no BERTScore re-ranking)")
    g.add_argument("--retrieval_cache", help="sqlite cache of retrieval results (default: retrieval_clner's)")
    g = p.add_argument_group("loading")
    g.add_argument("--revision", help="Hub revision (branch, tag or commit) of --model")
    g.add_argument("--trust_remote_code", action="store_true", help="run the model repository's own code")
    g.add_argument("--token", help="Hub token for private models")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the first GPU, else CPU)")
    g.add_argument("--chunk_size", type=int, default=256, help="inputs handed to the pipeline at a time")
    g.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def read_inputs(path: str, fmt: str | None, args: argparse.Namespace) -> Iterator[tuple[dict, dict]]:
    """Yield `(pipeline input, fields to copy to the output)` per line."""
    if fmt is None:
        fmt = "jsonl" if str(path).lower().endswith((".jsonl", ".json", ".ndjson")) else "text"
    stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
    try:
        for lineno, line in enumerate(stream, 1):
            line = line.rstrip("\n").rstrip("\r")
            if fmt == "text":
                yield {"text": line}, {"text": line}
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise SystemExit(f"{path}:{lineno}: not a JSON object ({err})") from None
            if not isinstance(record, dict):
                raise SystemExit(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            item: dict[str, Any] = {}
            if record.get(args.tokens_field) is not None:
                tokens = record[args.tokens_field]
                if not isinstance(tokens, list):
                    raise SystemExit(f"{path}:{lineno}: {args.tokens_field!r} must be a list of words")
                item["tokens"] = [str(t) for t in tokens]
            elif isinstance(record.get(args.text_field), str):
                item["text"] = record[args.text_field]
            else:
                raise SystemExit(f"{path}:{lineno}: needs {args.text_field!r} (a string) or {args.tokens_field!r} "
                                 "(a list of words)")
            context = record.get(args.context_field)
            if context is not None and not (isinstance(context, str) or (
                    isinstance(context, list) and all(isinstance(s, str) for s in context))):
                raise SystemExit(f"{path}:{lineno}: {args.context_field!r} must be a string or a list of strings")
            if context:
                item["context"] = context
            passthrough = {k: v for k, v in record.items() if k != args.context_field}
            yield item, passthrough
    finally:
        if stream is not sys.stdin:
            stream.close()


def build_pipeline(args: argparse.Namespace):
    kwargs: dict[str, Any] = {}
    if args.retrieve:
        kwargs["retriever"] = build_retriever(args)
    if args.trust_remote_code:
        from transformers import pipeline

        return pipeline(model=args.model, revision=args.revision, token=args.token, trust_remote_code=True,
                        device=args.device, **kwargs)
    from transformers import AutoTokenizer

    from modeling_clner import CLNERForTokenClassification
    from pipeline_clner import clner_pipeline

    hub = {k: v for k, v in (("revision", args.revision), ("token", args.token)) if v}
    tokenizer = AutoTokenizer.from_pretrained(args.model, **hub)
    model = CLNERForTokenClassification.from_pretrained(args.model, use_safetensors=True, **hub)
    return clner_pipeline(model, tokenizer, device=args.device, **kwargs)


def build_retriever(args: argparse.Namespace):
    import retrieval_clner as rc

    backend_kwargs = {"corpus": args.corpus} if args.retriever in ("bm25", "random") else {}
    config = rc.RetrievalConfig(rerank=not args.no_rerank)
    cache = args.retrieval_cache or rc.DEFAULT_CACHE_PATH
    return rc.ContextRetriever(rc.make_backend(args.retriever, **backend_kwargs), config=config, cache_path=cache)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.input != "-" and not os.path.exists(args.input):
        raise SystemExit(f"no such input file: {args.input}")
    pipe = build_pipeline(args)
    options: dict[str, Any] = {"batch_size": args.batch_size, "return_details": True,
                               "word_splitter": args.word_splitter, "retrieve": args.retrieve}
    if args.max_seq_length:
        options["max_seq_length"] = args.max_seq_length
    records = list(read_inputs(args.input, args.format, args))
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = tqdm(total=len(records), unit="sent", desc="Tagging", disable=args.no_progress or tqdm is None,
               file=sys.stderr) if tqdm else None
    out = sys.stdout if args.output == "-" else open(args.output, "w", encoding="utf-8")
    counts = {"sentences": 0, "entities": 0, "context_used": 0}
    try:
        for start in range(0, len(records), args.chunk_size):
            chunk = records[start: start + args.chunk_size]
            results = pipe([item for item, _ in chunk], **options)
            for (item, passthrough), result in zip(chunk, results):
                line = dict(passthrough)
                line["entities"] = [{k: v for k, v in e.items() if k not in ("context_used", "note")}
                                    for e in result["entities"]]
                if "tokens" in item:
                    line["tags"] = result["tags"]
                line["context_used"] = result["context_used"]
                if result["note"]:
                    line["note"] = result["note"]
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                counts["sentences"] += 1
                counts["entities"] += len(result["entities"])
                counts["context_used"] += bool(result["context_used"])
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
        if out is not sys.stdout:
            out.close()
    logger.info("%d sentences, %d entities, %d tagged with their context", counts["sentences"], counts["entities"],
                counts["context_used"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
