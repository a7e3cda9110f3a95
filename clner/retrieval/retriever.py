"""External-context retrieval for CLNER (Wang et al., ACL 2021).

A sentence is detokenized into a query, sent to a search backend, the returned snippets are cleaned,
de-duplicated, re-ranked by BERTScore F1 against the sentence and packed, best first, into a context that
fits a word/token budget. Everything runs as a batched `datasets.Dataset.map`, so ``num_proc`` and the
progress bar come for free, and every finished query is committed to an sqlite cache at once, so a run that
is killed (even with SIGKILL) and restarted re-queries nothing that had finished.

Pieces, each small and replaceable (the backends and text steps live in `clner.retrieval.backends`, the re-ranker in
`clner.retrieval.bertscore`; this module re-exports both and holds the cache, the retriever and the dataset run):

* text: `clean_text`, `detokenize`, `build_query`, `dedup_snippets`;
* backends, one interface (`Backend.search(query, k, index) -> list[str]`): `DuckDuckGoBackend`
  (web, only when asked for), `BM25Backend` (local corpus, persisted `bm25s` index), `DocumentBackend`
  (neighbouring sentences of the same document, FLERT-style), `RandomBackend` (random corpus snippets, the
  paper's context-quality ablation) and `CallableBackend` (any ``fn(query, k)``: tests and plug-ins);
* `BERTScorer`: greedy cosine matching of contextual token embeddings, implemented here because the
  `bert_score` package is broken under transformers 5 (empty strings crash, RoBERTa loses its prefix space);
* `RetrievalCache` (sqlite), `ContextRetriever` (cache -> search with rate limit / retries -> re-rank ->
  cache) and `retrieve_contexts` (the `Dataset.map` driver, with provenance and a failures report);
* I/O: `load_input`, `check_output` (before the run), `save_output`; and `self_retrieval_recall`, the recall@k
  check on released contexts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import math
import numbers
import os
import random
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clner.data import io as data_io
from clner.errors import RetrievalConfigError, RetrievalError, SearchTimeoutError
from clner.files import atomic_path, write_text
from clner.retrieval.backends import (
    Backend,
    BM25Backend,
    build_query,
    clean_snippet,
    clean_text,
    dedup_key,
    dedup_snippets,
    fingerprint,
    is_retryable,
    make_backend,
    package_version,
)
from clner.retrieval.bertscore import DEFAULT_LAYER, DEFAULT_MODEL, MINILM, MINILM_LAYER, BERTScorer
from inference_clner import call_with_timeout

logger = logging.getLogger(__name__)


DEFAULT_CACHE_PATH = Path(os.environ.get("CLNER_CACHE", Path.home() / ".cache" / "clner")) / "retrieval.sqlite"
CACHE_FORMAT = 1  # bump when the meaning of cached values changes
CONTEXT_FORMAT = 2  # bump when packed contexts change for the same search results (2: snippets cut to the budget)


def _sleep(seconds: float) -> None:
    """All waiting goes through here, so tests can record the backoff / rate-limit schedule."""
    if seconds > 0:
        time.sleep(seconds)


def _now() -> float:
    """The wall clock of the rate limiter (shared across processes through the cache); tests replace it, with
    `_sleep`, by a virtual clock, so that no schedule check depends on how busy the machine is."""
    return time.time()


def _search_with_timeout(fn: Callable, timeout: float | None, *args):
    """`fn(*args)` under `search_timeout` (`inference_clner.call_with_timeout`), a `SearchTimeoutError` when
    given up on."""

    return call_with_timeout(
        fn,
        timeout,
        *args,
        error=SearchTimeoutError,
        message="no answer within {timeout:g} s (search_timeout; --search_timeout raises it)",
    )


# ------------------------------------------------------------------------------------------------- cache
class RetrievalCache:
    """sqlite store shared by all worker processes and threads (one connection per process and thread: sqlite
    connections cannot cross threads, and a web server calls from its worker threads; WAL journal, every write
    committed at once so SIGKILL loses at most the query in flight). Tables: `search` (raw snippets per
    backend + query + parameters), `context` (the ranked context for those plus the re-ranking parameters),
    `failures` (queries that failed for good, per run) and `ratelimit` (the next free slot per backend,
    which makes rate limiting hold across processes). A file that is not a usable sqlite database is a
    `RetrievalError` naming it; `rebuild=True` deletes it first and starts an empty cache."""

    def __init__(self, path: str | os.PathLike, rebuild: bool = False):
        self.path = Path(path)
        if self.path.is_dir():
            raise RetrievalError(
                f"retrieval cache {self.path} is a directory: pass the path of an sqlite file (--cache)"
            )
        if rebuild:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RetrievalError(
                f"retrieval cache {self.path}: cannot create its folder {self.path.parent} "
                f"({err.strerror or err}); pass --cache with a writable path"
            ) from err
        self._local = threading.local()
        with self._errors():  # create the schema and read it now, so a bad file fails here
            self.conn.execute("SELECT key FROM search LIMIT 1").fetchall()

    @contextlib.contextmanager
    def _errors(self):
        try:
            yield
        except sqlite3.ProgrammingError:  # a misuse of the connection (a bug here), never a corrupt file
            raise
        except sqlite3.DatabaseError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise RetrievalError(
                    f"retrieval cache {self.path}: {err} (another process holds it too long)"
                ) from err
            self._local.conn = None
            if "unable to open" in str(err) or "readonly" in str(err):  # not corrupt: a folder or file not writable
                raise RetrievalError(
                    f"retrieval cache {self.path} cannot be opened for writing ({err}): the file or its folder "
                    f"{self.path.parent} is read-only. Pass --cache with a writable path"
                ) from err
            raise RetrievalError(
                f"retrieval cache {self.path} is unusable ({err}): it is corrupt, truncated or not an sqlite file. "
                "Start an empty cache with --rebuild_cache (RetrievalCache(path, rebuild=True)), or pass another "
                "--cache; finished queries in it are lost either way"
            ) from err

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use in each thread and process)."""
        local = self._local
        if getattr(local, "conn", None) is None or local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=120, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for table in ("search", "context"):
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, backend TEXT, query TEXT,"
                    " value TEXT, created REAL)"
                )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS failures (run TEXT, key TEXT, row INTEGER, backend TEXT,"
                " query TEXT, error TEXT, attempts INTEGER, created REAL)"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS ratelimit (backend TEXT PRIMARY KEY, next REAL)")
            local.conn, local.pid = conn, os.getpid()
        return local.conn

    def get_many(self, table: str, keys: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        keys = list(dict.fromkeys(keys))
        with self._errors():
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                sql = f"SELECT key, value FROM {table} WHERE key IN ({','.join('?' * len(chunk))})"
                found.update((k, json.loads(v)) for k, v in self.conn.execute(sql, chunk))
        return found

    def put_many(self, table: str, items: Sequence[tuple[str, str, str, Any]]) -> None:
        """Store `(key, backend, query, value)` rows in one committed transaction."""
        if not items:
            return
        now = time.time()
        rows = [(k, b, q, json.dumps(v, ensure_ascii=False), now) for k, b, q, v in items]
        with self._errors(), self.conn:  # BEGIN ... COMMIT
            self.conn.execute("BEGIN")
            self.conn.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?)", rows)

    def add_failure(
        self, run: str, key: str, row: int | None, backend: str, query: str, error: str, attempts: int
    ) -> None:
        with self._errors():
            self.conn.execute(
                "INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run, key, row, backend, query, error, attempts, time.time()),
            )

    def failures(self, run: str) -> list[dict]:
        with self._errors():
            cur = self.conn.execute(
                "SELECT row, query, error, attempts FROM failures WHERE run = ? ORDER BY row", (run,)
            )
            return [dict(index=r, query=q, error=e, attempts=a) for r, q, e, a in cur]

    def reserve_slot(self, backend: str, gap: float) -> float:
        """Book the next query slot of `backend`, `gap` seconds after the previous one (in any process);
        returns how long to wait for it."""
        with self._errors():
            return self._reserve_slot(backend, gap)

    def _reserve_slot(self, backend: str, gap: float) -> float:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT next FROM ratelimit WHERE backend = ?", (backend,)).fetchone()
            now = _now()
            start = max(now, row[0] if row else now)
            conn.execute("INSERT OR REPLACE INTO ratelimit VALUES (?, ?)", (backend, start + gap))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return start - now


# ------------------------------------------------------------------------------------------------ retriever
@dataclass
class RetrievalConfig:
    """Parameters of one retrieval run (all but the last group go into cache keys and the provenance).

    Search: `num_results` per query, `max_query_words`. Cleaning: `near_duplicate` (Jaccard threshold, None
    keeps near duplicates), `drop_self` + `self_threshold` (drop snippets whose BERTScore F1 with the query
    exceeds it, i.e. the sentence itself; without re-ranking, exact matches). Re-ranking: `rerank`, `model`,
    `layer` (`model` may be the short name `minilm`, the packaged all-MiniLM-L6-v2, whose default layer is 4: with it
    the default 17, roberta-large's, is read as 4), `idf` (idf from `idf_corpus` when given, else from each query's
    own snippets), then keep the best `top_k` snippets in rank order while they fit `budget` words or tokens
    (`budget_unit`; the best snippet is always kept: each snippet is cut to `budget` words when it is cleaned, and a
    token budget is the model's to cut to length). Politeness (not in keys): `min_interval` seconds between
    queries (None: the backend's default) with up to `jitter` x that added at random, `max_retries`
    retries with exponential backoff `backoff * 2**attempt` (at most `max_backoff`), a query whose search call
    gives no answer within `search_timeout` seconds (None: no limit) is a failure (not retried), and a run stops
    with an error after `max_consecutive_failures` failed queries in a row (the network is gone, not flaky).

    Every setting is checked when the config is made: a value that would silently disable a step (a negative
    `max_retries` never searches) is a `RetrievalConfigError` naming the field. Values are kept as plain JSON types
    from then on (a `model` folder given as a `Path` as its str, numpy numbers as int / float, switches as bool),
    since the config is written into the provenance only after the whole run."""

    num_results: int = 10
    max_query_words: int | None = 32
    near_duplicate: float | None = 0.8
    drop_self: bool = True
    self_threshold: float = 0.95
    rerank: bool = True
    model: str = DEFAULT_MODEL
    layer: int | None = DEFAULT_LAYER
    idf: bool = False
    top_k: int | None = 10
    budget: int | None = 300
    budget_unit: str = "words"
    min_interval: float | None = None
    jitter: float = 0.5
    max_retries: int = 5
    backoff: float = 2.0
    max_backoff: float = 60.0
    max_consecutive_failures: int | None = 10
    scorer_batch_size: int = 32
    search_timeout: float | None = 30.0

    _NOT_IN_KEY = (
        "min_interval",
        "jitter",
        "max_retries",
        "backoff",
        "max_backoff",
        "max_consecutive_failures",
        "scorer_batch_size",
        "search_timeout",
    )
    #: (field, kind, lowest allowed value, whether None is allowed); "int" fields take whole numbers (not bools)
    _NUMBERS = (
        ("num_results", "int", 1, False),
        ("max_query_words", "int", 1, True),
        ("layer", "int", 0, True),
        ("top_k", "int", 1, True),
        ("budget", "int", 1, True),
        ("max_retries", "int", 0, False),
        ("max_consecutive_failures", "int", 1, True),
        ("scorer_batch_size", "int", 1, False),
        ("near_duplicate", "float", 0.0, True),
        ("self_threshold", "float", 0.0, False),
        ("min_interval", "float", 0.0, True),
        ("jitter", "float", 0.0, False),
        ("backoff", "float", 0.0, False),
        ("max_backoff", "float", 0.0, False),
        ("search_timeout", "float", 0.0, True),
    )
    #: fields whose value must be above (not equal to) the lowest value
    _POSITIVE = ("search_timeout",)
    #: fields at most 1 (thresholds on a [0, 1] similarity)
    _AT_MOST_ONE = ("near_duplicate", "self_threshold")
    #: switches: True or False (a string such as "False" would be true)
    _FLAGS = ("drop_self", "rerank", "idf")

    def __post_init__(self):
        if self.budget_unit not in ("words", "tokens"):
            raise RetrievalConfigError("budget_unit", f"must be 'words' or 'tokens', got {self.budget_unit!r}")
        if not isinstance(self.model, (str, os.PathLike)) or not os.fsdecode(self.model).strip():
            raise RetrievalConfigError("model", f"must name the re-ranking encoder, got {self.model!r}")
        # a folder given as a Path is kept as its str: the config goes into the provenance (JSON) after the run
        self.model = os.fsdecode(self.model)
        if self.model == MINILM and self.layer == DEFAULT_LAYER:  # roberta-large's default: MiniLM-L6 has 6 layers
            self.layer = MINILM_LAYER
        for name in self._FLAGS:
            value = getattr(self, name)
            numpy_bool = getattr(getattr(value, "dtype", None), "kind", None) == "b" and getattr(value, "ndim", 1) == 0
            if not (isinstance(value, numbers.Integral) and value in (0, 1) or numpy_bool):
                raise RetrievalConfigError(name, f"must be True or False, got {value!r}")
            setattr(self, name, bool(value))
        for name, kind, low, optional in self._NUMBERS:
            value = getattr(self, name)
            if value is None and optional:
                continue
            what = ("a whole number" if kind == "int" else "a finite number") + (" or None" if optional else "")
            if kind == "int":
                ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
            else:
                ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            if not ok:
                raise RetrievalConfigError(name, f"must be {what}, got {value!r}")
            if name in self._POSITIVE and not value > low:
                raise RetrievalConfigError(
                    name, f"must be a positive number of seconds or None (no limit), got {value!r}"
                )
            if value < low:
                raise RetrievalConfigError(name, f"must be >= {low:g}, got {value!r}")
            if name in self._AT_MOST_ONE and value > 1:
                raise RetrievalConfigError(name, f"must be between 0 and 1, got {value!r}")
            setattr(self, name, int(value) if kind == "int" else float(value))  # numpy scalars are not JSON

    def key_params(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self._NOT_IN_KEY}

    def provenance(self) -> dict:
        """The settings as the provenance records them: without re-ranking, `model` and `layer` are None (no encoder
        is used, so none is recorded)."""
        out = dataclasses.asdict(self)
        if not self.rerank:
            out["model"] = out["layer"] = None
        return out


class ContextRetriever:
    """cache -> search (rate limited, retried) -> clean / de-duplicate -> BERTScore re-rank -> budget -> cache.

    `retrieve_batch(queries, indices)` is the whole job for a batch of rows and is what `retrieve_contexts`
    maps over the dataset; `retrieve(sentence)` serves one sentence (live retrieval in the pipeline). The
    re-ranking encoder is loaded on the first cache miss only, once per process. Failed queries (retries
    exhausted, or a non-transient error) give an empty context, are not cached (a re-run retries them) and
    are logged to the cache's `failures` table under `run_id`.
    """

    def __init__(
        self,
        backend: Backend | str | Callable,
        config: RetrievalConfig | None = None,
        cache_path: str | os.PathLike | None = DEFAULT_CACHE_PATH,
        scorer: BERTScorer | None = None,
        idf_corpus: Sequence[str] | None = None,
        run_id: str | None = None,
        rebuild_cache: bool = False,
        **backend_kwargs,
    ):
        self.backend = make_backend(backend, **backend_kwargs)
        self.config = config or RetrievalConfig()
        if cache_path is None:  # a private scratch cache: still shared by worker processes of this run
            import tempfile

            cache_path = Path(tempfile.mkdtemp(prefix="clner-retrieval-")) / "cache.sqlite"
        self.cache = RetrievalCache(cache_path, rebuild=rebuild_cache)
        self.run_id = run_id or uuid.uuid4().hex
        # created here, loaded on first use: worker processes then know they are workers (see BERTScorer.model)
        self._scorer = scorer or BERTScorer(self.config.model, self.config.layer, self.config.scorer_batch_size)
        self.idf_corpus = list(idf_corpus) if idf_corpus is not None else None
        self._idf = None
        self._checked = False
        self._consecutive_failures = 0
        self.last_failures: dict[str, BaseException] = {}  # query -> why it failed, in the last `retrieve_batch`
        params = self.config.key_params()
        search_params = {"num_results": params["num_results"]}
        self._search_prefix = fingerprint([CACHE_FORMAT, self.backend.name, self.backend.params(), search_params])
        rerank_params = {k: v for k, v in params.items() if k not in ("num_results", "max_query_words")}
        rerank_params["context_format"] = CONTEXT_FORMAT
        if self.idf_corpus is not None and self.config.idf:
            rerank_params["idf_corpus"] = fingerprint(self.idf_corpus)
        self._context_prefix = fingerprint(rerank_params)

    def __getstate__(self):
        return {**self.__dict__, "_idf": None, "last_failures": {}}

    @property
    def scorer(self) -> BERTScorer:
        return self._scorer

    def search_key(self, query: str) -> str:
        return hashlib.sha1(f"{self._search_prefix}\0{query}".encode()).hexdigest()

    def context_key(self, search_key: str) -> str:
        return hashlib.sha1(f"{self._context_prefix}\0{search_key}".encode()).hexdigest()

    def query_of(self, sentence: Sequence[str] | str) -> str:
        return build_query(sentence, self.config.max_query_words)

    def retrieve(self, sentence: Sequence[str] | str, index: int | None = None) -> tuple[list[str], list[float]]:
        """Context and scores of one sentence (tokens or text)."""
        return self.retrieve_batch([self.query_of(sentence)], [index])[0]

    # -- the batch job
    def retrieve_batch(self, queries: Sequence[str], indices: Sequence[int | None] | None = None):
        """`(context, scores)` for each query; `indices` are the rows' dataset positions (document backend,
        failures report). A query that failed gets `([], [])` and its exception in `last_failures` (query ->
        exception, for this call only: the pipeline's note says why its input has no context)."""
        self.last_failures = {}
        indices = list(indices) if indices is not None else [None] * len(queries)
        cacheable = self.backend.cacheable
        skeys = [self.search_key(q) if cacheable else f"row:{i}" for q, i in zip(queries, indices)]
        ckeys = [self.context_key(k) for k in skeys]
        done = self.cache.get_many("context", ckeys) if cacheable else {}
        todo = {}  # search key -> (query, first row index), each query searched once per batch
        for q, i, sk, ck in zip(queries, indices, skeys, ckeys):
            if ck not in done and sk not in todo:
                todo[sk] = (q, i)
        raw = self._search(todo)
        ranked = self._rank({sk: (todo[sk][0], snippets) for sk, snippets in raw.items() if snippets is not None})
        if cacheable:
            self.cache.put_many(
                "context",
                [(self.context_key(sk), self.backend.name, todo[sk][0], list(v)) for sk, v in ranked.items()],
            )
        for sk, v in ranked.items():
            done[self.context_key(sk)] = v
        return [tuple(done[ck]) if ck in done else ([], []) for ck in ckeys]

    def _search(self, todo: dict[str, tuple[str, int | None]]) -> dict[str, list[str] | None]:
        """Raw snippets per search key (None: failed for good), from the cache or the backend."""
        backend, k = self.backend, self.config.num_results
        out: dict[str, list[str] | None] = {sk: [] for sk, (q, _) in todo.items() if not q.strip()}
        if backend.cacheable:
            out.update(self.cache.get_many("search", [sk for sk in todo if sk not in out]))
        missing = [sk for sk in todo if sk not in out]
        if missing and backend.network and not self._checked:
            backend.check()
            self._checked = True
        if missing and backend.batched:
            results = backend.search_batch([todo[sk][0] for sk in missing], k, [todo[sk][1] for sk in missing])
            out.update(zip(missing, results))
            if backend.cacheable:
                self.cache.put_many("search", [(sk, backend.name, todo[sk][0], out[sk]) for sk in missing])
        elif missing:
            for sk in missing:
                out[sk] = self._search_one(sk, *todo[sk])
        return out

    def _search_one(self, skey: str, query: str, index: int | None) -> list[str] | None:
        """One query with rate limiting, exponential backoff and a time limit (`search_timeout`: a search call that
        hangs is a failure, not a hung run); committed to the cache when it succeeds."""
        cfg, backend = self.config, self.backend
        interval = backend.min_interval if cfg.min_interval is None else cfg.min_interval
        for attempt in range(cfg.max_retries + 1):
            if interval > 0:
                _sleep(self.cache.reserve_slot(backend.name, interval * (1 + cfg.jitter * random.random())))
            try:
                snippets = _search_with_timeout(backend.search, cfg.search_timeout, query, cfg.num_results, index)
            except Exception as exc:  # noqa: BLE001 - a failing query must not stop the run
                error = f"{type(exc).__name__}: {exc}"
                if is_retryable(exc) and not isinstance(exc, SearchTimeoutError) and attempt < cfg.max_retries:
                    delay = min(cfg.max_backoff, cfg.backoff * 2**attempt) * (1 + cfg.jitter * random.random())
                    logger.info("%s: %s; retry %d in %.1fs", backend.name, error, attempt + 1, delay)
                    _sleep(delay)
                    continue
                logger.warning("%s: query %r failed after %d attempt(s): %s", backend.name, query, attempt + 1, error)
                self.last_failures[query] = exc
                self.cache.add_failure(self.run_id, skey, index, backend.name, query, error, attempt + 1)
                self._consecutive_failures += 1
                limit = cfg.max_consecutive_failures
                if limit is not None and self._consecutive_failures >= limit:
                    raise RetrievalError(
                        f"{backend.name}: {self._consecutive_failures} queries failed in a row "
                        f"(last: {error}). Stopping; finished queries are cached, re-run to resume."
                    ) from None
                return None
            self._consecutive_failures = 0
            snippets = [str(s) for s in snippets]
            if backend.cacheable:
                self.cache.put_many("search", [(skey, backend.name, query, snippets)])
            return snippets
        return None  # pragma: no cover - the loop always returns

    def _rank(self, jobs: dict[str, tuple[str, list[str]]]) -> dict[str, tuple[list[str], list[float]]]:
        """Clean (each snippet cut to the budget), de-duplicate, drop the query itself, order by BERTScore F1 and
        apply top-k and budget."""
        cfg = self.config
        prepared = {}
        for key, (query, snippets) in jobs.items():
            # a context holds at most `budget` words (a word is at least one token): longer snippets are cut here
            snippets = dedup_snippets((clean_snippet(s, cfg.budget) for s in snippets), cfg.near_duplicate)
            if cfg.drop_self:
                snippets = [s for s in snippets if dedup_key(s) != dedup_key(query)]
            prepared[key] = (query, snippets)
        need = {s for q, snips in prepared.values() if snips for s in [q, *snips]}
        embedded = dict(zip(need, self.scorer.embed(list(need)))) if cfg.rerank and need else {}
        if cfg.rerank and cfg.idf and self.idf_corpus is not None and self._idf is None:
            self._idf = self.scorer.idf_dict(self.idf_corpus)
        out = {}
        for key, (query, snippets) in prepared.items():
            if cfg.rerank and snippets:
                idf = (self._idf or self.scorer.idf_dict([query, *snippets])) if cfg.idf else None
                f1 = self.scorer.greedy_match(embedded[query], [embedded[s] for s in snippets], idf)[2].tolist()
                scored = sorted(zip(snippets, f1), key=lambda x: -x[1])
                if cfg.drop_self:
                    scored = [(s, f) for s, f in scored if f <= cfg.self_threshold]
            else:
                scored = [(s, math.nan) for s in snippets]
            out[key] = self._pack(scored, embedded)
        return out

    def _pack(self, scored: list[tuple[str, float]], embedded: dict) -> tuple[list[str], list[float]]:
        """Best first, at most `top_k`, while the total stays within the budget (the first always fits)."""
        cfg = self.config
        context, scores, used = [], [], 0
        for snippet, score in scored[: cfg.top_k]:
            if cfg.budget_unit == "words":
                size = len(snippet.split())
            else:
                ids = embedded[snippet][0] if snippet in embedded else self.scorer.tokenize([snippet])[0]
                size = sum(t not in self.scorer._specials for t in ids)
            if context and cfg.budget is not None and used + size > cfg.budget:
                break
            context.append(snippet)
            scores.append(float(score))
            used += size
        return context, scores


# ---------------------------------------------------------------------------------------------- dataset run
@dataclass
class RetrievalResult:
    """What `retrieve_contexts` returns: the dataset with `context` / `context_scores`, the failed rows
    (`index`, `query`, `error`, `attempts`; with `split` for a DatasetDict) and the provenance record."""

    dataset: Any
    failures: list[dict]
    provenance: dict


def _existing_context(value: Any) -> list[str]:
    """The snippets of an input row's `context` (a list of strings, one string, or None)."""
    try:
        return data_io.normalise_context(value)
    except TypeError:
        return []


class _MapFn:
    """The picklable `Dataset.map` function: one `retrieve_batch` per batch of a token-list or text column. With
    `keep`, rows whose input `context` is non-empty keep it (and its `context_scores`, else NaN) unqueried."""

    def __init__(self, retriever: ContextRetriever, keep: bool = False, has_scores: bool = False):
        self.retriever, self.keep, self.has_scores = retriever, keep, has_scores

    def __call__(self, column, *extra):
        indices = extra[-1]
        existing = [_existing_context(c) for c in extra[0]] if self.keep else [[] for _ in column]
        old_scores = extra[1] if self.keep and self.has_scores else [None] * len(column)
        todo = [i for i, ctx in enumerate(existing) if not ctx]
        results = self.retriever.retrieve_batch(
            [self.retriever.query_of(column[i] or "") for i in todo], [indices[i] for i in todo]
        )
        contexts, scores = list(existing), []
        for i, ctx in enumerate(existing):
            given = old_scores[i]
            ok = isinstance(given, (list, tuple)) and len(given) == len(ctx)
            scores.append([float(x) if x is not None else math.nan for x in given] if ok else [math.nan] * len(ctx))
        for i, (ctx, sc) in zip(todo, results):
            contexts[i], scores[i] = ctx, sc
        return {"context": contexts, "context_scores": scores}


def retrieve_contexts(
    dataset,
    backend: Backend | str | Callable,
    config: RetrievalConfig | None = None,
    *,
    cache_path: str | os.PathLike | None = DEFAULT_CACHE_PATH,
    scorer: BERTScorer | None = None,
    query_column: str | None = None,
    num_proc: int | None = None,
    batch_size: int | None = None,
    idf_corpus: Sequence[str] | None = None,
    backend_kwargs: dict | None = None,
    desc: str = "Retrieving contexts",
    overwrite_context: bool = False,
    rebuild_cache: bool = False,
) -> RetrievalResult:
    """Add `context` (list of ranked snippets) and `context_scores` (their BERTScore F1; NaN when not
    re-ranked) to every row of a `Dataset` (or each split of a `DatasetDict`) with a batched `map`.

    The query is the row's `tokens` detokenized, or the text in `query_column`. `backend` is a `Backend`, a
    callable ``fn(query, k)`` or a name for `make_backend` (constructor arguments in `backend_kwargs`; the
    document backend is built from each split). Network backends run only when named here. Re-running with
    the same cache re-queries nothing that finished; failed rows get an empty context and are listed in
    `failures`. `batch_size` defaults to 16 rows for network backends (frequent progress) and 512 otherwise.
    Rows that already have a non-empty `context` keep it (and are not queried) unless `overwrite_context`; the
    provenance counts the rows whose context was kept (`rows_context_kept`) and replaced (`rows_context_replaced`).
    """
    import datasets

    config = config or RetrievalConfig()
    if rebuild_cache and cache_path is not None:  # once, before any split uses it
        RetrievalCache(cache_path, rebuild=True)
    if isinstance(dataset, datasets.DatasetDict):
        parts = {
            name: retrieve_contexts(
                split,
                backend,
                config,
                cache_path=cache_path,
                scorer=scorer,
                query_column=query_column,
                num_proc=num_proc,
                batch_size=batch_size,
                idf_corpus=idf_corpus,
                backend_kwargs=backend_kwargs,
                desc=f"{desc} ({name})",
                overwrite_context=overwrite_context,
            )
            for name, split in dataset.items()
        }
        failures = [{**f, "split": name} for name, part in parts.items() for f in part.failures]
        provenance = {
            **next(iter(parts.values())).provenance,
            "splits": {n: p.provenance for n, p in parts.items()},
            "rows": sum(p.provenance["rows"] for p in parts.values()),
            "failures": len(failures),
            "rows_with_context": sum(p.provenance["rows_with_context"] for p in parts.values()),
            **{
                key: sum(p.provenance[key] for p in parts.values())
                for key in ("rows_context_kept", "rows_context_replaced")
            },
        }
        return RetrievalResult(datasets.DatasetDict({n: p.dataset for n, p in parts.items()}), failures, provenance)

    column = query_column or next((c for c in ("tokens", "words") if c in dataset.column_names), None)
    if column not in dataset.column_names:
        raise RetrievalError(
            f"the dataset has no {column or 'tokens'!r} column (columns: {dataset.column_names}); "
            "pass query_column= naming the words or text to search for"
        )
    backend_kwargs = dict(backend_kwargs or {})
    if backend == "document":
        backend_kwargs.setdefault("text_column", column)
    backend = make_backend(backend, dataset=dataset, **backend_kwargs)
    retriever = ContextRetriever(backend, config, cache_path=cache_path, scorer=scorer, idf_corpus=idf_corpus)
    had = (
        [bool(_existing_context(c)) for c in dataset["context"]]
        if "context" in dataset.column_names
        else [False] * len(dataset)
    )
    n_had = sum(had)
    keep = n_had > 0 and not overwrite_context
    if keep:
        logger.info(
            "%d of %d rows already have a context: kept (overwrite_context=True / --overwrite_context replaces them)",
            n_had,
            len(dataset),
        )
    elif n_had:
        logger.warning("replacing the existing context of %d of %d rows (overwrite_context)", n_had, len(dataset))
    has_scores = keep and "context_scores" in dataset.column_names
    features = dataset.features.copy()
    features["context"] = datasets.List(datasets.Value("string"))
    features["context_scores"] = datasets.List(datasets.Value("float64"))
    map_fingerprint = fingerprint(
        [dataset._fingerprint, retriever._search_prefix, retriever._context_prefix, column, keep]
    )
    started = time.time()
    out = dataset.map(
        _MapFn(retriever, keep, has_scores),
        with_indices=True,
        input_columns=[column] + (["context"] if keep else []) + (["context_scores"] if has_scores else []),
        batched=True,
        batch_size=batch_size or (16 if backend.network else 512),
        num_proc=num_proc,
        features=features,
        load_from_cache_file=False,
        new_fingerprint=map_fingerprint,
        desc=desc,
    )
    failures = retriever.cache.failures(retriever.run_id)
    provenance = {
        "tool": "clner clner.retrieval.retriever",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "backend": backend.name,
        "backend_params": backend.params(),
        "packages": {
            p: package_version(p)
            for p in (getattr(backend, "package", None), "datasets", "transformers", "torch")
            if p and package_version(p)
        },
        "config": config.provenance(),
        "query_column": column,
        "rows": len(out),
        "rows_with_context": sum(1 for c in out["context"] if c),
        "rows_context_kept": n_had if keep else 0,
        "rows_context_replaced": n_had if overwrite_context else 0,
        "failures": len(failures),
        "seconds": round(time.time() - started, 3),
        "cache": str(retriever.cache.path),
    }
    if failures:
        logger.warning("%d of %d rows failed retrieval and have an empty context", len(failures), len(out))
    out.info.description = json.dumps({"clner_retrieval": provenance})
    return RetrievalResult(out, failures, provenance)


# ------------------------------------------------------------------------------------------------------ I/O
def load_input(source: str | os.PathLike, split: str | None = None, format: str | None = None):
    """The rows to retrieve for, as they are (every column kept): a `save_to_disk` directory, `.parquet`,
    `.json`/`.jsonl` (read by `datasets`), CoNLL / CLNER-format text (read by `clner.data.io`, the trainer's
    reader), or a Hub dataset name. Returns a `Dataset` for one `split`, else a `DatasetDict` (files: `train`)."""
    import datasets

    path = Path(source)
    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
    elif path.is_file():
        fmt = format or data_io.detect_format(path)
        if fmt == "parquet":
            loaded = datasets.DatasetDict(train=datasets.Dataset.from_parquet(str(path)))
        elif fmt in ("json", "jsonl"):
            if not path.read_bytes().strip(b" \t\r\n[]\xef\xbb\xbf"):
                raise RetrievalError(f"{path}: no sentences (the file is empty or holds only blank lines or [])")
            loaded = datasets.DatasetDict(train=datasets.Dataset.from_json(str(path)))
        else:
            # tags pass through as they are (retrieval never reads them), in the file's own scheme
            loaded = data_io.load_ner_dataset({"train": str(path)}, format=fmt, tag_scheme=None)
    elif path.suffix.lower() in (".conll", ".txt", ".tsv", ".bio", ".json", ".jsonl", ".parquet", ".arrow") or str(
        source
    ).startswith(("/", ".", "~")):
        raise FileNotFoundError(f"input not found: {source}")
    else:
        loaded = datasets.load_dataset(str(source))
    if path.is_dir() or (path.is_file() and fmt in ("parquet", "json", "jsonl")):  # load_ner_dataset checks the rest
        total = len(loaded) if isinstance(loaded, datasets.Dataset) else sum(len(d) for d in loaded.values())
        data_io.check_provenance_rows(path, total)
    if isinstance(loaded, datasets.DatasetDict) and split is not None:
        if split not in loaded:
            raise RetrievalError(f"{source}: no split {split!r} (splits: {list(loaded)})")
        return loaded[split]
    return loaded


def output_format(path: str | os.PathLike) -> str:
    """`save_output`'s format for `path` by its extension: parquet, jsonl, clner (.txt / .conll) or disk (none)."""
    return {".parquet": "parquet", ".jsonl": "jsonl", ".txt": "clner", ".conll": "clner"}.get(
        Path(path).suffix.lower(), "disk"
    )


def save_output(
    dataset,
    path: str | os.PathLike,
    format: str | None = None,
    provenance: dict | None = None,
    failures: list[dict] | None = None,
) -> Path:
    """Write the result as `disk` (`save_to_disk`), `parquet`, `jsonl` or `clner` (the official context
    format, via `data_io.write_clner`); `format` defaults from the extension (none: a directory). The
    provenance goes next to it (`retrieval_provenance.json` inside a directory, `<file>.provenance.json`
    otherwise), and so does the failures report (`retrieval_failures.jsonl` / `<file>.failures.jsonl`)."""
    path = Path(path)
    format = format or output_format(path)
    if format not in ("disk", "parquet", "jsonl", "clner"):
        raise ValueError(f"unknown output format {format!r}: disk, parquet, jsonl or clner")
    if format != "disk" and hasattr(dataset, "keys"):  # a DatasetDict: a file holds one split
        if len(dataset) != 1:
            raise RetrievalError(
                f"{format} output holds one split, got {list(dataset)}: pick a split or save a directory"
            )
        dataset = next(iter(dataset.values()))
    # every file is written under a temporary name and renamed: a killed run leaves the earlier output whole
    with atomic_path(path, directory=format == "disk") as tmp:
        if format == "disk":
            dataset.save_to_disk(str(tmp))
        elif format == "parquet":
            dataset.to_parquet(str(tmp))
        elif format == "jsonl":
            dataset.to_json(str(tmp), lines=True, force_ascii=False)
        else:
            data_io.write_clner(dataset, str(tmp))
    if format == "disk":
        side = lambda name: path / f"retrieval_{name}"  # noqa: E731
    else:
        side = lambda name: path.with_name(f"{path.name}.{name}")  # noqa: E731
    if provenance is not None:
        write_text(side("provenance.json"), json.dumps(provenance, indent=2, ensure_ascii=False) + "\n")
    if failures:
        write_text(side("failures.jsonl"), "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures))
    else:  # a report of an earlier run would list rows that now have contexts
        side("failures.jsonl").unlink(missing_ok=True)
    return path


def _is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` (existing or not) is `folder` or lies inside it, links resolved."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def check_output(
    path: str | os.PathLike,
    format: str | None = None,
    *,
    source: str | os.PathLike | None = None,
    dataset=None,
    keep_context: bool = True,
    what: str = "output",
) -> None:
    """Refuse, before any query, an output that `save_output` could only fail to write after the whole run, or
    that would destroy the input: `path` being the input `source` itself (the same file or `save_to_disk`
    folder, also through a link) or lying inside the input folder; a one-file format for a `DatasetDict` of
    several splits; and, for the CLNER text format, a row of `dataset` that the writer cannot write (a token that
    is empty, padded or holds a tab or newline, a missing tag, ...: `clner.data.io`'s own writer rule) or, with
    `keep_context`, a context kept from the input that holds the snippet break `<EOS>`. Raises `RetrievalError`
    naming `what` (the flag), the input and the row."""
    format = format or output_format(path)
    if source is not None and os.path.exists(source):
        same = os.path.exists(path) and os.path.samefile(source, path)
        if same or (os.path.isdir(source) and _is_within(path, source)):
            where = "is" if same else "is inside"
            raise RetrievalError(
                f"{what} {path} {where} the input {source}: writing there would overwrite the data "
                f"being read. Give another {what}"
            )
    if dataset is None:
        return
    if format != "disk" and hasattr(dataset, "keys"):
        if len(dataset) != 1:
            raise RetrievalError(
                f"{what} {path} ({format}) holds one split, and the input has {list(dataset)}: pick "
                "a split (--split) or save a folder"
            )
        dataset = next(iter(dataset.values()))
    if format != "clner":
        return
    for i, row in enumerate(data_io.iter_named_rows(dataset)):
        try:
            try:
                data_io.sentence_lines(row, i, require_tags=True)
            except ValueError as err:
                raise ValueError(_count_from_one(str(err), i)) from None
            for k, snippet in enumerate(_existing_context(row.get("context")) if keep_context else []):
                if data_io.EOS_TOKEN in snippet.split():
                    raise ValueError(
                        f"row {i + 1}: its context's snippet {k + 1} holds the token "
                        f"{data_io.EOS_TOKEN!r}, read back as a snippet break"
                    )
        except ValueError as err:
            raise RetrievalError(
                f"{what} {path} is in the CLNER text format, which cannot hold the input "
                f"{source or '(dataset)'}: {err}. Fix the input, or write .jsonl, .parquet or a "
                "folder, which hold any row as it is"
            ) from None


_WRITER_PLACE_RE = re.compile(r"^row (\d+): (?:(sentence token|token|tag) (\d+)\b)?")


def _count_from_one(message: str, row: int) -> str:
    """A `clner.data.io` writer message about row `row` (0-based), as this module's messages count: rows, tokens and
    tags from 1. The writer counts them from 0 (`row 0: token 1` is the first row's second token); a message that
    already counts from 1 (it names `row {row + 1}`) is kept as it is."""
    match = _WRITER_PLACE_RE.match(message)
    if match is None or int(match.group(1)) != row:
        return message
    place = f"row {row + 1}: " + (f"{match.group(2)} {int(match.group(3)) + 1}" if match.group(2) else "")
    return place + message[match.end() :]


def self_retrieval_recall(
    rows: Sequence[dict], k: int = 10, index_dir: str | os.PathLike | None = None, max_query_words: int | None = 32
) -> dict:
    """How well BM25 finds a sentence's own released snippets: pool every snippet of `rows` (dicts with
    `tokens` and `context`) into one corpus, query it with each sentence that has a context, and average
    recall@k = |own snippets in the top k| / min(k, |own snippets|). Returns `recall`, `queries`,
    `corpus_size` and the BM25 `queries_per_s` (index time excluded)."""
    pool = list(dict.fromkeys(clean_text(s) for row in rows for s in row.get("context") or []))
    pool = [s for s in pool if s]
    backend = BM25Backend(pool, index_dir=index_dir)
    queried = [row for row in rows if any(clean_text(s) for s in row.get("context") or [])]
    queries = [build_query(row["tokens"], max_query_words) for row in queried]
    started = time.perf_counter()
    results = backend.search_batch(queries, k)
    seconds = time.perf_counter() - started
    recalls = []
    for row, found in zip(queried, results):
        own = {clean_text(s) for s in row["context"]} - {""}
        recalls.append(len(own & set(found)) / min(k, len(own)))
    return {
        "recall": sum(recalls) / max(len(recalls), 1),
        "queries": len(queries),
        "corpus_size": len(pool),
        "queries_per_s": len(queries) / max(seconds, 1e-9),
    }
