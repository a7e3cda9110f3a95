"""The cooperative-learning losses (`clner.losses`): CL-KL and CL-L2 on real views, their direction, temperature and
detaching, and against the official CLNER code (Alibaba-NLP/CLNER, flair 0.4.3 fork).

The `official_*` functions below are an independent port of the official formulas, written from their
description: forward-backward by plain loops over each sentence, the KL through `torch.nn.functional.kl_div`
on (alpha + beta) / T scaled by T^2, CL-L2 as `mse_loss(reduction='none')` masked, summed and divided by the
number of rows and the hidden size. They share no code with `clner.losses` or `LinearChainCRF`'s recursions.
"""

import pytest
import torch
import torch.nn.functional as F

from clner.losses import cl_kl_loss, cl_l2_loss
from conftest import make_batch, tiny_clner
from crf_clner import LinearChainCRF, scheme_constraints
from trainer_clner import split_views


def test_cl_losses_zero_for_identical_views_positive_otherwise(features, labels, minilm_tokenizer):
    model = tiny_clner(labels, dropout=0.1).eval()
    with torch.no_grad():  # a fresh head gives near-uniform posteriors; sharpen it so the views can disagree
        model.classifier.weight.mul_(50)
    batch = make_batch(features, minilm_tokenizer)
    assert batch["has_context"].any() and not batch["has_context"].all()
    sent, ctx = split_views(batch)
    with torch.no_grad():
        a, b, c = model(**sent), model(**sent), model(**ctx)
    ones = torch.ones(8)
    assert cl_kl_loss(model.crf, b.logits, a.logits, a.word_mask, ones).abs().item() < 1e-6
    assert cl_l2_loss(b.word_hidden_states, a.word_hidden_states, a.word_mask, ones).item() == 0.0
    assert cl_kl_loss(model.crf, c.logits, a.logits, a.word_mask, ones).item() > 1e-4
    assert cl_l2_loss(c.word_hidden_states, a.word_hidden_states, a.word_mask, ones).item() > 1e-4
    # rows without context contribute nothing, even when dropout makes the two passes differ
    no_ctx = (~batch["has_context"]).float()
    model.train()
    d, e = model(**sent), model(**sent)
    assert cl_kl_loss(model.crf, d.logits, e.logits, d.word_mask, 1 - no_ctx).item() > 0
    assert cl_kl_loss(model.crf, d.logits, e.logits, d.word_mask, torch.zeros(8)).item() == 0.0


def test_cl_kl_direction_temperature_and_detaching():
    from crf_clner import LinearChainCRF

    torch.manual_seed(0)
    crf = LinearChainCRF(5)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    ctx = torch.randn(2, 4, 5, requires_grad=True)
    sent = torch.randn(2, 4, 5, requires_grad=True)
    weight = torch.ones(2)
    for temp in (1.0, 0.3):
        p, q = crf.marginals(ctx, mask, temp), crf.marginals(sent, mask, temp)
        forward_kl = ((p * (p.log() - q.log())).nan_to_num().sum(-1) * mask).sum() / 2
        reverse_kl = ((q * (q.log() - p.log())).nan_to_num().sum(-1) * mask).sum() / 2
        got = cl_kl_loss(crf, ctx, sent, mask, weight, temp)
        assert got.item() == pytest.approx(temp**2 * forward_kl.item(), rel=1e-4)  # T^2-scaled, as official
        assert abs(got.item() - temp**2 * reverse_kl.item()) > 1e-3  # KL(context || sentence), not the reverse
    cl_kl_loss(crf, ctx, sent, mask, weight, detach_context=True).backward()
    assert ctx.grad is None and sent.grad.abs().sum() > 0
    # detached, the teacher is a constant distribution: the CRF's gradient comes from the student side only
    grad_detached = crf.transitions.grad.clone()
    crf.zero_grad()
    p = crf.log_marginals(ctx, mask).detach()
    q = crf.log_marginals(sent, mask)
    ((p.exp() * (p - q)).sum(-1) * mask).sum().div(2).backward()
    torch.testing.assert_close(grad_detached, crf.transitions.grad)
    crf.zero_grad()
    sent.grad = None
    cl_kl_loss(crf, ctx, sent, mask, weight, detach_context=False).backward()
    assert ctx.grad.abs().sum() > 0 and sent.grad.abs().sum() > 0
    h_ctx, h_sent = torch.randn(2, 4, 3, requires_grad=True), torch.randn(2, 4, 3, requires_grad=True)
    cl_l2_loss(h_ctx, h_sent, mask, weight, detach_context=True).backward()
    assert h_ctx.grad is None and h_sent.grad.abs().sum() > 0
    expected = (((h_sent - h_ctx) ** 2).sum(-1) * mask).sum() / 2
    assert cl_l2_loss(h_ctx, h_sent, mask, weight, reduction="sum").item() == pytest.approx(expected.item(), rel=1e-6)
    assert cl_l2_loss(h_ctx, h_sent, mask, weight).item() == pytest.approx(expected.item() / 3, rel=1e-6)


# ------------------------------------------------------------------------------------------------------------
# The official formulas, ported
# ------------------------------------------------------------------------------------------------------------
def official_forward_backward(emissions, start, trans, end):
    """alpha + beta of one sentence `(L, C)` by explicit loops (float64): alpha includes emission t, beta the
    scores after t (the end transition included)."""
    length, _ = emissions.shape
    alpha = [start + emissions[0]]
    for t in range(1, length):
        alpha.append(torch.logsumexp(alpha[-1][:, None] + trans, dim=0) + emissions[t])
    beta = [end]
    for t in range(length - 2, -1, -1):
        beta.insert(0, torch.logsumexp(trans + (emissions[t + 1] + beta[0])[None, :], dim=1))
    return torch.stack(alpha) + torch.stack(beta)


def official_cl_kl(student, teacher, lengths, has_context, temperature, start, trans, end):
    """distill_posterior: KL(softmax(teacher_fb / T) || softmax(student_fb / T)) * T^2, teacher detached, summed
    over the tags and words of the rows with a context, divided by the number of batch rows."""
    total = student.new_zeros(())
    for i, n in enumerate(lengths):
        if not has_context[i]:
            continue
        fb_student = official_forward_backward(student[i, :n], start, trans, end)
        fb_teacher = official_forward_backward(teacher[i, :n], start, trans, end).detach()
        kd = (
            F.kl_div(
                F.log_softmax(fb_student / temperature, dim=-1),
                F.softmax(fb_teacher / temperature, dim=-1),
                reduction="none",
            )
            * temperature
            * temperature
        )
        total = total + kd.sum()
    return total / len(lengths)


def official_cl_l2(student_rep, teacher_rep, mask):
    """mse_loss(reduction='none') * mask, summed, divided by the number of rows and by the hidden size."""
    l2 = F.mse_loss(student_rep, teacher_rep.detach(), reduction="none") * mask.unsqueeze(-1)
    return l2.sum() / l2.shape[0] / teacher_rep.shape[-1]


def random_batch(seed, n_rows=6, max_len=7, num_tags=7):
    g = torch.Generator().manual_seed(seed)
    lengths = [max_len, 1, 4, max_len - 1, 3, 5][:n_rows]
    mask = torch.arange(max_len)[None, :] < torch.tensor(lengths)[:, None]
    has_context = torch.tensor([True, False, True, True, False, True][:n_rows])
    student = (torch.randn(n_rows, max_len, num_tags, generator=g, dtype=torch.float64) * 3).requires_grad_()
    teacher = (torch.randn(n_rows, max_len, num_tags, generator=g, dtype=torch.float64) * 3).requires_grad_()
    return lengths, mask, has_context, student, teacher


@pytest.mark.parametrize("temperature", [1.0, 0.3])
@pytest.mark.parametrize("constrained", [False, True])
def test_cl_kl_matches_the_official_formula(temperature, constrained):
    labels = ["O", "B-a", "I-a", "B-b", "I-b", "B-c", "I-c"]
    crf = LinearChainCRF(7, scheme_constraints(labels, "BIO") if constrained else None).double()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in (crf.start_transitions, crf.transitions, crf.end_transitions):
            p.normal_(0, 1.5)
    for seed in range(3):
        lengths, mask, has_context, student, teacher = random_batch(seed)
        # the scheme's disallowed moves as a large finite penalty, as the official code marks impossible ones
        start, trans, end = (x.clamp_min(-1e4) for x in crf._scores(torch.float64))
        expected = official_cl_kl(student, teacher, lengths, has_context, temperature, start, trans, end)
        got = cl_kl_loss(crf, teacher, student, mask, has_context.double(), temperature, detach_context=True)
        assert got.item() == pytest.approx(expected.item(), rel=1e-6, abs=1e-9)
        (g_expected,) = torch.autograd.grad(expected, student)
        (g_got,) = torch.autograd.grad(got, student)
        torch.testing.assert_close(g_got, g_expected, rtol=1e-6, atol=1e-9)
        assert g_got[~has_context].abs().max() == 0  # rows without a context get no CL gradient


def test_cl_kl_at_temperature_is_t_squared_times_the_unscaled_kl():
    """The T^2 factor: without it the loss (and its gradient) would be 1/T^2 = 11.1x larger at T = 0.3."""
    crf = LinearChainCRF(5).double()
    lengths, mask, has_context, student, teacher = random_batch(7, num_tags=5)
    weight = has_context.double()
    p = crf.log_marginals(teacher, mask, 0.3)
    q = crf.log_marginals(student, mask, 0.3)
    unscaled = ((p.exp() * (p - q)).sum(-1) * mask).sum() / len(lengths)
    assert cl_kl_loss(crf, teacher, student, mask, weight, 0.3).item() != pytest.approx(unscaled.item())
    weighted = ((p.exp() * (p - q)).sum(-1) * mask).sum(1) @ weight / len(lengths)
    assert cl_kl_loss(crf, teacher, student, mask, weight, 0.3).item() == pytest.approx(
        0.09 * weighted.item(), rel=1e-9
    )


@pytest.mark.parametrize("hidden", [384, 1024])
def test_cl_l2_matches_the_official_formula(hidden):
    for seed in range(3):
        lengths, mask, has_context, _, _ = random_batch(seed)
        g = torch.Generator().manual_seed(100 + seed)
        student = torch.randn(6, 7, hidden, generator=g, dtype=torch.float64, requires_grad=True)
        teacher = torch.randn(6, 7, hidden, generator=g, dtype=torch.float64, requires_grad=True)
        row_mask = mask & has_context[:, None]  # the official mask zeroes the rows without a context
        expected = official_cl_l2(student, teacher, row_mask.double())
        got = cl_l2_loss(teacher, student, mask, has_context.double(), detach_context=True)
        assert got.item() == pytest.approx(expected.item(), rel=1e-6)
        (g_expected,) = torch.autograd.grad(expected, student)
        (g_got,) = torch.autograd.grad(got, student)
        torch.testing.assert_close(g_got.double(), g_expected, rtol=1e-6, atol=1e-12)
        # the paper's literal squared distance is H times larger
        summed = cl_l2_loss(teacher, student, mask, has_context.double(), reduction="sum")
        assert summed.item() == pytest.approx(hidden * expected.item(), rel=1e-6)
