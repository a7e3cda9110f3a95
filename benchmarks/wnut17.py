#!/usr/bin/env python
"""The CLNER WNUT-17 study (Wang et al., ACL 2021, Table 1 layout) with this implementation, built to tell the
methods apart: full training set, several epochs with per-epoch dev evaluation and best-epoch selection, several
seeds, paired per-seed differences with 95% t-intervals and a paired bootstrap over dev sentences.

Methods (identical settings apart from the method):

    sentence   --train_views sentence                  w/o CONTEXT baseline, selected on sentence-view dev F1
    context    --train_views context                   w/ CONTEXT baseline, selected on context-view dev F1
    cl-kl      --train_views both --cl_loss kl         CL-KL, official objective, selected on the two-view mean
    cl-l2      --train_views both --cl_loss l2         CL-L2, official objective, selected on the two-view mean
    both-nocl  --train_views both --cl_loss none       both views, no CL term (does the CL term itself matter?)

Every model is evaluated on dev in both views. The best epoch's model (reloaded at the end of training) also
predicts dev (per-sentence predictions for the bootstrap), dev with **random contexts** (snippets of other
sentences from the retrieval module's `random` backend: the paper's Table 6 ablation) for `context` and `cl-kl`,
and any `--test_file` (CLNER format) for every method. Runs are subprocesses of `run_ner_cl.py`, `--parallel` at a
time, each with `--threads` threads; a finished run is skipped, so the study resumes where it stopped.

    python benchmarks/wnut17.py --sweep            # learning-rate sweep of the sentence baseline (seed 1)
    python benchmarks/wnut17.py                    # the study with the documented settings
    python benchmarks/wnut17.py --report_only      # rebuild summary.json, docs/results.md and the plot

The same-retrieval arm (`--cv_folds K`): K-fold cross-validation over `dev.context.txt`, whose contexts all come
from the paper's own retrieval. The dev sentences are split into K folds (`fold_split`: seeded, every sentence in
exactly one); each run trains on the other folds and predicts its fold in both views, with a fixed schedule
(`--epochs`, the last epoch's model: nothing is selected on the evaluated fold). The report pools the folds'
predictions, so every dev sentence is scored once per method and seed (`cv_summarise`, `cv_markdown`).

    python benchmarks/wnut17.py --cv_folds 5 --output_dir outputs/wnut17-devcv5 ...   # see benchmarks/README.md
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

METHODS = {
    "sentence": ["--train_views", "sentence", "--metric_for_best_model", "sentence_f1"],
    "context": ["--train_views", "context", "--metric_for_best_model", "context_f1"],
    "cl-kl": ["--train_views", "both", "--cl_loss", "kl", "--metric_for_best_model", "f1"],
    "cl-l2": ["--train_views", "both", "--cl_loss", "l2", "--metric_for_best_model", "f1"],
    "both-nocl": ["--train_views", "both", "--cl_loss", "none", "--metric_for_best_model", "f1"],
}
LABELS = {
    "sentence": "w/o context (sentence only)",
    "context": "w/ context (context only)",
    "cl-kl": "CL-KL",
    "cl-l2": "CL-L2",
    "both-nocl": "both views, no CL",
}
SELECTED_ON = {"sentence": "sentence_f1", "context": "context_f1", "cl-kl": "f1", "cl-l2": "f1", "both-nocl": "f1"}
VIEWS = ("sentence", "context")
RANDOM_CONTEXT_METHODS = ("context", "cl-kl")
# the paper's Table 1, XLM-R large, WNUT-17 test F1 (w/o context view, w/ context view)
PAPER = {
    "sentence": (57.86, None),
    "context": (None, 60.20),
    "cl-kl": (59.33, 60.45),
    "cl-l2": (None, None),
    "both-nocl": (None, None),
}
# (name, method A, view of A, method B, view of B): the paired comparisons the study answers
COMPARISONS = [
    ("CL-KL vs w/o context, sentence view", "cl-kl", "sentence", "sentence", "sentence"),
    ("CL-KL vs w/ context, context view", "cl-kl", "context", "context", "context"),
    ("w/ context vs w/o context, each in its own view", "context", "context", "sentence", "sentence"),
    (
        "CL-KL, context view vs w/o context, sentence view (retrieval + CL vs no retrieval)",
        "cl-kl",
        "context",
        "sentence",
        "sentence",
    ),
    ("CL-KL, context view vs its own sentence view", "cl-kl", "context", "cl-kl", "sentence"),
    ("CL-KL vs both views without CL, sentence view", "cl-kl", "sentence", "both-nocl", "sentence"),
    ("CL-KL vs both views without CL, context view", "cl-kl", "context", "both-nocl", "context"),
    ("CL-L2 vs w/o context, sentence view", "cl-l2", "sentence", "sentence", "sentence"),
    ("CL-L2 vs w/ context, context view", "cl-l2", "context", "context", "context"),
    ("both views without CL vs w/o context, sentence view", "both-nocl", "sentence", "sentence", "sentence"),
]
DEFAULT_SEEDS = (1, 2, 3)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "wnut17"))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--output_dir", default=str(ROOT / "outputs" / "wnut17"))
    p.add_argument("--model_name_or_path", default=None, help="Encoder (default: the packaged all-MiniLM-L6-v2).")
    p.add_argument("--max_seq_length", type=int, default=256)
    p.add_argument(
        "--learning_rate",
        type=float,
        default=2e-4,
        help="Encoder learning rate (default: the best of the --sweep on dev, see docs/results.md).",
    )
    p.add_argument("--head_learning_rate", type=float, default=5e-3)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--eval_batch_size", type=int, default=32)
    p.add_argument("--warmup", type=float, default=0.1, help="Warm-up ratio (--warmup_steps as a float).")
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--max_train_samples", type=int, default=0, help="First N training sentences (0 = all 3394).")
    p.add_argument(
        "--train_subset",
        choices=["all", "with_context"],
        default="all",
        help="Training sentences: all 3394 (31%% with a context), or the coverage-matched arm: the 1050 "
        "that have one (100%% coverage, as in the paper and as on dev, 98%%).",
    )
    p.add_argument(
        "--results_dir",
        default=None,
        help="Also copy each finished run's bench_result.json here (a tracked folder: the JSON "
        "summaries are committed as runs finish, the models are not).",
    )
    p.add_argument(
        "--replica_results_dir",
        default=None,
        help="Committed summaries of the same arm's runs made on another machine: each is shown beside "
        "this arm's run of the same method and seed (a replication; never pooled with the runs).",
    )
    p.add_argument("--test_file", default=None, help="An extra CLNER-format file every model is scored on.")
    p.add_argument("--parallel", type=int, default=2, help="Runs at a time.")
    p.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per run.")
    p.add_argument(
        "--extra",
        default=None,
        help="Extra run_ner_cl.py arguments, one shell-quoted string (default: length-grouped batches, plus --use_cpu without a GPU; bf16 autocast only on a GPU with bf16 or a CPU with native bf16 (AVX512-BF16 / AMX), where bench_cpu_training.py measured it faster: emulated bf16 is ~30x slower).",
    )
    p.add_argument("--sweep", action="store_true", help="Learning-rate sweep of the sentence baseline instead.")
    p.add_argument("--sweep_lrs", nargs="+", type=float, default=[5e-5, 1e-4, 2e-4, 4e-4])
    p.add_argument("--sweep_head_lrs", nargs="+", type=float, default=[5e-3])
    p.add_argument("--bootstrap", type=int, default=2000, help="Bootstrap resamples of the dev sentences.")
    p.add_argument("--report_only", action="store_true", help="Only rebuild the summary, doc and plot.")
    p.add_argument("--results_md", default=str(ROOT / "docs" / "results.md"))
    p.add_argument(
        "--plot",
        default=None,
        help="default: docs/wnut17_f1.png (the 3-epoch full-data arm), docs/wnut17_coverage_<N>ep_f1.png "
        "(the coverage arm at N epochs), docs/wnut17_<N>ep_f1.png (the full-data arm at N epochs)",
    )
    p.add_argument("--no_doc", action="store_true", help="Do not write --results_md / --plot.")
    p.add_argument(
        "--cv_folds",
        type=int,
        default=0,
        help="The same-retrieval arm: K-fold cross-validation over dev.context.txt (train on K-1 folds, predict the "
        "other, last epoch's model; 0 = off). Its runs are <method>-seed<seed>-fold<f>.",
    )
    p.add_argument("--cv_seed", type=int, default=0, help="Seed of the --cv_folds split of the dev sentences.")
    args = p.parse_args(argv)
    if args.cv_folds == 1 or args.cv_folds < 0:
        p.error("--cv_folds needs at least 2 folds (0 = off)")
    if args.cv_folds and args.train_subset != "all":
        p.error("--cv_folds trains on dev folds: --train_subset does not apply")
    if args.extra is None:
        args.extra = default_extra()
    if args.plot is None:
        args.plot = str(ROOT / "docs" / default_plot_name(args))
    return args


#: the schedule of the first full-data arm, whose results block and plot keep their original names
FULL_ARM_EPOCHS = 3


#: the sequence budget the first arms of each training subset ran at: their names leave it out; an arm at another
#: budget is another study, and its name (block, plot) says its budget
FIRST_ARM_LENGTH = {"all": 256, "with_context": 128}


def length_suffix(args) -> str:
    return (
        "" if args.max_seq_length == FIRST_ARM_LENGTH.get(args.train_subset) else f", {args.max_seq_length} sub-tokens"
    )


def arm_key(args) -> str | None:
    """The name of an arm (training subset, schedule and sequence budget) in docs/results.md; None for the original
    full-data arm. Arms at different schedules or budgets are different studies: each gets its own results block and
    plot."""
    if getattr(args, "cv_folds", 0):
        return f"dev {args.cv_folds}-fold CV, {args.epochs:g} epochs, {args.max_seq_length} sub-tokens"
    if args.train_subset == "all" and args.epochs == FULL_ARM_EPOCHS and not length_suffix(args):
        return None
    return f"{args.train_subset}, {args.epochs:g} epochs{length_suffix(args)}"


def default_plot_name(args) -> str:
    if getattr(args, "cv_folds", 0):
        return f"wnut17_devcv{args.cv_folds}_{args.epochs:g}ep_f1.png"  # not drawn: the CV report is tables only
    if arm_key(args) is None:
        return "wnut17_f1.png"
    length = f"_{args.max_seq_length}tok" if length_suffix(args) else ""
    return f"wnut17_{'coverage_' if args.train_subset == 'with_context' else ''}{args.epochs:g}ep{length}_f1.png"


def arm_title(args) -> str:
    """The arm in words, for the plot's title."""
    if arm_key(args) is None:
        return ""
    what = (
        "coverage-matched arm (the 1,050 training sentences with a context)"
        if args.train_subset == "with_context"
        else "full-data arm"
    )
    return f"{what}, {args.epochs:g} epochs"


def arm_flags(args) -> str:
    """The flags that select an arm's runs, for the commands the report prints."""
    flags = f"--epochs {args.epochs:g} --max_seq_length {args.max_seq_length}"
    if getattr(args, "cv_folds", 0):
        flags = f"--cv_folds {args.cv_folds} " + flags + (f" --cv_seed {args.cv_seed}" if args.cv_seed else "")
    if args.train_subset != "all":
        flags = f"--train_subset {args.train_subset} " + flags
    return flags


def default_extra() -> str:
    """The study's speed settings for this machine: bf16 only where it is native (never emulated)."""
    import torch

    from clner.hardware import cpu_bf16_support

    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
    else:
        bf16 = cpu_bf16_support().native
    return (
        ("--bf16 " if bf16 else "")
        + "--train_sampling_strategy group_by_length"
        + ("" if torch.cuda.is_available() else " --use_cpu")
    )


# ------------------------------------------------------------------------------------------------------ runs
def train_file(args) -> Path:
    """The training file of the arm: WNUT-17 train with contexts, or (coverage-matched) only its rows that have
    one, written once into --output_dir."""
    full = Path(args.data_dir) / "train.context.txt"
    if args.train_subset == "all":
        return full
    from clner.data.io import read_clner, write_clner

    path = Path(args.output_dir) / "train.with_context.txt"
    if not path.exists():
        rows = [r for r in read_clner(full) if r.get("context")]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_clner(rows, path)
        print(f"[arm] coverage-matched: {len(rows)} training sentences with a context -> {path}", flush=True)
    return path


def train_args(
    args, method: str, seed: int, out: Path, lr: float, head_lr: float, fold: int | None = None
) -> list[str]:
    """The run_ner_cl.py arguments of one run; with `fold` (the --cv_folds arm), trained on the other folds and
    evaluated on `fold`, with the last epoch's model (no --load_best_model_at_end, no --metric_for_best_model)."""
    dev = str(Path(args.data_dir) / "dev.context.txt")
    train = str(train_file(args))
    method_flags = list(METHODS[method])
    if fold is not None:
        train, dev = (str(p) for p in cv_fold_files(args)[fold])
        i = method_flags.index("--metric_for_best_model")
        del method_flags[i : i + 2]
    cmd = [
        "--train_file",
        train,
        "--validation_file",
        dev,
        "--test_file",
        dev,  # the best epoch's model predicts dev: per-sentence predictions for the bootstrap
        "--output_dir",
        str(out),
        "--overwrite_output_dir",
        *method_flags,
        "--max_seq_length",
        str(args.max_seq_length),
        "--num_train_epochs",
        f"{args.epochs:g}",
        "--per_device_train_batch_size",
        str(args.batch_size),
        "--per_device_eval_batch_size",
        str(args.eval_batch_size),
        "--learning_rate",
        f"{lr:g}",
        "--head_learning_rate",
        f"{head_lr:g}",
        "--warmup_steps",
        f"{args.warmup:g}",
        "--weight_decay",
        f"{args.weight_decay:g}",
        "--eval_strategy",
        "epoch",
        "--save_strategy",
        "epoch",
        "--save_total_limit",
        "1",
        "--load_best_model_at_end",
        "--report_to",
        "none",
        "--logging_steps",
        "20",
        "--do_train",
        "--do_predict",
        "--seed",
        str(seed),  # predicting dev scores the best model: no --do_eval
        "--context_source",
        "WNUT-17 train: ciaochiaociao/CLNER re-retrieval; dev: CLNER paper release",
    ]
    if fold is not None:
        cmd.remove("--load_best_model_at_end")  # the last epoch's model: the evaluated fold selects nothing
        cmd[cmd.index("--context_source") + 1] = f"WNUT-17 dev: CLNER paper release ({args.cv_folds}-fold CV)"
    if args.model_name_or_path:
        cmd += ["--model_name_or_path", args.model_name_or_path]
    if args.max_train_samples:
        cmd += ["--max_train_samples", str(args.max_train_samples)]
    return cmd + shlex.split(args.extra)


def run_cli(cli: list[str], log: Path, threads: int, append: bool = False) -> tuple[int, float]:
    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    start = time.time()
    with open(log, "a" if append else "w") as fh:
        rc = subprocess.call(
            [sys.executable, str(ROOT / "run_ner_cl.py"), *cli], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env
        )
    return rc, time.time() - start


def score_file(args, model_dir: Path, test_file: Path, out: Path) -> dict:
    """Both views' metrics and predictions of a trained model on a CLNER file (an evaluation-only run)."""
    if not (out / "predict_results.json").exists():
        out.mkdir(parents=True, exist_ok=True)
        cli = [
            "--model_name_or_path",
            str(model_dir),
            "--test_file",
            str(test_file),
            "--do_predict",
            "--output_dir",
            str(out),
            "--max_seq_length",
            str(args.max_seq_length),
            "--per_device_eval_batch_size",
            str(args.eval_batch_size),
            "--report_to",
            "none",
        ]
        rc, wall = run_cli(cli, out / "run.log", args.threads)
        if rc != 0:
            raise RuntimeError(f"scoring {model_dir} on {test_file} failed (exit {rc}), see {out / 'run.log'}")
    metrics = json.loads((out / "predict_results.json").read_text())
    return {k[len("predict_") :]: v for k, v in metrics.items() if k.startswith("predict_")}


def curve_of(state: dict) -> list[dict]:
    return [
        dict(epoch=e["epoch"], step=e["step"], **{k[5:]: v for k, v in e.items() if k.startswith("eval_")})
        for e in state["log_history"]
        if "eval_sentence_f1" in e
    ]


def save_result(result: dict, out: Path, results_dir: str | None) -> None:
    """A run's summary: `bench_result.json` in its folder, and a copy in the tracked `--results_dir`."""
    text = json.dumps(result, indent=2)
    (out / "bench_result.json").write_text(text)
    if results_dir:
        Path(results_dir).mkdir(parents=True, exist_ok=True)
        (Path(results_dir) / f"{out.name}.json").write_text(text)


def run_one(
    args,
    method: str,
    seed: int,
    lr: float,
    head_lr: float,
    out: Path,
    results_dir: str | None = None,
    fold: int | None = None,
) -> dict | None:
    """One run (skipped when finished, resumed when stopped), its extra evaluations and its summary, saved in its
    folder and in `results_dir` (the tracked copy); with `fold`, a run of the --cv_folds arm (trained on the other
    folds, the last epoch's model scored on `fold`)."""
    done = out / "bench_result.json"
    if done.exists():
        print(f"[skip] {out.name}: done", flush=True)
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    cli = train_args(args, method, seed, out, lr, head_lr, fold)
    wall_file = out / "wall_s.txt"
    resumed = False
    if not (wall_file.exists() and (out / "predictions_context.txt").exists()):
        resumed = any(out.glob("checkpoint-*/trainer_state.json"))  # stopped mid-run: continue, do not restart
        if resumed:
            cli += ["--resume_from_checkpoint", "last"]
        print(f"[run] {out.name}" + (" (resuming its last checkpoint)" if resumed else ""), flush=True)
        rc, wall = run_cli(cli, out / "run.log", args.threads, append=resumed)
        if rc != 0:
            print(f"[fail] {out.name}: exit {rc} after {wall:.0f}s, see {out / 'run.log'}", flush=True)
            return None
        wall_file.write_text(f"{wall:.1f}")
    wall = float(wall_file.read_text())
    state = json.loads((out / "trainer_state.json").read_text())
    curve = curve_of(state)
    best = json.loads((out / "predict_results.json").read_text())  # the best epoch's model on dev
    extra = {}
    t0 = time.time()
    if method in RANDOM_CONTEXT_METHODS:
        rnd = random_context_file(args) if fold is None else cv_random_context_file(args, fold)
        extra["dev-random-context"] = score_file(args, out, rnd, out / "dev-random-context")
    if args.test_file:
        extra["test"] = score_file(args, out, Path(args.test_file), out / "test")
    for ckpt in out.glob("checkpoint-*"):
        shutil.rmtree(ckpt)  # optimizer states: the best model is in the run folder itself
    result = dict(
        method=method,
        seed=seed,
        learning_rate=lr,
        head_learning_rate=head_lr,
        wall_s=wall,
        resumed=resumed,  # wall_s then counts only the attempt that finished
        hardware=hardware_info(),
        max_seq_length=args.max_seq_length,
        epochs=args.epochs,
        train_subset=args.train_subset,
        extra_eval_wall_s=round(time.time() - t0, 1),
        command="python run_ner_cl.py " + shlex.join(cli),
        best={k[8:]: v for k, v in best.items() if k.startswith("predict_")},
        best_epoch=state.get("best_global_step")
        and next((e["epoch"] for e in curve if e["step"] == state["best_global_step"]), None),
        last=curve[-1] if curve else None,
        curve=curve,
        extra=extra,
        train=json.loads((out / "train_results.json").read_text()),
    )
    if fold is not None:  # no selection: the last epoch's model
        result.update(
            best_epoch=curve[-1]["epoch"] if curve else args.epochs,
            selection="last epoch (fixed schedule)",
            cv_folds=args.cv_folds,
            cv_seed=args.cv_seed,
            fold=fold,
            fold_sentences=fold_split(len(cv_dev_rows(args)), args.cv_folds, args.cv_seed)[fold],
        )
        result.update(run_details(out, cv_fold_files(args)[fold][1]) or {})
        result.update(cv_entities(out))
    else:
        result.update(run_details(out, Path(args.data_dir) / "dev.context.txt") or {})
    save_result(result, out, results_dir)
    print(
        f"[done] {out.name}: {wall / 60:.1f} min; best epoch {result['best_epoch']}: dev F1 sentence "
        f"{100 * result['best']['sentence_f1']:.2f} context {100 * result['best']['context_f1']:.2f}",
        flush=True,
    )
    return result


# ------------------------------------------------------------------------------------------------------ CV arm
def fold_split(n: int, k: int, seed: int = 0) -> list[list[int]]:
    """K folds of the sentences 0..n-1: a seeded shuffle dealt round-robin (stratified by nothing), so every
    sentence is in exactly one fold and the sizes differ by at most one; each fold's indices sorted."""
    import random

    if k < 2 or k > n:
        raise ValueError(f"{k} folds of {n} sentences")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [sorted(order[f::k]) for f in range(k)]


def cv_dev_rows(args) -> list[dict]:
    from clner.data.io import read_clner

    return read_clner(Path(args.data_dir) / "dev.context.txt")


def write_atomic(rows: list[dict], path: Path) -> None:
    """A CLNER file written whole or not at all (a temporary file, then renamed)."""
    from clner.data.io import write_clner

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write_clner(rows, tmp)
    tmp.replace(path)


def cv_dir(args) -> Path:
    return Path(args.output_dir) / f"cv{args.cv_folds}-seed{args.cv_seed}"


def cv_fold_files(args) -> list[tuple[Path, Path]]:
    """(train file, eval file) of each fold under --output_dir: the other folds' dev sentences and the fold's, in
    dev order, with their contexts; written once (atomically), with the split in `folds.json`."""
    folder = cv_dir(args)
    paths = [(folder / f"fold{f}.train.txt", folder / f"fold{f}.eval.txt") for f in range(args.cv_folds)]
    if all(a.exists() and b.exists() for a, b in paths) and (folder / "folds.json").exists():
        return paths
    rows = cv_dev_rows(args)
    folds = fold_split(len(rows), args.cv_folds, args.cv_seed)
    for f, (train, evaluated) in enumerate(paths):
        held = set(folds[f])
        write_atomic([r for i, r in enumerate(rows) if i not in held], train)
        write_atomic([rows[i] for i in folds[f]], evaluated)
    tmp = folder / "folds.json.tmp"
    tmp.write_text(json.dumps({"n": len(rows), "seed": args.cv_seed, "folds": folds}))
    tmp.replace(folder / "folds.json")
    print(f"[arm] dev {args.cv_folds}-fold CV: folds of {[len(f) for f in folds]} sentences -> {folder}", flush=True)
    return paths


def cv_random_context_file(args, fold: int) -> Path:
    """The fold's rows of `random_context_file` (each context replaced by random snippets of other dev sentences)."""
    path = cv_dir(args) / f"fold{fold}.random-context.txt"
    if not path.exists():
        from clner.data.io import read_clner

        rows = read_clner(random_context_file(args))
        idx = fold_split(len(rows), args.cv_folds, args.cv_seed)[fold]
        write_atomic([rows[i] for i in idx], path)
    return path


def cv_entities(out: Path) -> dict:
    """Per evaluated sentence and view, the predicted entities `[type, first, last]`: what pooling the folds needs
    for the surface-form F1 (a set over all dev sentences, not a sum of the folds')."""
    from seqeval.metrics.sequence_labeling import get_entities

    entities = {}
    for view in VIEWS:
        path = out / f"predictions_{view}.txt"
        if not path.exists():
            return {}
        entities[view] = [[list(e) for e in get_entities(pred)] for _, pred in read_predictions(path)]
    return {"pred_entities": entities}


def tags_of(entities: list, length: int) -> list[str]:
    """BIO tags of `length` words holding `entities` (`[type, first, last]`), as `get_entities` reads them back."""
    tags = ["O"] * length
    for etype, first, last in entities:
        tags[first] = f"B-{etype}"
        for i in range(first + 1, last + 1):
            tags[i] = f"I-{etype}"
    return tags


def pool_folds(runs: list[dict], n: int, key) -> list | None:
    """One value per dev sentence from the runs of one method and seed over all folds: `key(run)` gives the
    per-sentence values of the run's fold (in the order of its `fold_sentences`); None unless the folds cover every
    sentence exactly once."""
    pooled = [None] * n
    for r in runs:
        values = key(r)
        if values is None or len(values) != len(r["fold_sentences"]):
            return None
        for i, v in zip(r["fold_sentences"], values):
            if pooled[i] is not None:
                return None
            pooled[i] = v
    return pooled if all(v is not None for v in pooled) else None


def cv_pooled(runs: list[dict], dev_rows: list[dict]) -> dict:
    """Per (method, seed) with every fold finished: each view's pooled per-sentence (correct, predicted, gold)
    counts, entity F1 and surface-form F1 (every dev sentence scored once), and the pooled random-context counts."""
    import numpy as np

    from clner.metrics import surface_form_metrics

    n = len(dev_rows)
    by = {}
    for r in runs:
        by.setdefault((r["method"], r["seed"]), []).append(r)
    pooled = {}
    for (method, seed), mine in by.items():
        if len({r["fold"] for r in mine}) != mine[0]["cv_folds"]:
            continue  # a method and seed with folds still to run
        entry = {}
        for view in VIEWS:
            counts = pool_folds(mine, n, lambda r: r.get("per_sentence", {}).get(view))
            if counts is None:
                break
            counts = np.array(counts, dtype=np.float64)
            entry[view] = {"counts": counts, **f1_of(counts)}
            ents = pool_folds(mine, n, lambda r: r.get("pred_entities", {}).get(view))
            if ents is not None:
                words = [row["tokens"] for row in dev_rows]
                pred = [tags_of(e, len(w)) for e, w in zip(ents, words)]
                gold = [row["tags"] for row in dev_rows]
                entry[view]["surface"] = surface_form_metrics(words, gold, pred)
        else:
            rnd = pool_folds(mine, n, lambda r: r.get("random_context_per_sentence"))
            if rnd is not None:
                entry["random"] = {"counts": np.array(rnd, dtype=np.float64), **f1_of(np.array(rnd))}
            pooled[(method, seed)] = entry
    return pooled


def random_context_file(args) -> Path:
    """dev.context.txt with each context replaced by as many random snippets of *other* dev sentences (the
    retrieval module's `random` backend, seeded): the paper's random-context ablation."""
    path = Path(args.output_dir) / "dev.random-context.txt"
    if path.exists():
        return path
    from clner.data.io import read_clner, write_clner
    from clner.retrieval.backends import RandomBackend, detokenize

    rows = read_clner(Path(args.data_dir) / "dev.context.txt")
    snippets = [s for r in rows for s in r["context"] if s.strip()]
    backend = RandomBackend(snippets, seed=0)
    out = []
    for row in rows:
        own = {s for s in row["context"] if s.strip()}
        k = len(own)
        picked = [s for s in backend.search(detokenize(row["tokens"]), k + len(own)) if s not in own][:k] if k else []
        out.append(dict(row, context=picked))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    write_clner(out, tmp)
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------------------------ stats
def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def t_interval(diffs: list[float]) -> dict:
    """Mean of paired differences with its two-sided 95% Student-t interval."""
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "low": math.nan, "high": math.nan, "values": diffs}
    from scipy.stats import t as student_t

    t = float(student_t.ppf(0.975, n - 1))  # the exact quantile for every n (a table fell back to a lower df)
    half = t * statistics.stdev(diffs) / math.sqrt(n)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half, "values": diffs}


def read_predictions(path: Path) -> list[tuple[list[str], list[str]]]:
    """(gold, predicted) tags per sentence of a `predictions_<view>.txt` (token, gold, predicted)."""
    sentences, gold, pred = [], [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            if gold:
                sentences.append((gold, pred))
            gold, pred = [], []
            continue
        fields = line.split("\t")
        gold.append(fields[-2])
        pred.append(fields[-1])
    if gold:
        sentences.append((gold, pred))
    return sentences


def read_words(path: Path) -> list[list[str]]:
    """The words of each sentence of a `predictions_<view>.txt` (token, gold, predicted), as `read_predictions`
    reads its sentences."""
    sentences, words = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            if words:
                sentences.append(words)
            words = []
            continue
        words.append("\t".join(line.split("\t")[:-2]))
    if words:
        sentences.append(words)
    return sentences


def surface_form_scores(path: Path) -> dict:
    """WNUT-17's surface-form precision / recall / F1 of a `predictions_<view>.txt` (`clner.metrics`, as its official
    `wnuteval.py`: each distinct entity string with its type counts once)."""
    from clner.metrics import surface_form_metrics

    sentences = read_predictions(path)
    return surface_form_metrics(read_words(path), [g for g, _ in sentences], [p for _, p in sentences])


def sentence_counts(path: Path):
    """Per dev sentence: correct entities, predicted entities, gold entities (seqeval's entity matching)."""
    import numpy as np
    from seqeval.metrics.sequence_labeling import get_entities

    rows = []
    for gold, pred in read_predictions(path):
        g, p = set(get_entities(gold)), set(get_entities(pred))
        rows.append((len(g & p), len(p), len(g)))
    return np.array(rows, dtype=np.float64)


def paired_bootstrap(counts_a, counts_b, resamples: int, seed: int = 0) -> dict:
    """F1(A) - F1(B) over bootstrap resamples of the dev sentences (the same resample for both), on predictions
    pooled over seeds (counts summed per sentence): mean, 95% percentile interval, share of resamples <= 0."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(counts_a)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)  # (R, n): how often each sentence is drawn

    def f1(counts):
        tp, pred, gold = (weights @ counts).T
        return 2 * tp / np.maximum(pred + gold, 1)

    diff = 100 * (f1(counts_a) - f1(counts_b))
    full = lambda c: 200 * c[:, 0].sum() / max(c[:, 1].sum() + c[:, 2].sum(), 1)  # noqa: E731
    return {
        "observed": full(counts_a) - full(counts_b),
        "low": float(np.percentile(diff, 2.5)),
        "high": float(np.percentile(diff, 97.5)),
        "p_le_0": float((diff <= 0).mean()),
    }


def surface(words: list[str]) -> str:
    return " ".join(" ".join(words).lower().split())


def gold_in_context(dev_rows: list[dict]) -> list[bool]:
    """Per dev sentence: whether its context contains the surface string of one of its gold entities as whole
    words (case-insensitive, whitespace-normalised; the contexts are tokenised like the sentences). Sentences without
    a gold entity count as `False`."""
    from seqeval.metrics.sequence_labeling import get_entities

    flags = []
    for row in dev_rows:
        context = " " + surface(list(row.get("context") or [])) + " "
        entities = get_entities(list(row["tags"]))
        flags.append(any(f" {surface(row['tokens'][a : b + 1])} " in context for _, a, b in entities))
    return flags


def f1_of(counts) -> dict:
    tp, pred, gold = (float(x) for x in counts.sum(0)) if len(counts) else (0.0, 0.0, 0.0)
    p, r = (tp / pred if pred else 0.0), (tp / gold if gold else 0.0)
    return {
        "precision": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "sentences": len(counts),
        "gold": int(gold),
    }


@functools.cache
def dev_gold_in_context(dev_file: str) -> tuple[int, tuple[bool, ...]]:
    """The dev file's sentence count and `gold_in_context` flags, read once for every run of a report."""
    from clner.data.io import read_clner

    rows = read_clner(dev_file)
    return len(rows), tuple(gold_in_context(rows))


#: bumped when `run_details` records more; a summary of an older version is completed from its run folder
#: (3: the surface-form scores)
DETAILS_VERSION = 3


def run_details(out: Path, dev_file: Path) -> dict | None:
    """What the report needs beyond the metrics, kept in the per-run JSON so that the committed summaries alone
    rebuild it: per dev sentence the (correct, predicted, gold) entity counts of each view, each view's F1 per
    entity type and on the sentences whose context does / does not contain a gold entity's surface string, and each
    view's surface-form precision / recall / F1 (WNUT-17's second measure, `surface_form_scores`)."""
    import numpy as np
    from seqeval.metrics import classification_report

    paths = {view: out / f"predictions_{view}.txt" for view in VIEWS}
    if not all(p.exists() for p in paths.values()):
        return None
    n_dev, flags = dev_gold_in_context(str(dev_file))
    flags = np.array(flags)
    details = {
        "details_version": DETAILS_VERSION,
        "per_sentence": {},
        "per_type": {},
        "gold_in_context": {},
        "surface": {},
    }
    random_context = out / "dev-random-context" / "predictions_context.txt"
    if random_context.exists():
        details["random_context_per_sentence"] = sentence_counts(random_context).astype(int).tolist()
    for view, path in paths.items():
        sentences = read_predictions(path)
        if len(sentences) != n_dev:  # e.g. --max_predict_samples in --extra: no per-sentence report
            print(f"[warn] {path}: {len(sentences)} sentences, {dev_file} has {n_dev}: no breakdowns", flush=True)
            return None
        counts = sentence_counts(path)
        details["per_sentence"][view] = counts.astype(int).tolist()
        report = classification_report(
            [g for g, _ in sentences], [p for _, p in sentences], output_dict=True, zero_division=0
        )
        details["per_type"][view] = {
            t: {"precision": v["precision"], "recall": v["recall"], "f1": v["f1-score"], "gold": int(v["support"])}
            for t, v in report.items()
            if not t.endswith(" avg")
        }
        details["gold_in_context"][view] = {"yes": f1_of(counts[flags]), "no": f1_of(counts[~flags])}
        details["surface"][view] = surface_form_scores(path)
    return details


def surface_f1(r: dict, view: str) -> float | None:
    """A run's surface-form F1 of `view` at the selected epoch (a fraction), or None where the run did not record
    it (the committed runs made before it was recorded): from its details, else from its dev metrics."""
    recorded = r.get("surface", {}).get(view)
    return recorded["f1"] if recorded else r.get("best", {}).get(f"{view}_surface_f1")


def pooled_counts(output_dir: Path, runs: list[dict], method: str, view: str, sub: str = "", seeds=None):
    """Per-sentence counts of a method's view summed over its seeds' predictions (best-epoch models); only `seeds`
    when given (the seeds both sides of a paired comparison have). From the per-run summary's stored counts, else
    from the run folder's predictions; None unless every wanted seed has them (a pooled bootstrap over different
    seed sets on the two sides would not be paired)."""
    import numpy as np

    total, wanted = None, 0
    for r in runs:
        if r["method"] != method or (seeds is not None and r["seed"] not in seeds):
            continue
        wanted += 1
        path = output_dir / f"{method}-seed{r['seed']}" / sub / f"predictions_{view}.txt"
        if not sub:
            stored = r.get("per_sentence", {}).get(view)
        else:
            random_context = (sub, view) == ("dev-random-context", "context")
            stored = r.get("random_context_per_sentence") if random_context else None
        if stored is not None:
            counts = np.array(stored, dtype=np.float64)
        elif path.exists():
            counts = sentence_counts(path)
        else:
            return None
        total = counts if total is None else total + counts
    return total if wanted else None


def summarise(args, runs: list[dict]) -> dict:
    output_dir = Path(args.output_dir)
    table = {}
    for method in METHODS:
        mine = [r for r in runs if r["method"] == method]
        if not mine:
            continue
        row = {
            "seeds": [r["seed"] for r in mine],
            "wall_s": [r["wall_s"] for r in mine],
            "best_epoch": [r["best_epoch"] for r in mine],
        }
        for view in VIEWS:
            for pick in ("best", "last"):
                for metric in ("f1", "precision", "recall"):
                    vals = [100 * r[pick][f"{view}_{metric}"] for r in mine if r.get(pick)]
                    m, s = mean_std(vals)
                    row[f"{pick}_{view}_{metric}"] = {"mean": m, "std": s, "values": vals}
            surface = [(r["seed"], surface_f1(r, view)) for r in mine if surface_f1(r, view) is not None]
            if surface:  # only where runs recorded it: never a 0 for the runs that did not
                m, s = mean_std([100 * v for _, v in surface])
                row[f"best_{view}_surface_f1"] = {"mean": m, "std": s, "values": [100 * v for _, v in surface]}
                row[f"best_{view}_surface_seeds"] = [seed for seed, _ in surface]
            if method in RANDOM_CONTEXT_METHODS:
                vals = [
                    100 * r["extra"]["dev-random-context"][f"{view}_f1"]
                    for r in mine
                    if "dev-random-context" in r.get("extra", {})
                ]
                m, s = mean_std(vals)
                row[f"random_{view}_f1"] = {"mean": m, "std": s, "values": vals}
            if args.test_file:
                vals = [100 * r["extra"]["test"][f"{view}_f1"] for r in mine if "test" in r.get("extra", {})]
                m, s = mean_std(vals)
                row[f"test_{view}_f1"] = {"mean": m, "std": s, "values": vals}
        table[method] = row

    def paired(a, view_a, b, view_b, pick="best", key=None):
        ra = {r["seed"]: r for r in runs if r["method"] == a}
        rb = {r["seed"]: r for r in runs if r["method"] == b}
        seeds = sorted(set(ra) & set(rb))
        get = key or (lambda r, v: r[pick][f"{v}_f1"])
        return dict(t_interval([100 * (get(ra[s], view_a) - get(rb[s], view_b)) for s in seeds]), seeds=seeds)

    comparisons = []
    for name, a, view_a, b, view_b in COMPARISONS:
        if a not in table or b not in table:
            continue
        entry = {
            "name": name,
            "a": a,
            "view_a": view_a,
            "b": b,
            "view_b": view_b,
            "seeds": paired(a, view_a, b, view_b),
            "seeds_last": paired(a, view_a, b, view_b, "last"),
        }
        common = set(entry["seeds"]["seeds"])
        ca = pooled_counts(output_dir, runs, a, view_a, seeds=common)
        cb = pooled_counts(output_dir, runs, b, view_b, seeds=common)
        if ca is not None and cb is not None and len(ca) == len(cb):
            entry["bootstrap"] = paired_bootstrap(ca, cb, args.bootstrap)
        comparisons.append(entry)
    ablation = []
    for method in RANDOM_CONTEXT_METHODS:
        if method not in table:
            continue
        mine = [r for r in runs if r["method"] == method and "dev-random-context" in r.get("extra", {})]
        if not mine:
            continue
        diffs = t_interval(
            [100 * (r["best"]["context_f1"] - r["extra"]["dev-random-context"]["context_f1"]) for r in mine]
        )
        entry = {
            "method": method,
            "real": table[method]["best_context_f1"],
            "random": table[method]["random_context_f1"],
            "seeds": diffs,
        }
        ca = pooled_counts(output_dir, mine, method, "context")
        cb = pooled_counts(output_dir, mine, method, "context", "dev-random-context")
        if ca is not None and cb is not None and len(ca) == len(cb):
            entry["bootstrap"] = paired_bootstrap(ca, cb, args.bootstrap)
        ablation.append(entry)
    dev = next((output_dir / f"{r['method']}-seed{r['seed']}" / "predictions_context.txt" for r in runs), None)
    n_dev = (
        len(read_predictions(dev))
        if dev is not None and dev.exists()
        else next((len(r["per_sentence"]["context"]) for r in runs if r.get("per_sentence")), None)
    )
    return {"table": table, "comparisons": comparisons, "random_context": ablation, "dev_sentences": n_dev}


def side(interval: dict | None) -> int:
    """+1 / -1 when an interval lies above / below 0, 0 when it covers 0 or is missing."""
    if interval is None or math.isnan(interval["low"]):
        return 0
    return 1 if interval["low"] > 0 else -1 if interval["high"] < 0 else 0


def distinguishable(entry: dict) -> str:
    seeds, boot = side(entry["seeds"]), side(entry.get("bootstrap"))
    if seeds and boot:
        return (
            "**yes** (both intervals exclude 0)" if seeds == boot else "no (the intervals exclude 0 on opposite sides)"
        )
    if seeds or boot:
        return "partly (" + ("seed" if seeds else "bootstrap") + " interval excludes 0)"
    return "no"


# ------------------------------------------------------------------------------------------------------ report
def fmt(cell: dict | None, std=True) -> str:
    if cell is None or not cell.get("values") or math.isnan(cell["mean"]):
        return "—"
    if std and len(cell["values"]) > 1:
        return f"{cell['mean']:.2f} ± {cell['std']:.2f}"
    return f"{cell['mean']:.2f}"


def fmt_interval(d: dict) -> str:
    if math.isnan(d.get("low", math.nan)):
        return f"{d['mean']:+.2f}"
    return f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def fmt_bootstrap(b: dict | None) -> str:
    return f"{b['observed']:+.2f} [{b['low']:+.2f}, {b['high']:+.2f}]" if b else "—"


def plot(summary: dict, runs: list[dict], path: Path, arm: str = "") -> None:
    """Dev F1 per epoch of each view and the selected-epoch F1 per method; `arm` names the arm in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    colors = {
        "sentence": "tab:blue",
        "context": "tab:orange",
        "cl-kl": "tab:red",
        "cl-l2": "tab:green",
        "both-nocl": "tab:purple",
    }
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1, 1, 1.15]})
    for ax, view in zip(axes[:2], VIEWS):
        for method in METHODS:
            curves = [r["curve"] for r in runs if r["method"] == method and r["curve"]]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            ys = np.array([[100 * e[f"{view}_f1"] for e in c[:n]] for c in curves])
            xs = [curves[0][i]["epoch"] for i in range(n)]
            mean = ys.mean(0)
            ax.plot(xs, mean, marker="o", color=colors[method], label=f"{LABELS[method]} (n={len(curves)})")
            ax.fill_between(xs, ys.min(0), ys.max(0), color=colors[method], alpha=0.15, linewidth=0)
        ax.set_title(
            f"dev F1 per epoch, {view} view" + (" (sentence alone)" if view == "sentence" else " (sentence + context)")
        )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel("entity F1 (%): mean over seeds, band = min-max")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    ax = axes[2]
    table = summary["table"]
    methods = [m for m in METHODS if m in table]
    for j, view in enumerate(VIEWS):
        for i, method in enumerate(methods):
            vals = table[method][f"best_{view}_f1"]["values"]
            if not vals:
                continue
            y = i + (j - 0.5) * 0.3
            ci = t_interval(vals)
            half = (ci["high"] - ci["mean"]) if not math.isnan(ci["high"]) else 0
            ax.errorbar(
                ci["mean"],
                y,
                xerr=half,
                fmt="o" if view == "sentence" else "s",
                color=colors[method],
                mfc="white" if view == "sentence" else colors[method],
                capsize=3,
                label=f"{view} view" if i == 0 else None,
            )
            ax.scatter(vals, [y] * len(vals), s=9, color=colors[method], alpha=0.5, zorder=3)
    ax.set_yticks(range(len(methods)), [LABELS[m] for m in methods], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("dev F1 (%) at the selected epoch: mean, 95% t-interval, seeds")
    ax.set_title("selected epoch (open: sentence view, filled: context view)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    fig.suptitle("CLNER on WNUT-17 dev, all-MiniLM-L6-v2, CPU" + (f": {arm}" if arm else ""))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


BEGIN, END = "<!-- BEGIN wnut17.py AUTO -->", "<!-- END wnut17.py AUTO -->"
#: the paper's open claims and the comparisons that decide them
CLAIMS = [
    (
        "G1",
        "context alone beats the sentence alone (paper +2.34)",
        ["w/ context vs w/o context, each in its own view"],
    ),
    (
        "G2",
        "CL-KL improves the sentence view, where no search engine is reachable (paper +1.47)",
        ["CL-KL vs w/o context, sentence view"],
    ),
    (
        "G4",
        "the CL term itself matters (CL-KL vs both views trained without it)",
        ["CL-KL vs both views without CL, sentence view", "CL-KL vs both views without CL, context view"],
    ),
]


def markers(args) -> tuple[str, str]:
    """The generated block of an arm in docs/results.md: the original full-data arm keeps the original markers."""
    key = arm_key(args)
    if key is None:
        return BEGIN, END
    return f"<!-- BEGIN wnut17.py AUTO {key} -->", f"<!-- END wnut17.py AUTO {key} -->"


def resolution(entry: dict) -> str:
    """The study's rule: resolved when both intervals exclude 0 (an effect), or when the per-seed interval lies
    within +-1 F1 of 0 (no effect of the paper's size); anything else is not resolved."""
    s = entry["seeds"]
    if s["n"] < 2 or math.isnan(s["low"]):
        return f"not resolved (n = {s['n']} seed{'s' if s['n'] != 1 else ''}: no per-seed interval)"
    seeds, boot = side(s), side(entry.get("bootstrap"))
    if seeds and seeds == boot:
        return f"**resolved: {'a gain' if seeds > 0 else 'a loss'}** (both intervals exclude 0)"
    if s["low"] >= -1 and s["high"] <= 1:
        return "**resolved: no effect of the paper's size** (per-seed interval within ±1)"
    if entry.get("bootstrap") is None:
        return "not resolved (no bootstrap, and the per-seed interval is wider than ±1)"
    reason = (
        "the intervals exclude 0 on opposite sides"
        if seeds and boot
        else "only the per-seed interval excludes 0"
        if seeds
        else "only the bootstrap interval excludes 0"
        if boot
        else "both intervals cover 0"
    )
    return f"not resolved ({reason}; the per-seed interval is wider than ±1)"


def best_run(runs: list[dict], method: str) -> dict | None:
    """The method's run with the best value of its own selection criterion (the model a user would keep)."""
    mine = [r for r in runs if r["method"] == method and r.get("per_type")]
    key = SELECTED_ON[method]
    return max(mine, key=lambda r: r["best"][key], default=None)


def breakdown_lines(runs: list[dict]) -> list[str]:
    """Where context helps: the best CL-KL and baseline models' F1 per entity type, and on the dev sentences whose
    context holds a gold entity's surface string against the others."""
    picked = [(m, best_run(runs, m)) for m in ("sentence", "context", "cl-kl", "both-nocl")]
    picked = [(m, r) for m, r in picked if r is not None]
    if not picked:
        return []
    out = [
        "### Breakdowns (the best run of each method by its selection criterion)",
        "",
        "Dev F1 (%) on the sentences whose context contains the surface string of one of their gold entities "
        "(case-insensitive), against the others (which include the sentences without any entity; those add only "
        "false positives).",
        "",
        "| model (seed) | view | context holds a gold entity: F1 (sentences, gold entities) | does not: F1 "
        "(sentences, gold entities) |",
        "| --- | --- | --- | --- |",
    ]
    for method, r in picked:
        for view in VIEWS:
            g = r["gold_in_context"][view]
            out.append(
                f"| {LABELS[method]} ({r['seed']}) | {view} | {100 * g['yes']['f1']:.2f} "
                f"({g['yes']['sentences']}, {g['yes']['gold']}) | {100 * g['no']['f1']:.2f} "
                f"({g['no']['sentences']}, {g['no']['gold']}) |"
            )
    types = sorted({t for _, r in picked for t in r["per_type"]["sentence"]})
    out += [
        "",
        "Dev F1 (%) per entity type, sentence view / context view (gold entities in brackets).",
        "",
        "| model (seed) | "
        + " | ".join(f"{t} ({picked[0][1]['per_type']['sentence'].get(t, {}).get('gold', 0)})" for t in types)
        + " |",
        "| --- | " + " | ".join("---" for _ in types) + " |",
    ]
    for method, r in picked:
        cells = [" / ".join(f"{100 * r['per_type'][v].get(t, {}).get('f1', 0):.1f}" for v in VIEWS) for t in types]
        out.append(f"| {LABELS[method]} ({r['seed']}) | " + " | ".join(cells) + " |")
    return out + [""]


def claim_lines(summary: dict) -> list[str]:
    by_name = {c["name"]: c for c in summary["comparisons"]}
    out = [
        "### The paper's open claims",
        "",
        "Resolved when both intervals exclude 0, or when the per-seed interval lies within ±1 F1 of 0 (no effect "
        "of the paper's size).",
        "",
        "| claim | comparison | per seed (n) | bootstrap | status |",
        "| --- | --- | --- | --- | --- |",
    ]
    for tag, claim, names in CLAIMS:
        for name in names:
            c = by_name.get(name)
            if c is None:
                out.append(f"| {tag}: {claim} | {name} | — | — | not run |")
                continue
            boot = fmt_bootstrap(c.get("bootstrap"))
            out.append(
                f"| {tag}: {claim} | {name} | {fmt_interval(c['seeds'])} ({c['seeds']['n']}) | {boot} | "
                f"{resolution(c)} |"
            )
    return out + [""]


def convergence_line(runs: list[dict]) -> str:
    """How many runs selected an epoch before the last ("converged" means most runs do)."""
    known = [r for r in runs if r.get("curve") and r.get("best_epoch") is not None]
    last = [f"{r['method']} seed {r['seed']}" for r in known if r["best_epoch"] == r["curve"][-1]["epoch"]]
    return (
        f"Convergence: {len(known) - len(last)} of {len(known)} runs selected an epoch before the last "
        f"({', '.join(last) or 'none'} selected the last)."
    )


def relative(path: Path) -> Path:
    path = path.absolute()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def run_cpu(r: dict) -> str | None:
    """The CPU a run recorded (`hardware_info()["cpu"]`), or None for a summary that predates the record."""
    return r.get("hardware", {}).get("cpu")


def replica_lines(runs: list[dict], replicas: list[dict]) -> list[str]:
    """The same method and seed trained on two machines: their selected-epoch F1 side by side, and per method the
    mean difference with its t-interval over seeds. Float32 training is not bit-reproducible across CPUs (other
    kernels, other summation orders), so this measures how far one seed's result moves with the machine: if it
    moves as far as seeds differ, pairing by seed across machines pairs nothing."""
    ours = {(r["method"], r["seed"]): r for r in runs}
    pairs = [(ours[(r["method"], r["seed"])], r) for r in replicas if (r["method"], r["seed"]) in ours]
    if not pairs:
        return []
    cpu = lambda r: (run_cpu(r) or "not recorded").split(" (")[0]  # noqa: E731
    out = [
        "### The same seeds on another machine (replication)",
        "",
        f"This arm's runs ({cpu(pairs[0][0])}) against the committed runs of the same method and seed made on "
        f"{cpu(pairs[0][1])}, with identical flags; selected-epoch dev F1 (%), this machine − the other.",
        "",
        "| method | seed | selected epoch (this / other) | sentence view, this / other | context view, this / "
        "other | difference, sentence / context |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    by_method: dict[str, list[tuple[float, float]]] = {}
    for a, b in sorted(pairs, key=lambda p: (list(METHODS).index(p[0]["method"]), p[0]["seed"])):
        f1 = {(w, v): 100 * r["best"][f"{v}_f1"] for w, r in (("a", a), ("b", b)) for v in VIEWS}
        diff = tuple(f1[("a", v)] - f1[("b", v)] for v in VIEWS)
        by_method.setdefault(a["method"], []).append(diff)
        out.append(
            f"| {a['method']} | {a['seed']} | {a['best_epoch']:g} / {b['best_epoch']:g} | "
            f"{f1[('a', 'sentence')]:.2f} / {f1[('b', 'sentence')]:.2f} | {f1[('a', 'context')]:.2f} / "
            f"{f1[('b', 'context')]:.2f} | {diff[0]:+.2f} / {diff[1]:+.2f} |"
        )
    out += [
        "",
        "| method | seeds | mean difference, sentence view | mean difference, context view | mean absolute "
        "difference (both views) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method, diffs in by_method.items():
        cells = [fmt_interval(t_interval([d[i] for d in diffs])) for i in range(len(VIEWS))]
        absolute = statistics.fmean(abs(x) for d in diffs for x in d)
        out.append(f"| {method} | {len(diffs)} | {cells[0]} | {cells[1]} | {absolute:.2f} |")
    return out + [""]


def markdown(
    args, summary: dict, runs: list[dict], sweep: list[dict], hardware: dict, replicas: list[dict] | None = None
) -> str:
    table = summary["table"]
    rel = relative(Path(args.output_dir))
    begin, end = markers(args)
    selection = "" if not args.results_dir else f" --results_dir {relative(Path(args.results_dir))}"
    if list(args.methods) != list(METHODS):
        selection += " --methods " + " ".join(args.methods)
    if tuple(args.seeds) != DEFAULT_SEEDS:
        selection += " --seeds " + " ".join(map(str, args.seeds))
    if args.replica_results_dir:
        selection += f" --replica_results_dir {relative(Path(args.replica_results_dir))}"
    out = [
        begin,
        "",
        f"_Generated by `python benchmarks/wnut17.py {arm_flags(args)} --output_dir {rel}{selection} "
        f"--report_only` ({len(runs)} finished runs)._",
        "",
    ]
    if args.train_subset != "all":
        out += claim_lines(summary) + [convergence_line(runs), ""]
    for pick, title in (
        ("best", "Dev F1 (%) at the selected epoch (the model each run ends with)"),
        ("last", "Dev F1 (%) after the last epoch"),
    ):
        out += [
            f"### {title}",
            "",
            "| method | seeds | sentence view | context view | paper (XLM-R large, test) w/o / w/ context |",
            "| --- | --- | --- | --- | --- |",
        ]
        for method, row in table.items():
            paper = " / ".join("—" if v is None else f"{v:.2f}" for v in PAPER[method])
            out.append(
                f"| {LABELS[method]} | {', '.join(map(str, row['seeds']))} | {fmt(row[f'{pick}_sentence_f1'])} "
                f"| {fmt(row[f'{pick}_context_f1'])} | {paper} |"
            )
        out.append("")
    out += surface_lines(table)
    epochs = sorted({e["epoch"] for r in runs for e in r["curve"]})
    if len(epochs) > 1:
        out += [
            "### Dev F1 (%) per epoch, sentence view / context view (mean over seeds)",
            "",
            "| method | " + " | ".join(f"epoch {e:g}" for e in epochs) + " |",
            "| --- | " + " | ".join("---" for _ in epochs) + " |",
        ]
        for method in table:
            cells = []
            for epoch in epochs:
                at = [e for r in runs if r["method"] == method for e in r["curve"] if e["epoch"] == epoch]
                cells.append(
                    " / ".join(f"{100 * statistics.fmean(e[f'{v}_f1'] for e in at):.2f}" for v in VIEWS) if at else "—"
                )
            out.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
        out.append("")
    out += [
        "Mean ± sample standard deviation over seeds. Selected epoch: the best dev epoch of the criterion in "
        "the per-run table (the two-view mean F1 for two-view methods, the trained view's F1 for the "
        "baselines).",
        "",
        "### Paired differences (percentage points of dev F1, selected epoch)",
        "",
        "Per seed: mean of the per-seed differences with its 95% t-interval. Bootstrap: the difference of F1 "
        f"computed on the predictions pooled over seeds, with a 95% interval from {args.bootstrap} paired "
        f"resamples of the {summary.get('dev_sentences', '?')} dev sentences. Last epoch: the per-seed interval for the models after the last "
        "epoch. The per-seed interval covers the training randomness (the seed); the bootstrap holds the trained "
        "models fixed and resamples only the dev sentences, so it is narrower and says only that these particular "
        "models differ on such data. A difference counts as distinguishable from 0 when both intervals exclude "
        "0.",
        "",
        "| comparison | per seed (n) | per-seed values | bootstrap | last epoch, per seed | distinguishable from 0 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in summary["comparisons"]:
        boot = fmt_bootstrap(c.get("bootstrap"))
        vals = ", ".join(f"{v:+.2f}" for v in c["seeds"]["values"])
        out.append(
            f"| {c['name']} | {fmt_interval(c['seeds'])} ({c['seeds']['n']}) | {vals} | {boot} | "
            f"{fmt_interval(c['seeds_last'])} | {distinguishable(c)} |"
        )
    out += [
        "",
        "### Random contexts (the paper's Table 6 ablation)",
        "",
        "The context view of the same models on dev with each context replaced by as many random snippets of "
        "other dev sentences.",
        "",
        "| model | context view, real contexts | context view, random contexts | real − random per seed "
        "| bootstrap | distinguishable from 0 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for a in summary["random_context"]:
        boot = fmt_bootstrap(a.get("bootstrap"))
        out.append(
            f"| {LABELS[a['method']]} | {fmt(a['real'])} | {fmt(a['random'])} | {fmt_interval(a['seeds'])} | "
            f"{boot} | {distinguishable(a)} |"
        )
    if args.test_file:
        out += [
            "",
            f"### Extra evaluation file `{args.test_file}`",
            "",
            "| method | sentence view | context view |",
            "| --- | --- | --- |",
        ]
        for method, row in table.items():
            out.append(
                f"| {LABELS[method]} | {fmt(row.get('test_sentence_f1'))} | {fmt(row.get('test_context_f1'))} |"
            )
    out += [""] + breakdown_lines(runs) + replica_lines(runs, replicas or [])
    out += [
        "### Precision and recall (selected epoch)",
        "",
        "| method | sentence P | sentence R | context P | context R |",
        "| --- | --- | --- | --- | --- |",
    ]
    for method, row in table.items():
        out.append(
            f"| {LABELS[method]} | {fmt(row['best_sentence_precision'])} | {fmt(row['best_sentence_recall'])} "
            f"| {fmt(row['best_context_precision'])} | {fmt(row['best_context_recall'])} |"
        )
    recorded = sorted({run_cpu(r) for r in runs if run_cpu(r)})
    # runs made on different CPUs: each wall time says which (a letter), since the CPU sets it, not the method
    cpu_tag = {cpu: chr(ord("A") + i) for i, cpu in enumerate(recorded)} if len(recorded) > 1 else {}
    out += [
        "",
        "### Per run",
        "",
        "| method | seed | selected on | epoch | sentence F1 / P / R | context F1 / P / R | last epoch F1 "
        f"sentence / context | random-context F1 | wall time{' (CPU)' if cpu_tag else ''} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        cells = [
            " / ".join(f"{100 * r['best'][f'{v}_{m}']:.2f}" for m in ("f1", "precision", "recall")) for v in VIEWS
        ]
        last = " / ".join(f"{100 * r['last'][f'{v}_f1']:.2f}" for v in VIEWS) if r.get("last") else "—"
        rnd = r.get("extra", {}).get("dev-random-context")
        rnd = f"{100 * rnd['context_f1']:.2f}" if rnd else "—"
        cpu = f" ({cpu_tag.get(run_cpu(r), '?')})" if cpu_tag else ""
        out.append(
            f"| {r['method']} | {r['seed']} | {SELECTED_ON[r['method']]} | {r['best_epoch']:g} | {cells[0]} "
            f"| {cells[1]} | {last} | {rnd} | "
            f"{r['wall_s'] / 60:.1f} min{cpu} |"
        )
    total = sum(r["wall_s"] + r.get("extra_eval_wall_s", 0) for r in runs)
    named = [f"{cpu_tag[c]}: {c}" if cpu_tag else c for c in recorded]
    where = (
        ("; ".join(named) + " (as each run recorded it)")
        if recorded
        else (
            f"{hardware['cpu']}, {hardware['cpus']} cores (the machine that wrote this report; the runs did not record "
            "theirs)"
        )
    )
    out += [
        "",
        f"Total run time {total / 3600:.1f} h ({args.parallel} runs at a time, {args.threads} thread each). "
        f"Hardware: {where}; {recorded_software(runs, hardware)}.",
        "",
    ]
    if sweep:
        out += [
            "### Learning-rate sweep (sentence baseline, seed 1; selection on sentence-view dev F1)",
            "",
            "| encoder lr | head lr | best epoch | sentence view F1 | context view F1 | wall time |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in sorted(sweep, key=lambda r: (r["learning_rate"], r["head_learning_rate"])):
            out.append(
                f"| {r['learning_rate']:g} | {r['head_learning_rate']:g} | {r['best_epoch']:g} | "
                f"{100 * r['best']['sentence_f1']:.2f} | {100 * r['best']['context_f1']:.2f} | "
                f"{r['wall_s'] / 60:.1f} min |"
            )
        out.append("")
    if runs:
        out += [
            "### Exact per-run command (the first run; the others differ in the method flags, `--seed` and "
            "`--output_dir`)",
            "",
            "```",
            runs[0]["command"],
            "```",
            "",
        ]
    missing = [
        f"{m} seed {s}"
        for s in args.seeds
        for m in args.methods
        if not any(r["method"] == m and r["seed"] == s for r in runs)
    ]
    if missing:
        out += [f"Not run: {', '.join(missing)}.", ""]
    out += [f"![dev F1 per epoch and final F1 per method]({Path(args.plot).name})", "", end]
    return "\n".join(out)


def surface_lines(table: dict) -> list[str]:
    """The surface-form F1 table (WNUT-17's second measure) of the methods whose runs recorded it; nothing when
    none did (the committed runs made before it was recorded)."""
    rows = []
    for method, row in table.items():
        cells = [row.get(f"best_{v}_surface_f1") for v in VIEWS]
        if any(cells):
            seeds = sorted({s for v in VIEWS for s in row.get(f"best_{v}_surface_seeds", [])})
            rows.append(f"| {LABELS[method]} | {', '.join(map(str, seeds))} | {fmt(cells[0])} | {fmt(cells[1])} |")
    if not rows:
        return []
    return [
        "### Dev surface-form F1 (%) at the selected epoch",
        "",
        "WNUT-17's second measure, as its official `wnuteval.py` computes it: F1 over the distinct entity strings "
        "with their type (each counted once, however often it occurs; correct where it was found at one of its "
        "gold places). Runs that did not record it are left out.",
        "",
        "| method | seeds | sentence view | context view |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
    ]


def cv_summarise(args, runs: list[dict], dev_rows: list[dict]) -> dict:
    """The --cv_folds arm's summary: per method the pooled dev F1 (entity and surface-form, each view) over seeds;
    the claims' comparisons (G1, G2, G4), each with the per-seed t-interval of the pooled F1 (the rule's interval),
    the t-interval over (fold, seed) units, and the paired bootstrap over the dev sentences (counts pooled over the
    seeds both sides have); the random-context ablation of the pooled context view."""
    pooled = cv_pooled(runs, dev_rows)
    table = {}
    for method in METHODS:
        seeds = sorted(s for m, s in pooled if m == method)
        if not seeds:
            continue
        row = {"seeds": seeds}
        for view in VIEWS:
            for name, get in (
                ("f1", lambda e: e[view]["f1"]),
                ("surface_f1", lambda e: e[view].get("surface", {}).get("f1")),
                ("random_f1", lambda e: e.get("random", {}).get("f1") if view == "context" else None),
            ):
                vals = [100 * v for v in (get(pooled[(method, s)]) for s in seeds) if v is not None]
                m, sd = mean_std(vals)
                row[f"{name}_{view}"] = {"mean": m, "std": sd, "values": vals}
        table[method] = row
    by_name = {name: (a, va, b, vb) for name, a, va, b, vb in COMPARISONS}
    comparisons = []
    for name in [n for _, _, names in CLAIMS for n in names]:
        a, view_a, b, view_b = by_name[name]
        if a not in table or b not in table:
            continue
        seeds = sorted(set(table[a]["seeds"]) & set(table[b]["seeds"]))
        pa, pb = ([pooled[(m, s)] for s in seeds] for m in (a, b))
        entry = {"name": name, "a": a, "view_a": view_a, "b": b, "view_b": view_b}
        entry["seeds"] = dict(
            t_interval([100 * (x[view_a]["f1"] - y[view_b]["f1"]) for x, y in zip(pa, pb)]), seeds=seeds
        )
        ra = {(r["seed"], r["fold"]): r for r in runs if r["method"] == a and r["seed"] in seeds}
        rb = {(r["seed"], r["fold"]): r for r in runs if r["method"] == b and r["seed"] in seeds}
        units = sorted(set(ra) & set(rb))
        entry["folds"] = t_interval(
            [100 * (ra[u]["best"][f"{view_a}_f1"] - rb[u]["best"][f"{view_b}_f1"]) for u in units]
        )
        if all("surface" in x[view_a] for x in pa) and all("surface" in y[view_b] for y in pb):
            entry["surface"] = t_interval(
                [100 * (x[view_a]["surface"]["f1"] - y[view_b]["surface"]["f1"]) for x, y in zip(pa, pb)]
            )
        if seeds:
            ca = sum(x[view_a]["counts"] for x in pa)
            cb = sum(y[view_b]["counts"] for y in pb)
            entry["bootstrap"] = paired_bootstrap(ca, cb, args.bootstrap)
        comparisons.append(entry)
    ablation = []
    for method in RANDOM_CONTEXT_METHODS:
        seeds = [s for s in table.get(method, {}).get("seeds", []) if "random" in pooled[(method, s)]]
        if not seeds:
            continue
        mine = [pooled[(method, s)] for s in seeds]
        entry = {
            "method": method,
            "real": table[method]["f1_context"],
            "random": table[method]["random_f1_context"],
            "seeds": t_interval([100 * (e["context"]["f1"] - e["random"]["f1"]) for e in mine]),
            "bootstrap": paired_bootstrap(
                sum(e["context"]["counts"] for e in mine), sum(e["random"]["counts"] for e in mine), args.bootstrap
            ),
        }
        ablation.append(entry)
    return {"table": table, "comparisons": comparisons, "random_context": ablation, "dev_sentences": len(dev_rows)}


def cv_markdown(args, summary: dict, runs: list[dict], hardware: dict) -> str:
    """The --cv_folds arm's block of docs/results.md (tables only, no plot)."""
    table = summary["table"]
    begin, end = markers(args)
    selection = "" if not args.results_dir else f" --results_dir {relative(Path(args.results_dir))}"
    if list(args.methods) != list(METHODS):
        selection += " --methods " + " ".join(args.methods)
    if tuple(args.seeds) != DEFAULT_SEEDS:
        selection += " --seeds " + " ".join(map(str, args.seeds))
    n = summary.get("dev_sentences", "?")
    out = [
        begin,
        "",
        f"_Generated by `python benchmarks/wnut17.py {arm_flags(args)} --output_dir {relative(Path(args.output_dir))}"
        f"{selection} --report_only` ({len(runs)} finished runs)._",
        "",
        f"The same-retrieval arm: {args.cv_folds}-fold cross-validation over the {n} dev sentences, whose contexts "
        "all come from the paper's own retrieval (the folds: a seeded shuffle of the sentences dealt round-robin, "
        f"`--cv_seed {args.cv_seed}`). Each run trains on the other folds and predicts its fold in both views. "
        f"**Model selection never sees the evaluated fold**: a fixed schedule of {args.epochs:g} epochs and the last "
        "epoch's model (no `--load_best_model_at_end`). The folds' predictions are pooled, so every dev sentence is "
        "scored once per method and seed.",
        "",
    ]
    out += claim_lines(summary)
    out += [
        "### Dev F1 (%), folds pooled (every dev sentence scored once per seed)",
        "",
        "| method | seeds | sentence view | context view | surface-form F1, sentence view | surface-form F1, "
        "context view |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for method, row in table.items():
        out.append(
            f"| {LABELS[method]} | {', '.join(map(str, row['seeds']))} | {fmt(row['f1_sentence'])} | "
            f"{fmt(row['f1_context'])} | {fmt(row['surface_f1_sentence'])} | {fmt(row['surface_f1_context'])} |"
        )
    out += [
        "",
        "Mean ± sample standard deviation over seeds of the F1 of the pooled folds; surface-form F1 as WNUT-17's "
        "`wnuteval.py` (`clner.metrics.surface_form_metrics`) over all dev sentences.",
        "",
        "### Paired differences (percentage points of pooled dev F1)",
        "",
        "Per seed: the difference of the pooled F1, its mean over seeds and 95% t-interval (the interval the claims' "
        "rule uses). Per fold: the differences of each (fold, seed) unit's F1 on its fold, with their t-interval "
        "(the folds' training sets overlap, so this interval is too narrow: shown, not used). Bootstrap: the "
        f"difference of F1 on the predictions pooled over folds and seeds, 95% interval from {args.bootstrap} paired "
        f"resamples of the {n} dev sentences.",
        "",
        "| comparison | per seed (n) | per fold (n) | bootstrap | surface-form F1, per seed | distinguishable "
        "from 0 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for c in summary["comparisons"]:
        surface = f"{fmt_interval(c['surface'])} ({c['surface']['n']})" if c.get("surface") else "—"
        out.append(
            f"| {c['name']} | {fmt_interval(c['seeds'])} ({c['seeds']['n']}) | {fmt_interval(c['folds'])} "
            f"({c['folds']['n']}) | {fmt_bootstrap(c.get('bootstrap'))} | {surface} | {distinguishable(c)} |"
        )
    if summary["random_context"]:
        out += [
            "",
            "### Random contexts (the paper's Table 6 ablation), folds pooled",
            "",
            "| model | context view, real contexts | context view, random contexts | real − random per seed "
            "| bootstrap | distinguishable from 0 |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for a in summary["random_context"]:
            out.append(
                f"| {LABELS[a['method']]} | {fmt(a['real'])} | {fmt(a['random'])} | {fmt_interval(a['seeds'])} | "
                f"{fmt_bootstrap(a.get('bootstrap'))} | {distinguishable(a)} |"
            )
    out += [
        "",
        "### Per run (the last epoch's model on its fold)",
        "",
        "| method | seed | fold | sentences | sentence F1 / P / R | context F1 / P / R | random-context F1 | wall time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(runs, key=lambda r: (list(METHODS).index(r["method"]), r["seed"], r["fold"])):
        cells = [
            " / ".join(f"{100 * r['best'][f'{v}_{m}']:.2f}" for m in ("f1", "precision", "recall")) for v in VIEWS
        ]
        rnd = r.get("extra", {}).get("dev-random-context")
        rnd = f"{100 * rnd['context_f1']:.2f}" if rnd else "—"
        out.append(
            f"| {r['method']} | {r['seed']} | {r['fold']} | {len(r['fold_sentences'])} | {cells[0]} | {cells[1]} | "
            f"{rnd} | {r['wall_s'] / 60:.1f} min |"
        )
    recorded = sorted({run_cpu(r) for r in runs if run_cpu(r)})
    total = sum(r["wall_s"] + r.get("extra_eval_wall_s", 0) for r in runs)
    out += [
        "",
        f"Total run time {total / 3600:.1f} h. Hardware: {'; '.join(recorded) or hardware['cpu']}; "
        f"{recorded_software(runs, hardware)}.",
        "",
        "Not yet here (TODO): the transfer cell, the models of another arm trained on train.context.txt scored on "
        "the same folds.",
        "",
    ]
    missing = [
        f"{m} seed {s} fold {f}"
        for s in args.seeds
        for m in args.methods
        for f in range(args.cv_folds)
        if not any(r["method"] == m and r["seed"] == s and r["fold"] == f for r in runs)
    ]
    if missing:
        out += [f"Not run: {', '.join(missing)}.", ""]
    return "\n".join(out + [end])


def write_doc(path: Path, generated: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the arm's generated block of `path`, keeping the hand-written text around it (a missing block is
    appended)."""
    if path.exists():
        text = path.read_text()
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            path.write_text(head + generated + rest.split(end, 1)[1])
            return
        path.write_text(text.rstrip("\n") + "\n\n" + generated + "\n")
        return
    path.write_text("# CLNER on WNUT-17: reproduction\n\n" + generated + "\n")


def recorded_software(runs: list[dict], hardware: dict) -> str:
    """Python, torch and transformers as the runs recorded them (each version the runs used, in order), so that a
    report rebuilt elsewhere from the committed runs says the same; the reporting machine's only for runs that
    recorded none."""
    parts = []
    for key, name in (("python", "Python"), ("torch", "torch"), ("transformers", "transformers")):
        seen = [(r.get("hardware") or {}).get(key) for r in runs]
        versions = list(dict.fromkeys(v for v in seen if v)) or [hardware[key]]
        parts.append(f"{name} {' / '.join(versions)}")
    return ", ".join(parts)


def hardware_info() -> dict:
    import torch
    import transformers

    from clner.hardware import cpu_bf16_support

    support = cpu_bf16_support()
    return {
        "cpu": support.description,
        "cpu_native_bf16": support.native,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
    }


def run_settings(r: dict) -> dict:
    """A run's arm, epochs and sequence budget: as recorded, else read from its command (summaries written before
    they were recorded), else None; never the settings of the report being built."""
    words = shlex.split(r.get("command", ""))

    def flag(name):
        return words[words.index(name) + 1] if name in words[:-1] else None

    epochs, length, train = flag("--num_train_epochs"), flag("--max_seq_length"), flag("--train_file")
    return {
        "train_subset": r.get("train_subset")
        or (None if train is None else "with_context" if "with_context" in train else "all"),
        "epochs": r.get("epochs") if r.get("epochs") is not None else (None if epochs is None else float(epochs)),
        "max_seq_length": r.get("max_seq_length") or (None if length is None else int(length)),
    }


def same_arm(r: dict, args) -> bool:
    settings = run_settings(r)
    return (
        (r.get("cv_folds") or 0) == getattr(args, "cv_folds", 0)
        and (not r.get("cv_folds") or r.get("cv_seed", 0) == args.cv_seed)
        and settings["train_subset"] == args.train_subset
        and settings["epochs"] == args.epochs
        and settings["max_seq_length"] == args.max_seq_length
    )


def load(
    output_dir: Path | None, prefix: str = "", results_dir: str | None = None, dev_file: Path | None = None, args=None
) -> list[dict]:
    """The finished runs of `output_dir`, and (with `results_dir`) the committed summaries of runs whose folder is
    gone (another machine's); with `args`, only the runs of its arm, epochs and sequence budget (others are named
    and left out). A summary whose details are older than `DETAILS_VERSION` gets them from its run folder, when it
    has the predictions, and is rewritten (in both places)."""
    runs = {}
    for path in sorted(output_dir.glob(f"{prefix}*/bench_result.json")) if output_dir else []:
        r = json.loads(path.read_text())
        if r.get("details_version", 1) < DETAILS_VERSION and dev_file is not None:
            extra = run_details(path.parent, dev_file)
            if extra:
                r.update(extra, details_from_predictions_later=True)
                r.update({k: v for k, v in run_settings(r).items() if r.get(k) is None})
                save_result(r, path.parent, results_dir)
        runs[path.parent.name] = r
    if results_dir and Path(results_dir).is_dir():
        for path in sorted(Path(results_dir).glob(f"{prefix}*.json")):
            runs.setdefault(path.stem, json.loads(path.read_text()))
    if args is not None:
        other = sorted(name for name, r in runs.items() if not same_arm(r, args))
        if other:
            print(f"[report] left out (another arm, epochs or --max_seq_length): {', '.join(other)}", flush=True)
        runs = {name: r for name, r in runs.items() if name not in other}
    runs = list(runs.values())
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(runs, key=lambda r: (order.get(r["method"], 99), r["seed"]))


def main(argv=None):
    args = parse_args(argv)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    sweep_dir = output_dir / "sweep"
    sweep_results = str(Path(args.results_dir) / "sweep") if args.results_dir else None  # not runs of the study
    if not args.report_only and not args.cv_folds:
        train_file(args)  # once, before the parallel runs read it
    if args.cv_folds and not args.report_only:
        cv_fold_files(args)  # once, before the parallel runs read them
        random_context_file(args)
        jobs = [
            (
                m,
                s,
                args.learning_rate,
                args.head_learning_rate,
                output_dir / f"{m}-seed{s}-fold{f}",
                args.results_dir,
                f,
            )
            for s in args.seeds
            for f in range(args.cv_folds)
            for m in args.methods
        ]  # seed-major: every method gets a full seed (all folds) before any gets two
    elif args.sweep and not args.report_only:
        jobs = [
            ("sentence", 1, lr, hl, sweep_dir / f"lr{lr:g}-head{hl:g}", sweep_results)
            for lr in args.sweep_lrs
            for hl in args.sweep_head_lrs
        ]
    elif not args.report_only:
        random_context_file(args)
        jobs = [
            (m, s, args.learning_rate, args.head_learning_rate, output_dir / f"{m}-seed{s}", args.results_dir)
            for s in args.seeds
            for m in args.methods
        ]  # seed-major: every method gets a seed before any gets two
    else:
        jobs = []
    if jobs:
        t0 = time.time()
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            list(pool.map(lambda job: run_one(args, *job), jobs))
        print(f"[study] {(time.time() - t0) / 60:.1f} min", flush=True)

    def selected(found: list[dict]) -> list[dict]:  # the report covers --seeds / --methods
        return [r for r in found if r["seed"] in args.seeds and r["method"] in args.methods]

    if args.cv_folds:
        return cv_report(args, selected(load(output_dir, results_dir=args.results_dir, args=args)))

    runs = selected(
        load(output_dir, results_dir=args.results_dir, dev_file=Path(args.data_dir) / "dev.context.txt", args=args)
    )
    sweep = load(sweep_dir, results_dir=sweep_results)
    replicas = selected(load(None, results_dir=args.replica_results_dir, args=args))
    hardware = hardware_info()
    summary = summarise(args, runs) if runs else {"table": {}, "comparisons": [], "random_context": []}
    settings = {k: v for k, v in vars(args).items() if k not in ("report_only", "sweep")}
    (output_dir / "summary.json").write_text(
        json.dumps(
            {
                **summary,
                "runs": runs,
                "sweep": sweep,
                "replicas": replicas,
                "settings": settings,
                "hardware": hardware,
            },
            indent=2,
        )
    )
    for c in summary["comparisons"]:
        print(f"{c['name']}: {fmt_interval(c['seeds'])} per seed; {distinguishable(c)}")
    if not args.no_doc and (runs or sweep):
        if runs:
            plot(summary, runs, Path(args.plot), arm_title(args))
        write_doc(Path(args.results_md), markdown(args, summary, runs, sweep, hardware, replicas), *markers(args))
        print(f"plot: {args.plot}; doc: {args.results_md}")
    return summary


def cv_report(args, runs: list[dict]) -> dict:
    """The --cv_folds arm's summary.json and docs/results.md block (from the per-run summaries alone)."""
    runs = [r for r in runs if r.get("fold") is not None and r["fold"] < args.cv_folds]
    hardware = hardware_info()
    summary = cv_summarise(args, runs, cv_dev_rows(args)) if runs else {"table": {}, "comparisons": []}
    settings = {k: v for k, v in vars(args).items() if k not in ("report_only", "sweep")}
    stored = {
        **summary,
        "runs": runs,
        "settings": settings,
        "hardware": hardware,
    }
    (Path(args.output_dir) / "summary.json").write_text(json.dumps(stored, indent=2))
    for c in summary["comparisons"]:
        print(f"{c['name']}: {fmt_interval(c['seeds'])} per seed; {resolution(c)}")
    if not args.no_doc and runs:
        write_doc(Path(args.results_md), cv_markdown(args, summary, runs, hardware), *markers(args))
        print(f"doc: {args.results_md}")
    return summary


if __name__ == "__main__":
    main()
