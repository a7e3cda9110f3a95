"""The training-curves plot (`clner.hub.plots`): both views' validation F1 per epoch and the loss components, as a
PNG; nothing without evaluations during training, or without matplotlib."""

import sys

import pytest

from clner.hub.plots import CURVES_FILE, plot_training_curves, training_curves
from conftest import CURVES_HISTORY, LOG_HISTORY, png_size


def test_plot_training_curves(tmp_path, monkeypatch):
    """A PNG of both views' validation F1 per epoch and of the loss components; nothing without evaluations during
    training, or without matplotlib."""
    pytest.importorskip("matplotlib")
    evaluations, logs = training_curves(CURVES_HISTORY)
    assert evaluations == [
        {"epoch": 1.0, "eval_sentence_f1": 0.41, "eval_context_f1": 0.45},
        {"epoch": 2.0, "eval_sentence_f1": 0.5, "eval_context_f1": 0.55},
    ]  # not the one after
    assert [(entry["epoch"], entry["loss_cl"]) for entry in logs] == [(0.5, 0.5), (1.0, 0.25), (1.5, 0.125)]
    path = plot_training_curves(CURVES_HISTORY, tmp_path / "out" / CURVES_FILE)
    assert path == tmp_path / "out" / "training_curves.png" and png_size(path) == (1100, 400)  # F1 and loss panels
    assert png_size(plot_training_curves(LOG_HISTORY, tmp_path / "b.png")) == (1100, 400)  # only `loss` logged
    evals_only = [e for e in CURVES_HISTORY if "eval_loss" in e]
    assert png_size(plot_training_curves(evals_only, tmp_path / "c.png")) == (550, 400)  # F1 alone
    # no evaluation during training (a run without eval_strategy; only the evaluation after it): nothing written
    no_evals = [e for e in CURVES_HISTORY if "eval_loss" not in e] + [CURVES_HISTORY[-1]]
    assert plot_training_curves(no_evals, tmp_path / "d.png") is None and not (tmp_path / "d.png").exists()
    assert plot_training_curves([], tmp_path / "e.png") is None and not (tmp_path / "e.png").exists()
    # without matplotlib: nothing, and no error
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert plot_training_curves(CURVES_HISTORY, tmp_path / "f.png") is None and not (tmp_path / "f.png").exists()
