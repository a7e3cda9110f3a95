"""The linear-chain CRF of CLNER and the tagging-scheme constraints it decodes under.

Remote code: uploaded to the Hub next to `modeling_clner.py`, which imports it, so it is self-contained (torch and
numpy only). It holds

* `scheme_constraints` / `check_label_scheme`: which starts, transitions and ends a scheme allows, and whether a
  label set can be a scheme's tags at all;
* `LinearChainCRF`: a batch-first, vectorised CRF (log partition, NLL, Viterbi, marginals) with optional hard
  constraints from a scheme.

Shapes use B = batch, T = words (CRF time steps), C = tags.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

try:  # loaded from the Hub as a dynamic module, next to inference_clner.py (the one reader of tag prefixes)
    from .inference_clner import split_label
except ImportError:  # this project on the path
    from inference_clner import split_label


SCHEMES = ("BIO", "BIOES")


# --------------------------------------------------------------------------------------------------------------
# Tagging-scheme constraints
# --------------------------------------------------------------------------------------------------------------
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
    parts = [split_label(label) for label in labels]
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
    bare = [label for label in labels if label != "O" and split_label(label)[0] == "O"]
    if bare:
        raise ValueError(
            f"labels {bare[:5]} have no B-/I- prefix, so under tag_scheme {scheme!r} they would be read as O. Tags "
            "of an IO-tagged file (bare types) must be converted to BIO first (run_ner_cl.py --tag_scheme IO does "
            "it); fix the labels (config.json id2label) or the data."
        )
    if scheme == "BIOES":
        kinds: dict[str, set] = {}
        for label in labels:
            prefix, etype = split_label(label)
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
        state = torch.stack(
            [
                start + emissions[:, 0],
                end + emissions.gather(1, last[:, None, None].expand(-1, 1, num_tags)).squeeze(1),
            ]
        )  # (2, B, C)
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

    def __init__(self, num_tags: int, constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None):
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

    def _check(self, emissions: torch.Tensor, mask: torch.Tensor | None, tags: torch.Tensor | None = None):
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
    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """log Z(x) per sequence, `(B,)`; 0 for an all-masked row."""
        return self._log_partition(*self._check(emissions, mask))

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Unnormalised log-score of the given tag sequences, `(B,)`; 0 for an all-masked row."""
        return self._score(*self._check(emissions, mask, tags), tags)

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
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
            raise ValueError(
                f"tags must be in [0, {self.num_tags}) on unmasked positions, got {valid.unique().tolist()}"
            )
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

    def log_marginals(self, emissions: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 1.0):
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

    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor | None = None, temperature: float = 1.0):
        """Token posteriors p(y_t = c | x), `(B, T, C)`: rows sum to 1 on valid positions and are 0 elsewhere.

        See `log_marginals` for `temperature`.
        """
        mask = mask if mask is not None else torch.ones(emissions.shape[:2], dtype=torch.bool, device=emissions.device)
        probs = self.log_marginals(emissions, mask, temperature).exp()
        return probs * mask.unsqueeze(-1).to(probs.dtype)

    @torch.no_grad()
    def viterbi_decode(self, emissions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.LongTensor:
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
