"""What a training run publishes: the Hub folder with a full model card written into its output folder, and the
upload with ``--push_to_hub`` (`publish_from_run`, called by `run_ner_cl.py` after training)."""

from __future__ import annotations

import logging
from pathlib import Path

from clner.data.io import iter_named_rows
from clner.errors import HubError
from clner.hub import plots
from clner.hub.model_card import (
    build_model_card,
    choose_widget_examples,
    epoch_results,
    is_repo_id,
    training_set_statistics,
)
from clner.hub.upload import push_to_hub, save_for_hub, upload_command
from clner.metrics import best_evaluation

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------- from run_ner_cl.py
_PACKAGED_MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


_HYPERPARAMETERS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "weight_decay",
    "warmup_steps",
    "lr_scheduler_type",
    "optim",
    "seed",
    "fp16",
    "bf16",
)


def _rows_with_tag_names(dataset) -> list[dict]:
    """Rows of a `datasets.Dataset` (or a list of dicts) with `tags` as label names."""

    return list(iter_named_rows(dataset))


def _run_hyperparameters(training_args, cl_args, data_args) -> dict:
    """The training hyper-parameters of a run, and the CL options that applied to its objective (the recipe itself
    is in the card's objective table)."""
    hyper = {
        k: getattr(training_args, k)
        for k in _HYPERPARAMETERS
        if getattr(training_args, k, None) not in (None, False, 0, -1) or k == "seed"
    }
    hyper = {k: getattr(v, "value", v) for k, v in hyper.items()}  # enums (scheduler, optimizer) by their value
    if hyper.get("max_steps", -1) > 0:  # it ended training: num_train_epochs never applied (as in the Trainer's card)
        hyper.pop("num_train_epochs", None)
    if cl_args is None:
        return hyper
    get = lambda name, default=None: getattr(cl_args, name, default)  # noqa: E731
    if get("head_learning_rate") is not None:
        hyper["head_learning_rate (emissions, CRF)"] = get("head_learning_rate")
    if get("train_views", "both") == "both":
        hyper["L_NLL-EXT weight of sentences without a context"] = get("nll_ext_weight_no_context")
        uses_cl = get("cl_loss", "none") not in (None, "none") and get("cl_weight", 0)
        if uses_cl:
            hyper["L_CL gradient into the context view"] = "stopped" if get("cl_detach_context", True) else "kept"
        if uses_cl and get("cl_loss") == "l2":
            hyper["CL-L2 over hidden dimensions"] = get("cl_l2_reduction")
        if uses_cl and getattr(data_args, "unlabeled_file", None):
            hyper["L_CL weight of unlabelled sentences"] = get("unlabeled_weight")
    return {k: v for k, v in hyper.items() if v is not None}


def publish_from_run(
    trainer,
    model,
    tokenizer,
    metrics,
    model_args,
    data_args,
    cl_args,
    training_args,
    raw,
    *,
    push: bool | None = None,
    widget_rows: int = 2000,
    repo_id: str | None = None,
    plot_curves: bool = True,
):
    """What `run_ner_cl.py` calls after training: writes the Hub folder (`save_for_hub`) with a full model card into
    `training_args.output_dir`, and uploads it with `push_to_hub` when `push` (default: `training_args.push_to_hub`),
    to `repo_id` (default: `hub_model_id`, else the output folder's name), with `hub_revision`, `hub_private_repo` and
    `hub_token`. Returns the `CommitInfo` or None; a failed upload raises `HubError` naming the complete local folder
    and the command that uploads it.

    The card names the dataset given by `--dataset_card_name` or `--dataset_name` (never a file's folder), lists
    `--language` / `--license` when given, the training-set statistics of `raw["train"]`, the per-evaluation results
    of `trainer.state.log_history` and the framework versions, and the results of every evaluated split (validation
    and test, when `metrics` holds ``eval_`` and ``predict_`` keys; the model-index keeps the validation one). Widget
    examples come from the first `widget_rows` rows of `raw["validation"]` (when present).

    With `plot_curves`, a run that evaluated during training gets ``training_curves.png``
    (`plots.plot_training_curves`, when matplotlib is installed) in the folder, shown in the card and uploaded
    with it; a stale one of an earlier run in the folder is removed when this run draws none."""
    push = bool(getattr(training_args, "push_to_hub", False)) if push is None else push
    out = Path(training_args.output_dir)
    base = getattr(model_args, "model_name_or_path", None) or _PACKAGED_MINILM_ID
    card_name = getattr(data_args, "dataset_card_name", None)
    # a display name ("WNUT-17 tweets") names the data in the card; only a Hub dataset id fills `datasets:`
    dataset_id = getattr(data_args, "dataset_name", None) or (card_name if is_repo_id(card_name) else None)
    dataset_name = card_name or dataset_id
    language = getattr(model_args, "language", None)
    stats = None
    if raw is not None and "train" in raw:
        unlabeled = len(raw["unlabeled"]) if "unlabeled" in raw else 0
        stats = training_set_statistics(_rows_with_tag_names(raw["train"]), unlabeled=unlabeled)
    log_history = getattr(getattr(trainer, "state", None), "log_history", None) or []
    widget = None
    if raw is not None and "validation" in raw:
        try:
            rows = _rows_with_tag_names(raw["validation"].select(range(min(widget_rows, len(raw["validation"])))))
            widget = choose_widget_examples(model, tokenizer, rows, k=4)
        except Exception as exc:  # noqa: BLE001 - the card is still useful without a widget
            logger.warning("no widget examples: %s", exc)
    repo_id = repo_id or getattr(training_args, "hub_model_id", None) or (out.absolute().name if push else None)
    prefix = "eval" if any(k.startswith("eval_") for k in metrics) else "predict"
    curves = None
    if plot_curves:
        stale = out / plots.CURVES_FILE
        if plots.plot_training_curves(log_history, stale) is not None:
            curves = plots.CURVES_FILE
        elif stale.is_file():
            logger.warning("removing %s of an earlier run (this run has no curves to plot)", stale)
            stale.unlink()
    hyperparameters = _run_hyperparameters(training_args, cl_args, data_args)
    state = getattr(trainer, "state", None)
    best = best_evaluation(log_history, getattr(state, "best_model_checkpoint", None))
    if getattr(training_args, "load_best_model_at_end", False) and best is not None:
        step, epoch = best
        hyperparameters["model kept (--load_best_model_at_end)"] = (
            f"the best evaluation's ({training_args.metric_for_best_model or 'loss'}): "
            + (f"epoch {epoch:g}, step {step}" if epoch is not None else f"step {step}")
        )
    card = build_model_card(
        model.config,
        metrics,
        base_model=base,
        dataset_name=dataset_name,
        dataset_id=dataset_id,
        dataset_config=getattr(data_args, "dataset_config_name", None),
        language=[c.strip() for c in language.split(",") if c.strip()] if language else None,
        license=getattr(model_args, "license", None),
        hyperparameters=hyperparameters,
        context_source=getattr(data_args, "context_source", None),
        widget_examples=widget,
        repo_id=repo_id,
        model_name=None if repo_id else out.name,
        metric_prefix=prefix,
        dataset_split="validation" if prefix == "eval" else "test",
        training_stats=stats,
        epochs=epoch_results(log_history),
        space_id=getattr(data_args, "space_id", None),
        curves=curves,
    )
    save_for_hub(model, tokenizer, out, card)
    if not push:
        return None
    revision = getattr(training_args, "hub_revision", None)
    private = getattr(training_args, "hub_private_repo", None)
    try:
        return push_to_hub(
            out,
            repo_id,
            revision=revision,
            private=private,
            token=getattr(training_args, "hub_token", None),
            commit_message="CLNER model trained with run_ner_cl.py",
        )
    except Exception as exc:  # noqa: BLE001 - the trained model is safe on disk: say so, and how to upload it
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise HubError(
            f"the upload to {repo_id!r} failed ({type(exc).__name__}{': ' + reason if reason else ''}). "
            f"The model folder {out.absolute()} is complete (weights, card, remote code, tokenizer); "
            f"upload it with `{upload_command(out.absolute(), repo_id, revision, private)}`"
        ) from exc
