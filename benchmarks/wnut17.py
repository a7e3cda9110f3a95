#!/usr/bin/env python
"""Reproduce the CLNER WNUT-17 study (Wang et al., ACL 2021, Table 1 layout) with this implementation.

Trains, with identical settings except the method, on the real WNUT-17 data with retrieved contexts:

    sentence  --train_views sentence               (w/o CONTEXT baseline)
    context   --train_views context                (w/ CONTEXT baseline)
    cl-l2     --train_views both --cl_loss l2      (CL-L2)
    cl-kl     --train_views both --cl_loss kl      (CL-KL)

and evaluates every model on dev in both views (sentence alone / sentence + context). Each (method, seed) runs
`python run_ner_cl.py ...` in a fresh subprocess; finished runs are skipped (resumable). Then it writes
`<output_dir>/summary.json`, `docs/results.md` (via `--results_md`) and a plot of dev F1 per epoch.

    python benchmarks/wnut17.py                                  # the study with the documented settings
    python benchmarks/wnut17.py --report_only                    # rebuild summary / doc / plot from finished runs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = {  # run order: CL-KL (the paper's headline) before CL-L2
    "sentence": ["--train_views", "sentence", "--cl_loss", "none"],
    "context": ["--train_views", "context", "--cl_loss", "none"],
    "cl-kl": ["--train_views", "both", "--cl_loss", "kl"],
    "cl-l2": ["--train_views", "both", "--cl_loss", "l2"],
}
LABELS = {"sentence": "w/o context (sentence only)", "context": "w/ context (context only)",
          "cl-l2": "CL-L2", "cl-kl": "CL-KL"}
VIEWS = ("sentence", "context")
# the paper's Table 1, XLM-R large, WNUT-17 test F1 (views: w/o context / w/ context)
PAPER = {"sentence": (57.86, None), "context": (None, 60.20), "cl-l2": (None, None), "cl-kl": (59.33, 60.45)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "wnut17"))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--seed_major", action="store_true",
                   help="Order runs seed by seed (all methods with seed 1, then seed 2, ...). Default.")
    p.add_argument("--epochs", type=float, default=1)
    p.add_argument("--output_dir", default=str(ROOT / "outputs" / "wnut17"))
    p.add_argument("--model_name_or_path", default=None, help="Encoder (default: the packaged all-MiniLM-L6-v2).")
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--head_learning_rate", type=float, default=5e-3)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--eval_batch_size", type=int, default=64)
    p.add_argument("--warmup", type=float, default=0.1, help="Warm-up ratio (--warmup_steps as a float).")
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--max_train_samples", type=int, default=1500,
                   help="First N training sentences (CPU budget; 0 = all 3394).")
    p.add_argument("--max_eval_samples", type=int, default=None)
    p.add_argument("--threads", type=int, default=1,
                   help="OMP/torch threads per run (1 is 2-3x faster than 2 on a shared 2-core machine).")
    p.add_argument("--extra", default="", help="Extra run_ner_cl.py arguments, one shell-quoted string.")
    p.add_argument("--report_only", action="store_true", help="Only rebuild the summary, doc and plot.")
    p.add_argument("--results_md", default=str(ROOT / "docs" / "results.md"))
    p.add_argument("--plot", default=str(ROOT / "docs" / "wnut17_f1.png"))
    p.add_argument("--no_doc", action="store_true", help="Do not write --results_md / --plot.")
    return p.parse_args(argv)


def run_args(args, method: str, seed: int, out: Path) -> list[str]:
    # with one epoch the end-of-training --do_eval gives the epoch's numbers: skip the duplicate epoch evaluation
    per_epoch = args.epochs > 1
    cmd = [
        "--train_file", str(Path(args.data_dir) / "train.context.txt"),
        "--validation_file", str(Path(args.data_dir) / "dev.context.txt"),
        "--output_dir", str(out),
        *METHODS[method],
        "--max_seq_length", str(args.max_seq_length),
        "--num_train_epochs", f"{args.epochs:g}",
        "--per_device_train_batch_size", str(args.batch_size),
        "--per_device_eval_batch_size", str(args.eval_batch_size),
        "--learning_rate", f"{args.learning_rate:g}",
        "--head_learning_rate", f"{args.head_learning_rate:g}",
        "--warmup_steps", f"{args.warmup:g}",
        "--weight_decay", f"{args.weight_decay:g}",
        "--eval_strategy", "epoch" if per_epoch else "no",
        "--save_strategy", "no", "--report_to", "none", "--logging_steps", "20",
        "--do_train", "--do_eval", "--seed", str(seed),
        "--context_source", "WNUT-17 train: ciaochiaociao/CLNER re-retrieval; dev: CLNER paper release",
    ]
    if args.model_name_or_path:
        cmd += ["--model_name_or_path", args.model_name_or_path]
    if args.max_train_samples:
        cmd += ["--max_train_samples", str(args.max_train_samples)]
    if args.max_eval_samples:
        cmd += ["--max_eval_samples", str(args.max_eval_samples)]
    return cmd + shlex.split(args.extra)


def run_one(args, method: str, seed: int) -> None:
    out = Path(args.output_dir) / f"{method}-seed{seed}"
    done = out / "bench_result.json"
    if done.exists():
        print(f"[skip] {method} seed {seed}: {done} exists", flush=True)
        return
    out.mkdir(parents=True, exist_ok=True)
    cli = run_args(args, method, seed, out)
    cmd = [sys.executable, str(ROOT / "run_ner_cl.py"), *cli]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    wall_file = out / "wall_s.txt"
    if wall_file.exists() and (out / "eval_results.json").exists():  # trained already, only the summary is missing
        wall = float(wall_file.read_text())
    else:
        print(f"[run] {method} seed {seed}: {shlex.join(cmd)}", flush=True)
        start = time.time()
        with open(out / "run.log", "w") as log:
            rc = subprocess.call(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        wall = time.time() - start
        if rc != 0:
            print(f"[fail] {method} seed {seed}: exit {rc} after {wall:.0f}s, see {out / 'run.log'}", flush=True)
            return
        wall_file.write_text(f"{wall:.1f}")
    final = json.loads((out / "eval_results.json").read_text())
    train = json.loads((out / "train_results.json").read_text())
    state = json.loads((out / "trainer_state.json").read_text())
    curve = [dict(epoch=e["epoch"], **{k[5:]: v for k, v in e.items() if k.startswith("eval_")})
             for e in state["log_history"] if "eval_sentence_f1" in e]
    if not curve or abs(curve[-1]["epoch"] - train.get("epoch", args.epochs)) > 1e-6:
        curve.append(dict(epoch=train.get("epoch", args.epochs), **{k[5:]: v for k, v in final.items()
                                                                     if k.startswith("eval_")}))
    result = dict(method=method, seed=seed, wall_s=wall, train_runtime_s=train.get("train_runtime"),
                  command="python run_ner_cl.py " + shlex.join(cli), final={k[5:]: v for k, v in final.items()
                                                                             if k.startswith("eval_")},
                  curve=curve, train=train)
    done.write_text(json.dumps(result, indent=2))
    print(f"[done] {method} seed {seed}: {wall:.0f}s  dev F1 sentence {final.get('eval_sentence_f1', math.nan):.4f}"
          f"  context {final.get('eval_context_f1', math.nan):.4f}", flush=True)


def load_results(output_dir: Path) -> list[dict]:
    results = []
    for path in sorted(output_dir.glob("*/bench_result.json")):
        results.append(json.loads(path.read_text()))
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(results, key=lambda r: (order.get(r["method"], 99), r["seed"]))


def best_epoch(curve: list[dict], view: str) -> dict:
    """The epoch with the highest dev F1 of `view` (the paper selects on dev)."""
    return max(curve, key=lambda e: e.get(f"{view}_f1", -1))


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(results: list[dict]) -> dict:
    table = {}
    for method in METHODS:
        runs = [r for r in results if r["method"] == method]
        if not runs:
            continue
        row = {"seeds": [r["seed"] for r in runs], "wall_s": [r["wall_s"] for r in runs]}
        for view in VIEWS:
            for pick in ("final", "best"):
                for metric in ("f1", "precision", "recall"):
                    vals = [100 * (r["final"] if pick == "final" else best_epoch(r["curve"], view))[f"{view}_{metric}"]
                            for r in runs]
                    m, s = mean_std(vals)
                    row[f"{pick}_{view}_{metric}"] = {"mean": m, "std": s, "values": vals}
        table[method] = row
    return table


def fmt(cell: dict, std=True) -> str:
    if cell is None or math.isnan(cell["mean"]):
        return "—"
    if std and len(cell["values"]) > 1:
        return f"{cell['mean']:.2f} ± {cell['std']:.2f}"
    return f"{cell['mean']:.2f}"


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"sentence": "tab:blue", "context": "tab:orange", "cl-l2": "tab:green", "cl-kl": "tab:red"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    offset = {m: 0.015 * (i - 1.5) for i, m in enumerate(METHODS)}  # keep single-epoch points apart
    for ax, view in zip(axes, VIEWS):
        for r in results:
            xs = [e["epoch"] + offset.get(r["method"], 0) for e in r["curve"]]
            ys = [100 * e[f"{view}_f1"] for e in r["curve"]]
            ax.plot(xs, ys, marker="o" if r["seed"] == 1 else "s", color=colors.get(r["method"]),
                    linestyle="-" if r["seed"] == 1 else "--", label=f"{r['method']} (seed {r['seed']})")
            ax.annotate(f"{ys[-1]:.1f}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(6, -3), fontsize=7,
                        color=colors.get(r["method"]))
        ax.set_title(f"dev, {view} view" + (" (sentence alone)" if view == "sentence" else " (sentence + context)"))
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("entity F1 (%)")
    axes[1].legend(fontsize=7, loc="center right", ncol=1)
    title = "CLNER on WNUT-17 dev, all-MiniLM-L6-v2, CPU"
    if all(len(r["curve"]) <= 1 for r in results):
        title += " (1 epoch: one point per run, methods offset along x)"
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


BEGIN, END = "<!-- BEGIN wnut17.py AUTO -->", "<!-- END wnut17.py AUTO -->"


def markdown(summary: dict, args) -> str:
    """The generated part of docs/results.md: tables, per-run rows, wall times, commands."""
    table, runs = summary["table"], summary["runs"]
    out = [BEGIN, "", "_Generated by `python benchmarks/wnut17.py --report_only` from "
           f"`{Path(args.output_dir).relative_to(ROOT) if Path(args.output_dir).is_relative_to(ROOT) else args.output_dir}`"
           f" ({len(runs)} finished runs)._", ""]
    for pick, title in (("final", "Dev F1 (%) after the last epoch (the model a run ends with)"),
                        ("best", "Dev F1 (%) at the best epoch on dev, per view")):
        if pick == "best" and all(len(r["curve"]) <= 1 for r in runs):
            out += ["With a single epoch per run the best epoch is the last one; no separate table.", ""]
            continue
        out += [f"### {title}", "",
                "| method | seeds | sentence view F1 | context view F1 | paper (XLM-R large, test) w/o / w/ context |",
                "| --- | --- | --- | --- | --- |"]
        for method, row in table.items():
            paper = " / ".join("—" if v is None else f"{v:.2f}" for v in PAPER[method])
            out.append(f"| {LABELS[method]} | {', '.join(map(str, row['seeds']))} | {fmt(row[f'{pick}_sentence_f1'])} "
                       f"| {fmt(row[f'{pick}_context_f1'])} | {paper} |")
        out.append("")
    out += ["### Precision and recall (last epoch, mean over seeds)", "",
            "| method | sentence P | sentence R | context P | context R |", "| --- | --- | --- | --- | --- |"]
    for method, row in table.items():
        out.append(f"| {LABELS[method]} | {fmt(row['final_sentence_precision'])} | {fmt(row['final_sentence_recall'])} "
                   f"| {fmt(row['final_context_precision'])} | {fmt(row['final_context_recall'])} |")
    out += ["", "### Per run", "",
            "| method | seed | sentence F1 / P / R | context F1 / P / R | epochs | wall time | train time |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        f = r["final"]
        cells = [" / ".join(f"{100 * f[f'{v}_{m}']:.2f}" for m in ("f1", "precision", "recall")) for v in VIEWS]
        out.append(f"| {r['method']} | {r['seed']} | {cells[0]} | {cells[1]} | {r['train'].get('epoch', 0):g} "
                   f"| {r['wall_s'] / 60:.1f} min | {(r['train_runtime_s'] or 0) / 60:.1f} min |")
    total = sum(r["wall_s"] for r in runs)
    out += ["", f"Total wall time of the finished runs: {total / 60:.1f} min.", ""]
    if runs:
        out += ["### Exact per-run command (the first finished run; the others differ only in the method flags, "
                "`--seed` and `--output_dir`)", "", "```", runs[0]["command"], "```", ""]
    missing = [f"{m} seed {s}" for s in args.seeds for m in args.methods
               if not any(r["method"] == m and r["seed"] == s for r in runs)]
    if missing:
        out += [f"Not run (time budget): {', '.join(missing)}.", ""]
    out += ["![dev F1 per epoch](wnut17_f1.png)", "", END]
    return "\n".join(out)


def write_doc(path: Path, generated: str) -> None:
    """Replace the generated block of `path`, keeping the hand-written text around it."""
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            path.write_text(head + generated + tail)
            return
    path.write_text("# CLNER on WNUT-17: reproduction\n\n" + generated + "\n")


def main(argv=None):
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        t0 = time.time()
        for seed in args.seeds:  # seed-major: every method gets one seed before any gets two
            for method in args.methods:
                run_one(args, method, seed)
        print(f"[study] {time.time() - t0:.0f}s", flush=True)
    results = load_results(output_dir)
    summary = {"table": summarise(results), "runs": results,
               "settings": {k: v for k, v in vars(args).items() if k not in ("report_only",)},
               "hardware": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}}
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({m: {v: fmt(row[f"final_{v}_f1"]) for v in VIEWS} for m, row in summary["table"].items()}))
    if not args.no_doc and results:
        plot(results, Path(args.plot))
        write_doc(Path(args.results_md), markdown(summary, args))
        print(f"plot: {args.plot}; doc: {args.results_md}")
    return summary


if __name__ == "__main__":
    main()
