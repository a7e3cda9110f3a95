"""The WNUT-17 study's statistics and inputs (benchmarks/wnut17.py), against peers: Student-t intervals against
scipy, entity counts and pooled F1 against seqeval, the paired bootstrap against its definition, and the
random-context file against the file it is made from."""

import importlib.util
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest

from clner.data.io import read_clner, write_clner
from conftest import REPO_ROOT

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
    rows = [
        {"tokens": [f"s{i}", "word"], "tags": ["B-person", "O"], "context": [f"snippet {i} {j}" for j in range(i % 3)]}
        for i in range(12)
    ]
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
        res = {
            "sentence_f1": sent,
            "context_f1": ctx,
            "sentence_precision": 0,
            "sentence_recall": 0,
            "context_precision": 0,
            "context_recall": 0,
        }
        return {
            "method": method,
            "seed": seed,
            "best": res,
            "last": res,
            "curve": [],
            "extra": {},
            "wall_s": 1,
            "best_epoch": 3,
        }

    runs = [
        run("sentence", 1, 0.50, 0.40),
        run("sentence", 2, 0.52, 0.41),
        run("sentence", 3, 0.49, 0.40),
        run("cl-kl", 1, 0.51, 0.55),
        run("cl-kl", 2, 0.55, 0.56),
    ]
    args = study.parse_args(["--output_dir", str(tmp_path), "--extra", ""])
    summary = study.summarise(args, runs)
    (kl_vs_sent,) = [
        c for c in summary["comparisons"] if (c["a"], c["view_a"], c["b"]) == ("cl-kl", "sentence", "sentence")
    ]
    assert kl_vs_sent["seeds"]["values"] == pytest.approx([1.0, 3.0])
    assert summary["table"]["sentence"]["best_sentence_f1"]["mean"] == pytest.approx(50.333333)


def test_bootstrap_pools_only_the_seeds_both_sides_have(tmp_path):
    """cl-kl has seeds 1-2, sentence seeds 1-3: the pooled bootstrap compares seeds 1-2 of each, not 2 vs 3 runs."""
    rng = random.Random(5)
    gold = [random_tags(rng, 6) for _ in range(30)]
    res = {
        "sentence_f1": 0.5,
        "context_f1": 0.5,
        "sentence_precision": 0,
        "sentence_recall": 0,
        "context_precision": 0,
        "context_recall": 0,
    }
    runs = []
    for method, seeds in (("sentence", (1, 2, 3)), ("cl-kl", (1, 2))):
        for seed in seeds:
            folder = tmp_path / f"{method}-seed{seed}"
            folder.mkdir()
            # sentence seed 3 is perfect: pooled over all its seeds it would look better than over seeds 1-2
            preds = [g[:] if (method, seed) == ("sentence", 3) else random_tags(rng, 6) for g in gold]
            for view in ("sentence", "context"):
                write_predictions(folder / f"predictions_{view}.txt", list(zip(gold, preds)))
            runs.append(
                {
                    "method": method,
                    "seed": seed,
                    "best": res,
                    "last": res,
                    "curve": [],
                    "extra": {},
                    "wall_s": 1,
                    "best_epoch": 3,
                }
            )
    args = study.parse_args(["--output_dir", str(tmp_path), "--extra", "", "--bootstrap", "50"])
    (entry,) = [
        c
        for c in study.summarise(args, runs)["comparisons"]
        if (c["a"], c["view_a"], c["b"]) == ("cl-kl", "sentence", "sentence")
    ]
    assert entry["seeds"]["seeds"] == [1, 2]

    def f1(method):
        c = sum(study.sentence_counts(tmp_path / f"{method}-seed{s}" / "predictions_sentence.txt") for s in (1, 2))
        return 200 * c[:, 0].sum() / (c[:, 1].sum() + c[:, 2].sum())

    assert entry["bootstrap"]["observed"] == pytest.approx(f1("cl-kl") - f1("sentence"))


def test_run_details_split_by_gold_in_context_and_type_against_seqeval(tmp_path):
    """The per-run breakdowns: the gold-in-context split and the per-type F1 equal seqeval's on the same subsets,
    and the per-sentence counts rebuild the run's F1."""
    from seqeval.metrics import classification_report, f1_score
    from seqeval.metrics.sequence_labeling import get_entities

    rng = random.Random(3)
    rows, sentences = [], []
    for i in range(40):
        tokens = [f"t{i}x{j}" for j in range(7)]
        gold = random_tags(rng, 7)
        entities = get_entities(gold)
        # a third of the contexts carry one of the sentence's gold entities (in other case), the rest do not
        context = (
            [" ".join(tokens[entities[0][1] : entities[0][2] + 1]).upper() + " is here"]
            if entities and i % 3 == 0
            else ["nothing relevant"]
        )
        rows.append({"tokens": tokens, "tags": gold, "context": context})
        sentences.append((gold, random_tags(rng, 7)))
    dev = tmp_path / "dev.context.txt"
    write_clner(rows, dev)
    run = tmp_path / "cl-kl-seed1"
    run.mkdir()
    for view in ("sentence", "context"):
        write_predictions(run / f"predictions_{view}.txt", sentences)
    details = study.run_details(run, dev)
    flags = study.gold_in_context(read_clner(dev))
    assert 0 < sum(flags) < len(flags)
    assert flags == [row["context"] != ["nothing relevant"] for row in rows]
    for part, keep in (("yes", True), ("no", False)):
        sub = [s for s, f in zip(sentences, flags) if f == keep]
        expected = f1_score([g for g, _ in sub], [p for _, p in sub], zero_division=0)
        assert details["gold_in_context"]["sentence"][part]["f1"] == pytest.approx(expected)
        assert details["gold_in_context"]["sentence"][part]["sentences"] == len(sub)
    report = classification_report(
        [g for g, _ in sentences], [p for _, p in sentences], output_dict=True, zero_division=0
    )
    for label in ("person", "location", "product"):
        assert details["per_type"]["context"][label]["f1"] == pytest.approx(report[label]["f1-score"])
    counts = np.array(details["per_sentence"]["sentence"])
    assert 200 * counts[:, 0].sum() / (counts[:, 1].sum() + counts[:, 2].sum()) == pytest.approx(
        100 * f1_score([g for g, _ in sentences], [p for _, p in sentences])
    )


@pytest.mark.parametrize(
    "seeds, bootstrap, expected",
    [
        ([2.0, 2.5, 3.0], (1.0, 4.0), "resolved: a gain"),
        ([-0.4, 0.2, 0.1, -0.1, 0.3], (-1.5, 1.2), "resolved: no effect"),
        ([-3.0, 1.0, 4.0], (-1.0, 3.0), "not resolved (both intervals cover 0"),
        ([-3.0, 1.0, 4.0], (0.5, 3.0), "not resolved (only the bootstrap interval excludes 0"),
        ([2.0, 2.5, 3.0], (-3.0, -1.0), "not resolved (the intervals exclude 0 on opposite sides"),
        ([1.5, 2.0, 2.5], None, "not resolved (no bootstrap"),
        ([2.0], (1.0, 3.0), "not resolved (n = 1 seed"),
    ],
)
def test_claim_resolution_needs_the_seed_and_bootstrap_intervals_to_agree(seeds, bootstrap, expected):
    entry = {"seeds": study.t_interval(seeds)}
    if bootstrap is not None:
        entry["bootstrap"] = {"observed": 0, "low": bootstrap[0], "high": bootstrap[1]}
    assert expected in study.resolution(entry)


def committed_arm(tmp_path):
    """A sentence-only and a CL-KL run of one arm (`--train_subset with_context --epochs 10`, seed 1), committed as
    JSON summaries with their per-sentence counts and each run's CPU; the sentence run's folder is gone (another
    machine's). The arm's arguments, its runs as loaded, their summary and the arm's block of the results page."""
    rng = random.Random(9)
    gold = [random_tags(rng, 5) for _ in range(25)]
    results = tmp_path / "results"
    results.mkdir()
    for method, seed in (("sentence", 1), ("cl-kl", 1)):
        folder = tmp_path / "out" / f"{method}-seed{seed}"
        folder.mkdir(parents=True)
        preds = [random_tags(rng, 5) for _ in gold]
        for view in ("sentence", "context"):
            write_predictions(folder / f"predictions_{view}.txt", list(zip(gold, preds)))
        counts = study.sentence_counts(folder / "predictions_sentence.txt")
        f1 = study.f1_of(counts)["f1"]
        res = {f"{v}_{m}": f1 for v in ("sentence", "context") for m in ("f1", "precision", "recall")}
        res["f1"] = f1
        record = {
            "method": method,
            "seed": seed,
            "best": res,
            "last": res,
            "curve": [],
            "extra": {},
            "wall_s": 1,
            "best_epoch": 2,
            "command": "python run_ner_cl.py",
            "hardware": {"cpu": f"CPU of {method}"},
            "per_sentence": {v: counts.astype(int).tolist() for v in ("sentence", "context")},
        }
        (results / f"{method}-seed{seed}.json").write_text(__import__("json").dumps(record))
        if method == "sentence":  # the other run's folder is gone
            import shutil

            shutil.rmtree(folder)
    args = study.parse_args(
        [
            "--output_dir",
            str(tmp_path / "out"),
            "--results_dir",
            str(results),
            "--extra",
            "",
            "--bootstrap",
            "30",
            "--train_subset",
            "with_context",
            "--seeds",
            "1",
            "--epochs",
            "10",
            "--max_seq_length",
            "128",
        ]
    )
    runs = study.load(tmp_path / "out", results_dir=args.results_dir)
    summary = study.summarise(args, runs)
    text = study.markdown(
        args, summary, runs, [], {"cpu": "x", "cpus": 2, "python": "3", "torch": "t", "transformers": "t"}
    )
    return args, runs, summary, text


def test_report_is_rebuilt_from_the_committed_summaries_alone(tmp_path):
    """A run whose folder is gone still counts: its committed JSON, with the per-sentence counts, gives the table
    and the paired bootstrap."""
    args, runs, summary, _ = committed_arm(tmp_path)
    assert sorted(r["method"] for r in runs) == ["cl-kl", "sentence"]
    (entry,) = [c for c in summary["comparisons"] if c["name"] == "CL-KL vs w/o context, sentence view"]
    assert "bootstrap" in entry and entry["seeds"]["n"] == 1


def test_each_arm_writes_its_own_block_of_the_results_page(tmp_path):
    """An arm's block is replaced when written again, never appended twice; another schedule is another arm, with
    its own block and plot; the full study keeps the page's own markers."""
    args, _, _, text = committed_arm(tmp_path)
    doc = tmp_path / "results.md"
    doc.write_text("# page\n\n<!-- BEGIN wnut17.py AUTO -->\nfull arm\n<!-- END wnut17.py AUTO -->\n\n## tail\n")
    study.write_doc(doc, text, *study.markers(args))
    study.write_doc(
        doc, text.replace("finished runs", "finished runs, again"), *study.markers(args)
    )  # replaced, not appended twice
    page = doc.read_text()
    assert "full arm" in page and page.count("<!-- BEGIN wnut17.py AUTO with_context, 10 epochs -->") == 1
    assert re.search(r"\| G2: .* \| CL-KL vs w/o context, sentence view \| .* \| not resolved \(n = 1 seed", page)
    assert "finished runs, again" in page and "wnut17_coverage_10ep_f1.png" in page
    shorter = study.parse_args(
        [
            "--output_dir",
            str(tmp_path / "out"),
            "--extra",
            "",
            "--train_subset",
            "with_context",
            "--epochs",
            "6",
            "--max_seq_length",
            "128",
        ]
    )  # another schedule is another arm: its own block and plot
    study.write_doc(doc, text.replace("finished runs", "six-epoch runs"), *study.markers(shorter))
    page = doc.read_text()
    assert (
        "finished runs, again" in page
        and "six-epoch runs" in page
        and Path(shorter.plot).name == "wnut17_coverage_6ep_f1.png"
    )
    full = study.parse_args(["--extra", ""])
    assert study.markers(full) == (study.BEGIN, study.END) and Path(full.plot).name == "wnut17_f1.png"


def test_the_results_page_names_each_runs_cpu_and_the_command_that_rebuilds_it(tmp_path):
    args, _, _, text = committed_arm(tmp_path)
    doc = tmp_path / "results.md"
    doc.write_text("# page\n\n<!-- BEGIN wnut17.py AUTO -->\nfull arm\n<!-- END wnut17.py AUTO -->\n\n## tail\n")
    study.write_doc(doc, text, *study.markers(args))
    page = doc.read_text()
    # runs from two CPUs: each wall time names its CPU by a letter that the hardware line resolves
    assert re.search(r"\| sentence \| 1 \| .* \| 0\.0 min \(B\) \|\n\| cl-kl \| 1 \| .* \| 0\.0 min \(A\) \|", page)
    assert "Hardware: A: CPU of cl-kl; B: CPU of sentence (as each run recorded it)" in page
    assert "--train_subset with_context --epochs 10 --max_seq_length 128" in page  # the command that rebuilds it


def test_pooled_counts_need_every_seed_and_the_arm_is_read_from_the_command(tmp_path):
    """A seed without stored counts or predictions makes no pooled bootstrap (it would pair different seed sets);
    a summary's arm comes from what it recorded or its command, and another arm's summary is left out."""
    counts = [[1, 2, 2], [0, 1, 1]]
    runs = [
        {"method": "cl-kl", "seed": 1, "per_sentence": {"context": counts}, "random_context_per_sentence": counts},
        {"method": "cl-kl", "seed": 2, "per_sentence": {"context": counts}},
    ]
    assert study.pooled_counts(tmp_path, runs, "cl-kl", "context").tolist() == [[2, 4, 4], [0, 2, 2]]
    assert study.pooled_counts(tmp_path, runs, "cl-kl", "context", "dev-random-context") is None
    assert study.pooled_counts(tmp_path, runs, "cl-kl", "context", "dev-random-context", seeds={1}).tolist() == counts
    old = {
        "command": "python run_ner_cl.py --train_file out/train.with_context.txt --max_seq_length 128 "
        "--num_train_epochs 6"
    }
    assert study.run_settings(old) == {"train_subset": "with_context", "epochs": 6.0, "max_seq_length": 128}
    results = tmp_path / "results"
    results.mkdir()
    for name, record in (("sentence-seed1", old), ("sentence-seed2", {**old, "max_seq_length": 256})):
        (results / f"{name}.json").write_text(
            __import__("json").dumps({**record, "method": "sentence", "seed": int(name[-1])})
        )
    args = study.parse_args(
        [
            "--output_dir",
            str(tmp_path / "out"),
            "--extra",
            "",
            "--train_subset",
            "with_context",
            "--epochs",
            "6",
            "--max_seq_length",
            "128",
        ]
    )
    assert [r["seed"] for r in study.load(tmp_path / "out", results_dir=str(results), args=args)] == [1]


def test_sweep_summaries_are_kept_apart_from_the_runs(tmp_path):
    """A learning-rate sweep's committed summaries (`<results_dir>/sweep/`) are reported as the sweep, from the JSONs
    alone, and never counted as runs of the study (a sweep point is a `sentence` run with seed 1 too)."""
    import json

    results, out = tmp_path / "results", tmp_path / "out"
    (results / "sweep").mkdir(parents=True)
    res = {f"{v}_{m}": 0.5 for v in ("sentence", "context") for m in ("f1", "precision", "recall")}
    record = {
        "method": "sentence",
        "seed": 1,
        "best": res,
        "last": res,
        "curve": [],
        "extra": {},
        "wall_s": 60,
        "best_epoch": 3,
        "command": "python run_ner_cl.py",
        "learning_rate": 2e-4,
        "head_learning_rate": 5e-3,
    }
    defaults = study.parse_args(["--extra", ""])
    record.update(train_subset=defaults.train_subset, epochs=defaults.epochs, max_seq_length=defaults.max_seq_length)
    (results / "sentence-seed1.json").write_text(json.dumps(record))
    for lr in (1e-4, 4e-4):
        (results / "sweep" / f"lr{lr:g}-head0.005.json").write_text(json.dumps({**record, "learning_rate": lr}))
    summary = study.main(
        [
            "--report_only",
            "--no_doc",
            "--output_dir",
            str(out),
            "--results_dir",
            str(results),
            "--methods",
            "sentence",
            "--seeds",
            "1",
            "--extra",
            "",
            "--bootstrap",
            "0",
        ]
    )
    saved = json.loads((out / "summary.json").read_text())
    assert [r["learning_rate"] for r in saved["runs"]] == [2e-4]
    assert sorted(r["learning_rate"] for r in saved["sweep"]) == [1e-4, 4e-4]
    assert list(summary["table"]) == ["sentence"]
    sweep_args = study.parse_args(["--output_dir", str(out), "--results_dir", str(results), "--extra", ""])
    lines = study.markdown(
        sweep_args,
        summary,
        saved["runs"],
        saved["sweep"],
        {"cpu": "x", "cpus": 2, "python": "3", "torch": "t", "transformers": "t"},
    )
    assert re.search(r"\| 0\.0001 \| 0\.005 \| 3 \| 50\.00 \| 50\.00 \| 1\.0 min \|\n\| 0\.0004 \|", lines)


def test_replica_block_pairs_the_same_method_and_seed_across_machines():
    """Runs of the same method and seed from another machine are shown beside this arm's, with the per-method mean
    difference and its t-interval (checked against the definition); a replica without a counterpart is left out."""

    def run(method, seed, s, c, cpu, epoch=5):
        best = {"sentence_f1": s / 100, "context_f1": c / 100}
        return {"method": method, "seed": seed, "best": best, "best_epoch": epoch, "hardware": {"cpu": cpu}}

    ours = [
        run("sentence", 1, 58.0, 57.0, "Intel X (AVX512)"),
        run("sentence", 2, 59.0, 58.5, "Intel X (AVX512)"),
        run("cl-kl", 1, 60.0, 61.0, "Intel X (AVX512)"),
    ]
    theirs = [
        run("sentence", 1, 57.5, 57.5, "AMD Y (AVX2)", 4),
        run("sentence", 2, 60.0, 58.0, "AMD Y (AVX2)"),
        run("cl-kl", 3, 50.0, 50.0, "AMD Y (AVX2)"),
    ]
    text = "\n".join(study.replica_lines(ours, theirs))
    assert "(Intel X)" in text and "made on AMD Y, with identical flags" in text
    assert "| sentence | 1 | 5 / 4 | 58.00 / 57.50 | 57.00 / 57.50 | +0.50 / -0.50 |" in text
    expected = study.t_interval([0.5, -1.0])
    row = re.search(r"\| sentence \| 2 \| (\S+ \[\S+, \S+\]) \| (\S+ \[\S+, \S+\]) \| (\S+) \|", text)
    assert row.group(1) == study.fmt_interval(expected) and float(row.group(3)) == pytest.approx(
        (0.5 + 0.5 + 1 + 0.5) / 4, abs=0.006
    )
    assert "| cl-kl |" not in text  # cl-kl seed 3 has no run here
    assert study.replica_lines(ours, []) == []


def test_the_report_names_the_software_the_runs_recorded():
    """A report rebuilt elsewhere from the committed runs names their versions, not the reporting machine's."""
    here = {"python": "3.99", "torch": "9.9", "transformers": "9.99"}
    runs = [
        {"hardware": {"python": "3.11.7", "torch": "2.13.0+cpu", "transformers": "5.24.0"}},
        {"hardware": {"python": "3.11.7", "torch": "2.13.0+cpu", "transformers": "5.25.0"}},
    ]
    assert study.recorded_software(runs, here) == "Python 3.11.7, torch 2.13.0+cpu, transformers 5.24.0 / 5.25.0"
    assert study.recorded_software([{}], here) == "Python 3.99, torch 9.9, transformers 9.99"


# ------------------------------------------------------------------------------------------- the --cv_folds arm
def cv_dev(tmp_path, n=23):
    rng = random.Random(1)
    rows = [
        {
            "tokens": [f"s{i}_{j}" for j in range(4)],
            "tags": random_tags(rng, 4),
            "context": [f"snippet {i} {j}" for j in range(1 + i % 2)],
        }
        for i in range(n)
    ]
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    write_clner(rows, data / "dev.context.txt")
    return data, read_clner(data / "dev.context.txt")


def cv_args(tmp_path, data, *more):
    return study.parse_args(
        ["--data_dir", str(data), "--output_dir", str(tmp_path / "out"), "--extra", "", "--cv_folds", "5", *more]
    )


@pytest.mark.parametrize("n,k", [(1009, 5), (23, 5), (10, 2), (7, 7)])
def test_fold_split_is_a_deterministic_balanced_partition(n, k):
    folds = study.fold_split(n, k)
    assert folds == study.fold_split(n, k)  # deterministic
    assert sorted(i for f in folds for i in f) == list(range(n))  # every sentence in exactly one fold
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert all(f == sorted(f) for f in folds)
    if n > k:
        assert study.fold_split(n, k, seed=1) != folds  # the seed sets the split
    with pytest.raises(ValueError):
        study.fold_split(n, 1)


def test_cv_fold_files_hold_the_other_folds_and_the_fold(tmp_path):
    data, dev = cv_dev(tmp_path)
    args = cv_args(tmp_path, data)
    paths = study.cv_fold_files(args)
    folds = study.fold_split(len(dev), 5)
    assert len(paths) == 5
    for f, (train, evaluated) in enumerate(paths):
        assert train.parent == evaluated.parent and train.is_relative_to(tmp_path / "out")
        assert read_clner(evaluated) == [dev[i] for i in folds[f]]
        assert read_clner(train) == [r for i, r in enumerate(dev) if i not in set(folds[f])]
    assert not list(paths[0][0].parent.glob("*.tmp"))  # written atomically: no temporary file left
    cli = study.train_args(args, "cl-kl", 1, tmp_path / "run", 2e-4, 5e-3, fold=2)
    assert cli[cli.index("--train_file") + 1] == str(paths[2][0])
    assert cli[cli.index("--validation_file") + 1] == cli[cli.index("--test_file") + 1] == str(paths[2][1])
    assert "--load_best_model_at_end" not in cli and "--metric_for_best_model" not in cli
    assert "--load_best_model_at_end" in study.train_args(args, "cl-kl", 1, tmp_path / "run", 2e-4, 5e-3)
    rnd = read_clner(study.cv_random_context_file(args, 2))
    assert [r["tokens"] for r in rnd] == [dev[i]["tokens"] for i in folds[2]]


def cv_run(method, seed, fold, folds, dev, rng, k=5, rate=0.6):
    """A synthetic per-run summary of the CV arm: predictions that keep each gold entity with probability `rate`."""
    from seqeval.metrics.sequence_labeling import get_entities

    idx = folds[fold]
    best, per_sentence, entities = {}, {}, {}
    for view in study.VIEWS:
        ents = []
        for i in idx:
            gold = get_entities(dev[i]["tags"])
            ents.append([[t, a, b] for t, a, b in gold if rng.random() < rate])
        entities[view] = ents
        per_sentence[view] = [
            [len(e), len(e), len(get_entities(dev[i]["tags"]))] for e, i in zip(ents, idx)
        ]  # kept entities are all correct
        c = np.array(per_sentence[view], dtype=float).sum(0)
        p, r = (c[0] / c[1] if c[1] else 0), (c[0] / c[2] if c[2] else 0)
        best.update({f"{view}_f1": 2 * p * r / (p + r) if p + r else 0, f"{view}_precision": p, f"{view}_recall": r})
    run = {
        "method": method,
        "seed": seed,
        "fold": fold,
        "cv_folds": k,
        "cv_seed": 0,
        "fold_sentences": idx,
        "best": best,
        "last": None,
        "curve": [],
        "extra": {},
        "wall_s": 60,
        "best_epoch": 10,
        "per_sentence": per_sentence,
        "pred_entities": entities,
        "command": "python run_ner_cl.py --num_train_epochs 10 --max_seq_length 256",
        "epochs": 10,
        "max_seq_length": 256,
        "train_subset": "all",
    }
    if method in study.RANDOM_CONTEXT_METHODS:
        run["random_context_per_sentence"] = [[0, 0, g] for _, _, g in per_sentence["context"]]
        run["extra"]["dev-random-context"] = {"context_f1": 0.0}
    return run


def test_cv_pooling_scores_every_dev_sentence_once(tmp_path):
    from clner.metrics import surface_form_metrics

    _, dev = cv_dev(tmp_path)
    folds = study.fold_split(len(dev), 5)
    rng = random.Random(0)
    runs = [cv_run("sentence", 1, f, folds, dev, rng) for f in range(5)]
    pooled = study.cv_pooled(runs, dev)
    entry = pooled[("sentence", 1)]
    for view in study.VIEWS:
        counts = entry[view]["counts"]
        assert counts.shape == (len(dev), 3)
        for r in runs:  # each sentence carries its own fold's counts
            for i, c in zip(r["fold_sentences"], r["per_sentence"][view]):
                assert list(counts[i]) == c
        preds = [None] * len(dev)
        for r in runs:
            for i, e in zip(r["fold_sentences"], r["pred_entities"][view]):
                preds[i] = study.tags_of(e, len(dev[i]["tokens"]))
        expected = surface_form_metrics([d["tokens"] for d in dev], [d["tags"] for d in dev], preds)
        assert entry[view]["surface"] == pytest.approx(expected)
        assert entry[view]["f1"] == pytest.approx(study.f1_of(counts)["f1"])
    assert "random" not in entry  # the sentence baseline is not scored with random contexts
    kl = study.cv_pooled([cv_run("cl-kl", 1, f, folds, dev, rng) for f in range(5)], dev)[("cl-kl", 1)]
    assert kl["random"]["counts"].shape == (len(dev), 3) and kl["random"]["f1"] == 0
    assert ("sentence", 1) not in study.cv_pooled(runs[:4], dev)  # a missing fold: no pooled scoring
    overlapping = [dict(runs[0], fold=4)] + runs[1:4] + [dict(runs[4], fold_sentences=runs[0]["fold_sentences"])]
    assert ("sentence", 1) not in study.cv_pooled(overlapping, dev)


def test_cv_report_block_from_synthetic_run_summaries(tmp_path):
    data, dev = cv_dev(tmp_path, n=60)
    folds = study.fold_split(len(dev), 5)
    rng = random.Random(3)
    rates = {"sentence": 0.4, "context": 0.8, "cl-kl": 0.7, "both-nocl": 0.5}
    runs = [
        cv_run(m, s, f, folds, dev, rng, rate=rate) for m, rate in rates.items() for s in (1, 2, 3) for f in range(5)
    ]
    results = tmp_path / "results"
    results.mkdir()
    for r in runs:
        (results / f"{r['method']}-seed{r['seed']}-fold{r['fold']}.json").write_text(study.json.dumps(r))
    md = tmp_path / "results.md"
    md.write_text("# page\n\nhand-written text\n")
    argv = ["--data_dir", str(data), "--output_dir", str(tmp_path / "out"), "--extra", ""]
    argv += ["--cv_folds", "5", "--epochs", "10", "--results_dir", str(results), "--results_md", str(md)]
    argv += ["--methods", *rates, "--seeds", "1", "2", "3", "--report_only", "--bootstrap", "200"]
    summary = study.main(argv)
    names = {c["name"]: c for c in summary["comparisons"]}
    g1 = names["w/ context vs w/o context, each in its own view"]
    assert g1["seeds"]["n"] == 3 and g1["folds"]["n"] == 15 and g1["surface"]["n"] == 3
    assert g1["seeds"]["mean"] > 0 and "bootstrap" in g1
    assert set(names) == {n for _, _, ns in study.CLAIMS for n in ns}  # G1, G2 and G4 only
    text = md.read_text()
    begin, end = study.markers(study.parse_args(argv))
    assert "hand-written text" in text and begin in text and end in text
    assert "dev 5-fold CV, 10 epochs, 256 sub-tokens" in begin
    block = text.split(begin)[1].split(end)[0]
    assert "Model selection never sees the evaluated fold" in block and "no `--load_best_model_at_end`" in block
    assert "| G1: " in block and "| G2: " in block and "| G4: " in block
    assert study.resolution(g1) in block
    assert "### Random contexts" in block and "Not run" not in block
    assert block.count("| sentence | ") == 15  # one per-run line per fold and seed
    assert "--cv_folds 5" in block
    # the CV runs are not an arm of the full-data study, nor the other way round
    assert study.load(None, results_dir=str(results), args=study.parse_args(argv[:6])) == []


def test_an_arm_at_another_sequence_budget_is_another_block():
    """The 256-sub-token coverage arm gets its own block and plot; the committed arms keep their names."""
    from types import SimpleNamespace

    def arm(subset, epochs, length):
        return SimpleNamespace(train_subset=subset, epochs=epochs, max_seq_length=length, cv_folds=0)

    assert study.arm_key(arm("with_context", 10, 128)) == "with_context, 10 epochs"
    assert study.arm_key(arm("with_context", 10, 256)) == "with_context, 10 epochs, 256 sub-tokens"
    assert study.default_plot_name(arm("with_context", 10, 256)) == "wnut17_coverage_10ep_256tok_f1.png"
    assert study.default_plot_name(arm("with_context", 10, 128)) == "wnut17_coverage_10ep_f1.png"
    assert study.arm_key(arm("all", study.FULL_ARM_EPOCHS, 256)) is None
