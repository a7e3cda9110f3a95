"""ONNX export and inference of a CLNER model: the encoder and the emission layer run in ONNX Runtime, the CRF's
Viterbi decoding (and its marginals, for entity scores) in numpy.

    clner-export-onnx out/clner-wnut17 out/clner-wnut17-onnx    # or: python clner/onnx.py MODEL OUTPUT

    from clner.onnx import ONNXCLNER
    ner = ONNXCLNER("out/clner-wnut17-onnx")
    ner.predict([["Justin", "Bieber", "lands"]])                      # tags, as CLNERForTokenClassification.predict
    ner.predict("Justin Bieber lands in Paris", contexts=["Justin Bieber is a singer ..."])  # entities

Export and inference need the `[onnx]` extra (`pip install ".[onnx]"`: onnx and onnxruntime). Loading never asks
whether to run remote code: the tokenizer is chosen from the encoder's config, not from the CLNER config's
`auto_map`.

The exported graph maps one view's `input_ids`, `attention_mask`, [`token_type_ids`] `(B, L)` and `word_index`
`(B, W)` to word-level emissions `(B, W, C)`. The CRF's start / transition / end scores and the tagging scheme's
constraints are written beside it in `crf.json`; inputs are built by `modeling_clner.encode_example` (windows of long
sentences included) and stitched back as `predict` does, so the ONNX model gives the torch model's tags. The folder
also holds the tokenizer and `config.json` (labels, `max_seq_length`, `window_stride`).
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
CRF_FILE = "crf.json"


# ------------------------------------------------------------------------------------------------------ export
def export_onnx(model, tokenizer, output_dir: str | os.PathLike, opset: int = 17) -> Path:
    """Write `model.onnx` (encoder + emissions, dynamic batch and lengths), `crf.json`, `config.json` and the
    tokenizer into `output_dir`; returns the folder. `model` is a `CLNERForTokenClassification` (in eval mode for the
    export; dropout is off)."""
    import torch

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
    return out


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


class ONNXCLNER:
    """A CLNER model exported by `export_onnx`, run with ONNX Runtime (no torch model is loaded).

    Args:
        path: the exported folder. providers: ONNX Runtime execution providers (default: CPU).
        threads: intra-op threads of the session (default: ONNX Runtime's).
    """

    def __init__(self, path: str | os.PathLike, providers: Sequence[str] | None = None, threads: int | None = None):

        ort = require_onnx("onnxruntime")
        path = Path(path)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(path / ONNX_FILE), sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        # never AutoTokenizer.from_pretrained(path) alone: config.json's auto_map makes it ask "Do you wish to run the
        # custom code? [y/N]" and wait 15 s for an answer
        self.tokenizer = load_clner_tokenizer(path, config)
        crf = json.loads((path / CRF_FILE).read_text(encoding="utf-8"))
        self.labels = list(crf["labels"])
        self.start, self.transitions, self.end = _crf_scores(crf)
        self.max_seq_length = int(config.get("max_seq_length") or DEFAULT_MAX_SEQ_LENGTH)
        self.window_stride = int(config.get("window_stride") or 16)
        self.snippet_separator = config.get("snippet_separator")

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
