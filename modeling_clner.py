"""CLNER: a transformer encoder with a linear-chain CRF over words (Wang et al., ACL 2021).

This file is uploaded to the Hub as remote code with its siblings (`REMOTE_CODE_FILES`), which it imports: they use
only torch, numpy and transformers. It holds

* `CLNERConfig` / `CLNERForTokenClassification`: any `AutoModel` encoder + dropout + linear emissions + CRF
  over *words* (the first sub-token of each word carries it; context tokens are never labelled), and `predict`, a
  thin caller of the inference core;
* the saving of every remote-code file and of `custom_pipelines`, so any saved folder serves the CLNER pipeline.

`crf_clner.py` holds `LinearChainCRF` and the tagging-scheme constraints; `inference_clner.py` the inference core
(`encode_example`, the single place that turns a sentence and its external context into the two model views, the
padding, window decoding and entities), so that training, evaluation, the pipeline, `predict` and ONNX all build
inputs and read outputs the same way.

Shapes use B = batch, T = words (CRF time steps), C = tags, L = sub-tokens, H = hidden size.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import ModelOutput

try:  # transformers >= 5: initialisers that respect already-loaded weights
    from transformers import initialization as hf_init
except ImportError:  # pragma: no cover - transformers 4.x
    hf_init = None

#: The task under which a saved model's `config.custom_pipelines` publishes the CLNER pipeline: the standard one, so
#: that `pipeline(model=repo, trust_remote_code=True)` and `pipeline("token-classification", ...)` both build it.
PIPELINE_TASK = "token-classification"
#: Other names a `pipeline(task, ...)` call may use for it: transformers' alias of the task, and this project's own
#: task name. `PublishedPipelines` finds the published entry under them.
PIPELINE_TASK_ALIASES = ("ner", "clner-token-classification")


# The CRF and the inference core are remote code next to this file: imported relatively on the Hub, absolutely
# from a checkout or an installed copy.
try:
    from .crf_clner import SCHEMES, LinearChainCRF, check_label_scheme, scheme_constraints
    from .inference_clner import DEFAULT_MAX_SEQ_LENGTH, PREFIX_UNDERSCORE, encode_example, predict_sentences
except ImportError:  # this project on the path
    from crf_clner import SCHEMES, LinearChainCRF, check_label_scheme, scheme_constraints
    from inference_clner import DEFAULT_MAX_SEQ_LENGTH, PREFIX_UNDERSCORE, encode_example, predict_sentences

#: every remote-code file of a CLNER model: saved, uploaded and loaded together (each imports only torch,
#: transformers, numpy and these files)
REMOTE_CODE_FILES = ("modeling_clner.py", "crf_clner.py", "inference_clner.py", "pipeline_clner.py")
#: the pipeline class that `custom_pipelines` publishes (in `pipeline_clner.py`)
PIPELINE_CLASS = "CLNERTokenClassificationPipeline"


def custom_pipelines_config() -> dict:
    """The `config.custom_pipelines` entry that makes `pipeline(model=repo, trust_remote_code=True)`,
    `pipeline("token-classification", ...)` and `pipeline("ner", ...)` build the CLNER pipeline from the repository's
    `pipeline_clner.py` (one task, `PIPELINE_TASK`: a task-less `pipeline()` call needs exactly one;
    `CLNERConfig.from_pretrained` serves it under the aliases)."""
    return {
        PIPELINE_TASK: {
            "impl": f"pipeline_clner.{PIPELINE_CLASS}",
            "pt": ["AutoModelForTokenClassification"],
            "type": "text",
        }
    }


ROBERTA_LIKE = (
    "roberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "longformer",
    "data2vec-text",
    "mpnet",
    "roberta-prelayernorm",
    "ibert",
    "luke",
    "bart",
    "mbart",
)


def encoder_position_limit(config) -> int | None:
    """Longest input the encoder's absolute position embeddings allow (None: no such limit)."""
    encoder = getattr(config, "encoder", None) if getattr(config, "model_type", None) == "clner" else config
    n = getattr(encoder, "max_position_embeddings", None)
    if not isinstance(n, int) or n <= 0 or getattr(encoder, "position_biased_input", True) is False:
        return None
    if getattr(encoder, "model_type", None) in ROBERTA_LIKE and getattr(encoder, "pad_token_id", None) is not None:
        n -= encoder.pad_token_id + 1  # positions start after the padding index
    return n


def check_window_stride(stride: int, max_seq_length: int, what: str = "window_stride") -> int:
    """`stride` (the words consecutive windows of a long sentence share) must be smaller than the words a window
    can hold (`max_seq_length` - 2, one sub-token each, after [CLS] and [SEP]): more would start every window one
    word after the last. Raises ValueError naming `what`."""
    if stride >= max_seq_length - 2:
        raise ValueError(
            f"{what} {stride} is not smaller than the {max(max_seq_length - 2, 0)} words a window of "
            f"max_seq_length {max_seq_length} can hold: windows would start one word apart. Use a stride below half "
            "a window (the default is 16)"
        )
    return stride


def default_max_seq_length(config) -> int:
    """The sub-token budget of a view when none is given: `DEFAULT_MAX_SEQ_LENGTH`, or the encoder's positions when
    they are fewer."""
    limit = encoder_position_limit(config)
    return min(DEFAULT_MAX_SEQ_LENGTH, limit) if limit else DEFAULT_MAX_SEQ_LENGTH


def check_max_seq_length(
    config, max_seq_length: int, what: str = "max_seq_length", tokenizer=None, encoder: str = "the model's encoder"
) -> int:
    """The one check of a view's sub-token budget, for training and inference alike: a whole number that the
    encoder's position embeddings can take (a longer view is a tensor-size error deep in the encoder) and that
    leaves room for a word after the special tokens (`tokenizer`'s, else at least 2). Raises ValueError naming
    `what` (the flag, the argument, or config.json's field) and `encoder`."""
    if isinstance(max_seq_length, bool) or not isinstance(max_seq_length, int):
        raise ValueError(f"{what} must be a whole number of sub-tokens, got {max_seq_length!r}")
    limit = encoder_position_limit(config)
    if limit and max_seq_length > limit:
        raise ValueError(
            f"{what} {max_seq_length} exceeds the {limit} positions of {encoder} (max_position_embeddings); use "
            f"{limit} or less (longer sentences are split into windows)"
        )
    specials = tokenizer.num_special_tokens_to_add(pair=False) if tokenizer is not None else 2
    if max_seq_length <= specials:
        raise ValueError(
            f"{what} {max_seq_length} leaves no room for words: a view holds {specials} special tokens and at "
            "least one word's sub-tokens (use 16 or more)"
        )
    return max_seq_length


def _load_problem(cls, path, exc: BaseException, kwargs: dict) -> str | None:
    """What is wrong with a local model folder that `from_pretrained` could not load, naming the file: corrupt
    weights, or weights whose shapes do not match config.json (another model's config, or labels edited). None
    when the folder is not local or the error is something else."""
    folder = Path(str(path))
    if not folder.is_dir():
        return None
    weights = folder / "model.safetensors"
    if type(exc).__name__ == "SafetensorError" or (weights.is_file() and weights.stat().st_size < 16):
        return (
            f"{weights} is truncated or not a safetensors file ({' '.join(str(exc).split())}); save the model "
            "again, or copy the file again from where it came"
        )
    if "mismatched_sizes" not in str(exc) or not weights.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(weights), "pt") as f:
            stored = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118 - a safetensors file, not a dict
        config = kwargs.get("config") or CLNERConfig.from_pretrained(str(folder))
        with torch.device("meta"):
            expected = {name: tuple(t.shape) for name, t in cls(config).state_dict().items()}
    except Exception:  # noqa: BLE001 - the original error stands
        return None
    differ = [
        f"{name} is {list(stored[name])} in model.safetensors but {list(shape)} by config.json"
        for name, shape in expected.items()
        if name in stored and stored[name] != shape
    ]
    if not differ:
        return None
    return (
        f"{folder}: the weights do not match config.json ({len(config.id2label)} labels, hidden size "
        f"{config.encoder.hidden_size}): {'; '.join(differ[:3])}{' ...' if len(differ) > 3 else ''}. The config "
        "and the weights come from different models; to start the differing layers afresh, load with "
        "ignore_mismatched_sizes=True (run_ner_cl.py --ignore_mismatched_sizes)"
    )


def save_remote_code(directory: str | os.PathLike, source: str | os.PathLike | None = None) -> list[str]:
    """Copy every remote-code file (`REMOTE_CODE_FILES`) from `source` (default: this file's folder) into
    `directory` where it is missing or differs, replacing a link by a real file; returns the names now there. The
    one place that writes a model's code: `save_pretrained`, and through it Trainer checkpoints and
    `clner.hub.upload.save_for_hub`."""
    source = Path(source) if source is not None else Path(__file__).parent
    written = []
    for name in REMOTE_CODE_FILES:
        src, target = source / name, Path(directory) / name
        if src.is_file() and not (target.exists() and not target.is_symlink() and os.path.samefile(target, src)):
            if target.is_symlink():
                target.unlink()
            shutil.copyfile(src, target)
        if target.is_file():
            written.append(name)
    return written


def viterbi_with_scores(
    crf: LinearChainCRF, logits: torch.Tensor, word_mask: torch.Tensor, with_scores: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Viterbi paths `(B, W)` (-1 on padding) and, with `with_scores`, the CRF marginal of each path tag `(B, W)`
    (0 on padding): the tags and entity scores of every torch inference path."""
    paths = crf.viterbi_decode(logits, word_mask)
    if not with_scores:
        return paths, None
    marginals = crf.marginals(logits, word_mask)
    scores = marginals.gather(-1, paths.clamp_min(0).unsqueeze(-1)).squeeze(-1).masked_fill(~word_mask, 0.0)
    return paths, scores


# --------------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------------
class PublishedPipelines(dict):
    """A CLNER config's `custom_pipelines`: the CLNER pipeline published under one task (`PIPELINE_TASK`), found
    under its aliases too (`PIPELINE_TASK_ALIASES`: "ner", "clner-token-classification").

    `transformers.pipeline(task, model=repo, trust_remote_code=True)` looks `task` up in `custom_pipelines` verbatim,
    and without a task it needs exactly one entry. An alias is another name of the one entry, as in a
    case-insensitive mapping: ``"ner" in pipelines`` and ``pipelines["ner"]`` find it, while `len`, iteration and the
    saved `config.json` show the published task alone.
    """

    def _published(self, key) -> Any:
        return PIPELINE_TASK if key in PIPELINE_TASK_ALIASES and dict.__contains__(self, PIPELINE_TASK) else key

    def __contains__(self, key) -> bool:
        return dict.__contains__(self, self._published(key))

    def __getitem__(self, key):
        value = dict.__getitem__(self, self._published(key))
        # a copy under an alias: `pipeline()` rewrites the entry it is given (class names -> classes)
        return dict(value) if key != self._published(key) else value

    def get(self, key, default=None):
        return self[key] if key in self else default  # noqa: SIM401 - dict.get would bypass the alias lookup


def _check_id2label(id2label: dict) -> None:
    """`id2label` must name ids 0..C-1, each once and without whitespace: a gap, a duplicate name or `'B-PER '`
    would silently collapse or shift the label set, and a `B_PER` prefix is read otherwise by the scorers. Raises
    ValueError naming the ids (config.json's id2label)."""
    if not isinstance(id2label, dict):
        raise ValueError(f"config.json id2label must map label ids to names, got a {type(id2label).__name__}")
    bad = [k for k in id2label if isinstance(k, bool) or not str(k).lstrip("-").isdigit()]
    if bad:
        raise ValueError(f"config.json id2label keys must be label ids 0..{len(id2label) - 1}, got {bad[0]!r}")
    ids = sorted(int(i) for i in id2label)
    if ids != list(range(len(ids))):
        missing = sorted(set(range(max(ids, default=-1) + 1)) - set(ids))
        raise ValueError(
            f"config.json id2label must number its labels 0..{len(ids) - 1}; ids {missing[:10]} are "
            f"missing (has {ids[:10]}{'...' if len(ids) > 10 else ''})"
        )
    seen: dict = {}
    for i in ids:
        name = id2label[i] if i in id2label else id2label[str(i)]
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"config.json id2label: label {i} {name!r} is empty or holds whitespace")
        if name in seen:
            raise ValueError(f"config.json id2label: ids {seen[name]} and {i} are both named {name!r}")
        if PREFIX_UNDERSCORE.match(name):
            raise ValueError(
                f"config.json id2label: label {i} {name!r} joins its prefix with '_'; CLNER reads {name[0]}-{name[2:]}"
            )
        seen[name] = i


class CLNERConfig(PreTrainedConfig):
    """Configuration of a CLNER model: an encoder config nested as `encoder`, the label set, CRF options, and how
    the model was trained (so inference can warn when it is used differently).

    Args:
        encoder: config (or dict) of any `AutoModel` encoder (BERT, RoBERTa, XLM-R, DeBERTa, ...).
        id2label / label2id: the word labels (`O`, `B-person`, ...).
        tag_scheme: `"BIO"` or `"BIOES"`; `crf_constraints`: apply the scheme's hard transition constraints.
        data_tag_scheme: the scheme of the training files when it was not `tag_scheme` (`"IOB1"`, `"IO"`): their
            tags were converted to `tag_scheme` on reading, and tags written to files are converted back.
        classifier_dropout: dropout before the emission layer (defaults to the encoder's hidden dropout).
        context_separator: how the context view joins sentence and context (`"pair"`: the tokenizer's pair template,
            `[CLS] x [SEP] x~ [SEP]`); `snippet_separator`: token between snippets (default: the tokenizer's sep token).
        max_seq_length: sub-token budget of a view; `window_stride`: overlapping words between windows of a sentence
            longer than the budget.
        trained_with_context / train_views / cl_loss / cl_temperature / cl_weight / nll_weight / nll_ext_weight:
            record of the training recipe (the values actually used, written by `run_ner_cl.py`).
    """

    model_type = "clner"
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder: PreTrainedConfig | dict | None = None
    tag_scheme: str = "BIO"
    crf_constraints: bool = True
    data_tag_scheme: str | None = None
    classifier_dropout: float | None = None
    context_separator: str = "pair"
    snippet_separator: str | None = None
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH
    window_stride: int = 16
    trained_with_context: bool = True
    train_views: str = "both"
    cl_loss: str = "kl"
    cl_temperature: float = 0.3
    cl_weight: float | None = None
    nll_weight: float | None = None
    nll_ext_weight: float | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is not None:  # before transformers reads it (a list or a key "a" fails there, cryptically)
            _check_id2label(self.id2label)
        super().__post_init__(**kwargs)
        self.tag_scheme = self.tag_scheme.upper()
        if self.tag_scheme not in SCHEMES:
            raise ValueError(f"tag_scheme must be one of {SCHEMES}, got {self.tag_scheme!r}")
        for name, low in (("window_stride", 0), ("max_seq_length", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"config.json {name} must be a whole number >= {low}, got {value!r}")
        check_window_stride(self.window_stride, self.max_seq_length, "config.json window_stride")
        if self.label2id is None and self.id2label is not None:
            self.label2id = {label: i for i, label in self.id2label.items()}
        if hasattr(self.encoder, "auto_map"):  # a base model's remote code is never carried into CLNER's
            del self.encoder.auto_map
        published = getattr(self, "custom_pipelines", None)
        if isinstance(published, dict) and PIPELINE_TASK in published and type(published) is dict:
            self.custom_pipelines = PublishedPipelines(published)

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(len(self.id2label))]


# --------------------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------------------
@dataclass
class CLNERTokenClassifierOutput(ModelOutput):
    """Word-level outputs of `CLNERForTokenClassification`.

    Args:
        loss: mean CRF negative log-likelihood over the batch's sentences (when `labels` are given).
        logits: word-level emissions `(B, W, C)`.
        word_hidden_states: encoder output at each word's first sub-token `(B, W, H)` (CL-L2 compares these).
        word_mask: `(B, W)` bool, True on real words.
        hidden_states / attentions: the encoder's, when asked for.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    word_hidden_states: torch.FloatTensor | None = None
    word_mask: torch.BoolTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class CLNERPreTrainedModel(PreTrainedModel):
    config_class = CLNERConfig
    base_model_prefix = "clner"
    supports_gradient_checkpointing = True

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, LinearChainCRF):
            for p in (module.start_transitions, module.end_transitions, module.transitions):
                if hf_init is not None:
                    hf_init.uniform_(p, -0.1, 0.1)
                else:  # pragma: no cover
                    nn.init.uniform_(p, -0.1, 0.1)
            self._set_crf_constraints(module)

    def _set_crf_constraints(self, crf: LinearChainCRF) -> None:
        start, trans, end = scheme_constraints(self.config.labels, self.config.tag_scheme)
        for name, value in (("allowed_start", start), ("allowed_transitions", trans), ("allowed_end", end)):
            buf = getattr(crf, name)
            if buf.device.type == "meta":
                setattr(crf, name, value)
            else:
                buf.copy_(value)
        crf.use_constraints = bool(self.config.crf_constraints)


class CLNERForTokenClassification(CLNERPreTrainedModel):
    """Encoder + dropout + linear emissions + CRF over words.

    Inputs of one view: `input_ids`, `attention_mask`, optional `token_type_ids`, and `word_index (B, W)`, the
    position of each sentence word's first sub-token (-1 pads). Words are packed to the left, so the CRF sees a
    contiguous sequence; other sub-tokens, special tokens and context tokens never reach it. Build the inputs with
    `encode_example` (or `prepare_inputs`).

    Build one from a plain encoder with `CLNERForTokenClassification.from_pretrained(encoder_path, id2label=...)`
    (or `from_encoder`); reload a trained one with `from_pretrained(model_dir)`.
    """

    def __init__(self, config: CLNERConfig):
        super().__init__(config)
        try:  # the pooler is never used for tagging; without it every parameter gets a gradient (DDP-friendly)
            self.encoder = AutoModel.from_config(config.encoder, add_pooling_layer=False)
        except TypeError:
            self.encoder = AutoModel.from_config(config.encoder)
        check_label_scheme(config.labels, config.tag_scheme)
        hidden_size = config.encoder.hidden_size
        dropout = config.classifier_dropout
        if dropout is None:
            dropout = getattr(config.encoder, "hidden_dropout_prob", getattr(config.encoder, "dropout", 0.1))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, config.num_labels)
        start, trans, end = scheme_constraints(config.labels, config.tag_scheme)
        self.crf = LinearChainCRF(config.num_labels, (start, trans, end))
        self.crf.use_constraints = bool(config.crf_constraints)
        self.post_init()

    # -- construction ---------------------------------------------------------------------------------------------
    @classmethod
    def from_encoder(cls, encoder_name_or_path: str, id2label: dict[int, str] | Sequence[str], **kwargs):
        """A new CLNER model on top of a pretrained encoder (its weights loaded, CRF head freshly initialised).

        Args:
            encoder_name_or_path: any `AutoModel` checkpoint.
            id2label: `{id: label}` or a list of labels.
            kwargs: `CLNERConfig` fields (tag_scheme, crf_constraints, ...) and `from_pretrained` options
                (`revision`, `cache_dir`, `trust_remote_code`, `dtype`, ...) for the encoder.
        """
        if not isinstance(id2label, dict):
            id2label = dict(enumerate(id2label))
        id2label = {int(k): v for k, v in id2label.items()}
        config_fields = {f for f in CLNERConfig.__dataclass_fields__}
        config_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in config_fields and k not in ("dtype",)}
        kwargs.pop("label2id", None)
        encoder = AutoModel.from_pretrained(encoder_name_or_path, **kwargs)
        config = CLNERConfig(
            encoder=encoder.config.to_dict(),
            id2label=id2label,
            label2id={v: k for k, v in id2label.items()},
            **config_kwargs,
        )
        model = cls(config)
        missing, _ = model.encoder.load_state_dict(encoder.state_dict(), strict=False)  # the pooler is dropped
        if missing:
            raise ValueError(f"encoder checkpoint {encoder_name_or_path} lacks weights {missing[:5]}")
        model.encoder.to(encoder.dtype)
        model.config.name_or_path = str(encoder_name_or_path)
        return model

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """Reload a CLNER checkpoint, or start one from a plain encoder checkpoint when `id2label` is given."""
        config = kwargs.get("config")
        if config is None and "id2label" in kwargs and pretrained_model_name_or_path is not None:
            probe = {
                k: kwargs[k]
                for k in ("revision", "cache_dir", "token", "local_files_only", "trust_remote_code")
                if k in kwargs
            }
            found = AutoConfig.from_pretrained(pretrained_model_name_or_path, **probe)
            if getattr(found, "model_type", None) != CLNERConfig.model_type:
                return cls.from_encoder(pretrained_model_name_or_path, **kwargs)
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised unless a named problem explains it
            problem = _load_problem(cls, pretrained_model_name_or_path, exc, kwargs)
            if problem is None:
                raise
            raise ValueError(problem) from exc

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as usual, with every remote-code file (`REMOTE_CODE_FILES`) and `auto_map` entries for AutoConfig,
        AutoModel and AutoModelForTokenClassification, so that `AutoModel.from_pretrained(repo,
        trust_remote_code=True)` works too (transformers records only one auto class per model class). The
        pipeline is published in `config.custom_pipelines`, so that `pipeline("ner", model=folder,
        trust_remote_code=True)` builds the CLNER pipeline from any saved folder (a Trainer checkpoint as well).

        `auto_map` and `custom_pipelines` hold CLNER's own entries only: an entry inherited from a base model's
        config (another model's remote code, say) would run that code on every `from_pretrained` of this one."""
        module_file = getattr(sys.modules.get(type(self).__module__), "__file__", None)
        if module_file and kwargs.get("is_main_process", True):
            os.makedirs(save_directory, exist_ok=True)  # before saving: save_pretrained may upload (push_to_hub)
            save_remote_code(save_directory, Path(module_file).parent)
            if (Path(save_directory) / "pipeline_clner.py").is_file():
                self.config.custom_pipelines = PublishedPipelines(custom_pipelines_config())
        module = type(self).__module__.split(".")[-1]
        self.config.auto_map = {
            "AutoConfig": f"{module}.{type(self.config).__name__}",
            "AutoModel": f"{module}.{type(self).__name__}",
            "AutoModelForTokenClassification": f"{module}.{type(self).__name__}",
        }
        return super().save_pretrained(save_directory, *args, **kwargs)

    # -- forward --------------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        word_index: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> CLNERTokenClassifierOutput:
        """Run one view. `labels (B, W)` are word-level tag ids, -100 on padding; returns word-level outputs."""
        if word_index is None:
            raise ValueError(
                "CLNERForTokenClassification labels words with a CRF, so it needs `word_index` (B, W), the position "
                "of each word's first sub-token; raw tokenizer output and transformers' stock token-classification "
                'pipeline do not provide it. To tag text, use `model.predict("some text", tokenizer)` or the CLNER '
                'pipeline: `pipeline("ner", model=<this model\'s folder or Hub id>, trust_remote_code=True)`. To '
                "build model inputs yourself, use `model.prepare_inputs` or `modeling_clner.encode_example`."
            )
        if word_index.dim() != 2:
            raise ValueError(f"word_index must be (batch, words), got shape {tuple(word_index.shape)}")
        ref = input_ids if input_ids is not None else inputs_embeds
        if ref is not None and ref.shape[0] != word_index.shape[0]:
            raise ValueError(f"batch size of word_index ({word_index.shape[0]}) != input ({ref.shape[0]})")
        if ref is not None and word_index.numel() and int(word_index.max()) >= ref.shape[1]:
            raise ValueError(f"word_index points past the input length {ref.shape[1]}")
        encoder_kwargs = dict(
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        if token_type_ids is not None:
            encoder_kwargs["token_type_ids"] = token_type_ids
        encoded = self.encoder(input_ids, **encoder_kwargs)
        word_hidden, word_mask = self.gather_words(encoded.last_hidden_state, word_index)
        logits = self.classifier(self.dropout(word_hidden))

        loss = None
        if labels is not None:
            loss = self.crf_loss(logits, labels, word_mask)
        return CLNERTokenClassifierOutput(
            loss=loss,
            logits=logits,
            word_hidden_states=word_hidden,
            word_mask=word_mask,
            hidden_states=encoded.hidden_states if output_hidden_states else None,
            attentions=encoded.attentions if output_attentions else None,
        )

    @staticmethod
    def gather_words(sequence: torch.Tensor, word_index: torch.LongTensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each word's first sub-token state: `sequence (B, L, H)`, `word_index (B, W)` (-1 pads) -> word states
        `(B, W, H)` (zero on padding) and `word_mask (B, W)`. The ONNX export traces the same step."""
        word_mask = word_index >= 0
        gather_index = word_index.clamp_min(0).unsqueeze(-1).expand(-1, -1, sequence.shape[-1])
        return sequence.gather(1, gather_index) * word_mask.unsqueeze(-1).to(sequence.dtype), word_mask

    def crf_loss(self, logits: torch.Tensor, labels: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """Mean CRF NLL over the labelled rows. A row whose labels are all -100 is unlabelled (semi-supervised data)
        and is left out; a labelled row must label every word."""
        nll, labelled = self.crf_nll(logits, labels, word_mask)
        return nll.sum() / labelled.sum().clamp_min(1)

    def crf_nll(
        self, logits: torch.Tensor, labels: torch.Tensor, word_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row CRF NLL `(B,)` (0 on unlabelled rows) and which rows are labelled `(B,)` bool.

        Shapes: logits `(B, W, C)`, labels and word_mask `(B, W)`; a row whose labels are all -100 is unlabelled.
        """
        if labels.shape != word_mask.shape:
            raise ValueError(f"labels shape {tuple(labels.shape)} != word_index shape {tuple(word_mask.shape)}")
        labelled = ((labels != -100) & word_mask).any(1)
        bad = word_mask & labelled.unsqueeze(1) & ((labels < 0) | (labels >= self.config.num_labels))
        if bool(bad.any()):
            raise ValueError(
                f"labels must be in [0, {self.config.num_labels}) on every word of a labelled row; got "
                f"{labels[bad].unique().tolist()}"
            )
        nll = self.crf.nll(logits, labels.masked_fill(~word_mask | ~labelled.unsqueeze(1), 0), word_mask)
        return nll * labelled.to(nll.dtype), labelled

    # -- inference ------------------------------------------------------------------------------------------------
    def decode(self, logits: torch.Tensor, word_mask: torch.Tensor) -> list[list[str]]:
        """Viterbi label sequences (names) from word-level `logits (B, W, C)` and `word_mask (B, W)`."""
        paths = self.crf.viterbi_decode(logits, word_mask)
        lengths = word_mask.sum(1).tolist()
        id2label = self.config.id2label
        return [[id2label[i] for i in row[:n]] for row, n in zip(paths.tolist(), lengths)]

    def warn_if_view_mismatch(self, with_context: bool) -> None:
        """Warn when the model is used with contexts but was trained without them, or vice versa."""
        trained = bool(getattr(self.config, "trained_with_context", True))
        views = getattr(self.config, "train_views", "both")
        if with_context and not trained:
            warnings.warn(
                "This model was trained without external contexts; predictions with `context` may be worse "
                "than without.",
                UserWarning,
                stacklevel=3,
            )
        elif not with_context and views == "context":
            warnings.warn(
                "This model was trained only on the context view (`train_views=context`); predictions "
                "without context may be worse.",
                UserWarning,
                stacklevel=3,
            )

    def prepare_inputs(self, tokenizer, sentences: Sequence[Sequence[str]], contexts=None, max_seq_length=None):
        """Encode word lists (and optional contexts) into features, one or more (windows) per sentence."""
        max_len = max_seq_length or self.config.max_seq_length
        contexts = contexts if contexts is not None else [None] * len(sentences)
        features = []
        for i, (words, ctx) in enumerate(zip(sentences, contexts)):
            for feat in encode_example(
                tokenizer, list(words), ctx, max_len, self.config.window_stride, self.config.snippet_separator
            ):
                feat["example_id"] = i
                features.append(feat)
        return features

    @torch.no_grad()
    def predict(
        self,
        inputs: str | Sequence[str | Sequence[str]],
        tokenizer=None,
        contexts: Sequence[Sequence[str] | str | None] | str | None = None,
        batch_size: int = 16,
        max_seq_length: int | None = None,
        return_entities: bool | None = None,
    ) -> list:
        """Tag text by Viterbi: entities with character offsets and scores, or one tag per word.

        Args:
            inputs: one text (a string), or a list of sentences, each a text or a list of words.
            tokenizer: the model's (fast) tokenizer. Default: the tokenizer saved where the model was loaded from
                (``config._name_or_path``: a CLNER folder or Hub id, or the encoder of `from_encoder`), loaded once
                with ``trust_remote_code=False`` and kept on the model; a model built in memory has no such path and
                needs it passed.
            contexts: the context view's snippets: for one text, a list of strings or one string; for a list of
                sentences, one entry per sentence (a list of snippets, a string or None).
            return_entities: entities (the default for one text) or tags (the default for a list of sentences).
        Returns:
            For one text, its entities: ``[{"entity_group", "score", "word", "start", "end", "word_span",
            "context_used"}]``, as the CLNER pipeline gives them: `start` / `end` are character offsets into the
            text (for a list of words, into ``" ".join(words)``), `word_span` the ``[first, last + 1)`` words and
            `score` the mean CRF marginal of the entity's Viterbi tags. For a list of sentences, one result per
            sentence: its entities with ``return_entities=True``, else its tags, one per word. Text is split into
            words like the pipeline splits it when entities are returned, and on whitespace when tags are.
        """
        if tokenizer is None:  # the model's own, loaded once per path and kept on the model
            path = str(getattr(self.config, "_name_or_path", None) or getattr(self, "name_or_path", None) or "")
            cached = getattr(self, "_clner_tokenizer", None)
            if cached is not None and cached[0] == path:
                tokenizer = cached[1]
            elif not path:
                raise ValueError(
                    "model.predict needs tokenizer=: this model was built in memory, so it does not say where its "
                    "tokenizer is (config._name_or_path is empty). Pass the encoder's tokenizer, e.g. "
                    "model.predict(text, AutoTokenizer.from_pretrained(<encoder>)), or save the model with its "
                    "tokenizer and load it with from_pretrained"
                )
            else:
                from transformers import AutoTokenizer

                try:
                    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
                except Exception as exc:  # noqa: BLE001 - re-raised with what to do
                    raise ValueError(
                        f"model.predict could not load the tokenizer of {path!r}, where the model was loaded from "
                        f"({type(exc).__name__}: {' '.join(str(exc).split())}); pass tokenizer="
                    ) from exc
                self._clner_tokenizer = (path, tokenizer)
        max_len = check_max_seq_length(
            self.config,
            max_seq_length if max_seq_length is not None else self.config.max_seq_length,
            "max_seq_length=" if max_seq_length is not None else "config.json max_seq_length",
            tokenizer,
        )
        return predict_sentences(
            inputs,
            contexts,
            encode=lambda words, context: encode_example(
                tokenizer, words, context, max_len, self.config.window_stride, self.config.snippet_separator
            ),
            decode=self.torch_decoder(),
            labels=self.config.labels,
            pad_id=tokenizer.pad_token_id or 0,
            batch_size=batch_size,
            return_entities=return_entities,
            on_view=self.warn_if_view_mismatch,
        )

    def torch_decoder(self):
        """This model as an inference-core `Decoder`: a padded batch (plain lists) -> Viterbi tag ids and their CRF
        marginals, in eval mode and without gradients (the mode is restored afterwards)."""

        def decode(batch: dict, with_scores: bool = True):
            device = next(self.parameters()).device
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    out = self(**{k: torch.tensor(v, dtype=torch.long, device=device) for k, v in batch.items()})
                    paths, scores = viterbi_with_scores(self.crf, out.logits, out.word_mask, with_scores)
            finally:
                self.train(was_training)
            return paths, scores

        return decode


def tags_to_ids(tags: Sequence[str], label2id: dict[str, int], where: str = "") -> list[int]:
    """Label names -> ids; an unknown label is an error naming it (never silently remapped)."""
    try:
        return [label2id[t] for t in tags]
    except KeyError as err:
        raise ValueError(
            f"label {err.args[0]!r}{' in ' + where if where else ''} is not one of the model's labels "
            f"{sorted(label2id)}"
        ) from None


# --------------------------------------------------------------------------------------------------------------
# Auto classes: `AutoModel.from_pretrained(dir)` works after `import modeling_clner`; `save_pretrained` writes
# `auto_map` and copies this file so that `trust_remote_code=True` works without it.
# --------------------------------------------------------------------------------------------------------------
def _register() -> None:
    try:
        AutoConfig.register(CLNERConfig.model_type, CLNERConfig, exist_ok=True)
        AutoModel.register(CLNERConfig, CLNERForTokenClassification, exist_ok=True)
        AutoModelForTokenClassification.register(CLNERConfig, CLNERForTokenClassification, exist_ok=True)
    except ValueError:  # already registered to a same-named class (e.g. this file loaded as remote code too)
        pass
    CLNERConfig.register_for_auto_class()
    CLNERForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")


_register()
