"""Regression tests waiting for their home in the layout-mirroring test files (moved there once the test
reorganisation lands)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, one_error_line


@pytest.mark.parametrize(
    "text",
    ["She made a U-turn", "She bought a new E-Class", "Call me at 555 O", "I-95 is long\nWe took the I-95 B-road"],
)
def test_text_whose_last_word_looks_like_a_tag_is_text(saved_model, tmp_path, text):
    """A line (or lines of varying width) of text ending in a tag-like word is text: every word is tagged, none
    taken as gold."""
    from clner.commands.predict import main

    src, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    src.write_text(text + "\n", encoding="utf-8")
    assert main(["--model", str(saved_model), "--input", str(src), "--output", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["text"] for line in lines] == text.splitlines() and all("gold_tags" not in line for line in lines)


def test_a_conll_file_with_the_models_types_is_still_conll(saved_model, tmp_path):
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
def test_gold_tags_are_checked_like_training_data(saved_model, tmp_path, capsys, tags, message):
    from clner.cli import run_cli
    from clner.commands.predict import main

    src = tmp_path / "gold.conll"
    src.write_text("".join(f"{w}\t{t}\n" for w, t in zip(["John", "smiles"], tags)), encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["--model", str(saved_model), "--input", str(src), "--output", str(tmp_path / "o.jsonl")])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert exit_.value.code == 2 and len(err) == 1 and "gold.conll:1" in err[0] and message in err[0], err


def test_gold_types_the_model_does_not_know_are_said(saved_model, tmp_path, caplog):
    from clner.commands.predict import main

    src = tmp_path / "gold.conll"
    src.write_text("John\tB-PER\nsmiles\tO\n\nParis\tB-LOC\n", encoding="utf-8")
    with caplog.at_level("WARNING"):
        assert main(["--model", str(saved_model), "--input", str(src), "--output", str(tmp_path / "o.jsonl")]) == 0
    assert "share none with the model's" in caplog.text and "LOC, PER" in caplog.text


def test_jsonl_gold_tags_are_checked_like_training_data(saved_model, tmp_path, capsys):
    from clner.cli import run_cli
    from clner.commands.predict import main

    src = tmp_path / "gold.jsonl"
    src.write_text('{"tokens": ["John", "smiles"], "gold_tags": ["O", "O"]}\n'
                   '{"tokens": ["John", "smiles"], "gold_tags": ["b-person", "O"]}\n', encoding="utf-8")  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, ["--model", str(saved_model), "--input", str(src), "--output", str(tmp_path / "o.jsonl")])
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert exit_.value.code == 2 and len(err) == 1 and "gold.jsonl:2: 'gold_tags'" in err[0], err
    assert "tag 'b-person' has no B-/I- prefix" in err[0]


def test_predict_mistakes_are_one_line(saved_model, tmp_path, capsys):
    import torch

    from clner.commands.predict import cli

    src = tmp_path / "in.txt"
    src.write_text("John lives in Paris\n", encoding="utf-8")
    base = ["--model", str(saved_model), "--input", str(src), "--output", str(tmp_path / "o.jsonl")]
    if not torch.cuda.is_available():
        line = one_error_line(capsys, cli, [*base, "--device", "cuda"], "clner-predict")
        assert "--device cuda: this torch" in line and "sees no CUDA GPU" in line
    line = one_error_line(capsys, cli, [*base, "--device", "tpu9"], "clner-predict")
    assert "--device tpu9: not a device name" in line
    for rerank, message in ((saved_model, "is a CLNER model (a tagger)"), (tmp_path, "is not a model folder")):
        argv = [*base, "--retrieve", "--backend", "random", "--corpus", str(src), "--rerank_model", str(rerank)]
        line = one_error_line(capsys, cli, argv, "clner-predict")
        assert message in line and "Do you wish" not in line and "the model's own folder" not in line, line
    argv = [*base, "--retrieve", "--backend", "bm25", "--corpus", str(tmp_path / "missing.txt")]
    assert "--corpus" in one_error_line(capsys, cli, argv, "clner-predict")


def test_a_closed_pipe_ends_predict_quietly(saved_model, tmp_path):
    """`clner-predict ... | head -1` on a long input: the command stops quietly (no traceback, no error line)."""
    src = tmp_path / "in.txt"
    src.write_text("John lives in Paris and likes Berlin a lot today\n" * 3000, encoding="utf-8")
    command = (
        f"{sys.executable} -m clner.commands.predict --model {saved_model} --input {src} --output - "
        f"--no_progress 2>{tmp_path / 'err.txt'} | head -1"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {command}"], capture_output=True, text=True, env=env)
    err = (tmp_path / "err.txt").read_text()
    assert proc.stdout.count("\n") == 1 and "Traceback" not in err and "error" not in err.lower(), err[-2000:]
    assert proc.returncode == 141
