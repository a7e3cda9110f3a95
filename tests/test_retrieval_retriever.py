"""Context retrieval (`clner.retrieval.retriever`): the retry / rate-limit / timeout machinery, the cache and its keys,
the kill-and-resume guarantee, worker processes, re-ranking and packing to a budget, existing contexts, the checked
configuration, outputs, and BM25 recall@10 of the released WNUT-17 dev contexts."""

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

datasets = pytest.importorskip("datasets")
import signal

import pytest

from clner import errors
from clner.data import io as data_io
from clner.retrieval import backends
from clner.retrieval import retriever as retrieval_module
from clner.retrieval.retriever import (
    ContextRetriever,
    RetrievalCache,
    RetrievalConfig,
    check_output,
    retrieve_contexts,
    save_output,
    self_retrieval_recall,
)
from conftest import REPO_ROOT, RETRIEVAL_FIXTURES, FakeSearch, RatelimitException, fast_config, rows_ds


# --------------------------------------------------------------------------- retries, failures, rate limit
def test_rate_limits_timeouts_backoff_and_failures_report(tmp_path, monkeypatch):
    sleeps = []
    monkeypatch.setattr(retrieval_module, "_sleep", sleeps.append)
    queries = ("alpha one", "beta two", "gamma three", "delta four")
    answers = {q: [f"{q} result {i}" for i in range(3)] for q in queries}
    fake = FakeSearch(
        answers,
        script={
            "alpha one": [RatelimitException("202 Ratelimit"), RatelimitException("202 Ratelimit"), None],
            "beta two": [TimeoutError("read timed out")] * 10,
            "delta four": [ValueError("bad response")],  # not transient: fails at once
        },
    )
    ds = rows_ds("alpha one", "beta two", "gamma three", "delta four")
    cfg = fast_config(max_retries=3, backoff=0.01, jitter=0.5)
    res = retrieve_contexts(ds, backends.CallableBackend(fake, name="fake"), cfg, cache_path=tmp_path / "c.sqlite")

    assert fake.calls.count("alpha one") == 3 and fake.calls.count("beta two") == 4
    assert fake.calls.count("gamma three") == 1 and fake.calls.count("delta four") == 1
    # exponential backoff with jitter: attempt a waits backoff * 2**a * (1 + jitter * u), u in [0, 1)
    alpha_sleeps, beta_sleeps = sleeps[:2], sleeps[2:5]
    for waits in (alpha_sleeps, beta_sleeps):
        for a, wait in enumerate(waits):
            assert 0.01 * 2**a <= wait < 0.01 * 2**a * 1.5
    assert len(sleeps) == 5
    contexts = res.dataset["context"]
    assert contexts[0] == answers["alpha one"] and contexts[2] == answers["gamma three"]
    assert contexts[1] == [] and contexts[3] == []
    assert all(math.isnan(s) for s in res.dataset["context_scores"][0])
    failures = {f["index"]: f for f in res.failures}
    assert set(failures) == {1, 3}
    assert failures[1]["attempts"] == 4 and "TimeoutError" in failures[1]["error"]
    assert failures[1]["query"] == "beta two"
    assert failures[3]["attempts"] == 1 and "bad response" in failures[3]["error"]
    assert res.provenance["failures"] == 2 and res.provenance["rows_with_context"] == 2

    # the re-run retries only the failed rows (now healthy); finished ones come from the cache
    healthy = FakeSearch(answers)
    again = retrieve_contexts(
        ds, backends.CallableBackend(healthy, name="fake"), cfg, cache_path=tmp_path / "c.sqlite"
    )
    assert sorted(healthy.calls) == ["beta two", "delta four"]
    assert again.failures == [] and all(again.dataset["context"])


def test_consecutive_failures_stop_the_run_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(retrieval_module, "_sleep", lambda s: None)
    fake = FakeSearch({}, script={q: [ConnectionError("unreachable")] * 10 for q in ("a", "b", "c")})
    config = fast_config(max_retries=1, max_consecutive_failures=2)
    retriever = ContextRetriever(backends.CallableBackend(fake, name="fake"), config, cache_path=tmp_path / "c.sqlite")
    with pytest.raises(errors.RetrievalError, match="2 queries failed in a row.*ConnectionError"):
        retriever.retrieve_batch(["a", "b", "c"])
    assert fake.calls == ["a", "a", "b", "b"]


def test_rate_limit_spaces_queries(tmp_path, monkeypatch):
    """Queries are booked `min_interval` apart. Machine-independent: the limiter's clock and sleep are a virtual
    clock, so the gaps are exact whatever the load on the machine (a real clock under load made this flaky)."""
    clock = [1000.0]
    monkeypatch.setattr(retrieval_module, "_now", lambda: clock[0])
    monkeypatch.setattr(retrieval_module, "_sleep", lambda s: clock.__setitem__(0, clock[0] + max(s, 0.0)))
    stamps = []
    backend = backends.CallableBackend(lambda q, k: stamps.append(clock[0]) or [q], name="clock")
    retriever = ContextRetriever(backend, fast_config(min_interval=0.05, jitter=0.0), cache_path=tmp_path / "c.sqlite")
    retriever.retrieve_batch([f"query {i}" for i in range(4)])
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert len(stamps) == 4 and gaps == pytest.approx([0.05] * 3, abs=1e-9)
    clock[0] += 10.0  # after a long pause the next query goes at once
    before = clock[0]
    retriever.retrieve_batch(["query late"])
    assert stamps[-1] == before


def test_a_hanging_search_call_times_out_as_a_failure(tmp_path, monkeypatch):
    """A search function that never answers is given up on after `search_timeout` seconds: the query is a failure
    (not retried: the hung call still holds its thread), the run goes on to the next query."""
    import threading

    monkeypatch.setattr(retrieval_module, "_sleep", lambda s: None)
    release = threading.Event()

    def search(query, k):
        if query == "hangs forever":
            release.wait(30)  # "forever", released when the test ends
        return [f"{query} snippet"]

    calls = []
    backend = backends.CallableBackend(lambda q, k: calls.append(q) or search(q, k), name="hanging")
    started = time.monotonic()
    try:
        res = retrieve_contexts(
            rows_ds("hangs forever", "answers at once"),
            backend,
            fast_config(search_timeout=0.3, max_retries=3),
            cache_path=tmp_path / "c.sqlite",
        )
    finally:
        release.set()
    assert time.monotonic() - started < 10
    assert res.dataset["context"] == [[], ["answers at once snippet"]]
    (failure,) = res.failures
    assert failure["index"] == 0 and failure["attempts"] == 1 and calls.count("hangs forever") == 1
    assert failure["error"] == (
        "SearchTimeoutError: no answer within 0.3 s (search_timeout; --search_timeout raises it)"
    )
    assert RetrievalConfig().search_timeout == 30.0 and "search_timeout" not in RetrievalConfig().key_params()


@pytest.mark.parametrize(
    "bad, fragment",
    [("a snippet", "returned a str"), ([1, 2], "search result 1 is int"), ([{"url": "x"}], "search result 1 is dict")],
)
def test_malformed_search_results_are_failures_not_snippets(tmp_path, bad, fragment):
    ds = rows_ds("Paris is nice")
    res = retrieve_contexts(
        ds, backends.CallableBackend(lambda q, k: bad, name="bad"), fast_config(), cache_path=tmp_path / "c.sqlite"
    )
    assert res.dataset["context"] == [[]]
    (failure,) = res.failures
    assert failure["error"].startswith("TypeError") and fragment in failure["error"]


# ------------------------------------------------------------------------------------------------- the cache
def test_cache_keys_separate_search_and_rerank_parameters(tmp_path):
    answers = {"alpha one": ["first snippet here", "second snippet here", "third snippet here"]}
    fake = FakeSearch(answers)
    backend = backends.CallableBackend(fake, name="fake")
    cache = tmp_path / "c.sqlite"
    first = ContextRetriever(backend, fast_config(num_results=3), cache_path=cache).retrieve(["alpha", "one"])
    assert first[0] == answers["alpha one"] and fake.calls == ["alpha one"]
    again = ContextRetriever(backend, fast_config(num_results=3), cache_path=cache).retrieve(["alpha", "one"])
    assert again[0] == first[0] and len(again[1]) == 3 and all(map(math.isnan, again[1]))  # NaN: not re-ranked
    assert len(fake.calls) == 1  # re-run: cache hit
    top1 = ContextRetriever(backend, fast_config(num_results=3, top_k=1), cache_path=cache).retrieve(["alpha", "one"])
    assert top1[0] == answers["alpha one"][:1] and len(fake.calls) == 1  # new packing, same search results
    ContextRetriever(backend, fast_config(num_results=2), cache_path=cache).retrieve(["alpha", "one"])
    assert len(fake.calls) == 2  # another search parameter: searched again
    ContextRetriever(
        backends.CallableBackend(fake, name="fake", version="2"), fast_config(num_results=3), cache_path=cache
    ).retrieve(["alpha", "one"])
    assert len(fake.calls) == 3  # a new plug-in version invalidates its entries


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import datasets
    from clner.retrieval.backends import CallableBackend
    from clner.retrieval.retriever import RetrievalConfig, retrieve_contexts
    log, cache, out, kill_at = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])

    def search(query, k):
        with open(log, "a") as f:
            f.write(query + "\\n")
        with open(log) as f:
            if sum(1 for _ in f) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return [f"{query} snippet {i}" for i in range(k)]

    ds = datasets.Dataset.from_list([{"tokens": ["sentence", str(i)]} for i in range(12)])
    cfg = RetrievalConfig(rerank=False, num_results=2, min_interval=0.0)
    res = retrieve_contexts(ds, CallableBackend(search, name="fake"), cfg, cache_path=cache, batch_size=4)
    res.dataset.save_to_disk(out)
""")


def test_sigkill_midway_and_resume_requeries_nothing_finished(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(KILL_SCRIPT)
    log, cache, out = tmp_path / "calls.log", tmp_path / "cache.sqlite", tmp_path / "out"
    env = {**os.environ, "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    run = lambda kill_at: subprocess.run(  # noqa: E731
        [sys.executable, str(script), str(REPO_ROOT), str(log), str(cache), str(out), str(kill_at)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    first = run(6)  # killed inside the 6th query (second map batch): queries 1-5 finished
    assert first.returncode == -9, first.stderr
    assert not out.exists()
    first_calls = log.read_text().splitlines()
    assert first_calls == [f"sentence {i}" for i in range(6)]
    second = run(0)
    assert second.returncode == 0, second.stderr
    resumed = log.read_text().splitlines()[len(first_calls) :]
    assert resumed == [f"sentence {i}" for i in range(5, 12)]  # only the killed query and the rest
    result = datasets.load_from_disk(str(out))
    assert result["context"] == [[f"sentence {i} snippet {j}" for j in range(2)] for i in range(12)]


class PidLoggingSearch(FakeSearch):
    """FakeSearch that also appends the id of the process answering to a file."""

    def __init__(self, answers, log, **kw):
        super().__init__(answers, **kw)
        self.log = str(log)

    def __call__(self, query, k):
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return super().__call__(query, k)


def test_num_proc_workers_share_cache_and_failures(tmp_path):
    answers = {f"row {i}": [f"snippet {i} a", f"snippet {i} b"] for i in range(8)}
    fake = PidLoggingSearch(answers, tmp_path / "pids", script={"row 5": [ValueError("broken")]})
    ds = rows_ds(*answers)
    res = retrieve_contexts(
        ds,
        backends.CallableBackend(fake, name="fake"),
        fast_config(),
        cache_path=tmp_path / "c.sqlite",
        num_proc=2,
        batch_size=2,
    )
    pids = set((tmp_path / "pids").read_text().split())
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two worker processes did the searching
    assert res.dataset["context"] == [answers[q] if q != "row 5" else [] for q in answers]
    assert [f["index"] for f in res.failures] == [5]


def test_corrupt_truncated_or_directory_cache_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = RetrievalCache(path)
    cache.put_many("search", [(f"k{i}", "b", "q", ["x" * 500] * 20) for i in range(300)])
    cache.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache.conn.close()
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    with pytest.raises(errors.RetrievalError, match=re.escape(f"retrieval cache {path} is unusable")) as err:
        RetrievalCache(path).get_many("search", [f"k{i}" for i in range(300)])
    assert "--rebuild_cache" in str(err.value)
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(errors.RetrievalError, match=r"unusable \(file is not a database\).*--rebuild_cache"):
        ContextRetriever(lambda q, k: [q], fast_config(), cache_path=path)
    retriever = ContextRetriever(lambda q, k: [q + " again"], fast_config(), cache_path=path, rebuild_cache=True)
    assert retriever.retrieve("fresh")[0] == ["fresh again"]
    with pytest.raises(errors.RetrievalError, match=re.escape(f"retrieval cache {tmp_path} is a directory")):
        RetrievalCache(tmp_path)


def test_a_read_only_cache_is_named_not_called_corrupt(tmp_path, monkeypatch):
    """A cache on a read-only folder (root ignores chmod, so os.access and sqlite stand in for the mount) is one
    error naming it as such, not 'corrupt' with --rebuild_cache."""
    import sqlite3

    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_connect, real_access = sqlite3.connect, os.access

    def connect(path, *args, **kwargs):
        if str(path).startswith(str(read_only)):
            raise sqlite3.OperationalError("unable to open database file")
        return real_connect(path, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).startswith(str(read_only)) and real_access(p, mode))
    with pytest.raises(errors.RetrievalError) as err:
        RetrievalCache(read_only / "c.sqlite")
    assert str(err.value).startswith(f"retrieval cache {read_only / 'c.sqlite'} cannot be opened for writing")
    assert "read-only" in str(err.value) and "--rebuild_cache" not in str(err.value)


# ------------------------------------------------------------------------------------------ re-ranking, packing
QUERY = "Marta Oyelaran plays piano in Lagos tonight"
SNIPPETS = [
    "Marta Oyelaran plays piano in Lagos tonight!",  # the query itself
    "The city council approved a plan to plant street trees.",
    "Marta Oyelaran is a jazz pianist from Lagos.",
    "MARTA OYELARAN is a jazz pianist from Lagos!!",  # exact duplicate
    "Tickets for the Lagos jazz night with Marta Oyelaran are on sale now",
    "Marta &amp; the <b>band</b> played in Lagos",
]


def test_rerank_orders_by_bertscore_and_packs_to_budget(scorer, tmp_path):
    backend = backends.CallableBackend(lambda q, k: SNIPPETS, name="fixed")

    def run(**kw):
        config = RetrievalConfig(model="unused", **kw)
        return ContextRetriever(backend, config, cache_path=tmp_path / "c.sqlite", scorer=scorer).retrieve(QUERY)

    ctx, scores = run(self_threshold=1.0)
    assert len(ctx) == 4 and "Marta & the band played in Lagos" in ctx  # self, duplicate gone; cleaned
    assert scores == sorted(scores, reverse=True)
    direct = scorer.greedy_match(*scorer.embed([QUERY]), scorer.embed(ctx))[2].tolist()
    assert scores == pytest.approx(direct, abs=1e-5)
    assert ctx[-1] == SNIPPETS[1]  # the unrelated snippet ranks last

    # BERTScore self-match: everything above the threshold counts as the query itself
    cut = (scores[0] + scores[1]) / 2
    assert run(self_threshold=cut)[0] == ctx[1:]
    assert run(drop_self=False, self_threshold=cut)[0][1:] == ctx  # switch off: the exact copy is back, on top

    words = [len(s.split()) for s in ctx]
    assert run(self_threshold=1.0, budget=words[0] + words[1])[0] == ctx[:2]
    assert run(self_threshold=1.0, budget=words[0] + words[1] - 1)[0] == ctx[:1]
    (one_word,) = run(self_threshold=1.0, budget=1)[0]  # one snippet, cut to the budget when it is cleaned
    assert len(one_word.split()) == 1
    assert run(self_threshold=1.0, top_k=3, budget=None)[0] == ctx[:3]
    tokens = [len(ids) - 2 for ids in scorer.tokenize(ctx)]
    assert run(self_threshold=1.0, budget_unit="tokens", budget=sum(tokens[:3]))[0] == ctx[:3]
    assert run(self_threshold=1.0, budget_unit="tokens", budget=sum(tokens[:3]) - 1)[0] == ctx[:2]

    ctx_idf, scores_idf = run(self_threshold=1.0, idf=True)
    idf = scorer.idf_dict([QUERY, *backends.dedup_snippets(map(backends.clean_text, SNIPPETS[1:]))])
    assert scores_idf == pytest.approx(
        scorer.greedy_match(*scorer.embed([QUERY]), scorer.embed(ctx_idf), idf)[2].tolist(), abs=1e-5
    )
    assert scores_idf != pytest.approx(scores, abs=1e-3)


@pytest.mark.slow
def test_num_proc_rerank_matches_single_process(scorer, tmp_path):
    """Workers reload the encoder (it is not pickled) and rank exactly as the parent does."""
    ds = datasets.Dataset.from_list(data_io.read_conll(RETRIEVAL_FIXTURES / "sentences.conll"))
    backend = backends.BM25Backend(RETRIEVAL_FIXTURES / "corpus.txt", index_dir=tmp_path / "index")
    config = RetrievalConfig(model=str(scorer.model_name_or_path), layer=4, top_k=3)
    one = retrieve_contexts(ds, backend, config, cache_path=tmp_path / "a.sqlite", scorer=scorer).dataset
    two = retrieve_contexts(
        ds, backend, config, cache_path=tmp_path / "b.sqlite", scorer=scorer, num_proc=2, batch_size=3
    ).dataset
    assert two["context"] == one["context"]
    for a, b in zip(two["context_scores"], one["context_scores"]):
        assert a == pytest.approx(b, abs=1e-5)


def test_existing_contexts_are_kept_unless_overwritten(tmp_path):
    ds = rows_ds(
        "Paris is nice",
        "Rome is old",
        "Oslo is cold",
        context=[["given snippet"], [], ["given", "two"]],
        context_scores=[[0.5], [], [0.25]],
    )
    fake = FakeSearch({q: [f"found for {q}"] for q in ("Paris is nice", "Rome is old", "Oslo is cold")})
    backend = backends.CallableBackend(fake, name="fake")
    res = retrieve_contexts(ds, backend, fast_config(), cache_path=tmp_path / "c.sqlite")
    assert res.dataset["context"] == [["given snippet"], ["found for Rome is old"], ["given", "two"]]
    assert res.dataset["context_scores"][0] == [0.5] and math.isnan(res.dataset["context_scores"][2][1])
    assert fake.calls == ["Rome is old"]
    assert (res.provenance["rows_context_kept"], res.provenance["rows_context_replaced"]) == (2, 0)
    res = retrieve_contexts(ds, backend, fast_config(), cache_path=tmp_path / "c.sqlite", overwrite_context=True)
    assert res.dataset["context"] == [[f"found for {q}"] for q in ("Paris is nice", "Rome is old", "Oslo is cold")]
    assert (res.provenance["rows_context_kept"], res.provenance["rows_context_replaced"]) == (0, 2)
    as_text = rows_ds("Paris is nice", "Rome is old", context=["one string snippet", ""])  # e.g. from JSON lines
    res = retrieve_contexts(as_text, backend, fast_config(), cache_path=tmp_path / "c.sqlite")
    assert res.dataset["context"] == [["one string snippet"], ["found for Rome is old"]]


# -------------------------------------------------------------------------------------- configuration, outputs
@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("max_retries", -1, "max_retries must be >= 0, got -1"),  # it would never call the search function
        ("max_retries", 2.5, "max_retries must be a whole number, got 2.5"),
        ("num_results", 0, "num_results must be >= 1, got 0"),
        ("top_k", 0, "top_k must be >= 1, got 0"),
        ("budget", 0, "budget must be >= 1, got 0"),
        ("max_query_words", 0, "max_query_words must be >= 1, got 0"),
        ("max_consecutive_failures", 0, "max_consecutive_failures must be >= 1, got 0"),
        ("scorer_batch_size", True, "scorer_batch_size must be a whole number, got True"),
        ("layer", -1, "layer must be >= 0, got -1"),
        ("near_duplicate", 1.5, "near_duplicate must be between 0 and 1, got 1.5"),
        ("self_threshold", math.nan, "self_threshold must be a finite number, got nan"),
        ("min_interval", -0.5, "min_interval must be >= 0, got -0.5"),
        ("jitter", math.inf, "jitter must be a finite number, got inf"),
        ("backoff", -1.0, "backoff must be >= 0, got -1.0"),
        ("max_backoff", "60", "max_backoff must be a finite number, got '60'"),
        ("search_timeout", 0, "search_timeout must be a positive number of seconds or None (no limit), got 0"),
        ("budget_unit", "chars", "budget_unit must be 'words' or 'tokens', got 'chars'"),
        ("rerank", "False", "rerank must be True or False, got 'False'"),  # a non-empty string would be true
        ("model", b"", "model must name the re-ranking encoder, got b''"),
    ],
)
def test_every_numeric_setting_of_the_config_is_checked(field, value, fragment):
    with pytest.raises(errors.RetrievalConfigError) as err:
        RetrievalConfig(**{field: value})
    assert str(err.value) == f"RetrievalConfig.{fragment}" and err.value.field == field
    assert isinstance(err.value, ValueError)


def test_a_path_or_numpy_config_value_is_plain_json_from_construction(tmp_path):
    """`model=Path(...)` (and numpy numbers or switches) are kept as str / int / float / bool from construction on,
    so that the provenance written after the whole run is plain JSON."""
    np = pytest.importorskip("numpy")
    encoder = tmp_path / "encoder"
    config = RetrievalConfig(
        model=encoder,
        num_results=np.int64(3),
        self_threshold=np.float32(0.5),
        rerank=np.bool_(False),
        min_interval=0.0,
    )
    assert config.model == str(encoder) and type(config.num_results) is int and type(config.self_threshold) is float
    assert config.rerank is False
    json.dumps(dataclasses.asdict(config))
    assert RetrievalConfig(model=encoder).key_params() == RetrievalConfig(model=str(encoder)).key_params()
    res = retrieve_contexts(
        rows_ds("Marta plays"),
        backends.CallableBackend(lambda q, k: ["Marta plays piano"], name="path-model"),
        config,
        cache_path=tmp_path / "c.sqlite",
    )
    save_output(res.dataset, tmp_path / "out.jsonl", provenance=res.provenance)
    # not re-ranked: no encoder is recorded (as clner-retrieve --no_rerank records none)
    assert json.loads((tmp_path / "out.jsonl.provenance.json").read_text())["config"]["model"] is None
    assert RetrievalConfig(model=encoder, rerank=True).provenance()["model"] == str(encoder)


def test_check_output_counts_rows_tokens_and_snippets_from_one(tmp_path):
    """Messages count from 1 (the writer's own `row 0: token 1` counted from 0, and so did the snippet check)."""
    rows = [
        {"tokens": ["a"], "tags": ["O"], "context": ["x"]},
        {"tokens": ["b"], "tags": ["O"], "context": ["fine", "holds <EOS> inside"]},
    ]
    with pytest.raises(errors.RetrievalError, match=r": row 2: its context's snippet 2 holds the token '<EOS>'"):
        check_output(tmp_path / "out.txt", dataset=datasets.Dataset.from_list(rows))
    rows = [{"tokens": ["a"], "tags": ["O"]}, {"tokens": ["b", "c"], "tags": ["O", "B-x y"]}]
    with pytest.raises(errors.RetrievalError, match=r": row 2: tag 2 \('B-x y'\) holds a space"):
        check_output(tmp_path / "out.txt", dataset=datasets.Dataset.from_list(rows))
    assert (
        retrieval_module._count_from_one("row 2: token 1 ('x') cannot be written", 1)
        == "row 2: token 1 ('x') cannot be written"
    )


# --------------------------------------------------------------------------------------- real WNUT-17 data
def test_bm25_recall_at_10_of_released_wnut_dev_contexts(wnut_dir):
    rows = data_io.read_clner(wnut_dir / "dev.context.txt")
    with_context = sum(1 for r in rows if r["context"])
    at10 = self_retrieval_recall(rows, k=10)
    at1 = self_retrieval_recall(rows, k=1)
    print(f"WNUT-17 dev BM25 self-retrieval: recall@1 {at1['recall']:.3f}, recall@10 {at10['recall']:.3f}")
    assert at10["queries"] == with_context > 900
    assert at10["corpus_size"] <= sum(len(r["context"]) for r in rows)
    assert 0.5 < at10["recall"] <= 1.0 and at1["recall"] <= at10["recall"]


# ------------------------------------------------------------------------------------------- atomic outputs
KILL_WRITE = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import datasets
    from clner.retrieval.retriever import save_output
    fmt, path = sys.argv[2], sys.argv[3]
    rows = [{"tokens": ["w", str(i)], "tags": ["O", "O"], "context": ["a snippet"]} for i in range(200_000)]
    ds = datasets.Dataset.from_list(rows)
    if fmt == "clner":
        import clner.data.io as io
        real = io.write_clner
        def killed(dataset, p):
            with open(p, "w") as f:
                f.write("w\\tO\\n")
            os.kill(os.getpid(), signal.SIGKILL)
        io.write_clner = killed
    else:
        import datasets.arrow_dataset as ad
        def killed(self, p, *a, **k):
            with open(p, "w") as f:
                f.write('{"tokens": ["w"]}\\n')
            os.kill(os.getpid(), signal.SIGKILL)
        setattr(ad.Dataset, {"jsonl": "to_json", "parquet": "to_parquet", "disk": "save_to_disk"}[fmt], killed)
    save_output(ds, path, provenance={"rows": len(ds)})
""")


@pytest.mark.parametrize("fmt,name", [("jsonl", "out.jsonl"), ("parquet", "out.parquet"), ("clner", "out.txt"),
                                      ("disk", "out")])  # fmt: skip
def test_a_killed_write_leaves_the_earlier_output_whole(tmp_path, fmt, name):
    """A retrieval output killed mid-write (SIGKILL inside the writer) leaves the earlier output and its
    provenance as they were: every output is written under a temporary name and renamed."""
    import datasets

    from clner.retrieval.retriever import save_output

    path = tmp_path / name
    earlier = datasets.Dataset.from_list(
        [{"tokens": ["old", str(i)], "tags": ["O", "O"], "context": ["x"]} for i in range(3)]
    )
    save_output(earlier, path, provenance={"rows": 3})
    before = sorted((p.name, p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*") if p.is_file())
    script = tmp_path.parent / f"kill_{fmt}.py"
    script.write_text(KILL_WRITE)
    proc = subprocess.run(
        [sys.executable, str(script), str(REPO_ROOT), fmt, str(path)], capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    after = sorted((p.name, p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*") if p.is_file()
                   and not p.name.startswith(".clner-tmp-") and ".clner-tmp-" not in str(p))  # fmt: skip
    assert after == before


def test_a_clean_rerun_removes_the_stale_failure_report(tmp_path):
    import datasets

    from clner.retrieval.retriever import save_output

    ds = datasets.Dataset.from_list([{"tokens": ["a"], "context": ["x"]}])
    save_output(ds, tmp_path / "out.jsonl", provenance={"rows": 1}, failures=[{"index": 0, "query": "a"}])
    assert (tmp_path / "out.jsonl.failures.jsonl").exists()
    save_output(ds, tmp_path / "out.jsonl", provenance={"rows": 1}, failures=[])
    assert not (tmp_path / "out.jsonl.failures.jsonl").exists()
