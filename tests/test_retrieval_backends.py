"""Search backends (`clner.retrieval.backends`): text cleaning and queries, BM25 (its index persisted, rebuilt when
unreadable), corpora in every format, the random and same-document backends, DuckDuckGo, and plug-in search
functions keyed by what they are, so that two never share cache entries."""

import json
import logging
import re
import sys
import time

import pytest

datasets = pytest.importorskip("datasets")
from clner import errors
from clner.retrieval import backends
from clner.retrieval.retriever import ContextRetriever, load_input, retrieve_contexts
from conftest import RETRIEVAL_FIXTURES, RatelimitException, fast_config


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


def test_a_long_snippet_is_cut_to_the_budget_when_cleaned(tmp_path):
    page = " ".join(f"w{i}" for i in range(20_000))  # a whole page returned as one result
    backend = backends.CallableBackend(lambda q, k: [page, "a short second snippet"], name="long-page")
    context, _ = ContextRetriever(backend, fast_config(budget=300), cache_path=tmp_path / "c.sqlite").retrieve("query")
    assert context == [" ".join(f"w{i}" for i in range(300))]  # cut to the budget, and nothing else fits
    assert backends.clean_snippet("<b>Tom</b> &amp; Jerry  live\u00a0here", 3) == "Tom & Jerry"
    assert backends.clean_snippet("<b>Tom</b> &amp; Jerry", None) == "Tom & Jerry"
    huge = "word " * 2_000_000
    assert backends.clean_snippet(huge, 300) == " ".join(["word"] * 300)
    # the same as cleaning whole and cutting after: tags removed by the cleaning do not count, none is cut in two
    for raw in ("<p> " * 5_000 + "real words here now", "w " * 66 + '<a href="x" title="y z"> tail ' * 50):
        assert backends.clean_snippet(raw, 3) == " ".join(backends.clean_text(raw).split()[:3])


# ----------------------------------------------------------------------------------------------- backends
def test_bm25_backend_persists_and_reuses_index(tmp_path):
    corpus = RETRIEVAL_FIXTURES / "corpus.txt"
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


def test_truncated_bm25_index_is_named_and_rebuilt(tmp_path, caplog):
    corpus, index = RETRIEVAL_FIXTURES / "corpus.txt", tmp_path / "index"
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
    corpus.write_text((RETRIEVAL_FIXTURES / "corpus.txt").read_text())

    def read_only(self, path, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(bm25s.BM25, "save", read_only)  # a read-only corpus folder (root ignores chmod)
    with caplog.at_level("WARNING", logger="clner.retrieval"):
        backend = backends.BM25Backend(corpus)
    assert f"cannot save the BM25 index to {corpus}.bm25s" in caplog.text and "--index_dir" in caplog.text
    assert backend.search("who scored twice for Riverside United", 1)


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


def test_corpus_formats_load_the_same_snippets(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = backends.load_corpus(RETRIEVAL_FIXTURES / "corpus.txt")
    assert len(lines) == 20 and backends.load_corpus(RETRIEVAL_FIXTURES / "corpus.jsonl") == lines
    pq.write_table(pa.table({"text": lines}), tmp_path / "corpus.parquet")
    assert backends.load_corpus(tmp_path / "corpus.parquet") == lines
    (tmp_path / "results.jsonl").write_text(json.dumps({"title": "A &amp; B", "body": "the <i>body</i>"}) + "\n")
    assert backends.load_corpus(tmp_path / "results.jsonl") == ["A & B - the body"]
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": broken\n')
    with pytest.raises(errors.RetrievalError, match=r"bad\.jsonl:2: invalid JSON"):
        backends.load_corpus(tmp_path / "bad.jsonl")


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


def test_a_corpus_that_is_not_utf8_names_the_file_line_and_the_fix(tmp_path):
    """A Latin-1 corpus is an error naming the file, the line and how to re-encode it (loaded alone or indexed);
    a BOM is not part of the text."""

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
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"text": "a BOM is not JSON"}\n')
    assert backends.load_corpus(bom) == ["a BOM is not JSON"]


def test_random_backend_is_seeded_and_draws_from_the_corpus():
    corpus = backends.load_corpus(RETRIEVAL_FIXTURES / "corpus.txt")
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
    res = retrieve_contexts(ds, "document", fast_config(num_results=3, near_duplicate=None), cache_path=cache)
    ctx = res.dataset["context"]
    assert ctx[1] == [sentences[0], sentences[2], sentences[3]]  # nearest first, previous before next
    assert ctx[3] == [sentences[2], sentences[1], sentences[0]]
    assert ctx[4] == [sentences[5]] and ctx[5] == [sentences[4]]
    with pytest.raises(errors.RetrievalError, match="no 'doc' column"):
        retrieve_contexts(ds, "document", fast_config(), cache_path=cache, backend_kwargs={"doc_column": "doc"})


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
    ctx, _ = ContextRetriever(backend, fast_config(), cache_path=tmp_path / "c.sqlite").retrieve(["trump", "kremlin"])
    assert ctx == ["Trump & the Kremlin - Is Trump the Kremlin's boy?", "Second - Another body."]


def test_unreachable_network_fails_fast_with_a_clear_error(tmp_path, monkeypatch):
    for var in ("DDGS_PROXY", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    backend = backends.DuckDuckGoBackend(check_host="search.invalid", timeout=2)
    retriever = ContextRetriever(backend, fast_config(), cache_path=tmp_path / "c.sqlite")
    started = time.monotonic()
    with pytest.raises(errors.NetworkUnavailableError, match="cannot reach search.invalid:443"):
        retriever.retrieve(["hello", "world"])
    assert time.monotonic() - started < 10


# --------------------------------------------------------------------------------------- plug-in search functions
def test_callable_backends_never_share_cache_entries_by_name(tmp_path):
    cache = tmp_path / "c.sqlite"

    def context_of(backend):
        return ContextRetriever(backend, fast_config(), cache_path=cache).retrieve("Paris")[0]

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
        assert ContextRetriever(backend, fast_config(), cache_path=cache).retrieve("Paris")[0] == [
            f"Paris from {which}"
        ]
    # loggers, compiled patterns, modules and plain data are fine: keyed by what they are
    backend = backends.CallableBackend(search_with_globals_that_are_data)
    assert ContextRetriever(backend, fast_config(), cache_path=cache).retrieve("Paris, France")[0] == [
        "words: Paris France"
    ]
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
    assert ContextRetriever(first, fast_config(), cache_path=cache).retrieve("Paris")[0] == ["Paris (v1)"]
    plugin.write_text("SUFFIX = ' (v1)'\n\ndef search(query, k):\n    return [query + SUFFIX + '!']\n")
    module = importlib.reload(module)
    edited = backends.CallableBackend(module.search)
    assert edited.name != first.name
    assert ContextRetriever(edited, fast_config(), cache_path=cache).retrieve("Paris")[0] == ["Paris (v1)!"]
    module.SUFFIX = " (v2)"  # a global it reads
    assert backends.CallableBackend(module.search).name not in (first.name, edited.name)
    sys.modules.pop("my_search_plugin", None)
