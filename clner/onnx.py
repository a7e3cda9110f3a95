"""ONNX export and inference of a CLNER model: the encoder and the emission layer run in ONNX Runtime, the CRF's
Viterbi decoding (and its marginals, for entity scores) in numpy.

    clner-export-onnx out/clner-wnut17 out/clner-wnut17-onnx    # or: python clner/onnx.py MODEL OUTPUT

    from clner.onnx import ONNXCLNER
    ner = ONNXCLNER("out/clner-wnut17-onnx")
    ner.predict([["Justin", "Bieber", "lands"]])                      # tags, as CLNERForTokenClassification.predict
    ner.predict("Justin Bieber lands in Paris", contexts=["Justin Bieber is a singer ..."])  # entities

    clner-export-onnx out/clner-wnut17 out/clner-wnut17-onnx --quantize int8    # adds model.int8.onnx, run by default

Export and inference need the `[onnx]` extra (`pip install ".[onnx]"`: onnx and onnxruntime). Loading never asks
whether to run remote code: the tokenizer is chosen from the encoder's config, not from the CLNER config's
`auto_map`.

The exported graph maps one view's `input_ids`, `attention_mask`, [`token_type_ids`] `(B, L)` and `word_index`
`(B, W)` to word-level emissions `(B, W, C)`. The CRF's start / transition / end scores and the tagging scheme's
constraints are written beside it in `crf.json`; inputs are built by `inference_clner.encode_example` (windows of long
sentences included) and stitched back as `predict` does, so the ONNX model gives the torch model's tags. The folder
also holds the tokenizer, `config.json` (labels, `max_seq_length`, `window_stride`) and `onnx.json`: the ONNX file
that `ONNXCLNER` runs, its quantization, and the positions the exported encoder can take.

`quantize="int8"` (`--quantize int8`) adds `model.int8.onnx`: ONNX Runtime's dynamic quantization
(`onnxruntime.quantization.quantize_dynamic`: int8 weights per output channel, activations quantized at run time),
about a quarter of the size, with tags that differ from torch's on a few words in a thousand; on a CPU with VNNI
(int8 dot products) it runs 2.8x torch `predict` on WNUT-17, where the float ONNX model runs 1.2x
(`benchmarks/bench_inference.py` measures both; a CPU without VNNI gains less). `onnx.json` then names it, so that
`ONNXCLNER(folder)` runs it; `ONNXCLNER(folder, model_file="model.onnx")` runs the float model, which a deployment
may delete.

`ONNXCLNER(folder)` checks the folder when it loads, so that a broken one is a `CLNERUsageError` naming the file
(not an IndexError or an ONNX Runtime node failure at the first long sentence, nor tags under the wrong names): a
missing file, `crf.json` labels that are not as many as the model's emission scores or that differ from
`config.json`'s `id2label`, CRF scores of the wrong shape, a `max_seq_length` past the exported encoder's positions.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clner.errors import CLNERUsageError
from clner.files import staged_files
from clner.loading import load_clner_tokenizer
from inference_clner import DEFAULT_MAX_SEQ_LENGTH, encode_example, pad_view, predict_sentences

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
CRF_FILE = "crf.json"
CONFIG_FILE = "config.json"
#: what `ONNXCLNER` runs: {"model_file", "quantization", "max_positions", "opset"}; an export without it (an earlier
#: version's) runs model.onnx
EXPORT_FILE = "onnx.json"
#: what `export_onnx(quantize=...)` and `clner-export-onnx --quantize` take
QUANTIZATIONS = ("int8",)


# ------------------------------------------------------------------------------------------------------ export
def export_onnx(model, tokenizer, output_dir: str | os.PathLike, opset: int = 17, quantize: str | None = None) -> Path:
    """Write `model.onnx` (encoder + emissions, dynamic batch and lengths), `crf.json`, `config.json`, `onnx.json`
    and the tokenizer into `output_dir`; returns the folder. `model` is a `CLNERForTokenClassification` (in eval mode
    for the export; dropout is off). `quantize="int8"` also writes `model.int8.onnx` (`quantize_int8`), which
    `onnx.json` names, so that `ONNXCLNER(output_dir)` runs it; without it, an earlier export's `model.int8.onnx` is
    removed. Every file is written under a temporary name and renamed into place."""
    import torch

    from modeling_clner import encoder_position_limit

    if quantize is not None and quantize not in QUANTIZATIONS:
        raise CLNERUsageError(f"quantize must be one of {', '.join(QUANTIZATIONS)} or None, got {quantize!r}")

    class Emissions(torch.nn.Module):
        """One view -> word-level emissions, as `CLNERForTokenClassification.forward` computes its logits."""

        def __init__(self, clner):
            super().__init__()
            self.clner = clner

        def forward(self, input_ids, attention_mask, word_index, token_type_ids=None):
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            sequence = self.clner.encoder(
                input_ids, attention_mask=attention_mask, return_dict=True, **extra
            ).last_hidden_state
            return self.clner.classifier(self.clner.gather_words(sequence, word_index)[0])

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    # an example batch of two rows of different lengths, so that no size is taken for a constant
    features = [
        f
        for words in (["Example", "words", "of", "a", "sentence"], ["Two", "rows"])
        for f in encode_example(tokenizer, words, None, 32)
    ]
    batch = _pad(features, tokenizer.pad_token_id or 0)
    names = ["input_ids", "attention_mask", "word_index"] + (["token_type_ids"] if "token_type_ids" in batch else [])
    args = tuple(torch.tensor(batch[n]) for n in names)
    axes = {n: {0: "batch", 1: "words" if n == "word_index" else "sub_tokens"} for n in names}
    axes["emissions"] = {0: "batch", 1: "words"}
    with staged_files(out) as staging, torch.no_grad(), warnings.catch_warnings():  # files replaced whole, by renames
        # tracing notes about shape checks inside the encoder, which hold for every input encode_example builds
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*advanced indexing.*", category=UserWarning)
        torch.onnx.export(
            Emissions(model),
            args,
            str(staging / ONNX_FILE),
            input_names=names,
            output_names=["emissions"],
            dynamic_axes=axes,
            opset_version=opset,
            dynamo=False,
        )
        model.train(was_training)
        crf = model.crf
        scores = {
            name: getattr(crf, name).detach().float().cpu().tolist()
            for name in ("start_transitions", "transitions", "end_transitions")
        }
        allowed = {
            name: getattr(crf, name).cpu().tolist() for name in ("allowed_start", "allowed_transitions", "allowed_end")
        }
        crf_file = {"labels": model.config.labels, "use_constraints": bool(crf.use_constraints), **scores, **allowed}
        (staging / CRF_FILE).write_text(json.dumps(crf_file), encoding="utf-8")
        model.config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        quantization = quantize_int8(staging / ONNX_FILE, staging / INT8_FILE) if quantize == "int8" else None
        export = {
            "model_file": INT8_FILE if quantization else ONNX_FILE,
            "quantization": quantization,
            # the longest view the exported encoder runs (its position embeddings are a fixed table in the graph)
            "max_positions": encoder_position_limit(model.config),
            "opset": opset,
        }
        (staging / EXPORT_FILE).write_text(json.dumps(export, indent=2) + "\n", encoding="utf-8")
    if quantization is None and (out / INT8_FILE).is_file():  # an earlier export's: another model's weights
        (out / INT8_FILE).unlink()
    return out


def quantize_int8(
    source: str | os.PathLike,
    target: str | os.PathLike,
    per_channel: bool = True,
    reduce_range: bool = False,
    op_types: Sequence[str] | None = None,
) -> dict:
    """Quantize the float model `source` into `target` with ONNX Runtime's dynamic quantization
    (`quantize_dynamic`, weights QInt8; activations quantized at run time, so no calibration data); returns the
    settings, as `onnx.json` records them.

    The defaults are those `benchmarks/bench_inference.py` chose on WNUT-17: `per_channel` (a scale per output
    column of each weight) keeps more words' tags than one scale per matrix at the same speed; `reduce_range` (7-bit
    weights, for CPUs without VNNI, whose 8-bit products can saturate) costs agreement where the CPU has VNNI;
    `op_types` None quantizes every operator ONNX Runtime can (MatMul and the embedding Gathers: a quarter of the
    float size); `["MatMul"]` keeps the embeddings in float. The graph first goes through `quant_pre_process`
    (ONNX shape inference and ONNX Runtime's basic graph optimisations), as ONNX Runtime advises."""
    require_onnx("onnx", "onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, target = Path(source), Path(target)
    prepared = target.with_name(f"{target.stem}.pre{target.suffix}")
    try:
        # symbolic shape inference cannot follow the encoder's dynamic reshapes; ONNX's own shape inference can
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(
            str(prepared),
            str(target),
            op_types_to_quantize=list(op_types) if op_types else None,
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
        )
    finally:
        prepared.unlink(missing_ok=True)
    return {
        "type": "int8",
        "method": "onnxruntime.quantization.quantize_dynamic",
        "weight_type": "QInt8",
        "per_channel": per_channel,
        "reduce_range": reduce_range,
        "op_types": list(op_types) if op_types else None,
        "float_model_file": source.name,
    }


# ------------------------------------------------------------------------------------------------- numpy CRF
def _crf_scores(crf: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    start, trans, end = (
        np.asarray(crf[k], dtype=np.float64) for k in ("start_transitions", "transitions", "end_transitions")
    )
    if crf.get("use_constraints", True):
        start = np.where(np.asarray(crf["allowed_start"], bool), start, -np.inf)
        trans = np.where(np.asarray(crf["allowed_transitions"], bool), trans, -np.inf)
        end = np.where(np.asarray(crf["allowed_end"], bool), end, -np.inf)
    return start, trans, end


def viterbi_numpy(
    emissions: np.ndarray, length: int, start: np.ndarray, transitions: np.ndarray, end: np.ndarray
) -> list[int]:
    """The best tag path of one sentence: emissions `(W, C)` (the first `length` rows are its words), start / end
    `(C,)` and transitions `(C, C)` scores (`-inf` where disallowed); as `LinearChainCRF.viterbi_decode`."""
    if length == 0:
        return []
    em = emissions[:length].astype(np.float64)
    score = start + em[0]
    history = []
    for t in range(1, length):
        total = score[:, None] + transitions  # [previous, next]
        best = total.argmax(0)
        history.append(best)
        score = total[best, np.arange(total.shape[1])] + em[t]
    last = int((score + end).argmax())
    path = [last]
    for best in reversed(history):
        last = int(best[last])
        path.append(last)
    return path[::-1]


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def marginals_numpy(
    emissions: np.ndarray, length: int, start: np.ndarray, transitions: np.ndarray, end: np.ndarray
) -> np.ndarray:
    """p(y_t = c | x) of one sentence by forward-backward, `(length, C)`; as `LinearChainCRF.marginals`."""
    em = emissions[:length].astype(np.float64)
    if length == 0:
        return np.zeros((0, em.shape[-1]))
    alpha = [start + em[0]]
    for t in range(1, length):
        alpha.append(_logsumexp(alpha[-1][:, None] + transitions, 0) + em[t])
    beta = [end]
    for t in range(length - 1, 0, -1):
        beta.append(_logsumexp(transitions + (em[t] + beta[-1])[None, :], 1))
    beta = beta[::-1]
    log_z = _logsumexp(alpha[-1] + end, 0)
    with np.errstate(invalid="ignore"):
        return np.exp(np.stack(alpha) + np.stack(beta) - log_z)


# ---------------------------------------------------------------------------------------------------- inference
def _pad(features: Sequence[dict], pad_id: int, prefix: str = "") -> dict[str, np.ndarray]:
    """One view of a batch of features as ONNX Runtime inputs (int64 arrays; at least one word column, so that no
    dimension is 0)."""

    return {k: np.asarray(v, dtype=np.int64) for k, v in pad_view(features, prefix, pad_id, width=1).items()}


# ----------------------------------------------------------------------------------------- checks at load
#: what each file of an export holds, for the message that says it is missing
FILE_ROLES = {
    ONNX_FILE: "the encoder and emission layer",
    INT8_FILE: "the int8 model",
    CRF_FILE: "the CRF's labels and scores",
    CONFIG_FILE: "labels, max_seq_length, window_stride",
    "tokenizer_config.json": "the tokenizer",
}


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _ort_errors() -> tuple[type[BaseException], ...]:
    """ONNX Runtime's exception classes (they derive from Exception alone)."""
    import importlib

    state = importlib.import_module("onnxruntime.capi.onnxruntime_pybind11_state")
    names = ("Fail", "InvalidArgument", "InvalidProtobuf", "InvalidGraph", "NoSuchFile", "RuntimeException")
    return tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type))


def _read_json(file: Path) -> dict:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CLNERUsageError(
            f"{file} cannot be read as JSON ({_one_line(err)}); export the model again with clner-export-onnx"
        ) from None
    if not isinstance(data, dict):
        raise CLNERUsageError(f"{file} holds a JSON {type(data).__name__}, not an object; export the model again")
    return data


def _check_files(folder: Path, names: Sequence[str]) -> None:
    missing = [n for n in names if not (folder / n).is_file()]
    if not missing:
        return
    what = ", ".join(f"{n} ({FILE_ROLES.get(n, 'the ONNX model that onnx.json names')})" for n in missing)
    hint = ""
    if (missing[0] == INT8_FILE) and (folder / ONNX_FILE).is_file():
        hint = f'; ONNXCLNER(folder, model_file="{ONNX_FILE}") runs the float model'
    raise CLNERUsageError(
        f"{folder} is not a complete ONNX export of a CLNER model: {what} {'is' if len(missing) == 1 else 'are'} "
        f"missing; export the model again with clner-export-onnx{hint}"
    )


def _check_crf(crf: dict, file: Path, width: int | None, model_file: Path) -> list[str]:
    """`crf.json`'s labels, checked against the model's emission scores a word (`width`) and its score tables'
    shapes against the labels."""
    labels = crf.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise CLNERUsageError(f"{file}: labels must be the list of the model's tag names, got {str(labels)[:80]}")
    n = len(labels)
    if width is not None and width != n:
        raise CLNERUsageError(
            f"{file} names {n} labels but {model_file.name} gives {width} emission scores a word: the two files are "
            "not of one export (tags past the labels would have no name); export the model again with "
            "clner-export-onnx"
        )
    shapes = {"start_transitions": (n,), "transitions": (n, n), "end_transitions": (n,)}
    if crf.get("use_constraints", True):
        shapes.update(allowed_start=(n,), allowed_transitions=(n, n), allowed_end=(n,))
    for key, shape in shapes.items():
        try:
            got = np.asarray(crf[key], dtype=np.float64).shape
        except KeyError:
            raise CLNERUsageError(f"{file} lacks {key}; export the model again with clner-export-onnx") from None
        except (TypeError, ValueError):
            got = "not a table of numbers"
        if got != shape:
            raise CLNERUsageError(f"{file}: {key} has shape {got}, where its {n} labels need {shape}")
    return labels


def _check_labels(labels: list[str], config: dict, folder: Path) -> None:
    """`crf.json`'s labels against `config.json`'s id2label: the same names in the same order (the emission
    scores are in the model's label order: another order names every tag wrongly)."""
    id2label = config.get("id2label")
    if id2label is None:
        return
    file, crf_file = folder / CONFIG_FILE, folder / CRF_FILE
    try:
        by_id = {int(k): v for k, v in id2label.items()}
    except (AttributeError, TypeError, ValueError):
        raise CLNERUsageError(f"{file}: id2label must map label ids (0, 1, ...) to names") from None
    if sorted(by_id) != list(range(len(by_id))):
        raise CLNERUsageError(f"{file}: id2label's ids {sorted(by_id)} are not 0 to {len(by_id) - 1}")
    theirs = [by_id[i] for i in range(len(by_id))]
    if theirs == labels:
        return
    if len(theirs) != len(labels):
        detail = f"{len(labels)} labels in {CRF_FILE}, {len(theirs)} in {CONFIG_FILE}"
    else:
        i = next(i for i, (a, b) in enumerate(zip(labels, theirs)) if a != b)
        kind = "the same labels in another order" if sorted(theirs) == sorted(labels) else "other labels"
        detail = f"{kind}: id {i} is {labels[i]!r} in {CRF_FILE} and {theirs[i]!r} in {CONFIG_FILE}"
    if sorted(theirs) != sorted(labels):
        only_crf = [x for x in labels if x not in theirs]
        only_config = [x for x in theirs if x not in labels]
        detail += f" (only in {CRF_FILE}: {only_crf}; only in {CONFIG_FILE}: {only_config})"
    raise CLNERUsageError(
        f"{crf_file} labels differ from {file} id2label: {detail}. The files are not of one export and the tags "
        "would be misnamed; export the model again with clner-export-onnx"
    )


class ONNXCLNER:
    """A CLNER model exported by `export_onnx`, run with ONNX Runtime (no torch model is loaded).

    Args:
        path: the exported folder. providers: ONNX Runtime execution providers (default: CPU).
        threads: intra-op threads of the session (default: ONNX Runtime's).
        model_file: the ONNX file of the folder to run (default: the one `onnx.json` names: `model.int8.onnx` after
            `--quantize int8`, else `model.onnx`).

    A folder that is not a complete, consistent export is a `CLNERUsageError` (a ValueError) when it loads, naming
    the file and what is wrong with it (see the module's docstring).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        model_file: str | None = None,
    ):
        ort = require_onnx("onnxruntime")
        path = Path(path)
        if not path.is_dir():
            raise CLNERUsageError(f"{path}: no such folder; give a folder that clner-export-onnx wrote")
        export = _read_json(path / EXPORT_FILE) if (path / EXPORT_FILE).is_file() else {}
        named = export.get("model_file") or ONNX_FILE
        model_file = str(model_file or named)
        if Path(model_file).name != model_file or model_file in ("", ".", ".."):
            raise CLNERUsageError(f"the ONNX model file {model_file!r} must be a file name in {path}, not a path")
        _check_files(path, (CONFIG_FILE, CRF_FILE, model_file, "tokenizer_config.json"))
        config = _read_json(path / CONFIG_FILE)
        crf = _read_json(path / CRF_FILE)
        self.model_file = path / model_file
        #: `onnx.json`'s record of the quantization of the file that runs (None: the float model)
        self.quantization = export.get("quantization") if model_file == named else None

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(self.model_file), sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except _ort_errors() as err:
            raise CLNERUsageError(
                f"{self.model_file} cannot be loaded by ONNX Runtime {ort.__version__} ({_one_line(err)}); export "
                "the model again with clner-export-onnx"
            ) from None
        self.input_names = {i.name for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if {"input_ids", "attention_mask", "word_index"} - self.input_names or "emissions" not in outputs:
            raise CLNERUsageError(
                f"{self.model_file} is not a CLNER export: its graph maps {', '.join(sorted(self.input_names))} to "
                f"{', '.join(sorted(outputs))}, where clner-export-onnx writes one from input_ids, attention_mask "
                "and word_index to emissions"
            )
        shape = outputs["emissions"].shape or [None]
        width = shape[-1] if isinstance(shape[-1], int) else None

        self.labels = _check_crf(crf, path / CRF_FILE, width, self.model_file)
        _check_labels(self.labels, config, path)
        self.start, self.transitions, self.end = _crf_scores(crf)
        # never AutoTokenizer.from_pretrained(path) alone: config.json's auto_map makes it ask "Do you wish to run the
        # custom code? [y/N]" and wait 15 s for an answer
        try:
            self.tokenizer = load_clner_tokenizer(path, config)
        except (OSError, ValueError, TypeError, KeyError) as err:
            raise CLNERUsageError(
                f"{path}: its tokenizer (tokenizer_config.json and the files it names) cannot be loaded "
                f"({_one_line(err)}); export the model again with clner-export-onnx"
            ) from None
        vocabulary = [n for n in getattr(self.tokenizer, "vocab_files_names", {}).values() if isinstance(n, str)]
        if vocabulary and not any((path / n).is_file() for n in vocabulary):  # else a tokenizer that knows no word
            raise CLNERUsageError(
                f"{path} is not a complete ONNX export of a CLNER model: {' or '.join(vocabulary)} (the "
                f"vocabulary of its {type(self.tokenizer).__name__}) is missing; export the model again with "
                "clner-export-onnx"
            )
        encoder = config.get("encoder") if isinstance(config.get("encoder"), dict) else {}
        vocab_size = encoder.get("vocab_size")
        if isinstance(vocab_size, int) and len(self.tokenizer) > vocab_size:
            raise CLNERUsageError(
                f"{path}: its tokenizer has {len(self.tokenizer)} tokens, more than the {vocab_size} embeddings of "
                f"the encoder ({CONFIG_FILE} encoder.vocab_size): another model's tokenizer; export the model again "
                "with clner-export-onnx"
            )
        self.max_seq_length, self.window_stride = self._check_lengths(config, export, path / CONFIG_FILE)
        self.snippet_separator = config.get("snippet_separator")
        if width is None:  # a graph whose output shape ONNX Runtime does not know: one short run tells it
            _check_crf(crf, path / CRF_FILE, self._probe(8).shape[-1], self.model_file)

    def _check_lengths(self, config: dict, export: dict, file: Path) -> tuple[int, int]:
        """`config.json`'s max_seq_length and window_stride, checked against what the exported encoder can run:
        a view longer than its position embeddings fails inside ONNX Runtime at the first long sentence."""
        length = config.get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH
        if isinstance(length, bool) or not isinstance(length, int):
            raise CLNERUsageError(f"{file}: max_seq_length must be a whole number of sub-tokens, got {length!r}")
        specials = self.tokenizer.num_special_tokens_to_add(pair=False)
        if length <= specials:
            raise CLNERUsageError(
                f"{file}: max_seq_length {length} leaves no room for words: a view holds {specials} special tokens "
                "and at least one word's sub-tokens (use 16 or more)"
            )
        advice = "use {} or less (longer sentences are split into windows)"
        if "max_positions" in export:  # recorded at export: the encoder's position embeddings
            limit = export["max_positions"]
            if isinstance(limit, int) and length > limit:
                raise CLNERUsageError(
                    f"{file}: max_seq_length {length} exceeds the {limit} positions that the exported encoder in "
                    f"{self.model_file.name} can run (max_position_embeddings, {EXPORT_FILE} max_positions); "
                    + advice.format(limit)
                )
        else:  # an export from before onnx.json: one run of a view that long tells whether the graph takes it
            try:
                self._probe(length)
            except _ort_errors() as err:
                encoder = config.get("encoder") if isinstance(config.get("encoder"), dict) else {}
                positions = encoder.get("max_position_embeddings")
                raise CLNERUsageError(
                    f"{file}: max_seq_length {length} is more than the exported encoder in {self.model_file.name} "
                    f"can run (a view of {length} sub-tokens fails: {_one_line(err)[:200]}); "
                    + (advice.format(positions) if positions else "lower it")
                ) from None
        stride = config.get("window_stride")
        stride = 16 if stride is None else stride
        if isinstance(stride, bool) or not isinstance(stride, int) or not 0 <= stride < length - 2:
            raise CLNERUsageError(
                f"{file}: window_stride {stride!r} must be a whole number of words from 0 to {max(length - 3, 0)}, "
                f"below the {max(length - 2, 0)} words a window of max_seq_length {length} holds (the default is 16)"
            )
        return length, stride

    def _probe(self, length: int) -> np.ndarray:
        """The emissions of one view of `length` sub-tokens (unknown-word tokens) with one word."""
        ids = np.full((1, length), self.tokenizer.unk_token_id or 0, dtype=np.int64)
        batch = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        return self.emissions({**batch, "word_index": np.ones((1, 1), dtype=np.int64)})

    def emissions(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """Word-level emissions `(B, W, C)` of one padded view."""
        return self.session.run(["emissions"], {k: v for k, v in batch.items() if k in self.input_names})[0]

    def predict(
        self,
        inputs: str | Sequence[str | Sequence[str]],
        contexts=None,
        batch_size: int = 16,
        return_entities: bool | None = None,
    ) -> list:
        """As `CLNERForTokenClassification.predict`: one text gives its entities; a list of sentences (texts or
        word lists) gives their tags, or their entities with `return_entities=True`."""

        return predict_sentences(
            inputs,
            contexts,
            encode=lambda words, context: encode_example(
                self.tokenizer, words, context, self.max_seq_length, self.window_stride, self.snippet_separator
            ),
            decode=self.decode,
            labels=self.labels,
            pad_id=self.tokenizer.pad_token_id or 0,
            batch_size=batch_size,
            return_entities=return_entities,
            width=1,
        )

    def decode(self, batch: dict, with_scores: bool = True) -> tuple[list[list[int]], list[list[float]] | None]:
        """An inference-core `Decoder`: a padded batch (`inference_clner.pad_view`) -> per row the numpy Viterbi
        path and, with `with_scores`, the CRF marginal of each of its tags."""
        arrays = {k: np.asarray(v, dtype=np.int64) for k, v in batch.items()}
        emissions = self.emissions(arrays)
        lengths = (arrays["word_index"] >= 0).sum(1)
        paths, scores = [], []
        for em, n in zip(emissions, lengths):
            path = viterbi_numpy(em, int(n), self.start, self.transitions, self.end)
            paths.append(path)
            if with_scores:
                marg = marginals_numpy(em, int(n), self.start, self.transitions, self.end)
                scores.append([float(marg[k, t]) for k, t in enumerate(path)])
        return paths, scores if with_scores else None


# ---------------------------------------------------------------------------------------------------------- CLI
def require_onnx(*modules: str):
    """Import `modules` (packages of the `[onnx]` extra) and return the last; one that is missing is a
    `CLNERUsageError` naming it and the extra that installs it, not a traceback from deep inside torch.onnx (nor an
    empty OUTPUT folder left behind)."""
    import importlib

    module = None
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise CLNERUsageError(
                f"ONNX export and inference need the {name} package, which cannot be imported "
                f'({err}): pip install ".[onnx]" (onnx and onnxruntime)'
            ) from None
    return module
