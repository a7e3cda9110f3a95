"""The metrics of a run (`clner.metrics`): its flat `eval_` / `predict_` keys read back per view, overall and per
entity type."""

from clner.metrics import parse_view_metrics
from conftest import CARD_METRICS


def test_parse_view_metrics():
    parsed = parse_view_metrics(CARD_METRICS)
    assert parsed["sentence"]["overall"] == {"precision": 0.5512, "recall": 0.4123, "f1": 0.4718, "accuracy": 0.95}
    assert parsed["context"]["types"]["person"] == {"f1": 0.71, "precision": 0.8, "recall": 0.64, "number": 470}
    assert parsed["context"]["types"]["creative-work"] == {"f1": 0.25}
    assert parse_view_metrics(CARD_METRICS, prefix="predict") == {"context": {"overall": {"f1": 0.1}, "types": {}}}
    assert parse_view_metrics({"eval_sentence_f1": float("nan"), "eval_loss": 1.0}) == {}
