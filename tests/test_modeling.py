"""CLNERConfig / CLNERForTokenClassification: config checks, loading, the forward pass and its loss, saving, and
`predict` (texts or words, contexts, windows)."""

import json
import os
import re

import pytest
import torch
from transformers import AutoModel, AutoModelForTokenClassification

from conftest import LABELS, SENTENCES, tiny_bert_config, tiny_clner
from crf_clner import scheme_constraints
from inference_clner import encode_example
from modeling_clner import CLNERConfig, CLNERForTokenClassification, tags_to_ids


def tiny_model(**kwargs):
    return tiny_clner(**kwargs)


def batch_of(features, prefix=""):
    from inference_clner import pad_view

    return {k: torch.tensor(v) for k, v in pad_view(features, prefix, 0).items()}


def test_config_roundtrip(tmp_path):
    config = CLNERConfig(
        encoder=tiny_bert_config().to_dict(),
        id2label=dict(enumerate(LABELS)),
        tag_scheme="bio",
        cl_loss="l2",
        trained_with_context=False,
    )
    config.save_pretrained(tmp_path)
    again = CLNERConfig.from_pretrained(tmp_path)
    assert again.model_type == "clner" and again.encoder.model_type == "bert"
    assert again.encoder.hidden_size == 32 and again.labels == LABELS and again.label2id["B-person"] == 1
    assert again.tag_scheme == "BIO" and again.cl_loss == "l2" and again.trained_with_context is False
    with pytest.raises(ValueError, match="tag_scheme"):
        CLNERConfig(encoder=tiny_bert_config().to_dict(), id2label=dict(enumerate(LABELS)), tag_scheme="IOB1")


def test_a_config_whose_scheme_contradicts_its_labels_is_refused_at_load(tmp_path):
    from crf_clner import check_label_scheme

    tiny_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["tag_scheme"] = "BIOES"  # a BIO model declared BIOES: no entity could end, it would predict only O
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"type\(s\) \['location', 'person'\] have no E- tag.*set tag_scheme 'BIO'"):
        CLNERForTokenClassification.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"labels \['PER', 'LOC'\] have no B-/I- prefix.*--tag_scheme IO"):
        CLNERForTokenClassification(
            CLNERConfig(encoder=tiny_bert_config().to_dict(), id2label={0: "O", 1: "PER", 2: "LOC"})
        )
    check_label_scheme(["O", "B-x", "I-x", "E-x", "S-x", "S-y"], "BIOES")  # a type with only S- tags is fine


def test_from_encoder_loads_encoder_weights_and_inits_crf(minilm_dir):
    model = CLNERForTokenClassification.from_pretrained(str(minilm_dir), id2label=LABELS)
    plain = AutoModel.from_pretrained(str(minilm_dir))
    for (name, p), (_, q) in zip(model.encoder.state_dict().items(), plain.state_dict().items()):
        assert torch.equal(p, q), name
    for p in (model.crf.transitions, model.crf.start_transitions, model.crf.end_transitions):
        assert p.abs().max() <= 0.1 and p.abs().max() > 0
    start, trans, end = scheme_constraints(LABELS, "BIO")
    assert torch.equal(model.crf.allowed_transitions, trans) and torch.equal(model.crf.allowed_start, start)
    assert model.config.labels == LABELS and model.config.name_or_path == str(minilm_dir)


def test_forward_shapes_loss_and_word_alignment(minilm_tokenizer):
    model = tiny_model()
    tags = [["B-person", "I-person", "O", "O", "B-location", "I-location"], ["B-location", "O", "O"], ["O"]]
    features = [f for words in SENTENCES for f in encode_example(minilm_tokenizer, words)]
    batch = batch_of(features)
    width = batch["word_index"].shape[1]
    labels = torch.full((3, width), -100)
    for i, t in enumerate(tags):
        labels[i, : len(t)] = torch.tensor(tags_to_ids(t, model.config.label2id))
    out = model(**batch, labels=labels)
    assert out.logits.shape == (3, 6, len(LABELS)) and out.word_hidden_states.shape == (3, 6, 32)
    assert out.word_mask.sum(1).tolist() == [6, 3, 1]
    assert torch.isfinite(out.loss) and out.loss > 0
    # the loss is the mean CRF NLL of the word-level emissions
    manual = model.crf.nll(out.logits, labels.clamp_min(0), out.word_mask).mean()
    assert out.loss.item() == pytest.approx(manual.item(), rel=1e-5) or model.training
    # each word's representation is its first sub-token's
    model.eval()
    out = model(**batch)
    hidden = model.encoder(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"]
    ).last_hidden_state
    torch.testing.assert_close(out.word_hidden_states[0, 4], hidden[0, batch["word_index"][0, 4]])
    assert out.word_hidden_states[2, 1:].abs().sum() == 0


def test_bad_inputs_are_clear_errors(minilm_tokenizer):
    model = tiny_model()
    batch = batch_of(encode_example(minilm_tokenizer, SENTENCES[1]))
    with pytest.raises(ValueError, match="word_index"):
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    with pytest.raises(ValueError, match="labels shape"):
        model(**batch, labels=torch.zeros(1, 7, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 5\)"):
        model(**batch, labels=torch.tensor([[0, 9, 0]]))
    with pytest.raises(ValueError, match="B-org"):
        tags_to_ids(["O", "B-org"], model.config.label2id, "dev.txt line 4")
    with pytest.raises(ValueError, match="past the input length"):
        model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], word_index=torch.tensor([[1, 2, 40]])
        )


def test_loss_never_nan_with_extreme_inputs(minilm_tokenizer):
    model = tiny_model()
    with torch.no_grad():
        model.classifier.weight.mul_(1e4)
    batch = batch_of(encode_example(minilm_tokenizer, SENTENCES[0]))
    out = model(**batch, labels=torch.tensor([[1, 2, 0, 0, 3, 4]]))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_predict_stitches_windows_and_matches_decode(minilm_tokenizer):
    model = tiny_model(max_seq_length=64).eval()
    words = [f"tok{i}" for i in range(150)]
    preds = model.predict([words, SENTENCES[1]], minilm_tokenizer)
    assert len(preds[0]) == 150 and len(preds[1]) == 3
    assert all(p in LABELS for p in preds[0])
    batch = batch_of(encode_example(minilm_tokenizer, SENTENCES[1]))
    out = model(**batch)
    assert model.decode(out.logits, out.word_mask)[0] == preds[1]


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
    assert [key(r) for r in batch] == [key(want), key(oracle(words, is_split_into_words=True)[0]), []]
    # a list of sentences gives tags by default (a text is split on whitespace)
    assert model.predict(["John Smith met Paris", words], tok) == [
        ["B-person", "I-person", "O", "B-location"],
        ["B-location", "O", "O"],
    ]
    assert model.predict("", tok) == []


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


def test_raw_tokenizer_output_says_to_use_predict_or_the_pipeline(oracle):
    with pytest.raises(
        ValueError,
        match=r"labels words with a CRF, so it needs `word_index`.*"
        r"model\.predict\(\"some text\", tokenizer\).*pipeline\(\"ner\"",
    ):
        oracle.model(**oracle.tokenizer("John Smith", return_tensors="pt"))


def test_view_mismatch_warnings(minilm_tokenizer):
    model = tiny_model(trained_with_context=False, train_views="sentence").eval()
    with pytest.warns(UserWarning, match="trained without external contexts"):
        model.predict([SENTENCES[1]], minilm_tokenizer, contexts=[["Paris is in France"]])
    model = tiny_model(train_views="context").eval()
    with pytest.warns(UserWarning, match="only on the context view"):
        model.predict([SENTENCES[1]], minilm_tokenizer)


def test_save_reload_auto_classes(tmp_path, minilm_tokenizer):
    model = tiny_model(crf_constraints=False).eval()
    model.save_pretrained(tmp_path)
    files = sorted(os.listdir(tmp_path))
    assert "model.safetensors" in files and "modeling_clner.py" in files and "pipeline_clner.py" in files
    assert list(json.loads((tmp_path / "config.json").read_text())["custom_pipelines"]) == ["token-classification"]
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "modeling_clner.CLNERConfig",
        "AutoModel": "modeling_clner.CLNERForTokenClassification",
        "AutoModelForTokenClassification": "modeling_clner.CLNERForTokenClassification",
    }
    for auto in (AutoModel, AutoModelForTokenClassification):
        again = auto.from_pretrained(tmp_path).eval()
        assert isinstance(again, CLNERForTokenClassification)
        assert again.crf.use_constraints is False
        for (name, p), (_, q) in zip(model.state_dict().items(), again.state_dict().items()):
            assert torch.equal(p, q), name
    assert again.predict(SENTENCES, minilm_tokenizer) == model.predict(SENTENCES, minilm_tokenizer)


@pytest.mark.parametrize(
    "id2label,fragment",
    [
        ({0: "O", 1: "B-x", 2: "B-x"}, "ids 1 and 2 are both named 'B-x'"),
        ({0: "O", 2: "B-x"}, "ids [1] are missing"),
        ({0: "O", 1: "B-x "}, "label 1 'B-x ' is empty or holds whitespace"),
    ],
)
def test_a_config_whose_labels_collapse_is_refused(id2label, fragment):
    """A config.json whose id2label has a gap, two ids of one name or a padded name is refused with the ids named,
    not loaded with a silently smaller label set."""
    with pytest.raises(ValueError, match=re.escape(fragment)):
        CLNERConfig(encoder=tiny_bert_config().to_dict(), id2label=id2label)


def test_a_broken_model_folder_is_named_at_load(tmp_path):
    """A truncated or empty model.safetensors, a label count or hidden size that does not match the weights, and a
    negative window_stride in config.json are each a ValueError at load, naming the file and what differs."""
    import shutil

    good = tmp_path / "good"
    tiny_model().save_pretrained(good)
    cases = {}
    for name in ("truncated", "empty", "labels", "hidden", "stride"):
        shutil.copytree(good, tmp_path / name)
        cases[name] = tmp_path / name
    weights = cases["truncated"] / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    (cases["empty"] / "model.safetensors").write_bytes(b"")
    for name, edit in (
        (
            "labels",
            lambda c: c.update(
                id2label={str(i): lab for i, lab in enumerate(LABELS + ["B-extra", "I-extra"])}, label2id=None
            ),
        ),
        ("hidden", lambda c: c["encoder"].update(hidden_size=64)),
        ("stride", lambda c: c.update(window_stride=-2)),
    ):
        config = json.loads((cases[name] / "config.json").read_text())
        edit(config)
        config = {k: v for k, v in config.items() if v is not None}
        (cases[name] / "config.json").write_text(json.dumps(config))
    for name, pattern in (
        ("truncated", r"truncated/model\.safetensors is truncated or not a safetensors file"),
        ("empty", r"empty/model\.safetensors is truncated or not a safetensors file"),
        (
            "labels",
            rf"labels: the weights do not match config\.json \({len(LABELS) + 2} labels, "
            r"hidden size 32\): classifier\.weight is \[\d+, 32\] in model\.safetensors",
        ),
        ("hidden", r"hidden: the weights do not match config\.json .*hidden size 64"),
        ("stride", r"config\.json window_stride must be a whole number >= 0, got -2"),
    ):
        with pytest.raises(ValueError, match=pattern):
            CLNERForTokenClassification.from_pretrained(cases[name])


def test_max_seq_length_beyond_the_encoder_is_refused_before_the_encoder_fails(minilm_tokenizer):
    """`max_seq_length` beyond the encoder's positions (100000 on a 700-word sentence, given or from config.json)
    and one that leaves no room for words (2) are ValueErrors naming the argument, before the encoder runs."""
    model = tiny_model().eval()
    words = [f"w{i}" for i in range(700)]
    with pytest.raises(ValueError, match=r"max_seq_length= 100000 exceeds the 512 positions"):
        model.predict([words], minilm_tokenizer, max_seq_length=100000)
    with pytest.raises(ValueError, match=r"max_seq_length= 2 leaves no room for words"):
        model.predict([words], minilm_tokenizer, max_seq_length=2)
    model.config.max_seq_length = 100000
    with pytest.raises(ValueError, match=r"config\.json max_seq_length 100000 exceeds"):
        model.predict([words], minilm_tokenizer)
    model.config.max_seq_length = 64
    assert len(model.predict([words], minilm_tokenizer)[0]) == 700  # windows, every word tagged


def test_predict_loads_the_models_own_tokenizer_once(tmp_path, minilm_tokenizer, tiny_encoder_dir, monkeypatch):
    """`model.predict(text)` without a tokenizer, as SpanMarker's `predict`: the tokenizer saved where the model was
    loaded from, loaded once without remote code and kept on the model; a `from_encoder` model uses its encoder's."""
    import transformers

    tiny_clner(decisive=True).save_pretrained(tmp_path)
    minilm_tokenizer.save_pretrained(tmp_path)
    model = CLNERForTokenClassification.from_pretrained(tmp_path).eval()
    calls, real = [], transformers.AutoTokenizer.from_pretrained

    def spy(path, *args, **kwargs):
        calls.append((str(path), kwargs.get("trust_remote_code")))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", spy)
    text = "John Smith lives in New York"
    assert model.predict(text) == model.predict(text, minilm_tokenizer)
    assert model.predict([text, ["Paris", "is", "nice"]]) == model.predict(
        [text, ["Paris", "is", "nice"]], minilm_tokenizer
    )
    assert calls == [(str(tmp_path), False)]  # once, and never trusting remote code
    encoder_based = CLNERForTokenClassification.from_encoder(str(tiny_encoder_dir), LABELS).eval()
    assert encoder_based.predict(text) == encoder_based.predict(text, minilm_tokenizer)
    assert calls[-1] == (str(tiny_encoder_dir), False)


def test_predict_without_a_tokenizer_says_when_there_is_none_to_load(tmp_path):
    with pytest.raises(ValueError, match=r"model\.predict needs tokenizer=: this model was built in memory"):
        tiny_clner().predict("Paris is nice")
    tiny_clner().save_pretrained(tmp_path)  # a folder without a tokenizer
    with pytest.raises(ValueError, match=r"model\.predict could not load the tokenizer of .*; pass tokenizer="):
        CLNERForTokenClassification.from_pretrained(tmp_path).predict("Paris is nice")


# ---------------------------------------------------------------------------------------------- id2label
@pytest.mark.parametrize(
    "id2label,message",
    [
        (["O", "B-PER"], "must map label ids to names, got a list"),
        ({"a": "O", "b": "B-PER"}, "keys must be label ids 0..1, got 'a'"),
        ({0: "O", 1: "B_PER"}, "joins its prefix with '_'"),
    ],
)
def test_a_bad_id2label_is_a_clear_error(id2label, message):
    from modeling_clner import CLNERConfig

    with pytest.raises(ValueError, match=message):
        CLNERConfig(id2label=id2label)
