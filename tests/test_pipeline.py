"""CLNERTokenClassificationPipeline (`pipeline_clner`): Viterbi entities with marginal scores, input forms and offsets,
contexts given or retrieved live, and the fallback to the sentence view when retrieval fails, hangs or finds
nothing."""

import re
import sys
import warnings
from pathlib import Path

import pytest
import torch

from clner.retrieval.backends import CallableBackend
from conftest import LABELS, REPO_ROOT, SENTENCES, tiny_bert_config, tiny_clner
from inference_clner import encode_example, split_words
from pipeline_clner import TASK, CLNERTokenClassificationPipeline, clner_pipeline


def tiny_model(seed=0, **kwargs):
    return tiny_clner(seed=seed, decisive=True, **kwargs)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_entities_come_from_viterbi_with_marginal_scores(oracle, minilm_tokenizer):
    out = oracle("John Smith met Smith in Paris.")
    assert [(e["entity_group"], e["word"], e["start"], e["end"], e["word_span"]) for e in out] == [
        ("person", "John Smith", 0, 10, [0, 2]),
        ("person", "Smith", 15, 20, [3, 4]),
        ("location", "Paris", 24, 29, [5, 6]),
    ]
    # "Smith" alone: argmax says I-person, which cannot start an entity; Viterbi gives B-person
    words = oracle("met Smith", aggregation_strategy="none")
    assert [(w["entity"], w["word"], w["index"], w["word_span"]) for w in words] == [("B-person", "Smith", 2, [1, 2])]
    model = oracle.model
    (feat,) = encode_example(minilm_tokenizer, ["John", "Smith", "met", "Smith", "in", "Paris", "."])
    batch = {k: torch.tensor([feat[k]]) for k in ("input_ids", "attention_mask", "token_type_ids", "word_index")}
    with torch.no_grad():
        logits = model(**batch).logits
        assert logits[0, 3].argmax().item() == LABELS.index("I-person")
        marginals = model.crf.marginals(logits, torch.ones(1, 7, dtype=torch.bool))[0]
    details = oracle("John Smith met Smith in Paris .", return_details=True, word_splitter="whitespace")
    assert details["tags"] == ["B-person", "I-person", "O", "B-person", "O", "B-location", "O"]
    expected = [marginals[i, LABELS.index(t)].item() for i, t in enumerate(details["tags"])]
    assert details["word_scores"] == pytest.approx(expected, abs=1e-5)
    assert details["entities"][0]["score"] == pytest.approx((expected[0] + expected[1]) / 2, abs=1e-5)
    assert all(0.0 < e["score"] <= 1.0 for e in details["entities"])


def test_context_view_changes_predictions(oracle):
    alone = oracle("Bieber lands tonight", return_details=True)
    assert alone["entities"] == [] and alone["context_used"] is False
    assert alone["note"].startswith("sentence view: no context given")
    with_ctx = oracle("Bieber lands tonight", context=["Justin Bieber is a Canadian singer ."], return_details=True)
    assert with_ctx["context_used"] is True and with_ctx["note"] is None
    assert with_ctx["context"] == ["Justin Bieber is a Canadian singer ."] and with_ctx["context_source"] == "given"
    (entity,) = with_ctx["entities"]
    assert (entity["entity_group"], entity["word"], entity["context_used"]) == ("person", "Bieber", True)
    assert "note" not in entity


def test_matches_model_predict_with_windows_and_batches(minilm_tokenizer):
    model = tiny_model(max_seq_length=64)
    pipe = clner_pipeline(model, minilm_tokenizer, device="cpu")
    sentences = SENTENCES + [[f"tok{i}" for i in range(150)]]  # the long one is split into windows and stitched
    contexts = [["John Smith is a singer"], None, "ok ok", ["w " * 80]]
    for ctx in (None, contexts):
        expected = model.predict(sentences, minilm_tokenizer, contexts=ctx)
        for batch_size in (1, 3):
            got = pipe(sentences, context=ctx, batch_size=batch_size, return_details=True)
            assert [g["tags"] for g in got] == expected
    long = pipe([sentences[-1]], return_details=True)[0]
    assert len(long["tags"]) == 150 and len(long["word_scores"]) == 150
    for entity in long["entities"]:
        i, j = entity["word_span"]
        assert entity["word"] == " ".join(sentences[-1][i:j])


def test_input_forms_and_offsets(oracle):
    text = "  Paris,  John   Smith!"
    (paris, john) = oracle(text)
    assert text[paris["start"] : paris["end"]] == paris["word"] == "Paris"
    assert text[john["start"] : john["end"]] == john["word"] == "John   Smith"
    assert [w for w, _, _ in split_words("@john_doe loves #NYC: https://t.co/x1 don't U.S.")] == [
        "@john_doe",
        "loves",
        "#NYC",
        ":",
        "https://t.co/x1",
        "don't",
        "U.S.",
    ]  # WNUT keeps U.S. whole
    words = ["John", "Smith", "visited", "Paris"]
    expected = [("person", "John Smith", 0, 10), ("location", "Paris", 19, 24)]
    as_tuples = [
        [(e["entity_group"], e["word"], e["start"], e["end"]) for e in r]
        for r in (
            oracle(words, is_split_into_words=True)[0],  # one pre-split input: [[...]], as in transformers
            oracle({"tokens": words}),
            oracle({"text": "John Smith visited Paris"}),
            oracle([words])[0],
            oracle([{"tokens": words}])[0],
        )
    ]
    assert all(t == expected for t in as_tuples)
    batch = oracle(["John Smith", "", "nothing here", "Paris"], batch_size=2)
    assert [[e["word"] for e in r] for r in batch] == [["John Smith"], [], [], ["Paris"]]
    streamed = list(oracle(x for x in ["Paris", {"tokens": ["John"], "context": "singer"}]))
    assert [r[0]["word"] for r in streamed] == ["Paris", "John"] and streamed[1][0]["context_used"]
    assert oracle([]) == [] and oracle("") == []
    with pytest.raises(ValueError, match="one context"):
        oracle(["a", "b"], context=[["x"]])
    with pytest.raises(TypeError, match="cannot read"):
        oracle(42)
    with pytest.raises(TypeError, match="unexpected"):
        oracle("Paris", no_such_option=1)


def test_context_must_be_a_string_or_strings(oracle):
    for bad, fragment in (
        ([None], "item 0 is NoneType None"),
        ({"a": "b"}, "got dict"),
        ([1, "x"], "item 0 is int"),
        (3, "got int"),
    ):
        with pytest.raises(TypeError, match=re.escape(fragment)) as err:
            oracle("Bieber lands", context=bad)
        assert str(err.value).startswith("context= must be a string or a list of snippet strings")  # one wording
    with pytest.raises(TypeError, match=r"context= must be.*item 0 is NoneType"):
        oracle(["Bieber lands"], context=[[None]])  # a batch: one entry per input
    with pytest.raises(TypeError, match=r"for a batch must be a list with one entry per input"):
        oracle(["Bieber lands"], context={"a": "b"})
    with pytest.raises(TypeError, match=r"the input dict's 'context' must be"):
        oracle({"text": "Bieber lands", "context": {"singer": 1}})
    out = oracle(["Paris", "Bieber lands"], context=[None, ("Bieber the singer",)], return_details=True)
    assert [o["context_used"] for o in out] == [False, True]  # None and tuples are fine


def test_view_mismatch_warnings(minilm_tokenizer):
    pipe = clner_pipeline(tiny_model(trained_with_context=False, train_views="sentence"), minilm_tokenizer)
    with pytest.warns(UserWarning, match="trained without external contexts"):
        pipe("Paris is nice", context=["Paris is in France"])
    pipe = clner_pipeline(tiny_model(train_views="context"), minilm_tokenizer)
    with pytest.warns(UserWarning, match="only on the context view"):
        pipe(["Paris is nice", "so is Rome"])


def test_aggregation_options_and_registry(oracle):
    from transformers.pipelines import PIPELINE_REGISTRY

    assert TASK in PIPELINE_REGISTRY.get_supported_tasks()
    assert oracle("John Smith", ignore_labels=["person"]) == []
    with warnings.catch_warnings():  # the default, and per word: no warning
        warnings.simplefilter("error")
        assert [e["entity_group"] for e in oracle("John Smith", aggregation_strategy="simple")] == ["person"]
        assert [e["entity"] for e in oracle("John Smith", aggregation_strategy="none")] == ["B-person", "I-person"]
    # sub-token strategies: see test_sub_token_aggregation_strategies_are_simple_without_a_warning
    with pytest.raises(ValueError, match="aggregation_strategy"):
        oracle("x", aggregation_strategy="bogus")
    with pytest.raises(TypeError, match="CLNERForTokenClassification"):
        from transformers import BertForTokenClassification

        CLNERTokenClassificationPipeline(
            model=BertForTokenClassification(tiny_bert_config(num_labels=3)), tokenizer=oracle.tokenizer
        )


def test_pipeline_file_imports_modeling_both_ways():
    source = (REPO_ROOT / "pipeline_clner.py").read_text(encoding="utf-8")
    assert "from .modeling_clner import" in source and "from modeling_clner import" in source
    assert (
        "import clner.retrieval.retriever" not in source
    )  # loaded lazily with importlib: the Hub copy works without it
    assert Path(sys.modules["pipeline_clner"].__file__).resolve() == (REPO_ROOT / "pipeline_clner.py").resolve()


# ------------------------------------------------------------------------------------------------ live retrieval
def test_retrieval_and_fallbacks(oracle, monkeypatch):
    queries = []

    def search(query, k):
        queries.append(query)
        return ["Justin Bieber is a singer", {"title": "", "body": ""}, {"title": "Bieber", "body": "pop singer"}]

    out = oracle(["Bieber lands", "Paris"], retrieve=True, retriever=search, return_details=True)
    assert queries == ["Bieber lands", "Paris"]
    assert all(o["context_used"] and o["context_source"] == "retrieved" for o in out)
    # a dict result reads as clner-retrieve writes it into training contexts (one check, in the inference core)
    assert out[0]["context"] == ["Justin Bieber is a singer", "Bieber - pop singer"]
    from clner.retrieval.backends import CallableBackend

    assert CallableBackend(search, name="same").search("Bieber lands", 10) == out[0]["context"]
    queries.clear()
    assert [e["word"] for e in out[0]["entities"]] == ["Bieber"]
    # a given context wins over retrieval
    queries.clear()
    given = oracle("Bieber lands", context="no trigger", retrieve=True, retriever=search, return_details=True)
    assert queries == [] and given["context_source"] == "given" and given["entities"] == []

    def broken(query, k):
        raise ConnectionError("network is unreachable")

    with pytest.warns(UserWarning, match="fell back to the sentence view.*retrieval failed"):
        failed = oracle("Bieber lands", retrieve=True, retriever=broken, return_details=True)
    assert not failed["context_used"]
    assert "retrieval failed (ConnectionError: network is unreachable)" in failed["note"]
    with pytest.warns(UserWarning, match="retrieval found no context"):
        (entity,) = oracle("Paris", retrieve=True, retriever=lambda q, k: [])
    assert entity["context_used"] is False and "note" not in entity  # the note is per input, not per entity
    with pytest.warns(UserWarning, match="retrieval found no context"):
        details = oracle("Paris", retrieve=True, retriever=lambda q, k: [], return_details=True)
    assert details["note"] == "sentence view: retrieval found no context"
    with pytest.warns(UserWarning, match="the given context is empty"):
        oracle("Paris", context=["  "])
    with warnings.catch_warnings():  # no context asked for: a note, no warning
        warnings.simplefilter("error")
        assert (
            oracle("Paris", return_details=True)["note"]
            == "sentence view: no context given, and no retrieval asked for"
        )
        assert all(
            set(e) == {"entity_group", "score", "word", "start", "end", "word_span", "context_used"}
            for e in oracle("John Smith went to Paris")
        )
    # no retriever and no clner.retrieval.retriever (as on the Hub): the sentence view, saying why
    monkeypatch.setitem(sys.modules, "clner.retrieval.retriever", None)
    with pytest.warns(UserWarning, match="live retrieval needs"):
        assert not oracle("Paris", retrieve=True, return_details=True)["context_used"]


def test_a_search_function_returning_a_string_is_a_failed_retrieval(oracle):
    with pytest.warns(UserWarning, match="retrieval failed"):
        out = oracle(
            "Bieber lands", retrieve=True, retriever=lambda q, k: "Justin Bieber is a singer", return_details=True
        )
    assert not out["context_used"] and "returned a str" in out["note"]


def test_retrieval_with_a_context_retriever(oracle, tmp_path):
    retrieval = pytest.importorskip("clner.retrieval.retriever")
    retriever = retrieval.ContextRetriever(
        lambda q, k: ["Bieber the singer", "Bieber the singer"],
        config=retrieval.RetrievalConfig(rerank=False),
        cache_path=tmp_path / "cache.sqlite",
    )
    pipe = clner_pipeline(oracle.model, oracle.tokenizer, device="cpu", retriever=retriever, retrieve=True)
    (entity,) = pipe("Bieber lands")
    assert entity["word"] == "Bieber" and entity["context_used"]
    assert pipe("Bieber lands", return_details=True)["context"] == ["Bieber the singer"]  # de-duplicated


def test_a_hanging_or_failing_query_costs_only_its_own_input_the_context(oracle):
    """Live retrieval with a plain search function: a query that hangs is given up on after `retrieval_timeout`, one
    that raises fails alone, and the input whose query answers keeps its context."""
    import threading
    import time

    release, calls = threading.Event(), []

    def search(query, k):
        calls.append(query)
        if query == "Paris hangs":
            release.wait(20)  # "forever", released when the test ends
        if query == "Paris fails":
            raise ConnectionError("reset by peer")
        return ["Justin Bieber is a singer"]

    started = time.monotonic()
    try:
        with pytest.warns(UserWarning, match=r"2 input\(s\) fell back to the sentence view .*retrieval timed out"):
            out = oracle(
                ["Paris hangs", "Paris fails", "Bieber lands"],
                retrieve=True,
                retriever=search,
                retrieval_timeout=0.2,
                return_details=True,
            )
    finally:
        release.set()
    assert time.monotonic() - started < 10 and calls == ["Paris hangs", "Paris fails", "Bieber lands"]
    assert [o["context_used"] for o in out] == [False, False, True]
    assert out[0]["note"] == (
        "sentence view: retrieval timed out (no answer within 0.2 s; the pipeline's retrieval_timeout= sets the limit)"
    )
    assert out[1]["note"] == "sentence view: retrieval failed (ConnectionError: reset by peer)"
    assert out[2]["context"] == ["Justin Bieber is a singer"] and out[2]["context_source"] == "retrieved"
    assert [e["word"] for e in out[2]["entities"]] == ["Bieber"] and out[2]["note"] is None
    # the limit is a pipeline default too, checked when given; a plain function gets 30 s unless told otherwise
    pipe = clner_pipeline(
        oracle.model, oracle.tokenizer, device="cpu", retrieve=True, retriever=search, retrieval_timeout=0.2
    )
    release = threading.Event()  # the search function reads this one now
    try:
        with pytest.warns(UserWarning, match="retrieval timed out"):
            assert not pipe("Paris hangs", return_details=True)["context_used"]
    finally:
        release.set()
    for bad in (0, -1.0, float("nan"), "30", True):
        with pytest.raises(ValueError, match="retrieval_timeout must be a positive number of seconds or None"):
            oracle("Paris", retrieve=True, retriever=search, retrieval_timeout=bad)
    from pipeline_clner import DEFAULT_RETRIEVAL_TIMEOUT, _CallableRetriever

    assert DEFAULT_RETRIEVAL_TIMEOUT == 30.0 and _CallableRetriever(search).timeout == 30.0


def test_a_failed_query_of_a_context_retriever_or_a_retriever_object_keeps_the_others(oracle, tmp_path):
    """A `ContextRetriever` times out by its own `RetrievalConfig.search_timeout` and says which query failed; any
    other retriever object whose batch call raises is asked again query by query, so only the bad one falls back."""
    import threading

    retrieval = pytest.importorskip("clner.retrieval.retriever")
    release = threading.Event()

    def search(query, k):
        if query == "Paris hangs":
            release.wait(20)
        if query == "Paris fails":
            raise ValueError("bad query")
        return ["Bieber the singer"]

    retriever = retrieval.ContextRetriever(
        CallableBackend(search, name="hangs-fails-answers"),
        config=retrieval.RetrievalConfig(rerank=False, search_timeout=0.2, max_retries=0, min_interval=0.0),
        cache_path=tmp_path / "cache.sqlite",
    )
    try:
        with pytest.warns(UserWarning, match="fell back"):
            out = oracle(
                ["Paris hangs", "Paris fails", "Bieber lands"], retrieve=True, retriever=retriever, return_details=True
            )
    finally:
        release.set()
    assert [o["context_used"] for o in out] == [False, False, True]
    assert out[0]["note"].startswith("sentence view: retrieval timed out (SearchTimeoutError: no answer within 0.2 s")
    assert out[1]["note"] == "sentence view: retrieval failed (ValueError: bad query)"

    class Batched:  # a retriever object of one's own: the whole batch raises when one query is bad
        def __init__(self):
            self.batches = []

        def retrieve_batch(self, queries):
            self.batches.append(list(queries))
            if "Paris fails" in queries:
                raise ValueError("bad query in the batch")
            return [(["Bieber the singer"], [1.0]) for _ in queries]

    batched = Batched()
    with pytest.warns(UserWarning, match="fell back"):
        out = oracle(["Paris fails", "Bieber lands"], retrieve=True, retriever=batched, return_details=True)
    assert batched.batches == [["Paris fails", "Bieber lands"], ["Paris fails"], ["Bieber lands"]]
    assert [o["context_used"] for o in out] == [False, True]
    assert out[0]["note"] == "sentence view: retrieval failed (ValueError: bad query in the batch)"


# ------------------------------------------------------------------------- transformers' token-classification contract
def hf_token_classifier(tokenizer):
    """transformers' own token-classification pipeline on a tiny BERT with the same tokenizer: the reference for
    output shapes, offsets and `index`."""
    from transformers import BertForTokenClassification, pipeline

    torch.manual_seed(0)
    config = tiny_bert_config(
        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)}
    )
    return pipeline(
        "token-classification", model=BertForTokenClassification(config).eval(), tokenizer=tokenizer, device="cpu"
    )


def test_sub_token_aggregation_strategies_are_simple_without_a_warning(oracle):
    """ "first", "average" and "max" make a word's label from its sub-tokens in transformers; the CRF labels whole
    words, so they are "simple": accepted silently, as call options and as pipeline defaults."""
    from transformers.pipelines.token_classification import AggregationStrategy

    text = "John Smith met Smith in Paris."
    simple = oracle(text, aggregation_strategy="simple")
    assert [e["word"] for e in simple] == ["John Smith", "Smith", "Paris"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for strategy in ("first", "average", "max", "FIRST", AggregationStrategy.MAX, AggregationStrategy.AVERAGE):
            assert oracle(text, aggregation_strategy=strategy) == simple
        pipe = clner_pipeline(oracle.model, oracle.tokenizer, device="cpu", aggregation_strategy="average")
        assert pipe(text) == simple


def test_stride_sets_the_window_overlap_in_words(minilm_tokenizer, monkeypatch):
    """`stride=` (transformers: sub-tokens that chunks share) is the words that windows of a long input share, in
    place of the model's `config.window_stride`, as a call option or a pipeline default, with "none" as well."""
    import pipeline_clner

    model = tiny_model(max_seq_length=32)
    pipe = clner_pipeline(model, minilm_tokenizer, device="cpu")
    strides, real = [], pipeline_clner.encode_example
    monkeypatch.setattr(
        pipeline_clner, "encode_example", lambda *a, **k: strides.append(a[4]) or real(*a, **k)
    )  # (tokenizer, words, context, max_seq_length, stride, separator)
    words = [f"tok{i}" for i in range(80)]  # many windows of 30 words
    pipe([words], return_details=True)
    got = pipe([words], stride=4, return_details=True)[0]
    assert strides == [model.config.window_stride, 4] and model.config.window_stride == 16
    assert len(got["tags"]) == 80
    pipe([words], stride=0, aggregation_strategy="none")  # transformers refuses stride with "none"; windows need not
    clner_pipeline(model, minilm_tokenizer, device="cpu", stride=2)([words])
    assert strides[2:] == [0, 2]
    model.config.window_stride = 4  # the same windows as the model's own setting
    assert got["tags"] == model.predict([words], minilm_tokenizer)[0]
    for bad in (-1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="stride= must be a whole number of words"):
            pipe("Paris", stride=bad)
    with pytest.raises(ValueError, match="stride= 30 is not smaller than the 30 words a window of max_seq_length 32"):
        pipe("Paris", stride=30)
    with pytest.raises(ValueError, match="stride= 20 is not smaller than the 14 words"):
        pipe("Paris", stride=20, max_seq_length=16)


def test_offset_mapping_is_refused_with_a_reason(oracle):
    assert oracle("Paris", offset_mapping=None) == oracle("Paris")
    with pytest.raises(ValueError, match=r"offset_mapping= is not supported by the CLNER pipeline.*word_splitter="):
        oracle("Paris", offset_mapping=[(0, 0), (0, 5), (0, 0)])


def test_delimiter_joins_pre_split_words_for_offsets(oracle, minilm_tokenizer):
    words = ["John", "Smith", "visited", "Paris"]
    text = " | ".join(words)
    (out,) = oracle(words, is_split_into_words=True, delimiter=" | ")
    assert [(e["word"], e["start"], e["end"], e["word_span"]) for e in out] == [
        ("John | Smith", 0, 12, [0, 2]),
        ("Paris", 25, 30, [3, 4]),
    ]
    assert all(text[e["start"] : e["end"]] == e["word"] for e in out)
    # every word starts where transformers' pipeline starts its first sub-token, for the same words and delimiter
    (ref,) = hf_token_classifier(minilm_tokenizer)(words, is_split_into_words=True, delimiter=" | ", ignore_labels=[])
    (each,) = oracle(words, is_split_into_words=True, delimiter=" | ", aggregation_strategy="none", ignore_labels=[])
    assert [e["start"] for e in each] == [e["start"] for e in ref if not e["word"].startswith("##")]
    # dicts and batches of pre-split words too; raw text is never re-joined
    assert oracle({"tokens": words}, delimiter=" | ") == out
    assert oracle([words, ["Paris"]], delimiter=" | ")[0] == out
    assert oracle("John Smith", delimiter=" | ") == oracle("John Smith")
    with pytest.raises(ValueError, match="delimiter= must be a string"):
        oracle(words, is_split_into_words=True, delimiter=3)


def test_one_pre_split_input_gives_a_list_of_one_result_as_transformers(oracle, minilm_tokenizer):
    words = ["John", "Smith", "visited", "Paris"]
    ref = hf_token_classifier(minilm_tokenizer)(words, is_split_into_words=True)
    assert isinstance(ref, list) and len(ref) == 1 and isinstance(ref[0], list)  # the installed transformers
    out = oracle(words, is_split_into_words=True)
    assert out == [oracle({"tokens": words})] and [e["word"] for e in out[0]] == ["John Smith", "Paris"]
    assert out[0][0]["word_span"] == [0, 2] and out[0][0]["context_used"] is False  # CLNER's own keys stay
    assert oracle(tuple(words), is_split_into_words=True) == out
    details = oracle(words, is_split_into_words=True, return_details=True)
    assert isinstance(details, list) and len(details) == 1 and details[0]["words"] == words
    # a batch of pre-split sentences is a batch either way; a text or a dict stays one input (a flat list)
    assert oracle([words, ["Paris"]], is_split_into_words=True) == [out[0], oracle("Paris")]
    assert oracle({"tokens": words}, is_split_into_words=True) == out[0]
    pipe = clner_pipeline(oracle.model, oracle.tokenizer, device="cpu", is_split_into_words=True)  # as a default
    assert pipe(words) == out


def test_none_mode_index_is_the_first_sub_token_position_as_in_transformers(oracle, minilm_tokenizer):
    """`index` in "none" mode is, as in transformers, the word's first sub-token position in `[CLS] words [SEP]`
    (one entry per word, not per sub-token); `word_span` gives the word index. Long inputs and the context view
    keep the positions of the whole sentence."""
    words = ["Unbelievably", "John", "Smithson", "visited", "Paris", "yesterday"]  # 5 and 2 sub-tokens
    hf = hf_token_classifier(minilm_tokenizer)
    (ref,) = hf(words, is_split_into_words=True, ignore_labels=[])
    first_pieces = [(e["index"], e["start"]) for e in ref if not e["word"].startswith("##")]
    (out,) = oracle(words, is_split_into_words=True, aggregation_strategy="none", ignore_labels=[])
    assert [(e["index"], e["start"]) for e in out] == first_pieces
    assert [e["index"] for e in out] == [1, 6, 7, 9, 10, 11]
    assert [e["word_span"] for e in out] == [[i, i + 1] for i in range(len(words))]
    assert set(out[1]) == {"entity", "score", "index", "word", "start", "end", "word_span", "context_used"}
    text = " ".join(words)
    assert [e["index"] for e in oracle(text, aggregation_strategy="none", ignore_labels=[])] == [
        e["index"] for e in hf(text, ignore_labels=[]) if not e["word"].startswith("##")
    ]
    tagged = oracle(text, aggregation_strategy="none", context="singer")
    assert [(e["word"], e["index"]) for e in tagged] == [("John", 6), ("Smithson", 7), ("Paris", 10)]
    # a long input cut into windows: positions in the whole input's encoding
    long = ["Paris"] * 40 + ["Unbelievably"] * 40 + ["John"]
    pipe = clner_pipeline(oracle.model, oracle.tokenizer, device="cpu", max_seq_length=32)
    (got,) = pipe(long, is_split_into_words=True, aggregation_strategy="none", ignore_labels=[])
    word_ids = minilm_tokenizer(long, is_split_into_words=True, verbose=False).word_ids()
    first = {}
    for pos, w in enumerate(word_ids):
        if w is not None:
            first.setdefault(w, pos)
    assert [e["index"] for e in got] == [first[i] for i in range(len(long))] and got[-1]["index"] == 241


def test_docs_pipeline_md_covers_every_argument_and_output_key(oracle):
    """docs/pipeline.md is the one place for the differences from transformers' pipeline: it names every argument
    and every output key."""
    import inspect

    doc = (REPO_ROOT / "docs" / "pipeline.md").read_text(encoding="utf-8")
    cls = CLNERTokenClassificationPipeline
    names = {
        p.name
        for fn in (cls.__init__, cls.__call__, cls._sanitize_parameters)
        for p in inspect.signature(fn).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in ("self", "inputs")
    }
    keys = {*oracle("John Smith")[0], *oracle("John Smith", return_details=True)}
    keys |= set(oracle("John Smith", aggregation_strategy="none")[0])
    missing = sorted(n for n in names | keys | {"batch_size", "num_workers"} if f"`{n}`" not in doc)
    assert not missing, f"docs/pipeline.md does not name {missing}"


def test_a_tokenizer_shorter_than_the_model_is_said_once(minilm_tokenizer):
    import copy
    import warnings

    from conftest import tiny_clner
    from pipeline_clner import clner_pipeline

    tokenizer = copy.deepcopy(minilm_tokenizer)
    tokenizer.model_max_length = 32
    model = tiny_clner(["O", "B-person", "I-person"], max_seq_length=64)
    pipe = clner_pipeline(model, tokenizer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe("John lives in Paris")
        pipe("John lives in Paris")
    said = [str(w.message) for w in caught if "model_max_length 32" in str(w.message)]
    assert len(said) == 1 and "below the model's max_seq_length 64" in said[0], said
