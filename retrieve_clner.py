"""Deprecated: the `clner-retrieve` command is `cli_retrieve` (renamed so that the retrieval library,
`retrieval_clner`, and its command are not two letters apart). This module is kept for old imports
(`from retrieve_clner import cli`) and re-exports `cli`, `main` and `parse_args` from `cli_retrieve`. Since the
rename, `parse_args` names the re-ranking and cache settings as every command does (`rerank_model`, `rerank_layer`,
`retrieval_cache`; formerly `model`, `layer`, `cache`), and a bad flag raises `CLNERUsageError` (formerly
`SystemExit`)."""

from cli_retrieve import cli, main, parse_args

__all__ = ["cli", "main", "parse_args"]
