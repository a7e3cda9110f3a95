#!/usr/bin/env python
"""Fine-tune a CLNER model (encoder + CRF) with cooperative learning between the sentence and context views.

Shaped like transformers' `examples/pytorch/token-classification/run_ner.py`, plus the CL flags:

    accelerate launch run_ner_cl.py --model_name_or_path xlm-roberta-large \\
        --train_file train.context.txt --validation_file dev.context.txt \\
        --cl_loss kl --do_train --do_eval --output_dir out

    python run_ner_cl.py examples/quickstart.json     # arguments from a JSON or YAML file

Data: a Hub dataset (`--dataset_name`) or local files: CoNLL columns, the official CLNER context format, or
JSON/JSONL/parquet with `tokens`, tags and an optional `context` column.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import datasets
import torch
import transformers
from transformers import AutoConfig, AutoTokenizer, TrainingArguments, set_seed
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from clner.arguments import CLArguments, DataTrainingArguments, ModelArguments, packaged_minilm, parse_args
from clner.cli import as_user_error, check_model_path, run_cli
from clner.data.io import load_ner_dataset
from clner.data.preprocess import (
    CLNERDataCollator,
    check_labels,
    check_longest_word,
    get_label_list,
    preprocess_dataset,
)
from clner.data.schemes import model_tag_scheme, tags_to_scheme
from clner.errors import CLNERUsageError, HubError, TrainingDivergedError
from clner.files import atomic_open
from clner.hardware import bf16_cpu_warning
from clner.hub.publish import publish_from_run
from clner.hub.upload import prepare_hub_repo
from clner.metrics import per_type_metric
from clner.run_utils import (
    CompactPrinterCallback,
    CompactProgressCallback,
    SaveRunSettings,
    StopOnSigterm,
    check_output_dir,
    check_resume_labels,
    check_resume_settings,
    output_dir_lock,
    redact_credentials,
    resolve_checkpoint,
    run_settings,
    run_summary,
    save_model_safely,
)
from crf_clner import check_label_scheme
from modeling_clner import (
    CLNERConfig,
    CLNERForTokenClassification,
    check_max_seq_length,
    check_window_stride,
    default_max_seq_length,
)
from trainer_clner import CLNERTrainer, check_training_arguments

logger = logging.getLogger(__name__)


def load_raw(
    data_args: DataTrainingArguments,
    training_args: TrainingArguments,
    tag_scheme: str = "BIO",
    check_transitions: bool = True,
):
    files = {
        split: path
        for split, path in (
            ("train", data_args.train_file),
            ("validation", data_args.validation_file),
            ("test", data_args.test_file),
            ("unlabeled", data_args.unlabeled_file),
        )
        if path
    }
    if data_args.dataset_name is None and not files:
        raise CLNERUsageError("give --dataset_name or at least one of --train_file/--validation_file/--test_file")
    raw = load_ner_dataset(
        files or None,
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        tag_column=data_args.label_column_name,
        token_column=data_args.token_column_name,
        context_column=data_args.context_column_name,
        format=data_args.file_format,
        label_names=data_args.tag_names,
        tag_scheme=tag_scheme,
        check_transitions=check_transitions,
    )
    return raw


def truncate(raw, data_args: DataTrainingArguments) -> None:
    """--max_{train,eval,predict}_samples, applied after the label set is read from the full training split."""
    for split, limit in (
        ("train", data_args.max_train_samples),
        ("validation", data_args.max_eval_samples),
        ("test", data_args.max_predict_samples),
    ):
        if limit is not None and split in raw:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))


def write_predictions(path: Path, rows, predictions: list[list[str]], tag_scheme: str | None = None) -> None:
    """CoNLL: token, gold tag, predicted tag; a blank line between sentences. Tags are written in the data's
    `tag_scheme` (IOB1 / IO data was converted to BIO on reading)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        for row, pred in zip(rows, predictions):
            gold = row.get("tags") or ["O"] * len(row["tokens"])
            gold, pred = tags_to_scheme(gold, tag_scheme), tags_to_scheme(pred, tag_scheme)
            for token, g, p in zip(row["tokens"], gold, pred):
                f.write(f"{token}\t{g}\t{p}\n")
            f.write("\n")


def write_run_ner_predictions(path: Path, predictions: list[list[str]], tag_scheme: str | None = None) -> None:
    """run_ner.py's `predictions.txt`: one line per sentence, its predicted tags (in the data's `tag_scheme`)
    separated by spaces."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        for pred in predictions:
            f.write(" ".join(tags_to_scheme(pred, tag_scheme)) + "\n")


def check_arguments(
    model_args: ModelArguments, data_args: DataTrainingArguments, training_args: TrainingArguments
) -> None:
    """run_ner.py's no-op flags, and argument combinations that cannot work (before anything loads)."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise CLNERUsageError(
            "nothing to do: give --do_train, --do_eval and/or --do_predict (with their data files: --train_file, "
            "--validation_file, --test_file)"
        )
    if data_args.label_all_tokens:
        logger.warning(
            "--label_all_tokens has no effect: the CRF labels each word (at its first sub-token) and "
            "never labels sub-tokens"
        )
    if training_args.push_to_hub and not training_args.do_train:
        raise CLNERUsageError(
            "--push_to_hub needs --do_train: an evaluation or prediction run writes only results "
            "and leaves the model as it is"
        )
    for flag in ("max_train_samples", "max_eval_samples", "max_predict_samples"):
        value = getattr(data_args, flag)
        if value is not None and value < 1:
            raise CLNERUsageError(
                f"--{flag} {value} keeps no sentence: give 1 or more (or leave it out for the whole split)"
            )
    if training_args.prediction_loss_only:
        if training_args.do_predict:
            raise CLNERUsageError(
                "--prediction_loss_only true --do_predict: prediction writes the predicted tags "
                "and scores them, and --prediction_loss_only computes the loss only; drop one"
            )
        metric = training_args.metric_for_best_model
        if metric is not None and metric not in ("loss", "eval_loss"):
            raise CLNERUsageError(
                f"--prediction_loss_only true --metric_for_best_model {metric}: evaluation then "
                "computes the loss only, so there is no metric to select on; drop "
                "--prediction_loss_only or select on the loss"
            )
    check_training_arguments(training_args)  # flags the CLNER objective ignores or that break its metrics


def check_training_contexts(raw, data_args: DataTrainingArguments, cl_args: CLArguments) -> None:
    """Refuse `--train_views both` / `context` when no training sentence has a context: the context view would be
    the sentence view, and the model card and config would claim context training (two views, CL) that never
    happened. Unlabeled sentences (--unlabeled_file) count too: their CL term needs a context."""
    if cl_args.train_views == "sentence" or "train" not in raw:
        return
    for split in ("train", "unlabeled"):
        if split in raw and "context" in raw[split].column_names and any(len(c or ()) for c in raw[split]["context"]):
            return
    source = (
        f"--train_file {data_args.train_file}"
        if data_args.train_file
        else f"the train split of --dataset_name {data_args.dataset_name}"
    )
    if "unlabeled" in raw:
        source += f" and --unlabeled_file {data_args.unlabeled_file}"
    default = " (the default)" if cl_args.train_views == "both" else ""
    raise CLNERUsageError(
        f"--train_views {cl_args.train_views}{default} trains on retrieved contexts, and no "
        f"training sentence of {source} has one: retrieve them first with clner-retrieve (e.g. "
        "clner-retrieve train.conll train.context.jsonl --backend bm25 --corpus corpus.txt), or "
        "pass --train_views sentence to train on the sentences alone"
    )


def resolve_tag_scheme(model_args: ModelArguments, found, model_path: str) -> tuple[str, bool]:
    """(the data's tag scheme, whether the CRF has constraints) from the flags, or from a trained model."""
    if getattr(found, "model_type", None) != "clner":
        return (model_args.tag_scheme or "BIO").upper(), model_args.crf_constraints
    check_label_scheme(found.labels, found.tag_scheme)  # a config.json whose scheme contradicts its labels
    data_scheme = (model_args.tag_scheme or getattr(found, "data_tag_scheme", None) or found.tag_scheme).upper()
    if model_tag_scheme(data_scheme) != found.tag_scheme:
        raise CLNERUsageError(
            f"--tag_scheme {data_scheme}: the model {model_path} tags in {found.tag_scheme}; pass "
            f"--tag_scheme {found.tag_scheme} (or leave it out) and data in that scheme"
        )
    return data_scheme, bool(found.crf_constraints)


def main(argv=None):
    started = time.time()
    with as_user_error():
        model_args, data_args, cl_args, training_args = parse_args(argv)
    with output_dir_lock(training_args):
        return run(model_args, data_args, cl_args, training_args, started)


def setup_logging(training_args: TrainingArguments, cl_args: CLArguments) -> None:
    """run_ner.py's logging: one format, and the process's log level for this script, datasets and transformers."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    logger.debug(f"Training/evaluation parameters {training_args}")
    logger.info(f"CL parameters {cl_args}")


def check_run(
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    cl_args: CLArguments,
    training_args: TrainingArguments,
) -> str | None:
    """The checks that need no data or model, before anything is loaded; returns the Hub repository id when
    pushing (created now, before hours of training, as the Trainer's own `init_hf_repo` does)."""
    if data_args.unlabeled_file and not cl_args.uses_cl:
        raise CLNERUsageError(
            f"--unlabeled_file adds only the CL loss, which this run does not train (--train_views "
            f"{cl_args.train_views} --cl_loss {cl_args.cl_loss} --cl_weight {cl_args.cl_weight}); "
            "use --train_views both with --cl_loss kl or l2, or drop --unlabeled_file"
        )
    check_arguments(model_args, data_args, training_args)
    warning = bf16_cpu_warning(training_args.device.type == "cpu", training_args.bf16)
    if warning:
        logger.warning(warning)
    if not training_args.push_to_hub:
        return None
    try:
        return prepare_hub_repo(
            training_args.hub_model_id or Path(training_args.output_dir).absolute().name,
            token=training_args.hub_token,
            private=training_args.hub_private_repo,
        )
    except HubError as exc:
        raise CLNERUsageError(str(exc)) from None


def is_clner_config(config) -> bool:
    """Whether `config` is a trained CLNER model's (its labels and CRF come with it) rather than a plain encoder's."""
    return isinstance(config, CLNERConfig) or getattr(config, "model_type", None) == "clner"


def load_model_config(model_args: ModelArguments) -> tuple[str, dict, object]:
    """The model path (default: the packaged MiniLM), the Hub keyword arguments that every load shares, and the
    config found there; a path or config that cannot be loaded is a user error naming its flag."""
    model_path = model_args.model_name_or_path or packaged_minilm()
    for flag, value in (
        ("--model_name_or_path", model_args.model_name_or_path),
        ("--config_name", model_args.config_name),
        ("--tokenizer_name", model_args.tokenizer_name),
    ):
        if value:
            check_model_path(value, flag)
    hub = dict(
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        token=model_args.token,
        trust_remote_code=model_args.trust_remote_code,
    )
    config_path = model_args.config_name or model_path
    try:
        found = AutoConfig.from_pretrained(config_path, **hub)
    except (OSError, ValueError) as err:  # no such model, no config.json, or one without a model_type
        flag = "--config_name" if model_args.config_name else "--model_name_or_path"
        reason = " ".join(str(err).split())[:300]
        raise CLNERUsageError(
            f"{flag} {config_path}: cannot load a model config from it ({reason}); give an encoder (a folder with "
            "its config.json, or a Hub id) or a trained CLNER model"
        ) from None
    return model_path, hub, found


def resolve_sequence_arguments(data_args: DataTrainingArguments, found, model_path: str) -> None:
    """--max_seq_length (default: `default_max_seq_length`) and --window_stride, against the encoder."""
    if data_args.max_seq_length is None:
        data_args.max_seq_length = default_max_seq_length(found)
    with as_user_error(ValueError):
        check_max_seq_length(
            found, data_args.max_seq_length, "--max_seq_length", encoder=f"the encoder of {model_path}"
        )
    if data_args.window_stride < 0:
        raise CLNERUsageError(
            f"--window_stride {data_args.window_stride} is negative: it is the number of words "
            "consecutive windows of a long sentence share (0 or more; the words between windows "
            "would otherwise be skipped)"
        )
    with as_user_error(ValueError):
        check_window_stride(data_args.window_stride, data_args.max_seq_length, "--window_stride")


def resolve_labels(
    raw,
    found,
    model_args: ModelArguments,
    model_path: str,
    tag_scheme: str,
    checkpoint: str | None,
    resume_flag: str | None,
) -> tuple[list[str], bool]:
    """The label list, and whether a trained CLNER model gets new labels (`relabel`): a CLNER model keeps its own
    (unless --ignore_mismatched_sizes with training data), otherwise they come from the training data. Every
    labelled split is checked against them, naming the split, so that no label is silently remapped."""
    is_clner = is_clner_config(found)
    relabel = is_clner and model_args.ignore_mismatched_sizes and "train" in raw
    if is_clner and not relabel:
        label_list = found.labels
    elif "train" in raw:
        label_list = get_label_list(raw["train"])
        check_label_scheme(label_list, model_tag_scheme(tag_scheme))
    else:
        raise CLNERUsageError("without --train_file the model must be a trained CLNER model (it carries the labels)")
    if checkpoint:
        check_resume_labels(checkpoint, label_list, resume_flag)
    label2id = {label: i for i, label in enumerate(label_list)}
    if is_clner and not relabel and "train" in raw and "tags" in raw["train"].column_names:
        try:
            check_labels(raw["train"], label2id, "train")
        except ValueError as exc:
            raise CLNERUsageError(
                f"{exc} The model {model_path} was trained for other labels: pass "
                "--ignore_mismatched_sizes to train a new emission layer and CRF for the "
                "training data's labels."
            ) from None
    for split in ("validation", "test"):
        if split in raw and "tags" in raw[split].column_names:
            check_labels(raw[split], label2id, split)
    return label_list, relabel


@dataclass
class PreparedData:
    """Everything decided before the model is built (what :func:`prepare_data` returns)."""

    tag_scheme: str  #: the data's tag scheme (IOB1 / IO data is trained as BIO)
    checkpoint: str | None  #: the checkpoint to resume, if any
    raw: Any  #: the raw splits (a `datasets.DatasetDict`), checked, then cut to --max_*_samples
    label_list: list[str]  #: the model's labels, in id order
    relabel: bool  #: a trained CLNER model gets the training data's labels (--ignore_mismatched_sizes)
    settings: dict  #: the run's settings (`run_settings`), written into each checkpoint and checked on resume

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_list))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.label_list)}


def prepare_data(
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    cl_args: CLArguments,
    training_args: TrainingArguments,
    found,
    model_path: str,
) -> PreparedData:
    """Everything decided before the model is built: the tag scheme, the checkpoint to resume, the raw splits
    (checked, then cut to --max_*_samples) and the labels."""
    with as_user_error():
        tag_scheme, constraints = resolve_tag_scheme(model_args, found, model_path)
        resolve_sequence_arguments(data_args, found, model_path)
        checkpoint = (
            resolve_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir)
            if training_args.do_train
            else None
        )
        settings = run_settings(model_args, data_args, cl_args, training_args)
        if checkpoint:
            check_resume_settings(checkpoint, settings, training_args.resume_from_checkpoint)
        check_output_dir(data_args, training_args, model_path, checkpoint)
        with training_args.main_process_first(desc="loading datasets"):
            raw = load_raw(data_args, training_args, tag_scheme, constraints)
        check_splits(raw, data_args, training_args)
        label_list, relabel = resolve_labels(
            raw, found, model_args, model_path, tag_scheme, checkpoint, training_args.resume_from_checkpoint
        )
    truncate(raw, data_args)
    if training_args.do_train:
        check_training_contexts(raw, data_args, cl_args)
    return PreparedData(
        tag_scheme=tag_scheme,
        checkpoint=checkpoint,
        raw=raw,
        label_list=label_list,
        relabel=relabel,
        settings=settings,
    )


#: encoders whose byte-level BPE needs `add_prefix_space` for pre-split words
_PREFIX_SPACE_TYPES = ("roberta", "xlm-roberta", "longformer", "bart", "deberta", "gpt2")


def load_training_tokenizer(
    model_args: ModelArguments, data_args: DataTrainingArguments, model_path: str, hub: dict, found
):
    """The tokenizer, with `add_prefix_space` where byte-level BPE needs it for pre-split words; --max_seq_length
    must leave room for words after the special tokens."""
    kwargs = dict(hub)
    if getattr(found, "model_type", "") in _PREFIX_SPACE_TYPES or getattr(
        getattr(found, "encoder", None), "model_type", ""
    ) in ("roberta", "xlm-roberta", "deberta"):
        kwargs["add_prefix_space"] = True
    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_path, **kwargs)
    with as_user_error(ValueError):
        check_max_seq_length(found, data_args.max_seq_length, "--max_seq_length", tokenizer)
    return tokenizer


def build_model(
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    cl_args: CLArguments,
    training_args: TrainingArguments,
    model_path: str,
    hub: dict,
    found,
    tokenizer,
    data: PreparedData,
) -> CLNERForTokenClassification:
    """A trained CLNER model to continue (new labels when `data.relabel`), or a new one on a plain encoder. A
    training run records its recipe (sequence budget, views, CL loss) and the data's tag scheme in the config."""
    tag_scheme = data.tag_scheme
    if is_clner_config(found):
        relabelled = dict(id2label=data.id2label, label2id=data.label2id) if data.relabel else {}
        model = CLNERForTokenClassification.from_pretrained(
            model_path,
            config=found if model_args.config_name and not data.relabel else None,
            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
            **relabelled,
            **hub,
        )
    else:
        model = CLNERForTokenClassification.from_encoder(
            model_path,
            id2label=data.id2label,
            tag_scheme=model_tag_scheme(tag_scheme),
            crf_constraints=model_args.crf_constraints,
            classifier_dropout=model_args.classifier_dropout,
            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
            **({"config": found} if model_args.config_name else {}),
            **hub,
        )
    if training_args.do_train:
        recipe = dict(
            max_seq_length=data_args.max_seq_length, window_stride=data_args.window_stride, **cl_args.recipe()
        )
        for key, value in recipe.items():
            setattr(model.config, key, value)
        # IOB1 / IO data was converted to BIO: predictions written to files go back to the data's scheme
        model.config.data_tag_scheme = tag_scheme if tag_scheme != model.config.tag_scheme else None
    if tokenizer.pad_token_id is not None:  # what the Trainer would align (with a warning) otherwise
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def encode_splits(
    raw, tokenizer, label2id: dict[str, int], data_args: DataTrainingArguments, training_args: TrainingArguments
) -> dict:
    """The features of every split; --unlabeled_file sentences join the training features without labels (they
    add only the CL loss), shuffled in with the run's seed."""
    with training_args.main_process_first(desc="preprocessing"):
        encode = dict(
            tokenizer=tokenizer,
            max_seq_length=data_args.max_seq_length,
            stride=data_args.window_stride,
            num_proc=data_args.preprocessing_num_workers,
            load_from_cache_file=not data_args.overwrite_cache,
        )
        features = {
            split: preprocess_dataset(ds, label2id=label2id, desc=f"Encoding {split}", **encode)
            for split, ds in raw.items()
            if split != "unlabeled"
        }
        if "unlabeled" in raw and "train" in features:
            unlabeled = preprocess_dataset(raw["unlabeled"], with_labels=False, desc="Encoding unlabeled", **encode)
            unlabeled = unlabeled.map(
                lambda b: {"labels": [[-100] * len(w) for w in b["word_index"]]}, batched=True, features=None
            )
            unlabeled = unlabeled.cast(features["train"].features)
            features["train"] = datasets.concatenate_datasets([features["train"], unlabeled]).shuffle(
                seed=training_args.seed
            )
    return features


def build_trainer(
    model,
    tokenizer,
    features: dict,
    cl_args: CLArguments,
    data_args: DataTrainingArguments,
    training_args: TrainingArguments,
) -> CLNERTrainer:
    """The CLNER trainer with compact progress logs. The Trainer's own push is off: clner publishes itself
    (safetensors, remote code, pipeline, card), where the Trainer's upload of output_dir at every save would also
    send pickles and no remote-code pipeline."""
    training_args.push_to_hub = False
    if training_args.dataloader_pin_memory and not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # nothing to pin to; torch would warn
    trainer = CLNERTrainer(
        model=model,
        args=training_args,
        cl_args=cl_args,
        train_dataset=features.get("train") if training_args.do_train else None,
        eval_dataset=features.get("validation") if training_args.do_eval else None,
        processing_class=tokenizer,
        data_collator=CLNERDataCollator(tokenizer, pad_to_multiple_of=8 if training_args.fp16 else None),
        return_entity_level_metrics=data_args.return_entity_level_metrics,
    )
    for plain, compact in ((ProgressCallback, CompactProgressCallback), (PrinterCallback, CompactPrinterCallback)):
        if trainer.pop_callback(plain) is not None:
            trainer.add_callback(compact)
    return trainer


def train_model(trainer: CLNERTrainer, raw, checkpoint: str | None, training_args: TrainingArguments) -> dict:
    """Trains (resuming `checkpoint`), saves the model and returns the train metrics. A diverged run writes
    nothing; SIGTERM saves a checkpoint at the end of the step and exits 143."""
    stop = StopOnSigterm()
    trainer.add_callback(stop)
    try:
        with stop.installed():
            result = trainer.train(resume_from_checkpoint=checkpoint)
    except TrainingDivergedError as exc:  # before save_model: no NaN weights, card or predictions are written
        raise CLNERUsageError(
            f"{exc} (no model, model card or predictions were written to {training_args.output_dir})"
        ) from None
    if stop.received is not None:
        stop.report(trainer)  # exits 143: the checkpoint is saved, nothing else is written
    save_model_safely(trainer)
    metrics = dict(result.metrics, train_samples=len(raw["train"]))  # labelled sentences, not windows
    if "unlabeled" in raw:
        metrics["train_unlabeled_samples"] = len(raw["unlabeled"])
    if checkpoint:
        start = json.loads((Path(checkpoint) / "trainer_state.json").read_text())["global_step"]
        metrics["train_resumed_from"] = str(checkpoint)
        metrics["train_note"] = (
            f"resumed at step {start}: train_loss and the speed metrics cover steps "
            f"{start + 1}-{trainer.state.global_step} only; trainer_state.json's log_history "
            "has the losses of every step"
        )
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    return metrics


def evaluate_model(trainer: CLNERTrainer, raw) -> dict:
    """Both views' dev metrics (eval_results.json); the per-type ones are saved but not printed."""
    metrics = trainer.evaluate()
    metrics["eval_samples"] = len(raw["validation"])
    trainer.log_metrics("eval", {k: v for k, v in metrics.items() if not per_type_metric(k)})
    trainer.save_metrics("eval", metrics)
    return metrics


def predict_test(
    trainer: CLNERTrainer, model, raw, features: dict, training_args: TrainingArguments, tag_scheme: str
) -> tuple[dict, str | None]:
    """Scores the labelled test split in both views and writes each view's predictions (in the data's tag scheme),
    plus run_ner.py's `predictions.txt` for the view the model is meant for; returns the metrics and that view."""
    if "test" not in features or "labels" not in features["test"].column_names:
        raise CLNERUsageError("--do_predict needs a labelled --test_file; use scripts/predict.py for raw text")
    output = trainer.predict(features["test"], metric_key_prefix="predict", words=raw["test"]["tokens"])
    output.metrics["predict_samples"] = len(raw["test"])
    trainer.log_metrics("predict", {k: v for k, v in output.metrics.items() if not per_type_metric(k)})
    trainer.save_metrics("predict", output.metrics)
    if not trainer.is_world_process_zero():
        return output.metrics, None
    views, _ = trainer.unpack_predictions(output.predictions, output.label_ids)
    id2label = model.config.id2label
    rows = list(raw["test"])
    names = {name: [[id2label[int(i)] for i in row] for row in pred] for name, pred in views.items()}
    for name, pred in names.items():
        write_predictions(Path(training_args.output_dir) / f"predictions_{name}.txt", rows, pred, tag_scheme)
    # run_ner.py's file: the view the model is meant for; a row without a context has the same tags in both
    view = "context" if getattr(model.config, "trained_with_context", True) else "sentence"
    write_run_ner_predictions(Path(training_args.output_dir) / "predictions.txt", names[view], tag_scheme)
    return output.metrics, view


def run(
    model_args: ModelArguments,
    data_args: DataTrainingArguments,
    cl_args: CLArguments,
    training_args: TrainingArguments,
    started: float,
):
    """The run `main` starts, its arguments parsed (inside the output folder's lock): run_ner.py's steps, in order."""
    setup_logging(training_args, cl_args)
    repo_id = check_run(model_args, data_args, cl_args, training_args)
    set_seed(training_args.seed)
    model_path, hub, found = load_model_config(model_args)
    data = prepare_data(model_args, data_args, cl_args, training_args, found, model_path)
    raw, tag_scheme = data.raw, data.tag_scheme
    tokenizer = load_training_tokenizer(model_args, data_args, model_path, hub, found)
    with as_user_error(ValueError):  # before the model loads: a budget too small for a word
        check_longest_word(data.raw, tokenizer, data_args.max_seq_length)
    model = build_model(model_args, data_args, cl_args, training_args, model_path, hub, found, tokenizer, data)
    features = encode_splits(raw, tokenizer, data.label2id, data_args, training_args)
    push = training_args.push_to_hub
    trainer = build_trainer(model, tokenizer, features, cl_args, data_args, training_args)
    if "validation" in data.raw:  # the words of the dev sentences: surface-form F1 of both views at every evaluation
        trainer.eval_words = data.raw["validation"]["tokens"]
    trainer.add_callback(SaveRunSettings(data.settings))

    all_metrics, prediction_view = {}, None
    if training_args.do_train:
        all_metrics.update(train_model(trainer, raw, data.checkpoint, training_args))
    if training_args.do_eval:
        all_metrics.update(evaluate_model(trainer, raw))
    if training_args.do_predict:
        metrics, prediction_view = predict_test(trainer, model, raw, features, training_args, tag_scheme)
        all_metrics.update(metrics)

    hub_error = None
    if trainer.is_world_process_zero() and training_args.do_train:  # an evaluation-only run writes only results
        with atomic_open(Path(training_args.output_dir) / "run_config.json", "w") as f:
            json.dump(run_config(model_args, data_args, cl_args), f, indent=2)
        try:
            # the Hub folder (card, remote code, tokenizer) in output_dir; uploaded with --push_to_hub
            publish_from_run(
                trainer,
                model,
                tokenizer,
                all_metrics,
                model_args,
                data_args,
                cl_args,
                training_args,
                raw,
                push=push,
                repo_id=repo_id,
            )
        except HubError as exc:
            hub_error = exc
    if trainer.is_world_process_zero():
        print(
            run_summary(
                all_metrics,
                data_args,
                training_args,
                raw,
                started,
                prediction_view,
                per_type=data_args.return_entity_level_metrics,
                model_path=model_path,
            )
        )
    if hub_error is not None:  # the model is saved and summarised; only its upload failed (exit 1, not a usage error)
        print(f"{os.path.basename(sys.argv[0])}: {hub_error}", file=sys.stderr)
        raise SystemExit(1)
    return all_metrics


def run_config(model_args: ModelArguments, data_args: DataTrainingArguments, cl_args: CLArguments) -> dict:
    """The content of run_config.json: the run's model, data and CL arguments, credentials redacted
    (`redact_credentials`: `--token hf_...` would otherwise lie in plain text next to the model)."""
    return redact_credentials({"model": asdict(model_args), "data": asdict(data_args), "cl": asdict(cl_args)})


def check_splits(raw, data_args: DataTrainingArguments, training_args: TrainingArguments) -> None:
    """Each requested step has the data it needs, with tags where it scores them."""

    def source(split: str, flag: str) -> str:
        path = getattr(data_args, flag)
        return f"--{flag} {path}" if path else f"the {split!r} split of --dataset_name {data_args.dataset_name}"

    needs = [
        ("do_train", "train", "train_file"),
        ("do_eval", "validation", "validation_file"),
        ("do_predict", "test", "test_file"),
    ]
    for step, split, flag in needs:
        if not getattr(training_args, step):
            continue
        if split not in raw:
            hub = (
                f" (--dataset_name {data_args.dataset_name} has no {split!r} split)" if data_args.dataset_name else ""
            )
            raise CLNERUsageError(f"--{step} needs --{flag}{hub}")
        if "tags" not in raw[split].column_names:
            what = (
                "training needs them; sentences without tags go in --unlabeled_file"
                if split == "train"
                else ("it would score nothing; tag raw sentences with scripts/predict.py instead")
            )
            raise CLNERUsageError(
                f"--{step}: {source(split, flag)} has no tags (a single column, or no "
                f"tags/ner_tags field; --label_column_name names another): {what}"
            )


def cli(argv=None) -> int:
    """The `clner-train` command: `main`; a user mistake ends with one `error:` line and exit status 2."""
    return run_cli(main, argv)


if __name__ == "__main__":
    sys.exit(cli())
