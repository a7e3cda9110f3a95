"""The WNUT-17 study's statistics and inputs (benchmarks/wnut17.py), against peers: Student-t intervals against
scipy, entity counts and pooled F1 against seqeval, the paired bootstrap against its definition, and the
random-context file against the file it is made from."""

import importlib.util
import math
import random

import numpy as np
import pytest
from conftest import REPO_ROOT

from data_clner import read_clner, write_clner

spec = importlib.util.spec_from_file_location("wnut17_study", REPO_ROOT / "benchmarks" / "wnut17.py")
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)

TAGS = ["O", "B-person", "I-person", "B-location", "I-location", "B-product"]


def random_tags(rng, n):
    out = []
    for _ in range(n):
        tag = rng.choice(TAGS)
        if tag.startswith("I-") and not (out and out[-1][2:] == tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
    return out


def write_predictions(path, sentences):
    """A `predictions_<view>.txt` as run_ner_cl.py writes it: token, gold, predicted; a blank line between."""
    lines = []
    for i, (gold, pred) in enumerate(sentences):
        lines += [f"w{i}_{j}\t{g}\t{p}" for j, (g, p) in enumerate(zip(gold, pred))] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")


@pytest.mark.parametrize("values", [[1.0, 2.5], [0.3, -1.2, 2.0], [1.0, 1.5, 0.5, 3.0, -0.5, 2.2], list(range(16))])
def test_t_interval_matches_scipy(values):
    stats = pytest.importorskip("scipy.stats")
    got = study.t_interval([float(v) for v in values])
    mean, sem = np.mean(values), stats.sem(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
    assert got["mean"] == pytest.approx(mean)
    assert (got["low"], got["high"]) == pytest.approx((low, high), abs=2e-3 * sem + 1e-12)  # 3-decimal t table


def test_t_interval_of_one_value_has_no_width():
    got = study.t_interval([2.0])
    assert got["mean"] == 2.0 and math.isnan(got["low"]) and math.isnan(got["high"])


def test_sentence_counts_give_seqeval_f1(tmp_path):
    from seqeval.metrics import f1_score

    rng = random.Random(0)
    sentences = []
    for _ in range(40):
        n = rng.randint(1, 9)
        gold = random_tags(rng, n)
        pred = gold[:] if rng.random() < 0.4 else random_tags(rng, n)
        sentences.append((gold, pred))
    write_predictions(tmp_path / "p.txt", sentences)
    assert study.read_predictions(tmp_path / "p.txt") == sentences
    counts = study.sentence_counts(tmp_path / "p.txt")
    tp, n_pred, n_gold = counts.sum(0)
    f1 = 2 * tp / (n_pred + n_gold)
    assert f1 == pytest.approx(f1_score([g for g, _ in sentences], [p for _, p in sentences]))


def test_paired_bootstrap_against_its_definition():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 4, size=200)
    a = np.stack([np.minimum(gold, rng.integers(0, 4, 200)), gold, gold], 1).astype(float)  # A finds more
    b = np.stack([np.minimum(gold, rng.integers(0, 2, 200)), gold, gold], 1).astype(float)
    got = study.paired_bootstrap(a, b, resamples=500, seed=3)
    f1 = lambda c: 200 * c[:, 0].sum() / (c[:, 1].sum() + c[:, 2].sum())  # noqa: E731
    assert got["observed"] == pytest.approx(f1(a) - f1(b))
    # the same resamples, drawn sentence by sentence
    draws = np.random.default_rng(3).multinomial(200, np.full(200, 1 / 200), size=500)
    diffs = [f1(a * w[:, None]) - f1(b * w[:, None]) for w in draws]
    assert (got["low"], got["high"]) == pytest.approx((np.percentile(diffs, 2.5), np.percentile(diffs, 97.5)))
    assert got["low"] <= got["observed"] <= got["high"] and got["low"] > 0 and got["p_le_0"] == 0
    same = study.paired_bootstrap(a, a, resamples=100)
    assert same["observed"] == same["low"] == same["high"] == 0 and same["p_le_0"] == 1


def test_random_context_file_replaces_each_context_by_as_many_foreign_snippets(tmp_path):
    rows = [{"tokens": [f"s{i}", "word"], "tags": ["B-person", "O"],
             "context": [f"snippet {i} {j}" for j in range(i % 3)]} for i in range(12)]
    data = tmp_path / "data"
    data.mkdir()
    write_clner(rows, data / "dev.context.txt")
    args = study.parse_args(["--data_dir", str(data), "--output_dir", str(tmp_path / "out"), "--extra", ""])
    path = study.random_context_file(args)
    out = read_clner(path)
    original = read_clner(data / "dev.context.txt")
    assert [r["tokens"] for r in out] == [r["tokens"] for r in original]
    assert [r["tags"] for r in out] == [r["tags"] for r in original]
    everyone = {s for r in original for s in r["context"]}
    for new, old in zip(out, original):
        assert len(new["context"]) == len(old["context"])
        assert set(new["context"]) <= everyone and not set(new["context"]) & set(old["context"])
    assert study.random_context_file(args) == path  # made once, then reused


def test_summary_pairs_runs_by_seed(tmp_path):
    """Paired differences use the same seed's runs; a method missing a seed drops that seed from the pair."""
    def run(method, seed, sent, ctx):
        res = {"sentence_f1": sent, "context_f1": ctx, "sentence_precision": 0, "sentence_recall": 0,
               "context_precision": 0, "context_recall": 0}
        return {"method": method, "seed": seed, "best": res, "last": res, "curve": [], "extra": {}, "wall_s": 1,
                "best_epoch": 3}

    runs = [run("sentence", 1, 0.50, 0.40), run("sentence", 2, 0.52, 0.41), run("sentence", 3, 0.49, 0.40),
            run("cl-kl", 1, 0.51, 0.55), run("cl-kl", 2, 0.55, 0.56)]
    args = study.parse_args(["--output_dir", str(tmp_path), "--extra", ""])
    summary = study.summarise(args, runs)
    (kl_vs_sent,) = [c for c in summary["comparisons"] if (c["a"], c["view_a"], c["b"]) == ("cl-kl", "sentence",
                                                                                            "sentence")]
    assert kl_vs_sent["seeds"]["values"] == pytest.approx([1.0, 3.0])
    assert summary["table"]["sentence"]["best_sentence_f1"]["mean"] == pytest.approx(50.333333)


def test_bootstrap_pools_only_the_seeds_both_sides_have(tmp_path):
    """cl-kl has seeds 1-2, sentence seeds 1-3: the pooled bootstrap compares seeds 1-2 of each, not 2 vs 3 runs."""
    rng = random.Random(5)
    gold = [random_tags(rng, 6) for _ in range(30)]
    res = {"sentence_f1": 0.5, "context_f1": 0.5, "sentence_precision": 0, "sentence_recall": 0,
           "context_precision": 0, "context_recall": 0}
    runs = []
    for method, seeds in (("sentence", (1, 2, 3)), ("cl-kl", (1, 2))):
        for seed in seeds:
            folder = tmp_path / f"{method}-seed{seed}"
            folder.mkdir()
            # sentence seed 3 is perfect: pooled over all its seeds it would look better than over seeds 1-2
            preds = [g[:] if (method, seed) == ("sentence", 3) else random_tags(rng, 6) for g in gold]
            for view in ("sentence", "context"):
                write_predictions(folder / f"predictions_{view}.txt", list(zip(gold, preds)))
            runs.append({"method": method, "seed": seed, "best": res, "last": res, "curve": [], "extra": {},
                         "wall_s": 1, "best_epoch": 3})
    args = study.parse_args(["--output_dir", str(tmp_path), "--extra", "", "--bootstrap", "50"])
    (entry,) = [c for c in study.summarise(args, runs)["comparisons"]
                if (c["a"], c["view_a"], c["b"]) == ("cl-kl", "sentence", "sentence")]
    assert entry["seeds"]["seeds"] == [1, 2]

    def f1(method):
        c = sum(study.sentence_counts(tmp_path / f"{method}-seed{s}" / "predictions_sentence.txt") for s in (1, 2))
        return 200 * c[:, 0].sum() / (c[:, 1].sum() + c[:, 2].sum())

    assert entry["bootstrap"]["observed"] == pytest.approx(f1("cl-kl") - f1("sentence"))
