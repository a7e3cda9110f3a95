"""Plots of a CLNER training run, for its output folder and its model card.

* `plot_training_curves(log_history, path)`: a PNG of the run's per-epoch validation F1 of both views (the sentence
  alone, and with its retrieved context) and of its training loss with the components the CLNER trainer logs
  (``loss_nll``, ``loss_nll_ext``, ``loss_cl``), from the Trainer's ``state.log_history``. `publish_from_run` writes
  it as ``training_curves.png`` next to the model and `build_model_card(curves=...)` shows it in the card.

matplotlib is optional (``requirements-dev.txt``): it is imported only when a plot is drawn, through its Agg canvas
(no display, and no change to the process's pyplot backend); without it no plot is written.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clner.files import atomic_path

logger = logging.getLogger(__name__)


#: the plot's file name in a model folder (the card links it by this relative name)
CURVES_FILE = "training_curves.png"
#: validation F1 of each view, as the CLNER trainer logs them at each evaluation
F1_KEYS = (("eval_sentence_f1", "sentence only"), ("eval_context_f1", "with context"))
#: the logged training loss (the weighted total) and its components
LOSS_KEYS = (
    ("loss", "loss (weighted total)"),
    ("loss_nll", "L_NLL (sentence view)"),
    ("loss_nll_ext", "L_NLL-EXT (context view)"),
    ("loss_cl", "L_CL (cooperative learning)"),
)


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def training_curves(log_history: Sequence[Mapping[str, Any]]) -> tuple[list[dict], list[dict]]:
    """`(evaluations, training_logs)` of a run's `state.log_history`, up to the end of training (an evaluation after
    `trainer.train()` repeats the last epoch's and is left out): each evaluation as ``{"epoch", "eval_sentence_f1",
    "eval_context_f1"}`` (those logged, with an ``epoch``), each training log as ``{"epoch", "step", "loss", ...}``
    with the loss components logged. Non-finite values are left out."""
    evaluations, logs = [], []
    for entry in log_history:
        if "train_runtime" in entry:
            break
        if any(k in entry for k, _ in F1_KEYS):
            epoch = _finite(entry.get("epoch"))
            values = {k: _finite(entry.get(k)) for k, _ in F1_KEYS}
            if epoch is not None and any(v is not None for v in values.values()):
                evaluations.append({"epoch": epoch, **{k: v for k, v in values.items() if v is not None}})
        elif "loss" in entry:
            losses = {k: _finite(entry.get(k)) for k, _ in LOSS_KEYS}
            if any(v is not None for v in losses.values()):
                logs.append(
                    {
                        "epoch": _finite(entry.get("epoch")),
                        "step": entry.get("step"),
                        **{k: v for k, v in losses.items() if v is not None},
                    }
                )
    return evaluations, logs


def plot_training_curves(log_history: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path | None:
    """Write a PNG of a training run's curves to `path` and return it: the validation F1 (%) of both views at each
    evaluation, against the epoch, and the training loss with its components (``loss``, ``loss_nll``,
    ``loss_nll_ext``, ``loss_cl``, those logged), against the epoch (or the step, when a log has no epoch), on a
    log scale when every value is positive (the CL term is orders of magnitude below the NLLs).

    Returns None and writes nothing when `log_history` has no evaluation with an epoch during training (the run did
    not evaluate while it trained), or when matplotlib is not installed: the plot is an extra of the model card,
    never a reason for a run to fail."""
    evaluations, logs = training_curves(log_history)
    if not evaluations:
        return None
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        logger.info("matplotlib is not installed: no training-curves plot (pip install matplotlib)")
        return None

    panels = 2 if logs else 1
    fig = Figure(figsize=(5.5 * panels, 4.0), layout="constrained")
    FigureCanvasAgg(fig)  # Agg, whatever pyplot's backend: no display is needed or touched
    axes = fig.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    values = [e[k] for e in evaluations for k, _ in F1_KEYS if k in e]
    scale = 100.0 if max(values) <= 1.0 else 1.0  # the trainer's fractions, shown in % as in the card
    for (key, label), marker in zip(F1_KEYS, ("o", "s")):
        points = [(e["epoch"], e[key] * scale) for e in evaluations if key in e]
        if points:
            ax.plot(*zip(*points), marker=marker, label=label)
    ax.set_title("validation F1 per evaluation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("entity-level F1 (%)" if scale == 100.0 else "entity-level F1")
    if all(float(e["epoch"]).is_integer() for e in evaluations):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if logs:
        ax = axes[1]
        by_epoch = all(entry["epoch"] is not None for entry in logs)
        x_key = "epoch" if by_epoch else "step"
        plotted = []
        for key, label in LOSS_KEYS:
            points = [(entry[x_key], entry[key]) for entry in logs if key in entry and entry[x_key] is not None]
            if points:
                ax.plot(*zip(*points), label=label, linewidth=2.0 if key == "loss" else 1.2)
                plotted += [y for _, y in points]
        if any(y > 0 for y in plotted):  # the parts span orders of magnitude (L_CL is small): a log scale shows each
            ax.set_yscale("log", nonpositive="mask")
        ax.set_title("training loss and its components")
        ax.set_xlabel(x_key)
        ax.set_ylabel("loss (mean since the previous log)")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path
