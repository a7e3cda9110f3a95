"""CLNERTrainer: the two-view loss, cooperative learning, evaluation of both views, run_ner_cl.py."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from clner import hardware
from clner.arguments import CLArguments
from clner.data.io import load_ner_dataset
from clner.data.preprocess import CLNERDataCollator, preprocess_dataset
from clner.losses import cl_kl_loss, cl_l2_loss
from conftest import REPO_ROOT, SAMPLE, tiny_clner, training_args
from modeling_clner import CLNERForTokenClassification
from trainer_clner import CLNERTrainer, split_views


def tiny_model(labels, dropout=0.1, seed=0):
    return tiny_clner(labels, seed=seed, dropout=dropout)


def make_batch(features, tokenizer, n=8, split="train"):
    rows = [features[split][i] for i in range(n)]
    return CLNERDataCollator(tokenizer)(rows)


args_for = training_args


def test_cl_losses_zero_for_identical_views_positive_otherwise(features, labels, minilm_tokenizer):
    model = tiny_model(labels).eval()
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
    trainer = CLNERTrainer(model=model, args=args_for(tmp_path), cl_args=cl_args)
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
    trainer = CLNERTrainer(model=model, args=args_for(tmp_path), cl_args=CLArguments())
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


def test_gradient_accumulation_matches_full_batch(features, labels, tmp_path, minilm_tokenizer):
    """bs=8 in one step == bs=4 x 2 accumulation steps: the same logged loss and the same accumulated gradient
    (dropout off).

    Machine-independent by construction: the test compares the accumulated gradients that reach the optimizer,
    which is what the claim is about, not parameters after an adaptive step. (An AdamW step divides by sqrt(v): a
    1e-9 gradient whose last bits differ between the two summation orders became a visible update on AVX2 CPUs.)
    The model runs in float64, so the two summation orders differ by ~1e-16 relative; the tolerance, 1e-9 of the
    largest gradient, is millions of float64 ulps above that on any CPU (some gradients, such as attention key
    biases, are exactly 0 in exact arithmetic and pure rounding noise in float32), yet a wrong accumulation
    normalisation (a factor of 2, or one micro-batch lost) is many orders of magnitude above it."""
    runs = []
    for bs, ga in ((8, 1), (4, 2)):
        model = tiny_model(labels, dropout=0.0).double()
        names = {p: n for n, p in model.named_parameters()}
        grads = {}
        args = args_for(
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


def test_evaluate_reports_both_views_and_stitches_long_sentences(raw, labels, tmp_path, minilm_tokenizer):
    import datasets

    long_row = {"id": "long", "tokens": [f"w{i}" for i in range(600)], "tags": ["O"] * 600, "context": ["a snippet"]}
    rows = [dict(r) for r in raw["validation"].select(range(5))] + [long_row]
    ds = datasets.Dataset.from_list(rows, features=raw["validation"].features)
    label2id = {label: i for i, label in enumerate(labels)}
    feats = preprocess_dataset(ds, minilm_tokenizer, label2id, max_seq_length=64)
    assert len(feats) > len(ds)  # the long sentence became several windows
    model = tiny_model(labels)
    trainer = CLNERTrainer(
        model=model,
        args=args_for(tmp_path, per_device_eval_batch_size=3),
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


def test_minilm_training_lowers_loss(minilm_dir, raw, labels, minilm_tokenizer, tmp_path):
    torch.manual_seed(0)
    model = CLNERForTokenClassification.from_pretrained(str(minilm_dir), id2label=labels)
    label2id = {label: i for i, label in enumerate(labels)}
    feats = preprocess_dataset(raw["train"].select(range(24)), minilm_tokenizer, label2id, max_seq_length=48)
    args = args_for(tmp_path, num_train_epochs=4, learning_rate=2e-4, per_device_train_batch_size=8, logging_steps=2)
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
        args = args_for(
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


def run_cli(args, nproc=1, timeout=300):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(REPO_ROOT / "run_ner_cl.py")] + args
    if nproc > 1:
        cmd = (
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", "29533"]
            + cmd[1:]
            + ["--use_cpu", "--ddp_backend", "gloo"]
        )
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    return proc


def run_main(argv, capsys):
    """run_ner_cl.py's entry point in this process, on one torch thread (as `run_cli`'s OMP_NUM_THREADS=1): its
    stdout. Saves a subprocess launch (an import of transformers' Trainer, ~10 s on 2 cores) where the test is not
    about the process itself."""
    from clner.cli import run_cli as run_entry_point
    from run_ner_cl import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    capsys.readouterr()
    try:
        assert run_entry_point(main, argv, prog="run_ner_cl.py") == 0
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


def test_cli_train_two_processes_and_eval_matches_one_process(tiny_encoder_dir, tmp_path, capsys):
    """DDP training (two forward passes per step, CL-KL) whose end-of-run evaluation runs in the two processes:
    40 rows in batches of 7 over 2 processes is uneven, yet no row is lost or doubled (the metrics equal an
    evaluation of the saved model in one process). An evaluation-only run writes only results."""
    common = [
        "--validation_file",
        str(SAMPLE / "dev.txt"),
        "--max_seq_length",
        "64",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--per_device_eval_batch_size",
        "7",
        "--seed",
        "5",
    ]
    trained = tmp_path / "trained"
    run_cli(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--do_train",
            "--do_eval",
            "--num_train_epochs",
            "2",
            "--learning_rate",
            "5e-3",
            "--per_device_train_batch_size",
            "8",
            "--output_dir",
            str(trained),
            "--logging_steps",
            "1",
        ]
        + common,
        nproc=2,
    )
    state = json.loads((trained / "trainer_state.json").read_text())
    assert state["global_step"] == 16  # 120 rows / (2 processes x 8) per step x 2 epochs
    assert all(k in state["log_history"][0] for k in ("loss_nll", "loss_nll_ext", "loss_cl"))
    two = json.loads((trained / "eval_results.json").read_text())  # evaluated by the two processes
    card = (trained / "README.md").read_text()
    out = tmp_path / "eval1"
    stdout = run_main(["--model_name_or_path", str(trained), "--do_eval", "--output_dir", str(out)] + common, capsys)
    one = json.loads((out / "eval_results.json").read_text())
    # evaluation only: results, no model copy, no card listing training settings that never ran
    assert {f.name for f in out.iterdir()} == {"eval_results.json", "all_results.json"}
    assert f"model:       none (no --do_train: the model {trained} was only evaluated)" in stdout
    # evaluating in the model's own folder leaves its card and weights as they were
    weights = (trained / "model.safetensors").read_bytes()
    run_main(["--model_name_or_path", str(trained), "--do_eval", "--output_dir", str(trained)] + common, capsys)
    assert (trained / "README.md").read_text() == card and (trained / "model.safetensors").read_bytes() == weights
    assert one["eval_samples"] == two["eval_samples"] == 40
    for k in ("eval_sentence_f1", "eval_context_f1", "eval_sentence_accuracy", "eval_context_accuracy"):
        assert one[k] == pytest.approx(two[k], abs=1e-9), k
    assert one["eval_sentence_accuracy"] > 0


def test_cli_predict_outputs_and_unlabeled(tiny_encoder_dir, tmp_path):
    unlabeled = tmp_path / "unlabeled.jsonl"
    unlabeled.write_text(
        "\n".join(
            json.dumps(
                {"tokens": ["Nokia", "phones", "rock"], "context": ["Nokia is a Finnish telecommunications company ."]}
            )
            for _ in range(6)
        )
        + "\n"
    )
    out = tmp_path / "run"
    proc = run_cli(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--unlabeled_file",
            str(unlabeled),
            "--validation_file",
            str(SAMPLE / "dev.txt"),
            "--test_file",
            str(SAMPLE / "dev.txt"),
            "--do_train",
            "--do_eval",
            "--do_predict",
            "--max_train_samples",
            "16",
            "--num_train_epochs",
            "2",
            "--max_seq_length",
            "64",
            "--output_dir",
            str(out),
            "--report_to",
            "tensorboard",
            "--eval_strategy",
            "epoch",
            "--logging_steps",
            "1",
            "--save_strategy",
            "no",
            "--return_entity_level_metrics",
        ]
    )
    # the run ends with the per-type table (once), then the summary block: both views' F1 per named split, the
    # folder, the files
    table = proc.stdout[proc.stdout.rindex("per entity type, F1 (%)") :].splitlines()
    assert re.fullmatch(r"type +dev sentence +dev context +test sentence +test context   support", table[1])
    assert [line.split()[0] for line in table[2:8]] == [
        "corporation",
        "creative-work",
        "group",
        "location",
        "person",
        "product",
    ]
    summary = proc.stdout[proc.stdout.rindex("clner run summary") :].splitlines()
    dev = str(SAMPLE / "dev.txt")
    assert re.fullmatch(rf"dev +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d   {re.escape(dev)}, 40 sentences", summary[3])
    assert re.fullmatch(rf"test +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d   {re.escape(dev)}, 40 sentences", summary[4])
    assert summary[5] == f"output folder: {out}"
    assert (
        "  model:       model.safetensors, config.json, modeling_clner.py, crf_clner.py, inference_clner.py, "
        "pipeline_clner.py, tokenizer.json, tokenizer_config.json" in summary
    )  # every remote-code file
    assert "  model card:  README.md, training_curves.png" in summary
    assert (
        "  predictions: predictions.txt (context view, run_ner.py format), predictions_sentence.txt, "
        "predictions_context.txt" in summary
    )
    results = next(line for line in summary if line.startswith("  results:"))
    assert results.startswith("  results:     all_results.json, train_results.json, eval_results.json, ")
    assert (
        "the card has no model-index (the Hub shows no results): name the data with --dataset_card_name" in proc.stdout
    )  # no --dataset_card_name / --dataset_name: the summary says how to get results on the Hub
    assert summary[-1] == "=" * 100 and proc.stdout.rstrip().endswith(summary[-1])
    # per-type metrics: once, in the table; not in the per-epoch log lines nor the metric dumps
    assert proc.stdout.count("person") == 1 and "eval_sentence_f1" in proc.stdout
    assert "pin_memory" not in proc.stderr and "PAD/BOS/EOS" not in proc.stdout + proc.stderr
    assert list(out.rglob("events.out.tfevents.*"))  # the Trainer's TensorBoard logging
    for name in (
        "train_results.json",
        "eval_results.json",
        "predict_results.json",
        "all_results.json",
        "predictions_sentence.txt",
        "predictions_context.txt",
        "model.safetensors",
        "modeling_clner.py",
    ):
        assert (out / name).exists(), name
    train_results = json.loads((out / "train_results.json").read_text())
    assert train_results["train_samples"] == 16 and train_results["train_unlabeled_samples"] == 6
    lines = [line.split("\t") for line in (out / "predictions_context.txt").read_text().splitlines() if line]
    raw = load_ner_dataset({"dev": str(SAMPLE / "dev.txt")})["dev"]
    assert len(lines) == sum(len(t) for t in raw["tokens"]) and all(len(x) == 3 for x in lines)
    assert [x[0] for x in lines[: len(raw[0]["tokens"])]] == raw[0]["tokens"]
    # run_ner.py's predictions.txt: a line of tags per sentence, the context view's
    by_sentence = (out / "predictions.txt").read_text().splitlines()
    assert [len(line.split(" ")) for line in by_sentence] == [len(t) for t in raw["tokens"]]
    context_tags = [x[2] for x in lines]
    assert " ".join(by_sentence).split(" ") == context_tags
    config = json.loads((out / "config.json").read_text())
    assert config["train_views"] == "both" and config["cl_loss"] == "kl" and config["trained_with_context"]
    # the objective actually trained (the official defaults) is recorded in the config and in run_config.json
    assert (config["nll_weight"], config["nll_ext_weight"], config["cl_weight"]) == (1.0, 0.5, 0.5)
    assert config["cl_temperature"] == 0.3
    run_config = json.loads((out / "run_config.json").read_text())["cl"]
    assert run_config["cl_weight"] == 0.5 and run_config["nll_ext_weight_no_context"] == 1.0
    assert "| loss weights L_NLL / L_NLL-EXT / L_CL | 1 / 0.5 / 0.5 |" in (out / "README.md").read_text()


def test_cli_rejects_unseen_dev_label(tiny_encoder_dir, tmp_path, capsys):
    bad = tmp_path / "dev.conll"
    bad.write_text("Acme\tB-org\nrocks\tO\n")
    message = run_in_process(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--validation_file",
            str(bad),
            "--do_eval",
            "--output_dir",
            str(tmp_path / "o"),
            "--report_to",
            "none",
        ],
        capsys,
    )
    assert "B-org" in message and "validation" in message


def test_bf16_autocast_training_step_is_finite(features, labels, tmp_path, minilm_tokenizer):
    """Mixed precision where the device allows it (bf16 autocast on CPU): the CRF runs in float32 inside."""
    model = tiny_model(labels)
    args = args_for(tmp_path, bf16=True, max_steps=2, per_device_train_batch_size=4)
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


def test_yaml_config_is_parsed(tmp_path):
    from run_ner_cl import parse_args

    cfg = tmp_path / "run.yaml"
    cfg.write_text("train_file: a.txt\noutput_dir: out\ncl_loss: l2\ncl_temperature: 0.3\nnll_weight: 0.5\n")
    model_args, data_args, cl_args, training_args = parse_args([str(cfg)])
    assert data_args.train_file == "a.txt" and cl_args.cl_loss == "l2" and cl_args.cl_temperature == 0.3
    assert cl_args.nll_weight == 0.5 and training_args.output_dir == "out"
    with pytest.raises(ValueError, match="cl_loss"):
        CLArguments(cl_loss="js")


# ------------------------------------------------------------------------------------------------ hostile input
def test_yaml_numbers_read_as_strings_are_coerced_or_named(tmp_path):
    from run_ner_cl import parse_args

    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "train_file: a.txt\noutput_dir: out\nlearning_rate: 1e-4\nhead_learning_rate: 5e-3\n"
        "num_train_epochs: 2\nmax_steps: '10'\nmax_seq_length: 1e2\ncrf_constraints: 'false'\n"
    )
    model_args, data_args, cl_args, training_args = parse_args([str(cfg)])
    assert training_args.learning_rate == 1e-4 and isinstance(training_args.learning_rate, float)
    assert cl_args.head_learning_rate == 5e-3 and training_args.max_steps == 10 and data_args.max_seq_length == 100
    assert model_args.crf_constraints is False
    for text, fragment in (
        ("learning_rate: fast\n", "learning_rate: expected a number, got 'fast'"),
        ("max_steps: 2.5\n", "max_steps: expected a whole number, got 2.5"),
        ("learning_rate: [1]\n", "learning_rate: expected a number, got [1]"),
        ("bogus_flag: 1\n", None),
    ):
        cfg.write_text("output_dir: out\n" + text)
        with pytest.raises(ValueError) as err:
            parse_args([str(cfg)])
        assert fragment is None or str(err.value) == f"{cfg}: {fragment}"


def run_in_process(argv, capsys):
    """run_ner_cl.py's entry point in this process: a user error exits with code 2 and one paragraph on stderr."""
    from clner.cli import run_cli
    from run_ner_cl import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, argv, prog="run_ner_cl.py")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("run_ner_cl.py: error: ")
    return line[len("run_ner_cl.py: error: ") :]


USER_ERRORS = {
    "scheme": (
        ["train", "--validation_file", "{o_to_i}", "--do_eval"],
        "{o_to_i}:2: sentence 1 (line 1), word 2 'Blackburn': 'I-PER' follows 'O': under --tag_scheme BIO an "
        "entity starts with B-PER. If the file is IOB1",
    ),
    "empty": (["--train_file", "{empty}", "--do_train"], "{empty}: no sentences"),
    "eval_without_tags": (
        ["train", "--validation_file", "{raw}", "--do_eval"],
        "--do_eval: --validation_file {raw} has no tags",
    ),
    "eval_without_file": (["train", "--do_eval"], "--do_eval needs --validation_file"),
    "integer_tags": (
        ["--train_file", "{ids}", "--do_train"],
        "{ids}:1: record 0: integer tag 1 but no label names: give the name of each tag id, in id order, "
        "with run_ner_cl.py --tag_names",
    ),
    "max_seq_length": (
        ["train", "--max_seq_length", "1024"],
        "--max_seq_length 1024 exceeds the 512 positions of the encoder of {encoder} "
        "(max_position_embeddings); use 512 or less",
    ),
    "max_seq_length_too_small": (
        ["train", "--max_seq_length", "2"],
        "--max_seq_length 2 leaves no room for words: a view holds 2 special tokens",
    ),
    "negative_window_stride": (["train", "--window_stride", "-3"], "--window_stride -3 is negative"),
    "cl_args": (["train", "--cl_temperature", "-1"], "--cl_temperature must be positive"),
    "unlabeled_without_cl": (
        ["train", "--train_views", "sentence", "--unlabeled_file", "{raw}"],
        "--unlabeled_file adds only the CL loss, which this run does not train (--train_views sentence --cl_loss none",
    ),
    "resume": (["train", "--resume_from_checkpoint", "last"], "--resume_from_checkpoint last: no checkpoint in {out}"),
    "missing_model_folder": (
        ["train", "--model_name_or_path", "{out}/no-such-model"],
        "--model_name_or_path {out}/no-such-model: no such folder (a local path",
    ),
    # flags the CRF objective ignores, and trainer flags that would crash after training
    "label_smoothing": (
        ["train", "--label_smoothing_factor", "0.3"],
        "--label_smoothing_factor 0.3 has no effect here: label smoothing applies to a per-token "
        "cross-entropy, and the CLNER loss is the CRF's sentence-level negative log-likelihood",
    ),
    "eval_do_concat_batches": (
        ["train", "--validation_file", "{dev}", "--do_eval", "--eval_do_concat_batches", "false"],
        "--eval_do_concat_batches false cannot work here: the metrics stitch",
    ),
    "batch_eval_metrics": (["train", "--batch_eval_metrics", "true"], "--batch_eval_metrics cannot work here"),
    "prediction_loss_only": (
        ["train", "--test_file", "{dev}", "--do_predict", "--prediction_loss_only", "true"],
        "--prediction_loss_only true --do_predict: prediction writes the predicted tags",
    ),
    "prediction_loss_only_metric": (
        [
            "train",
            "--validation_file",
            "{dev}",
            "--do_eval",
            "--eval_strategy",
            "epoch",
            "--prediction_loss_only",
            "true",
            "--metric_for_best_model",
            "f1",
        ],
        "--prediction_loss_only true --metric_for_best_model f1: evaluation then computes the loss only",
    ),
    "max_train_samples": (
        ["train", "--max_train_samples", "0"],
        "--max_train_samples 0 keeps no sentence: give 1 or more",
    ),
    "max_eval_samples": (
        ["train", "--validation_file", "{dev}", "--do_eval", "--max_eval_samples", "-1"],
        "--max_eval_samples -1 keeps no sentence",
    ),
    # two-view training on data without any context
    "no_contexts": (
        ["--train_file", "{plain}", "--do_train"],
        "--train_views both (the default) trains on retrieved contexts, and no training sentence of "
        "--train_file {plain} has one: retrieve them first with clner-retrieve",
    ),
    "no_contexts_context_view": (
        ["--train_file", "{plain}", "--do_train", "--train_views", "context"],
        "--train_views context trains on retrieved contexts, and no training sentence",
    ),
}


@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_cli_user_errors_are_one_paragraph_before_any_training(tiny_encoder_dir, tmp_path, capsys, case):
    files = {
        "o_to_i": "says\tO\nBlackburn\tI-PER\n",
        "empty": "\n\n",
        "raw": "EU\nrejects\n",
        "ids": '{"tokens": ["a", "b"], "tags": [1, 0]}\n',
        "plain": "EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n",
    }
    names = {"out": tmp_path / "out", "encoder": tiny_encoder_dir, "dev": SAMPLE / "dev.txt"}
    for name, text in files.items():
        names[name] = tmp_path / (name + (".jsonl" if name == "ids" else ".conll"))
        names[name].write_text(text)
    argv, start = USER_ERRORS[case]
    argv = [a.format(**names) for a in argv]
    if argv[0] == "train":
        argv = ["--train_file", str(SAMPLE / "train.txt"), "--do_train"] + argv[1:]
    message = run_in_process(
        ["--model_name_or_path", str(tiny_encoder_dir), "--output_dir", str(names["out"]), "--report_to", "none"]
        + argv,
        capsys,
    )
    assert message.startswith(start.format(**names)), message
    assert not names["out"].exists() or not any(names["out"].iterdir())  # nothing trained, nothing written


def test_cli_exit_code_2_and_one_line_for_a_user_error(tmp_path, capsys):
    """A user mistake is one `run_ner_cl.py: error:` line and exit code 2 (in this process; the same path through a
    real `python run_ner_cl.py` process is `test_hub.test_run_ner_cl_push_to_hub_offline_fails_before_training`)."""
    message = run_in_process(
        [
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--output_dir",
            str(tmp_path / "o"),
            "--cl_loss",
            "kl",
            "--train_views",
            "sentence",
        ],
        capsys,
    )
    assert message == (
        "--cl_loss kl needs --train_views both: the CL loss compares the two views, and --train_views "
        "sentence trains one (use --cl_loss none, or leave it out)"
    )


def test_run_cli_keeps_tracebacks_for_bugs():
    from clner.cli import run_cli

    def buggy(argv):
        return {}["missing"]

    with pytest.raises(KeyError):
        run_cli(buggy, [])
    assert run_cli(lambda argv: {"metrics": 1}, []) == 0


IOB1_TRAIN = (
    "EU\tI-ORG\nrejects\tO\nGerman\tI-MISC\ncall\tO\n\n"
    "Peter\tI-PER\nBlackburn\tI-PER\nJohn\tB-PER\nSmith\tI-PER\nand\tO\nAcme\tI-ORG\n\n"
)


def test_cli_iob1_data_trains_in_bio_and_writes_iob1(tiny_encoder_dir, tmp_path, one_torch_thread):
    from clner.data.io import read_conll
    from clner.data.schemes import bio_to_iob1, iob1_to_bio
    from run_ner_cl import main

    data = tmp_path / "iob1.conll"
    data.write_text(IOB1_TRAIN)
    out = tmp_path / "out"
    common = ["--test_file", str(data), "--do_predict", "--report_to", "none", "--use_cpu", "--save_strategy", "no"]
    main(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(data),
            "--do_train",
            "--max_steps",
            "2",
            "--tag_scheme",
            "IOB1",
            "--train_views",
            "sentence",
            "--output_dir",
            str(out),
            *common,
        ]
    )
    config = json.loads((out / "config.json").read_text())
    assert config["tag_scheme"] == "BIO" and config["data_tag_scheme"] == "IOB1"
    assert sorted(config["label2id"]) == ["B-MISC", "B-ORG", "B-PER", "I-PER", "O"]  # the BIO tags of the data
    gold = [r["tags"] for r in read_conll(data)]
    for again in (out, tmp_path / "again"):  # the trained model predicts IOB1 files without being told
        if again != out:
            main(["--model_name_or_path", str(out), "--output_dir", str(again), *common])
        rows = read_conll(again / "predictions_sentence.txt", tag_column=1)
        assert [r["tags"] for r in rows] == gold  # the gold column is the file's own tags, back in IOB1
        predicted = [r["tags"] for r in read_conll(again / "predictions_sentence.txt", tag_column=2)]
        assert all(bio_to_iob1(iob1_to_bio(p)) == p for p in predicted)


def test_cli_tag_names_and_unconstrained_training(tiny_encoder_dir, tmp_path, one_torch_thread):
    from run_ner_cl import main

    ids = tmp_path / "ids.jsonl"
    ids.write_text('{"tokens": ["Peter", "Blackburn", "says"], "tags": [1, 2, 0]}\n{"tokens": ["hi"], "tags": [0]}\n')
    o_to_i = tmp_path / "o_to_i.conll"
    o_to_i.write_text("says\tO\nBlackburn\tI-PER\n\nPeter\tB-PER\n")
    common = [
        "--model_name_or_path",
        str(tiny_encoder_dir),
        "--do_train",
        "--max_steps",
        "1",
        "--report_to",
        "none",
        "--use_cpu",
        "--save_strategy",
        "no",
        "--train_views",
        "sentence",
    ]  # the data has no contexts
    main(
        common + ["--train_file", str(ids), "--tag_names", "O", "B-PER", "I-PER", "--output_dir", str(tmp_path / "a")]
    )
    assert json.loads((tmp_path / "a" / "config.json").read_text())["id2label"] == {
        "0": "O",
        "1": "B-PER",
        "2": "I-PER",
    }
    main(common + ["--train_file", str(o_to_i), "--crf_constraints", "false", "--output_dir", str(tmp_path / "b")])
    assert json.loads((tmp_path / "b" / "config.json").read_text())["crf_constraints"] is False


def test_cli_resume_last_skips_an_incomplete_checkpoint_and_notes_it(
    tiny_encoder_dir, tmp_path, caplog, one_torch_thread
):
    import shutil

    from clner.run_utils import checkpoint_problem
    from run_ner_cl import main

    out = tmp_path / "out"
    common = [
        "--model_name_or_path",
        str(tiny_encoder_dir),
        "--train_file",
        str(SAMPLE / "train.txt"),
        "--max_train_samples",
        "16",
        "--per_device_train_batch_size",
        "8",
        "--do_train",
        "--report_to",
        "none",
        "--use_cpu",
        "--output_dir",
        str(out),
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
        "--max_seq_length",
        "64",
    ]
    main(common + ["--max_steps", "2"])
    assert checkpoint_problem(out / "checkpoint-1") is None and checkpoint_problem(out / "checkpoint-2") is None
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-3")  # killed while saving: no trainer_state.json yet
    (out / "checkpoint-3" / "trainer_state.json").unlink()
    weights = out / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # and one killed while writing its weights
    assert checkpoint_problem(out / "checkpoint-3") == "no trainer_state.json"
    assert checkpoint_problem(out / "checkpoint-2").startswith("model.safetensors is truncated or corrupt")
    with caplog.at_level("WARNING"):
        main(common + ["--max_steps", "3", "--resume_from_checkpoint", "last"])
    assert (
        "skipping incomplete checkpoint-3 (no trainer_state.json), checkpoint-2 (model.safetensors is truncated"
        in caplog.text
        and f"resuming from {out / 'checkpoint-1'}" in caplog.text
    )
    results = json.loads((out / "train_results.json").read_text())
    assert results["train_resumed_from"] == str(out / "checkpoint-1")
    assert results["train_note"].startswith("resumed at step 1: train_loss and the speed metrics cover steps 2-3 only")


def test_cli_accepts_run_ner_flags(tiny_encoder_dir, tmp_path, capsys, caplog):
    """run_ner.py's --text_column_name, --config_name, --tokenizer_name, --label_all_tokens (a no-op, said so) and
    --ignore_mismatched_sizes (continue a trained model on data with other labels)."""
    from transformers import AutoConfig

    import run_ner_cl
    from clner.cli import run_cli as run_cli_main

    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps({"words": w.split(), "ner_tags": t.split()}) + "\n"
            for w, t in [
                ("John Smith lives in Paris", "B-person I-person O O B-location"),
                ("Paris is nice", "B-location O O"),
            ]
        )
    )
    config_dir = tmp_path / "encoder-config"
    AutoConfig.from_pretrained(tiny_encoder_dir, hidden_dropout_prob=0.25).save_pretrained(config_dir)
    common = [
        "--do_train",
        "--max_steps",
        "1",
        "--max_seq_length",
        "32",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--per_device_train_batch_size",
        "2",
        "--train_views",
        "sentence",
    ]  # the data has no contexts
    first = tmp_path / "first"
    run_ner_cl.main(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(data),
            "--text_column_name",
            "words",
            "--label_column_name",
            "ner_tags",
            "--label_all_tokens",
            "--config_name",
            str(config_dir),
            "--tokenizer_name",
            str(tiny_encoder_dir),
            "--output_dir",
            str(first),
        ]
        + common
    )
    assert "--label_all_tokens has no effect: the CRF labels each word" in caplog.text
    config = json.loads((first / "config.json").read_text())
    assert config["encoder"]["hidden_dropout_prob"] == 0.25
    assert sorted(config["id2label"].values()) == ["B-location", "B-person", "I-person", "O"]

    other = tmp_path / "other.conll"
    other.write_text("Acme\tB-org\nrocks\tO\n\nAcme\tB-org\nwins\tO\n")
    again = [
        "--model_name_or_path",
        str(first),
        "--train_file",
        str(other),
        "--output_dir",
        str(tmp_path / "second"),
        "--learning_rate",
        "0",
    ] + common
    with pytest.raises(SystemExit) as exit_info:
        run_cli_main(run_ner_cl.main, again)
    assert exit_info.value.code == 2
    assert re.search(
        r"label\(s\) unseen in training: 'B-org'.*pass --ignore_mismatched_sizes", capsys.readouterr().err
    )
    run_ner_cl.main(again + ["--ignore_mismatched_sizes"])
    second = CLNERForTokenClassification.from_pretrained(tmp_path / "second")
    assert sorted(second.config.labels) == ["B-org", "O"] and second.classifier.out_features == 2
    trained = CLNERForTokenClassification.from_pretrained(first)
    for (name, p), (_, q) in zip(trained.encoder.state_dict().items(), second.encoder.state_dict().items()):
        assert torch.equal(p, q), name  # the encoder carried over (learning rate 0); the head started afresh
    with pytest.raises(SystemExit):
        run_cli_main(
            run_ner_cl.main,
            [
                "--model_name_or_path",
                str(tiny_encoder_dir),
                "--train_file",
                str(data),
                "--text_column_name",
                "words",
                "--token_column_name",
                "tokens",
                "--output_dir",
                str(tmp_path / "x"),
            ]
            + common,
        )
    assert "--text_column_name words and --token_column_name tokens name different columns" in capsys.readouterr().err


def test_arguments_file_paths_are_read_from_its_folder(tmp_path, monkeypatch):
    """examples/quickstart.json runs from any folder: its relative input paths are read from the file's folder."""
    from run_ner_cl import parse_args

    monkeypatch.chdir(tmp_path)
    _, data_args, _, training_args = parse_args([str(REPO_ROOT / "examples" / "quickstart.json")])
    assert data_args.train_file == str(SAMPLE / "train.txt") and data_args.validation_file == str(SAMPLE / "dev.txt")
    assert training_args.output_dir == "outputs/quickstart"  # outputs go where the user is
    (tmp_path / "mine.txt").write_text("x\tO\n")
    args_file = tmp_path / "sub" / "run.yaml"
    args_file.parent.mkdir()
    args_file.write_text("train_file: mine.txt\nvalidation_file: ../mine.txt\noutput_dir: out\n")
    _, data_args, _, _ = parse_args([str(args_file)])
    assert data_args.train_file == "mine.txt"  # not beside the file: as given, from the current folder
    assert data_args.validation_file == str(tmp_path / "mine.txt")


def test_help_states_each_default_once(capsys):
    from run_ner_cl import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text.split("--model_name_or_path MODEL_NAME_OR_PATH")[2].split("--config_name")[0]
    assert re.search(r"Default: 'kl' with --train_views both, else 'none'\. --cl_weight", text)
    assert re.search(r"Weight of L_CL \(official code: 0\.5; paper eq\. 5: 1\)\. \(default: 0\.5\)", text)


def test_required_options_state_no_default(capsys):
    """clner-predict's required --model / --input say no '(default: None)'; an optional one keeps its default."""
    from clner.commands import predict as predict_cmd

    with pytest.raises(SystemExit):
        predict_cmd.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text.split("--model MODEL")[-1].split("--output OUTPUT")[0]
    assert "'-' for stdout (default: -)" in text


@pytest.mark.parametrize(
    "machine,name,flags,native",
    [
        ("x86_64", "AMD EPYC", {"avx2", "fma", "f16c"}, False),
        (
            "x86_64",
            "Intel(R) Xeon(R) Platinum 8481C",
            {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"},
            True,
        ),
        ("x86_64", "Intel(R) Xeon(R) Cooper Lake", {"avx2", "avx512f", "avx512_bf16"}, True),
        ("x86_64", "Intel(R) Xeon(R) Skylake", {"avx2", "avx512f"}, False),
        ("aarch64", "Neoverse-V1", {"asimd", "bf16", "sve"}, True),
        ("aarch64", "Neoverse-N1", {"asimd"}, False),
    ],
)
def test_bf16_is_native_only_with_bf16_instructions(monkeypatch, machine, name, flags, native):
    """bf16 counts as native from the CPU's flags, never from the machine the test runs on; `--bf16` on an
    emulating CPU gets one warning that names the CPU, the slowdown and the fix, and a native one gets none."""
    import platform

    monkeypatch.setattr(hardware, "_cpu_info", lambda: (name, flags))
    monkeypatch.setattr(platform, "machine", lambda: machine)
    support = hardware.cpu_bf16_support()
    assert support.native is native and support.description.startswith(name)
    assert "torch CPU capability" in support.description
    warning = hardware.bf16_cpu_warning(uses_cpu=True, bf16=True)
    if native:
        assert warning is None
    else:
        assert name in warning and "30x slower" in warning and "drop --bf16" in warning
    assert hardware.bf16_cpu_warning(uses_cpu=False, bf16=True) is None
    assert hardware.bf16_cpu_warning(uses_cpu=True, bf16=False) is None


def test_an_arguments_file_with_overriding_flags_and_yaml_no(tmp_path):
    """Regression (issue 19): `clner-train examples/quickstart.json --max_steps 5` failed with a cryptic
    HfArgumentParser message, and YAML's `save_strategy: no` (read as false) gave `False is not a valid
    SaveStrategy`. Flags after the file override it; the file's relative inputs are read from its folder."""
    from run_ner_cl import parse_args

    quick = REPO_ROOT / "examples" / "quickstart.json"
    model_args, data_args, cl_args, training_args = parse_args(
        [str(quick), "--max_steps", "5", "--learning_rate", "3e-4", "--do_predict", "false", "--cl_loss", "l2"]
    )
    assert training_args.max_steps == 5 and training_args.learning_rate == 3e-4 and not training_args.do_predict
    assert training_args.do_train and training_args.num_train_epochs == 8 and cl_args.cl_loss == "l2"
    assert data_args.train_file == str(REPO_ROOT / "examples" / "data" / "train.txt")
    local = tmp_path / "dev.txt"
    local.write_text("a\tO\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:  # a flag's relative path is the user's, from the current folder
        assert parse_args([str(quick), "--validation_file", "dev.txt"])[1].validation_file == "dev.txt"
    finally:
        os.chdir(cwd)
    cfg = tmp_path / "run.yaml"
    cfg.write_text("output_dir: out\nsave_strategy: no\neval_strategy: no\ndo_train: yes\n")
    *_, training_args = parse_args([str(cfg)])
    assert training_args.save_strategy == "no" and training_args.eval_strategy == "no" and training_args.do_train
    *_, training_args = parse_args([str(cfg), "--save_strategy", "epoch"])
    assert training_args.save_strategy == "epoch"
    cfg.write_text("output_dir: out\nbogus: 1\n")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['bogus'\]"):
        parse_args([str(cfg), "--max_steps", "2"])


def test_run_summary_lists_checkpoints_and_how_to_get_a_model_index(tmp_path):
    """Regression (issue 19): a 5-step run wrote a 260 MB checkpoint-5/ that the summary did not list, and a card
    without a dataset name has no model-index without the summary saying why."""
    import time as time_

    from clner.arguments import DataTrainingArguments
    from clner.run_utils import run_summary

    started = time_.time()
    out = tmp_path / "out"
    (out / "checkpoint-5").mkdir(parents=True)
    (out / "checkpoint-5" / "model.safetensors").write_bytes(b"0" * 2**20)
    (out / "README.md").write_text("card")
    (out / "model.safetensors").write_bytes(b"0")
    text = run_summary(
        {}, DataTrainingArguments(), args_for(tmp_path, output_dir=str(out), do_train=True), None, started
    )
    assert "  checkpoints: checkpoint-5 (1 MiB; --save_strategy no keeps none)" in text
    assert "the card has no model-index" in text
    text = run_summary(
        {},
        DataTrainingArguments(dataset_card_name="WNUT-17"),
        args_for(tmp_path, output_dir=str(out), do_train=True),
        None,
        started,
    )
    assert "model-index" not in text
