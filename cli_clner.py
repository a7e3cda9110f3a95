"""The CLI plumbing every clner command shares: one error class for user mistakes and one exit path (`run_cli`:
one `prog: error:` paragraph, exit code 2; a bug keeps its traceback), checks of the paths a command is given
before any work, and the `--help` formatter that states each default once.

Standard library only, so that a command's `--help` and its argument errors need no model or data code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["kebab_aliases", "CLNERFormatError", "CLNERUsageError", "HelpFormatter", "as_user_error",
           "check_model_path",
           "check_output_path", "run_cli"]


class CLNERFormatError(ValueError):
    """Malformed input; the message starts with ``<file>:<line>:`` (or ``<file>: record N:``)."""

    def __init__(self, path: Any, line: int | None, message: str, *, record: int | None = None):
        self.path = str(path)
        self.line = line
        self.record = record
        where = self.path
        if line is not None:
            where += f":{line}"
        if record is not None:
            where += f": record {record}"
        super().__init__(f"{where}: {message}")


class CLNERUsageError(ValueError):
    """A user mistake (a flag, a file, the data) found by a check: the CLIs report it as one paragraph, exit code 2."""


@contextlib.contextmanager
def as_user_error(*types: type[BaseException]) -> Iterator[None]:
    """Inside, ``ValueError``, ``TypeError`` and ``FileNotFoundError`` (or ``types``) come from checking the user's
    arguments and data: they are re-raised as :class:`CLNERUsageError`. Wrap validation only, never training."""
    try:
        yield
    except (CLNERFormatError, CLNERUsageError):
        raise
    except types or (ValueError, TypeError, FileNotFoundError) as err:
        raise CLNERUsageError(str(err)) from err


def check_model_path(value: str, flag: str) -> None:
    """Refuse a model argument that is written as a local path (absolute, ``./``, ``../``, ``~`` or with two or more
    ``/``: never a Hub id) but names nothing, with a message that says so, instead of the Hub's "Repo id must be in
    the form 'repo_name'" that such a value otherwise gets."""
    text = os.fspath(value)
    looks_local = text.startswith(("/", "./", "../", "~", ".\\")) or text.count("/") >= 2 or "\\" in text
    if looks_local and not os.path.exists(os.path.expanduser(text)):
        raise CLNERUsageError(f"{flag} {text}: no such folder (a local path; a Hub model id is 'name' or "
                              "'organisation/name')")


def check_output_path(path: str | os.PathLike, flag: str, directory: bool = False) -> None:
    """Refuse, before any work, an output ``path`` that cannot be written: a folder where a file is expected
    (``directory=False``), or a file or nearest existing folder that is not writable (a read-only mount, another
    user's folder). Missing folders are fine: they are created when writing."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path) and not directory:
        raise CLNERUsageError(f"{flag} {path} is a directory: give the path of a file")
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if (not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK)
            or (os.path.isfile(path) and not os.access(path, os.W_OK))):
        raise CLNERUsageError(f"{flag} {path}: cannot write there ({folder} is not a writable folder); give "
                              f"another {flag}")


def run_cli(main: Any, argv: Sequence[str] | None = None, *, prog: str | None = None,
            user_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run a CLI's ``main(argv)``: a user mistake (:class:`CLNERFormatError`, :class:`CLNERUsageError`, ``user_errors``
    or ``SystemExit("message")``) is printed to stderr as one paragraph and exits with code 2; anything else is a bug
    and keeps its traceback."""
    prog = prog or os.path.basename(sys.argv[0])
    try:
        code = main(argv)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            raise
        message = str(exc.code)
    except (CLNERFormatError, CLNERUsageError, *user_errors) as exc:
        message = str(exc)
    else:
        return code if isinstance(code, int) else 0
    message = re.sub(r"\s*\n\s*", " ", message).strip()
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(2)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` of the clner commands, each default said once: a help text that states its default keeps its own
    words, a required option says none, the others get argparse's ``(default: ...)``."""

    def _get_help_string(self, action):
        text = action.help or ""
        return text if action.required or "default" in text.lower() else super()._get_help_string(action)


def kebab_aliases(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every `--snake_case` option of `parser` (and of its groups) its `--kebab-case` spelling too, as
    HfArgumentParser does for `clner-train`: one convention for every command. Returns the parser."""
    for action in list(parser._actions):
        for name in list(action.option_strings):
            kebab = name.replace("_", "-")
            if name.startswith("--") and kebab != name and kebab not in parser._option_string_actions:
                action.option_strings.append(kebab)
                parser._option_string_actions[kebab] = action
    return parser
