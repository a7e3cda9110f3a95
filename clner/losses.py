"""The cooperative-learning losses L_CL, by name: `CL_LOSSES` maps a ``--cl_loss`` value to its function.

A new CL loss is one function here with the signature of the others and one entry in `CL_LOSSES`; the option list of
``--cl_loss``, the trainer and the model card read it from here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch


def cl_kl_loss(crf, logits_ctx, logits_sent, word_mask, row_weight, temperature=1.0, detach_context=True):
    """CL-KL as the official code computes it: per sentence, the sum over its words and tags of
    T^2 * KL(softmax(m~_i / T) || softmax(m_i / T)), where m~_i and m_i are the CRF log-marginals of word i in the
    context (teacher) and sentence (student) views; weighted by `row_weight` (0 for rows without context) and
    divided by the number of batch rows. At T=1 this is the paper's KL of the posteriors.

    Shapes: logits `(B, W, C)`, word_mask `(B, W)`, row_weight `(B,)`; returns a scalar.
    """
    if detach_context:  # the teacher distribution is a constant: no gradient to its encoder pass nor to the CRF
        with torch.no_grad():
            teacher = crf.log_marginals(logits_ctx, word_mask, temperature)
    else:
        teacher = crf.log_marginals(logits_ctx, word_mask, temperature)
    student = crf.log_marginals(logits_sent, word_mask, temperature)
    kl = (teacher.exp() * (teacher - student)).sum(-1) * word_mask.to(teacher.dtype)  # (B, W)
    per_row = kl.sum(1) * (float(temperature) ** 2)
    return (per_row * row_weight).sum() / row_weight.new_tensor(len(row_weight)).clamp_min(1)


def cl_l2_loss(hidden_ctx, hidden_sent, word_mask, row_weight, detach_context=True, reduction="mean"):
    """CL-L2: per sentence, the sum over its words of the squared distance between the two views' word
    representations, weighted by `row_weight` and divided by the number of batch rows. `reduction="mean"` (the
    official code's) divides each squared distance by the hidden size H, a per-dimension mean; `"sum"` is the
    paper's ||v_i - v~_i||^2. The representations are the encoder outputs at each word's first sub-token.

    Shapes: hidden `(B, W, H)`, word_mask `(B, W)`, row_weight `(B,)`; returns a scalar.
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    target = hidden_ctx.detach() if detach_context else hidden_ctx
    dtype = torch.promote_types(hidden_sent.dtype, torch.float32)  # at least float32 under mixed precision
    sq = ((hidden_sent.to(dtype) - target.to(dtype)) ** 2).sum(-1) * word_mask.to(dtype)
    if reduction == "mean":
        sq = sq / hidden_sent.shape[-1]
    return (sq.sum(1) * row_weight).sum() / row_weight.new_tensor(len(row_weight)).clamp_min(1)


class CLLoss(NamedTuple):
    """One cooperative-learning loss: how it is computed and how the model card describes it."""

    compute: Callable[..., torch.Tensor]
    """``compute(crf, teacher, student, word_mask, row_weight, cl_args)``: teacher and student are the context and
    sentence views' outputs (``logits`` `(B, W, C)`, ``word_hidden_states`` `(B, W, H)`), word_mask `(B, W)`,
    row_weight `(B,)`, cl_args a `clner.arguments.CLArguments`; returns a scalar."""
    description: str
    """The loss in words, for the model card ("CL-KL, the KL divergence ...")."""


def _kl(crf, teacher: Any, student: Any, word_mask, row_weight, cl_args) -> torch.Tensor:
    return cl_kl_loss(
        crf, teacher.logits, student.logits, word_mask, row_weight, cl_args.cl_temperature, cl_args.cl_detach_context
    )


def _l2(crf, teacher: Any, student: Any, word_mask, row_weight, cl_args) -> torch.Tensor:
    return cl_l2_loss(
        teacher.word_hidden_states,
        student.word_hidden_states,
        word_mask,
        row_weight,
        cl_args.cl_detach_context,
        cl_args.cl_l2_reduction,
    )


#: ``--cl_loss`` value -> loss. ``"none"`` (no L_CL) is not a loss and has no entry.
CL_LOSSES: dict[str, CLLoss] = {
    "kl": CLLoss(_kl, "CL-KL, the KL divergence between the two views' CRF word posteriors"),
    "l2": CLLoss(_l2, "CL-L2, the distance between the two views' word representations"),
}
