"""clner-export-onnx (`clner.commands.export_onnx`): its user errors (no [onnx] extra, a missing or non-CLNER model
folder) are one line each, before the model loads or any folder is made."""

import sys

import pytest

from clner.commands import export_onnx as export_onnx_cmd
from modeling_clner import CLNERForTokenClassification


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
    for missing, flags in (("onnx", []), ("onnxruntime", ["--check"])):
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
