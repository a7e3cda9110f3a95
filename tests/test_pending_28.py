"""Regression tests waiting for their home in the layout-mirroring test files (moved there once the test
reorganisation lands)."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO_ROOT, SAMPLE


def train(tiny_encoder_dir, out, *extra, capsys=None):
    """A short real training run of run_ner_cl.py in this process (checkpoints every 2 steps)."""
    from run_ner_cl import main

    argv = [
        "--model_name_or_path", str(tiny_encoder_dir), "--train_file", str(SAMPLE / "train.txt"),
        "--do_train", "--output_dir", str(out), "--report_to", "none", "--max_train_samples", "8",
        "--per_device_train_batch_size", "4", "--save_strategy", "steps", "--save_steps", "2",
        "--train_views", "sentence", "--use_cpu", "--disable_tqdm", "true", *extra,
    ]  # fmt: skip
    return main(argv)


def error_of(capsys, fn, *args) -> str:
    from clner.cli import run_cli

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_cli(lambda argv: fn(*args), [], prog="run_ner_cl.py")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    return err[0]


# ----------------------------------------------------------------------------- checkpoints of another run
def test_overwrite_removes_old_checkpoints_and_resume_refuses_another_runs(tiny_encoder_dir, tmp_path, capsys):
    """Run A leaves checkpoints 2 and 4 (its max_steps 4). Run B, with other settings and --overwrite_output_dir,
    removes them; B's own checkpoint is the one `last` finds. A run with other settings never resumes a checkpoint
    it did not write; a new run refuses a folder holding another run's checkpoints."""
    out = tmp_path / "out"
    train(tiny_encoder_dir, out, "--max_steps", "4", "--learning_rate", "1e-3")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert (
        json.loads((out / "checkpoint-4" / "clner_run_settings.json").read_text())["training"]["learning_rate"] == 1e-3
    )
    train(tiny_encoder_dir, out, "--max_steps", "2", "--learning_rate", "5e-4", "--overwrite_output_dir")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]  # A's checkpoint-4 is gone
    (out / "model.safetensors").unlink()  # as if B died before its final save
    line = error_of(capsys, train, tiny_encoder_dir, out, "--max_steps", "4", "--learning_rate", "1e-3",
                    "--resume_from_checkpoint", "last")  # fmt: skip
    assert "belongs to a run with other settings (--learning_rate 0.0005 there, 0.001 now)" in line, line
    # B's own settings resume it
    train(tiny_encoder_dir, out, "--max_steps", "4", "--learning_rate", "5e-4", "--resume_from_checkpoint", "last")
    assert (out / "checkpoint-4").is_dir()
    # a new run without --overwrite_output_dir refuses a folder with checkpoints and no model
    fresh = tmp_path / "fresh"
    train(tiny_encoder_dir, fresh, "--max_steps", "2")
    for name in ("model.safetensors", "config.json"):
        (fresh / name).unlink()
    line = error_of(capsys, train, tiny_encoder_dir, fresh, "--max_steps", "2")
    assert "already holds checkpoints of another run (checkpoint-2)" in line, line


# ------------------------------------------------------------------------------------------------ the lock
def test_a_lock_whose_process_id_was_reused_is_taken_over(tmp_path, capsys):
    """A lock recorded by a process that is gone, whose id now belongs to another live process (here: this one,
    as after a container restart), is stale: the run takes it over, and removes a killed save's leftovers."""
    from transformers import TrainingArguments

    from clner.files import TEMP_PREFIX
    from clner.run_utils import LOCK_FILE, output_dir_lock, process_identity

    out = tmp_path / "out"
    out.mkdir()
    me = process_identity(os.getpid())
    assert me is not None and me.endswith(f":{os.getpid()}:" + me.split(":")[-1])
    boot, pid, start = me.split(":")
    (out / LOCK_FILE).write_text(json.dumps({"pid": os.getpid(), "identity": f"{boot}:{pid}:{int(start) - 1}"}))
    (out / f"{TEMP_PREFIX}saving-abc").mkdir()
    (out / f"{TEMP_PREFIX}saving-abc" / "model.safetensors").write_bytes(b"half")
    args = TrainingArguments(output_dir=str(out), do_train=True, report_to=[], use_cpu=True)
    with output_dir_lock(args):
        assert json.loads((out / LOCK_FILE).read_text())["identity"] == me
        assert not list(out.glob(f"{TEMP_PREFIX}*"))
        # while it is held by this live process, a second run is refused
        from clner.errors import CLNERUsageError

        with pytest.raises(CLNERUsageError, match="is being written by another run"), output_dir_lock(args):
            pass
    assert not (out / LOCK_FILE).exists()


# ------------------------------------------------------------------------------------------- atomic outputs
KILL_WRITE = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import datasets
    from clner.retrieval.retriever import save_output
    fmt, path = sys.argv[2], sys.argv[3]
    rows = [{"tokens": ["w", str(i)], "tags": ["O", "O"], "context": ["a snippet"]} for i in range(200_000)]
    ds = datasets.Dataset.from_list(rows)
    if fmt == "clner":
        import clner.data.io as io
        real = io.write_clner
        def killed(dataset, p):
            with open(p, "w") as f:
                f.write("w\\tO\\n")
            os.kill(os.getpid(), signal.SIGKILL)
        io.write_clner = killed
    else:
        import datasets.arrow_dataset as ad
        def killed(self, p, *a, **k):
            with open(p, "w") as f:
                f.write('{"tokens": ["w"]}\\n')
            os.kill(os.getpid(), signal.SIGKILL)
        setattr(ad.Dataset, {"jsonl": "to_json", "parquet": "to_parquet", "disk": "save_to_disk"}[fmt], killed)
    save_output(ds, path, provenance={"rows": len(ds)})
""")


@pytest.mark.parametrize("fmt,name", [("jsonl", "out.jsonl"), ("parquet", "out.parquet"), ("clner", "out.txt"),
                                      ("disk", "out")])  # fmt: skip
def test_a_killed_write_leaves_the_earlier_output_whole(tmp_path, fmt, name):
    """A retrieval output killed mid-write (SIGKILL inside the writer) leaves the earlier output and its
    provenance as they were: every output is written under a temporary name and renamed."""
    import datasets

    from clner.retrieval.retriever import save_output

    path = tmp_path / name
    earlier = datasets.Dataset.from_list(
        [{"tokens": ["old", str(i)], "tags": ["O", "O"], "context": ["x"]} for i in range(3)]
    )
    save_output(earlier, path, provenance={"rows": 3})
    before = sorted((p.name, p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*") if p.is_file())
    script = tmp_path.parent / f"kill_{fmt}.py"
    script.write_text(KILL_WRITE)
    proc = subprocess.run(
        [sys.executable, str(script), str(REPO_ROOT), fmt, str(path)], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    after = sorted((p.name, p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*") if p.is_file()
                   and not p.name.startswith(".clner-tmp-") and ".clner-tmp-" not in str(p))  # fmt: skip
    assert after == before


def test_a_clean_rerun_removes_the_stale_failure_report(tmp_path):
    import datasets

    from clner.retrieval.retriever import save_output

    ds = datasets.Dataset.from_list([{"tokens": ["a"], "context": ["x"]}])
    save_output(ds, tmp_path / "out.jsonl", provenance={"rows": 1}, failures=[{"index": 0, "query": "a"}])
    assert (tmp_path / "out.jsonl.failures.jsonl").exists()
    save_output(ds, tmp_path / "out.jsonl", provenance={"rows": 1}, failures=[])
    assert not (tmp_path / "out.jsonl.failures.jsonl").exists()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_follow_the_umask_and_keep_a_replaced_files_mode(tmp_path, umask):
    from clner.files import atomic_open, atomic_path

    old = os.umask(umask)
    try:
        with atomic_open(tmp_path / "new.txt") as f:
            f.write("x")
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o666 & ~umask
        with atomic_path(tmp_path / "folder", directory=True) as tmp:
            tmp.mkdir()
        assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~umask
        (tmp_path / "kept.txt").write_text("old")
        (tmp_path / "kept.txt").chmod(0o640)
        with atomic_open(tmp_path / "kept.txt") as f:
            f.write("new")
        assert stat.S_IMODE((tmp_path / "kept.txt").stat().st_mode) == 0o640
        assert (tmp_path / "kept.txt").read_text() == "new"
    finally:
        os.umask(old)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".clner-tmp-")]


def test_a_training_runs_files_follow_the_umask(tiny_encoder_dir, tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        train(tiny_encoder_dir, out, "--max_steps", "1", "--save_strategy", "no")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.is_file()}
    assert modes["model.safetensors"] == modes["run_config.json"] == modes["config.json"] == 0o644, modes
    assert Path(out).is_dir() and not list(out.glob(".clner-tmp-*"))


# ------------------------------------------------------------------------------------ clner-predict's input
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, minilm_tokenizer):
    from conftest import tiny_clner

    folder = tmp_path_factory.mktemp("predict-model") / "model"
    tiny_clner(["O", "B-person", "I-person", "B-location", "I-location"]).save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    return folder


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


# ----------------------------------------------------------------------------------------- window stride
def test_a_stride_past_the_window_is_refused_and_windows_grow_linearly(minilm_tokenizer):
    from inference_clner import encode_example
    from modeling_clner import CLNERConfig

    words = [f"w{i}" for i in range(400)]
    sane = encode_example(minilm_tokenizer, words, None, 64, stride=16)
    greedy = encode_example(minilm_tokenizer, words, None, 64, stride=60)  # stride near the window: capped at half
    assert len(greedy) <= 2 * len(sane) + 1, (len(greedy), len(sane))
    starts = [f["word_start"] for f in greedy]
    assert all(b - a >= 10 for a, b in zip(starts, starts[1:]))  # every window moves on by half a window or more
    covered = sorted(f["word_start"] + i for f in greedy for i in range(f["own_start"], f["own_end"]))
    assert covered == list(range(400))  # every word is owned by exactly one window
    with pytest.raises(ValueError, match="window_stride 62 is not smaller than the 62 words"):
        CLNERConfig(max_seq_length=64, window_stride=62)


def test_training_refuses_a_stride_past_the_window(tiny_encoder_dir, tmp_path, capsys):
    line = error_of(capsys, train, tiny_encoder_dir, tmp_path / "o", "--max_seq_length", "32", "--window_stride", "40")
    assert "--window_stride 40 is not smaller than the 30 words a window of max_seq_length 32 can hold" in line


# ---------------------------------------------------------------------------------------------- id2label
@pytest.mark.parametrize(
    "id2label,message",
    [
        (["O", "B-PER"], "must map label ids to names, got a list"),
        ({"a": "O", "b": "B-PER"}, "keys must be label ids 0..1, got 'a'"),
        ({0: "O", 1: "B_PER"}, "joins its prefix with '_'"),
    ],
)
def test_a_bad_id2label_is_a_clear_error(id2label, message):
    from modeling_clner import CLNERConfig

    with pytest.raises(ValueError, match=message):
        CLNERConfig(id2label=id2label)


# ---------------------------------------------------------------------------------------------- documents
def test_no_documented_usage_trusts_tokenizer_code():
    """A tokenizer is loaded without `trust_remote_code=True` wherever the docs show one (README, the card)."""
    import re

    documents = [REPO_ROOT / "README.md", REPO_ROOT / "clner" / "hub" / "model_card_template.md"]
    calls = [
        call
        for path in documents + sorted((REPO_ROOT / "docs").glob("*.md"))
        for call in re.findall(r"AutoTokenizer\.from_pretrained\([^)]*\)", path.read_text(encoding="utf-8"))
    ]
    assert len(calls) >= 2 and not [c for c in calls if "trust_remote_code=True" in c], calls


def test_predictions_are_never_uploaded(tmp_path):
    from clner.hub.upload import HUB_IGNORE_PATTERNS, hub_files

    for name in ("predictions.txt", "predictions_sentence.txt", "predictions_context.txt", "clner_run_settings.json"):
        (tmp_path / name).write_text("x")
    (tmp_path / "config.json").write_text("{}")
    assert hub_files(tmp_path, HUB_IGNORE_PATTERNS) == ["config.json"]


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


# ---------------------------------------------------------------------- user mistakes: one error line, exit 2
def one_error_line(capsys, cli_fn, argv, prog):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli_fn(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if "error" in line.lower() or "Traceback" in line]
    assert exit_.value.code == 2 and len(errors) == 1 and f"{prog}: error: " in errors[0], err
    return errors[0]


def test_training_mistakes_are_one_line(tmp_path, capsys):
    from run_ner_cl import cli

    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("hi")
    common = ["--do_train", "--output_dir", str(tmp_path / "o"), "--report_to", "none"]
    line = one_error_line(
        capsys, cli, ["--model_name_or_path", str(not_a_model), "--train_file", str(SAMPLE / "train.txt"), *common],
        "",
    )  # fmt: skip
    assert "cannot load a model config from it" in line
    line = one_error_line(capsys, cli, ["--dataset_name", "org/no-such-dataset", *common], "")
    assert "--dataset_name org/no-such-dataset: cannot load it" in line and "HF_HUB_OFFLINE" in line


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


def test_retrieve_mistakes_are_one_line(saved_model, tmp_path, capsys):
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
        capsys, cli, [str(src), out, "--backend", "bm25", "--corpus", str(corpus), "--rerank_model", str(saved_model)],
        "clner-retrieve",
    )  # fmt: skip
    assert "is a CLNER model (a tagger)" in line and "--model " not in line and "--cache " not in line


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


def test_clner_push_failures_are_one_error_line(tmp_path, capsys):
    from clner.commands.push import cli

    assert "no such folder" in one_error_line(capsys, cli, [str(tmp_path / "none"), "org/x"], "clner-push")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_error_line(capsys, cli, [str(empty), "org/x"], "clner-push")  # an incomplete folder


# ------------------------------------------------------------------------------------------ read-back checks
def test_a_retrieval_output_cut_short_is_refused_when_read(tmp_path):
    """A JSONL / CLNER output whose rows are fewer than its provenance records (cut short by a copy or an
    interrupted write) is refused by the trainer's loader and by clner-retrieve's reader, naming both files."""
    import datasets

    from clner.data.io import load_ner_dataset
    from clner.errors import CLNERFormatError
    from clner.retrieval.retriever import load_input, save_output

    rows = [{"tokens": ["w", str(i)], "tags": ["O", "O"], "context": ["x"]} for i in range(5)]
    for name in ("out.jsonl", "out.txt"):
        path = tmp_path / name
        save_output(datasets.Dataset.from_list(rows), path, provenance={"rows": 5})
        assert len(load_ner_dataset({"train": str(path)}, tag_scheme=None)["train"]) == 5
        text = path.read_text().splitlines(keepends=True)
        cut = text[:1] if name.endswith(".jsonl") else "".join(text).split("\n\n")[0] + "\n"
        path.write_text("".join(cut))
        with pytest.raises(CLNERFormatError, match=rf"holds 1 rows, but its provenance \({name}.provenance.json\)"):
            load_ner_dataset({"train": str(path)}, tag_scheme=None)
        with pytest.raises(CLNERFormatError, match="records 5"):
            load_input(path)


@pytest.mark.parametrize("blank", ["\u00a0", "\u2028", " \u3000 ", "\u2029"])
def test_a_line_blank_only_by_unicode_is_an_error_not_a_sentence_break(tmp_path, blank):
    from clner.data.io import read_clner, read_conll
    from clner.errors import CLNERFormatError

    path = tmp_path / "data.conll"
    path.write_text(f"New\tB-loc\n{blank}\nYork\tI-loc\n\nok\tO\n", encoding="utf-8")
    with pytest.raises(CLNERFormatError, match=r"data\.conll:2: a line of invisible space characters \(U\+"):
        read_conll(path)
    with pytest.raises(CLNERFormatError, match=r":2: a line of invisible space"):
        read_clner(path)
    path.write_text("New\tB-loc\n \t \nYork\tB-loc\n", encoding="utf-8")  # spaces and tabs: a break, as ever
    assert [r["tokens"] for r in read_conll(path)] == [["New"], ["York"]]


def test_docstart_inside_a_sentence_is_an_error(tmp_path):
    from clner.data.io import read_clner, read_conll
    from clner.errors import CLNERFormatError

    path = tmp_path / "data.conll"
    path.write_text("-DOCSTART-\tO\n\nNew\tB-loc\n-DOCSTART-\tO\nYork\tO\n", encoding="utf-8")
    for reader in (read_conll, read_clner):
        with pytest.raises(CLNERFormatError, match=r"data\.conll:4: -DOCSTART- inside a sentence"):
            reader(path)
    path.write_text("-DOCSTART-\tO\n\nNew\tB-loc\n\n-DOCSTART-\tO\n\nYork\tO\n", encoding="utf-8")
    assert [r["tokens"] for r in read_conll(path)] == [["New"], ["York"]]


def test_a_budget_smaller_than_the_longest_word_is_refused_naming_it(tiny_encoder_dir, tmp_path, capsys):
    """--max_seq_length 3 holds one sub-token after [CLS] and [SEP]: the sample's two-sub-token words are named."""
    argv = ["--max_seq_length", "3", "--window_stride", "0", "--max_steps", "1"]
    line = error_of(capsys, train, tiny_encoder_dir, tmp_path / "o", *argv)
    assert "--max_seq_length 3 is too small for the word" in line and "its 2 sub-tokens" in line, line


def test_a_run_with_nothing_to_do_is_refused_and_leaves_no_folder(tiny_encoder_dir, tmp_path, capsys):
    from run_ner_cl import main

    out = tmp_path / "o"
    line = error_of(capsys, main, ["--model_name_or_path", str(tiny_encoder_dir), "--train_file",
                                   str(SAMPLE / "train.txt"), "--output_dir", str(out)])  # fmt: skip
    assert "nothing to do: give --do_train" in line and not out.exists()
    line = error_of(capsys, train, tiny_encoder_dir, out, "--window_stride", "-1")  # refused after the lock
    assert "--window_stride -1 is negative" in line and not out.exists()


def test_a_tokenizer_shorter_than_the_model_is_said_once(minilm_tokenizer):
    import copy
    import warnings

    from conftest import tiny_clner
    from pipeline_clner import clner_pipeline

    tokenizer = copy.deepcopy(minilm_tokenizer)
    tokenizer.model_max_length = 32
    model = tiny_clner(["O", "B-person", "I-person"], max_seq_length=64)
    pipe = clner_pipeline(model, tokenizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe("John lives in Paris")
        pipe("John lives in Paris")
    said = [str(w.message) for w in caught if "model_max_length 32" in str(w.message)]
    assert len(said) == 1 and "below the model's max_seq_length 64" in said[0], said
