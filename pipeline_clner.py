"""`CLNERTokenClassificationPipeline`: named entities from a CLNER model, decoded by Viterbi, scored by CRF marginals.

A saved model's ``config.custom_pipelines`` (written by `modeling_clner.save_remote_code` with every save) publishes it under the
standard task ``"token-classification"``, so a published model works as any Hub NER model does::

    from transformers import pipeline
    ner = pipeline("ner", model="org/clner-wnut17", revision="<commit-sha>", trust_remote_code=True)
    # likewise pipeline("token-classification", ...) and pipeline(model=..., trust_remote_code=True)
    ner("Stabilized approach or not ? That ´ s insane and good .")
    ner("Justin Bieber lands in Paris", context=["Justin Bieber is a Canadian singer ...", "..."])
    ner(["first text", "second text"], batch_size=8)
    ner(["Barack", "Obama", "visits", "Kenya"], is_split_into_words=True)  # [[...]]: a list of one result, as
    # transformers' token-classification pipeline gives for one pre-split input
    ner({"tokens": ["Barack", "Obama"], "context": ["snippet", "snippet"]})
    ner("Barack Obama visits Kenya", retrieve=True, retriever=my_search)  # live retrieval

Each input gives a list of entities ``{"entity_group", "score", "word", "start", "end", "word_span",
"context_used"}``: labels come from the CRF's Viterbi path (never a per-word argmax, so the tagging scheme's
constraints hold), ``score`` is the mean CRF marginal p(y_t = Viterbi tag | x) over the entity's words, ``start`` /
``end`` are character offsets into the input text (for pre-split words: into ``" ".join(words)``) and ``word_span``
the ``[first, last + 1)`` word indices. ``context_used`` says whether the context view ran; when it did not (no
context given, retrieval off, failed or empty, or no room for the context) a warning is issued if a context or
retrieval was asked for. ``return_details=True`` gives, per input, a dict with the entities, the words, their tags
and scores, the context used and a ``note`` saying why it was not, also for inputs without entities.

Long inputs are split into overlapping windows by `modeling_clner.encode_example` and stitched back, as
`CLNERForTokenClassification.predict` does, so the pipeline and ``predict`` agree word for word.

The arguments and outputs follow transformers' `TokenClassificationPipeline` where they mean something for a CRF over
words (``aggregation_strategy``, ``ignore_labels``, ``stride``, ``delimiter``, ``is_split_into_words``, ``index``);
docs/pipeline.md lists every difference in one place.

This file is uploaded to the Hub next to ``modeling_clner.py``: it imports the modeling code relatively when it runs
as a Hub dynamic module and absolutely when this project is importable, and loads ``clner.retrieval.retriever`` (live
retrieval) only when asked, so that the pipeline works on the Hub without it.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForTokenClassification, AutoTokenizer, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.pt_utils import PipelineChunkIterator, PipelineIterator, PipelinePackIterator

try:  # loaded from the Hub as a dynamic module, next to modeling_clner.py and the inference core
    from .inference_clner import (
        CONTEXT_PREFIX,
        DEFAULT_MAX_SEQ_LENGTH,
        call_with_timeout,
        context_snippets,
        encode_example,
        entities_from_tags,
        pad_view,
        search_results,
        split_words,
        stitch_windows,
        tokens_from_tags,
        whitespace_words,
        words_and_offsets,
    )
    from .modeling_clner import (
        PIPELINE_TASK,
        CLNERForTokenClassification,
        check_max_seq_length,
        check_window_stride,
        viterbi_with_scores,
    )
except ImportError:  # this project on the path
    from inference_clner import (
        CONTEXT_PREFIX,
        DEFAULT_MAX_SEQ_LENGTH,
        call_with_timeout,
        context_snippets,
        encode_example,
        entities_from_tags,
        pad_view,
        search_results,
        split_words,
        stitch_windows,
        tokens_from_tags,
        whitespace_words,
        words_and_offsets,
    )
    from modeling_clner import (
        PIPELINE_TASK,
        CLNERForTokenClassification,
        check_max_seq_length,
        check_window_stride,
        viterbi_with_scores,
    )


#: This project's own task name, registered in `PIPELINE_REGISTRY` when this module is imported (the standard names
#: "token-classification" / "ner" stay transformers' for other models); a published model also answers to it.
TASK = "clner-token-classification"
_UNSET = object()


#: seconds a plain search function (or a retriever object other than a `ContextRetriever`) may take per call before
#: its input falls back to the sentence view; a `ContextRetriever` has its own `RetrievalConfig.search_timeout`
DEFAULT_RETRIEVAL_TIMEOUT = 30.0


class _RetrievalTimeout(TimeoutError):
    """A retrieval call gave no answer within the pipeline's `retrieval_timeout`."""


def _check_retrieval_timeout(value: Any) -> float | None:
    """`retrieval_timeout=` as seconds: a positive finite number, or None for no limit."""
    if value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < float(value) < float("inf")
    if not ok:
        raise ValueError(f"retrieval_timeout must be a positive number of seconds or None (no limit), got {value!r}")
    return float(value)


def _retrieve_with_timeout(fn: Callable, timeout: float | None, *args):
    """`fn(*args)` under the pipeline's `retrieval_timeout` (`inference_clner.call_with_timeout`)."""
    return call_with_timeout(
        fn,
        timeout,
        *args,
        error=_RetrievalTimeout,
        message=("no answer within {timeout:g} s; the pipeline's retrieval_timeout= sets the limit"),
    )


def _failure_note(exc: BaseException) -> str:
    """An input's note when its retrieval raised `exc`: a time limit reached says so, as does any other error."""
    if isinstance(exc, _RetrievalTimeout):
        return f"sentence view: retrieval timed out ({exc})"
    if isinstance(exc, TimeoutError) or any(c.__name__ == "SearchTimeoutError" for c in type(exc).__mro__):
        return f"sentence view: retrieval timed out ({type(exc).__name__}: {exc})"
    return f"sentence view: retrieval failed ({type(exc).__name__}: {exc})"


class _CallableRetriever:
    """Adapts a plain `fn(query, k) -> list[str | {"title", "body"}]` search function (no re-ranking). Each query
    is searched on its own (once per call, however many inputs share it) under the time limit: one that raises,
    hangs or returns something else than snippets is recorded in `last_failures` (query -> exception) and gets no
    context, and the other queries keep theirs."""

    def __init__(self, fn: Callable, k: int = 10, timeout: float | None = DEFAULT_RETRIEVAL_TIMEOUT):
        self.fn, self.k, self.timeout = fn, k, timeout
        self.last_failures: dict[str, BaseException] = {}

    @staticmethod
    def query_of(words: Sequence[str] | str) -> str:
        return words if isinstance(words, str) else " ".join(words)

    def _snippets(self, results) -> list[str]:
        """The search function's results as snippets (the core's one check), whitespace-normalised, empty ones
        dropped."""
        return [text for text in (" ".join(r.split()) for r in search_results(results)) if text]

    def retrieve_batch(self, queries: Sequence[str], indices=None, timeout: Any = _UNSET):
        """`(snippets, NaN scores)` per query; a failed query gets `([], [])` and an entry in `last_failures`."""
        timeout = self.timeout if timeout is _UNSET else timeout
        self.last_failures = {}
        found: dict[str, list[str]] = {}
        for q in dict.fromkeys(queries):
            try:
                found[q] = self._snippets(_retrieve_with_timeout(self.fn, timeout, q, self.k))
            except Exception as exc:  # noqa: BLE001 - one failed query must not cost the others their context
                self.last_failures[q], found[q] = exc, []
        return [(found[q], [float("nan")] * len(found[q])) for q in queries]


def _joined_words(words: Sequence[str], delimiter: str) -> tuple[list[str], str, list[tuple[int, int]]]:
    """`(words, text, offsets)` of pre-split words joined by `delimiter` (transformers' ``delimiter=``): the offsets
    point into ``delimiter.join(words)``."""
    words = [str(w) for w in words]
    offsets, pos = [], 0
    for w in words:
        offsets.append((pos, pos + len(w)))
        pos += len(w) + len(delimiter)
    return words, delimiter.join(words), offsets


def _first_subtoken_positions(features: Sequence[dict], tokenizer) -> list[int]:
    """Per word, the position of its first sub-token in the sentence view of the whole input, ``[CLS] words
    [SEP]`` (transformers' ``index`` in ``aggregation_strategy="none"``; the context view puts the sentence first,
    at the same positions). A long input's windows are shifted by the sub-tokens of the words before each window:
    read from the previous window, which holds the window's first word or ends just before it."""
    n_special = tokenizer.num_special_tokens_to_add(pair=False)
    positions: dict[int, int] = {}
    before = 0  # sub-tokens of the words before the current window's first word
    for k, feat in enumerate(features):
        if k:
            prev = features[k - 1]
            j = feat["word_start"] - prev["word_start"]
            shared = j < len(prev["word_index"])
            before += prev["word_index"][j] - prev["word_index"][0] if shared else len(prev["input_ids"]) - n_special
        for j, pos in enumerate(feat["word_index"]):
            positions.setdefault(feat["word_start"] + j, before + pos)
    return [positions[i] for i in range(len(positions))]


class CLNERTokenClassificationPipeline(Pipeline):
    """Named entities from a `CLNERForTokenClassification`, optionally with an external context per sentence.

    Call arguments (also accepted, as defaults, by the constructor / `transformers.pipeline(...)`):
        context: for one input, its snippets (a list of strings or one string); for a batch, one entry per input (a
            single string is used for every input). Inputs given as dicts may carry their own ``"context"``.
        retrieve: retrieve a context for every input that has none, with `retriever`.
        retriever: a `clner.retrieval.retriever.ContextRetriever` (or anything with `retrieve_batch(queries)` and
            `query_of(words)`), a `clner.retrieval.retriever` backend or backend name (wrapped in a `ContextRetriever`), or a
            plain `fn(query, k) -> list[str]`. Default: `clner.retrieval.retriever.ContextRetriever("duckduckgo")` (the paper's
            web search + BERTScore re-ranking) when `clner.retrieval.retriever` is importable. A query that fails or times out
            costs only its own input the context (its ``note`` says why), never the other inputs'.
        retrieval_timeout: seconds a search may take before its input falls back to the sentence view with a note
            saying the retrieval timed out; None for no limit. Default: 30 s per query of a search function (and per
            call of another retriever object); a `ContextRetriever` keeps its own `RetrievalConfig.search_timeout`,
            which this sets for one the pipeline builds from a backend (name).
        is_split_into_words: a list of strings is one pre-split sentence, not a batch of texts; its result comes as
            a list of one result (``[[...]]``), as transformers gives it. A list of lists is a batch of pre-split
            sentences either way.
        delimiter: the string that joins pre-split words into the text that ``start`` / ``end`` index (default
            ``" "``), as in transformers; raw text is never re-joined, so it has no effect there.
        stride: the words that consecutive windows of a long input share (default: the model's
            ``config.window_stride``). transformers' ``stride`` is the sub-tokens shared by chunks of
            ``model_max_length``; a CLNER window is cut at word boundaries, so the number counts words here. Long
            inputs are windowed whether or not it is given (transformers truncates without it), also with
            ``aggregation_strategy="none"``.
        offset_mapping: refused unless None: transformers takes sub-token offsets for slow tokenizers; this
            pipeline needs a fast tokenizer and labels words, whose offsets come from ``word_splitter``.
        word_splitter: how raw text becomes words: ``"regex"`` (default, `split_words`), ``"whitespace"``, or a
            callable `text -> [(word, start, end)]`.
        aggregation_strategy: ``"simple"`` (default: the Viterbi tags grouped into entities) or ``"none"`` (one entry
            per non-O word: ``entity``, ``score``, ``index``, the position of the word's first sub-token in
            ``[CLS] words [SEP]`` as in transformers, and ``word_span``). ``"first"``, ``"average"`` and ``"max"``
            choose how sub-token predictions make a word's label in transformers' pipeline; the CRF labels whole
            words, each word's label is already one (its first sub-token carries it), so they are ``"simple"``.
        ignore_labels: labels left out of the output (default ``["O"]``).
        return_details: per input a dict ``{"entities", "words", "tags", "word_scores", "context_used", "context",
            "context_left_out", "context_source", "note"}`` instead of the entity list: ``context`` holds the
            snippets that reached the context view (the last may be cut to fit ``max_seq_length``), and
            ``context_left_out`` counts the given or retrieved snippets that did not.
        max_seq_length: sub-token budget of a view (default: the model's, capped by the tokenizer's maximum).
        batch_size: windows per forward pass.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True
    default_input_names = "sequences"

    def __init__(
        self,
        *args,
        context=_UNSET,
        retrieve: bool = False,
        retriever: Any = None,
        is_split_into_words: bool = False,
        retrieval_timeout: Any = _UNSET,
        **kwargs,
    ):
        self._default_context = context
        self._retrieval_timeout = (
            _UNSET if retrieval_timeout is _UNSET else _check_retrieval_timeout(retrieval_timeout)
        )
        self._retrieve_default = bool(retrieve)
        self._retriever = retriever
        self._split_default = bool(is_split_into_words)
        self._built_retrievers: dict[int, tuple] = {}
        self._views_seen: set = set()
        self._fallbacks: list[str] = []
        self._streaming = False
        super().__init__(*args, **kwargs)
        if not hasattr(self.model, "crf") or not hasattr(self.model.config, "id2label"):
            raise TypeError(
                f"{type(self).__name__} needs a CLNERForTokenClassification model (with a CRF); got "
                f"{type(self.model).__name__}. Use the 'token-classification' pipeline for other models."
            )
        if self.tokenizer is None or not getattr(self.tokenizer, "is_fast", False):
            raise ValueError("the CLNER pipeline needs a fast tokenizer (word alignment uses `word_ids()`)")
        self.model.eval()

    # -- parameters -----------------------------------------------------------------------------------------------
    def _sanitize_parameters(
        self,
        max_seq_length: int | None = None,
        word_splitter: Any = None,
        aggregation_strategy: Any = None,
        ignore_labels: Sequence[str] | None = None,
        return_details: bool | None = None,
        stride: int | None = None,
        delimiter: str | None = None,
        offset_mapping: Any = None,
        **unknown,
    ):
        if unknown:
            raise TypeError(f"unexpected argument(s) for the CLNER pipeline: {sorted(unknown)}")
        if offset_mapping is not None:
            raise ValueError(
                "offset_mapping= is not supported by the CLNER pipeline: in transformers it gives the sub-token "
                "character offsets that a slow tokenizer cannot; CLNER needs a fast tokenizer and labels words, whose "
                "offsets come from the word splitter. Pass word_splitter=<a callable text -> [(word, start, end)]> "
                "to set the words and their offsets, or pre-split words (is_split_into_words=True, delimiter=)"
            )
        preprocess, postprocess = {}, {}
        if max_seq_length is not None:
            preprocess["max_seq_length"] = check_max_seq_length(
                self.model.config, max_seq_length, "max_seq_length=", self.tokenizer
            )
        if stride is not None:
            if isinstance(stride, bool) or not isinstance(stride, int) or stride < 0:
                raise ValueError(
                    f"stride= must be a whole number of words (0 or more) that consecutive windows of a long input "
                    f"share, got {stride!r}"
                )
            check_window_stride(stride, preprocess.get("max_seq_length") or self._max_seq_length(), "stride=")
            preprocess["stride"] = stride
        if delimiter is not None:
            if not isinstance(delimiter, str):
                raise ValueError(f"delimiter= must be a string (it joins pre-split words), got {delimiter!r}")
            preprocess["delimiter"] = delimiter
        if word_splitter is not None:
            if not (callable(word_splitter) or word_splitter in ("regex", "whitespace")):
                raise ValueError(
                    "word_splitter must be 'regex', 'whitespace' or a callable text -> [(word, start, end)]"
                )
            preprocess["word_splitter"] = word_splitter
        if aggregation_strategy is not None:
            strategy = str(getattr(aggregation_strategy, "value", aggregation_strategy)).lower()
            if strategy not in ("none", "simple", "first", "average", "max"):
                raise ValueError(
                    f"unknown aggregation_strategy {aggregation_strategy!r}: 'simple' (entities, the default), "
                    "'none' (one entry per tagged word), or 'first' / 'average' / 'max' (the same as 'simple')"
                )
            # "first" / "average" / "max" choose how a word's sub-tokens agree on its label in transformers; the CRF
            # labels whole words (a word's first sub-token carries it), so every word has one label already and
            # they group entities as "simple" does (docs/pipeline.md)
            postprocess["aggregation_strategy"] = "none" if strategy == "none" else "simple"
        if ignore_labels is not None:
            postprocess["ignore_labels"] = list(ignore_labels)
        if return_details is not None:
            postprocess["return_details"] = bool(return_details)
        return preprocess, {}, postprocess

    # -- inputs ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _as_context(value, what: str = "context") -> list[str] | None:
        """One input's context: None, one snippet string, or a list / tuple of snippet strings."""
        return context_snippets(
            value, what, hint=". For a batch, give one entry per input: a string, a list of strings, or None"
        )

    def _normalize(self, x, context=_UNSET, split: bool = False) -> dict:
        """One input -> `{"text" | "tokens", "context", ...}`."""
        item: dict[str, Any] = {
            "_clner": True,
            "text": None,
            "tokens": None,
            "context": None,
            "context_source": None,
            "note": None,
        }
        what = "context="
        if isinstance(x, dict):
            if x.get("_clner"):
                return x
            tokens = x.get("tokens", x.get("words"))
            text = x.get("text")
            if tokens is None and isinstance(text, (list, tuple)):
                tokens, text = text, None
            if tokens is not None:
                item["tokens"] = [str(t) for t in tokens]
            elif isinstance(text, str):
                item["text"] = text
            else:
                raise ValueError(
                    f"an input dict needs 'text' (a string) or 'tokens' (a list of words); got keys {sorted(x)}"
                )
            if "context" in x and context is _UNSET:
                context, what = x["context"], "the input dict's 'context'"
        elif isinstance(x, str):
            if split:
                raise ValueError("is_split_into_words=True expects a list of words, got a string")
            item["text"] = x
        elif isinstance(x, (list, tuple)) and all(isinstance(w, str) for w in x):
            item["tokens"] = list(x)
        else:
            raise TypeError(
                f"cannot read a CLNER pipeline input of type {type(x).__name__}: pass a string, a list "
                "of words, or a dict with 'text' or 'tokens' (and optionally 'context')"
            )
        if context is not _UNSET:
            item["context"] = self._as_context(context, what)
            item["context_source"] = "given" if item["context"] is not None else None
        return item

    def _normalize_inputs(self, inputs, context, split: bool):
        """-> (single, items); items is a list, or a generator for streamed inputs."""
        if isinstance(inputs, (str, dict)) or (
            split and isinstance(inputs, (list, tuple)) and inputs and all(isinstance(w, str) for w in inputs)
        ):
            return True, [self._normalize(inputs, context, split)]
        if isinstance(inputs, (list, tuple)):
            n = len(inputs)
            if context is _UNSET or context is None:
                contexts = [_UNSET] * n
            elif isinstance(context, str):
                contexts = [context] * n
            elif not isinstance(context, (list, tuple)):
                raise TypeError(
                    f"context= for a batch must be a list with one entry per input (a string, a list of "
                    f"strings, or None), or one string for all; got {type(context).__name__}"
                )
            else:
                contexts = list(context)
                if len(contexts) != n:
                    raise ValueError(
                        f"context= has {len(contexts)} entries for {n} inputs: give one context (a list "
                        "of snippets, a string or None) per input"
                    )
            return False, [self._normalize(x, c) for x, c in zip(inputs, contexts)]
        if isinstance(inputs, Iterable):
            if context is not _UNSET and context is not None and not isinstance(context, str):
                raise ValueError("for streamed inputs, give contexts inside each input dict ({'text', 'context'})")
            return False, (self._normalize(x, context) for x in inputs)
        raise TypeError(f"cannot read CLNER pipeline inputs of type {type(inputs).__name__}")

    # -- retrieval ------------------------------------------------------------------------------------------------
    def _build_retriever(self, retriever, timeout: Any = _UNSET):
        """The retriever object for `retriever=` (see the class docstring), built once per retriever and time limit.
        A backend (name) gets a `ContextRetriever` whose `search_timeout` is `timeout` when one is given."""
        if retriever is not None and hasattr(retriever, "retrieve_batch"):
            return retriever
        key = (id(retriever), timeout if timeout is not _UNSET else "default")
        cached = self._built_retrievers.get(key)
        if cached is not None and cached[0] is retriever:
            return cached[1]
        try:  # the clner package, when installed: its retriever and backends (the Hub copy of this file works without)
            retrieval = importlib.import_module("clner.retrieval.retriever")
            backends = importlib.import_module("clner.retrieval.backends")
        except ImportError:
            retrieval = backends = None
        if (
            retriever is None
            or isinstance(retriever, str)
            or (backends is not None and isinstance(retriever, backends.Backend))
        ):
            if retrieval is None:
                if retriever is None:
                    raise RuntimeError(
                        "live retrieval needs the clner package (`clner.retrieval`) or retriever=<a "
                        "search function fn(query, k) -> list[str]>"
                    )
                raise RuntimeError(
                    f"retriever={retriever!r} needs the clner package (`clner.retrieval`); pass a "
                    "search function instead"
                )
            config = retrieval.RetrievalConfig(**({} if timeout is _UNSET else {"search_timeout": timeout}))
            built = retrieval.ContextRetriever("duckduckgo" if retriever is None else retriever, config)
        elif callable(retriever):
            built = _CallableRetriever(retriever, timeout=DEFAULT_RETRIEVAL_TIMEOUT if timeout is _UNSET else timeout)
        else:
            raise TypeError(
                f"retriever must be a ContextRetriever, a backend (name) or a callable; got {type(retriever).__name__}"
            )
        self._built_retrievers[key] = (retriever, built)  # holding `retriever` keeps its id unique
        return built

    @staticmethod
    def _retrieve_each(ret, queries: list[str], timeout: Any) -> list:
        """Per query: its retrieval result, or the exception that stopped it. A retriever that isolates its
        queries itself (`last_failures`, query -> exception, after `retrieve_batch`: a `ContextRetriever`, which
        also applies its own `search_timeout`, or a wrapped search function) is asked once; another object is asked
        once under the pipeline's time limit. When that call raises (or hangs), the queries are asked again one by
        one, except those already known to have failed, so one bad query never costs the others their context."""
        limit = DEFAULT_RETRIEVAL_TIMEOUT if timeout is _UNSET else timeout
        if isinstance(ret, _CallableRetriever):
            results = ret.retrieve_batch(queries, timeout=limit)
            return [ret.last_failures.get(q, r) for q, r in zip(queries, results)]
        own_limit = hasattr(ret, "config") and hasattr(ret.config, "search_timeout")  # a ContextRetriever

        def ask(batch: list[str]) -> list:
            results = list(_retrieve_with_timeout(ret.retrieve_batch, None if own_limit else limit, batch))
            if len(results) != len(batch):
                raise ValueError(
                    f"{type(ret).__name__}.retrieve_batch gave {len(results)} results for {len(batch)} queries"
                )
            failures = getattr(ret, "last_failures", None) or {}
            return [failures.get(q, r) for q, r in zip(batch, results)]

        try:
            return ask(queries)
        except Exception as exc:  # noqa: BLE001 - retried one by one below
            if len(queries) == 1:
                return [exc]
            known = dict(getattr(ret, "last_failures", None) or {})
        out = []
        for q in queries:
            if q in known:
                out.append(known[q])
                continue
            try:
                out.append(ask([q])[0])
            except Exception as exc:  # noqa: BLE001 - this query's own failure
                out.append(exc)
        return out

    def _retrieve_into(self, items: list[dict], retriever, timeout: Any = _UNSET) -> None:
        """Fill `context` of each item by live retrieval; an item whose retrieval failed, timed out (`timeout`
        seconds: `retrieval_timeout`) or found nothing keeps no context and gets a note saying which."""
        if not items:
            return
        try:
            ret = self._build_retriever(retriever, timeout)
            words = [it["tokens"] if it["tokens"] is not None else it["text"] for it in items]
            queries = [
                ret.query_of(w) if hasattr(ret, "query_of") else (w if isinstance(w, str) else " ".join(w))
                for w in words
            ]
            results = self._retrieve_each(ret, queries, timeout)
        except Exception as exc:  # noqa: BLE001 - retrieval must never break prediction
            for it in items:
                it["note"] = _failure_note(exc)
            return
        for it, result in zip(items, results):
            if isinstance(result, BaseException):
                it["note"] = _failure_note(result)
                continue
            try:
                snippets = list(result[0] if isinstance(result, tuple) else result)
            except TypeError as exc:
                it["note"] = _failure_note(TypeError(f"a retrieval result is a {type(result).__name__} ({exc})"))
                continue
            snippets = [s for s in snippets if s and str(s).strip()]
            if snippets:
                it["context"], it["context_source"] = snippets, "retrieved"
            else:
                it["note"] = "sentence view: retrieval found no context"

    # -- call -----------------------------------------------------------------------------------------------------
    def __call__(
        self,
        inputs,
        *args,
        context=_UNSET,
        retrieve: bool | None = None,
        retriever: Any = None,
        is_split_into_words: bool | None = None,
        retrieval_timeout: Any = _UNSET,
        **kwargs,
    ):
        """Entities of one input (a list of dicts) or of each input of a batch (a list of lists). One pre-split
        input (a list of words with ``is_split_into_words=True``) gives a list of one result, as in transformers.

        See the class docstring for the inputs and options.
        """
        if context is _UNSET:
            context = self._default_context
        retrieve = self._retrieve_default if retrieve is None else bool(retrieve)
        retriever = retriever if retriever is not None else self._retriever
        timeout = (
            self._retrieval_timeout if retrieval_timeout is _UNSET else _check_retrieval_timeout(retrieval_timeout)
        )
        split = self._split_default if is_split_into_words is None else bool(is_split_into_words)
        single, items = self._normalize_inputs(inputs, context, split)
        # transformers answers one pre-split sentence as a batch of one: `[[...]]` (a text or a dict stays one input)
        single = single and not isinstance(inputs, (list, tuple))
        self._views_seen = set()
        self._fallbacks = []
        self._streaming = not isinstance(items, list)
        if isinstance(items, list):
            if not items:
                return []
            if retrieve:
                self._retrieve_into([it for it in items if it["context"] is None], retriever, timeout)
            outputs = super().__call__(items, *args, **kwargs)
            self._warn_fallbacks(stacklevel=3)
            return outputs[0] if single else outputs

        def stream():
            for it in items:
                if retrieve and it["context"] is None:
                    self._retrieve_into([it], retriever, timeout)
                yield it

        return super().__call__(stream(), *args, **kwargs)

    def _warn_fallbacks(self, stacklevel: int) -> None:
        """One warning per call (per input when streaming) for inputs whose context or retrieval was not used."""
        if self._fallbacks:
            notes = sorted(set(self._fallbacks))
            n = len(self._fallbacks)
            self._fallbacks = []
            warnings.warn(
                f"CLNER pipeline: {n} input(s) fell back to the sentence view ({'; '.join(notes)})",
                UserWarning,
                stacklevel=stacklevel,
            )

    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        return next(iter(self.get_iterator([inputs], 0, 1, preprocess_params, forward_params, postprocess_params)))

    def get_iterator(
        self, inputs, num_workers: int, batch_size: int, preprocess_params, forward_params, postprocess_params
    ):
        """Windows of every input are batched together; a right-padding collator pads `word_index` with -1.
        Preprocessing runs in this process (`num_workers` is ignored): it records per-call notes and warnings."""
        dataset = PipelineChunkIterator(inputs, self.preprocess, preprocess_params)
        loader = DataLoader(dataset, num_workers=0, batch_size=batch_size, collate_fn=self._collator(batch_size))
        model_iterator = PipelinePackIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    def _collator(self, batch_size: int):
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

        def collate(windows: list[dict]) -> dict:
            batch = {
                k: torch.tensor(v, dtype=torch.long).reshape(len(v), len(v[0]))  # (B, 0): only empty inputs
                for k, v in pad_view(windows, pad_id=pad_id).items()
            }
            if batch_size == 1:  # unbatched items: PipelinePackIterator reads is_last as a plain bool
                batch["meta"], batch["is_last"] = windows[0]["meta"], windows[0]["is_last"]
            else:
                batch["meta"] = [w["meta"] for w in windows]
                batch["is_last"] = [w["is_last"] for w in windows]
            return batch

        return collate

    # -- the three steps ------------------------------------------------------------------------------------------
    def _max_seq_length(self) -> int:
        length = int(getattr(self.model.config, "max_seq_length", None) or DEFAULT_MAX_SEQ_LENGTH)
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if tok_max and tok_max < 100_000 and int(tok_max) < length:
            if not getattr(self, "_said_tokenizer_limit", False):  # once per pipeline: the budget it runs with
                self._said_tokenizer_limit = True
                warnings.warn(
                    f"CLNER pipeline: the tokenizer's model_max_length {int(tok_max)} is below the model's "
                    f"max_seq_length {length} (config.json): views are cut to {int(tok_max)} sub-tokens, so contexts "
                    "keep less room; pass max_seq_length= to choose, or save the tokenizer with the model's length",
                    UserWarning,
                    stacklevel=2,
                )
            length = int(tok_max)
        return check_max_seq_length(self.model.config, length, "config.json max_seq_length", self.tokenizer)

    def _warn_view(self, with_context: bool) -> None:
        if with_context in self._views_seen:
            return
        self._views_seen.add(with_context)
        check = getattr(self.model, "warn_if_view_mismatch", None)
        if check is not None:
            check(with_context)

    def preprocess(
        self,
        item,
        max_seq_length: int | None = None,
        word_splitter: Any = "regex",
        stride: int | None = None,
        delimiter: str | None = None,
    ):
        item = self._normalize(item)
        splitter = (
            whitespace_words
            if word_splitter == "whitespace"
            else word_splitter
            if callable(word_splitter)
            else split_words
        )
        if item["tokens"] is not None and delimiter is not None:
            words, text, offsets = _joined_words(item["tokens"], delimiter)
        else:
            words, text, offsets = words_and_offsets(
                item["tokens"] if item["tokens"] is not None else item["text"], splitter
            )
        context = item["context"]
        note = item["note"]
        asked = context is not None or note is not None  # a context was given, or retrieval was tried
        if context is not None and not any(s.strip() for s in context):
            context, note = None, "sentence view: the given context is empty"
        config = self.model.config
        max_len = max_seq_length or self._max_seq_length()
        if stride is None:
            stride = getattr(config, "window_stride", 16)
        else:  # checked against this call's max_seq_length too (stride= and max_seq_length= may come apart)
            check_window_stride(stride, max_len, "stride=")
        if words:
            features = encode_example(
                self.tokenizer, words, context, max_len, stride, getattr(config, "snippet_separator", None)
            )
        else:  # nothing to label: one empty window, so that the input still gets its (empty) result
            enc = self.tokenizer("")
            features = [
                {
                    "input_ids": list(enc["input_ids"]),
                    "token_type_ids": enc.get("token_type_ids"),
                    "word_index": [],
                    "has_context": False,
                    "word_start": 0,
                    "own_start": 0,
                    "own_end": 0,
                }
            ]
        used = context is not None and any(f["has_context"] for f in features)
        in_view = max((f.get("context_snippets", 0) for f in features), default=0) if used else 0
        if not words:
            note, asked = "empty input", False
        elif context is not None and not used:
            note = "sentence view: the context did not fit in max_seq_length"
        if not used and note is None:
            note = "sentence view: no context given, and no retrieval asked for"
        if words:
            self._warn_view(used)
        if asked and not used:
            self._fallbacks.append(note)
            if self._streaming:
                self._warn_fallbacks(stacklevel=2)
        prefix = CONTEXT_PREFIX if used else ""
        sentence = {
            "text": text,
            "words": words,
            "offsets": offsets,
            "context_used": used,
            "context": list(context)[:in_view] if used else [],
            "context_left_out": len(context) - in_view if context is not None else 0,
            "context_source": item["context_source"] if used else None,
            "note": None if used else note,
            "token_index": _first_subtoken_positions(features, self.tokenizer) if words else [],
        }
        for k, feat in enumerate(features):
            type_ids = feat.get(prefix + "token_type_ids")
            yield {
                "input_ids": list(feat[prefix + "input_ids"]),
                "token_type_ids": list(type_ids) if type_ids is not None else None,
                "word_index": list(feat[prefix + "word_index"]),
                "meta": {
                    "word_start": feat["word_start"],
                    "own_start": feat["own_start"],
                    "own_end": feat["own_end"],
                    "sentence": sentence if k == 0 else None,
                },
                "is_last": k == len(features) - 1,
            }

    def _forward(self, model_inputs):
        meta, is_last = model_inputs.pop("meta"), model_inputs.pop("is_last")
        word_index = model_inputs["word_index"]
        if word_index.shape[1] == 0:  # only empty inputs in this batch
            empty = torch.zeros(word_index.shape, dtype=torch.long)
            return {"tags": empty, "scores": empty.float(), "meta": meta, "is_last": is_last}
        out = self.model(**model_inputs)
        paths, scores = viterbi_with_scores(self.model.crf, out.logits, out.word_mask)
        return {"tags": paths, "scores": scores, "meta": meta, "is_last": is_last}

    def postprocess(
        self, all_outputs, aggregation_strategy: str = "simple", ignore_labels=None, return_details: bool = False
    ):
        ignore = set(["O"] if ignore_labels is None else ignore_labels)
        sentence = all_outputs[0]["meta"]["sentence"]
        words, offsets, text = sentence["words"], sentence["offsets"], sentence["text"]
        id2label = self.model.config.id2label
        windows = [
            {
                "example_id": 0,
                **{k: out["meta"][k] for k in ("word_start", "own_start", "own_end")},
                "predictions": list(zip(out["tags"][0].tolist(), out["scores"][0].tolist())),
            }
            for out in all_outputs
        ]
        stitched = stitch_windows(windows, [len(words)])[0] if words else []
        tags = [id2label[int(t)] for t, _ in stitched]
        scores = [float(p) for _, p in stitched]
        flags = {"context_used": sentence["context_used"]}  # the note (why not) is per input: return_details=True
        if aggregation_strategy == "none":  # transformers' `index` (the sub-token position), and CLNER's word_span
            token_index = sentence["token_index"]
            entities = [
                {
                    **{k: e[k] for k in ("entity", "score")},
                    "index": token_index[e["index"]],
                    **{k: e[k] for k in ("word", "start", "end")},
                    "word_span": [e["index"], e["index"] + 1],
                    **flags,
                }
                for e in tokens_from_tags(tags, scores, text, offsets, ignore)
            ]
        else:
            entities = entities_from_tags(tags, scores, text, offsets, ignore, **flags)
        if not return_details:
            return entities
        return {
            "entities": entities,
            "words": list(words),
            "tags": tags,
            "word_scores": scores,
            "context_used": sentence["context_used"],
            "context": sentence["context"],
            "context_left_out": sentence["context_left_out"],
            "context_source": sentence["context_source"],
            "note": sentence["note"],
        }


def clner_pipeline(model, tokenizer=None, device=None, **kwargs) -> CLNERTokenClassificationPipeline:
    """The pipeline without remote code: `model` is a `CLNERForTokenClassification` or a path / Hub id of one
    (loaded with this project's `modeling_clner`, safetensors only); `kwargs` are pipeline defaults (`retriever`,
    `batch_size`, `aggregation_strategy`, ...)."""
    if isinstance(model, (str, os.PathLike)):
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(model))
        model = CLNERForTokenClassification.from_pretrained(str(model), use_safetensors=True)
    if tokenizer is None:
        name = getattr(model.config, "_name_or_path", None) or getattr(model, "name_or_path", None)
        if not name:
            raise ValueError("pass tokenizer= (the model does not say where it was loaded from)")
        tokenizer = AutoTokenizer.from_pretrained(name)
    return CLNERTokenClassificationPipeline(model=model, tokenizer=tokenizer, device=device, task=TASK, **kwargs)


# Register this project's task name in this process (once: a Hub copy of this file loaded later does not replace a
# registered one; the standard task names stay transformers' own for other models), and let
# `Pipeline.save_pretrained` record the published task in `config.custom_pipelines`.
if TASK not in PIPELINE_REGISTRY.get_supported_tasks():
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=CLNERTokenClassificationPipeline, pt_model=AutoModelForTokenClassification, type="text"
    )
CLNERTokenClassificationPipeline._registered_impl = {
    PIPELINE_TASK: {"impl": CLNERTokenClassificationPipeline, "pt": (AutoModelForTokenClassification,), "type": "text"}
}
