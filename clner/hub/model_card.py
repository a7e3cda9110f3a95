"""The Hub model card of a CLNER model (the upload folder and the upload are `clner.hub.upload`'s).

* `build_model_card(config, metrics, base_model=...)`: a `huggingface_hub.ModelCard` whose YAML carries the tags,
  datasets, metrics, base model, language and license (when given), ``pipeline_tag: token-classification``, a
  ``widget`` with precomputed ``output`` examples, and a ``model-index`` with precision / recall / F1 of **both views**
  (sentence alone, and with its retrieved context); the body says how the model was trained from the recipe its
  config records (a sentence-only baseline is not described as trained with contexts or a CL loss), has the results
  (overall and per entity type), usage with ``trust_remote_code=True`` and a pinned revision, the training set's
  statistics, hyper-parameters, objective, per-epoch results (and their plot, `clner.hub.plots`) and framework versions,
  where the contexts came from, its limitations (where CLNER helps, what it needs at inference, what it was not
  evaluated on), and the citation of the paper. The results cover every evaluated split (validation and test), each
  table labelled with its split; a type without gold entities in a split has ``n/a`` recall and F1, not ``0.00``.
  Every text in its body that comes from the data, a config or the user's flags (entity types, dataset and model
  names, the contexts' source, ...) goes through `md_escape`, so that it can add no HTML, link, heading or table
  cell; the YAML is written by ``yaml.safe_dump``. The card is rendered by ``huggingface_hub.ModelCard.from_template``
  from ``model_card_template.md`` (Jinja, beside this module) and a `CLNERModelCardData` (the front
  matter's fields and the body's facts; `CLNERModelCardData.template_kwargs` escapes what the template reads); it
  is a `CLNERModelCard`.
* `choose_widget_examples(model, tokenizer, rows, k)`: evaluation rows covering varied entity types, preferring those
  the model gets right, with the model's output for each (titles say when it differs from the gold entities).

Metric keys are the trainer's: ``eval_sentence_precision`` / ``_recall`` / ``_f1``, ``eval_context_...``, per
entity type ``eval_{view}_{TYPE}_{precision|recall|f1|number}`` (e.g. ``eval_context_person_f1``), and WNUT-17's
surface-form scores ``eval_{view}_surface_f1`` (shown beside the entity scores when recorded).
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

import inference_clner
from clner.losses import CL_LOSSES
from clner.metrics import parse_view_metrics

logger = logging.getLogger(__name__)


CARD_TAGS = ["clner", "ner", "crf", "token-classification"]
VIEWS = ("context", "sentence")
VIEW_TITLES = {"context": "with context", "sentence": "sentence only"}
METRICS = ("precision", "recall", "f1")
#: a view's surface-form F1 (WNUT-17's second measure, `clner.metrics.surface_form_metrics`) in `parse_view_metrics`
SURFACE_F1 = "surface_f1"
#: Stands for the commit sha in the card's usage example until `push_to_hub` knows it.
REVISION_PLACEHOLDER = "<commit-sha>"
#: The card's body, a Jinja template rendered by `CLNERModelCard.from_template`. It reads only the values of
#: `CLNERModelCardData.template_kwargs()`, each already escaped for Markdown, and ``card_data``, the front matter.
#: Jinja's autoescape (HTML) stays off: it is the wrong escaping for Markdown.
MODEL_CARD_TEMPLATE_PATH = Path(__file__).with_name("model_card_template.md")

CITATION = """@inproceedings{wang-etal-2021-improving,
    title = "Improving Named Entity Recognition by External Context Retrieving and Cooperative Learning",
    author = "Wang, Xinyu and Jiang, Yong and Bach, Nguyen and Wang, Tao and Huang, Zhongqiang and Huang, Fei and Tu, Kewei",
    booktitle = "Proceedings of the 59th Annual Meeting of the Association for Computational Linguistics and the 11th International Joint Conference on Natural Language Processing (Volume 1: Long Papers)",
    year = "2021",
    address = "Online",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2021.acl-long.142",
    doi = "10.18653/v1/2021.acl-long.142",
}"""  # noqa: E501 (BibTeX fields stay on one line)

_CURVES_RE = re.compile(r"[A-Za-z0-9_][\w.\-]*(/[\w.\-]+)*", re.ASCII)  # a relative path, whole


def _pct(value: float | None, scale: float) -> str:
    """A score in the card: ``–`` when it was not recorded, ``n/a`` when it is undefined (NaN)."""
    if value is None:
        return "–"
    return "n/a" if math.isnan(value) else f"{value * scale:.2f}"


def _type_cells(scores: Mapping[str, float], scale: float) -> list[str]:
    """Precision, recall and F1 of one entity type in one view. A type without gold entities in the split has no
    recall, hence no F1: they are ``n/a``, not the ``0.00`` that seqeval reports (its ``zero_division=0``) for a type
    the model predicted but the split lacks. No gold entities: ``number`` (seqeval's support) is 0, or it was not
    recorded and the recall is undefined (NaN). Precision stays: it is defined whenever the type was predicted."""
    number, recall = scores.get("number"), scores.get("recall")
    no_gold = number == 0 or (number is None and recall is not None and math.isnan(recall))
    return [_pct(scores.get(m), scale) if not (no_gold and m != "precision") else "n/a" for m in METRICS]


#: the trainer's metric prefixes and the split each scores: `trainer.evaluate()` (``eval_``) the validation set,
#: `trainer.predict(..., metric_key_prefix="predict")` (``predict_``) the test set
SPLIT_PREFIXES = {"eval": "validation", "predict": "test", "test": "test"}


def result_splits(
    metrics: Mapping[str, Any], metric_prefix: str = "eval", dataset_split: str | None = None
) -> list[tuple[str, dict]]:
    """Every evaluated split of `metrics` as `(split, parse_view_metrics(...))`, validation before test: a run that
    evaluated (``eval_``) and predicted (``predict_``) reports both. The split of `metric_prefix` is named
    `dataset_split` when given; a prefix outside `SPLIT_PREFIXES` names its own split. NaN scores are kept."""
    out: dict[str, dict] = {}
    for prefix in [*SPLIT_PREFIXES, *([metric_prefix] if metric_prefix not in SPLIT_PREFIXES else [])]:
        split = SPLIT_PREFIXES.get(prefix, prefix)
        if prefix == metric_prefix and dataset_split:
            split = dataset_split
        parsed = parse_view_metrics(metrics, prefix, keep_nan=True)
        if parsed:
            out[split if split not in out else f"{split} ({prefix}_ metrics)"] = parsed
    return list(out.items())


def _weights(config) -> str | None:
    """The recorded loss weights as `1 / 0.5 / 0.5`, or None when the config predates them."""
    values = [getattr(config, k, None) for k in ("nll_weight", "nll_ext_weight", "cl_weight")]
    return None if any(v is None for v in values) else " / ".join(f"{v:g}" for v in values)


def is_repo_id(name: str | None) -> bool:
    """A Hub repository id (`huggingface_hub`'s own rule), not a local path that exists or is absolute."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not name or os.path.isabs(str(name)) or os.path.exists(str(name)):
        return False
    try:
        validate_repo_id(str(name))
    except HFValidationError:
        return False
    return True


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "dataset"


# ----------------------------------------------------------------------------------------------------- escaping
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # line separators and other control characters
_ORDERED_ITEM_RE = re.compile(r"^(\d+)([.)])")
_BLOCK_MARKERS = ("#", ">", "-", "+", "*", "=", "_", "~", "`")


def md_escape(text: Any, *, table: bool = False, code: bool = False) -> str:
    """`text` (a name or value from the data, a config or the user's flags: entity types, dataset names, the
    contexts' source, hyper-parameters, ...) made inert for the card's Markdown, so that it reads as written and can
    add no HTML, link, heading or table cell of its own. Every such text in the card's body goes through here.

    Always: line breaks (``\\n``, ``\\r``, U+2028, ...) and other control characters become spaces, whitespace runs
    one space, ends trimmed; ``&``, ``<``, ``>`` and ``"`` become HTML entities (no tag, comment or attribute can
    start). Then ``\\``, ``[``, ``]`` and ``|`` are backslash-escaped (no link, image or extra table cell), and text
    that would start a block (``#`` heading, ``>`` quote, list item, fence, ...) when it stands at a line's start gets
    its marker escaped too - except with `table` (a cell never starts a line; ``-1`` stays ``-1``).

    `code`: the text goes in an inline code span (returned with its backticks): backslashes are not escapes there,
    so only backticks (which would close the span; made ``'``) and ``&``, ``<``, ``>`` are replaced. Not for tables.
    The YAML front matter needs none of this: its values are data, written by `yaml.safe_dump`.
    """
    s = html.escape(" ".join(_CONTROL_RE.sub(" ", str(text)).split()), quote=False)
    if code:
        return "`" + s.replace("`", "'") + "`"
    s = s.replace('"', "&quot;").replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]").replace("|", "\\|")
    if not table:
        m = _ORDERED_ITEM_RE.match(s)
        if m:
            s = f"{m.group(1)}\\{m.group(2)}{s[m.end() :]}"
        elif s.startswith(_BLOCK_MARKERS):
            s = "\\" + s
    return s


def _row(*cells: Any) -> str:
    """A Markdown table row, each cell through `md_escape(table=True)`: no value splits a cell or adds one."""
    return "| " + " | ".join(md_escape(c, table=True) for c in cells) + " |"


def _py_str(text: Any) -> str:
    """`text` as a Python string literal on one line for the card's code examples: quotes, backslashes, line breaks
    and every non-ASCII character escaped (JSON's escapes are Python's), and ``<``, ``>``, ``&`` as ``\\u003c``-style
    escapes, so that no name can end the literal or the code block, nor put raw HTML in the card."""
    return json.dumps(str(text)).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --------------------------------------------------------------------------------------------------------- card
def recipe_summary(config) -> str | None:
    """How the model was trained, in words, from the recipe its config records (`train_views`, `cl_loss`,
    `cl_weight`, written by `run_ner_cl.py` from `CLArguments.recipe()`); None when the config records none."""
    if getattr(config, "nll_weight", None) is None:
        return None
    views = getattr(config, "train_views", "both")
    cl = getattr(config, "cl_loss", None) or "none"
    if views == "sentence":
        return (
            "trained on the sentences alone, without external contexts (the paper's *w/o context* baseline): no "
            "context view and no cooperative-learning loss"
        )
    if views == "context":
        return (
            "trained on each sentence with its retrieved context, `[sentence ; SEP ; context]` (the paper's "
            "*w/ context* baseline): no sentence-only view and no cooperative-learning loss"
        )
    two_views = "trained on two views of each sentence, the sentence alone and `[sentence ; SEP ; retrieved context]`"
    if cl == "none" or not getattr(config, "cl_weight", None):
        return f"{two_views}, each with its CRF loss and no cooperative-learning loss (the ablation of CLNER)"
    loss = CL_LOSSES[cl].description if cl in CL_LOSSES else md_escape(cl)
    return (
        f"{two_views}, plus the cooperative-learning loss {loss}, which pulls the sentence view towards the "
        "context view"
    )


def _objective_rows(config) -> list[tuple[str, Any]]:
    """The recorded recipe as `(setting, value)` rows; only the settings that applied to this training."""
    views = getattr(config, "train_views", "both")
    rows: list[tuple[str, Any]] = [
        ("views trained", views),
        ("trained with contexts", getattr(config, "trained_with_context", True)),
    ]
    if views == "both":
        cl = getattr(config, "cl_loss", None) or "none"
        rows.append(("cooperative-learning loss", cl))
        if cl == "kl":
            rows.append(("CL-KL temperature", getattr(config, "cl_temperature", None)))
        rows.append(("loss weights L_NLL / L_NLL-EXT / L_CL", _weights(config)))
    else:
        rows.append(("loss", "L_NLL (sentence view)" if views == "sentence" else "L_NLL-EXT (context view)"))
    return rows


def training_set_statistics(rows: Sequence[Mapping[str, Any]], unlabeled: int = 0) -> dict:
    """Statistics of a training split for the model card: sentences, words per sentence (min / median / max),
    sentences with a non-empty context, entities per type; `rows` have `tokens`, `tags` (names) and `context`."""
    lengths, with_context, entities = [], 0, {}
    for row in rows:
        lengths.append(len(row.get("tokens") or []))
        with_context += any(str(s).strip() for s in (row.get("context") or []))
        for etype, _, _ in inference_clner.group_entities(list(row.get("tags") or [])):
            entities[etype] = entities.get(etype, 0) + 1
    lengths.sort()
    return {
        "sentences": len(lengths),
        "with_context": with_context,
        "unlabeled": unlabeled,
        "words": (lengths[0], lengths[len(lengths) // 2], lengths[-1]) if lengths else None,
        "entities": dict(sorted(entities.items())),
    }


def epoch_results(log_history: Sequence[Mapping[str, Any]]) -> list[dict]:
    """One row per evaluation during a training run (the Trainer's `state.log_history`, up to the end of training):
    epoch, step, the last training loss logged before it, the validation loss and both views' F1 and their mean."""
    rows, train_loss = [], None
    for entry in log_history:
        if "train_runtime" in entry:  # the end of training: later entries are evaluations after it
            break
        if "loss" in entry:
            train_loss = entry["loss"]
        if "eval_sentence_f1" in entry or "eval_context_f1" in entry:
            rows.append(
                {
                    "epoch": entry.get("epoch"),
                    "step": entry.get("step"),
                    "training_loss": train_loss,
                    "validation_loss": entry.get("eval_loss"),
                    "sentence_f1": entry.get("eval_sentence_f1"),
                    "context_f1": entry.get("eval_context_f1"),
                    "f1": entry.get("eval_f1"),
                }
            )
    return rows


def framework_versions() -> dict[str, str]:
    """Versions of Python and of the libraries that trained the model (those installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"Python": platform.python_version()}
    for name, dist in (
        ("clner", "clner"),
        ("Transformers", "transformers"),
        ("PyTorch", "torch"),
        ("Datasets", "datasets"),
        ("Tokenizers", "tokenizers"),
        ("huggingface_hub", "huggingface-hub"),
    ):
        try:
            out[name] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


# ---------------------------------------------------------------------------------------------------- card data
#: what a config records of its training recipe (`run_ner_cl.py`, from `CLArguments.recipe()`)
_RECIPE_KEYS = (
    "train_views",
    "trained_with_context",
    "cl_loss",
    "cl_temperature",
    "cl_weight",
    "nll_weight",
    "nll_ext_weight",
)
#: the model settings the card lists: config key -> (row name, value when the config has none)
_MODEL_SETTINGS = {
    "tag_scheme": ("tag scheme", "BIO"),
    "crf_constraints": ("CRF scheme constraints", True),
    "max_seq_length": ("max sub-tokens per view", None),
    "window_stride": ("window stride (long sentences)", None),
}


class CLNERModelCardData(ModelCardData):
    """The structured data of a CLNER model card: the YAML front matter (`ModelCardData`'s fields: language,
    license, tags, datasets, metrics, base model, ``model-index`` from `eval_results`, and ``widget``) and the
    facts its body reports, as plain data (`BODY_FIELDS`). `build_model_card` fills it from a run; `CLNERModelCard`
    renders it with `MODEL_CARD_TEMPLATE_PATH`.

    `to_dict()` / `to_yaml()` are the front matter only, written by ``yaml.safe_dump`` (`CardData.to_yaml` uses
    ``yaml.dump``, which writes any Python object with a ``!!python/`` tag). `template_kwargs()` is what the
    template reads: every text in it made inert for Markdown (`md_escape`), so a label, dataset name or flag adds
    no HTML, link, heading or table cell. Not a dataclass, unlike SpanMarker's: `RepoCard` rebuilds a card's data as
    ``card_data_class(**front_matter)``, keys such as ``model-index`` included, so the constructor takes any key.
    A card parsed back from its README has the front matter only (its body fields are empty).

    Body fields: `dataset_label` (the data's name in the body), `encoder_name` (the base model as given: a Hub id or
    a local path), `encoder_type`, `entity_types`, `training_recipe` (the config's `_RECIPE_KEYS` it records),
    `model_settings` (`_MODEL_SETTINGS` keys), `results` (`result_splits`), `repo_id` / `revision` (the usage
    example), `space_id` (a demo Space), `training_stats` (`training_set_statistics`), `hyperparameters`, `epochs`
    (`epoch_results`), `curves` (the training-curves image), `versions` (`framework_versions`), `context_source`.
    """

    BODY_FIELDS = (
        "dataset_label",
        "encoder_name",
        "encoder_type",
        "entity_types",
        "training_recipe",
        "model_settings",
        "results",
        "repo_id",
        "revision",
        "space_id",
        "training_stats",
        "hyperparameters",
        "epochs",
        "curves",
        "versions",
        "context_source",
    )

    def __init__(
        self,
        *,
        dataset_label: str | None = None,
        encoder_name: str | None = None,
        encoder_type: str = "transformer",
        entity_types: Sequence[str] = (),
        training_recipe: Mapping[str, Any] | None = None,
        model_settings: Mapping[str, Any] | None = None,
        results: Sequence[tuple[str, dict]] = (),
        repo_id: str | None = None,
        revision: str | None = None,
        space_id: str | None = None,
        training_stats: Mapping[str, Any] | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        epochs: Sequence[Mapping[str, Any]] = (),
        curves: str | None = None,
        versions: Mapping[str, str] | None = None,
        context_source: str | None = None,
        **front_matter,
    ):
        """Raises ValueError when `curves` is not a relative image path in the model folder (letters, digits,
        ``_ . - /``, no ``..``) or `space_id` is not a Hub id: both reach the body unescaped, in a link."""
        if curves is not None and (not _CURVES_RE.fullmatch(str(curves)) or ".." in str(curves).split("/")):
            raise ValueError(f"curves {curves!r} is not a relative image path in the model folder")
        if space_id and not is_repo_id(space_id):
            raise ValueError(f"space_id {space_id!r} is not a Hub Space id (<owner>/<name>)")
        super().__init__(**front_matter)
        self.dataset_label, self.encoder_name, self.encoder_type = dataset_label, encoder_name, encoder_type
        self.entity_types = list(entity_types)
        self.training_recipe, self.model_settings = dict(training_recipe or {}), dict(model_settings or {})
        self.results, self.epochs = list(results), list(epochs)
        self.repo_id, self.revision, self.space_id, self.curves = repo_id, revision, space_id, curves
        self.training_stats, self.hyperparameters, self.versions = training_stats, hyperparameters, versions
        self.context_source = context_source

    def _to_dict(self, data_dict: dict) -> None:
        """The front matter: `ModelCardData`'s (``model-index`` from `eval_results`), without the body fields."""
        super()._to_dict(data_dict)
        for key in self.BODY_FIELDS:
            data_dict.pop(key, None)

    def to_yaml(self, line_break: str | None = None, original_order: list[str] | None = None) -> str:
        """The front matter (`to_dict()`) by ``yaml.safe_dump``: plain data only, quoted where YAML needs it; the keys
        of `original_order` first (a card parsed from a README keeps its order)."""
        data = self.to_dict()
        if original_order:
            data = {key: data[key] for key in [*original_order, *data] if key in data}
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, line_break=line_break).strip()

    def template_kwargs(self) -> dict[str, Any]:
        """The values `MODEL_CARD_TEMPLATE_PATH` reads: text escaped for Markdown (`md_escape`; table rows by `_row`,
        code by `_py_str`), flags and counts. None of them is named like a front-matter field, so the raw values
        that `ModelCard.from_template` also passes to the template are never what it reads."""
        recipe = SimpleNamespace(**self.training_recipe)  # read like the config: getattr with the same defaults
        views = getattr(recipe, "train_views", "both")
        model_name = str(self.model_name or "")
        placeholder = f"<org>/{model_name}"
        revision = self.revision or REVISION_PLACEHOLDER
        splits = [name for name, _ in self.results]
        widget = self.widget or []
        return {
            "title": md_escape(model_name),
            "dataset": md_escape(self.dataset_label) if self.dataset_label else None,
            "encoder_type": md_escape(self.encoder_type or "transformer"),
            "encoder_code": md_escape(self.encoder_name, code=True) if self.encoder_name else None,
            "entity_types": [md_escape(t, code=True) for t in self.entity_types],
            "tag_scheme": md_escape(self.model_settings.get("tag_scheme", "BIO")),
            "recipe": recipe_summary(recipe),  # prose; its only name from the config (an unknown loss) is escaped
            **self._results_kwargs(),
            "demo": {"name": md_escape(self.space_id), "url": f"https://huggingface.co/spaces/{self.space_id}"}
            if self.space_id
            else None,  # a Hub id (checked when set): only letters, digits, `-_./`
            # Python literals for the usage code; the placeholders stay as they are (push_to_hub replaces the revision)
            "repo_code": _py_str(self.repo_id)
            if self.repo_id and self.repo_id != placeholder
            else f'"<org>/{_py_str(model_name)[1:-1]}"',
            "revision_code": f'"{revision}"' if revision == REVISION_PLACEHOLDER else _py_str(revision),
            **self._training_kwargs(recipe),
            "with_context": bool(getattr(recipe, "trained_with_context", True)),
            "context_source": md_escape(self.context_source) if self.context_source else None,
            "widget_total": len(widget),
            "widget_right": sum(1 for w in widget if WIDGET_DIFFERS not in str(w.get("example_title", ""))),
            "widget_differs": md_escape(WIDGET_DIFFERS),
            "sentence_only": views == "sentence",
            "context_only": views == "context",
            "cooperative": (getattr(recipe, "cl_loss", None) or "none") != "none"
            and bool(getattr(recipe, "cl_weight", None)),
            "evaluated_splits": " and ".join(md_escape(s) for s in splits),
            "plural": "s" if len(splits) > 1 else "",
            "languages": [
                md_escape(lang)
                for lang in ([self.language] if isinstance(self.language, str) else list(self.language or []))
            ],
            "citation": CITATION,
        }

    def _results_kwargs(self) -> dict[str, Any]:
        """The "Results" section: one entry per evaluated split (validation, then test), its overall rows per view
        (with the surface-form F1 where the metrics hold it) and its per-type rows; scores in % when they are
        fractions. A type without gold entities is ``n/a``."""
        values = [
            v
            for _, by_view in self.results
            for view in by_view.values()
            for group in [view["overall"], *view["types"].values()]
            for k, v in group.items()
            if (k in METRICS or k == SURFACE_F1) and not math.isnan(v)
        ]
        scale = 100.0 if values and max(values) <= 1.0 else 1.0
        splits = []
        for split_name, by_view in self.results:
            views = [v for v in VIEWS if v in by_view]
            surface = any(SURFACE_F1 in by_view[v]["overall"] for v in views)  # WNUT-17's second measure
            types = sorted({t for view in by_view.values() for t in view["types"]})
            cells = [[c for v in views for c in _type_cells(by_view[v]["types"].get(t, {}), scale)] for t in types]
            splits.append(
                {
                    "title": md_escape(split_name[:1].upper() + split_name[1:]),
                    "name": md_escape(split_name),
                    "rows": [
                        _row(
                            VIEW_TITLES[v],
                            *(_pct(by_view[v]["overall"].get(m), scale) for m in METRICS),
                            *([_pct(by_view[v]["overall"].get(SURFACE_F1), scale)] if surface else []),
                        )
                        for v in views
                    ],
                    "surface": surface,
                    "type_head": " | ".join(
                        f"{VIEW_TITLES[v]} {m if m != 'f1' else 'F1'}" for v in views for m in METRICS
                    ),
                    "type_columns": len(views) * len(METRICS),
                    "type_rows": [_row(t, *row) for t, row in zip(types, cells)],
                    "na": any("n/a" in row for row in cells),
                }
            )
        return {"splits": splits, "unit": " (%)" if scale == 100.0 else ""}

    def _training_kwargs(self, recipe) -> dict[str, Any]:
        """The "Training" section's tables: the training set, hyper-parameters, the objective (when the config
        records a recipe), model settings, results per evaluation, framework versions; and the curves image."""
        stats = self.training_stats or {}
        n, statistics, entities = stats.get("sentences"), [], []
        if n:
            words, n_context = stats.get("words"), stats.get("with_context", 0)
            statistics = [_row("sentences", n), _row("with a context", f"{n_context} ({100.0 * n_context / n:.1f}%)")]
            if words:
                statistics.append(
                    _row("words per sentence (min / median / max)", f"{words[0]} / {words[1]} / {words[2]}")
                )
            if stats.get("unlabeled"):
                statistics.append(_row("unlabelled sentences (cooperative-learning loss only)", stats["unlabeled"]))
            entities = [_row(t, c) for t, c in (stats.get("entities") or {}).items()]
        settings = [(name, self.model_settings.get(key, default)) for key, (name, default) in _MODEL_SETTINGS.items()]
        epochs = []
        for r in self.epochs:
            epoch = r.get("epoch")
            epochs.append(
                _row(
                    _num(round(epoch, 2) if isinstance(epoch, float) else epoch),
                    _num(r.get("step")),
                    _num(r.get("training_loss")),
                    _num(r.get("validation_loss")),
                    _pct(r.get("sentence_f1"), 100.0),
                    _pct(r.get("context_f1"), 100.0),
                    _pct(r.get("f1"), 100.0),
                )
            )
        return {
            "statistics_rows": statistics,
            "entity_rows": entities,
            "hyperparameter_rows": [_row(k, v) for k, v in (self.hyperparameters or {}).items()],
            "objective_rows": [_row(k, v) for k, v in _objective_rows(recipe) if v is not None]
            if recipe_summary(recipe)
            else [],
            "setting_rows": [_row(k, v) for k, v in settings if v is not None],
            "epoch_rows": epochs,
            "curves": self.curves,  # a relative path of letters, digits and `_.-/` (checked when set)
            "version_rows": [_row(k, v) for k, v in (self.versions or {}).items()],
        }


class CLNERModelCard(ModelCard):
    """A `ModelCard` whose data is `CLNERModelCardData` (so its front matter is written by ``yaml.safe_dump``
    whenever the card is saved or printed), rendered from `MODEL_CARD_TEMPLATE_PATH`."""

    card_data_class = CLNERModelCardData

    @classmethod
    def from_template(
        cls,
        card_data: CLNERModelCardData,
        template_path: str | None = None,
        template_str: str | None = None,
        **template_kwargs,
    ):
        """`ModelCard.from_template` with `MODEL_CARD_TEMPLATE_PATH` unless a template is given, and the card data's
        escaped `template_kwargs()` (keyword arguments given here replace them)."""
        if template_path is None and template_str is None:
            template_str = MODEL_CARD_TEMPLATE_PATH.read_text(encoding="utf-8")
        return super().from_template(
            card_data, template_path, template_str, **{**card_data.template_kwargs(), **template_kwargs}
        )


def _eval_results(
    parsed: dict, dataset_label: str | None, dataset_type: str, dataset_config: str | None, split: str
) -> list[EvalResult]:
    """The ``model-index`` entries: precision / recall / F1 of both views on `split` (none without a dataset)."""
    if not dataset_label:
        return []
    return [
        EvalResult(
            task_type="token-classification",
            task_name="Named Entity Recognition",
            dataset_type=dataset_type,
            dataset_name=dataset_label,
            dataset_config=dataset_config,
            dataset_split=split,
            metric_type=metric,
            metric_value=round(value, 4),
            metric_config=view,
            metric_name=f"{metric.capitalize() if metric != 'f1' else 'F1'} ({VIEW_TITLES[view]})",
        )
        for view in VIEWS
        for metric in METRICS
        if (value := parsed.get(view, {}).get("overall", {}).get(metric)) is not None
    ]


def build_model_card(
    config,
    metrics: Mapping[str, Any],
    *,
    base_model: str | None,
    dataset_name: str | None = None,
    dataset_id: str | None = None,
    language: str | Sequence[str] | None = None,
    license: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    context_source: str | None = None,
    widget_examples: Sequence[Mapping[str, Any]] | None = None,
    model_name: str | None = None,
    repo_id: str | None = None,
    revision: str | None = None,
    dataset_config: str | None = None,
    dataset_split: str | None = None,
    metric_prefix: str = "eval",
    training_stats: Mapping[str, Any] | None = None,
    epochs: Sequence[Mapping[str, Any]] | None = None,
    versions: Mapping[str, str] | None = None,
    space_id: str | None = None,
    curves: str | None = None,
) -> ModelCard:
    """The Hub model card of a trained CLNER model: a `CLNERModelCard` (a `huggingface_hub.ModelCard`) rendered by
    ``ModelCard.from_template`` from the run's `CLNERModelCardData` and `MODEL_CARD_TEMPLATE_PATH`.

    Args:
        config: the model's `CLNERConfig` (labels, encoder, and the training recipe it records).
        metrics: the trainer's metrics (``eval_sentence_f1``, ``eval_context_person_f1``, ...); values are fractions.
        base_model: the encoder checkpoint fine-tuned (a Hub id; a local path is named in the body only).
        dataset_name / dataset_id: display name and Hub id of the training data (e.g. ``"WNUT-17"``, ``"wnut_17"``);
            the id fills the card's ``datasets:``. Neither: the card names no dataset.
        language / license: card metadata (e.g. ``"en"``, ``"apache-2.0"``); left out when not given.
        hyperparameters: training hyper-parameters to list (learning rate, epochs, batch size, seed, ...).
        context_source: where the external contexts came from (search engine, re-ranker, files).
        widget_examples: ``[{"text", "example_title", "output"}]``, e.g. from `choose_widget_examples`.
        model_name: the model-index name (default: the repo name, else ``clner-<dataset>``).
        repo_id: Hub id used in the usage example (default ``"<org>/<model_name>"``).
        revision: the commit to pin in the usage example; default `REVISION_PLACEHOLDER`, which `push_to_hub`
            replaces with the uploaded commit.
        dataset_config / dataset_split: model-index dataset details (split default: ``validation`` for ``eval_``
            metrics, else the metric prefix).
        metric_prefix: which metrics fill the model-index (``"eval"``, ``"predict"`` or ``"test"``). The body reports
            every split that `metrics` holds (`result_splits`): validation (``eval_``) and test (``predict_``).
        training_stats: `training_set_statistics` of the training split.
        epochs: per-evaluation results of the training run (`epoch_results`).
        versions: framework versions to list (default: `framework_versions()`).
        space_id: a Hub Space with a demo of the model, linked from the card.
        curves: the training-curves image to show, as a path relative to the card (``"training_curves.png"``,
            written by `clner.hub.plots.plot_training_curves`); letters, digits, ``_ . - /`` only, no ``..``.
    """
    labels = list(getattr(config, "labels", None) or [config.id2label[i] for i in range(len(config.id2label))])
    dataset_label = dataset_name or dataset_id
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else f"clner-{_slug(dataset_label or 'ner')}")
    split = dataset_split or ("validation" if metric_prefix == "eval" else metric_prefix)
    data = CLNERModelCardData(
        # the front matter
        language=None if language is None else [language] if isinstance(language, str) else list(language),
        license=license,
        library_name="transformers",
        tags=list(CARD_TAGS),
        datasets=[dataset_id] if dataset_id else None,
        metrics=list(METRICS),
        base_model=base_model if is_repo_id(base_model) else None,
        pipeline_tag="token-classification",
        model_name=model_name,
        eval_results=_eval_results(
            parse_view_metrics(metrics, metric_prefix),
            dataset_label,
            dataset_id or _slug(dataset_label or ""),
            dataset_config,
            split,
        )
        or None,
        widget=[dict(w) for w in widget_examples] if widget_examples else None,
        # the body: every split evaluated (validation and test), where the model-index has the one of metric_prefix
        dataset_label=dataset_label,
        encoder_name=base_model,
        encoder_type=getattr(getattr(config, "encoder", None), "model_type", None) or "transformer",
        entity_types=sorted({lab[2:] for lab in labels if len(lab) > 2 and lab[1] in "-_"}),
        training_recipe={key: getattr(config, key) for key in _RECIPE_KEYS if hasattr(config, key)},
        model_settings={key: getattr(config, key, default) for key, (_, default) in _MODEL_SETTINGS.items()},
        results=result_splits(metrics, metric_prefix, split),
        repo_id=repo_id,
        revision=revision,
        space_id=space_id,
        training_stats=training_stats,
        hyperparameters=hyperparameters,
        epochs=epochs or (),
        curves=curves,
        versions=framework_versions() if versions is None else versions,
        context_source=context_source,
    )
    return CLNERModelCard.from_template(data)


# -------------------------------------------------------------------------------------------------- widget
#: ends the title of a widget example whose (model-computed) output differs from the gold entities
WIDGET_DIFFERS = "(model output, not gold)"


def _gold_char_spans(tokens: Sequence[str], tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Gold entities of a row as `(type, start, end)` character spans of `" ".join(tokens)`."""
    starts, pos = [], 0
    for t in tokens:
        starts.append(pos)
        pos += len(t) + 1
    return {
        (etype, starts[i], starts[j - 1] + len(tokens[j - 1]))
        for etype, i, j in inference_clner.group_entities(list(tags))
    }


def choose_widget_examples(
    model,
    tokenizer,
    rows: Sequence[Mapping[str, Any]],
    k: int = 4,
    *,
    min_words: int = 5,
    max_words: int = 40,
    pipe=None,
    max_candidates: int = 512,
) -> list[dict]:
    """Pick `k` evaluation rows (dicts with `tokens`, `tags`, `context`) that together cover as many gold entity types
    as possible, preferring rows the model tags exactly right, with each one's widget `output` computed by the CLNER
    pipeline (sentence view, as the widget sends text only).

    The output is always the model's. A row whose output matches its gold entities is titled with its entity types;
    a row used only because too few are right gets the title suffix `WIDGET_DIFFERS`, so a wrong output is never
    shown as the answer. Greedy set cover within each group: each pick adds the most uncovered types, then has the
    most types, then is closest to 20 words; ties go to the earlier row. When too few rows with entities fit
    `min_words`..`max_words`, the others follow, then rows without entities. At most `max_candidates` rows with
    entities are run through the model.
    """
    rows = list(rows)
    if pipe is None:  # the inference core the pipeline runs (the widget's sentence view), without the pipeline

        def pipe(texts):
            return model.predict(list(texts), tokenizer, return_entities=True)

    candidates = []
    for i, row in enumerate(rows):
        tokens = [str(t) for t in row.get("tokens") or []]
        if not tokens:
            continue
        tags = list(row.get("tags") or [])
        types = {t for t, _, _ in inference_clner.group_entities(tags)}
        fits = min_words <= len(tokens) <= max_words
        candidates.append(
            {
                "i": i,
                "tokens": tokens,
                "types": types,
                "fits": fits,
                "text": " ".join(tokens),
                "gold": _gold_char_spans(tokens, tags) if tags else set(),
            }
        )
    with_entities = [c for c in candidates if c["types"] and c["fits"]] or [c for c in candidates if c["types"]]
    with_entities = with_entities[:max_candidates]
    outputs = pipe([c["text"] for c in with_entities]) if with_entities else []
    for c, entities in zip(with_entities, outputs):
        c["output"] = entities
        c["right"] = {(e["entity_group"], e["start"], e["end"]) for e in entities} == c["gold"]

    chosen: list[dict] = []
    for pool in ([c for c in with_entities if c["right"]], [c for c in with_entities if not c["right"]]):
        covered = set().union(*(c["types"] for c in chosen)) if chosen else set()
        while pool and len(chosen) < k:
            best = max(
                pool, key=lambda c: (len(c["types"] - covered), len(c["types"]), -abs(len(c["tokens"]) - 20), -c["i"])
            )
            chosen.append(best)
            covered |= best["types"]
            pool = [c for c in pool if c["i"] != best["i"]]
    if len(chosen) < k:  # too few: rows with entities that do not fit, then rows without entities
        taken = {c["i"] for c in chosen}
        rest = sorted(
            (c for c in candidates if c["i"] not in taken), key=lambda c: (not c["types"], not c["fits"], c["i"])
        )[: k - len(chosen)]
        for c, entities in zip(rest, pipe([c["text"] for c in rest]) if rest else []):
            c["output"] = entities
            c["right"] = {(e["entity_group"], e["start"], e["end"]) for e in entities} == c["gold"]
        chosen += rest
    examples = []
    for c in chosen:
        title = ", ".join(sorted(c["types"])) if c["types"] else "no entities"
        examples.append(
            {
                "text": c["text"],
                "example_title": title if c["right"] else f"{title} {WIDGET_DIFFERS}",
                "output": [
                    {
                        "entity_group": e["entity_group"],
                        "word": e["word"],
                        "start": e["start"],
                        "end": e["end"],
                        "score": round(float(e["score"]), 4),
                    }
                    for e in c["output"]
                ],
            }
        )
    return examples
