"""Publishing a CLNER model on the Hugging Face Hub: the model card, the upload folder and the upload.

* `build_model_card(config, metrics, base_model=...)`: a `huggingface_hub.ModelCard` whose YAML carries the language,
  license, tags, datasets, metrics, base model, ``pipeline_tag: token-classification``, a ``widget`` with precomputed
  ``output`` examples, and a ``model-index`` with precision / recall / F1 of **both views** (sentence alone, and with
  its retrieved context); the body has the results (overall and per entity type), usage with
  ``trust_remote_code=True`` and a pinned revision, the training and cooperative-learning settings, where the contexts
  came from, and the citation of the paper.
* `choose_widget_examples(model, tokenizer, rows, k)`: evaluation rows covering varied entity types, with the
  pipeline's output for each.
* `save_for_hub(model, tokenizer, output_dir, card)`: the complete folder that is uploaded: ``model.safetensors`` (no
  pickle), ``config.json`` with ``auto_map`` and ``custom_pipelines``, the remote code (``modeling_clner.py``,
  ``pipeline_clner.py``), the tokenizer and ``README.md``.
* `push_to_hub(folder, repo_id, ...)`: ``HfApi.create_repo`` + ``upload_folder`` (never a pickle, checkpoint or log
  file), then pins the card's usage example to the uploaded commit.

Metric keys are the trainer's: ``eval_sentence_precision`` / ``_recall`` / ``_f1``, ``eval_context_...``, and per
entity type ``eval_{view}_{TYPE}_{precision|recall|f1|number}`` (e.g. ``eval_context_person_f1``).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

import pipeline_clner

logger = logging.getLogger(__name__)

__all__ = [
    "CARD_TAGS",
    "CITATION",
    "HUB_IGNORE_PATTERNS",
    "REVISION_PLACEHOLDER",
    "build_model_card",
    "check_hub_folder",
    "choose_widget_examples",
    "hub_files",
    "parse_view_metrics",
    "push_to_hub",
    "save_for_hub",
]

CARD_TAGS = ["clner", "ner", "crf", "token-classification"]
VIEWS = ("context", "sentence")
VIEW_TITLES = {"context": "with context", "sentence": "sentence only"}
METRICS = ("precision", "recall", "f1")
#: Stands for the commit sha in the card's usage example until `push_to_hub` knows it.
REVISION_PLACEHOLDER = "<commit-sha>"
#: Never uploaded: pickles (torch/TF/flax/sklearn/Trainer state), checkpoints, logs, caches.
HUB_IGNORE_PATTERNS = [
    "*.bin", "*.pt", "*.pth", "*.pkl", "*.pickle", "*.ckpt", "*.h5", "*.msgpack", "*.joblib", "*.npy", "*.npz",
    "checkpoint-*", "runs/*", "*/runs/*", "__pycache__/*", "*/__pycache__/*", "*.pyc", ".*", "*/.*",
    "trainer_state.json", "training_args.*", "optimizer.*", "scheduler.*", "rng_state*",
    "run_config.json", "predictions_*",  # the run's arguments (may hold a --token) and predicted data
]
#: Weight files that a previous save may have left; removed by `save_for_hub` (they would be stale).
STALE_WEIGHT_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack",
                         "model.ckpt*"]
_REQUIRED = ["config.json", "modeling_clner.py", "pipeline_clner.py", "README.md", "tokenizer_config.json"]

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

_METRIC_RE = re.compile(r"^(?P<prefix>[a-z]+)_(?P<view>sentence|context)_(?:(?P<type>.+)_)?"
                        r"(?P<metric>precision|recall|f1|number|accuracy)$")
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


# ------------------------------------------------------------------------------------------------------ metrics
def parse_view_metrics(metrics: Mapping[str, Any], prefix: str = "eval") -> dict:
    """``{"sentence": {"overall": {"f1": ...}, "types": {"person": {"f1": ...}}}, "context": {...}}`` from the
    trainer's flat metric keys; views without any metric are left out."""
    out: dict = {}
    for key, value in metrics.items():
        m = _METRIC_RE.match(key)
        if not m or m.group("prefix") != prefix or value is None:
            continue
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isnan(value):
            continue
        view = out.setdefault(m.group("view"), {"overall": {}, "types": {}})
        if m.group("type") in (None, "overall"):
            view["overall"][m.group("metric")] = value
        else:
            view["types"].setdefault(m.group("type"), {})[m.group("metric")] = value
    return out


def _pct(value: Optional[float], scale: float) -> str:
    return "–" if value is None else f"{value * scale:.2f}"


def _weights(config) -> Optional[str]:
    """The recorded loss weights as `1 / 0.5 / 0.5`, or None when the config predates them."""
    values = [getattr(config, k, None) for k in ("nll_weight", "nll_ext_weight", "cl_weight")]
    return None if any(v is None for v in values) else " / ".join(f"{v:g}" for v in values)


def _is_repo_id(name: Optional[str]) -> bool:
    return bool(name) and not os.path.isabs(str(name)) and not os.path.exists(str(name)) and bool(
        _REPO_ID_RE.match(str(name)))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "dataset"


# --------------------------------------------------------------------------------------------------------- card
def build_model_card(
    config,
    metrics: Mapping[str, Any],
    *,
    base_model: Optional[str],
    dataset_name: Optional[str] = None,
    dataset_id: Optional[str] = None,
    language: str | Sequence[str] = "en",
    license: str = "apache-2.0",
    hyperparameters: Optional[Mapping[str, Any]] = None,
    context_source: Optional[str] = None,
    widget_examples: Optional[Sequence[Mapping[str, Any]]] = None,
    model_name: Optional[str] = None,
    repo_id: Optional[str] = None,
    revision: Optional[str] = None,
    dataset_config: Optional[str] = None,
    dataset_split: Optional[str] = None,
    metric_prefix: str = "eval",
) -> ModelCard:
    """The Hub model card of a trained CLNER model.

    Args:
        config: the model's `CLNERConfig` (labels, encoder, CL settings are read from it).
        metrics: the trainer's metrics (``eval_sentence_f1``, ``eval_context_person_f1``, ...); values are fractions.
        base_model: the encoder checkpoint fine-tuned (a Hub id; a local path is named in the body only).
        dataset_name / dataset_id: display name and Hub id of the training data (e.g. ``"WNUT-17"``, ``"wnut_17"``).
        language / license: card metadata.
        hyperparameters: training hyper-parameters to list (learning rate, epochs, batch size, seed, ...).
        context_source: where the external contexts came from (search engine, re-ranker, files).
        widget_examples: ``[{"text", "example_title", "output"}]``, e.g. from `choose_widget_examples`.
        model_name: the model-index name (default: the repo name, else ``clner-<dataset>``).
        repo_id: Hub id used in the usage example (default ``"<org>/<model_name>"``).
        revision: the commit to pin in the usage example; default `REVISION_PLACEHOLDER`, which `push_to_hub`
            replaces with the uploaded commit.
        dataset_config / dataset_split: model-index dataset details (split default: ``validation`` for ``eval_``
            metrics, else the metric prefix).
        metric_prefix: which metrics to report (``"eval"`` or ``"test"``).
    """
    parsed = parse_view_metrics(metrics, metric_prefix)
    labels = list(getattr(config, "labels", None) or [config.id2label[i] for i in range(len(config.id2label))])
    entity_types = sorted({lab[2:] for lab in labels if len(lab) > 2 and lab[1] in "-_"})
    dataset_label = dataset_name or dataset_id
    model_name = model_name or (repo_id.split("/")[-1] if repo_id else f"clner-{_slug(dataset_label or 'ner')}")
    repo_id = repo_id or f"<org>/{model_name}"
    split = dataset_split or ("validation" if metric_prefix == "eval" else metric_prefix)
    encoder = getattr(config, "encoder", None)
    encoder_type = getattr(encoder, "model_type", None) or "transformer"

    eval_results = []
    if dataset_label:
        for view in VIEWS:
            for metric in METRICS:
                value = parsed.get(view, {}).get("overall", {}).get(metric)
                if value is None:
                    continue
                eval_results.append(EvalResult(
                    task_type="token-classification", task_name="Named Entity Recognition",
                    dataset_type=dataset_id or _slug(dataset_label), dataset_name=dataset_label,
                    dataset_config=dataset_config, dataset_split=split,
                    metric_type=metric, metric_value=round(value, 4), metric_config=view,
                    metric_name=f"{metric.capitalize() if metric != 'f1' else 'F1'} ({VIEW_TITLES[view]})",
                ))
    data = ModelCardData(
        language=[language] if isinstance(language, str) else list(language),
        license=license,
        library_name="transformers",
        tags=list(CARD_TAGS),
        datasets=[dataset_id] if dataset_id else None,
        metrics=list(METRICS),
        base_model=base_model if _is_repo_id(base_model) else None,
        pipeline_tag="token-classification",
        model_name=model_name,
        eval_results=eval_results or None,
        widget=[dict(w) for w in widget_examples] if widget_examples else None,
    )

    values = [v for view in parsed.values() for group in [view["overall"], *view["types"].values()]
              for k, v in group.items() if k in METRICS]
    scale = 100.0 if values and max(values) <= 1.0 else 1.0
    lines = [f"# {model_name}", ""]
    lines += [
        (f"A named-entity recogniser trained with **CLNER** (Wang et al., ACL 2021): a {encoder_type} encoder"
         f"{f' (`{base_model}`)' if base_model else ''} with a linear-chain CRF over words, trained"
         f"{f' on {dataset_label}' if dataset_label else ''} on two views of each sentence, the sentence alone and "
         "`[sentence ; SEP ; retrieved context]`, with a cooperative-learning loss that pulls the sentence-only view "
         "towards the context view. It tags "
         f"{', '.join(f'`{t}`' for t in entity_types) or 'the labels in `config.json`'} "
         f"({getattr(config, 'tag_scheme', 'BIO')})."),
        "",
        "## Results",
        "",
    ]
    if parsed:
        unit = " (%)" if scale == 100.0 else ""
        lines += [f"{dataset_label or 'Evaluation'} {split} set, entity-level (seqeval){unit}:", "",
                  "| view | precision | recall | F1 |", "| --- | --- | --- | --- |"]
        for view in VIEWS:
            if view in parsed:
                o = parsed[view]["overall"]
                lines.append(f"| {VIEW_TITLES[view]} | {_pct(o.get('precision'), scale)} | "
                             f"{_pct(o.get('recall'), scale)} | {_pct(o.get('f1'), scale)} |")
        types = sorted({t for view in parsed.values() for t in view["types"]})
        if types:
            views = [v for v in VIEWS if v in parsed]
            head = " | ".join(f"{VIEW_TITLES[v]} {m if m != 'f1' else 'F1'}" for v in views for m in METRICS)
            lines += ["", "### Per entity type", "", f"| type | {head} |",
                      "| --- |" + " --- |" * (len(views) * len(METRICS))]
            for t in types:
                cells = [_pct(parsed[v]["types"].get(t, {}).get(m), scale) for v in views for m in METRICS]
                lines.append(f"| {t} | " + " | ".join(cells) + " |")
    else:
        lines.append("No evaluation results were recorded for this model.")
    rev = revision or REVISION_PLACEHOLDER
    lines += [
        "",
        "## Usage",
        "",
        ("The model and its pipeline are custom code (`modeling_clner.py`, `pipeline_clner.py` in this repository): "
         "read them, then load with `trust_remote_code=True` and pin `revision` to the commit you reviewed. Only "
         "safetensors weights are read."),
        "",
        "```python",
        "from transformers import pipeline",
        "",
        f'ner = pipeline(model="{repo_id}", revision="{rev}", trust_remote_code=True)',
        'ner("Justin Bieber lands in Paris tonight")  # sentence view',
        'ner("Justin Bieber lands in Paris tonight",  # context view: snippets about the sentence',
        '    context=["Justin Bieber is a Canadian singer ...", "Paris is the capital of France ..."])',
        'ner(["Justin", "Bieber", "lands"], is_split_into_words=True)  # pre-tokenized words',
        "ner(texts, batch_size=16)  # a batch",
        "# live retrieval: any search function fn(query, k) -> list[str], or a retrieval_clner.ContextRetriever",
        'ner("Justin Bieber lands in Paris tonight", retrieve=True, retriever=my_search)',
        "```",
        "",
        ("Each entity has `entity_group`, `word`, `start` / `end` (character offsets), `score` (the mean CRF "
         "marginal of its words' Viterbi tags), and `context_used` (plus a `note` when the sentence view was used). "
         "Labels come from Viterbi decoding, so they always form valid spans."),
        "",
        "```python",
        "from transformers import AutoModelForTokenClassification, AutoTokenizer",
        "",
        f'model = AutoModelForTokenClassification.from_pretrained("{repo_id}", revision="{rev}",',
        "                                                        trust_remote_code=True, use_safetensors=True)",
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", revision="{rev}", trust_remote_code=True)',
        'model.predict([["Justin", "Bieber", "lands", "in", "Paris"]], tokenizer,',
        '              contexts=[["Justin Bieber is a Canadian singer ..."]])  # -> [["B-person", "I-person", ...]]',
        "```",
        "",
        "## Training",
        "",
    ]
    if hyperparameters:
        lines += ["| hyper-parameter | value |", "| --- | --- |"]
        lines += [f"| {k} | {v} |" for k, v in hyperparameters.items()]
        lines.append("")
    cl = [
        ("views trained", getattr(config, "train_views", "both")),
        ("trained with contexts", getattr(config, "trained_with_context", True)),
        ("cooperative-learning loss", getattr(config, "cl_loss", "kl")),
        ("CL-KL temperature", getattr(config, "cl_temperature", None) if getattr(config, "cl_loss", "kl") == "kl"
         else None),
        ("loss weights L_NLL / L_NLL-EXT / L_CL", _weights(config)),
        ("tag scheme", getattr(config, "tag_scheme", "BIO")),
        ("CRF scheme constraints", getattr(config, "crf_constraints", True)),
        ("max sub-tokens per view", getattr(config, "max_seq_length", None)),
        ("window stride (long sentences)", getattr(config, "window_stride", None)),
    ]
    lines += ["Cooperative-learning and model settings (from `config.json`):", "", "| setting | value |",
              "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in cl if v is not None]
    lines += [
        "",
        "## Contexts",
        "",
        f"{context_source or 'The source of the training contexts was not recorded.'}",
        "",
        ("At inference, pass the context of each sentence as a list of snippet strings, best first; they are joined "
         "with the tokenizer's separator and cut to fit after the sentence. Without a context the model runs on the "
         "sentence alone (the view the cooperative-learning loss trains for)."),
        "",
    ]
    if widget_examples:
        lines += [("The widget examples come from the evaluation set; their outputs were computed with the "
                   "sentence view (the widget sends text only)."), ""]
    lines += [
        "## Citation",
        "",
        ("Xinyu Wang, Yong Jiang, Nguyen Bach, Tao Wang, Zhongqiang Huang, Fei Huang, Kewei Tu. *Improving Named "
         "Entity Recognition by External Context Retrieving and Cooperative Learning*. ACL-IJCNLP 2021."),
        "",
        "```bibtex",
        CITATION,
        "```",
        "",
    ]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)
    return ModelCard(content)


# -------------------------------------------------------------------------------------------------- widget
def choose_widget_examples(model, tokenizer, rows: Sequence[Mapping[str, Any]], k: int = 4, *,
                           min_words: int = 5, max_words: int = 40, pipe=None) -> list[dict]:
    """Pick `k` evaluation rows (dicts with `tokens`, `tags`, `context`) that together cover as many gold entity types
    as possible, and compute each one's widget `output` with the CLNER pipeline (sentence view, as the widget sends
    text only).

    Greedy set cover: each pick adds the most uncovered types, then has the most types, then is closest to 20 words;
    ties go to the earlier row. Rows without entities are used only when too few rows have any.
    """
    rows = list(rows)
    if pipe is None:
        pipe = pipeline_clner.CLNERTokenClassificationPipeline(model=model, tokenizer=tokenizer,
                                                              task=pipeline_clner.TASK, device=model.device)
    candidates = []
    for i, row in enumerate(rows):
        tokens = [str(t) for t in row.get("tokens") or []]
        if not tokens:
            continue
        types = {t for t, _, _ in pipeline_clner.group_entities(list(row.get("tags") or []))}
        fits = min_words <= len(tokens) <= max_words
        candidates.append((i, tokens, types, fits))
    pool = [c for c in candidates if c[2] and c[3]] or [c for c in candidates if c[2]]
    chosen, covered = [], set()
    while pool and len(chosen) < k:
        best = max(pool, key=lambda c: (len(c[2] - covered), len(c[2]), -abs(len(c[1]) - 20), -c[0]))
        chosen.append(best)
        covered |= best[2]
        pool = [c for c in pool if c[0] != best[0]]
    if len(chosen) < k:  # not enough rows with entities
        rest = [c for c in candidates if c[0] not in {x[0] for x in chosen}]
        rest.sort(key=lambda c: (not c[2], not c[3], c[0]))  # rows with entities first, then rows that fit
        chosen += rest[: k - len(chosen)]
    examples = []
    texts = [" ".join(c[1]) for c in chosen]
    outputs = pipe(texts) if texts else []
    for (_, _, types, _), text, entities in zip(chosen, texts, outputs):
        examples.append({
            "text": text,
            "example_title": ", ".join(sorted(types)) if types else "no entities",
            "output": [{"entity_group": e["entity_group"], "word": e["word"], "start": e["start"], "end": e["end"],
                        "score": round(float(e["score"]), 4)} for e in entities],
        })
    return examples


# ------------------------------------------------------------------------------------------------- the folder
def hub_files(folder: str | os.PathLike, ignore_patterns: Optional[Sequence[str]] = None) -> list[str]:
    """The files of `folder` that `push_to_hub` uploads (relative POSIX paths, sorted): everything but
    `HUB_IGNORE_PATTERNS` (and `.git`)."""
    folder = Path(folder)
    rel = sorted(p.relative_to(folder).as_posix() for p in folder.glob("**/*") if p.is_file())
    patterns = list(HUB_IGNORE_PATTERNS if ignore_patterns is None else ignore_patterns) + DEFAULT_IGNORE_PATTERNS
    return list(filter_repo_objects(rel, ignore_patterns=patterns))


def check_hub_folder(folder: str | os.PathLike) -> list[str]:
    """Check that `folder` is a complete, pickle-free CLNER Hub folder; returns the files to upload.

    Raises ValueError naming every problem: a missing file (config, safetensors weights, remote code, tokenizer,
    README), `auto_map` / `custom_pipelines` entries missing from the config, a card whose YAML does not parse.
    """
    folder = Path(folder)
    files = hub_files(folder)
    problems = [f"missing {name}" for name in _REQUIRED if name not in files]
    if not any(f in files for f in ("model.safetensors", "model.safetensors.index.json")):
        problems.append("missing model.safetensors (weights must be safetensors)")
    if not any(f in files for f in ("tokenizer.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model",
                                    "spiece.model", "tokenizer.model")):
        problems.append("missing tokenizer files")
    if "config.json" in files:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        auto_map = cfg.get("auto_map") or {}
        for auto in ("AutoConfig", "AutoModel", "AutoModelForTokenClassification"):
            if not str(auto_map.get(auto, "")).startswith("modeling_clner."):
                problems.append(f"config.json auto_map lacks {auto} -> modeling_clner.*")
        task = pipeline_clner.PIPELINE_TASK
        published = cfg.get("custom_pipelines") or {}
        if published.get(task, {}).get("impl") != pipeline_clner.custom_pipelines_config()[task]["impl"]:
            problems.append(f"config.json custom_pipelines lacks {task!r}")
        elif len(published) != 1:  # a task-less pipeline(model=repo) call refuses a config with several
            problems.append(f"config.json custom_pipelines lists {sorted(published)}; only {task!r} may be listed")
    if "README.md" in files:
        try:
            ModelCard.load(folder / "README.md")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"README.md does not parse: {exc}")
    if problems:
        raise ValueError(f"{folder} is not ready for the Hub: " + "; ".join(problems))
    return files


def _source_file(module) -> Path:
    return Path(inspect.getsourcefile(module) or module.__file__)


def save_for_hub(model, tokenizer, output_dir: str | os.PathLike, card: Optional[ModelCard] = None) -> Path:
    """Write the complete folder to upload: safetensors weights, config (with `auto_map` and `custom_pipelines`),
    `modeling_clner.py` + `pipeline_clner.py`, the tokenizer and `README.md` (`card`, or a minimal card without
    results). Stale pickle weight files of an earlier save in `output_dir` are removed; other files are left alone
    (and `push_to_hub` does not upload pickles, checkpoints or logs). Returns the folder, checked by
    `check_hub_folder`."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for pattern in STALE_WEIGHT_PATTERNS:
        for stale in out.glob(pattern):
            logger.warning("save_for_hub: removing stale weights %s (only safetensors are published)", stale)
            stale.unlink()
    model.config.custom_pipelines = pipeline_clner.custom_pipelines_config()
    model.save_pretrained(out)
    # the remote code: the model's own file (written by save_pretrained) and the pipeline, importing it relatively
    if not (out / "modeling_clner.py").exists():
        modeling = sys.modules.get(type(model).__module__)
        source = _source_file(modeling) if modeling is not None else Path(__file__).with_name("modeling_clner.py")
        shutil.copyfile(source, out / "modeling_clner.py")
    shutil.copyfile(_source_file(pipeline_clner), out / "pipeline_clner.py")
    tokenizer.save_pretrained(out)
    if card is None:
        name = getattr(model.config, "_name_or_path", None) or getattr(model.config, "name_or_path", None)
        card = build_model_card(model.config, {}, base_model=name if _is_repo_id(name) else None)
    card.save(out / "README.md")
    check_hub_folder(out)
    return out


# ------------------------------------------------------------------------------------------------------- push
def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    revision: Optional[str] = None,
    private: Optional[bool] = None,
    token: Optional[str | bool] = None,
    commit_message: Optional[str] = None,
    create_pr: bool = False,
    *,
    pin_revision: bool = True,
    api: Optional[HfApi] = None,
):
    """Upload a folder written by `save_for_hub` to the model repository `repo_id`.

    Creates the repository when needed (`private` applies then), the branch `revision` when given, uploads every
    file but `HUB_IGNORE_PATTERNS` (no pickles, checkpoints or logs) in one `upload_folder` call, and - with
    `pin_revision` - replaces `REVISION_PLACEHOLDER` in the card's usage example by the uploaded commit (a second,
    README-only commit; the local README is updated too). `create_pr=True` opens a pull request against the default
    branch instead (it cannot be combined with `revision`). Returns the `CommitInfo` of the upload.
    """
    folder = Path(folder)
    files = check_hub_folder(folder)
    if isinstance(token, str) and len(token) >= 8:
        leaks = [f for f in files if (folder / f).stat().st_size < 10_000_000
                 and token.encode() in (folder / f).read_bytes()]
        if leaks:
            raise ValueError(f"refusing to upload: the Hub token appears in {leaks}")
    if create_pr and revision not in (None, "main"):
        raise ValueError("create_pr=True opens a pull request against the default branch; do not set revision too")
    api = api or HfApi(token=token)
    url = api.create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model")
    repo_id = getattr(url, "repo_id", None) or repo_id
    if revision and revision != "main" and not create_pr:
        api.create_branch(repo_id, branch=revision, token=token, exist_ok=True, repo_type="model")
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        commit_message=commit_message or "Upload CLNER model (weights, remote code, tokenizer, model card)",
        token=token,
        repo_type="model",
        revision=None if create_pr else revision,
        create_pr=create_pr,
        ignore_patterns=list(HUB_IGNORE_PATTERNS),
    )
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8")
    oid = getattr(info, "oid", None)
    if pin_revision and oid and REVISION_PLACEHOLDER in text:
        text = text.replace(REVISION_PLACEHOLDER, oid)
        readme.write_text(text, encoding="utf-8")
        api.upload_file(
            path_or_fileobj=text.encode("utf-8"),
            path_in_repo="README.md",
            repo_id=repo_id,
            token=token,
            repo_type="model",
            revision=getattr(info, "pr_revision", None) if create_pr else revision,
            commit_message=f"Pin the model card's usage example to revision {oid[:10]}",
        )
    return info


# ----------------------------------------------------------------------------------------- from run_ner_cl.py
_PACKAGED_MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
_HYPERPARAMETERS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                    "gradient_accumulation_steps", "weight_decay", "warmup_steps", "lr_scheduler_type", "optim",
                    "seed", "fp16", "bf16")


def _rows_with_tag_names(dataset) -> list[dict]:
    """Rows of a `datasets.Dataset` (or a list of dicts) with `tags` as label names."""
    names = None
    features = getattr(dataset, "features", None)
    if features is not None and "tags" in features:
        names = getattr(getattr(features["tags"], "feature", None), "names", None)
    rows = []
    for row in dataset:
        row = dict(row)
        if names and row.get("tags") and not isinstance(row["tags"][0], str):
            row["tags"] = [names[int(t)] for t in row["tags"]]
        rows.append(row)
    return rows


def publish_from_run(trainer, model, tokenizer, metrics, model_args, data_args, cl_args, training_args, raw, *,
                     push: Optional[bool] = None, widget_rows: int = 2000):
    """What `run_ner_cl.py` calls after training: writes the Hub folder (`save_for_hub`) with a full model card into
    `training_args.output_dir`, and uploads it with `push_to_hub` when `push` (default: `training_args.push_to_hub`),
    using `hub_model_id`, `hub_revision`, `hub_private_repo` and `hub_token`. Returns the `CommitInfo` or None.

    Widget examples come from the first `widget_rows` rows of `raw["validation"]` (when present)."""
    push = bool(getattr(training_args, "push_to_hub", False)) if push is None else push
    out = Path(training_args.output_dir)
    base = getattr(model_args, "model_name_or_path", None) or _PACKAGED_MINILM_ID
    dataset_id = getattr(data_args, "dataset_name", None)
    dataset_name = dataset_id
    if dataset_name is None:
        first = next((getattr(data_args, f, None) for f in ("train_file", "validation_file", "test_file")
                      if getattr(data_args, f, None)), None)
        dataset_name = Path(first).resolve().parent.name if first else None
    hyper = {k: getattr(training_args, k) for k in _HYPERPARAMETERS if getattr(training_args, k, None) not in
             (None, False, 0, -1) or k == "seed"}
    hyper = {k: getattr(v, "value", v) for k, v in hyper.items()}  # enums (scheduler, optimizer) by their value
    try:
        hyper.update({f"cl.{k}": v for k, v in vars(cl_args).items()})
    except TypeError:
        pass
    widget = None
    if raw is not None and "validation" in raw:
        try:
            rows = _rows_with_tag_names(raw["validation"].select(range(min(widget_rows, len(raw["validation"])))))
            widget = choose_widget_examples(model, tokenizer, rows, k=4)
        except Exception as exc:  # noqa: BLE001 - the card is still useful without a widget
            logger.warning("no widget examples: %s", exc)
    repo_id = getattr(training_args, "hub_model_id", None) or (out.name if push else None)
    prefix = "eval" if any(k.startswith("eval_") for k in metrics) else "predict"
    card = build_model_card(model.config, metrics, base_model=base, dataset_name=dataset_name, dataset_id=dataset_id,
                            dataset_config=getattr(data_args, "dataset_config_name", None),
                            hyperparameters=hyper, context_source=getattr(data_args, "context_source", None),
                            widget_examples=widget, repo_id=repo_id, model_name=None if repo_id else out.name,
                            metric_prefix=prefix, dataset_split="validation" if prefix == "eval" else "test")
    save_for_hub(model, tokenizer, out, card)
    if not push:
        return None
    return push_to_hub(out, repo_id, revision=getattr(training_args, "hub_revision", None),
                       private=getattr(training_args, "hub_private_repo", None),
                       token=getattr(training_args, "hub_token", None),
                       commit_message="CLNER model trained with run_ner_cl.py")
