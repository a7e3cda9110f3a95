"""The CLI plumbing every clner command shares: one error class for user mistakes and one exit path (`run_cli`:
one `prog: error:` paragraph, exit code 2; a bug keeps its traceback), checks of the paths a command is given
before any work, the `--help` formatter that states each default once, and `dataclass_parser`: the
`HfArgumentParser` every command parses its dataclasses with.

Standard library only at import (`dataclass_parser` imports transformers when called), so that a command's `--help`
and its argument errors need no model or data code.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import os
import re
import sys
import typing
from collections.abc import Iterator, Sequence
from typing import Any

from clner.errors import CLNERFormatError, CLNERUsageError


@contextlib.contextmanager
def as_user_error(*types: type[BaseException]) -> Iterator[None]:
    """Inside, ``ValueError``, ``TypeError`` and ``FileNotFoundError`` (or ``types``) come from checking the user's
    arguments and data: they are re-raised as :class:`CLNERUsageError`. Wrap validation only, never training."""
    try:
        yield
    except (CLNERFormatError, CLNERUsageError):
        raise
    except types or (ValueError, TypeError, FileNotFoundError) as err:  # noqa: B030 - `types` is a tuple of classes
        raise CLNERUsageError(str(err)) from err


def check_model_path(value: str, flag: str) -> None:
    """Refuse a model argument that is written as a local path (absolute, ``./``, ``../``, ``~`` or with two or more
    ``/``: never a Hub id) but names nothing, with a message that says so, instead of the Hub's "Repo id must be in
    the form 'repo_name'" that such a value otherwise gets."""
    text = os.fspath(value)
    looks_local = text.startswith(("/", "./", "../", "~", ".\\")) or text.count("/") >= 2 or "\\" in text
    if looks_local and not os.path.exists(os.path.expanduser(text)):
        raise CLNERUsageError(
            f"{flag} {text}: no such folder (a local path; a Hub model id is 'name' or 'organisation/name')"
        )


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
    if (
        not os.path.isdir(folder)
        or not os.access(folder, os.W_OK | os.X_OK)
        or (os.path.isfile(path) and not os.access(path, os.W_OK))
    ):
        raise CLNERUsageError(
            f"{flag} {path}: cannot write there ({folder} is not a writable folder); give another {flag}"
        )


def run_cli(
    main: Any,
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    user_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Run a CLI's ``main(argv)``: a user mistake (:class:`CLNERFormatError`, :class:`CLNERUsageError`, ``user_errors``
    or ``SystemExit("message")``) is printed to stderr as one paragraph and exits with code 2; a reader that closed
    the output early (``| head``) ends the run quietly, with status 141 as SIGPIPE would; anything else is a bug and
    keeps its traceback."""
    prog = prog or os.path.basename(sys.argv[0])
    try:
        code = main(argv)
    except BrokenPipeError:
        # stdout's reader is gone: nothing more can reach it, and Python's own flush at exit would fail again
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
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


#: the words transformers' `string_to_bool` reads as a switch's value (`--idf false`)
_SWITCH_VALUES = frozenset(("yes", "no", "true", "false", "t", "f", "y", "n", "1", "0"))


@functools.cache
def _parser_class() -> type:
    """`HfArgumentParser` with the clner conventions (see `dataclass_parser`); made once, on first use, so that
    importing this module needs no transformers."""
    from transformers import HfArgumentParser

    class CLNERArgumentParser(HfArgumentParser):
        def error(self, message: str):
            """argparse's own errors (a bad value, an unknown flag, a missing one) are user mistakes like any other:
            one line through `run_cli`, exit code 2, instead of the usage block and argparse's own exit."""
            raise CLNERUsageError(f"{message} (see --help)")

        def switches(self) -> frozenset[str]:
            """Every spelling of the dataclasses' bool fields (`--idf`, `--no-rerank`, their aliases)."""
            names = set()
            for dtype in self.dataclass_types:
                hints = typing.get_type_hints(dtype)
                for f in dataclasses.fields(dtype):
                    if hints[f.name] in (bool, bool | None):
                        aliases = f.metadata.get("aliases", [])
                        names.update(
                            [
                                f"--{f.name}",
                                f"--{f.name.replace('_', '-')}",
                                *([aliases] if isinstance(aliases, str) else aliases),
                            ]
                        )
            return frozenset(names)

        def parse_known_args(self, args=None, namespace=None):
            """A switch given alone (`--idf`) is `--idf=true`: HfArgumentParser lets a bool flag take a value
            (`--idf false`), which would otherwise swallow a positional argument after it (`--idf INPUT OUTPUT`)."""
            args, switches = list(sys.argv[1:] if args is None else args), self.switches()
            for i, arg in enumerate(args):
                if arg in switches and (i + 1 == len(args) or args[i + 1].lower() not in _SWITCH_VALUES):
                    args[i] = f"{arg}=true"
            return super().parse_known_args(args, namespace)

        def parse_namespace(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
            """Every dataclass field, and any argument added to the parser besides them (positional ones), as one
            namespace: the dataclasses group the `--help`, the command reads one set of settings."""
            *parsed, rest = self.parse_args_into_dataclasses(
                args=argv, return_remaining_strings=True, look_for_args_file=False
            )
            if rest:
                self.error(f"unrecognized arguments: {' '.join(rest)}")
            values: dict[str, Any] = {}
            for part in parsed:  # the dataclass instances, then the namespace of the other arguments
                values.update(vars(part))
            return argparse.Namespace(**values)

    return CLNERArgumentParser


def dataclass_parser(dataclass_types: Any, **kwargs: Any) -> argparse.ArgumentParser:
    """The parser of a clner command, from its dataclasses, as `clner-train`'s (transformers' `HfArgumentParser`):
    a field is the flag `--name`, also spelt `--kebab-name`; its metadata gives the `help`, the `choices` and the
    old spellings (`aliases`); a dataclass with an `_argument_group_name` is a group of `--help`. On top of it, the
    same for every command: `HelpFormatter`, argparse's errors raised as `CLNERUsageError` (one line, exit 2 through
    `run_cli`), a bool field a switch that may be given alone before a positional argument, and `parse_namespace`.
    Positional arguments, which dataclass fields cannot be, are added to the parser returned (`add_argument`)."""
    kwargs.setdefault("formatter_class", HelpFormatter)
    return _parser_class()(dataclass_types, **kwargs)


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """`1 sentence`, `2 sentences` (`nouns`: an irregular plural)."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"
