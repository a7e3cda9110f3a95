"""Publishing and loading: the exact folder uploaded, the upload call (against a local stand-in for the Hub),
remote-code loading of the model and the pipeline in a process that cannot import this project, and proof that only
safetensors are read."""

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects
from transformers import AutoModel, AutoModelForTokenClassification

import modeling_clner
from clner.hub.model_card import REVISION_PLACEHOLDER, build_model_card
from clner.hub.upload import check_hub_folder, hub_files, push_to_hub, save_for_hub
from conftest import BLOCK_PROJECT, LABELS, REPO_ROOT, SENTENCES, isolated_env, tiny_bert_config, tiny_clner
from modeling_clner import CLNERForTokenClassification
from pipeline_clner import TASK, clner_pipeline

TEXTS = ["John Smith lives in New York, doesn't he?", "Paris is nice", ""]
CONTEXTS = [["John Smith is a singer ."], None, "nothing"]
METRICS = {
    "eval_sentence_precision": 0.5,
    "eval_sentence_recall": 0.4,
    "eval_sentence_f1": 0.444,
    "eval_context_precision": 0.6,
    "eval_context_recall": 0.5,
    "eval_context_f1": 0.545,
}
EXPECTED_FILES = {
    "README.md",
    "config.json",
    "model.safetensors",
    *modeling_clner.REMOTE_CODE_FILES,
    "tokenizer_config.json",
    "tokenizer.json",
}
TOKEN = "hf_TestTokenThatMustNeverLeak123"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model():
    return tiny_clner(decisive=True, max_seq_length=64)


@pytest.fixture(scope="module")
def published(tmp_path_factory, minilm_tokenizer):
    """A folder written by save_for_hub (over a stale pickle of an earlier save), and the model."""
    model = tiny_model()
    folder = tmp_path_factory.mktemp("hub") / "clner-wnut17"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # stale pickle weights of an earlier save
    card = build_model_card(
        model.config,
        METRICS,
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        dataset_name="WNUT-17",
        dataset_id="wnut_17",
        repo_id="org/clner-wnut17",
    )
    assert save_for_hub(model, minilm_tokenizer, folder, card) == folder
    return folder, model


def test_save_for_hub_writes_the_complete_folder(published):
    folder, _ = published
    files = {p.name for p in folder.iterdir()}
    assert files == EXPECTED_FILES  # the stale pytorch_model.bin is gone; nothing pickled
    assert set(hub_files(folder)) == EXPECTED_FILES == set(check_hub_folder(folder))
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "modeling_clner.CLNERConfig",
        "AutoModel": "modeling_clner.CLNERForTokenClassification",
        "AutoModelForTokenClassification": "modeling_clner.CLNERForTokenClassification",
    }
    assert config["custom_pipelines"] == {
        "token-classification": {  # one task: pipeline(model=repo) needs it
            "impl": "pipeline_clner.CLNERTokenClassificationPipeline",
            "pt": ["AutoModelForTokenClassification"],
            "type": "text",
        }
    }
    for name in modeling_clner.REMOTE_CODE_FILES:
        assert (folder / name).read_bytes() == (REPO_ROOT / name).read_bytes()
    assert (folder / "model.safetensors").read_bytes()[:8] != b"PK\x03\x04"  # not a torch zip pickle
    card = ModelCard.load(folder / "README.md")
    assert card.data.pipeline_tag == "token-classification" and len(card.data.eval_results) == 6


def test_a_base_models_auto_map_and_code_are_never_carried_over(tmp_path, minilm_tokenizer, caplog):
    """Security: a base model whose config.json / tokenizer_config.json map auto classes to its own code (here
    `evil.py`, lying in the folder as continued training in place leaves it) gives a CLNER model that carries only
    CLNER's own `auto_map` and `custom_pipelines`; the Hub folder and its upload hold no code but CLNER's, and a
    folder with a foreign entry is refused."""
    import copy

    from transformers import BertModel

    from clner.hub.upload import strip_tokenizer_auto_map

    base = tmp_path / "base"
    torch.manual_seed(0)
    BertModel(tiny_bert_config()).save_pretrained(base)
    cfg = json.loads((base / "config.json").read_text())
    cfg["auto_map"] = {"AutoModel": "evil.EvilModel", "AutoConfig": "attacker/code--evil.EvilConfig"}
    (base / "config.json").write_text(json.dumps(cfg))
    model = CLNERForTokenClassification.from_encoder(str(base), id2label=LABELS)
    tokenizer = copy.deepcopy(minilm_tokenizer)
    tokenizer.init_kwargs["auto_map"] = {"AutoTokenizer": ["evil.EvilTok", None]}
    out = tmp_path / "clner"
    out.mkdir()
    (out / "evil.py").write_text("raise SystemExit('evil code ran')\n")
    with caplog.at_level("WARNING"):
        save_for_hub(model, tokenizer, out)
    config = json.loads((out / "config.json").read_text())
    assert set(config["auto_map"].values()) <= {
        "modeling_clner.CLNERConfig",
        "modeling_clner.CLNERForTokenClassification",
    }
    assert "auto_map" not in config["encoder"] and list(config["custom_pipelines"]) == ["token-classification"]
    assert "auto_map" not in json.loads((out / "tokenizer_config.json").read_text())
    assert "tokenizer auto_map" in caplog.text
    files = check_hub_folder(out)
    assert "evil.py" not in files and {f for f in files if f.endswith(".py")} == set(modeling_clner.REMOTE_CODE_FILES)
    # a folder whose files were edited afterwards is refused, naming the entry
    bad = json.loads((out / "tokenizer_config.json").read_text())
    bad["auto_map"] = {"AutoTokenizer": ["evil.EvilTok", None]}
    (out / "tokenizer_config.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="tokenizer_config.json auto_map"):
        check_hub_folder(out)
    strip_tokenizer_auto_map(out)
    config["auto_map"]["AutoTokenizer"] = "evil.EvilTok"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="auto_map holds entries that are not CLNER's.*evil.EvilTok"):
        check_hub_folder(out)


def test_save_for_hub_keeps_or_replaces_an_existing_card_saying_so(published, tmp_path, minilm_tokenizer, caplog):
    folder = tmp_path / "model"
    shutil.copytree(published[0], folder)
    mine = "---\nlicense: mit\n---\n\n# My own notes on this model\n"
    (folder / "README.md").write_text(mine, encoding="utf-8")
    _, model = published
    with caplog.at_level("WARNING", logger="clner.hub.model_card"):
        save_for_hub(model, minilm_tokenizer, folder)  # no card given: the one there stays
    assert (folder / "README.md").read_text(encoding="utf-8") == mine and "replacing" not in caplog.text
    card = build_model_card(model.config, METRICS, base_model=None, dataset_name="WNUT-17")
    with caplog.at_level("WARNING", logger="clner.hub.model_card"):
        save_for_hub(model, minilm_tokenizer, folder, card)
    assert f"replacing the model card {folder / 'README.md'} with a new one" in caplog.text
    assert ModelCard.load(folder / "README.md").data.eval_results
    caplog.clear()
    with caplog.at_level("WARNING", logger="clner.hub.model_card"):
        save_for_hub(model, minilm_tokenizer, folder, card)  # the same card again: nothing to say
    assert "replacing" not in caplog.text


def test_check_hub_folder_names_what_is_missing(published, tmp_path):
    folder, _ = published
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "pipeline_clner.py").unlink()
    (broken / "model.safetensors").rename(broken / "weights.safetensors.bak")
    config = json.loads((broken / "config.json").read_text())
    del config["custom_pipelines"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"missing pipeline_clner\.py.*missing model\.safetensors.*custom_pipelines"):
        check_hub_folder(broken)
    # a second task would make a task-less pipeline(model=repo) call refuse the model
    config["custom_pipelines"] = {
        "token-classification": dict(impl="pipeline_clner.CLNERTokenClassificationPipeline"),
        "ner": dict(impl="pipeline_clner.CLNERTokenClassificationPipeline"),
    }
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError,
        match=r"custom_pipelines lists \['ner', 'token-classification'\]; only "
        r"'token-classification' may be listed",
    ):
        check_hub_folder(broken)


class FakeHub:
    """Stands in for the Hub: records HfApi.create_repo / create_branch / upload_folder / upload_file calls and, for
    upload_folder, the files it would send (the same pattern filtering as huggingface_hub)."""

    def __init__(self, monkeypatch):
        self.calls = []
        hub = self

        def create_repo(api, repo_id, *, token=None, private=None, exist_ok=False, repo_type=None, **kwargs):
            hub.calls.append(
                ("create_repo", repo_id, dict(token=token, private=private, exist_ok=exist_ok, repo_type=repo_type))
            )
            return SimpleNamespace(repo_id=repo_id)

        def create_branch(api, repo_id, *, branch, token=None, exist_ok=False, repo_type=None, **kwargs):
            hub.calls.append(("create_branch", repo_id, dict(branch=branch, token=token, exist_ok=exist_ok)))

        def upload_folder(
            api,
            *,
            repo_id,
            folder_path,
            commit_message=None,
            token=None,
            repo_type=None,
            revision=None,
            create_pr=None,
            allow_patterns=None,
            ignore_patterns=None,
            **kwargs,
        ):
            root = Path(folder_path)
            every = sorted(p.relative_to(root).as_posix() for p in root.glob("**/*") if p.is_file())
            sent = list(
                filter_repo_objects(
                    every,
                    allow_patterns=allow_patterns,
                    ignore_patterns=list(ignore_patterns or []) + DEFAULT_IGNORE_PATTERNS,
                )
            )
            hub.calls.append(
                (
                    "upload_folder",
                    repo_id,
                    dict(
                        files={f: (root / f).read_bytes() for f in sent},
                        commit_message=commit_message,
                        token=token,
                        repo_type=repo_type,
                        revision=revision,
                        create_pr=create_pr,
                    ),
                )
            )
            return SimpleNamespace(
                oid="0123456789abcdef" * 2 + "01234567",
                commit_url="https://hub/commit",
                pr_revision="refs/pr/3" if create_pr else None,
            )

        def upload_file(
            api,
            *,
            path_or_fileobj,
            path_in_repo,
            repo_id,
            token=None,
            repo_type=None,
            revision=None,
            commit_message=None,
            **kwargs,
        ):
            hub.calls.append(
                (
                    "upload_file",
                    repo_id,
                    dict(
                        path=path_in_repo,
                        content=path_or_fileobj,
                        token=token,
                        revision=revision,
                        commit_message=commit_message,
                    ),
                )
            )

        for name, fn in (
            ("create_repo", create_repo),
            ("create_branch", create_branch),
            ("upload_folder", upload_folder),
            ("upload_file", upload_file),
        ):
            monkeypatch.setattr(HfApi, name, fn)

    def names(self):
        return [c[0] for c in self.calls]


def test_push_to_hub_uploads_exactly_the_folder(published, tmp_path, monkeypatch):
    folder = tmp_path / "out"
    shutil.copytree(published[0], folder)
    # what a training output dir also holds: none of it may be uploaded
    (folder / "training_args.bin").write_bytes(pickle.dumps({"lr": 1}))
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "model.safetensors").write_bytes(b"x")
    (folder / "checkpoint-10" / "optimizer.pt").write_bytes(b"x")
    (folder / "runs").mkdir()
    (folder / "runs" / "events.out.tfevents.1").write_bytes(b"x")
    (folder / "run_config.json").write_text("{}")
    (folder / "predictions_context.txt").write_text("x")
    (folder / ".git").mkdir()
    (folder / ".git" / "config").write_text("x")
    (folder / "eval_results.json").write_text(json.dumps(METRICS))
    expected = EXPECTED_FILES | {"eval_results.json"}
    assert set(hub_files(folder)) == expected
    readme_before = (folder / "README.md").read_bytes()

    hub = FakeHub(monkeypatch)
    info = push_to_hub(
        folder, "org/clner-wnut17", revision="v1.0", private=True, token=TOKEN, commit_message="CLNER WNUT-17"
    )
    assert hub.names() == ["create_repo", "create_branch", "upload_folder", "upload_file"]
    assert hub.calls[0][1:] == ("org/clner-wnut17", dict(token=TOKEN, private=True, exist_ok=True, repo_type="model"))
    assert hub.calls[1][1:] == ("org/clner-wnut17", dict(branch="v1.0", token=TOKEN, exist_ok=True))
    upload = hub.calls[2][2]
    assert set(upload["files"]) == expected
    assert upload["files"]["README.md"] == readme_before
    assert upload["files"]["model.safetensors"] == (published[0] / "model.safetensors").read_bytes()
    assert (
        upload["revision"],
        upload["token"],
        upload["commit_message"],
        upload["create_pr"],
        upload["repo_type"],
    ) == ("v1.0", TOKEN, "CLNER WNUT-17", False, "model")
    # the card's usage example is pinned to the uploaded commit, on the same branch
    pin = hub.calls[3][2]
    assert pin["path"] == "README.md" and pin["revision"] == "v1.0" and pin["token"] == TOKEN
    assert REVISION_PLACEHOLDER.encode() in readme_before and REVISION_PLACEHOLDER.encode() not in pin["content"]
    assert f'revision="{info.oid}"'.encode() in pin["content"]
    assert (folder / "README.md").read_bytes() == pin["content"]


def test_push_to_hub_pull_request_and_refusals(published, tmp_path, monkeypatch):
    folder = tmp_path / "out"
    shutil.copytree(published[0], folder)
    hub = FakeHub(monkeypatch)
    with pytest.raises(ValueError, match="pull request"):
        push_to_hub(folder, "org/clner-wnut17", revision="v1.0", create_pr=True)
    assert hub.calls == []
    push_to_hub(folder, "org/clner-wnut17", create_pr=True)
    assert hub.names() == ["create_repo", "upload_folder", "upload_file"]
    assert hub.calls[1][2]["create_pr"] is True and hub.calls[1][2]["revision"] is None
    assert hub.calls[2][2]["revision"] == "refs/pr/3"
    assert hub.calls[0][2] == dict(token=None, private=None, exist_ok=True, repo_type="model")
    # a token written into an uploaded file stops the upload
    (folder / "notes.md").write_text(f"token: {TOKEN}")
    with pytest.raises(ValueError, match="token appears in.*notes.md"):
        push_to_hub(folder, "org/clner-wnut17", token=TOKEN)
    (folder / "notes.md").unlink()
    (folder / "modeling_clner.py").unlink()
    with pytest.raises(ValueError, match="missing modeling_clner.py"):
        push_to_hub(folder, "org/clner-wnut17")


def test_local_auto_classes_read_only_safetensors(published, tmp_path, minilm_tokenizer, monkeypatch):
    """After `import modeling_clner`, AutoModel works without remote code; a stray pickle is never unpickled."""
    folder = tmp_path / "model"
    shutil.copytree(published[0], folder)
    _, model = published
    torch.save({k: torch.zeros_like(v) for k, v in model.state_dict().items()}, folder / "pytorch_model.bin")

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a pickle was loaded")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    for auto in (AutoModel, AutoModelForTokenClassification):
        again = auto.from_pretrained(folder)
        assert type(again) is modeling_clner.CLNERForTokenClassification
        for (name, p), (_, q) in zip(model.state_dict().items(), again.state_dict().items()):
            assert torch.equal(p, q), name
    pipe = clner_pipeline(str(folder))  # local code, folder path
    assert (
        pipe(TEXTS, return_details=True)[0]["tags"]
        == clner_pipeline(model, minilm_tokenizer)(TEXTS, return_details=True)[0]["tags"]
    )
    # only the pickle: refused, not unpickled
    (folder / "model.safetensors").unlink()
    with pytest.raises(OSError):
        AutoModelForTokenClassification.from_pretrained(folder, use_safetensors=True)


def test_remote_code_model_and_pipeline_in_isolated_process(published, tmp_path, minilm_tokenizer):
    """The Hub simulated by a local folder: a process that cannot import this project loads the model (both auto
    classes) and the pipeline with trust_remote_code=True under every name a user would try ("ner",
    "token-classification", no task, and this project's own task name), and never opens the stray pickle lying next
    to the safetensors. Other models still get transformers' own NER pipeline. A plain `save_pretrained` folder (a
    Trainer checkpoint) loads the same way and serves the CLNER pipeline under "ner" and "token-classification"."""
    from transformers import BertForTokenClassification

    source, model = published
    folder = tmp_path / "org" / "clner-wnut17"
    shutil.copytree(source, folder)
    marker = tmp_path / "pickle-was-loaded"
    plain = tmp_path / "plain-bert-ner"
    BertForTokenClassification(tiny_bert_config(num_labels=3)).save_pretrained(plain)
    minilm_tokenizer.save_pretrained(plain)

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Evil()))
    expected_predict = model.predict(SENTENCES, minilm_tokenizer)
    model.save_pretrained(tmp_path / "saved-pretrained")  # what Trainer checkpoints hold: no save_for_hub
    minilm_tokenizer.save_pretrained(tmp_path / "saved-pretrained")
    expected_text = model.predict(TEXTS[0], minilm_tokenizer)
    local = clner_pipeline(model, minilm_tokenizer)
    expected_pipe = local(TEXTS)
    expected_ctx = local(TEXTS, context=CONTEXTS, return_details=True)
    checksum = float(sum(p.double().abs().sum() for p in model.state_dict().values()))

    script = BLOCK_PROJECT + textwrap.dedent(f"""
        import json, os
        opened = []
        def hook(event, args):
            if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
                name = os.fsdecode(args[0])
                if name.endswith((".bin", ".pkl", ".pt")):
                    opened.append(name)
        sys.addaudithook(hook)
        import torch
        torch.set_num_threads(1)
        from transformers import AutoModel, AutoModelForTokenClassification, AutoTokenizer, pipeline
        path = {str(folder)!r}
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
        out = {{}}
        models = [auto.from_pretrained(path, trust_remote_code=True).eval()
                  for auto in (AutoModelForTokenClassification, AutoModel)]
        out["model_modules"] = [type(m).__module__ for m in models]
        out["predict"] = [m.predict({SENTENCES!r}, tok) for m in models]
        out["predict_text"] = models[0].predict({TEXTS[0]!r}, tok)
        out["checksum"] = float(sum(p.double().abs().sum() for p in models[0].state_dict().values()))
        pipes = {{task: pipeline(task, model=path, trust_remote_code=True)
                 for task in ("ner", "token-classification", {TASK!r})}}
        pipes["no task"] = pipeline(model=path, trust_remote_code=True, batch_size=2)
        out["pipeline_classes"] = {{task: type(p).__module__ + "." + type(p).__name__ for task, p in pipes.items()}}
        out["pipe"] = {{task: p({TEXTS!r}) for task, p in pipes.items()}}
        out["pipe_ctx"] = pipes["no task"]({TEXTS!r}, context={CONTEXTS!r}, return_details=True)
        # live retrieval on the Hub copy: no clner.retrieval.retriever here, a plain search function works
        out["retrieved"] = pipes["ner"]("Paris is nice", retrieve=True, retriever=lambda q, k: ["Paris is in France"],
                                        return_details=True)["context_used"]
        # the alias is served, never saved: a re-saved model still loads without a task
        pipes["ner"].model.save_pretrained({str(tmp_path / "resaved")!r})
        out["resaved"] = json.load(open({str(tmp_path / "resaved" / "config.json")!r}))["custom_pipelines"]
        # other models keep transformers' own pipeline under the standard names
        out["plain"] = type(pipeline("ner", model={str(plain)!r})).__name__
        # a plain save_pretrained folder (a Trainer checkpoint too) loads the same way and serves the CLNER pipeline
        saved = {str(tmp_path / "saved-pretrained")!r}
        out["saved_predict"] = [auto.from_pretrained(saved, trust_remote_code=True).eval().predict({SENTENCES!r}, tok)
                                for auto in (AutoModelForTokenClassification, AutoModel)]
        out["saved_pipelines"] = [type(pipeline(task, model=saved, trust_remote_code=True)).__name__
                                  for task in ("ner", "token-classification")]
        out["opened"] = opened
        print(json.dumps(out))
    """)
    env = isolated_env(tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "custom code?" not in proc.stdout  # nothing prompted: every remote-code load was explicitly trusted
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(m.startswith("transformers_modules.") and m.endswith(".modeling_clner") for m in out["model_modules"])
    assert set(out["pipeline_classes"]) == {"ner", "token-classification", TASK, "no task"}
    assert all(
        p.startswith("transformers_modules.") and p.endswith(".pipeline_clner.CLNERTokenClassificationPipeline")
        for p in out["pipeline_classes"].values()
    )
    assert out["predict"] == [expected_predict, expected_predict]
    assert [(e["entity_group"], e["start"], e["end"]) for e in out["predict_text"]] == [
        (e["entity_group"], e["start"], e["end"]) for e in expected_text
    ]
    assert out["checksum"] == pytest.approx(checksum, rel=1e-12)

    def key(entities):
        return [(e["entity_group"], e["word"], e["start"], e["end"], e["context_used"]) for e in entities]

    for task, got_pipe in out["pipe"].items():
        assert [key(r) for r in got_pipe] == [key(r) for r in expected_pipe], task
        for got, want in zip(got_pipe, expected_pipe):
            assert [e["score"] for e in got] == pytest.approx([e["score"] for e in want], abs=1e-5)
    assert [(r["tags"], r["context_used"], key(r["entities"])) for r in out["pipe_ctx"]] == [
        (r["tags"], r["context_used"], key(r["entities"])) for r in expected_ctx
    ]
    assert out["retrieved"] is True
    assert list(out["resaved"]) == ["token-classification"]
    assert out["plain"] == "TokenClassificationPipeline"
    assert out["saved_predict"] == [expected_predict, expected_predict]
    assert out["saved_pipelines"] == ["CLNERTokenClassificationPipeline"] * 2
    assert out["opened"] == [] and not marker.exists()  # the stray pickle was never even opened


def test_run_ner_cl_push_to_hub_uploads_the_hub_folder(tiny_encoder_dir, tmp_path, monkeypatch):
    """`run_ner_cl.py --push_to_hub --hub_model_id ...`: one upload of the clner folder (no pickles, no checkpoints),
    with the user's revision / private / token, and no upload by the Trainer itself."""
    import run_ner_cl

    hub = FakeHub(monkeypatch)
    sample = REPO_ROOT / "examples" / "data"
    out = tmp_path / "clner-test"
    run_ner_cl.main(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(sample / "train.txt"),
            "--validation_file",
            str(sample / "dev.txt"),
            "--do_train",
            "--do_eval",
            "--max_train_samples",
            "16",
            "--max_eval_samples",
            "8",
            "--num_train_epochs",
            "1",
            "--max_seq_length",
            "64",
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--push_to_hub",
            "--hub_model_id",
            "org/clner-test",
            "--hub_revision",
            "v1",
            "--hub_private_repo",
            "true",
            "--hub_token",
            TOKEN,
            "--token",
            TOKEN,
        ]
    )
    uploads = [c for c in hub.calls if c[0] == "upload_folder"]
    assert len(uploads) == 1 and uploads[0][1] == "org/clner-test"
    recorded = (out / "run_config.json").read_text()  # the run's arguments, next to the model: no credential
    assert TOKEN not in recorded and json.loads(recorded)["model"]["token"] == "<redacted>"
    sent = uploads[0][2]
    assert set(sent["files"]) >= EXPECTED_FILES and sent["revision"] == "v1" and sent["token"] == TOKEN
    assert not any(f.endswith((".bin", ".pt", ".pkl")) or f.startswith("checkpoint-") for f in sent["files"])
    assert not any(TOKEN.encode() in content for content in sent["files"].values())
    create = [c for c in hub.calls if c[0] == "create_repo"]
    assert create and create[0][2]["private"] is True and create[0][2]["token"] == TOKEN
    config = json.loads(sent["files"]["config.json"])
    assert list(config["custom_pipelines"]) == ["token-classification"] and config["auto_map"]["AutoModel"]
    card = ModelCard(sent["files"]["README.md"].decode())
    assert {"clner", "crf"} <= set(card.data.tags)
    assert card.data.base_model is None  # a local encoder path is not a Hub id


def test_run_ner_cl_push_to_hub_offline_fails_before_training(tiny_encoder_dir, tmp_path, capsys):
    """With the Hub unreachable, `--push_to_hub` stops in seconds, before loading data or training, with one
    paragraph (no traceback) that says nothing was trained and how to upload later; a bad id stops the same way."""
    out = tmp_path / "never-trained"
    argv = [
        sys.executable,
        str(REPO_ROOT / "run_ner_cl.py"),
        "--model_name_or_path",
        str(tiny_encoder_dir),
        "--train_file",
        str(REPO_ROOT / "examples" / "data" / "train.txt"),
        "--do_train",
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        "--push_to_hub",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        argv + ["--hub_model_id", "org/clner-x"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Encoding train" not in proc.stderr + proc.stdout
    (message,) = [line for line in proc.stderr.splitlines() if line.startswith("run_ner_cl.py: error:")]
    assert re.fullmatch(
        r"run_ner_cl\.py: error: --push_to_hub: cannot create or reach the model repository "
        r"'org/clner-x' on the Hugging Face Hub \(\w+.*\)\. Nothing was trained\. Log in .*"
        r"\(HF_HUB_OFFLINE is set\).*upload the output folder later with `clner-push OUTPUT_DIR "
        r"org/clner-x`",
        message,
    )
    assert not out.exists() or not any(out.iterdir())
    # a bad id stops the same way (in this process: the subprocess above already showed the exit path)
    import run_ner_cl
    from clner.cli import run_cli

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_cli(run_ner_cl.main, argv[2:] + ["--hub_model_id", "org/bad id!"], prog="run_ner_cl.py")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--hub_model_id 'org/bad id!' is not a valid Hub repository id" in err
    assert not out.exists() or not any(out.iterdir())


def test_run_ner_cl_failed_upload_names_the_folder_and_the_command(tiny_encoder_dir, tmp_path, monkeypatch, capsys):
    import run_ner_cl

    hub = FakeHub(monkeypatch)

    def unreachable(api, **kwargs):
        raise ConnectionError("Network is unreachable")

    monkeypatch.setattr(HfApi, "upload_folder", unreachable)
    sample = REPO_ROOT / "examples" / "data"
    out = tmp_path / "clner-test"
    with pytest.raises(SystemExit) as exit_info:
        run_ner_cl.main(
            [
                "--model_name_or_path",
                str(tiny_encoder_dir),
                "--train_file",
                str(sample / "train.txt"),
                "--do_train",
                "--max_train_samples",
                "8",
                "--max_steps",
                "1",
                "--max_seq_length",
                "64",
                "--output_dir",
                str(out),
                "--report_to",
                "none",
                "--save_strategy",
                "no",
                "--push_to_hub",
                "--hub_model_id",
                "org/clner-test",
                "--hub_revision",
                "v1",
                "--hub_private_repo",
                "true",
            ]
        )
    assert exit_info.value.code == 1
    assert hub.names() == ["create_repo", "create_repo", "create_branch"]  # before training, then to upload
    captured = capsys.readouterr()
    assert captured.out.rstrip().endswith("=" * 100) and f"output folder: {out}" in captured.out
    assert captured.err.strip().splitlines()[-1].split(": ", 1)[1] == (
        "the upload to 'org/clner-test' failed (ConnectionError: Network is unreachable). The model "
        f"folder {out} is complete (weights, card, remote code, tokenizer); upload it with `clner-push {out} "
        "org/clner-test --revision v1 --private`"
    )
    assert set(check_hub_folder(out)) >= EXPECTED_FILES


def test_clner_push_command(published, tmp_path, monkeypatch, capsys):
    """`clner-push FOLDER REPO_ID` (what a failed run tells the user to run): uploads the folder; an unreachable Hub
    or an incomplete folder is one line, not a traceback."""
    from clner.commands.push import main as clner_push

    folder = tmp_path / "out"
    shutil.copytree(published[0], folder)
    hub = FakeHub(monkeypatch)
    assert clner_push([str(folder), "org/clner-wnut17", "--revision", "v1", "--private"]) == 0
    assert hub.names() == ["create_repo", "create_branch", "upload_folder", "upload_file"]
    assert hub.calls[0][2]["private"] is True and hub.calls[2][2]["revision"] == "v1"
    assert capsys.readouterr().out.strip() == f"uploaded {folder} to https://hub/commit"

    def unreachable(api, *args, **kwargs):
        raise ConnectionError("Network is unreachable")

    monkeypatch.setattr(HfApi, "create_repo", unreachable)
    with pytest.raises(SystemExit) as exit_info:
        clner_push([str(folder), "org/clner-wnut17"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        f"clner-push: the upload of {folder} to 'org/clner-wnut17' failed (ConnectionError: Network is unreachable). "
        "Log in (`hf auth login`) or pass --token, check the network, and run this command again"
    )
    (folder / "model.safetensors").unlink()
    with pytest.raises(SystemExit) as exit_info:
        clner_push([str(folder), "org/clner-wnut17"])
    assert exit_info.value.code == 2 and "missing model.safetensors" in capsys.readouterr().err


def test_push_to_hub_never_uploads_symbolic_links(published, tmp_path, monkeypatch, capsys):
    """A symbolic link in the folder would upload what it points to - here a secret outside the folder - under the
    link's name: the upload (and `clner-push`) is refused before any Hub call, naming the link and its target. Links
    that the upload ignores anyway (a checkpoint, the logs, a dot-file) are left alone, and the upload sends exactly
    the checked regular files, as the library itself selects them."""
    from clner.commands.push import main as clner_push

    folder = tmp_path / "out"
    shutil.copytree(published[0], folder)
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "key.json").write_text('{"key": "hunter2"}')
    (folder / "notes.md").symlink_to(secret)
    (folder / "extra").symlink_to(elsewhere, target_is_directory=True)
    hub = FakeHub(monkeypatch)
    with pytest.raises(
        ValueError,
        match=rf"refusing symbolic links.*: extra -> {re.escape(str(elsewhere))}, "
        rf"notes\.md -> {re.escape(str(secret))} \(replace each by a copy",
    ):
        push_to_hub(folder, "org/clner-wnut17")
    assert hub.calls == []
    with pytest.raises(SystemExit) as exit_info:
        clner_push([str(folder), "org/clner-wnut17"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("clner-push: error: ") and f"notes.md -> {secret}" in err
    assert hub.calls == []
    from clner.hub.upload import hub_links

    assert set(hub_files(folder)) == EXPECTED_FILES and hub_links(folder) == ["extra", "notes.md"]
    # the card itself as a link: refused too (and then missing)
    readme = folder / "README.md"
    readme.rename(tmp_path / "README.md")
    readme.symlink_to(tmp_path / "README.md")
    with pytest.raises(ValueError, match=r"refusing symbolic links.*README\.md -> .*missing README\.md"):
        check_hub_folder(folder)
    readme.unlink()
    (tmp_path / "README.md").rename(readme)

    # links that no upload sends: a linked checkpoint, log folder or dot-file
    (folder / "notes.md").unlink()
    (folder / "extra").unlink()
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "model.safetensors").write_bytes(b"x")
    (folder / "checkpoint-best").symlink_to("checkpoint-10", target_is_directory=True)
    (folder / "runs").symlink_to(elsewhere, target_is_directory=True)
    (folder / ".secret").symlink_to(secret)
    assert hub_links(folder) == [] and set(check_hub_folder(folder)) == EXPECTED_FILES
    seen = {}
    fake_upload_folder = HfApi.upload_folder

    def upload_folder(api, **kwargs):
        seen.update(kwargs)
        return fake_upload_folder(api, **kwargs)

    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    push_to_hub(folder, "org/clner-wnut17")
    (upload,) = [c[2] for c in hub.calls if c[0] == "upload_folder"]
    assert set(upload["files"]) == EXPECTED_FILES and sorted(seen["allow_patterns"]) == sorted(EXPECTED_FILES)
    # what huggingface_hub itself would send with these patterns (its file selection, without the network)
    if hasattr(HfApi, "_prepare_upload_folder_additions"):
        monkeypatch.setattr(HfApi, "_validate_yaml", lambda api, *args, **kwargs: None)
        (folder / "notes.md").symlink_to(secret)
        additions = HfApi()._prepare_upload_folder_additions(
            folder, "", allow_patterns=seen["allow_patterns"], ignore_patterns=seen["ignore_patterns"]
        )
        assert {op.path_in_repo for op in additions} == EXPECTED_FILES
        unguarded = HfApi()._prepare_upload_folder_additions(folder, "", ignore_patterns=seen["ignore_patterns"])
        assert "notes.md" in {op.path_in_repo for op in unguarded}  # why links are refused: the library follows them


def test_run_config_never_holds_a_credential():
    """`--token hf_...` (or any other credential) never reaches run_config.json, which lies next to the model and may
    be shared; the rest of the run's arguments are recorded as they were."""
    import dataclasses

    from transformers import TrainingArguments

    import run_ner_cl
    from clner import arguments, run_utils
    from clner.arguments import CLArguments

    model_args = arguments.ModelArguments(model_name_or_path="bert-base-cased", token=TOKEN)
    data_args = arguments.DataTrainingArguments(
        train_file="train.txt", token_column_name="words", context_source=f"https://user:{TOKEN}@example.org/contexts"
    )
    content = run_ner_cl.run_config(model_args, data_args, CLArguments(cl_loss="kl"))
    assert TOKEN not in json.dumps(content)
    assert content["model"]["token"] == "<redacted>" and content["model"]["model_name_or_path"] == "bert-base-cased"
    assert content["data"]["token_column_name"] == "words" and content["data"]["train_file"] == "train.txt"
    assert content["data"]["context_source"] == "https://user:<redacted>@example.org/contexts"
    assert content["cl"] == dataclasses.asdict(CLArguments(cl_loss="kl"))
    assert json.loads(json.dumps(content)) == content
    # a dict built like the real one, with the Trainer's own arguments nested in it and other kinds of credential
    training = dataclasses.asdict(
        TrainingArguments(output_dir="out", hub_token=TOKEN, hub_always_push=True, report_to="none")
    )
    raw = {
        "model": dataclasses.asdict(model_args),
        "training": training,
        "extra": {
            "use_auth_token": TOKEN,
            "hub_token_id": TOKEN,
            "token": True,
            "retriever": [{"api_key": "k1"}],
            "db_password": "pw",
            "max_tokens": 5,
            "token_file": "/home/me/.cache/huggingface/token",
        },
    }
    redacted = run_utils.redact_credentials(raw)
    assert TOKEN not in repr(redacted) and "'k1'" not in repr(redacted) and "'pw'" not in repr(redacted)
    assert redacted["training"]["hub_token"] == redacted["extra"]["use_auth_token"] == "<redacted>"
    assert redacted["extra"]["hub_token_id"] == redacted["extra"]["retriever"][0]["api_key"] == "<redacted>"
    assert redacted["training"]["hub_always_push"] is True and redacted["extra"]["token"] is True
    assert redacted["extra"]["max_tokens"] == 5 and redacted["extra"]["token_file"].endswith("huggingface/token")
    assert {k: v for k, v in redacted["training"].items() if k != "hub_token"} == {
        k: v for k, v in training.items() if k != "hub_token"
    }
    assert raw["training"]["hub_token"] == TOKEN  # the run's own arguments are left alone
