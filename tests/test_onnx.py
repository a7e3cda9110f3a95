"""ONNX export and inference (`clner.onnx`): ONNX Runtime emissions + numpy Viterbi give the torch model's tags on
real WNUT-17 dev rows, in both views; the numpy CRF matches the torch CRF; the exported folder loads without a
remote-code prompt; inference without the [onnx] extra names it."""

import builtins
import importlib.util
import sys

import numpy as np
import pytest
import torch

from clner.onnx import ONNXCLNER, export_onnx, marginals_numpy, viterbi_numpy
from conftest import WNUT_LABELS, tiny_bert_config
from crf_clner import LinearChainCRF, scheme_constraints
from modeling_clner import CLNERConfig, CLNERForTokenClassification

#: export and ONNX Runtime inference need the [onnx] extra
needs_onnx = pytest.mark.skipif(
    not (importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime")),
    reason='the [onnx] extra (pip install ".[onnx]") is not installed',
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_numpy_crf_matches_torch_crf():
    torch.manual_seed(0)
    crf = LinearChainCRF(len(WNUT_LABELS), scheme_constraints(WNUT_LABELS, "BIO"))
    with torch.no_grad():
        for p in (crf.start_transitions, crf.transitions, crf.end_transitions):
            p.normal_(0, 2.0)
    emissions = torch.randn(5, 9, len(WNUT_LABELS)) * 3
    lengths = torch.tensor([9, 4, 1, 7, 2])
    mask = torch.arange(9)[None, :] < lengths[:, None]
    paths = crf.viterbi_decode(emissions, mask)
    marginals = crf.marginals(emissions, mask).detach()
    start, trans, end = crf._scores(torch.float64)
    start, trans, end = (t.detach().numpy() for t in (start, trans, end))
    for b, n in enumerate(lengths.tolist()):
        assert viterbi_numpy(emissions[b].numpy(), n, start, trans, end) == paths[b, :n].tolist()
        np.testing.assert_allclose(
            marginals_numpy(emissions[b].numpy(), n, start, trans, end), marginals[b, :n].double().numpy(), atol=1e-5
        )
    assert viterbi_numpy(emissions[0].numpy(), 0, start, trans, end) == []


@pytest.fixture(scope="module")
def exported(tmp_path_factory, minilm_tokenizer):
    torch.manual_seed(0)
    config = CLNERConfig(
        encoder=tiny_bert_config().to_dict(), id2label=dict(enumerate(WNUT_LABELS)), max_seq_length=64
    )
    model = CLNERForTokenClassification(config).eval()
    with torch.no_grad():  # decisive random emissions and transitions: many entities, constraints that matter
        model.classifier.weight.normal_(0, 1.0)
        model.crf.transitions.normal_(0, 1.0)
    folder = export_onnx(model, minilm_tokenizer, tmp_path_factory.mktemp("onnx"))
    return model, folder


@needs_onnx
def test_onnx_predictions_equal_torch_on_wnut17_dev(exported, minilm_tokenizer, wnut_dir):
    from clner.data.io import read_clner

    model, folder = exported
    rows = read_clner(wnut_dir / "dev.context.txt")[:24]
    sentences = [r["tokens"] for r in rows]
    contexts = [r["context"] for r in rows]
    assert any(len(minilm_tokenizer(s, is_split_into_words=True)["input_ids"]) > 30 for s in sentences)
    onnx_model = ONNXCLNER(folder, threads=1)
    torch_tags = model.predict(sentences, minilm_tokenizer, batch_size=8)
    assert onnx_model.predict(sentences, batch_size=8) == torch_tags
    assert sum(t != "O" for tags in torch_tags for t in tags) > 10  # the comparison covers entities
    # the context view, cut to the 64 sub-tokens of a view
    assert onnx_model.predict(sentences, contexts=contexts, batch_size=8) == model.predict(
        sentences, minilm_tokenizer, contexts=contexts, batch_size=8
    )
    # entities with offsets and scores, as torch's predict gives them
    text = " ".join(sentences[0])
    got, want = onnx_model.predict(text), model.predict(text, minilm_tokenizer)
    assert [(e["entity_group"], e["start"], e["end"]) for e in got] == [
        (e["entity_group"], e["start"], e["end"]) for e in want
    ]
    assert [e["score"] for e in got] == pytest.approx([e["score"] for e in want], abs=1e-4)


@needs_onnx
def test_long_sentence_windows(exported, minilm_tokenizer):
    model, folder = exported
    words = [f"word{i}" for i in range(120)]  # longer than 64 sub-tokens: windows stitched back
    assert ONNXCLNER(folder).predict([words]) == model.predict([words], minilm_tokenizer)


@needs_onnx
def test_onnx_predict_checks_contexts_as_torch_predict_does(exported, minilm_tokenizer):
    """One inference core: ONNX predict refuses what torch predict refuses, with the same message (fewer contexts
    than sentences too)."""
    model, folder = exported
    onnx_model = ONNXCLNER(folder)
    sentences = [["Bieber", "lands"], ["Paris"]]
    for contexts in ([["one"]], [[None], None], "ab", {"a": "b"}):
        with pytest.raises((TypeError, ValueError)) as torch_err:
            model.predict(sentences, minilm_tokenizer, contexts=contexts)
        with pytest.raises(type(torch_err.value)) as onnx_err:
            onnx_model.predict(sentences, contexts=contexts)
        assert str(onnx_err.value) == str(torch_err.value)
    assert onnx_model.predict(["", "Paris"]) == model.predict(["", "Paris"], minilm_tokenizer)  # empty text: no tags


def saved_clner_folder(path, tokenizer):
    """A CLNER model saved as training saves it: config.json with CLNER's `auto_map` (remote code for the Hub)."""
    torch.manual_seed(0)
    config = CLNERConfig(
        encoder=tiny_bert_config().to_dict(), id2label=dict(enumerate(WNUT_LABELS)), max_seq_length=64
    )
    model = CLNERForTokenClassification(config).eval()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    assert "AutoConfig" in CLNERConfig.from_pretrained(path).auto_map
    return model


def forget_clner_model_type(monkeypatch):
    """This process as one that has not imported `modeling_clner` (an `ONNXCLNER` user's): transformers does not know
    model_type 'clner', so config.json's auto_map is remote code that it asks about (prompt recorded by `input`)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    extra = getattr(CONFIG_MAPPING, "_extra_content", None)
    if not isinstance(extra, dict) or "clner" not in extra:
        pytest.skip("transformers keeps registered model types elsewhere: cannot unregister 'clner' here")
    monkeypatch.delitem(extra, "clner")
    asked = []
    monkeypatch.setattr(builtins, "input", lambda prompt="": asked.append(prompt) or "n")
    return asked


@needs_onnx
def test_an_exported_folder_loads_without_asking_to_run_remote_code(tmp_path, minilm_tokenizer, monkeypatch):
    """`AutoTokenizer.from_pretrained(folder)` reads config.json's auto_map and asks "Do you wish to run the custom
    code? [y/N]" (waiting 15 s on a terminal); `ONNXCLNER(folder)` asks nothing (input() records any question), and
    its tokenizer is the encoder's own class, as training used it."""
    from transformers import AutoTokenizer

    model = saved_clner_folder(tmp_path / "model", minilm_tokenizer)
    model = CLNERForTokenClassification.from_pretrained(tmp_path / "model")  # as the command loads it: auto_map kept
    folder = export_onnx(model, minilm_tokenizer, tmp_path / "onnx")
    asked = forget_clner_model_type(monkeypatch)
    AutoTokenizer.from_pretrained(str(folder))  # asks (answered "n" here; a terminal waits 15 s)
    assert len(asked) == 1 and "Do you wish to run the custom code?" in asked[0]
    asked.clear()
    onnx_model = ONNXCLNER(folder)
    assert asked == []
    assert type(onnx_model.tokenizer) is type(minilm_tokenizer)
    words = [["Justin", "Bieber", "lands", "in", "Paris"], ["ok"]]
    assert onnx_model.predict(words) == model.predict(words, minilm_tokenizer)


def test_inference_without_the_onnx_extra_names_it(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    with pytest.raises(ValueError, match=r'need the onnxruntime package.*pip install "\.\[onnx\]"'):
        monkeypatch.setitem(sys.modules, "onnxruntime", None)
        ONNXCLNER(tmp_path / "model")  # CLNERUsageError is a ValueError
