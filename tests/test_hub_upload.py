"""The Hub folder and its upload (`clner.hub.upload`): the exact folder `save_for_hub` writes and `push_to_hub` sends
(against a local stand-in for the Hub), no code but CLNER's and no symbolic link in it, and the folder loading as
remote code, model and pipeline, in a process that cannot import this project, reading only safetensors."""

import json
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from transformers import AutoModel, AutoModelForTokenClassification

import modeling_clner
from clner.hub.model_card import REVISION_PLACEHOLDER, build_model_card
from clner.hub.upload import check_hub_folder, hub_files, hub_links, push_to_hub, save_for_hub
from conftest import (
    BLOCK_PROJECT,
    HUB_TOKEN,
    LABELS,
    REPO_ROOT,
    SENTENCES,
    VIEW_METRICS,
    FakeHub,
    folder_with_links,
    hub_folder_files,
    isolated_env,
    tiny_bert_config,
)
from modeling_clner import CLNERForTokenClassification
from pipeline_clner import TASK, clner_pipeline

TEXTS = ["John Smith lives in New York, doesn't he?", "Paris is nice", ""]
CONTEXTS = [["John Smith is a singer ."], None, "nothing"]
EXPECTED_FILES = hub_folder_files()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------ the folder
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
    card = build_model_card(model.config, VIEW_METRICS, base_model=None, dataset_name="WNUT-17")
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


# ------------------------------------------------------------------------------------------------ the upload
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
    (folder / "eval_results.json").write_text(json.dumps(VIEW_METRICS))
    expected = EXPECTED_FILES | {"eval_results.json"}
    assert set(hub_files(folder)) == expected
    readme_before = (folder / "README.md").read_bytes()

    hub = FakeHub(monkeypatch)
    info = push_to_hub(
        folder, "org/clner-wnut17", revision="v1.0", private=True, token=HUB_TOKEN, commit_message="CLNER WNUT-17"
    )
    assert hub.names() == ["create_repo", "create_branch", "upload_folder", "upload_file"]
    assert hub.calls[0][1:] == (
        "org/clner-wnut17",
        dict(token=HUB_TOKEN, private=True, exist_ok=True, repo_type="model"),
    )
    assert hub.calls[1][1:] == ("org/clner-wnut17", dict(branch="v1.0", token=HUB_TOKEN, exist_ok=True))
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
    ) == ("v1.0", HUB_TOKEN, "CLNER WNUT-17", False, "model")
    # the card's usage example is pinned to the uploaded commit, on the same branch
    pin = hub.calls[3][2]
    assert pin["path"] == "README.md" and pin["revision"] == "v1.0" and pin["token"] == HUB_TOKEN
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
    (folder / "notes.md").write_text(f"token: {HUB_TOKEN}")
    with pytest.raises(ValueError, match="token appears in.*notes.md"):
        push_to_hub(folder, "org/clner-wnut17", token=HUB_TOKEN)
    (folder / "notes.md").unlink()
    (folder / "modeling_clner.py").unlink()
    with pytest.raises(ValueError, match="missing modeling_clner.py"):
        push_to_hub(folder, "org/clner-wnut17")


def test_push_to_hub_never_uploads_symbolic_links(published, tmp_path, monkeypatch):
    """A symbolic link in the folder would upload what it points to - here a secret outside the folder - under the
    link's name: the upload is refused before any Hub call, naming the link and its target; the card itself as a
    link is refused too."""
    folder, secret, elsewhere = folder_with_links(published, tmp_path)
    hub = FakeHub(monkeypatch)
    with pytest.raises(
        ValueError,
        match=rf"refusing symbolic links.*: extra -> {re.escape(str(elsewhere))}, "
        rf"notes\.md -> {re.escape(str(secret))} \(replace each by a copy",
    ):
        push_to_hub(folder, "org/clner-wnut17")
    assert hub.calls == []
    assert set(hub_files(folder)) == EXPECTED_FILES and hub_links(folder) == ["extra", "notes.md"]
    # the card itself as a link: refused too (and then missing)
    readme = folder / "README.md"
    readme.rename(tmp_path / "README.md")
    readme.symlink_to(tmp_path / "README.md")
    with pytest.raises(ValueError, match=r"refusing symbolic links.*README\.md -> .*missing README\.md"):
        check_hub_folder(folder)


def test_push_to_hub_leaves_links_it_ignores_and_sends_exactly_the_checked_files(published, tmp_path, monkeypatch):
    """Links that the upload ignores anyway (a checkpoint, the logs, a dot-file) are left alone, and the upload sends
    exactly the checked regular files, as the library itself selects them."""
    folder = tmp_path / "out"
    shutil.copytree(published[0], folder)
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    hub = FakeHub(monkeypatch)
    # links that no upload sends: a linked checkpoint, log folder or dot-file
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


# -------------------------------------------------------------------------------------- loading the folder
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


@pytest.fixture(scope="module")
def remote_run(published, tmp_path_factory, minilm_tokenizer):
    """The Hub simulated by a local folder, with a stray pickle lying next to the safetensors: a process that cannot
    import this project loads it with trust_remote_code=True, as the model (both auto classes) and as the pipeline
    under every name a user would try ("ner", "token-classification", no task, and this project's own task name);
    it also loads a plain `save_pretrained` folder (a Trainer checkpoint) and another model's NER pipeline. What the
    process printed and saw (`out`), and what this process expects of the same model."""
    tmp_path = tmp_path_factory.mktemp("remote")
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
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
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
    return SimpleNamespace(
        stdout=proc.stdout,
        out=json.loads(proc.stdout.strip().splitlines()[-1]),
        marker=marker,
        expected_predict=expected_predict,
        expected_text=expected_text,
        expected_pipe=expected_pipe,
        expected_ctx=expected_ctx,
        checksum=checksum,
    )


def test_remote_code_model_loads_with_both_auto_classes(remote_run):
    out, expected_predict, expected_text = remote_run.out, remote_run.expected_predict, remote_run.expected_text
    assert all(m.startswith("transformers_modules.") and m.endswith(".modeling_clner") for m in out["model_modules"])
    assert out["predict"] == [expected_predict, expected_predict]
    assert [(e["entity_group"], e["start"], e["end"]) for e in out["predict_text"]] == [
        (e["entity_group"], e["start"], e["end"]) for e in expected_text
    ]
    assert out["checksum"] == pytest.approx(remote_run.checksum, rel=1e-12)


def test_remote_code_pipeline_under_every_task_name(remote_run):
    out, expected_pipe, expected_ctx = remote_run.out, remote_run.expected_pipe, remote_run.expected_ctx
    assert set(out["pipeline_classes"]) == {"ner", "token-classification", TASK, "no task"}
    assert all(
        p.startswith("transformers_modules.") and p.endswith(".pipeline_clner.CLNERTokenClassificationPipeline")
        for p in out["pipeline_classes"].values()
    )

    def key(entities):
        return [(e["entity_group"], e["word"], e["start"], e["end"], e["context_used"]) for e in entities]

    for task, got_pipe in out["pipe"].items():
        assert [key(r) for r in got_pipe] == [key(r) for r in expected_pipe], task
        for got, want in zip(got_pipe, expected_pipe):
            assert [e["score"] for e in got] == pytest.approx([e["score"] for e in want], abs=1e-5)
    assert [(r["tags"], r["context_used"], key(r["entities"])) for r in out["pipe_ctx"]] == [
        (r["tags"], r["context_used"], key(r["entities"])) for r in expected_ctx
    ]


def test_remote_code_pipeline_retrieves_live_and_saves_no_task_alias(remote_run):
    """Live retrieval with a plain search function (no clner.retrieval.retriever in that process); the "ner" alias
    is served, never saved: a re-saved model lists one task."""
    out = remote_run.out
    assert out["retrieved"] is True
    assert list(out["resaved"]) == ["token-classification"]


def test_other_models_keep_transformers_own_ner_pipeline(remote_run):
    out = remote_run.out
    assert out["plain"] == "TokenClassificationPipeline"


def test_a_plain_save_pretrained_folder_loads_as_remote_code_too(remote_run):
    """A Trainer checkpoint (no save_for_hub) loads the same way and serves the CLNER pipeline under "ner" and
    "token-classification"."""
    out, expected_predict = remote_run.out, remote_run.expected_predict
    assert out["saved_predict"] == [expected_predict, expected_predict]
    assert out["saved_pipelines"] == ["CLNERTokenClassificationPipeline"] * 2


def test_remote_code_loading_asks_nothing_and_never_opens_the_stray_pickle(remote_run):
    out, marker = remote_run.out, remote_run.marker
    assert "custom code?" not in remote_run.stdout  # nothing prompted: every remote-code load was explicitly trusted
    assert out["opened"] == [] and not marker.exists()  # the stray pickle was never even opened


def test_predictions_are_never_uploaded(tmp_path):
    from clner.hub.upload import HUB_IGNORE_PATTERNS, hub_files

    for name in ("predictions.txt", "predictions_sentence.txt", "predictions_context.txt", "clner_run_settings.json"):
        (tmp_path / name).write_text("x")
    (tmp_path / "config.json").write_text("{}")
    assert hub_files(tmp_path, HUB_IGNORE_PATTERNS) == ["config.json"]
