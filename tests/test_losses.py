"""The training objective against the official CLNER code (Alibaba-NLP/CLNER, flair 0.4.3 fork).

The `official_*` functions below are an independent port of the official formulas, written from their
description: forward-backward by plain loops over each sentence, the KL through `torch.nn.functional.kl_div`
on (alpha + beta) / T scaled by T^2, CL-L2 as `mse_loss(reduction='none')` masked, summed and divided by the
number of rows and the hidden size. They share no code with `trainer_clner` or `LinearChainCRF`'s recursions.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from test_trainer import args_for, make_batch, tiny_model

from clner.arguments import CLArguments
from clner.data.preprocess import CLNERDataCollator
from clner.losses import cl_kl_loss, cl_l2_loss
from crf_clner import LinearChainCRF, scheme_constraints
from trainer_clner import CLNERTrainer, split_views


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


# ------------------------------------------------------------------------------------------------------------
# Defaults and flags
# ------------------------------------------------------------------------------------------------------------
def test_defaults_are_the_official_ones():
    args = CLArguments()
    assert (args.train_views, args.cl_loss) == ("both", "kl")
    assert (args.nll_weight, args.nll_ext_weight, args.cl_weight) == (1.0, 0.5, 0.5)
    assert args.nll_ext_weight_no_context == 1.0
    assert args.cl_temperature == 0.3 and args.cl_l2_reduction == "mean" and args.cl_detach_context
    assert CLArguments(train_views="sentence").cl_loss == "none"
    assert CLArguments(train_views="context").cl_loss == "none"
    paper = CLArguments(nll_weight=1, nll_ext_weight=1, cl_weight=1, cl_temperature=1, cl_l2_reduction="sum")
    assert paper.recipe()["cl_temperature"] == 1 and paper.recipe()["nll_ext_weight"] == 1
    assert CLArguments(train_views="sentence").recipe() == dict(
        train_views="sentence",
        cl_loss="none",
        cl_weight=0.0,
        nll_weight=1.0,
        nll_ext_weight=0.0,
        cl_temperature=None,
        trained_with_context=False,
    )


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(train_views="sentence", cl_loss="kl"), "--cl_loss kl needs --train_views both"),
        (dict(train_views="context", cl_loss="l2"), "--cl_loss l2 needs --train_views both"),
        (dict(cl_weight=-1.0), "--cl_weight must be a finite number >= 0"),
        (dict(nll_ext_weight=math.nan), "--nll_ext_weight must be a finite number >= 0"),
        (dict(cl_temperature=0.0), "--cl_temperature must be positive"),
        (dict(cl_l2_reduction="max"), "--cl_l2_reduction"),
    ],
)
def test_contradictory_or_invalid_cl_arguments_are_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        CLArguments(**kwargs)


# ------------------------------------------------------------------------------------------------------------
# Rows without a context: no context pass, same objective
# ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("views,cl", [("both", "kl"), ("both", "l2"), ("context", "none")])
def test_skipping_the_context_pass_of_rows_without_context_changes_nothing(
    features, labels, minilm_tokenizer, tmp_path, views, cl
):
    batch = make_batch(features, minilm_tokenizer)
    has_ctx = batch["has_context"]
    results = []
    for skip in (True, False):
        model = tiny_model(labels, dropout=0.0)
        trainer = CLNERTrainer(
            model=model, args=args_for(tmp_path), cl_args=CLArguments(train_views=views, cl_loss=cl)
        )
        trainer.skip_context_pass_without_context = skip
        seen = []  # (rows, sub-tokens) of every encoder pass
        handle = model.encoder.embeddings.register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape[:2])))
        loss = trainer.compute_loss(model, batch)
        loss.backward()
        handle.remove()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads, seen))
    (loss_a, grads_a, seen_a), (loss_b, grads_b, seen_b) = results
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6, msg=name)
    ctx_len = int(batch["ctx_attention_mask"][has_ctx].sum(1).max())
    n_ctx = int(has_ctx.sum())
    if views == "both":  # sentence pass on every row, context pass on the rows with a context only, trimmed
        assert seen_a == [tuple(batch["input_ids"].shape), (n_ctx, ctx_len)]
    else:  # context-view training: the sentence pass runs only for the rows without a context
        sent_len = int(batch["attention_mask"][~has_ctx].sum(1).max())
        assert seen_a == [(len(has_ctx) - n_ctx, sent_len), (n_ctx, ctx_len)]
    assert seen_b[-1] == tuple(batch["ctx_input_ids"].shape)  # the old path: every row at the longest context


def test_batch_without_any_context_runs_one_pass(features, labels, minilm_tokenizer, tmp_path):
    rows = [r for r in features["train"] if not r["has_context"]][:4]
    batch = CLNERDataCollator(minilm_tokenizer)(rows)
    model = tiny_model(labels, dropout=0.0)
    trainer = CLNERTrainer(model=model, args=args_for(tmp_path), cl_args=CLArguments())
    calls = []
    handle = model.encoder.embeddings.register_forward_hook(lambda m, a, out: calls.append(out.shape[0]))
    model.train()
    loss = trainer.compute_loss(model, batch)
    handle.remove()
    assert calls == [4] and trainer._components["loss_cl"][-1] == 0.0
    nll = model(**split_views(batch)[0], labels=batch["labels"]).loss
    assert loss.item() == pytest.approx(2 * nll.item(), rel=1e-5)  # weight 1 + 1: once from each corpus


# ------------------------------------------------------------------------------------------------------------
# Model selection on the two-view mean
# ------------------------------------------------------------------------------------------------------------
def test_eval_f1_is_the_two_view_mean_and_selects_the_best_model(features, labels, minilm_tokenizer, tmp_path):
    model = tiny_model(labels)
    args = args_for(
        tmp_path,
        num_train_epochs=3,
        learning_rate=5e-3,
        eval_strategy="epoch",
        save_strategy="epoch",
        metric_for_best_model="f1",
        load_best_model_at_end=True,
        save_total_limit=1,
        per_device_train_batch_size=16,
        logging_steps=50,
    )
    trainer = CLNERTrainer(
        model=model,
        args=args,
        train_dataset=features["train"].select(range(48)),
        eval_dataset=features["validation"],
        data_collator=CLNERDataCollator(minilm_tokenizer),
        cl_args=CLArguments(head_learning_rate=5e-2),
    )
    trainer.train()
    evals = [h for h in trainer.state.log_history if "eval_f1" in h]
    assert len(evals) == 3
    for h in evals:
        for k in ("f1", "precision", "recall"):
            assert h[f"eval_{k}"] == pytest.approx((h[f"eval_sentence_{k}"] + h[f"eval_context_{k}"]) / 2)
    best = max(evals, key=lambda h: h["eval_f1"])
    assert trainer.state.best_metric == pytest.approx(best["eval_f1"])
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best['step']}")
    final = trainer.evaluate()
    assert final["eval_f1"] == pytest.approx(best["eval_f1"])  # the best model was loaded at the end
