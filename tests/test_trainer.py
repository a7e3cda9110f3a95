"""CLNERTrainer: the two-view objective (its terms, rows without a context or without labels), gradient accumulation,
evaluation of both views and model selection on their mean, resuming, mixed precision, and the checks that stop a
diverged run or refuse trainer flags that break CLNER."""

import math

import pytest
import torch
from transformers import TrainerCallback

from clner.arguments import CLArguments
from clner.data.preprocess import CLNERDataCollator, preprocess_dataset
from clner.errors import CLNERUsageError, TrainingDivergedError
from clner.losses import cl_kl_loss, cl_l2_loss
from conftest import make_batch, tiny_clner, training_args
from modeling_clner import CLNERForTokenClassification
from trainer_clner import CLNERTrainer, split_views


def tiny_model(labels, dropout=0.1, seed=0):
    return tiny_clner(labels, seed=seed, dropout=dropout)


# ------------------------------------------------------------------------------------------------ the objective
@pytest.mark.parametrize(
    "views,cl", [("both", "kl"), ("both", "l2"), ("both", "none"), ("context", "none"), ("sentence", "none")]
)
def test_compute_loss_terms(features, labels, minilm_tokenizer, tmp_path, views, cl):
    """The loss against per-row NLLs of full passes of both views: per sentence with a context
    w_nll * NLL + w_ext * NLL-EXT + w_cl * CL; without one, (w_nll + w_ext_no_context) * NLL; single-view runs
    train their one view with weight 1."""
    model = tiny_model(labels, dropout=0.0).eval()
    weights = dict(nll_weight=0.7, nll_ext_weight=0.4, nll_ext_weight_no_context=1.3, cl_weight=2.0)
    cl_args = CLArguments(train_views=views, cl_loss=cl, cl_temperature=0.5, **weights)
    trainer = CLNERTrainer(model=model, args=training_args(tmp_path), cl_args=cl_args)
    batch = make_batch(features, minilm_tokenizer)
    has_ctx = batch["has_context"]
    assert has_ctx.any() and not has_ctx.all()
    model.train()  # components are recorded in training mode; dropout is 0 so the views are deterministic
    loss = trainer.compute_loss(model, batch)
    terms = {k: v[-1] for k, v in trainer._components.items()}
    sent, ctx = split_views(batch)
    with torch.no_grad():
        a, b = model(**sent), model(**ctx)  # every row through each view
        nll_s, _ = model.crf_nll(a.logits, batch["labels"], a.word_mask)
        nll_c, _ = model.crf_nll(b.logits, batch["labels"], b.word_mask)
    expected_terms = {
        "both": {"loss_nll", "loss_nll_ext"} | ({"loss_cl"} if cl != "none" else set()),
        "context": {"loss_nll_ext"},
        "sentence": {"loss_nll"},
    }[views]
    assert set(terms) == expected_terms and torch.isfinite(loss)
    if "loss_nll" in terms:
        assert terms["loss_nll"] == pytest.approx(nll_s.mean().item(), rel=1e-5)
    if "loss_nll_ext" in terms:  # a row without a context has its sentence view as its context view
        assert terms["loss_nll_ext"] == pytest.approx(nll_c.mean().item(), rel=1e-5)
        assert torch.allclose(nll_c[~has_ctx], nll_s[~has_ctx], rtol=1e-5)
    if views == "sentence":
        expected = nll_s.mean()
    elif views == "context":
        expected = nll_c.mean()
    else:
        per_row = weights["nll_weight"] * nll_s + torch.where(
            has_ctx, weights["nll_ext_weight"] * nll_c, weights["nll_ext_weight_no_context"] * nll_s
        )
        expected = per_row.mean()
        if cl == "kl":
            expected = expected + 2.0 * cl_kl_loss(model.crf, b.logits, a.logits, a.word_mask, has_ctx.float(), 0.5)
        elif cl == "l2":
            expected = expected + 2.0 * cl_l2_loss(
                b.word_hidden_states, a.word_hidden_states, a.word_mask, has_ctx.float()
            )
        if cl != "none":
            assert terms["loss_cl"] > 0
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_unlabeled_rows_only_add_cl(features, labels, minilm_tokenizer, tmp_path):
    model = tiny_model(labels, dropout=0.0)
    trainer = CLNERTrainer(model=model, args=training_args(tmp_path), cl_args=CLArguments())
    batch = make_batch(features, minilm_tokenizer)
    labelled = torch.tensor([True, False, True, True, False, True, True, True])
    partial = dict(batch, labels=batch["labels"].masked_fill(~labelled[:, None], -100))
    trainer.compute_loss(model, partial)
    got = trainer._components["loss_nll"][-1]
    sent, _ = split_views(batch)
    keep = {k: v[labelled] for k, v in sent.items()}
    assert got == pytest.approx(model(**keep, labels=batch["labels"][labelled]).loss.item(), rel=1e-5)
    trainer._components.clear()
    unlabeled = dict(batch, labels=torch.full_like(batch["labels"], -100))
    loss = trainer.compute_loss(model, unlabeled)
    assert trainer._components["loss_nll"][-1] == 0.0 and loss.item() == pytest.approx(
        trainer.cl_args.cl_weight * trainer._components["loss_cl"][-1], rel=1e-5
    )


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
            model=model, args=training_args(tmp_path), cl_args=CLArguments(train_views=views, cl_loss=cl)
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
    assert seen_b[-1] == tuple(batch["ctx_input_ids"].shape)  # without skipping: every row at the longest context


def test_batch_without_any_context_runs_one_pass(features, labels, minilm_tokenizer, tmp_path):
    rows = [r for r in features["train"] if not r["has_context"]][:4]
    batch = CLNERDataCollator(minilm_tokenizer)(rows)
    model = tiny_model(labels, dropout=0.0)
    trainer = CLNERTrainer(model=model, args=training_args(tmp_path), cl_args=CLArguments())
    calls = []
    handle = model.encoder.embeddings.register_forward_hook(lambda m, a, out: calls.append(out.shape[0]))
    model.train()
    loss = trainer.compute_loss(model, batch)
    handle.remove()
    assert calls == [4] and trainer._components["loss_cl"][-1] == 0.0
    nll = model(**split_views(batch)[0], labels=batch["labels"]).loss
    assert loss.item() == pytest.approx(2 * nll.item(), rel=1e-5)  # weight 1 + 1: once from each corpus


# --------------------------------------------------------------------------------------------------- training
def test_gradient_accumulation_matches_full_batch(features, labels, tmp_path, minilm_tokenizer):
    """bs=8 in one step == bs=4 x 2 accumulation steps: the same logged loss and the same accumulated gradient
    (dropout off).

    Machine-independent by construction: the test compares the accumulated gradients that reach the optimizer,
    which is what the claim is about, not parameters after an adaptive step. (An AdamW step divides by sqrt(v): a
    1e-9 gradient whose last bits differ between the two summation orders becomes a visible update on AVX2 CPUs.)
    The model runs in float64, so the two summation orders differ by ~1e-16 relative; the tolerance, 1e-9 of the
    largest gradient, is millions of float64 ulps above that on any CPU (some gradients, such as attention key
    biases, are exactly 0 in exact arithmetic and pure rounding noise in float32), yet a wrong accumulation
    normalisation (a factor of 2, or one micro-batch lost) is many orders of magnitude above it."""
    runs = []
    for bs, ga in ((8, 1), (4, 2)):
        model = tiny_model(labels, dropout=0.0).double()
        names = {p: n for n, p in model.named_parameters()}
        grads = {}
        args = training_args(
            tmp_path / f"{bs}",
            per_device_train_batch_size=bs,
            gradient_accumulation_steps=ga,
            max_steps=1,
            weight_decay=0.0,
            max_grad_norm=1e9,
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        optimizer.register_step_pre_hook(
            lambda opt, *_: grads.update(
                {
                    names[p]: p.grad.detach().clone()
                    for group in opt.param_groups
                    for p in group["params"]
                    if p.grad is not None
                }
            )
        )
        trainer = CLNERTrainer(
            model=model,
            args=args,
            train_dataset=features["train"].select(range(8)),
            data_collator=CLNERDataCollator(minilm_tokenizer),
            cl_args=CLArguments(),
            optimizers=(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)),
        )
        trainer.train()
        runs.append((trainer.state.log_history[0], grads))
    (log_a, grads_a), (log_b, grads_b) = runs
    assert log_a["loss"] == pytest.approx(log_b["loss"], rel=1e-4)
    for k in ("loss_nll", "loss_nll_ext", "loss_cl"):
        assert k in log_a and k in log_b
    assert set(grads_a) == set(grads_b) == set(names.values())  # every parameter got a gradient in both runs
    assert sum(g.abs().sum() for g in grads_a.values()) > 0
    assert all(g.dtype == torch.float64 for g in grads_a.values())
    scale = max(float(g.abs().max()) for g in grads_a.values())
    for name, g in grads_a.items():
        torch.testing.assert_close(grads_b[name], g, atol=1e-9 * scale, rtol=1e-9, msg=name)


def test_minilm_training_lowers_loss(minilm_dir, raw, labels, minilm_tokenizer, tmp_path):
    torch.manual_seed(0)
    model = CLNERForTokenClassification.from_pretrained(str(minilm_dir), id2label=labels)
    label2id = {label: i for i, label in enumerate(labels)}
    feats = preprocess_dataset(raw["train"].select(range(24)), minilm_tokenizer, label2id, max_seq_length=48)
    args = training_args(
        tmp_path, num_train_epochs=4, learning_rate=2e-4, per_device_train_batch_size=8, logging_steps=2
    )
    trainer = CLNERTrainer(
        model=model,
        args=args,
        train_dataset=feats,
        data_collator=CLNERDataCollator(minilm_tokenizer),
        cl_args=CLArguments(head_learning_rate=5e-3),
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) >= 5 and losses[-1] < 0.5 * losses[0], losses
    # the emission layer and CRF have their own learning rate
    assert sorted({g["initial_lr"] for g in trainer.optimizer.param_groups}) == [2e-4, 5e-3]


def test_resume_from_checkpoint_continues(features, labels, tmp_path, minilm_tokenizer):
    def make(max_steps):
        model = tiny_model(labels)
        args = training_args(
            tmp_path, max_steps=max_steps, save_strategy="steps", save_steps=2, per_device_train_batch_size=4
        )
        return CLNERTrainer(
            model=model,
            args=args,
            train_dataset=features["train"].select(range(24)),
            data_collator=CLNERDataCollator(minilm_tokenizer),
            cl_args=CLArguments(),
        )

    first = make(4)
    first.train()
    ckpt = tmp_path / "out" / "checkpoint-4"
    assert ckpt.is_dir()
    second = make(6)
    second.train(resume_from_checkpoint=str(ckpt))
    assert second.state.global_step == 6
    steps = [h["step"] for h in second.state.log_history if "loss" in h]
    assert steps[-2:] == [5, 6]


def test_bf16_autocast_training_step_is_finite(features, labels, tmp_path, minilm_tokenizer):
    """Mixed precision where the device allows it (bf16 autocast on CPU): the CRF runs in float32 inside."""
    model = tiny_model(labels)
    args = training_args(tmp_path, bf16=True, max_steps=2, per_device_train_batch_size=4)
    trainer = CLNERTrainer(
        model=model,
        args=args,
        train_dataset=features["train"].select(range(8)),
        data_collator=CLNERDataCollator(minilm_tokenizer),
        cl_args=CLArguments(),
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert logs and all(torch.isfinite(torch.tensor(h["loss"])) for h in logs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**split_views(make_batch(features, minilm_tokenizer, 4))[1])
        marg = model.crf.marginals(out.logits, out.word_mask)
    assert marg.dtype == torch.float32 and torch.isfinite(marg).all()


# ------------------------------------------------------------------------------------------------- evaluation
def test_evaluate_reports_both_views_and_stitches_long_sentences(raw, labels, tmp_path, minilm_tokenizer):
    import datasets

    long_row = {"id": "long", "tokens": [f"w{i}" for i in range(600)], "tags": ["O"] * 600, "context": ["a snippet"]}
    rows = [dict(r) for r in raw["validation"].select(range(5))] + [long_row]
    ds = datasets.Dataset.from_list(rows, features=raw["validation"].features)
    label2id = {label: i for i, label in enumerate(labels)}
    feats = preprocess_dataset(ds, minilm_tokenizer, label2id, max_seq_length=64)
    assert len(feats) > len(ds)  # the long sentence is split into several windows
    model = tiny_model(labels)
    trainer = CLNERTrainer(
        model=model,
        args=training_args(tmp_path, per_device_eval_batch_size=3),
        eval_dataset=feats,
        data_collator=CLNERDataCollator(minilm_tokenizer),
        return_entity_level_metrics=True,
    )
    metrics = trainer.evaluate()
    for view in ("sentence", "context"):
        for k in ("precision", "recall", "f1", "accuracy"):
            assert 0.0 <= metrics[f"eval_{view}_{k}"] <= 1.0
    assert any(k.startswith("eval_context_") and k.endswith("_number") for k in metrics)
    out = trainer.predict(feats)
    views, gold = trainer.unpack_predictions(out.predictions, out.label_ids)
    assert [len(g) for g in gold] == [len(r["tokens"]) for r in rows]
    assert [len(p) for p in views["sentence"]] == [len(p) for p in views["context"]] == [len(g) for g in gold]
    assert gold[-1] == [label2id["O"]] * 600


def test_eval_f1_is_the_two_view_mean_and_selects_the_best_model(features, labels, minilm_tokenizer, tmp_path):
    model = tiny_model(labels)
    args = training_args(
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


def test_drop_last_drops_no_evaluation_or_test_sentence(features, labels, minilm_tokenizer, tmp_path):
    dev = features["validation"]
    assert len(dev) % 16 != 0
    trainer = CLNERTrainer(
        model=tiny_model(labels),
        args=training_args(tmp_path, dataloader_drop_last=True),
        eval_dataset=dev,
        data_collator=CLNERDataCollator(minilm_tokenizer),
    )
    assert sum(len(b["input_ids"]) for b in trainer.get_eval_dataloader()) == len(dev)
    assert sum(len(b["input_ids"]) for b in trainer.get_test_dataloader(dev)) == len(dev)
    output = trainer.predict(dev)
    views, gold = trainer.unpack_predictions(output.predictions, output.label_ids)
    assert len(gold) == len(views["sentence"]) == len(views["context"]) == len(set(dev["example_id"]))
    assert trainer.args.dataloader_drop_last is True  # training still drops its last, incomplete batch
    assert trainer.evaluate()["eval_sentence_accuracy"] >= 0


# ---------------------------------------------------------------------------------- a diverged run, bad flags
def test_nan_loss_components_are_never_logged_next_to_a_finite_loss(features, labels, minilm_tokenizer, tmp_path):
    """With the stop turned off, the Trainer's NaN filter would log 'loss': 0 for steps whose parts are NaN."""
    trainer = CLNERTrainer(
        model=tiny_model(labels),
        args=training_args(tmp_path, max_steps=4, learning_rate=1e8),
        train_dataset=features["train"].select(range(32)),
        data_collator=CLNERDataCollator(minilm_tokenizer),
        cl_args=CLArguments(),
    )
    trainer.stop_on_non_finite_loss = False
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss_nll" in h]
    assert any(math.isnan(h["loss_nll"]) for h in logs)  # it did diverge
    for h in logs:
        parts_finite = all(math.isfinite(h[k]) for k in ("loss_nll", "loss_nll_ext", "loss_cl"))
        assert math.isfinite(h["loss"]) == parts_finite, h


def test_weights_broken_by_the_last_update_are_refused(features, labels, minilm_tokenizer, tmp_path):
    """No later loss shows a last update that overflowed: `train()` checks the weights before it returns."""

    class BreakWeights(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            with torch.no_grad():
                model.classifier.weight[0, 0] = float("inf")

    trainer = CLNERTrainer(
        model=tiny_model(labels),
        args=training_args(tmp_path, max_steps=1),
        train_dataset=features["train"].select(range(8)),
        callbacks=[BreakWeights()],
        data_collator=CLNERDataCollator(minilm_tokenizer),
        cl_args=CLArguments(),
    )
    with pytest.raises(
        TrainingDivergedError,
        match=r"after step 1 the weights of classifier\.weight are NaN or "
        r"infinite\. Lower --learning_rate",
    ):
        trainer.train()


@pytest.mark.parametrize(
    "flag,value,fragment",
    [
        ("label_smoothing_factor", 0.1, "--label_smoothing_factor 0.1 has no effect here"),
        ("eval_do_concat_batches", False, "--eval_do_concat_batches false cannot work here"),
        (
            "neftune_noise_alpha",
            5.0,
            ("--neftune_noise_alpha 5 cannot work here: NEFTune adds noise through the model's input embeddings"),
        ),
    ],
)
def test_trainer_refuses_flags_it_ignores_or_breaks_on(labels, tmp_path, flag, value, fragment):
    with pytest.raises(CLNERUsageError, match=fragment.replace("(", r"\(")):
        CLNERTrainer(model=tiny_model(labels), args=training_args(tmp_path, **{flag: value}))
    # the ones that work are accepted
    CLNERTrainer(
        model=tiny_model(labels),
        args=training_args(tmp_path, average_tokens_across_devices=False, include_num_input_tokens_seen="non_padding"),
    )


# ------------------------------------------------------------------------------ surface-form scores (WNUT-17)
def names_of(rows, id2label):
    return [[id2label[int(i)] for i in row] for row in rows]


def test_evaluation_reports_surface_form_scores_of_both_views_with_the_words(
    raw, features, labels, minilm_tokenizer, tmp_path
):
    """With the dev sentences' words (`eval_words`), evaluation also reports each view's surface-form P/R/F1
    (`surface_form_metrics` of the same predictions) and their two-view means; `eval_f1` stays the mean of the
    entity F1s. `predict` scores them with the words it is given, and without words there are none."""
    from clner.metrics import parse_view_metrics, surface_form_metrics

    dev, words = features["validation"], [list(w) for w in raw["validation"]["tokens"]]
    trainer = CLNERTrainer(
        model=tiny_clner(labels, decisive=True),
        args=training_args(tmp_path),
        eval_dataset=dev,
        data_collator=CLNERDataCollator(minilm_tokenizer),
    )
    trainer.eval_words = raw["validation"]["tokens"]
    metrics = trainer.evaluate()
    plain = trainer.predict(dev)  # no words: no surface-form scores
    assert not any("surface" in k for k in plain.metrics)
    views, gold = trainer.unpack_predictions(plain.predictions, plain.label_ids)
    id2label = trainer.model.config.id2label
    for view in ("sentence", "context"):
        predicted = names_of(views[view], id2label)
        assert any(t != "O" for row in predicted for t in row)  # the decisive model predicts entities
        expected = surface_form_metrics(words, names_of(gold, id2label), predicted)
        assert {k: metrics[f"eval_{view}_surface_{k}"] for k in expected} == pytest.approx(expected)
    for k in ("precision", "recall", "f1"):
        views_mean = (metrics[f"eval_sentence_surface_{k}"] + metrics[f"eval_context_surface_{k}"]) / 2
        assert metrics[f"eval_surface_{k}"] == pytest.approx(views_mean)
        assert metrics[f"eval_{k}"] == pytest.approx(
            (metrics[f"eval_sentence_{k}"] + metrics[f"eval_context_{k}"]) / 2
        )
    scored = trainer.predict(dev, metric_key_prefix="predict", words=words).metrics
    assert scored["predict_context_surface_f1"] == pytest.approx(metrics["eval_context_surface_f1"])
    parsed = parse_view_metrics(metrics)
    assert parsed["context"]["overall"]["surface_f1"] == metrics["eval_context_surface_f1"]
    assert "surface" not in parsed["context"]["types"]


def test_surface_form_scores_need_the_words_of_the_evaluated_sentences(
    raw, features, labels, minilm_tokenizer, tmp_path
):
    """`eval_words` belong to the trainer's `eval_dataset`: another dataset gets surface-form scores only with its
    own words, and words that are not the evaluated sentences' are refused, not scored."""
    dev = features["validation"]
    first = dev.filter(lambda row: row["example_id"] < 10)
    trainer = CLNERTrainer(
        model=tiny_clner(labels, decisive=True),
        args=training_args(tmp_path),
        eval_dataset=dev,
        data_collator=CLNERDataCollator(minilm_tokenizer),
    )
    trainer.eval_words = raw["validation"]["tokens"]
    assert not any("surface" in k for k in trainer.evaluate(first))
    assert "eval_sentence_surface_f1" in trainer.evaluate(first, words=raw["validation"]["tokens"][:10])
    with pytest.raises(ValueError, match="not those of the evaluated dataset"):
        trainer.evaluate(words=raw["validation"]["tokens"][:10])
    shifted = [list(w) + ["x"] for w in raw["validation"]["tokens"]]
    with pytest.raises(ValueError, match="not those of the evaluated dataset"):
        trainer.predict(dev, words=shifted)


def test_surface_form_scores_give_way_to_an_entity_type_named_surface(tmp_path):
    """Per-type scores of a type named ``surface`` would have the surface-form keys: they are left out then."""
    import numpy as np
    from transformers import EvalPrediction

    labels = ["O", "B-surface", "I-surface", "B-person", "I-person"]
    gold = np.array([[1, 2, 0, 3], [0, 3, 4, 0]])
    pred = np.array([[1, 2, 0, 0], [0, 3, 4, 3]])
    meta = np.array([[0, 0, 0, 4], [1, 0, 0, 4]])  # example_id, word_start, own_start, own_end
    words = [["Surface", "Pro", "by", "Satya"], ["hi", "Satya", "Nadella", "Satya"]]
    for per_type in (False, True):
        trainer = CLNERTrainer(
            model=tiny_clner(labels), args=training_args(tmp_path), return_entity_level_metrics=per_type
        )
        with trainer._scoring_words(words):
            metrics = trainer.two_view_metrics(EvalPrediction(predictions=(pred, pred, meta), label_ids=gold))
        if per_type:
            assert metrics["sentence_surface_number"] == 1 and "surface_f1" not in metrics
            assert metrics["sentence_surface_f1"] == metrics["context_surface_f1"] == 1.0  # the type's F1
        else:
            # gold and guessed {(Surface Pro, surface), (Satya, person), (Satya Nadella, person)}, but Satya is
            # guessed only where it is not gold: correct (Surface Pro) and (Satya Nadella), P = R = 2/3
            expected = {"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3}
            for prefix in ("sentence_surface_", "context_surface_", "surface_"):
                assert {k: metrics[prefix + k] for k in expected} == pytest.approx(expected)


def test_logged_loss_parts_keep_full_precision(labels, tmp_path):
    """A part below 1e-4 (L_CL often is) is logged as it is, not rounded to 0."""
    trainer = CLNERTrainer(model=tiny_model(labels), args=training_args(tmp_path, max_steps=1), cl_args=CLArguments())
    trainer._components["loss_cl"] += [3e-6, 5e-6]
    trainer._components["loss_nll"] += [1.23456789]
    trainer.log({"loss": 1.0})
    logged = trainer.state.log_history[-1]
    assert logged["loss_cl"] == pytest.approx(4e-6, rel=1e-9) and logged["loss_nll"] == 1.23456789
