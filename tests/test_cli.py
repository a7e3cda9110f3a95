"""The command-line conventions (`clner.cli`): a user error is one `error:` line and exit code 2 (`run_cli`, the one
exit path of every command), a bug keeps its traceback, and a model path is checked before anything loads."""

import ast
import re

import pytest

from clner.cli import check_model_path, run_cli
from clner.errors import CLNERUsageError
from conftest import REPO_ROOT


def test_run_cli_keeps_tracebacks_for_bugs():
    def buggy(argv):
        return {}["missing"]

    with pytest.raises(KeyError):
        run_cli(buggy, [])
    assert run_cli(lambda argv: {"metrics": 1}, []) == 0


def test_check_model_path_refuses_missing_local_folders_only(tmp_path):
    for hub_id in ("bert-base-cased", "org/clner-wnut17"):
        check_model_path(hub_id, "--model")  # Hub ids are the Hub's to resolve
    check_model_path(str(tmp_path), "--model")
    for missing in (str(tmp_path / "nope"), "./nope-folder", "../nope", "a/b/c"):
        with pytest.raises(CLNERUsageError, match=re.escape(f"--model {missing}: no such folder")):
            check_model_path(missing, "--model")


def test_commands_raise_no_system_exit_and_no_function_is_over_100_lines():
    """User errors are `CLNERUsageError` (one class, one exit path: `run_cli`), never `raise SystemExit("...")`;
    the command modules' functions stay under 100 lines."""
    for name in ("clner/commands/predict.py", "clner/commands/retrieve.py", "clner/commands/demo.py"):
        tree = ast.parse((REPO_ROOT / name).read_text(encoding="utf-8"))
        raised = [
            node.lineno
            for node in ast.walk(tree)
            if isinstance(node, ast.Raise)
            and isinstance(node.exc, ast.Call)
            and getattr(node.exc.func, "id", None) == "SystemExit"
        ]
        assert raised == [], (name, raised)
        if name != "clner/commands/demo.py":
            long = [
                (f.name, f.end_lineno - f.lineno + 1)
                for f in ast.walk(tree)
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.end_lineno - f.lineno + 1 > 100
            ]
            assert long == [], (name, long)
