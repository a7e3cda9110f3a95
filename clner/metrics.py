"""Entity-level scores of tag sequences (seqeval, CoNLL-style), shared by evaluation and `clner-predict`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any


def seqeval_metrics(gold: list[list[str]], pred: list[list[str]], entity_level: bool = False) -> dict[str, float]:
    """Entity-level precision/recall/F1 and token accuracy with `seqeval` (the library behind `evaluate`'s seqeval
    metric, which would be fetched from the Hub), same keys as evaluate's `overall_*` without the prefix."""
    from seqeval.metrics import accuracy_score, classification_report

    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    out = {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "accuracy": float(accuracy_score(gold, pred)),
    }
    if entity_level:
        for name, scores in report.items():
            if name.endswith(" avg"):
                continue
            out.update(
                {
                    f"{name}_precision": float(scores["precision"]),
                    f"{name}_recall": float(scores["recall"]),
                    f"{name}_f1": float(scores["f1-score"]),
                    f"{name}_number": int(scores["support"]),
                }
            )
    return out


_METRIC_RE = re.compile(
    r"^(?P<prefix>[a-z]+)_(?P<view>sentence|context)_(?:(?P<type>.+)_)?"
    r"(?P<metric>precision|recall|f1|number|accuracy)$",
    re.S,
)  # types are data: any char


# ------------------------------------------------------------------------------------------------------ metrics
def parse_view_metrics(metrics: Mapping[str, Any], prefix: str = "eval", *, keep_nan: bool = False) -> dict:
    """``{"sentence": {"overall": {"f1": ...}, "types": {"person": {"f1": ...}}}, "context": {...}}`` from the
    trainer's flat metric keys; views without any metric are left out. NaN values (an undefined score) are left out
    too, unless `keep_nan`: the card shows them as ``n/a``."""
    out: dict = {}
    for key, value in metrics.items():
        m = _METRIC_RE.match(key)
        if not m or m.group("prefix") != prefix or value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isnan(value) and not keep_nan:
            continue
        view = out.setdefault(m.group("view"), {"overall": {}, "types": {}})
        if m.group("type") in (None, "overall"):
            view["overall"][m.group("metric")] = value
        else:
            view["types"].setdefault(m.group("type"), {})[m.group("metric")] = value
    return out


def per_type_metric(key: str) -> bool:
    """Whether a metric key is an entity type's (``eval_context_person_f1``), not a view's (``eval_context_f1``)."""
    m = _METRIC_RE.match(key)
    return bool(m) and m.group("type") not in (None, "overall")
