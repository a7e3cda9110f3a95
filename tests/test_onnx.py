"""ONNX export and inference (`clner.onnx`): ONNX Runtime emissions + numpy Viterbi give the torch model's tags on
real WNUT-17 dev rows, in both views; the numpy CRF matches the torch CRF; the exported folder loads without a
remote-code prompt; inference without the [onnx] extra names it; a broken folder (a missing or corrupt file, crf.json
labels unlike the model's emissions or config.json's id2label, a max_seq_length past the encoder's positions) is one
clear error when it loads; the int8 export runs and tags as the float model does."""

import builtins
import importlib.util
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from clner.errors import CLNERUsageError
from clner.files import TEMP_PREFIX
from clner.onnx import EXPORT_FILE, INT8_FILE, ONNX_FILE, ONNXCLNER, export_onnx, marginals_numpy, viterbi_numpy
from conftest import SAMPLE, WNUT_LABELS, tiny_bert_config
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


# ------------------------------------------------------------------------------------------ checks at load
@pytest.fixture
def broken(exported, tmp_path):
    """A copy of the module's export, to break."""
    copy = tmp_path / "onnx"
    shutil.copytree(exported[1], copy)
    return copy


def edit_json(file, change):
    data = json.loads(file.read_text(encoding="utf-8"))
    change(data)
    file.write_text(json.dumps(data), encoding="utf-8")


def load_error(folder, **kwargs) -> str:
    """The one-line `CLNERUsageError` that loading `folder` raises."""
    with pytest.raises(CLNERUsageError) as err:
        ONNXCLNER(folder, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


@needs_onnx
def test_load_refuses_crf_labels_fewer_than_the_emission_scores(broken):
    """crf.json naming 12 labels for a model that scores 13 tags a word: today an IndexError at the first word
    tagged with the 13th; now an error at load naming crf.json and both counts."""
    edit_json(broken / "crf.json", lambda crf: crf["labels"].pop())
    message = load_error(broken)
    assert f"{broken / 'crf.json'} names 12 labels but model.onnx gives 13 emission scores a word" in message
    assert "export the model again" in message


@needs_onnx
def test_load_refuses_crf_labels_unlike_config_id2label(broken, exported):
    """Labels permuted or renamed in crf.json against config.json's id2label (today: every tag silently misnamed)
    are refused at load, naming both files and the first id that differs; the same labels load."""
    assert ONNXCLNER(broken).labels == WNUT_LABELS

    def swap(crf):
        crf["labels"][1], crf["labels"][3] = crf["labels"][3], crf["labels"][1]

    edit_json(broken / "crf.json", swap)
    message = load_error(broken)
    assert message.startswith(f"{broken / 'crf.json'} labels differ from {broken / 'config.json'} id2label")
    assert "the same labels in another order: id 1 is 'B-creative-work' in crf.json and 'B-corporation'" in message
    edit_json(broken / "crf.json", swap)  # back in order; config.json renames one label
    edit_json(broken / "config.json", lambda config: config["id2label"].update({"9": "B-human"}))
    message = load_error(broken)
    assert "other labels: id 9 is 'B-person' in crf.json and 'B-human' in config.json" in message
    assert "only in crf.json: ['B-person']; only in config.json: ['B-human']" in message


@needs_onnx
def test_load_refuses_a_max_seq_length_past_the_exported_encoder(broken):
    """config.json's max_seq_length above the exported encoder's 512 positions (today: an ONNX Runtime node failure
    at the first sentence of more than 512 sub-tokens) is refused at load, from onnx.json's record, and for an
    export without onnx.json (an earlier version's) by running a view that long; a window_stride that a window
    cannot hold too."""
    edit_json(broken / "config.json", lambda config: config.update(max_seq_length=600))
    message = load_error(broken)
    assert message.startswith(f"{broken / 'config.json'}: max_seq_length 600 exceeds the 512 positions")
    assert "use 512 or less" in message
    (broken / EXPORT_FILE).unlink()
    message = load_error(broken)
    assert message.startswith(f"{broken / 'config.json'}: max_seq_length 600 is more than the exported encoder")
    assert "use 512 or less" in message
    edit_json(broken / "config.json", lambda config: config.update(max_seq_length=64, window_stride=62))
    assert "window_stride 62 must be a whole number of words from 0 to 61" in load_error(broken)
    edit_json(broken / "config.json", lambda config: config.update(window_stride=0))
    assert ONNXCLNER(broken).window_stride == 0  # as the torch model reads it (not the default 16)


@needs_onnx
@pytest.mark.parametrize("name", ["model.onnx", "crf.json", "config.json", "tokenizer_config.json", "tokenizer.json"])
def test_load_names_a_missing_file(broken, name):
    """Today a FileNotFoundError, ONNX Runtime's NO_SUCHFILE, or (the tokenizer's files) a tokenizer that reads every
    word as [UNK]; now one error naming the folder and the file."""
    (broken / name).unlink()
    message = load_error(broken)
    assert message.startswith(f"{broken} is not a complete ONNX export of a CLNER model: ")
    assert name in message.split(": ", 1)[1]
    assert "is missing; export the model again with clner-export-onnx" in message


@needs_onnx
def test_load_names_a_missing_folder_and_corrupt_files(broken, tmp_path):
    assert load_error(tmp_path / "nowhere") == f"{tmp_path / 'nowhere'}: no such folder; give a folder that " + (
        "clner-export-onnx wrote"
    )
    (broken / "crf.json").write_text('{"labels": ["O"', encoding="utf-8")
    assert load_error(broken).startswith(f"{broken / 'crf.json'} cannot be read as JSON (")
    (broken / "crf.json").write_text(json.dumps({"labels": WNUT_LABELS}), encoding="utf-8")
    assert load_error(broken) == f"{broken / 'crf.json'} lacks start_transitions; export the model again with " + (
        "clner-export-onnx"
    )
    data = (broken / ONNX_FILE).read_bytes()
    (broken / ONNX_FILE).write_bytes(data[: len(data) // 3])  # a copy cut short
    assert load_error(broken).startswith(f"{broken / ONNX_FILE} cannot be loaded by ONNX Runtime")
    assert "a file name in" in load_error(broken, model_file="../model.onnx")


# ------------------------------------------------------------------------------------------------------- int8
def word_agreement(got, want) -> float:
    """The share of words whose tag in `got` is the one in `want`."""
    assert [len(g) for g in got] == [len(w) for w in want]
    return sum(a == b for g, w in zip(got, want) for a, b in zip(g, w)) / sum(map(len, want))


@needs_onnx
def test_int8_export_runs_and_tags_as_the_float_model(exported, minilm_tokenizer, tmp_path):
    """`quantize="int8"` writes model.int8.onnx beside model.onnx (a quarter of its size; no temporary file left)
    and onnx.json names it, so that ONNXCLNER(folder) runs it; its tags agree with the float model's on the
    quickstart sample (and the float model still gives torch's tags). The float file may be deleted; a later export
    without quantization removes the stale int8 file."""
    from clner.data.io import read_clner

    model = exported[0]
    folder = export_onnx(model, minilm_tokenizer, tmp_path / "onnx", quantize="int8")
    assert not list(folder.glob(f"{TEMP_PREFIX}*")) and not list(folder.glob("*.pre.onnx"))
    record = json.loads((folder / EXPORT_FILE).read_text())
    assert record["model_file"] == INT8_FILE and record["quantization"]["type"] == "int8"
    assert record["quantization"]["weight_type"] == "QInt8" and record["max_positions"] == 512
    assert (folder / INT8_FILE).stat().st_size < (folder / ONNX_FILE).stat().st_size / 2
    int8, float_ = ONNXCLNER(folder, threads=1), ONNXCLNER(folder, threads=1, model_file=ONNX_FILE)
    assert int8.model_file == folder / INT8_FILE and int8.quantization["per_channel"] is True
    assert float_.model_file == folder / ONNX_FILE and float_.quantization is None
    assert any(n.op_type.startswith(("MatMulInteger", "DynamicQuantize")) for n in _graph_nodes(folder / INT8_FILE))

    sentences = [r["tokens"] for r in read_clner(SAMPLE / "train.txt")]
    want = float_.predict(sentences, batch_size=16)
    assert want == model.predict(sentences, minilm_tokenizer, batch_size=16)
    got = int8.predict(sentences, batch_size=16)
    assert sum(t != "O" for tags in want for t in tags) > 100  # the comparison covers entities
    assert word_agreement(got, want) >= 0.95
    entities = int8.predict(" ".join(sentences[0]))
    assert entities and all({"entity_group", "start", "end", "score"} <= set(e) for e in entities)

    (folder / ONNX_FILE).unlink()  # a deployment keeps the int8 model alone
    assert ONNXCLNER(folder, threads=1).predict(sentences[:4]) == got[:4]
    message = load_error(folder, model_file=ONNX_FILE)
    assert "model.onnx (the encoder and emission layer) is missing" in message
    export_onnx(model, minilm_tokenizer, folder)  # float again: the int8 file of the earlier export goes
    assert not (folder / INT8_FILE).exists()
    assert json.loads((folder / EXPORT_FILE).read_text())["model_file"] == ONNX_FILE
    assert ONNXCLNER(folder).quantization is None


def _graph_nodes(path):
    import onnx

    return onnx.load(str(path)).graph.node
