"""clner-retrieve (`clner.commands.retrieve`), end to end: BM25 with re-ranking, its outputs in every format and their
provenance; the packaged MiniLM as an offline re-ranker; its flags (names, aliases, defaults from RetrievalConfig and
the backends); and every user error as one line and exit code 2, before the corpus is indexed or any query runs."""

import dataclasses
import inspect
import json
import os
import re

import pytest

datasets = pytest.importorskip("datasets")

import pytest

from clner import cli, errors
from clner.cli import dataclass_parser
from clner.commands import retrieve as retrieve_cmd
from clner.data import io as data_io
from clner.errors import CLNERUsageError
from clner.retrieval import backends, bertscore
from clner.retrieval.retriever import DEFAULT_CACHE_PATH, RetrievalConfig
from conftest import RETRIEVAL_FIXTURES, SWITCH, error_line, given, one_error_line, rows_ds

RETRIEVE = ["in.conll", "out.jsonl", "--backend", "bm25"]
# setting -> (its name and aliases, the name first; a value; what it parses to)
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


# ---------------------------------------------------------------------------------------------- a run, outputs
def test_cli_bm25_rerank_outputs_and_provenance(tmp_path, minilm_dir):

    common = [
        str(RETRIEVAL_FIXTURES / "sentences.conll"),
        "--backend",
        "bm25",
        "--corpus",
        str(RETRIEVAL_FIXTURES / "corpus.txt"),
        "--index_dir",
        str(tmp_path / "index"),
        "--model",
        str(minilm_dir),
        "--layer",
        "4",
        "--top_k",
        "2",
        "--cache",
        str(tmp_path / "cache.sqlite"),
    ]
    assert retrieve_cmd.main([common[0], str(tmp_path / "out.parquet"), *common[1:]]) == 0
    out = datasets.Dataset.from_parquet(str(tmp_path / "out.parquet"))
    sentences = data_io.read_conll(RETRIEVAL_FIXTURES / "sentences.conll")
    assert out["tokens"] == [r["tokens"] for r in sentences] and out["tags"] == [r["tags"] for r in sentences]
    assert "Oyelaran" in out[0]["context"][0] and "Vellek" in out[1]["context"][0]
    assert "Quillbrook" in out[2]["context"][0] and "underpass" in out[3]["context"][0]
    assert all(len(c) <= 2 and len(c) == len(s) for c, s in zip(out["context"], out["context_scores"]))
    provenance = json.loads((tmp_path / "out.parquet.provenance.json").read_text())
    assert provenance["backend"] == "bm25" and provenance["packages"]["bm25s"] and provenance["date"]
    assert provenance["config"]["top_k"] == 2 and provenance["rows"] == len(sentences)

    # same run: cache hits, written in every format; the kebab-case spellings of the flags still work
    kebab = [{"--index_dir": "--index-dir", "--top_k": "--top-k"}.get(a, a) for a in common]
    assert retrieve_cmd.parse_args(["in", "out", *kebab[1:]]) == retrieve_cmd.parse_args(["in", "out", *common[1:]])
    for name in ("out.txt", "out.jsonl", "out_dir"):
        assert retrieve_cmd.main([common[0], str(tmp_path / name), *kebab[1:]]) == 0
    assert [r["context"] for r in data_io.read_clner(tmp_path / "out.txt")] == out["context"]
    assert datasets.Dataset.from_json(str(tmp_path / "out.jsonl"))["context"] == out["context"]
    saved = datasets.load_from_disk(str(tmp_path / "out_dir"))["train"]
    assert saved["context"] == out["context"]
    assert json.loads(saved.info.description)["clner_retrieval"]["backend"] == "bm25"
    assert (tmp_path / "out_dir" / "retrieval_provenance.json").exists()


def test_cli_reranks_with_minilm_offline_and_records_no_reranker_without_reranking(tmp_path, capsys):
    """`clner-retrieve --model minilm` re-ranks offline at layer 4; with `--no_rerank` the provenance records no
    re-ranker (not roberta-large, layer 17, as if it had re-ranked with it). The summary counts "1 row", not
    "1 rows"."""

    common = [
        "--backend",
        "bm25",
        "--corpus",
        str(RETRIEVAL_FIXTURES / "corpus.txt"),
        "--index_dir",
        str(tmp_path / "index"),
        "--top_k",
        "2",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    out = tmp_path / "out.jsonl"
    assert (
        retrieve_cmd.main([str(RETRIEVAL_FIXTURES / "sentences.conll"), str(out), *common, "--model", "minilm"]) == 0
    )
    config = json.loads((tmp_path / "out.jsonl.provenance.json").read_text())["config"]
    assert (config["rerank"], config["model"], config["layer"]) == (True, "minilm", 4)
    scores = datasets.Dataset.from_json(str(out))["context_scores"]
    assert scores[0] and all(0 < s <= 1 for row in scores for s in row)
    rows = len(data_io.read_conll(RETRIEVAL_FIXTURES / "sentences.conll"))
    assert re.match(rf"{rows} rows, {sum(map(bool, scores))} with context, 0 failed -> ", capsys.readouterr().out)
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"tokens": ["Marta", "Oyelaran", "plays", "piano"]}) + "\n")
    assert retrieve_cmd.main([str(one), str(out), *common, "--no_rerank"]) == 0
    config = json.loads((tmp_path / "out.jsonl.provenance.json").read_text())["config"]
    assert (config["rerank"], config["model"], config["layer"]) == (False, None, None)
    assert capsys.readouterr().out.startswith("1 row, 1 with context, 0 failed -> ")
    with pytest.raises(SystemExit):
        retrieve_cmd.parse_args(["--help"])
    assert "'minilm' for the all-MiniLM-L6-v2" in " ".join(capsys.readouterr().out.split())


# ------------------------------------------------------------------------------------------------- user errors
def test_cli_offline_default_reranker_is_one_clear_error(tmp_path, capsys):
    """Offline, the default re-ranker (roberta-large, not on disk) is one `error:` line and exit 2, before any query
    (in this process; the script wrapper's exit path is the same `run_cli`)."""

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        retrieve_cmd.cli(
            [
                str(RETRIEVAL_FIXTURES / "sentences.conll"),
                str(tmp_path / "out.jsonl"),
                "--backend",
                "bm25",
                "--corpus",
                str(RETRIEVAL_FIXTURES / "corpus.txt"),
                "--index_dir",
                str(tmp_path / "index"),
                "--cache",
                str(tmp_path / "c.sqlite"),
            ]
        )
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if "error" in x]
    assert ": error: the default re-ranker roberta-large" in line
    assert "needs the Hugging Face Hub" in line and "--rerank_model" in line and "--no_rerank" in line
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_numeric_flags_out_of_range_are_one_error_line(tmp_path, capsys):

    common = [
        str(RETRIEVAL_FIXTURES / "sentences.conll"),
        str(tmp_path / "out.jsonl"),
        "--backend",
        "bm25",
        "--corpus",
        str(RETRIEVAL_FIXTURES / "corpus.txt"),
        "--no_rerank",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    for flags, message in (
        (["--max_retries", "-1"], "--max_retries must be >= 0, got -1"),
        (["--num_results", "0"], "--num_results must be >= 1, got 0"),
        (["--near_duplicate", "nan"], "--near_duplicate must be a finite number or None, got nan"),
        (["--search_timeout", "-1"], "--search_timeout must be a positive number of seconds (0 for no limit), got -1"),
        (["--timeout", "0"], "--timeout must be a positive number of seconds, got 0"),
        (["--num_proc", "0"], "--num_proc must be 1 or more"),
        (["--batch_size", "-4"], "--batch_size must be 1 or more"),
    ):
        with pytest.raises(SystemExit) as exit_:
            cli.run_cli(retrieve_cmd.main, common + flags, prog="clner-retrieve", user_errors=(errors.RetrievalError,))
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert exit_.value.code == 2 and last.startswith(f"clner-retrieve: error: {message}"), err
        assert "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()


def bm25_without_reranking(tmp_path):
    """The flags of a run on the fixtures' corpus, BM25 without re-ranking, its index and cache in `tmp_path`."""
    return [
        "--backend",
        "bm25",
        "--corpus",
        str(RETRIEVAL_FIXTURES / "corpus.txt"),
        "--index_dir",
        str(tmp_path / "index"),
        "--no_rerank",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]


def hard_inputs(tmp_path):
    """Inputs some outputs cannot hold: a token with a tab, a row without tags, and a folder of two splits."""
    tab = tmp_path / "tab.jsonl"
    tab.write_text(json.dumps({"tokens": ["Marta", "Oye\tlaran"], "tags": ["B-person", "I-person"]}) + "\n")
    untagged = tmp_path / "untagged.jsonl"
    untagged.write_text(json.dumps({"tokens": ["Marta", "plays"]}) + "\n")
    folder = tmp_path / "dataset"
    datasets.DatasetDict(train=rows_ds("Marta plays"), dev=rows_ds("piano tonight")).save_to_disk(str(folder))
    return tab, untagged, folder


def test_cli_refuses_an_output_it_cannot_write_or_the_input_itself_before_any_query(tmp_path, monkeypatch, capsys):
    """A token the CLNER text format cannot hold (a tab), a row without tags for it, the input file or folder as the
    OUTPUT (or a folder inside the input folder), and several splits for a one-file OUTPUT: each is one error line
    before the corpus is indexed or any query is run, and the input is left as it was."""

    searched, indexed = [], []
    monkeypatch.setattr(
        backends.BM25Backend, "search_batch", lambda self, q, *a: searched.append(q) or [[] for _ in q]
    )
    real_init = backends.BM25Backend.__init__
    monkeypatch.setattr(
        backends.BM25Backend, "__init__", lambda self, *a, **kw: indexed.append(a) or real_init(self, *a, **kw)
    )
    common = bm25_without_reranking(tmp_path)
    tab, untagged, folder = hard_inputs(tmp_path)
    cases = [
        (
            tab,
            tmp_path / "out.txt",
            (
                f"OUTPUT {tmp_path / 'out.txt'} is in the CLNER text format, which cannot "
                f"hold the input {tab}: row 1: token 2 ('Oye\\tlaran') cannot be written as a "
                "column"
            ),
        ),
        (
            untagged,
            tmp_path / "out.conll",
            (
                f"OUTPUT {tmp_path / 'out.conll'} is in the CLNER text format, which "
                f"cannot hold the input {untagged}: row 1: no tags"
            ),
        ),
        (tab, tab, f"OUTPUT {tab} is the input {tab}: writing there would overwrite the data being read"),
        (folder, folder, f"OUTPUT {folder} is the input {folder}"),
        (folder, folder / "with_context", f"OUTPUT {folder / 'with_context'} is inside the input {folder}"),
        (
            folder,
            tmp_path / "out.jsonl",
            (
                f"OUTPUT {tmp_path / 'out.jsonl'} (jsonl) holds one split, and the input "
                "has ['train', 'dev']: pick a split (--split) or save a folder"
            ),
        ),
    ]
    for source, output, message in cases:
        with pytest.raises(SystemExit) as exit_:
            retrieve_cmd.cli([str(source), str(output), *common])
        err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars of reading the input
        assert exit_.value.code == 2 and err.startswith(f"clner-retrieve: error: {message}"), err
    assert not searched and not indexed
    assert tab.read_text().count("\n") == 1 and not (tmp_path / "out.txt").exists()


def test_cli_writes_any_token_to_formats_that_hold_it_and_one_split_of_a_folder(tmp_path):
    tab, _, folder = hard_inputs(tmp_path)
    common = bm25_without_reranking(tmp_path)
    # formats that hold any token, and one split of the folder, are written
    assert retrieve_cmd.main([str(tab), str(tmp_path / "out.jsonl"), *common]) == 0
    assert datasets.Dataset.from_json(str(tmp_path / "out.jsonl"))["tokens"] == [["Marta", "Oye\tlaran"]]
    assert retrieve_cmd.main([str(folder), str(tmp_path / "dev.jsonl"), "--split", "dev", *common]) == 0


def test_cli_names_a_read_only_output_before_any_query(tmp_path, monkeypatch, capsys):
    """An output on a read-only folder (root ignores chmod, so os.access stands in for the mount), or one that is a
    folder, is one user error naming it, checked before any query."""
    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).startswith(str(read_only)) and real_access(p, mode))
    searched = []
    monkeypatch.setattr(backends.BM25Backend, "search_batch", lambda self, *a: searched.append(a) or [])
    common = [
        "--backend",
        "bm25",
        "--corpus",
        str(RETRIEVAL_FIXTURES / "corpus.txt"),
        "--index_dir",
        str(tmp_path / "index"),
        "--no_rerank",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    (tmp_path / "taken.jsonl").mkdir()
    for output, message in (
        (
            read_only / "out.jsonl",
            f"OUTPUT {read_only / 'out.jsonl'}: cannot write there ({read_only} is not a writable folder)",
        ),
        (read_only / "out_dir", f"OUTPUT {read_only / 'out_dir'}: cannot write there"),
        (tmp_path / "taken.jsonl", f"OUTPUT {tmp_path / 'taken.jsonl'} is a directory"),
    ):
        with pytest.raises(SystemExit) as exit_:
            retrieve_cmd.cli([str(RETRIEVAL_FIXTURES / "sentences.conll"), str(output), *common])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.strip().startswith(f"clner-retrieve: error: {message}")
    assert not searched


def test_cli_names_a_corpus_that_is_not_utf8_before_any_query(tmp_path, monkeypatch, capsys):
    txt = tmp_path / "corpus.txt"
    txt.write_bytes("Marta plays piano\nMarta Oyelaran, pianiste de caf\u00e9\n".encode("latin-1"))
    searched = []
    monkeypatch.setattr(backends.BM25Backend, "search_batch", lambda self, *a: searched.append(a) or [])
    with pytest.raises(SystemExit) as exit_:
        retrieve_cmd.cli(
            [
                str(RETRIEVAL_FIXTURES / "sentences.conll"),
                str(tmp_path / "out.jsonl"),
                "--backend",
                "bm25",
                "--corpus",
                str(txt),
                "--no_rerank",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ]
        )
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and f"error: {txt}:2: not valid UTF-8" in err and "Traceback" not in err
    assert not searched and not (tmp_path / "out.jsonl").exists()


# --------------------------------------------------------------------------------------------------- the flags
def test_every_alias_parses_to_the_same_value_as_its_name():
    defaults = retrieve_cmd.parse_args(RETRIEVE)
    for setting, (spellings, value, expected) in RETRIEVE_FLAGS.items():
        by_name = retrieve_cmd.parse_args(RETRIEVE + given(spellings[0], value))
        assert getattr(by_name, setting) == expected != getattr(defaults, setting), setting
        for spelling in spellings[1:]:
            assert retrieve_cmd.parse_args(RETRIEVE + given(spelling, value)) == by_name, spelling


def test_the_flags_are_exactly_the_names_and_aliases():
    """No alias is lost, and none is added without this table listing it."""
    parser = dataclass_parser(retrieve_cmd.ARGUMENT_CLASSES)
    accepted = set(parser._option_string_actions) - {"-h", "--help"}
    assert accepted == {s for spellings, _, _ in RETRIEVE_FLAGS.values() for s in spellings}


def test_the_reranker_flags_keep_their_short_aliases():
    old = retrieve_cmd.parse_args(
        ["in.conll", "out.jsonl", "--backend", "bm25", "--model", "minilm", "--layer", "3", "--cache", "y.sqlite"]
    )
    assert (old.rerank_model, old.rerank_layer, old.retrieval_cache) == ("minilm", 3, "y.sqlite")


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


@pytest.mark.parametrize(
    "argv,message",
    [
        (RETRIEVE + ["--top_k", "x"], "argument --top_k/--top-k: invalid int value: 'x'"),
        (["in.conll", "out.jsonl", "--backend", "google"], "argument --backend: invalid choice"),
        (["in.conll", "--backend", "bm25"], "the following arguments are required: OUTPUT"),
        (
            RETRIEVE + ["--layer", "four"],
            "argument --rerank_layer/--rerank-layer/--layer: invalid int",
        ),
    ],
)
def test_a_bad_value_exits_2_with_one_line_naming_the_flag(argv, message, capsys):
    line = error_line(retrieve_cmd.cli, argv, capsys)
    assert line.startswith(f"clner-retrieve: error: {message}"), line


def test_settings_retrieval_config_refuses_are_named_by_their_flag():
    with pytest.raises(CLNERUsageError, match=r"^--rerank_layer must be >= 0, got -1$"):
        retrieve_cmd.retrieval_config(retrieve_cmd.parse_args(RETRIEVE + ["--layer", "-1"]))
    with pytest.raises(CLNERUsageError, match=r"^--num_results must be >= 1, got 0$"):
        retrieve_cmd.retrieval_config(retrieve_cmd.parse_args(RETRIEVE + ["--num-results", "0"]))


def test_help_lists_every_spelling_and_states_each_default_once(capsys):
    with pytest.raises(SystemExit) as exit_:
        retrieve_cmd.cli(["--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and text.startswith("usage: clner-retrieve ")
    for spellings, _, _ in RETRIEVE_FLAGS.values():
        for spelling in spellings:
            assert re.search(rf"{re.escape(spelling)}\b", text), spelling
    options = re.split(r"\n  (?=-)", text)
    assert [
        o.split()[0] for o in options if "(default:" in o and len(re.findall("default", o, re.IGNORECASE)) > 1
    ] == []
    assert "INPUT" in text and "OUTPUT" in text and "(default: 10)" in text


def test_retrieve_mistakes_are_one_line(tagger_dir, tmp_path, capsys):
    from clner.commands.retrieve import cli

    src = tmp_path / "in.conll"
    src.write_text("Paris\tB-location\n", encoding="utf-8")
    out = str(tmp_path / "out.jsonl")
    line = one_error_line(
        capsys, cli, [str(src), out, "--backend", "bm25", "--corpus", str(tmp_path / "no.txt"), "--rerank_model",
                      "roberta-large"], "clner-retrieve")  # fmt: skip
    assert "--corpus" in line and "no such file" in line and "roberta-large" not in line  # before the re-ranker
    corpus = tmp_path / "c.txt"
    corpus.write_text("Paris is big .\n", encoding="utf-8")
    line = one_error_line(
        capsys, cli, [str(src), out, "--backend", "bm25", "--corpus", str(corpus), "--rerank_model", str(tagger_dir)],
        "clner-retrieve",
    )  # fmt: skip
    assert "is a CLNER model (a tagger)" in line and "--model " not in line and "--cache " not in line
