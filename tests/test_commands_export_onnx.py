"""clner-export-onnx (`clner.commands.export_onnx`): its user errors (no [onnx] extra, a missing or non-CLNER model
folder, an unknown quantization) are one line each, before the model loads or any folder is made; `--quantize int8`
writes an int8 model that `ONNXCLNER(OUTPUT)` runs."""

import importlib.util
import json
import sys

import pytest

from clner.commands import export_onnx as export_onnx_cmd
from clner.files import TEMP_PREFIX
from conftest import WNUT_LABELS, tiny_clner
from modeling_clner import CLNERForTokenClassification

needs_onnx = pytest.mark.skipif(
    not (importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime")),
    reason='the [onnx] extra (pip install ".[onnx]") is not installed',
)


@pytest.fixture(scope="module")
def clner_model_dir(tmp_path_factory, minilm_tokenizer):
    """A trained-looking CLNER model folder (tiny encoder, decisive emissions) as clner-train saves one."""
    path = tmp_path_factory.mktemp("clner_model")
    tiny_clner(WNUT_LABELS, decisive=True, max_seq_length=64).save_pretrained(path)
    minilm_tokenizer.save_pretrained(path)
    return path


def run_export(argv, capsys):
    """`clner-export-onnx ARGV` in this process: its exit status and its stderr lines."""
    with pytest.raises(SystemExit) as exit_info:
        export_onnx_cmd.main([str(a) for a in argv])
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def test_export_without_the_onnx_extra_is_one_line_before_any_folder_is_made(tmp_path, monkeypatch, capsys):
    """Without onnx / onnxruntime, the export is one line naming `pip install ".[onnx]"` (not a traceback from
    torch.onnx), before the model loads or OUTPUT is made."""
    (tmp_path / "model").mkdir()
    monkeypatch.setattr(
        CLNERForTokenClassification,
        "from_pretrained",
        classmethod(lambda cls, *a, **k: pytest.fail("the model was loaded")),
    )
    for missing, flags in (("onnx", []), ("onnxruntime", ["--check"]), ("onnxruntime", ["--quantize", "int8"])):
        monkeypatch.setitem(sys.modules, missing, None)  # `import onnx` raises ImportError
        code, err = run_export([tmp_path / "model", tmp_path / "out", *flags], capsys)
        assert code == 2 and len(err) == 1, err
        assert err[0].startswith(f"clner-export-onnx: error: ONNX export and inference need the {missing} package")
        assert 'pip install ".[onnx]"' in err[0]
        assert not (tmp_path / "out").exists()
        monkeypatch.delitem(sys.modules, missing)


def test_export_names_a_missing_folder_and_a_model_that_is_not_clner(tmp_path, tiny_encoder_dir, monkeypatch, capsys):
    """A missing MODEL folder is named as such (not as a malformed Hub id), and a plain encoder folder as not a CLNER
    model: one line each, before OUTPUT is made."""
    monkeypatch.setattr(export_onnx_cmd, "require_onnx", lambda *modules: None)  # these checks hold without the extra
    code, err = run_export([tmp_path / "no-such-model", tmp_path / "out"], capsys)
    assert code == 2 and err == [
        f"clner-export-onnx: error: MODEL {tmp_path / 'no-such-model'}: no such folder (a "
        "local path; a Hub model id is 'name' or 'organisation/name')"
    ]
    code, err = run_export([tiny_encoder_dir, tmp_path / "out"], capsys)
    assert code == 2 and len(err) == 1
    assert err[0].startswith(
        f"clner-export-onnx: error: MODEL {tiny_encoder_dir} is not a CLNER model (config.json model_type 'bert')"
    )
    assert not (tmp_path / "out").exists()


@needs_onnx
def test_export_quantize_int8_writes_a_model_that_onnxclner_runs(clner_model_dir, tmp_path, capsys, one_torch_thread):
    """`--quantize int8 --check`: model.onnx and model.int8.onnx (no temporary file left), onnx.json naming the
    int8 model, which `ONNXCLNER(OUTPUT)` loads and runs; the float model's tags equal torch's and the int8
    agreement is reported."""
    from clner.onnx import ONNXCLNER

    out = tmp_path / "onnx"
    code = export_onnx_cmd.main([str(clner_model_dir), str(out), "--quantize", "int8", "--check"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, lines
    assert lines[1].startswith(f"quantized it to {out / 'model.int8.onnx'} (") and lines[1].endswith(
        f"int8), which ONNXCLNER({out}) runs"
    )
    assert lines[2] == "ONNX tags equal torch tags on 2 sentences"
    assert lines[3].startswith("int8 ONNX tags equal torch tags on ") and lines[3].endswith(" of 8 words")
    assert {"model.onnx", "model.int8.onnx", "onnx.json", "crf.json", "config.json"} <= {p.name for p in out.iterdir()}
    assert not list(out.glob(f"{TEMP_PREFIX}*"))
    assert json.loads((out / "onnx.json").read_text())["model_file"] == "model.int8.onnx"
    ner = ONNXCLNER(out)
    assert ner.model_file.name == "model.int8.onnx" and ner.quantization["type"] == "int8"
    tags = ner.predict([["Justin", "Bieber", "lands", "in", "Paris"]])
    assert len(tags[0]) == 5 and set(tags[0]) <= set(WNUT_LABELS)


def test_export_refuses_an_unknown_quantization(clner_model_dir, tmp_path, capsys):
    code, err = run_export([clner_model_dir, tmp_path / "out", "--quantize", "int4"], capsys)
    assert code == 2 and "argument --quantize: invalid choice: 'int4'" in err[-1]
    assert not (tmp_path / "out").exists()
