"""clner-push (`clner.commands.push`), the command that uploads a finished run's folder: the upload, and an
unreachable Hub, an incomplete folder or a symbolic link as one line, not a traceback."""

import shutil

import pytest
from huggingface_hub import HfApi

from clner.commands.push import cli as clner_push
from clner.commands.push import push_parser
from conftest import FakeHub, folder_with_links, one_error_line


def test_clner_push_uploads_the_folder_or_says_in_one_line_why_not(published, tmp_path, monkeypatch, capsys):
    """`clner-push FOLDER REPO_ID` (what a failed run tells the user to run): uploads the folder; an unreachable Hub
    or an incomplete folder is one line, not a traceback."""
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
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"clner-push: error: the upload of {folder} to 'org/clner-wnut17' failed (ConnectionError: Network is unreachable). "
        "Log in (`hf auth login`) or pass --token, check the network, and run this command again"
    )
    (folder / "model.safetensors").unlink()
    with pytest.raises(SystemExit) as exit_info:
        clner_push([str(folder), "org/clner-wnut17"])
    assert exit_info.value.code == 2 and "missing model.safetensors" in capsys.readouterr().err


def test_clner_push_refuses_a_folder_with_symbolic_links(published, tmp_path, monkeypatch, capsys):
    """A symbolic link would upload what it points to under the link's name: refused before any Hub call, naming
    the link and its target."""
    folder, secret, _ = folder_with_links(published, tmp_path)
    hub = FakeHub(monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        clner_push([str(folder), "org/clner-wnut17"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("clner-push: error: ") and f"notes.md -> {secret}" in err
    assert hub.calls == []


def test_flags_take_their_kebab_case_spelling():
    assert push_parser().parse_args(["folder", "org/x", "--create-pr"]).create_pr


def test_clner_push_failures_are_one_error_line(tmp_path, capsys):
    from clner.commands.push import cli

    assert "no such folder" in one_error_line(capsys, cli, [str(tmp_path / "none"), "org/x"], "clner-push")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_error_line(capsys, cli, [str(empty), "org/x"], "clner-push")  # an incomplete folder
