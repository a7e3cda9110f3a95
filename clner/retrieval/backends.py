"""Search backends of CLNER's context retrieval, one interface (`Backend.search(query, k, index) -> list[str]`):
`DuckDuckGoBackend` (web, only when asked for), `BM25Backend` (local corpus, persisted `bm25s` index),
`DocumentBackend` (neighbouring sentences of the same document, FLERT-style), `RandomBackend` (random corpus
snippets, the paper's context-quality ablation) and `CallableBackend` (any ``fn(query, k)``: tests and plug-ins,
cache-keyed by a fingerprint of its code and closure); the text steps (`clean_text`, `clean_snippet`,
`detokenize`, `build_query`, `dedup_snippets`) and the errors of retrieval. `clner.retrieval.retriever` re-exports all of it.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import logging
import math
import os
import random
import re
import socket
import types
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from clner import errors
from clner.data import io as data_io
from clner.errors import NetworkUnavailableError, RetrievalError, RetryableError
from inference_clner import result_text as _result_text
from inference_clner import search_results as _check_results

logger = logging.getLogger(__name__)


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
    text = "".join(
        " " if unicodedata.category(c) in ("Zs", "Cc") else c for c in text if c not in "\u200b\u200c\ufeff"
    )
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
            head = head[: head.rfind("<")]
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


def dedup_key(text: str) -> str:
    """Comparison key: lower-cased word characters only."""
    return " ".join(_WORD_RE.findall(text.lower()))


def dedup_snippets(snippets: Iterable[str], near_threshold: float | None = 0.8) -> list[str]:
    """Drop empty snippets, exact duplicates (same words, ignoring case and punctuation) and near duplicates
    (word-set Jaccard >= `near_threshold`; None keeps them). The first occurrence wins, so order is kept."""
    kept: list[str] = []
    seen: set[str] = set()
    sets: list[set[str]] = []
    for snippet in snippets:
        key = dedup_key(snippet)
        if not key or key in seen:
            continue
        words = set(key.split())
        if near_threshold is not None and any(len(words & s) / len(words | s) >= near_threshold for s in sets):
            continue
        seen.add(key)
        sets.append(words)
        kept.append(snippet)
    return kept


def fingerprint(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def package_version(name: str) -> str | None:
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
    than plain data, such as a search client).

    Not `datasets.fingerprint.Hasher`: it pickles a function that can be imported by reference (module and name),
    so editing a plug-in's code, or a global it reads, would keep its key and serve the old snippets from the cache
    (checked with datasets 5.2; `test_an_edited_search_function_gets_new_cache_keys` pins it)."""
    seen = set() if seen is None else seen
    if id(fn) in seen:
        return "<recursive>"
    seen.add(id(fn))
    if isinstance(fn, functools.partial):
        return fingerprint(
            [
                "partial",
                _callable_identity(fn.func, seen),
                _stable(fn.args, seen, "its arguments"),
                _stable(fn.keywords, seen, "its keyword arguments"),
            ]
        )
    if isinstance(fn, types.MethodType):
        return fingerprint(
            ["method", _callable_identity(fn.__func__, seen), _stable(fn.__self__, seen, "the object it is bound to")]
        )
    if isinstance(fn, types.BuiltinFunctionType):
        return fingerprint(["builtin", getattr(fn, "__module__", None), fn.__qualname__])
    if not isinstance(fn, types.FunctionType):
        raise TypeError(f"a {type(fn).__name__} object, not a plain function")
    cells = fn.__code__.co_freevars
    closure = [
        [name, _stable(cell.cell_contents, seen, f"closure variable {name!r}")]
        for name, cell in zip(cells, fn.__closure__ or ())
    ]
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
    return fingerprint(
        [
            "function",
            fn.__module__,
            fn.__qualname__,
            _code_key(fn.__code__),
            _stable(fn.__defaults__, seen, "a default argument"),
            _stable(fn.__kwdefaults__, seen, "a default argument"),
            closure,
            referenced,
        ]
    )


class CallableBackend(Backend):
    """Any ``fn(query, k) -> list[str | {"title", "body"}]`` as a backend (tests, user plug-ins). Raise
    `RetryableError` (or any exception whose class name mentions a rate limit / timeout) for transient errors.

    Cache entries are keyed by `name`, which defaults to a fingerprint of the function's code, defaults, closure and
    the globals it names, so two different functions (two lambdas, two functions both called `search`) never share
    entries. A callable whose results cannot be told from its code (a callable object, a closure variable or
    global holding a client object) needs an explicit `name`; bump `version` when a named plug-in changes. Results
    that are not a list of strings or of dicts with text are failures of the query, not snippets."""

    def __init__(
        self,
        fn: Callable[[str, int], list],
        name: str | None = None,
        version: str = "1",
        min_interval: float = 0.0,
        cacheable: bool = True,
    ):
        if not callable(fn):
            raise TypeError(f"CallableBackend needs a search function fn(query, k), got {type(fn).__name__}")
        self.fn, self.version, self.min_interval, self.cacheable = fn, version, min_interval, cacheable
        if name is None:
            label = getattr(fn, "__qualname__", type(fn).__name__)
            try:
                name = f"callable:{label}:{_callable_identity(fn)[:16]}"
            except TypeError as err:
                reason = f"it is {err}" if str(err).startswith("a ") else str(err)
                raise TypeError(
                    f"cannot key the cache of search function {label!r}: {reason}. Pass a name that "
                    f"identifies it: CallableBackend(fn, name='my-search', version='1') (cache entries "
                    "are shared by every backend of that name)"
                ) from None
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

    def __init__(
        self,
        engine: str = "duckduckgo",
        region: str = "us-en",
        safesearch: str = "moderate",
        timeout: float = 10.0,
        proxy: str | None = None,
        check_host: str = "html.duckduckgo.com",
    ):
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
            if is_retryable(exc):
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
        for lineno, record in _corpus_lines(path, json_lines=True):
            if isinstance(record, str):
                texts.append(record)
            elif isinstance(record, dict) and (text_field or "text") in record:
                texts.append(record[text_field or "text"])
            elif isinstance(record, dict) and text_field is None and ("title" in record or "body" in record):
                texts.append(_result_text(record))
            else:
                raise RetrievalError(
                    f"{path}:{lineno}: expected a string or an object with {text_field or 'text'!r} (or title/body)"
                )
    else:  # lines end at "\n" ("\r\n", "\r") only: U+2028, NEL or a form feed inside a snippet keeps it whole
        texts = [line for _, line in _corpus_lines(path)]
    return [t for t in (clean_text(t) for t in texts if t is not None) if t]


def _corpus_lines(path: Path, json_lines: bool = False) -> Iterable[tuple[int, Any]]:
    """`(line number, line)` of a UTF-8 text corpus (`data_io.iter_lines`: universal newlines, no BOM), or with
    `json_lines` `(line number, decoded value)` of its non-blank lines (`data_io.iter_json_lines`). A byte that
    is not UTF-8 (a Latin-1 or cp1252 export) is a `RetrievalError` naming the file, line and column and saying how
    to re-encode it, not a bare UnicodeDecodeError naming nothing; so is a line that is not JSON."""
    fix = (
        f"a corpus must be UTF-8: re-encode it, e.g. `iconv -f latin1 -t utf-8 {path.name} > utf8-{path.name}`, "
        "and pass the new file (--corpus)"
    )
    try:
        yield from (data_io.iter_json_lines if json_lines else data_io.iter_lines)(path, fix=fix)
    except errors.CLNERFormatError as err:
        raise RetrievalError(str(err)) from None


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

    def __init__(
        self,
        corpus: str | os.PathLike | Sequence[str],
        index_dir: str | os.PathLike | None = None,
        text_field: str | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        stopwords: str | None = "en",
    ):
        bm25s = _import_bm25s()

        self.texts, source = _corpus_texts(corpus, text_field)
        if not self.texts:
            raise RetrievalError(f"BM25 corpus {source or '(list)'} is empty")
        self.k1, self.b, self.stopwords = k1, b, stopwords
        self.corpus_fingerprint = fingerprint([self.texts, k1, b, stopwords, package_version("bm25s")])
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
                logger.warning(
                    "BM25 index %s is unreadable (%s: %s); rebuilding it",
                    self.index_dir,
                    type(err).__name__,
                    " ".join(str(err).split())[:200],
                )
        if not self.loaded_from_disk:
            self.index = bm25s.BM25(k1=k1, b=b)
            self.index.index(self._tokenize(self.texts, return_ids=True), show_progress=False)
            if self.index_dir is not None:
                try:
                    stamp.unlink(missing_ok=True)  # written last: a save killed halfway is never trusted
                    self.index.save(str(self.index_dir), show_progress=False)
                    stamp.write_text(json.dumps(self.corpus_fingerprint))
                except OSError as err:
                    logger.warning(
                        "cannot save the BM25 index to %s (%s: %s); it is kept in memory for this run "
                        "only. Pass --index_dir (index_dir=) naming a writable folder to reuse it",
                        self.index_dir,
                        type(err).__name__,
                        err.strerror or err,
                    )

    def _check_index(self) -> None:
        """A loaded index must cover the corpus and answer a query (a truncated file fails here, not mid-run)."""
        n_docs = getattr(self.index, "scores", {}).get("num_docs")
        if n_docs is not None and int(n_docs) != len(self.texts):
            raise ValueError(f"it indexes {n_docs} documents, the corpus has {len(self.texts)}")
        probe = self._tokenize([self.texts[0]], return_ids=False)
        if probe and probe[0]:
            self.index.retrieve(probe, k=1, show_progress=False, n_threads=1)

    def _tokenize(self, texts, return_ids):
        return _import_bm25s().tokenize(
            list(texts), stopwords=self.stopwords, return_ids=return_ids, show_progress=False
        )

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
        self.seed, self.corpus_fingerprint = seed, fingerprint(self.texts)

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
            raise RetrievalError(
                f"document backend: the dataset has no {doc_column!r} column "
                f"(columns: {dataset.column_names}); pass doc_column="
            )
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


def is_retryable(exc: BaseException) -> bool:
    """Rate limits, timeouts and dropped connections are worth retrying; anything else is not."""
    if isinstance(exc, (RetryableError, TimeoutError, ConnectionError)):
        return True
    name = type(exc).__name__.lower()
    return any(word in name for word in ("ratelimit", "rate_limit", "timeout", "toomanyrequests"))
