"""The run's helpers (`clner.run_utils`): the summary printed at the end of a run, and the redaction of credentials
from what a run records."""

import dataclasses
import json
import os

import pytest
from transformers import TrainingArguments

from clner import arguments, run_utils
from conftest import HUB_TOKEN, training_args


def test_run_summary_lists_checkpoints_and_how_to_get_a_model_index(tmp_path):
    """The summary lists the checkpoints a run leaves in its folder (their size, and how to keep none), and says why
    a card without a dataset name has no model-index; once the data is named, it says nothing of it."""
    import time as time_

    started = time_.time()
    out = tmp_path / "out"
    (out / "checkpoint-5").mkdir(parents=True)
    (out / "checkpoint-5" / "model.safetensors").write_bytes(b"0" * 2**20)
    (out / "README.md").write_text("card")
    (out / "model.safetensors").write_bytes(b"0")
    text = run_utils.run_summary(
        {},
        arguments.DataTrainingArguments(),
        training_args(tmp_path, output_dir=str(out), do_train=True),
        None,
        started,
    )
    assert "  checkpoints: checkpoint-5 (1 MiB; --save_strategy no keeps none)" in text
    assert "the card has no model-index" in text
    text = run_utils.run_summary(
        {},
        arguments.DataTrainingArguments(dataset_card_name="WNUT-17"),
        training_args(tmp_path, output_dir=str(out), do_train=True),
        None,
        started,
    )
    assert "model-index" not in text


def test_redact_credentials_replaces_every_kind_of_credential():
    """A dict built like the run's own record, with the Trainer's arguments nested in it and other kinds of
    credential: every credential is replaced, everything else is kept, and the dict given is left alone."""
    model_args = arguments.ModelArguments(model_name_or_path="bert-base-cased", token=HUB_TOKEN)
    training = dataclasses.asdict(
        TrainingArguments(output_dir="out", hub_token=HUB_TOKEN, hub_always_push=True, report_to="none")
    )
    raw = {
        "model": dataclasses.asdict(model_args),
        "training": training,
        "extra": {
            "use_auth_token": HUB_TOKEN,
            "hub_token_id": HUB_TOKEN,
            "token": True,
            "retriever": [{"api_key": "k1"}],
            "db_password": "pw",
            "max_tokens": 5,
            "token_file": "/home/me/.cache/huggingface/token",
        },
    }
    redacted = run_utils.redact_credentials(raw)
    assert HUB_TOKEN not in repr(redacted) and "'k1'" not in repr(redacted) and "'pw'" not in repr(redacted)
    assert redacted["training"]["hub_token"] == redacted["extra"]["use_auth_token"] == "<redacted>"
    assert redacted["extra"]["hub_token_id"] == redacted["extra"]["retriever"][0]["api_key"] == "<redacted>"
    assert redacted["training"]["hub_always_push"] is True and redacted["extra"]["token"] is True
    assert redacted["extra"]["max_tokens"] == 5 and redacted["extra"]["token_file"].endswith("huggingface/token")
    assert {k: v for k, v in redacted["training"].items() if k != "hub_token"} == {
        k: v for k, v in training.items() if k != "hub_token"
    }
    assert raw["training"]["hub_token"] == HUB_TOKEN  # the run's own arguments are left alone


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


def test_the_summary_names_the_model_load_best_model_at_end_kept(tmp_path):
    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"best_model_checkpoint": str(tmp_path / "checkpoint-40"), "best_metric": 0.61234,
                                 "log_history": [{"step": 40, "epoch": 2.0, "eval_loss": 0.3}]}))  # fmt: skip
    args = TrainingArguments(output_dir=str(tmp_path), load_best_model_at_end=True, eval_strategy="epoch",
                             save_strategy="epoch", metric_for_best_model="f1", report_to=[])  # fmt: skip
    assert (
        run_utils.kept_model(state, args)
        == "the best evaluation's, epoch 2, step 40 (f1 0.6123; --load_best_model_at_end)"
    )
    assert run_utils.kept_model(state, TrainingArguments(output_dir=str(tmp_path), report_to=[])) is None
