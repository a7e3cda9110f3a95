"""Runs that used to end as if all was well: a diverged training saved and published as fine, evaluation that
skipped sentences under a training flag, a resume from a checkpoint labelled in another order, and trainer flags
that break CLNER. Each must stop with a clear error, before anything broken is written."""

import json
import math

import pytest
import torch
from test_trainer import SAMPLE, args_for, run_in_process, tiny_model
from transformers import TrainerCallback

from clner.arguments import CLArguments
from clner.data.preprocess import CLNERDataCollator
from clner.errors import CLNERUsageError, TrainingDivergedError
from trainer_clner import CLNERTrainer


def run_failing(argv, capsys):
    """run_ner_cl.py's entry point in this process, for an error found during training (after progress bars):
    exit code 2, no traceback, and the error as one `run_ner_cl.py: error:` line, the last on stderr."""
    from clner.cli import run_cli
    from run_ner_cl import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as exit_:
            run_cli(main, argv, prog="run_ner_cl.py")
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if "run_ner_cl.py: error: " in line]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err[-2000:]
    return errors[0].split("run_ner_cl.py: error: ", 1)[1]


# ------------------------------------------------------------------------------------------- a diverged run
def test_diverged_run_stops_with_a_clear_error_and_writes_no_model(tiny_encoder_dir, tmp_path, capsys):
    out = tmp_path / "out"
    message = run_failing(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--test_file",
            str(SAMPLE / "dev.txt"),
            "--do_train",
            "--do_predict",
            "--max_steps",
            "4",
            "--learning_rate",
            "1e8",
            "--max_seq_length",
            "64",
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--logging_steps",
            "1",
            "--use_cpu",
            "--disable_tqdm",
            "true",
            "--output_dir",
            str(out),
        ],
        capsys,
    )
    assert message.startswith(
        "training diverged at step 2: the loss is nan (loss_nll nan, loss_nll_ext nan, "
        "loss_cl nan). Lower --learning_rate (now 1e+08)"
    ), message
    assert "check the training data" in message and f"were written to {out}" in message
    written = {p.name for p in out.iterdir()} if out.exists() else set()
    assert not written & {
        "model.safetensors",
        "README.md",
        "config.json",
        "predictions.txt",
        "predictions_context.txt",
        "all_results.json",
    }, written


def test_nan_loss_components_are_never_logged_next_to_a_finite_loss(features, labels, minilm_tokenizer, tmp_path):
    """With the stop turned off, the Trainer's NaN filter would log 'loss': 0 for steps whose parts are NaN."""
    trainer = CLNERTrainer(
        model=tiny_model(labels),
        args=args_for(tmp_path, max_steps=4, learning_rate=1e8),
        train_dataset=features["train"].select(range(32)),
        data_collator=CLNERDataCollator(minilm_tokenizer),
        cl_args=CLArguments(),
    )
    trainer.stop_on_non_finite_loss = False
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss_nll" in h]
    assert any(math.isnan(h["loss_nll"]) for h in logs)  # it did diverge
    for h in logs:
        parts_finite = all(math.isfinite(h[k]) for k in ("loss_nll", "loss_nll_ext", "loss_cl"))
        assert math.isfinite(h["loss"]) == parts_finite, h


def test_weights_broken_by_the_last_update_are_refused(features, labels, minilm_tokenizer, tmp_path):
    """No later loss shows a last update that overflowed: `train()` checks the weights before it returns."""

    class BreakWeights(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            with torch.no_grad():
                model.classifier.weight[0, 0] = float("inf")

    trainer = CLNERTrainer(
        model=tiny_model(labels),
        args=args_for(tmp_path, max_steps=1),
        train_dataset=features["train"].select(range(8)),
        callbacks=[BreakWeights()],
        data_collator=CLNERDataCollator(minilm_tokenizer),
        cl_args=CLArguments(),
    )
    with pytest.raises(
        TrainingDivergedError,
        match=r"after step 1 the weights of classifier\.weight are NaN or "
        r"infinite\. Lower --learning_rate",
    ):
        trainer.train()


# -------------------------------------------------------------------------- evaluation covers every sentence
def test_drop_last_drops_no_evaluation_or_test_sentence(features, labels, minilm_tokenizer, tmp_path):
    dev = features["validation"]
    assert len(dev) % 16 != 0
    trainer = CLNERTrainer(
        model=tiny_model(labels),
        args=args_for(tmp_path, dataloader_drop_last=True),
        eval_dataset=dev,
        data_collator=CLNERDataCollator(minilm_tokenizer),
    )
    assert sum(len(b["input_ids"]) for b in trainer.get_eval_dataloader()) == len(dev)
    assert sum(len(b["input_ids"]) for b in trainer.get_test_dataloader(dev)) == len(dev)
    output = trainer.predict(dev)
    views, gold = trainer.unpack_predictions(output.predictions, output.label_ids)
    assert len(gold) == len(views["sentence"]) == len(views["context"]) == len(set(dev["example_id"]))
    assert trainer.args.dataloader_drop_last is True  # training still drops its last, incomplete batch
    assert trainer.evaluate()["eval_sentence_accuracy"] >= 0


# ------------------------------------------------------------------------------- resuming with other labels
def fake_checkpoint(folder, id2label):
    """A checkpoint complete enough for `resolve_checkpoint` (the label check comes before any loading)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 3}))
    save_file({"w": torch.zeros(1)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(
        json.dumps({"model_type": "clner", "id2label": {str(i): label for i, label in enumerate(id2label)}})
    )
    return folder


@pytest.mark.parametrize("how", ["path", "last"])
def test_resume_from_a_checkpoint_with_other_labels_is_refused(tiny_encoder_dir, tmp_path, capsys, labels, how):
    out = tmp_path / "out"
    swapped = list(labels)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    ckpt = fake_checkpoint((out if how == "last" else tmp_path) / "checkpoint-3", swapped)
    value = "last" if how == "last" else str(ckpt)
    message = run_in_process(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--do_train",
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--resume_from_checkpoint",
            value,
        ],
        capsys,
    )
    ours, theirs = ", ".join(labels), ", ".join(swapped)
    assert message.startswith(
        f"--resume_from_checkpoint {value}: {ckpt} was trained for the labels [{theirs}] and "
        f"this run's are [{ours}] (in id order; id 1 is {swapped[1]!r} there and "
        f"{labels[1]!r} here)"
    ), message
    assert not out.exists() or {p.name for p in out.iterdir()} <= {"checkpoint-3"}  # nothing trained, nothing written


# ------------------------------------------------------------------------------ trainer flags that break CLNER
@pytest.mark.parametrize(
    "flag,value,fragment",
    [
        ("label_smoothing_factor", 0.1, "--label_smoothing_factor 0.1 has no effect here"),
        ("eval_do_concat_batches", False, "--eval_do_concat_batches false cannot work here"),
        (
            "neftune_noise_alpha",
            5.0,
            ("--neftune_noise_alpha 5 cannot work here: NEFTune adds noise through the model's input embeddings"),
        ),
    ],
)
def test_trainer_refuses_flags_it_ignores_or_breaks_on(labels, tmp_path, flag, value, fragment):
    with pytest.raises(CLNERUsageError, match=fragment.replace("(", r"\(")):
        CLNERTrainer(model=tiny_model(labels), args=args_for(tmp_path, **{flag: value}))
    # the ones that work are accepted
    CLNERTrainer(
        model=tiny_model(labels),
        args=args_for(tmp_path, average_tokens_across_devices=False, include_num_input_tokens_seen="non_padding"),
    )


# ----------------------------------------------------------------------------------------------- SIGTERM
def test_sigterm_mid_training_saves_a_checkpoint_that_resumes(tiny_encoder_dir, tmp_path, capsys, monkeypatch):
    """Regression (issue 18): a SIGTERM mid-training (schedulers send one before a kill) ended the run with exit
    143 and a checkpoint many steps old. Now the step finishes, a checkpoint is saved (whatever --save_strategy),
    the run exits 143 naming it and writes no final model, and `--resume_from_checkpoint last` continues."""
    import os
    import signal

    import run_ner_cl
    from clner import run_utils
    from clner.cli import run_cli

    real = run_utils.StopOnSigterm.on_step_end

    def sigterm_at_step_2(self, args, state, control, **kwargs):
        if state.global_step == 2 and self.received is None:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the run's handler, in this (main) thread
        return real(self, args, state, control, **kwargs)

    out = tmp_path / "run"
    argv = [
        "--model_name_or_path",
        str(tiny_encoder_dir),
        "--train_file",
        str(SAMPLE / "train.txt"),
        "--do_train",
        "--max_steps",
        "4",
        "--per_device_train_batch_size",
        "8",
        "--max_seq_length",
        "64",
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--logging_steps",
        "1",
        "--do_eval",
        "--validation_file",
        str(SAMPLE / "dev.txt"),
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "1",
    ]
    monkeypatch.setattr(run_utils.StopOnSigterm, "on_step_end", sigterm_at_step_2)
    previous = signal.getsignal(signal.SIGTERM)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_cli(run_ner_cl.main, argv, prog="run_ner_cl.py")
    err = capsys.readouterr().err
    assert exit_.value.code == 143 and signal.getsignal(signal.SIGTERM) == previous  # the handler is taken down
    assert f"stopped by SIGTERM at step 2: checkpoint saved in {out / 'checkpoint-2'}" in err
    assert (out / "checkpoint-2" / "trainer_state.json").is_file() and not (out / "model.safetensors").exists()
    saved = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    # no evaluation at the SIGTERM step (minutes on a real dev set would outlast a scheduler's notice)
    assert [h["step"] for h in saved if "eval_f1" in h] == [1]
    monkeypatch.setattr(run_utils.StopOnSigterm, "on_step_end", real)
    capsys.readouterr()
    assert run_cli(run_ner_cl.main, argv + ["--resume_from_checkpoint", "last"], prog="run_ner_cl.py") == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and [h["step"] for h in state["log_history"] if "loss" in h][-2:] == [3, 4]


# ------------------------------------------------------------------------------------------- the output folder
def test_a_second_run_or_another_models_files_in_the_output_folder_are_refused(tiny_encoder_dir, tmp_path, capsys):
    """Regression (issue 18): two runs writing one --output_dir were not warned about, and a folder holding another
    model's shard index kept the stale index (then uploaded). A live run's lock is refused naming its process, a
    dead run's lock is taken over, another model's files are refused unless --overwrite_output_dir, which removes
    them first."""
    import os
    import subprocess
    import sys

    from clner.run_utils import LOCK_FILE

    out = tmp_path / "run"
    out.mkdir()
    argv = [
        "--model_name_or_path",
        str(tiny_encoder_dir),
        "--train_file",
        str(SAMPLE / "train.txt"),
        "--do_train",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "8",
        "--max_seq_length",
        "64",
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        "--save_strategy",
        "no",
    ]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_FILE).write_text(str(other.pid))
        message = run_in_process(argv, capsys)
        assert f"--output_dir {out} is being written by another run (process {other.pid}" in message
    finally:
        other.kill()
        other.wait()
    (out / "model.safetensors.index.json").write_text("{}")  # another model's (sharded) files
    (out / "model-00001-of-00002.safetensors").write_bytes(b"stale")
    message = run_in_process(argv, capsys)  # the dead run's lock is taken over; the stale model is refused
    assert "already holds a model (model.safetensors.index.json, model-00001-of-00002.safetensors)" in message
    assert "--overwrite_output_dir" in message
    from clner.cli import run_cli
    from run_ner_cl import main

    capsys.readouterr()
    assert run_cli(main, argv + ["--overwrite_output_dir"], prog="run_ner_cl.py") == 0
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and not names & {
        "model.safetensors.index.json",
        LOCK_FILE,
        "model-00001-of-00002.safetensors",
    }
    assert os.path.getsize(out / "model.safetensors") > 1000


def test_a_failed_final_save_names_what_was_kept(tiny_encoder_dir, tmp_path, capsys, monkeypatch):
    """Regression (issue 18, disk full): a failing final save lost the trained weights with a bare SafetensorError
    (exit 1) and left run_config.json at 0 bytes. The model is saved into a temporary folder first, so a failure
    replaces nothing, leaves no partial file, and the message names the checkpoint that was kept; files the run
    writes go through a temporary file and a rename (`atomic_open`)."""
    import errno

    from clner.data.io import atomic_open
    from modeling_clner import CLNERForTokenClassification

    real = CLNERForTokenClassification.save_pretrained

    def full_disk_at_the_end(self, save_directory, *args, **kwargs):
        if ".saving-" in str(save_directory):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, save_directory, *args, **kwargs)

    monkeypatch.setattr(CLNERForTokenClassification, "save_pretrained", full_disk_at_the_end)
    out = tmp_path / "run"
    message = run_failing(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--do_train",
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "8",
            "--max_seq_length",
            "64",
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--save_strategy",
            "steps",
            "--save_steps",
            "1",
        ],
        capsys,
    )
    assert message.startswith(f"could not write the trained model to {out} (OSError: [Errno 28] No space left")
    assert f"the newest complete checkpoint, {out / 'checkpoint-2'}, is kept" in message
    names = {p.name for p in out.iterdir()}
    assert not names & {"model.safetensors", "run_config.json"} and not any(n.startswith(".") for n in names)
    # atomic_open: a failure inside leaves the earlier file whole and no temporary file
    target = tmp_path / "results.json"
    target.write_text("earlier")
    with pytest.raises(OSError), atomic_open(target) as f:
        f.write("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "earlier" and [p.name for p in tmp_path.glob(".results.json*")] == []
    with atomic_open(target) as f:
        f.write("new")
    assert target.read_text() == "new"
