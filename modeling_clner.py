"""CLNER: a transformer encoder with a linear-chain CRF over words (Wang et al., ACL 2021).

This file is uploaded to the Hub as remote code, so it is self-contained: it imports only torch and
transformers. It holds

* `LinearChainCRF`: a batch-first, vectorised CRF with optional hard constraints from a tagging scheme;
* `CLNERConfig` / `CLNERForTokenClassification`: any `AutoModel` encoder + dropout + linear emissions + CRF
  over *words* (the first sub-token of each word carries it; context tokens are never labelled);
* `encode_example`: the single place that turns a sentence (and its external context) into the two model
  views, so training, evaluation, the pipeline and `predict` all build inputs the same way.

Shapes use B = batch, T = words (CRF time steps), C = tags, L = sub-tokens, H = hidden size.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.utils import ModelOutput

try:  # transformers >= 5: initialisers that respect already-loaded weights
    from transformers import initialization as hf_init
except ImportError:  # pragma: no cover - transformers 4.x
    hf_init = None

__all__ = [
    "LinearChainCRF",
    "scheme_constraints",
    "check_label_scheme",
    "CLNERConfig",
    "CLNERForTokenClassification",
    "CLNERTokenClassifierOutput",
    "encode_example",
    "group_entities",
    "split_words",
    "tags_to_ids",
    "PIPELINE_TASK",
    "PIPELINE_TASK_ALIASES",
    "PublishedPipelines",
]

SCHEMES = ("BIO", "BIOES")
#: The task under which a saved model's `config.custom_pipelines` publishes the CLNER pipeline: the standard one, so
#: that `pipeline(model=repo, trust_remote_code=True)` and `pipeline("token-classification", ...)` both build it.
PIPELINE_TASK = "token-classification"
#: Other names a `pipeline(task, ...)` call may use for it: transformers' alias of the task, and this project's own
#: task name. `PublishedPipelines` finds the published entry under them.
PIPELINE_TASK_ALIASES = ("ner", "clner-token-classification")


# --------------------------------------------------------------------------------------------------------------
# Tagging-scheme constraints
# --------------------------------------------------------------------------------------------------------------
def _split_label(label: str) -> tuple[str, str]:
    """`'B-person'` -> `('B', 'person')`; `'O'` and labels without a prefix -> `('O', '')`.

    BILOU prefixes are read as their BIOES equivalents (L = E, U = S).
    """
    if len(label) > 2 and label[1] in "-_" and label[0] in "BIESLU":
        prefix = {"L": "E", "U": "S"}.get(label[0], label[0])
        return prefix, label[2:]
    return "O", ""


def group_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entity spans `(type, start, end)` (word indices, end exclusive) of a BIO / BIOES tag sequence.

    Lenient like seqeval: an `I-`/`E-` tag that does not continue an open entity of its type starts a new one
    (this can only happen where windows of a very long input were stitched together).
    """
    spans: list[tuple[str, int, int]] = []
    cur: Optional[list] = None
    for i, tag in enumerate(tags):
        prefix, etype = _split_label(tag)
        if prefix == "O":
            if cur:
                spans.append(tuple(cur))
            cur = None
            continue
        if prefix in ("B", "S") or cur is None or cur[0] != etype:
            if cur:
                spans.append(tuple(cur))
            cur = [etype, i, i + 1]
        else:
            cur[2] = i + 1
        if prefix in ("E", "S"):
            spans.append(tuple(cur))
            cur = None
    if cur:
        spans.append(tuple(cur))
    return spans


# URLs, @mentions / #hashtags, words with inner apostrophes, hyphens, dots or ampersands, then any other single
# non-space character (punctuation, emoji): close to how CoNLL / WNUT data are tokenized.
_WORD_RE = re.compile(r"https?://\S+|www\.\S+|[@#]?\w+(?:['\u2019\-.&]\w+)*|[^\w\s]")


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Split raw text into `(word, start, end)` character spans (how `predict` and the pipeline split text)."""
    return [(m.group(), m.start(), m.end()) for m in _WORD_RE.finditer(text)]


def _context_snippets(value: Any, what: str) -> Optional[list[str]]:
    """One sentence's context as snippet strings: None, one string, or a list / tuple of strings. Anything else (a
    dict, None or a number among the snippets) is a TypeError naming the argument, never the text "None" or a
    dict's keys."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        bad = next((i for i, s in enumerate(value) if not isinstance(s, str)), None)
        if bad is None:
            return list(value)
        raise TypeError(f"{what} must be a string or a list of snippet strings; item {bad} is "
                        f"{type(value[bad]).__name__} {value[bad]!r}")
    raise TypeError(f"{what} must be a string or a list of snippet strings (or None), got {type(value).__name__}")


def _whitespace_words(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def scheme_constraints(labels: Sequence[str], scheme: str = "BIO") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which starts, transitions and ends a tagging scheme allows.

    Args:
        labels: tag names indexed by tag id, e.g. `["O", "B-per", "I-per"]`.
        scheme: `"BIO"` (IOB2) or `"BIOES"`.

    Returns:
        `(allowed_start (C,), allowed_transitions (C, C), allowed_end (C,))` bool tensors;
        `allowed_transitions[i, j]` says whether tag j may follow tag i.
    """
    scheme = scheme.upper()
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown tagging scheme {scheme!r}; expected one of {SCHEMES}.")
    parts = [_split_label(label) for label in labels]
    n = len(parts)
    if scheme == "BIO":
        bad = [lab for lab, (p, _) in zip(labels, parts) if p in "ES"]
        if bad:
            raise ValueError(f"Labels {bad} are not BIO tags; use scheme='BIOES'.")
    start = torch.tensor([p in ("O", "B", "S") for p, _ in parts], dtype=torch.bool)
    if scheme == "BIO":
        end = torch.ones(n, dtype=torch.bool)
    else:
        end = torch.tensor([p in ("O", "E", "S") for p, _ in parts], dtype=torch.bool)
    trans = torch.zeros(n, n, dtype=torch.bool)
    for i, (p_i, t_i) in enumerate(parts):
        for j, (p_j, t_j) in enumerate(parts):
            if scheme == "BIO":
                ok = p_j in ("O", "B") or (p_j == "I" and p_i in ("B", "I") and t_i == t_j)
            else:
                inside = p_i in ("B", "I")  # an entity is open after tag i
                if p_j in ("I", "E"):
                    ok = inside and t_i == t_j
                else:  # O, B, S can only follow a closed entity
                    ok = not inside
            trans[i, j] = ok
    return start, trans, end


def check_label_scheme(labels: Sequence[str], scheme: str = "BIO") -> None:
    """Raise ValueError when `labels` cannot be the tags of `scheme` (a model built on them would silently predict
    wrong types, or only O): under BIO every label but O is B-/I-<type>; under BIOES B-/I-/E-/S-<type>, and a type
    with B- (or I-) tags has E- tags, since under BIOES no entity could end without them."""
    scheme = scheme.upper()
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown tagging scheme {scheme!r}; expected one of {SCHEMES}.")
    bare = [label for label in labels if label != "O" and _split_label(label)[0] == "O"]
    if bare:
        raise ValueError(
            f"labels {bare[:5]} have no B-/I- prefix, so under tag_scheme {scheme!r} they would be read as O. Tags "
            "of an IO-tagged file (bare types) must be converted to BIO first (run_ner_cl.py --tag_scheme IO does "
            "it); fix the labels (config.json id2label) or the data."
        )
    if scheme == "BIOES":
        kinds: dict[str, set] = {}
        for label in labels:
            prefix, etype = _split_label(label)
            if prefix != "O":
                kinds.setdefault(etype, set()).add(prefix)
        broken = sorted(t for t, p in kinds.items() if (p & {"B", "I"}) and "E" not in p)
        if broken:
            raise ValueError(
                f"tag_scheme 'BIOES' but the labels of type(s) {broken} have no E- tag: under BIOES no such entity "
                "could end, and the model would predict only O. These look like BIO labels: set tag_scheme 'BIO' "
                "(config.json, or --tag_scheme BIO when training)."
            )


# --------------------------------------------------------------------------------------------------------------
# Linear-chain CRF
# --------------------------------------------------------------------------------------------------------------
def _forward_backward(emissions, mask, start, transitions, end, need_beta: bool):
    """Forward (and backward) log-space recursions.

    All tensors share one float dtype; disallowed scores may be `-inf`.

    Args:
        emissions: `(B, T, C)`; mask: `(B, T)` bool, contiguous prefixes; start, end: `(C,)`; transitions: `(C, C)`.

    Returns:
        `alpha (B, T, C)`, `beta (B, T, C)` or None, `log_z (B,)`, each meaningful on valid positions only.
        `alpha[b, t]` is the log-score of all prefixes ending in each tag at t; `beta[b, t]` the log-score of all
        suffixes from t (excluding emission t, including the end score).

    Two ideas keep the loop short: matrix products in scaled exp-space replace `(B, C, C)` log-sum-exps (one
    `(B, C) @ (C, C)` per step, the running maximum subtracted), and the backward recursion runs as a forward one over
    each row's reversed valid prefix, stacked with the forward recursion. Rows are then left-aligned in both
    directions, so padding never needs masking inside the loop: a row's padded steps come after its end.
    """
    bsz, seq_len, num_tags = emissions.shape
    lengths = mask.sum(1)
    last = (lengths - 1).clamp_min(0)
    t_max = transitions.detach().max().clamp_min(-1e4)
    exp_trans = torch.exp(transitions - t_max)  # (C, C), zeros where disallowed
    tiny = torch.finfo(emissions.dtype).tiny
    # with exp_trans scaled by exp(-t_max), each step adds t_max back; fold it into the emissions of steps >= 1
    shifted = emissions + t_max
    if need_beta:
        pos = torch.arange(seq_len, device=emissions.device)
        rev_index = torch.where(pos < lengths[:, None], last[:, None] - pos, pos)  # (B, T) reverses valid prefixes
        rev = shifted.gather(1, rev_index.unsqueeze(-1).expand(-1, -1, num_tags))
        inputs = torch.stack([shifted, rev]).permute(2, 0, 1, 3)  # (T, 2, B, C)
        state = torch.stack([start + emissions[:, 0], end + emissions.gather(1, last[:, None, None].expand(
            -1, 1, num_tags)).squeeze(1)])  # (2, B, C)
        mats = torch.stack([exp_trans, exp_trans.t()])
    else:
        inputs = shifted.transpose(0, 1)  # (T, B, C)
        state = start + emissions[:, 0]
        mats = exp_trans
    states = [state]
    for k in range(1, seq_len):
        # log(exp(state) @ mats): the max is a constant shift (detached); the clamps keep every value finite, so
        # unreachable states never produce NaN values or gradients
        m = state.detach().amax(-1, keepdim=True).clamp_min(-1e30)
        state = torch.log(torch.matmul(torch.exp(state - m), mats).clamp_min(tiny)) + m + inputs[k]
        states.append(state)
    out = torch.stack(states, dim=-2)  # ([2,] B, T, C)
    alpha = out[0] if need_beta else out
    log_z = torch.logsumexp(alpha.gather(1, last[:, None, None].expand(-1, 1, num_tags)).squeeze(1) + end, -1)
    if not need_beta:
        return alpha, None, log_z
    # out[1][b, k] = beta + emission at original position last_b - k; undo the reversal and the emission
    beta = out[1].gather(1, rev_index.unsqueeze(-1).expand(-1, -1, num_tags)) - emissions
    return alpha, beta, log_z


class _LogPartition(torch.autograd.Function):
    """log Z with a closed-form backward: d log Z / d scores are the CRF (pairwise) marginals.

    The forward runs the forward and backward recursions in one stacked loop; the backward is then a few
    vectorised operations instead of replaying the per-step autograd tape.
    """

    @staticmethod
    def forward(ctx, emissions, mask, start, transitions, end):
        alpha, beta, log_z = _forward_backward(emissions, mask, start, transitions, end, need_beta=True)
        ctx.save_for_backward(emissions, mask, transitions, alpha, beta, log_z)
        return log_z

    @staticmethod
    def backward(ctx, grad_log_z):
        emissions, mask, transitions, alpha, beta, log_z = ctx.saved_tensors
        g = grad_log_z.to(alpha.dtype)
        neg_inf = alpha.new_tensor(-math.inf)
        unary = torch.exp(torch.where(mask.unsqueeze(-1), alpha + beta - log_z[:, None, None], neg_inf))  # (B, T, C)
        grad_em = unary * g[:, None, None]
        grad_start = (unary[:, 0] * g[:, None]).sum(0)
        lengths = mask.sum(1)
        last = unary[torch.arange(len(lengths), device=lengths.device), (lengths - 1).clamp_min(0)]
        grad_end = (last * g[:, None]).sum(0)
        if emissions.shape[1] > 1:
            # sum_{b,t} g_b p(y_{t-1}=i, y_t=j) = exp(trans_ij) * sum_{b,t} exp(a_i - s) exp(e_j + b_j - log Z + s),
            # a (C, N) @ (N, C) product instead of a (B, T, C, C) tensor; float64 keeps the rescaled factors in range.
            a = alpha[:, :-1].double()
            shift = a.amax(-1, keepdim=True)
            shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
            right = (emissions[:, 1:] + beta[:, 1:]).double() - log_z.double()[:, None, None] + shift
            right = torch.exp(torch.where(mask[:, 1:, None], right, -math.inf)) * g.double()[:, None, None]
            left = torch.exp(a - shift)
            num_tags = alpha.shape[-1]
            outer = left.reshape(-1, num_tags).t() @ right.reshape(-1, num_tags)
            finite = torch.isfinite(transitions)
            grad_trans = torch.where(finite, torch.exp(transitions.double()) * outer, 0.0).to(alpha.dtype)
        else:
            grad_trans = torch.zeros_like(transitions)
        return grad_em, None, grad_start, grad_trans, grad_end


class LinearChainCRF(nn.Module):
    """Linear-chain conditional random field, batch-first.

    Args:
        num_tags: number of tags C.
        constraints: optional `(allowed_start (C,), allowed_transitions (C, C), allowed_end (C,))` bool tensors,
            e.g. from `scheme_constraints(labels, "BIO")`. Disallowed moves score `-inf` in `log_partition`,
            `nll`, `viterbi_decode` and `marginals` while `use_constraints` is True (switch it off at any time).

    Inputs everywhere: emissions `(B, T, C)` float, mask `(B, T)` bool whose rows are contiguous prefixes of True
    (a row may be all False), tags `(B, T)` long (ignored where mask is False).
    Computation runs in float32 (float64 inputs stay float64) with autocast disabled, so mixed precision
    training cannot overflow the recursions.
    """

    def __init__(self, num_tags: int, constraints: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None):
        super().__init__()
        if num_tags < 1:
            raise ValueError(f"num_tags must be positive, got {num_tags}")
        self.num_tags = num_tags
        self.start_transitions = nn.Parameter(torch.empty(num_tags))
        self.end_transitions = nn.Parameter(torch.empty(num_tags))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags))
        self.use_constraints = constraints is not None
        if constraints is None:
            constraints = (
                torch.ones(num_tags, dtype=torch.bool),
                torch.ones(num_tags, num_tags, dtype=torch.bool),
                torch.ones(num_tags, dtype=torch.bool),
            )
        start, trans, end = (torch.as_tensor(c, dtype=torch.bool) for c in constraints)
        if start.shape != (num_tags,) or trans.shape != (num_tags, num_tags) or end.shape != (num_tags,):
            raise ValueError("constraints must have shapes (C,), (C, C), (C,)")
        self.register_buffer("allowed_start", start.clone(), persistent=False)
        self.register_buffer("allowed_transitions", trans.clone(), persistent=False)
        self.register_buffer("allowed_end", end.clone(), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-0.1, 0.1), as pytorch-crf."""
        for p in (self.start_transitions, self.end_transitions, self.transitions):
            nn.init.uniform_(p, -0.1, 0.1)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, use_constraints={self.use_constraints}"

    # -- helpers --------------------------------------------------------------------------------------------------
    def _scores(self, dtype):
        """Start, transition and end scores with constraints applied, in `dtype`."""
        start, trans, end = (p.to(dtype) for p in (self.start_transitions, self.transitions, self.end_transitions))
        if self.use_constraints:
            start = start.masked_fill(~self.allowed_start, -math.inf)
            trans = trans.masked_fill(~self.allowed_transitions, -math.inf)
            end = end.masked_fill(~self.allowed_end, -math.inf)
        return start, trans, end

    def _check(self, emissions: torch.Tensor, mask: Optional[torch.Tensor], tags: Optional[torch.Tensor] = None):
        if emissions.dim() != 3:
            raise ValueError(f"emissions must be (batch, seq_len, num_tags), got shape {tuple(emissions.shape)}")
        if emissions.shape[2] != self.num_tags:
            raise ValueError(f"emissions have {emissions.shape[2]} tags, the CRF has {self.num_tags}")
        if mask is None:
            mask = torch.ones(emissions.shape[:2], dtype=torch.bool, device=emissions.device)
        if mask.shape != emissions.shape[:2]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match emissions {tuple(emissions.shape[:2])}")
        mask = mask.bool()
        if mask.shape[1] > 1 and bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            raise ValueError("mask rows must be contiguous prefixes of True (pack words to the left)")
        if tags is not None and tags.shape != emissions.shape[:2]:
            raise ValueError(f"tags shape {tuple(tags.shape)} does not match emissions {tuple(emissions.shape[:2])}")
        dtype = torch.float64 if emissions.dtype == torch.float64 else torch.float32
        return emissions.to(dtype), mask, dtype

    # -- public API -----------------------------------------------------------------------------------------------
    def log_partition(self, emissions: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """log Z(x) per sequence, `(B,)`; 0 for an all-masked row."""
        return self._log_partition(*self._check(emissions, mask))

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Unnormalised log-score of the given tag sequences, `(B,)`; 0 for an all-masked row."""
        return self._score(*self._check(emissions, mask, tags), tags)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Negative log-likelihood of `tags`, `(B,)`; 0 for an all-masked row.

        Raises ValueError when a gold sequence breaks the tagging-scheme constraints (its likelihood is 0), naming
        the offending rows, instead of returning an infinite loss.
        """
        emissions, mask, dtype = self._check(emissions, mask, tags)  # validated once for both terms
        gold = self._score(emissions, mask, dtype, tags)
        if self.use_constraints and bool(torch.isinf(gold).any()):
            rows = torch.nonzero(torch.isinf(gold)).flatten().tolist()
            raise ValueError(
                f"gold tags of batch rows {rows} violate the tagging-scheme constraints (e.g. O -> I-x); fix the "
                "data (run_ner_cl.py checks it at load time with --tag_scheme; IOB1 data needs --tag_scheme IOB1), "
                "or train without constraints: --crf_constraints false (CLNERConfig(crf_constraints=False))"
            )
        return self._log_partition(emissions, mask, dtype) - gold

    def _log_partition(self, emissions, mask, dtype):
        if emissions.shape[1] == 0:
            return emissions.new_zeros(emissions.shape[0])
        with torch.autocast(emissions.device.type, enabled=False):
            start, trans, end = self._scores(dtype)
            if torch.is_grad_enabled() and (emissions.requires_grad or self.transitions.requires_grad):
                log_z = _LogPartition.apply(emissions, mask, start, trans, end)
            else:
                log_z = _forward_backward(emissions, mask, start, trans, end, need_beta=False)[2]
        return torch.where(mask[:, 0], log_z, torch.zeros_like(log_z))

    def _score(self, emissions, mask, dtype, tags):
        bsz, seq_len, _ = emissions.shape
        if seq_len == 0:
            return emissions.new_zeros(bsz)
        valid = tags[mask]
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= self.num_tags):
            raise ValueError(f"tags must be in [0, {self.num_tags}) on unmasked positions, got {valid.unique().tolist()}")
        with torch.autocast(emissions.device.type, enabled=False):
            start, trans, end = self._scores(dtype)
            tags = tags.masked_fill(~mask, 0).long()
            fmask = mask.to(dtype)
            total = (emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1) * fmask).sum(1)
            if seq_len > 1:
                pair = trans[tags[:, :-1], tags[:, 1:]]
                total = total + torch.where(mask[:, 1:], pair, torch.zeros_like(pair)).sum(1)
            lengths = mask.sum(1)
            last = tags.gather(1, (lengths - 1).clamp_min(0).unsqueeze(1)).squeeze(1)
            total = total + start[tags[:, 0]] + end[last]
        return torch.where(lengths > 0, total, torch.zeros_like(total))

    def log_marginals(self, emissions: torch.Tensor, mask: Optional[torch.Tensor] = None, temperature: float = 1.0):
        """log p(y_t = c | x) by forward-backward, `(B, T, C)`, differentiable.

        `temperature` divides the log-marginals before they are renormalised (the CL-KL loss of official CLNER
        uses 0.3). Values are finite everywhere (0 on padded positions), so KL terms built on them never give NaN.
        """
        emissions, mask, dtype = self._check(emissions, mask)
        if emissions.shape[1] == 0:
            return emissions.new_zeros(emissions.shape)
        with torch.autocast(emissions.device.type, enabled=False):
            start, trans, end = self._scores(dtype)
            alpha, beta, log_z = _forward_backward(emissions, mask, start, trans, end, need_beta=True)
            log_marg = torch.where(mask.unsqueeze(-1), alpha + beta - log_z[:, None, None], torch.zeros_like(alpha))
            if temperature != 1.0:
                log_marg = log_marg / temperature
            log_marg = torch.log_softmax(log_marg.clamp_min(-1e30), dim=-1)
        return torch.where(mask.unsqueeze(-1), log_marg, torch.zeros_like(log_marg))

    def marginals(self, emissions: torch.Tensor, mask: Optional[torch.Tensor] = None, temperature: float = 1.0):
        """Token posteriors p(y_t = c | x), `(B, T, C)`: rows sum to 1 on valid positions and are 0 elsewhere.

        See `log_marginals` for `temperature`.
        """
        mask = mask if mask is not None else torch.ones(emissions.shape[:2], dtype=torch.bool,
                                                        device=emissions.device)
        probs = self.log_marginals(emissions, mask, temperature).exp()
        return probs * mask.unsqueeze(-1).to(probs.dtype)

    @torch.no_grad()
    def viterbi_decode(self, emissions: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.LongTensor:
        """Best tag path per sequence, `(B, T)` long, padded positions filled with -1.

        Rows are left-aligned, so the max-plus recursion runs unmasked (a row's padded steps come after its end and
        never feed back); each row's best last tag is read at its own end and traced back in one batched loop.
        """
        emissions, mask, dtype = self._check(emissions, mask)
        bsz, seq_len, _ = emissions.shape
        if seq_len == 0:
            return torch.full((bsz, 0), -1, dtype=torch.long, device=emissions.device)
        with torch.autocast(emissions.device.type, enabled=False):
            start, trans, end = self._scores(dtype)
            em = emissions.transpose(0, 1).contiguous()  # (T, B, C)
            trans_t = trans.t().contiguous()  # [next, prev]
            score = start + em[0]
            scores, history = [score], []
            for t in range(1, seq_len):
                best, idx = (score.unsqueeze(1) + trans_t).max(-1)  # best previous tag for each next tag
                score = best + em[t]
                scores.append(score)
                history.append(idx)
            lengths = mask.sum(1)
            rows = torch.arange(bsz, device=emissions.device)
            last = torch.stack(scores)[(lengths - 1).clamp_min(0), rows]  # (B, C) score at each row's end
            best_last = (last + end).argmax(-1)
        # The backtrace is a chain of tiny gathers: numpy runs them at a fraction of torch's per-op cost.
        hist = torch.stack(history).cpu().numpy() if history else None
        lens = lengths.cpu().numpy()
        cur = best_last.cpu().numpy()
        idx_rows = np.arange(bsz)
        path = np.empty((seq_len, bsz), dtype=np.int64)
        path[seq_len - 1] = cur
        for t in range(seq_len - 1, 0, -1):
            cur = np.where(t < lens, hist[t - 1][idx_rows, cur], cur)  # rows that end before t keep their last tag
            path[t - 1] = cur
        path = torch.from_numpy(path.T.copy()).to(emissions.device)
        return path.masked_fill(~mask, -1)


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
        return self[key] if key in self else default


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
    max_seq_length: int = 512
    window_stride: int = 16
    trained_with_context: bool = True
    train_views: str = "both"
    cl_loss: str = "kl"
    cl_temperature: float = 0.3
    cl_weight: float | None = None
    nll_weight: float | None = None
    nll_ext_weight: float | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.tag_scheme = self.tag_scheme.upper()
        if self.tag_scheme not in SCHEMES:
            raise ValueError(f"tag_scheme must be one of {SCHEMES}, got {self.tag_scheme!r}")
        if self.label2id is None and self.id2label is not None:
            self.label2id = {label: i for i, label in self.id2label.items()}
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

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    word_hidden_states: Optional[torch.FloatTensor] = None
    word_mask: Optional[torch.BoolTensor] = None
    hidden_states: Optional[tuple[torch.FloatTensor, ...]] = None
    attentions: Optional[tuple[torch.FloatTensor, ...]] = None


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

    def _set_crf_constraints(self, crf: "LinearChainCRF") -> None:
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
            probe = {k: kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only", "trust_remote_code")
                     if k in kwargs}
            found = AutoConfig.from_pretrained(pretrained_model_name_or_path, **probe)
            if getattr(found, "model_type", None) != CLNERConfig.model_type:
                return cls.from_encoder(pretrained_model_name_or_path, **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as usual, with `auto_map` entries for AutoConfig, AutoModel and AutoModelForTokenClassification so
        that `AutoModel.from_pretrained(repo, trust_remote_code=True)` works too (transformers records only one
        auto class per model class). When `pipeline_clner.py` lies next to this file (a source checkout, an
        installed copy, a Hub model whose pipeline was loaded), it is saved too and published in
        `config.custom_pipelines`, so that `pipeline("ner", model=folder, trust_remote_code=True)` builds the CLNER
        pipeline from any saved folder (a Trainer checkpoint as well), not only from `save_for_hub`'s."""
        module_file = getattr(sys.modules.get(type(self).__module__), "__file__", None)
        pipeline_file = Path(module_file).with_name("pipeline_clner.py") if module_file else None
        if pipeline_file is not None and pipeline_file.is_file() and kwargs.get("is_main_process", True):
            if not getattr(self.config, "custom_pipelines", None):
                self.config.custom_pipelines = PublishedPipelines({PIPELINE_TASK: {
                    "impl": "pipeline_clner.CLNERTokenClassificationPipeline",
                    "pt": ["AutoModelForTokenClassification"], "type": "text"}})
            os.makedirs(save_directory, exist_ok=True)  # before saving: save_pretrained may upload (push_to_hub)
            target = Path(save_directory) / pipeline_file.name
            if not target.exists() or not os.path.samefile(target, pipeline_file):
                shutil.copyfile(pipeline_file, target)
        module = type(self).__module__.split(".")[-1]
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.update({
            "AutoConfig": f"{module}.{type(self.config).__name__}",
            "AutoModel": f"{module}.{type(self).__name__}",
            "AutoModelForTokenClassification": f"{module}.{type(self).__name__}",
        })
        self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    # -- forward --------------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.LongTensor] = None,
        word_index: Optional[torch.LongTensor] = None,
        labels: Optional[torch.LongTensor] = None,
        position_ids: Optional[torch.LongTensor] = None,
        inputs_embeds: Optional[torch.FloatTensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> CLNERTokenClassifierOutput:
        """Run one view. `labels (B, W)` are word-level tag ids, -100 on padding; returns word-level outputs."""
        if word_index is None:
            raise ValueError(
                "CLNERForTokenClassification labels words with a CRF, so it needs `word_index` (B, W), the position "
                "of each word's first sub-token; raw tokenizer output and transformers' stock token-classification "
                "pipeline do not provide it. To tag text, use `model.predict(\"some text\", tokenizer)` or the CLNER "
                "pipeline: `pipeline(\"ner\", model=<this model's folder or Hub id>, trust_remote_code=True)`. To "
                "build model inputs yourself, use `model.prepare_inputs` or `modeling_clner.encode_example`."
            )
        if word_index.dim() != 2:
            raise ValueError(f"word_index must be (batch, words), got shape {tuple(word_index.shape)}")
        ref = input_ids if input_ids is not None else inputs_embeds
        if ref is not None and ref.shape[0] != word_index.shape[0]:
            raise ValueError(f"batch size of word_index ({word_index.shape[0]}) != input ({ref.shape[0]})")
        if ref is not None and word_index.numel() and int(word_index.max()) >= ref.shape[1]:
            raise ValueError(f"word_index points past the input length {ref.shape[1]}")
        encoder_kwargs = dict(attention_mask=attention_mask, position_ids=position_ids, inputs_embeds=inputs_embeds,
                              output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                              return_dict=True)
        if token_type_ids is not None:
            encoder_kwargs["token_type_ids"] = token_type_ids
        encoded = self.encoder(input_ids, **encoder_kwargs)
        sequence = encoded.last_hidden_state  # (B, L, H)
        word_mask = word_index >= 0
        gather_index = word_index.clamp_min(0).unsqueeze(-1).expand(-1, -1, sequence.shape[-1])
        word_hidden = sequence.gather(1, gather_index) * word_mask.unsqueeze(-1).to(sequence.dtype)
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

    def crf_loss(self, logits: torch.Tensor, labels: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """Mean CRF NLL over the labelled rows. A row whose labels are all -100 is unlabelled (semi-supervised data)
        and is left out; a labelled row must label every word."""
        nll, labelled = self.crf_nll(logits, labels, word_mask)
        return nll.sum() / labelled.sum().clamp_min(1)

    def crf_nll(self, logits: torch.Tensor, labels: torch.Tensor,
                word_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-row CRF NLL `(B,)` (0 on unlabelled rows) and which rows are labelled `(B,)` bool.

        Shapes: logits `(B, W, C)`, labels and word_mask `(B, W)`; a row whose labels are all -100 is unlabelled.
        """
        if labels.shape != word_mask.shape:
            raise ValueError(f"labels shape {tuple(labels.shape)} != word_index shape {tuple(word_mask.shape)}")
        labelled = ((labels != -100) & word_mask).any(1)
        bad = word_mask & labelled.unsqueeze(1) & ((labels < 0) | (labels >= self.config.num_labels))
        if bool(bad.any()):
            raise ValueError(f"labels must be in [0, {self.config.num_labels}) on every word of a labelled row; got "
                             f"{labels[bad].unique().tolist()}")
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
            warnings.warn("This model was trained without external contexts; predictions with `context` may be worse "
                          "than without.", UserWarning, stacklevel=3)
        elif not with_context and views == "context":
            warnings.warn("This model was trained only on the context view (`train_views=context`); predictions "
                          "without context may be worse.", UserWarning, stacklevel=3)

    def prepare_inputs(self, tokenizer, sentences: Sequence[Sequence[str]], contexts=None, max_seq_length=None):
        """Encode word lists (and optional contexts) into features, one or more (windows) per sentence."""
        max_len = max_seq_length or self.config.max_seq_length
        contexts = contexts if contexts is not None else [None] * len(sentences)
        features = []
        for i, (words, ctx) in enumerate(zip(sentences, contexts)):
            for feat in encode_example(tokenizer, list(words), ctx, max_len, self.config.window_stride,
                                       self.config.snippet_separator):
                feat["example_id"] = i
                features.append(feat)
        return features

    @torch.no_grad()
    def predict(
        self,
        inputs: str | Sequence[str | Sequence[str]],
        tokenizer,
        contexts: Optional[Sequence[Sequence[str] | str | None] | str] = None,
        batch_size: int = 16,
        max_seq_length: Optional[int] = None,
        return_entities: Optional[bool] = None,
    ) -> list:
        """Tag text by Viterbi: entities with character offsets and scores, or one tag per word.

        Args:
            inputs: one text (a string), or a list of sentences, each a text or a list of words.
            tokenizer: the model's (fast) tokenizer.
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
        single = isinstance(inputs, str)
        if single:
            inputs = [inputs]
            contexts = None if contexts is None else [_context_snippets(contexts, "contexts= (one text)")]
        elif contexts is not None:
            if not isinstance(contexts, (list, tuple)):
                raise TypeError(f"contexts= for a list of sentences must be a list with one entry per sentence (a "
                                f"list of snippets, a string or None), got {type(contexts).__name__}")
            if len(contexts) != len(inputs):
                raise ValueError(f"contexts has {len(contexts)} entries for {len(inputs)} sentences: give one context "
                                 "(a list of snippets, a string or None) per sentence")
            contexts = [_context_snippets(c, f"contexts[{i}]") for i, c in enumerate(contexts)]
        entities = single if return_entities is None else bool(return_entities)
        sentences, texts, offsets = [], [], []
        for x in inputs:
            if isinstance(x, str):
                spans = split_words(x) if entities else _whitespace_words(x)
                words, text, offs = [w for w, _, _ in spans], x, [(a, b) for _, a, b in spans]
            else:
                words, offs, pos = [str(w) for w in x], [], 0
                for w in words:
                    offs.append((pos, pos + len(w)))
                    pos += len(w) + 1
                text = " ".join(words)
            sentences.append(words)
            texts.append(text)
            offsets.append(offs)
        with_context = contexts is not None and any(c for c in contexts)
        self.warn_if_view_mismatch(with_context)
        todo = [i for i, words in enumerate(sentences) if words]
        features = self.prepare_inputs(tokenizer, [sentences[i] for i in todo],
                                       [contexts[i] for i in todo] if contexts is not None else None, max_seq_length)
        prefix = "ctx_" if with_context else ""
        was_training = self.training
        self.eval()
        tags: list[list[Optional[str]]] = [[None] * len(s) for s in sentences]
        scores: list[list[float]] = [[0.0] * len(s) for s in sentences]
        context_used = [False] * len(sentences)
        device = next(self.parameters()).device
        pad_id = tokenizer.pad_token_id or 0
        id2label = self.config.id2label
        for b in range(0, len(features), batch_size):
            chunk = features[b: b + batch_size]
            out = self(**_pad_view(chunk, prefix, pad_id, device))
            paths = self.crf.viterbi_decode(out.logits, out.word_mask)
            if entities:
                marginals = self.crf.marginals(out.logits, out.word_mask)
                path_scores = marginals.gather(-1, paths.clamp_min(0).unsqueeze(-1)).squeeze(-1).tolist()
            for r, (feat, path) in enumerate(zip(chunk, paths.tolist())):
                i, start = todo[feat["example_id"]], feat["word_start"]
                context_used[i] = context_used[i] or (with_context and bool(feat["has_context"]))
                for k in range(feat["own_start"], feat["own_end"]):
                    tags[i][start + k] = id2label[path[k]]
                    if entities:
                        scores[i][start + k] = float(path_scores[r][k])
        self.train(was_training)
        if not entities:
            return tags
        results = []
        for i, (text, offs) in enumerate(zip(texts, offsets)):
            found = []
            for etype, a, b in group_entities(tags[i]):
                start, end = offs[a][0], offs[b - 1][1]
                found.append({"entity_group": etype, "score": sum(scores[i][a:b]) / (b - a), "word": text[start:end],
                              "start": start, "end": end, "word_span": [a, b], "context_used": context_used[i]})
            results.append(found)
        return results[0] if single else results


def tags_to_ids(tags: Sequence[str], label2id: dict[str, int], where: str = "") -> list[int]:
    """Label names -> ids; an unknown label is an error naming it (never silently remapped)."""
    try:
        return [label2id[t] for t in tags]
    except KeyError as err:
        raise ValueError(f"label {err.args[0]!r}{' in ' + where if where else ''} is not one of the model's labels "
                         f"{sorted(label2id)}") from None


def _pad_view(features: Sequence[dict], prefix: str, pad_id: int, device) -> dict[str, torch.Tensor]:
    """Pad one view (`""` sentence, `"ctx_"` context) of a list of features into model inputs."""
    length = max(len(f[prefix + "input_ids"]) for f in features)
    width = max(len(f[prefix + "word_index"]) for f in features)
    batch = {
        "input_ids": [f[prefix + "input_ids"] + [pad_id] * (length - len(f[prefix + "input_ids"])) for f in features],
        "attention_mask": [[1] * len(f[prefix + "input_ids"]) + [0] * (length - len(f[prefix + "input_ids"]))
                           for f in features],
        "word_index": [f[prefix + "word_index"] + [-1] * (width - len(f[prefix + "word_index"])) for f in features],
    }
    if prefix + "token_type_ids" in features[0]:
        batch["token_type_ids"] = [f[prefix + "token_type_ids"] + [0] * (length - len(f[prefix + "token_type_ids"]))
                                   for f in features]
    return {k: torch.tensor(v, dtype=torch.long, device=device) for k, v in batch.items()}


# --------------------------------------------------------------------------------------------------------------
# Features: the two views of a sentence
# --------------------------------------------------------------------------------------------------------------
def _word_piece_counts(tokenizer, words: Sequence[str]) -> list[int]:
    # counting only: a long sentence is split into windows later, so the over-length warning would be noise
    enc = tokenizer(list(words), is_split_into_words=True, add_special_tokens=False, verbose=False)
    counts = [0] * len(words)
    for w in enc.word_ids():
        if w is not None:
            counts[w] += 1
    return counts


def _safe_words(tokenizer, words: Sequence[str]) -> tuple[list[str], list[int]]:
    """Words whose tokenization is empty (zero-width characters, control codes...) are replaced by the unknown
    token so that no sentence word silently disappears; returns the words and their sub-token counts."""
    words = list(words)
    counts = _word_piece_counts(tokenizer, words) if words else []
    if any(c == 0 for c in counts):
        filler = tokenizer.unk_token or tokenizer.sep_token or "?"
        words = [w if c else filler for w, c in zip(words, counts)]
        counts = _word_piece_counts(tokenizer, words)
        if any(c == 0 for c in counts):
            raise ValueError(f"tokenizer produces no sub-token for words {[w for w, c in zip(words, counts) if not c]}")
    return words, counts


def _windows(counts: Sequence[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """Split words into `[start, end)` windows whose sub-tokens fit `budget`, consecutive windows sharing up to
    `stride` words."""
    n = len(counts)
    if sum(counts) <= budget:
        return [(0, n)]
    spans, start = [], 0
    while True:
        end, used = start, 0
        while end < n and (used + counts[end] <= budget or end == start):
            used += counts[end]
            end += 1
        spans.append((start, end))
        if end >= n:
            return spans
        start = max(end - stride, start + 1)


def _view(tokenizer, words, ctx_words, max_len):
    """Encode one view; returns ids, mask, optional type ids and the sentence words' first sub-token positions."""
    if ctx_words:
        enc = tokenizer(words, ctx_words, is_split_into_words=True, truncation="only_second", max_length=max_len)
    else:
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_len)
    seq_ids, word_ids = enc.sequence_ids(), enc.word_ids()
    word_index, seen = [], set()
    for pos, (s, w) in enumerate(zip(seq_ids, word_ids)):
        if s == 0 and w is not None and w not in seen:
            seen.add(w)
            word_index.append(pos)
    if len(word_index) != len(words):
        raise ValueError(f"only {len(word_index)} of {len(words)} words fit in max_seq_length={max_len}")
    feat = {"input_ids": list(enc["input_ids"]), "attention_mask": list(enc["attention_mask"]),
            "word_index": word_index}
    if "token_type_ids" in enc:
        feat["token_type_ids"] = list(enc["token_type_ids"])
    return feat


def encode_example(
    tokenizer,
    words: Sequence[str],
    context: Optional[Sequence[str] | str] = None,
    max_seq_length: int = 512,
    stride: int = 16,
    snippet_separator: Optional[str] = None,
) -> list[dict]:
    """Both views of one sentence as model features, one feature per window.

    The sentence view is `[CLS] x [SEP]`; the context view uses the tokenizer's pair template,
    `[CLS] x [SEP] x~ [SEP]`, where x~ is the snippets in rank order joined by `snippet_separator` (default: the
    tokenizer's sep token). The context is cut first: whole snippets are kept while they fit, then the next one is
    cut at the sub-token level. The sentence is never truncated: a sentence longer than `max_seq_length` is split
    into windows of whole words overlapping by `stride` words; each window owns the words `[own_start, own_end)`
    (relative to `word_start`) when predictions are stitched back.

    Args:
        tokenizer: a fast tokenizer (RoBERTa-style ones need `add_prefix_space=True` for pre-split words).
        words: the sentence's words; context: ranked snippet strings, one string, or None.

    Returns:
        list of dicts with `input_ids`, `attention_mask`, [`token_type_ids`], `word_index`, the same keys prefixed
        `ctx_`, `has_context`, `word_start`, `own_start`, `own_end`.
    """
    if not words:
        raise ValueError("cannot encode an empty sentence")
    if isinstance(context, str):
        context = [context]
    snippets = [s.split() for s in (context or []) if s and s.strip()]
    safe, counts = _safe_words(tokenizer, words)
    single_budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    pair_budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=True)
    if single_budget < 1:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for words")
    spans = _windows(counts, single_budget, stride)
    sep = snippet_separator or tokenizer.sep_token or "|"
    snippet_counts = ([len(ids) for ids in tokenizer(snippets, is_split_into_words=True, add_special_tokens=False,
                                                      verbose=False)["input_ids"]] if snippets else [])  # one call

    features = []
    for k, (start, end) in enumerate(spans):
        win = safe[start:end]
        feat = _view(tokenizer, win, None, max_seq_length)
        room = pair_budget - sum(counts[start:end])
        ctx_words: list[str] = []
        for snippet, n in zip(snippets, snippet_counts):
            if room <= 0:
                break
            ctx_words.extend(([sep] if ctx_words else []) + snippet)
            room -= n + (1 if len(ctx_words) > len(snippet) else 0)
        ctx = _view(tokenizer, win, ctx_words, max_seq_length) if ctx_words and pair_budget > sum(
            counts[start:end]) else dict(feat)
        feat.update({"ctx_" + key: value for key, value in ctx.items()})
        feat["has_context"] = ctx["input_ids"] != feat["input_ids"]
        own_start = 0 if k == 0 else (start + spans[k - 1][1]) // 2 - start
        own_end = end - start if k == len(spans) - 1 else (spans[k + 1][0] + end) // 2 - start
        feat.update(word_start=start, own_start=own_start, own_end=own_end)
        features.append(feat)
    return features


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
