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
