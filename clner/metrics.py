"""Entity-level scores of tag sequences (seqeval, CoNLL-style) and WNUT-17's surface-form scores, shared by evaluation
and `clner-predict`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any


def best_evaluation(log_history: Sequence[Mapping[str, Any]], best_checkpoint: str | None) -> tuple[int, Any] | None:
    """`(step, epoch)` of the evaluation whose checkpoint `--load_best_model_at_end` kept (the Trainer's
    `best_model_checkpoint`, `.../checkpoint-<step>`); the epoch is None when no evaluation is logged at that step."""
    match = re.search(r"checkpoint-(\d+)$", str(best_checkpoint or ""))
    if not match:
        return None
    step = int(match.group(1))
    return step, next((e.get("epoch") for e in log_history if e.get("step") == step and "eval_loss" in e), None)


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


def surface_form_metrics(
    tokens: Sequence[Sequence[str]], gold_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]
) -> dict[str, float]:
    """WNUT-17's surface-form precision / recall / F1, as its official scorer `wnuteval.py` computes them (the
    shared task's second measure, beside entity F1: each distinct entity string counts once, however often it
    occurs).

    `tokens`, `gold_tags`, `pred_tags`: one list per sentence, a word, a gold tag and a predicted tag per word. The
    entities of a sentence are read from its tags as seqeval's default mode reads them (`seqeval_metrics`: BIO, IOB1
    and BIOES alike, an ``I-`` that continues no entity of its type starts one, as conlleval and `wnuteval.py` do);
    none spans two sentences. A surface form is an entity's words, compared exactly (case, spelling and word
    boundaries as given), with its type. Then, as `wnuteval.py`'s `calc_results(..., surface_form=True)`:

    * gold = the set of the gold entities' surface forms; predicted = the set of the predicted entities';
    * correct = the set of the surface forms of the *correct* entities: the predicted entities that match a gold
      entity exactly (sentence, first and last word, type). A surface form predicted at one place and gold at
      another only is not correct; one found at any of its gold places is;
    * precision = |correct| / |predicted|, recall = |correct| / |gold|, F1 their harmonic mean; each is 0.0 where
      its denominator is 0 (no predicted or no gold entity, or precision + recall = 0).
    """
    from seqeval.metrics.sequence_labeling import get_entities

    if not len(tokens) == len(gold_tags) == len(pred_tags):
        raise ValueError(
            f"surface-form scores need as many sentences of words ({len(tokens)}), gold tags ({len(gold_tags)}) and "
            f"predicted tags ({len(pred_tags)})"
        )
    gold_forms: set = set()
    pred_forms: set = set()
    correct_forms: set = set()
    for n, (words, gold, pred) in enumerate(zip(tokens, gold_tags, pred_tags)):
        words, gold, pred = [str(w) for w in words], list(gold), list(pred)
        if not len(words) == len(gold) == len(pred):
            raise ValueError(
                f"sentence {n}: {len(words)} words, {len(gold)} gold tags and {len(pred)} predicted tags; "
                "surface-form scores need one of each per word"
            )
        gold_entities, pred_entities = set(get_entities(gold)), set(get_entities(pred))
        for entities, forms in (
            (gold_entities, gold_forms),
            (pred_entities, pred_forms),
            (gold_entities & pred_entities, correct_forms),
        ):
            forms.update((tuple(words[first : last + 1]), etype) for etype, first, last in entities)
    precision = len(correct_forms) / len(pred_forms) if pred_forms else 0.0
    recall = len(correct_forms) / len(gold_forms) if gold_forms else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


#: the infix of a view's surface-form scores among the trainer's metric keys: ``eval_context_surface_f1``
SURFACE = "surface"
SURFACE_METRICS = ("precision", "recall", "f1")

_METRIC_RE = re.compile(
    r"^(?P<prefix>[a-z]+)_(?P<view>sentence|context)_(?:(?P<type>.+)_)?"
    r"(?P<metric>precision|recall|f1|number|accuracy)$",
    re.S,
)  # types are data: any char


# ------------------------------------------------------------------------------------------------------ metrics
def _surface_form_key(m: re.Match, metrics: Mapping[str, Any] | None = None) -> bool:
    """Whether a matched key is a view's surface-form score (``eval_context_surface_f1``, `surface_form_metrics`),
    not a score of an entity type named ``surface``: such a type has a ``..._surface_number`` in `metrics` (the
    trainer then leaves the surface-form scores out)."""
    if m.group("type") != SURFACE or m.group("metric") not in SURFACE_METRICS:
        return False
    return metrics is None or f"{m.group('prefix')}_{m.group('view')}_{SURFACE}_number" not in metrics


def parse_view_metrics(metrics: Mapping[str, Any], prefix: str = "eval", *, keep_nan: bool = False) -> dict:
    """``{"sentence": {"overall": {"f1": ...}, "types": {"person": {"f1": ...}}}, "context": {...}}`` from the
    trainer's flat metric keys; views without any metric are left out. A view's surface-form scores
    (``eval_sentence_surface_f1``, ...) are overall ``surface_precision`` / ``surface_recall`` / ``surface_f1``.
    NaN values (an undefined score) are left out too, unless `keep_nan`: the card shows them as ``n/a``."""
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
        elif _surface_form_key(m, metrics):
            view["overall"][f"{SURFACE}_{m.group('metric')}"] = value
        else:
            view["types"].setdefault(m.group("type"), {})[m.group("metric")] = value
    return out


def per_type_metric(key: str) -> bool:
    """Whether a metric key is an entity type's (``eval_context_person_f1``), not a view's (``eval_context_f1``,
    ``eval_context_surface_f1``)."""
    m = _METRIC_RE.match(key)
    return bool(m) and m.group("type") not in (None, "overall") and not _surface_form_key(m)
