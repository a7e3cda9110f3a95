"""The linear-chain CRF of CLNER and the tagging-scheme constraints it decodes under.

Remote code: uploaded to the Hub next to `modeling_clner.py`, which imports it, so it is self-contained (torch and
numpy only). It holds

* `scheme_constraints` / `check_label_scheme`: which starts, transitions and ends a scheme allows, and whether a
  label set can be a scheme's tags at all;
* `LinearChainCRF`: a batch-first, vectorised CRF (log partition, NLL, Viterbi, marginals) with optional hard
  constraints from a scheme;
* `MAX_NUM_TAGS` / `check_num_tags`: the largest tag set a CRF (and its `(C, C)` constraint table) is built for.

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

#: The largest number of tags (labels) `LinearChainCRF` and `scheme_constraints` accept. Everything a CRF holds and
#: computes grows with C^2: the `(C, C)` transition matrix (64 MiB in float32 at 4096 tags, and as much again for
#: its gradient and for each of Adam's two moments), the bool constraint table, the float64 `(C, C)` sums of the
#: backward pass, and each of the 2T steps of the forward-backward recursion is a `(B, C) @ (C, C)` product. At 4096
#: tags (2048 entity types under BIO, 1024 under BIOES: far beyond any NER tag set, which has tens to a few hundred)
#: that is still a few hundred MiB and trainable; 50,000 tags would need 10 GB for the transition matrix alone and
#: ~2.5e9 multiply-adds per word. Larger label sets need another decoder (a softmax head), not a CRF.
MAX_NUM_TAGS = 4096


# --------------------------------------------------------------------------------------------------------------
# Tagging-scheme constraints
# --------------------------------------------------------------------------------------------------------------
def _format_bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n:,.0f} bytes"


def check_num_tags(num_tags: int) -> None:
    """Raise ValueError, before anything of size C^2 is allocated, when a CRF over `num_tags` tags would not fit
    (more than `MAX_NUM_TAGS`); the message says how many tags it got and what the transition matrix would need."""
    if num_tags > MAX_NUM_TAGS:
        raise ValueError(
            f"The CRF got {num_tags:,} labels, more than its limit of {MAX_NUM_TAGS:,} (MAX_NUM_TAGS): its "
            f"{num_tags:,} x {num_tags:,} float32 transition matrix alone would need "
            f"{_format_bytes(4.0 * num_tags * num_tags)} ({_format_bytes(4.0 * MAX_NUM_TAGS**2)} at the limit), as "
            "much again for its gradient and each optimizer state, and every word would cost C^2 operations. Check "
            "that the labels are tags (e.g. B-PER), not words or ids, or use a model without a CRF."
        )


def scheme_constraints(labels: Sequence[str], scheme: str = "BIO") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which starts, transitions and ends a tagging scheme allows.

    Args:
        labels: tag names indexed by tag id, e.g. `["O", "B-per", "I-per"]`; at most `MAX_NUM_TAGS`.
        scheme: `"BIO"` (IOB2) or `"BIOES"`.

    Returns:
        `(allowed_start (C,), allowed_transitions (C, C), allowed_end (C,))` bool tensors;
        `allowed_transitions[i, j]` says whether tag j may follow tag i.

    Vectorised over (prefix, type) codes: one pass over the labels, then `(C, C)` tensor operations.
    """
    scheme = scheme.upper()
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown tagging scheme {scheme!r}; expected one of {SCHEMES}.")
    labels = list(labels)
    check_num_tags(len(labels))
    parts = [split_label(label) for label in labels]
    if scheme == "BIO":
        bad = [lab for lab, (p, _) in zip(labels, parts) if p in "ES"]
        if bad:
            raise ValueError(f"Labels {bad} are not BIO tags; use scheme='BIOES'.")
    prefix = np.array([p for p, _ in parts], dtype=str)
    type_ids: dict[str, int] = {}
    etype = torch.as_tensor(np.array([type_ids.setdefault(t, len(type_ids)) for _, t in parts], dtype=np.int64))
    is_o, is_b, is_i, is_e, is_s = (torch.as_tensor(prefix == p) for p in "OBIES")
    same_type = etype[:, None] == etype[None, :]  # (C, C)
    start = is_o | is_b | is_s
    inside = is_b | is_i  # an entity is open after the tag
    if scheme == "BIO":
        end = torch.ones(len(parts), dtype=torch.bool)
        # j is O or B (always allowed), or I of the type of an open entity
        trans = (is_o | is_b)[None, :] | (is_i[None, :] & inside[:, None] & same_type)
    else:
        end = is_o | is_e | is_s
        # I, E continue an open entity of their type; O, B, S can only follow a closed entity
        trans = torch.where((is_i | is_e)[None, :], inside[:, None] & same_type, ~inside[:, None])
    return start, trans.contiguous(), end


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
    """Forward (and backward) log-space recursions, each step normalised.

    All tensors share one float dtype; disallowed scores may be `-inf`.

    Args:
        emissions: `(B, T, C)`; mask: `(B, T)` bool, contiguous prefixes; start, end: `(C,)`; transitions: `(C, C)`.

    Returns:
        `alpha (B, T, C)`, `beta (B, T, C)` or None, `log_z (B,)`, `shift (B, T)`, each meaningful on valid
        positions only. `alpha[b, t]` is the log-score of all prefixes ending in each tag at t, and `beta[b, t]` that
        of all suffixes from t (excluding emission t, including the end score), each less a constant of its own
        (b, t): the recursions keep only the normalised state (`alpha[b, t].max() == 0`), so its values stay the size
        of one step's scores and float32 keeps their differences to ~1e-7 relative however long the sequence (the
        running totals, which reach ~T x the emission scale, would leave ~T ulps of that size in them). `shift[b, t]`
        is the constant taken off the forward state at step t (the maximum, with the transitions' maximum folded in);
        log Z adds them up. alpha + beta is log Z + log p(y_t | x) up to a per-(b, t) constant, so
        marginals are a softmax over tags at each step.

    Two ideas keep the loop short: matrix products in scaled exp-space replace `(B, C, C)` log-sum-exps (one
    `(B, C) @ (C, C)` per step), and the backward recursion runs as a forward one over each row's reversed valid
    prefix, stacked with the forward recursion. Rows are then left-aligned in both directions, so padding never needs
    masking inside the loop: a row's padded steps come after its end.
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
    # the max is a constant shift (detached: log Z is the same function of the scores for any constants); the clamps
    # keep every value finite, so unreachable states never produce NaN values or gradients
    m = state.detach().amax(-1, keepdim=True).clamp_min(-1e30)
    state = state - m
    states, shifts = [state], [m]
    for k in range(1, seq_len):
        state = torch.log(torch.matmul(torch.exp(state), mats).clamp_min(tiny)) + inputs[k]
        m = state.detach().amax(-1, keepdim=True).clamp_min(-1e30)
        state = state - m
        states.append(state)
        shifts.append(m)
    out = torch.stack(states, dim=-2)  # ([2,] B, T, C)
    shift = torch.cat(shifts, dim=-1)  # ([2,] B, T)
    if need_beta:
        out, shift = out.unbind(0), shift[0]
    alpha = out[0] if need_beta else out
    # log Z = the row's shifts up to its last step + the log-sum-exp of its normalised last state. The shifts are
    # added as one reduction (pairwise / tree sums: rounding grows with log T, not T), in the working dtype (no
    # float64, which some accelerators lack, in the forward pass)
    upto_last = torch.arange(seq_len, device=emissions.device)[None, :] <= last[:, None]
    offset = torch.where(upto_last, shift, torch.zeros_like(shift)).sum(1)
    lse = torch.logsumexp(alpha.gather(1, last[:, None, None].expand(-1, 1, num_tags)).squeeze(1) + end, -1)
    log_z = lse + offset
    if not need_beta:
        return alpha, None, log_z, shift
    # out[1][b, k] = beta + emission at original position last_b - k; undo the reversal and the emission
    beta = out[1].gather(1, rev_index.unsqueeze(-1).expand(-1, -1, num_tags)) - emissions
    return alpha, beta, log_z, shift


class _LogPartition(torch.autograd.Function):
    """log Z with a closed-form backward: d log Z / d scores are the CRF (pairwise) marginals.

    The forward runs the forward and backward recursions in one stacked loop; the backward is then a few
    vectorised operations instead of replaying the per-step autograd tape. The marginals are normalised at each
    step (a softmax over tags of alpha + beta, not exp(alpha + beta - log Z)), so float32 rounding in the running
    totals, which grows with the sequence, never reaches them; see `backward`.
    """

    @staticmethod
    def forward(ctx, emissions, mask, start, transitions, end):
        alpha, beta, log_z, shift = _forward_backward(emissions, mask, start, transitions, end, need_beta=True)
        ctx.save_for_backward(emissions, mask, transitions, alpha, beta, shift)
        return log_z

    @staticmethod
    def backward(ctx, grad_log_z):
        """Gradients from the marginals, all in log space against per-step normalisers:

        * unary p(y_t = j) = softmax_j(alpha_t + beta_t), with n_t = logsumexp_j(alpha_t + beta_t) (log Z less the
          step's constants, exactly so in exact arithmetic);
        * pairwise p(y_{t-1} = i, y_t = j) = exp(alpha_{t-1,i}) exp(trans_ij - t_max)
          exp(emission_tj + t_max - shift_t + beta_tj - n_t), since the forward step made
          alpha_t = log(exp(alpha_{t-1}) @ exp(trans - t_max)) + emission_t + t_max - shift_t. Summed over (b, t)
          as one `(C, N) @ (N, C)` product in float64 (no `(B, T, C, C)` tensor): the left factor is <= 1, the right
          one <= 1 / tiny (the recursion's clamp), and the sum over N = B x T terms keeps float64 precision.
        """
        emissions, mask, transitions, alpha, beta, shift = ctx.saved_tensors
        g = grad_log_z.to(alpha.dtype)
        joint = (alpha + beta).clamp_min(-1e30)  # finite, so no NaN even where no tag is reachable
        norm = torch.logsumexp(joint, -1, keepdim=True)  # (B, T, 1)
        unary = torch.where(mask.unsqueeze(-1), torch.exp(joint - norm), 0.0)  # (B, T, C)
        grad_em = unary * g[:, None, None]
        grad_start = (unary[:, 0] * g[:, None]).sum(0)
        lengths = mask.sum(1)
        last = unary[torch.arange(len(lengths), device=lengths.device), (lengths - 1).clamp_min(0)]
        grad_end = (last * g[:, None]).sum(0)
        if emissions.shape[1] > 1:
            t_max = transitions.detach().max().clamp_min(-1e4).double()
            right = emissions[:, 1:].double() + beta[:, 1:].double() - norm[:, 1:].double()
            right = right - (shift[:, 1:, None].double() - t_max)
            right = torch.exp(torch.where(mask[:, 1:, None], right, -math.inf)) * g.double()[:, None, None]
            left = torch.exp(alpha[:, :-1].double())
            num_tags = alpha.shape[-1]
            outer = left.reshape(-1, num_tags).t() @ right.reshape(-1, num_tags)
            finite = torch.isfinite(transitions)
            grad_trans = torch.where(finite, torch.exp(transitions.double() - t_max) * outer, 0.0).to(alpha.dtype)
        else:
            grad_trans = torch.zeros_like(transitions)
        return grad_em, None, grad_start, grad_trans, grad_end


class LinearChainCRF(nn.Module):
    """Linear-chain conditional random field, batch-first.

    Args:
        num_tags: number of tags C, at most `MAX_NUM_TAGS`.
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
        check_num_tags(num_tags)  # before the (C, C) parameters and constraint buffers are allocated
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
            alpha, beta, _, _ = _forward_backward(emissions, mask, start, trans, end, need_beta=True)
            # alpha + beta is log Z + log p(y_t | x) up to a constant per (b, t): normalised at each step
            log_marg = torch.log_softmax((alpha + beta).clamp_min(-1e30), dim=-1)
            if temperature != 1.0:
                log_marg = torch.log_softmax(log_marg / temperature, dim=-1)
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
