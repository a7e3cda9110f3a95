"""Data for CLNER: readers/writers, labels, `datasets.map` preprocessing and the two-view collator.

Every data source becomes rows with the columns

- ``tokens``: ``list[str]``, the sentence words;
- ``tags``: ``list[str]`` label names (absent for unlabeled data);
- ``context``: ``list[str]``, ranked snippet strings, ``[]`` when the sentence has no context;

plus an ``id`` column once loaded into a :class:`datasets.DatasetDict` by :func:`load_ner_dataset`.

Supported sources: CoNLL column files, the official CLNER context format, JSON / JSON lines / parquet and
Hub datasets. Malformed input raises :class:`CLNERFormatError` (a ``ValueError``) naming the file and line;
nothing is silently dropped or remapped.

The official CLNER format (one sentence, then its context, then a blank line)::

    trump<TAB>B-person
    is<TAB>O
    <EOS> B-X
    Is B-X
    Trump B-X
    <EOS> B-X
    second B-X
    snippet B-X

Sentence lines are ``token<TAB>tag`` (a single space is tolerated). The context starts at the first
``<EOS> B-X`` line; each ``<EOS>`` line begins a snippet whose tokens follow one per line as ``token B-X``
(``B-X``, ``S-X`` or ``X``). Snippet strings are the snippet's tokens joined by single spaces.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from inference_clner import context_snippets, pad_view, parse_tag, stitch_windows

__all__ = [
    "CONTEXT_TAGS",
    "EOS_TOKEN",
    "CLNERDataCollator",
    "CLNERFormatError",
    "CLNERUsageError",
    "TAG_SCHEMES",
    "as_user_error",
    "apply_tag_scheme",
    "check_labels",
    "check_output_path",
    "detect_format",
    "get_label_list",
    "load_ner_dataset",
    "model_tag_scheme",
    "preprocess_dataset",
    "read_clner",
    "read_conll",
    "read_json",
    "read_parquet",
    "run_cli",
    "stitch_windows",
    "tags_to_scheme",
    "write_clner",
    "write_conll",
]

EOS_TOKEN = "<EOS>"
#: Tags that mark a context token (never labelled, never scored).
CONTEXT_TAGS = frozenset({"B-X", "S-X", "X"})
DOCSTART = "-DOCSTART-"
_SURROGATE_RE = re.compile("[\udc80-\udcff]")  # bytes that did not decode (surrogateescape)

CONLL_EXTENSIONS = (".conll", ".txt", ".tsv", ".bio")
JSON_EXTENSIONS = (".json", ".jsonl")
PARQUET_EXTENSIONS = (".parquet",)
FORMATS = ("conll", "clner", "json", "jsonl", "parquet")

TOKEN_COLUMN_CANDIDATES = ("tokens", "words")
TAG_COLUMN_CANDIDATES = ("tags", "ner_tags")

#: Per-window keys passed through the collator as long tensors.
SCALAR_FEATURE_KEYS = ("example_id", "word_start", "own_start", "own_end")


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
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[Any]:
    """`open(path, mode)` for writing, through a temporary file in the same folder renamed over `path` when the
    block ends: a run that fails partway (a full disk, a kill) leaves the earlier file whole, never a truncated or
    empty one, and the temporary file is removed."""
    import tempfile

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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


# ----------------------------------------------------------------------------------------------------------------
# Line-oriented readers
# ----------------------------------------------------------------------------------------------------------------


def _iter_lines(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` with universal newlines (``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line;
    U+2028 & co. do not: tokens may hold them), a leading BOM dropped. Undecodable bytes raise
    :class:`CLNERFormatError` naming the line and column."""
    with open(path, "rb") as raw:
        # newline=None: universal newlines, so old-Mac (CR-only) exports are not read as one line
        text = io.TextIOWrapper(raw, encoding=encoding, errors="surrogateescape", newline=None)
        for lineno, line in enumerate(text, 1):
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            bad = _SURROGATE_RE.search(line)
            if bad:
                byte = ord(bad.group()) - 0xDC00
                raise CLNERFormatError(
                    path,
                    lineno,
                    f"not valid {encoding.upper()} (byte 0x{byte:02x} at column {bad.start() + 1}); re-save the file "
                    f"as UTF-8 (e.g. `iconv -f latin1 -t utf-8 {os.path.basename(str(path))}`)",
                )
            yield lineno, line.rstrip("\n")


def _split_columns(line: str) -> tuple[list[str], bool]:
    """Split on tabs when the line has one, else on whitespace; returns (fields, tab_separated)."""
    if "\t" in line:
        return [field.strip() for field in line.split("\t")], True
    return line.split(), False


def _is_eos_line(fields: Sequence[str]) -> bool:
    return len(fields) == 2 and fields[0] == EOS_TOKEN and fields[1] in CONTEXT_TAGS


def _show(line: str, limit: int = 80) -> str:
    return repr(line if len(line) <= limit else line[:limit] + "...")


def read_conll(path: str | os.PathLike, token_column: int = 0, tag_column: int | None = -1) -> list[dict[str, Any]]:
    """Read a CoNLL column file into rows ``{"tokens", "tags", "context": []}``.

    Columns are tab separated when a line holds a tab, else whitespace separated. A blank (or whitespace-only)
    line ends a sentence; ``-DOCSTART-`` lines are skipped. ``tag_column=None`` reads an unlabeled file (rows
    without ``tags``). Every token line must have as many columns as the first one.
    """
    return _read_conll(path, token_column, tag_column)[0]


def _read_conll(
    path: str | os.PathLike, token_column: int = 0, tag_column: int | None = -1
) -> tuple[list[dict[str, Any]], list[int]]:
    """:func:`read_conll`, plus the line number of each sentence's first token (its words are on the next lines)."""
    rows: list[dict[str, Any]] = []
    first_lines: list[int] = []
    tokens: list[str] = []
    tags: list[str] = []
    n_columns: int | None = None
    start = 0

    def flush() -> None:
        if tokens:
            row: dict[str, Any] = {"tokens": list(tokens)}
            if tag_column is not None:
                row["tags"] = list(tags)
            row["context"] = []
            rows.append(row)
            first_lines.append(start)
            tokens.clear()
            tags.clear()

    for lineno, line in _iter_lines(path):
        if not line.strip():
            flush()
            continue
        if not tokens:
            start = lineno
        fields, _ = _split_columns(line)
        if fields[0] == DOCSTART:
            flush()
            continue
        if tag_column is not None and len(fields) < 2:
            raise CLNERFormatError(path, lineno, f"missing tag (a single column): {_show(line)}")
        if _is_eos_line(fields):
            raise CLNERFormatError(
                path, lineno, f"{EOS_TOKEN} context line in a CoNLL file: read it with read_clner / format='clner'"
            )
        if n_columns is None:
            n_columns = len(fields)
        elif len(fields) != n_columns:
            raise CLNERFormatError(
                path, lineno, f"wrong column count: expected {n_columns}, found {len(fields)}: {_show(line)}"
            )
        try:
            token = fields[token_column]
            tag = fields[tag_column] if tag_column is not None else None
        except IndexError:
            raise CLNERFormatError(
                path,
                lineno,
                f"no column {token_column if tag_column is None else (token_column, tag_column)} "
                f"in a line of {len(fields)} columns",
            ) from None
        if tag_column is not None and (token_column % len(fields)) == (tag_column % len(fields)):
            raise CLNERFormatError(path, lineno, "token_column and tag_column name the same column")
        if not token:
            raise CLNERFormatError(path, lineno, f"empty token: {_show(line)}")
        if tag_column is not None and not tag:
            raise CLNERFormatError(path, lineno, f"missing tag (empty tag column): {_show(line)}")
        tokens.append(token)
        if tag is not None:
            tags.append(tag)
    flush()
    return rows, first_lines


def read_clner(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read the official CLNER context format into rows ``{"tokens", "tags", "context"}``.

    See the module docstring for the format. A sentence token whose tag is literally ``B-X`` on a
    tab-separated line is a sentence token: the context starts only at the first ``<EOS>`` line.
    Released CLNER files contain context lines whose token is empty (``" B-X"``): context tokens are never labelled,
    so these are skipped and their count is reported once in a ``UserWarning``. Sentence lines stay strict.
    """
    return _read_clner(path)[0]


def _read_clner(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[int]]:
    """:func:`read_clner`, plus the line number of each sentence's first token (its words are on the next lines)."""
    rows: list[dict[str, Any]] = []
    first_lines: list[int] = []
    start = 0
    tokens: list[str] = []
    tags: list[str] = []
    snippets: list[list[str]] = []
    in_context = False
    empty_context_lines: list[int] = []  # released files hold context lines whose token is empty (" B-X")

    def flush() -> None:
        nonlocal in_context
        if tokens:
            rows.append({"tokens": list(tokens), "tags": list(tags), "context": [" ".join(s) for s in snippets]})
            first_lines.append(start)
        tokens.clear()
        tags.clear()
        snippets.clear()
        in_context = False

    for lineno, line in _iter_lines(path):
        if not line.strip():
            flush()
            continue
        fields, tab_separated = _split_columns(line)
        if _is_eos_line(fields):
            if not tokens:
                raise CLNERFormatError(path, lineno, f"context line before any sentence token: {_show(line)}")
            in_context = True
            snippets.append([])
            continue
        if not in_context:
            if fields[0] == DOCSTART:
                flush()
                continue
            if not tokens:
                start = lineno
            if len(fields) < 2:
                raise CLNERFormatError(path, lineno, f"missing tag (expected 'token<TAB>tag'): {_show(line)}")
            if len(fields) > 2:
                raise CLNERFormatError(
                    path,
                    lineno,
                    f"wrong column count: expected 2 ('token<TAB>tag'), found {len(fields)}: {_show(line)}",
                )
            token, tag = fields
            if not token:
                raise CLNERFormatError(path, lineno, f"empty token: {_show(line)}")
            if not tag:
                raise CLNERFormatError(path, lineno, f"missing tag (empty tag column): {_show(line)}")
            if not tab_separated and tag in CONTEXT_TAGS:
                what = "before any sentence token" if not tokens else f"with no preceding '{EOS_TOKEN} B-X' line"
                raise CLNERFormatError(path, lineno, f"broken context block: context line {what}: {_show(line)}")
            tokens.append(token)
            tags.append(tag)
            continue
        # Inside the context block.
        if tab_separated and len(fields) == 2 and fields[1] in CONTEXT_TAGS:
            raise CLNERFormatError(
                path,
                lineno,
                f"context line separated by a tab: {_show(line)}; context lines are 'token B-X' with a space "
                "(only sentence lines use 'token<TAB>tag'): replace the tab with a space",
            )
        if tab_separated:
            raise CLNERFormatError(
                path,
                lineno,
                f"broken context block: tab-separated sentence line after the context started "
                f"(missing blank line between sentences?): {_show(line)}",
            )
        if len(fields) == 1 and fields[0] in CONTEXT_TAGS and line != fields[0]:
            # an empty (whitespace-only) context token: never labelled, so it is skipped and counted
            empty_context_lines.append(lineno)
            continue
        if len(fields) < 2:
            raise CLNERFormatError(path, lineno, f"missing tag in context line (expected 'token B-X'): {_show(line)}")
        if len(fields) > 2:
            raise CLNERFormatError(
                path, lineno, f"wrong column count in context line: expected 2, found {len(fields)}: {_show(line)}"
            )
        if fields[1] not in CONTEXT_TAGS:
            raise CLNERFormatError(
                path,
                lineno,
                f"broken context block: context token tagged {fields[1]!r} (expected one of "
                f"{sorted(CONTEXT_TAGS)}; missing blank line between sentences?): {_show(line)}",
            )
        snippets[-1].append(fields[0])
    flush()
    if empty_context_lines:
        shown = ", ".join(map(str, empty_context_lines[:5])) + (", ..." if len(empty_context_lines) > 5 else "")
        warnings.warn(
            f"{path}: skipped {len(empty_context_lines)} empty context token(s) (a line that is whitespace followed by "
            f"a context tag, e.g. ' B-X'; lines {shown}); context tokens are never labelled, sentences are unchanged",
            UserWarning,
            stacklevel=3,
        )
    return rows, first_lines


# ----------------------------------------------------------------------------------------------------------------
# JSON / JSONL / parquet
# ----------------------------------------------------------------------------------------------------------------


def _classlabel_names(feature: Any) -> list[str] | None:
    """Names of a (sequence of) ClassLabel feature, else None."""
    import datasets

    inner = feature
    if isinstance(inner, (datasets.List, datasets.LargeList)):
        inner = inner.feature
    elif isinstance(inner, (list, tuple)) and len(inner) == 1:
        inner = inner[0]
    if isinstance(inner, datasets.ClassLabel):
        return list(inner.names)
    return None


def _pick_column(
    available: Iterable[str],
    requested: str | None,
    candidates: Sequence[str],
    what: str,
    source: str,
    *,
    required: bool,
) -> str | None:
    available = list(available)
    if requested is not None:
        if requested not in available:
            raise CLNERFormatError(source, None, f"no {what} column {requested!r} (columns: {available})")
        return requested
    for name in candidates:
        if name in available:
            return name
    if required:
        raise CLNERFormatError(
            source, None, f"no {what} column: expected one of {list(candidates)} (columns: {available})"
        )
    return None


def _normalise_context(value: Any) -> list[str]:
    """A row's context as a list of snippet strings (`inference_clner.context_snippets`: the one check of
    contexts); none, or a blank string, is no snippet."""
    if isinstance(value, str) and not value.strip():
        return []
    return context_snippets(value, "context") or []


def _tags_to_names(tags: Any, label_names: Sequence[str] | None, n_tokens: int) -> list[str]:
    if not isinstance(tags, (list, tuple)):
        raise TypeError(f"tags must be a list, got {type(tags).__name__}")
    if len(tags) != n_tokens:
        raise TypeError(f"{len(tags)} tags for {n_tokens} tokens")
    out = []
    for j, tag in enumerate(tags):
        if isinstance(tag, bool) or not isinstance(tag, (str, int)):
            raise TypeError(f"tag {j} is {tag!r}, not a label name or id")
        if isinstance(tag, int):
            if label_names is None:
                raise TypeError(
                    f"integer tag {tag} but no label names: give the name of each tag id, in id order, with "
                    "run_ner_cl.py --tag_names (e.g. --tag_names O B-PER I-PER; label_names= in Python), or store the "
                    "tags as a ClassLabel feature (parquet / Hub datasets)"
                )
            if not 0 <= tag < len(label_names):
                raise TypeError(f"tag id {tag} out of range for {len(label_names)} label names {list(label_names)}: "
                                "--tag_names (label_names=) names every tag id, in id order from 0")
            tag = label_names[tag]
        if not tag:
            raise TypeError(f"empty tag at word {j}")
        out.append(tag)
    return out


def _record_to_row(
    record: Mapping[str, Any],
    token_column: str,
    tag_column: str | None,
    context_column: str | None,
    label_names: Sequence[str] | None,
) -> dict[str, Any]:
    if not isinstance(record, Mapping):
        raise TypeError(f"expected an object, got {type(record).__name__}")
    if token_column not in record:
        raise TypeError(f"missing {token_column!r}")
    tokens = record[token_column]
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise TypeError(f"{token_column!r} must be a list of strings")
    if not tokens:
        raise TypeError("empty sentence (no tokens)")
    for j, token in enumerate(tokens):
        if not token.strip():
            raise TypeError(f"empty token at word {j}")
    row: dict[str, Any] = {"tokens": list(tokens)}
    if tag_column is not None:
        if record.get(tag_column) is None:
            raise TypeError(f"missing tag column {tag_column!r}")
        row["tags"] = _tags_to_names(record[tag_column], label_names, len(tokens))
    try:
        row["context"] = _normalise_context(record.get(context_column) if context_column else None)
    except TypeError as err:
        raise TypeError(f"{context_column!r}: {err}") from None
    if record.get("id") is not None:
        row["id"] = str(record["id"])
    return row


def _records_to_rows(
    records: Sequence[Mapping[str, Any]],
    source: str,
    token_column: str | None,
    tag_column: str | None,
    context_column: str | None,
    label_names: Sequence[str] | None,
    line_numbers: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    keys: list[str] = []
    for record in records:
        if isinstance(record, Mapping):
            keys.extend(k for k in record if k not in keys)
    token_col = _pick_column(keys, token_column, TOKEN_COLUMN_CANDIDATES, "token", source, required=bool(records))
    tag_col = _pick_column(keys, tag_column, TAG_COLUMN_CANDIDATES, "tag", source, required=False)
    rows = []
    for i, record in enumerate(records):
        try:
            rows.append(_record_to_row(record, token_col, tag_col, context_column, label_names))
        except TypeError as err:
            line = line_numbers[i] if line_numbers is not None else None
            raise CLNERFormatError(source, line, str(err), record=i) from None
    return rows


def read_json(
    path: str | os.PathLike,
    token_column: str | None = None,
    tag_column: str | None = None,
    context_column: str | None = "context",
    label_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Read JSON (a list of objects, ``{"data": [...]}``, or a dict of columns) or JSON lines into rows.

    The token column is ``tokens`` (or ``words``), the tag column ``tags`` or ``ner_tags`` unless named; without
    one the rows are unlabeled. ``context`` may be a list of snippet strings or one string (one snippet).
    Integer tags need ``label_names``.
    """
    return _read_json(path, token_column, tag_column, context_column, label_names)[0]


def _read_json(
    path: str | os.PathLike,
    token_column: str | None = None,
    tag_column: str | None = None,
    context_column: str | None = "context",
    label_names: Sequence[str] | None = None,
) -> tuple[list[dict[str, Any]], list[int] | None]:
    """:func:`read_json`, plus the line of each record for JSON lines (None for a JSON document)."""
    path = str(path)
    if not path.endswith(".jsonl"):
        with open(path, "rb") as fh:
            data_bytes = fh.read()
        try:
            text = data_bytes.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = data_bytes.count(b"\n", 0, err.start) + 1
            raise CLNERFormatError(path, line, f"not valid UTF-8 ({err.reason}); re-save the file as UTF-8") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            if not _looks_like_json_lines(text):
                raise CLNERFormatError(path, err.lineno, f"invalid JSON: {err.msg}") from None
        else:
            if isinstance(data, list):
                records = data
            elif isinstance(data, dict) and isinstance(data.get("data"), list):
                records = data["data"]
            elif isinstance(data, dict) and _is_columnar(data, token_column):
                lengths = {len(v) for v in data.values()}
                if len(lengths) != 1:
                    raise CLNERFormatError(path, None, f"columns of different lengths: {sorted(lengths)}")
                n = lengths.pop()
                records = [{k: v[i] for k, v in data.items()} for i in range(n)]
            elif isinstance(data, dict):
                records = [data]  # a single record
            else:
                raise CLNERFormatError(path, 1, f"expected a list of records, got {type(data).__name__}")
            return _records_to_rows(records, path, token_column, tag_column, context_column, label_names), None
    # JSON lines (also accepted in a .json file, the `datasets` convention)
    records, line_numbers = [], []
    for lineno, line in _iter_lines(path):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise CLNERFormatError(path, lineno, f"invalid JSON line: {err.msg}") from None
        line_numbers.append(lineno)
    rows = _records_to_rows(records, path, token_column, tag_column, context_column, label_names, line_numbers)
    return rows, line_numbers


def _is_columnar(data: dict, token_column: str | None) -> bool:
    """A dict of columns (``{"tokens": [[...], ...], "tags": [[...], ...]}``) rather than one record."""
    names = [token_column] if token_column else list(TOKEN_COLUMN_CANDIDATES)
    column = next((data[name] for name in names if name in data), None)
    return (
        isinstance(column, list)
        and all(isinstance(v, list) for v in data.values())
        and all(isinstance(v, list) for v in column)
    )


def _looks_like_json_lines(text: str) -> bool:
    lines = [line for line in text.lstrip("\ufeff").split("\n") if line.strip()]
    if len(lines) < 2:
        return False
    try:
        return isinstance(json.loads(lines[0]), dict)
    except json.JSONDecodeError:
        return False


def read_parquet(
    path: str | os.PathLike,
    token_column: str | None = None,
    tag_column: str | None = None,
    context_column: str | None = "context",
    label_names: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Read a parquet file into rows; ClassLabel tag ids (from ``datasets`` metadata) become names."""
    import datasets
    import pyarrow.parquet as pq

    path = str(path)
    table = pq.read_table(path)
    try:
        features = datasets.Features.from_arrow_schema(table.schema)
    except Exception:  # noqa: BLE001 - foreign metadata: fall back to plain arrow types
        features = {}
    keys = table.column_names
    tag_col = _pick_column(keys, tag_column, TAG_COLUMN_CANDIDATES, "tag", path, required=False)
    if tag_col is not None and label_names is None:
        label_names = _classlabel_names(features.get(tag_col))
    return _records_to_rows(table.to_pylist(), path, token_column, tag_col, context_column, label_names)


# ----------------------------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------------------------


def _iter_rows(rows_or_dataset: Any) -> Iterator[dict[str, Any]]:
    """Rows as dicts with tag names (ClassLabel ids of a `datasets.Dataset` converted)."""
    names = None
    features = getattr(rows_or_dataset, "features", None)
    if features is not None and "tags" in features:
        names = _classlabel_names(features["tags"])
    for row in rows_or_dataset:
        if names is not None and row.get("tags") is not None:
            row = dict(row)
            row["tags"] = [names[t] if isinstance(t, int) else t for t in row["tags"]]
        yield row


def _check_writable_token(token: Any, i: int, j: int, what: str = "token") -> None:
    if not isinstance(token, str) or not token or token != token.strip() or any(c in token for c in "\t\n\r"):
        raise ValueError(
            f"row {i}: {what} {j} ({token!r}) cannot be written as a column (empty, padded or holds a tab/newline)"
        )


def _sentence_lines(row: Mapping[str, Any], i: int, *, require_tags: bool) -> list[str]:
    tokens = row.get("tokens")
    if not tokens:
        raise ValueError(f"row {i}: no tokens (an empty sentence cannot be written)")
    tags = row.get("tags")
    if tags is None and require_tags:
        raise ValueError(f"row {i}: no tags (the CLNER format needs a tag per sentence token)")
    if tags is not None and len(tags) != len(tokens):
        raise ValueError(f"row {i}: {len(tags)} tags for {len(tokens)} tokens")
    lines = []
    for j, token in enumerate(tokens):
        _check_writable_token(token, i, j)
        if j == 0 and token == DOCSTART:
            raise ValueError(f"row {i}: a sentence starting with {DOCSTART} would be skipped on reading")
        if tags is None:
            lines.append(token)
            continue
        tag = tags[j]
        _check_writable_token(tag, i, j, "tag")
        if " " in tag:
            raise ValueError(f"row {i}: tag {j} ({tag!r}) holds a space")
        if token == EOS_TOKEN and tag in CONTEXT_TAGS:
            raise ValueError(f"row {i}: sentence token {j} is {EOS_TOKEN!r} tagged {tag!r}, read back as context")
        lines.append(f"{token}\t{tag}")
    return lines


def write_conll(rows_or_dataset: Any, path: str | os.PathLike) -> None:
    """Write ``token<TAB>tag`` lines (``token`` alone for unlabeled rows), a blank line after each sentence.

    The context is not written (CoNLL has no place for it); use :func:`write_clner` to keep it.
    """
    out = []
    for i, row in enumerate(_iter_rows(rows_or_dataset)):
        out.extend(_sentence_lines(row, i, require_tags=False))
        out.append("")
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(out) + ("\n" if out else ""))


def write_clner(rows_or_dataset: Any, path: str | os.PathLike) -> None:
    """Write the official CLNER format: sentence ``token<TAB>tag`` lines, then per snippet an ``<EOS> B-X`` line
    and its whitespace-split tokens as ``token B-X`` lines; a blank line after each sentence."""
    out = []
    for i, row in enumerate(_iter_rows(rows_or_dataset)):
        out.extend(_sentence_lines(row, i, require_tags=True))
        for k, snippet in enumerate(_normalise_context(row.get("context"))):
            out.append(f"{EOS_TOKEN} B-X")
            for token in snippet.split():
                if token == EOS_TOKEN:
                    raise ValueError(
                        f"row {i}: snippet {k} holds the token {EOS_TOKEN!r}, read back as a snippet break"
                    )
                out.append(f"{token} B-X")
        out.append("")
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(out) + ("\n" if out else ""))


# ----------------------------------------------------------------------------------------------------------------
# Tagging schemes
# ----------------------------------------------------------------------------------------------------------------

#: Tagging schemes of input files. BIO (IOB2) and BIOES are trained as they are; IOB1 (entities start with I-, B-
#: only splits two adjacent entities of one type) and IO (bare types: ``PER``) are converted to BIO on reading,
#: BILOU (L- last, U- unit) to BIOES, and predictions written to files are converted back.
TAG_SCHEMES = ("BIO", "BIOES", "BILOU", "IOB1", "IO")
_PREFIXES = {"BIO": "BI", "BIOES": "BIES", "BILOU": "BILU", "IOB1": "BI", "IO": ""}


def model_tag_scheme(scheme: str) -> str:
    """The scheme a model trains in for data in ``scheme``: BIOES for BIOES and BILOU, else BIO."""
    scheme = _check_scheme(scheme)
    return "BIOES" if scheme in ("BIOES", "BILOU") else "BIO"


def _check_scheme(scheme: str) -> str:
    name = str(scheme).upper()
    if name == "IOB2":
        name = "BIO"
    if name not in TAG_SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}: expected one of {TAG_SCHEMES} (--tag_scheme)")
    return name


def _tag_form_error(tag: str, scheme: str) -> str | None:
    """Why ``tag`` cannot appear in ``scheme`` at all (None when it can)."""
    prefix, etype = parse_tag(tag)
    if prefix == "O":
        return None
    if scheme == "IO":
        if prefix is None:
            return None
        return (f"tag {tag!r} has a {prefix}- prefix, but --tag_scheme IO tags each entity word with its bare type "
                f"(e.g. {etype!r}); for B-/I- tags pass --tag_scheme BIO (or IOB1 if entities start with I-)")
    if prefix is None:
        return (f"tag {tag!r} has no B-/I- prefix: under --tag_scheme {scheme} every entity tag is B-<type> or "
                f"I-<type>{' (or E-/S-)' if scheme == 'BIOES' else ''}. If the file tags each entity word with its "
                f"bare type (IO tagging), pass --tag_scheme IO (converted to BIO for training); labels are never "
                "remapped silently")
    if tag[0] not in _PREFIXES[scheme]:  # the raw prefix: parse_tag reads L-/U- as E-/S-
        if tag[0] in "LU":
            return f"tag {tag!r} is a BILOU tag (L- last, U- unit), not {scheme}: pass --tag_scheme BILOU"
        if scheme == "BILOU":
            return f"tag {tag!r} is a BIOES tag, not BILOU: pass --tag_scheme BIOES"
        return f"tag {tag!r} is a BIOES tag, not {scheme}: pass --tag_scheme BIOES"
    return None


def _transition_error(prev: str | None, tag: str | None, scheme: str) -> tuple[int, str] | None:
    """Why ``tag`` cannot follow ``prev`` (None: the sentence start; ``tag`` None: the sentence end) in ``scheme``,
    with the position of the tag at fault: 0 for ``tag``, -1 for ``prev``."""
    p_prefix, p_type = parse_tag(prev) if prev is not None else ("O", "")
    c_prefix, c_type = parse_tag(tag) if tag is not None else ("O", "")
    after = f"follows {prev!r}" if prev is not None else "starts the sentence"
    if scheme == "BIO":
        if c_prefix == "I" and not (p_prefix in ("B", "I") and p_type == c_type):
            return 0, (f"{tag!r} {after}: under --tag_scheme BIO an entity starts with B-{c_type}. If the file is "
                       "IOB1 (entities start with I-; B- only splits two adjacent entities of one type), pass "
                       "--tag_scheme IOB1 (converted to BIO for training and back on writing); to train on the tags "
                       "as they are, pass --crf_constraints false")
    elif scheme == "IOB1":
        if c_prefix == "B" and not (p_prefix in ("B", "I") and p_type == c_type):
            return 0, (f"{tag!r} {after}: under --tag_scheme IOB1, B- only splits two adjacent entities of one type "
                       f"(an entity starts with I-{c_type}). If entities start with B-, the file is BIO: pass "
                       "--tag_scheme BIO")
    elif scheme in ("BIOES", "BILOU"):  # parse_tag reads L-/U- as E-/S-
        last, unit = ("L", "U") if scheme == "BILOU" else ("E", "S")
        open_entity = p_prefix in ("B", "I")
        if c_prefix in ("I", "E"):
            if not (open_entity and p_type == c_type):
                return 0, (f"{tag!r} {after}: under --tag_scheme {scheme}, I-/{last}-{c_type} continue an entity "
                           f"opened by B-{c_type}")
        elif open_entity:  # reported at `prev`, the tag that should have closed it
            where = f"before {tag!r}" if tag is not None else "at the end of the sentence"
            return -1, (f"entity {prev!r} is not closed {where}: under --tag_scheme {scheme} an entity ends with "
                        f"{last}-{p_type} (a one-word entity is {unit}-{p_type})")
    return None


def apply_tag_scheme(
    tag_lists: Sequence[Sequence[str]],
    scheme: str,
    source: str,
    *,
    tokens: Sequence[Sequence[str]] | None = None,
    lines: Sequence[int | None] | None = None,
    words_on_lines: bool = True,
    check_transitions: bool = True,
) -> list[list[str]]:
    """Check every sentence's tags against ``scheme`` and return them in the scheme the model trains in
    (:func:`model_tag_scheme`: IOB1 and IO become BIO).

    Raises :class:`CLNERFormatError` at the first bad tag, naming ``source``, its line (``lines[i]`` is the line of
    sentence i, and word j is on line ``lines[i] + j`` when ``words_on_lines``), the sentence and the word, the
    flag that fixes it, and how many more bad tags the data holds. ``check_transitions=False`` checks only the tags'
    form (for training without CRF constraints).
    """
    scheme = _check_scheme(scheme)
    first: tuple[int, int, str] | None = None
    more = 0
    for i, tags in enumerate(tag_lists):
        prev: str | None = None
        for j, tag in enumerate([*tags, None]):
            problem = (0, _tag_form_error(tag, scheme)) if tag is not None else (0, None)
            if problem[1] is None and check_transitions:
                problem = _transition_error(prev, tag, scheme) or problem
            if problem[1] is not None:
                if first is None:
                    first = (i, j + problem[0], problem[1])
                else:
                    more += 1
            prev = tag
    if first is not None:
        i, j, problem = first
        line = None
        if lines is not None and lines[i] is not None:
            line = lines[i] + (j if words_on_lines else 0)
        word = f" {tokens[i][j]!r}" if tokens is not None and j < len(tokens[i]) else ""
        where = f"sentence {i + 1}" + (f" (line {lines[i]})" if line is not None and words_on_lines else "")
        message = f"{where}, word {j + 1}{word}: {problem}"
        if more:
            message += f" ({more} more such tag(s) in this data)"
        prefixes = {parse_tag(t)[0] for tags in tag_lists for t in tags}
        if scheme == "BIOES" and not prefixes & {"E", "S"} and prefixes & {"B", "I"}:
            message += "; the data has no E-/S- tags at all: it looks like BIO (--tag_scheme BIO)"
        raise CLNERFormatError(source, line, message)
    if scheme == "IOB1":
        return [iob1_to_bio(tags) for tags in tag_lists]
    if scheme == "IO":
        return [io_to_bio(tags) for tags in tag_lists]
    if scheme == "BILOU":
        return [bilou_to_bioes(tags) for tags in tag_lists]
    return [list(tags) for tags in tag_lists]


def bilou_to_bioes(tags: Sequence[str]) -> list[str]:
    """BILOU -> BIOES: ``L-x`` is ``E-x``, ``U-x`` is ``S-x``."""
    return [{"L": "E", "U": "S"}.get(t[0], t[0]) + t[1:] if t != "O" and t[1:2] in ("-", "_") else t for t in tags]


def bioes_to_bilou(tags: Sequence[str]) -> list[str]:
    """BIOES -> BILOU: ``E-x`` is ``L-x``, ``S-x`` is ``U-x``."""
    return [{"E": "L", "S": "U"}.get(t[0], t[0]) + t[1:] if t != "O" and t[1:2] in ("-", "_") else t for t in tags]


def iob1_to_bio(tags: Sequence[str]) -> list[str]:
    """IOB1 -> BIO: an ``I-x`` that does not continue an ``x`` entity starts one (``B-x``)."""
    out, prev = [], ("O", "")
    for tag in tags:
        prefix, etype = parse_tag(tag)
        if prefix == "I" and not (prev[0] in ("B", "I") and prev[1] == etype):
            tag = "B" + tag[1:]
        out.append(tag)
        prev = (prefix, etype)
    return out


def bio_to_iob1(tags: Sequence[str]) -> list[str]:
    """BIO -> IOB1: an entity starts with ``I-x``, except right after another ``x`` entity (``B-x``)."""
    out, prev = [], ("O", "")
    for tag in tags:
        prefix, etype = parse_tag(tag)
        if prefix == "B" and not (prev[0] in ("B", "I") and prev[1] == etype):
            tag = "I" + tag[1:]
        out.append(tag)
        prev = (prefix, etype)
    return out


def io_to_bio(tags: Sequence[str]) -> list[str]:
    """IO (bare types) -> BIO: a run of one type is one entity."""
    out, prev = [], "O"
    for tag in tags:
        out.append("O" if tag == "O" else ("I-" if tag == prev else "B-") + tag)
        prev = tag
    return out


def bio_to_io(tags: Sequence[str]) -> list[str]:
    """BIO -> IO: the bare type of every entity word."""
    return ["O" if parse_tag(tag)[0] in ("O", None) else tag[2:] for tag in tags]


def tags_to_scheme(tags: Sequence[str], scheme: str | None) -> list[str]:
    """Tags of the model's scheme written back in the data's ``scheme`` (IOB1, IO and BILOU converted; others
    unchanged)."""
    scheme = _check_scheme(scheme) if scheme else None
    if scheme == "BILOU":
        return bioes_to_bilou(tags)
    if scheme == "IOB1":
        return bio_to_iob1(tags)
    if scheme == "IO":
        return bio_to_io(tags)
    return list(tags)


# ----------------------------------------------------------------------------------------------------------------
# Loading into a DatasetDict
# ----------------------------------------------------------------------------------------------------------------


def _has_context_lines(path: str | os.PathLike) -> bool:
    for _, line in _iter_lines(path):
        if line.startswith(EOS_TOKEN) and _is_eos_line(_split_columns(line)[0]):
            return True
    return False


def detect_format(path: str | os.PathLike) -> str:
    """``clner`` / ``conll`` / ``json`` / ``jsonl`` / ``parquet`` from the extension (and ``<EOS>`` lines)."""
    name = str(path).lower()
    if name.endswith(CONLL_EXTENSIONS):
        return "clner" if _has_context_lines(path) else "conll"
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    if name.endswith(PARQUET_EXTENSIONS):
        return "parquet"
    raise ValueError(
        f"{path}: cannot tell the format from the extension (CoNLL/CLNER: {', '.join(CONLL_EXTENSIONS)}; "
        f"{', '.join(JSON_EXTENSIONS + PARQUET_EXTENSIONS)}); pass format="
    )


def _conll_is_unlabeled(path: str | os.PathLike) -> bool:
    """A single-column file (every token line one column) is unlabeled; one token line with a tag makes it labeled,
    so that a line missing its tag is reported at that line, even the first."""
    single = False
    for _, line in _iter_lines(path):
        if line.strip():
            fields, _ = _split_columns(line)
            if fields[0] == DOCSTART:
                continue
            if len(fields) > 1:
                return False
            single = True
    return single


def _read_file(
    path: str | os.PathLike,
    fmt: str | None,
    token_column: str | int | None,
    tag_column: str | int | None,
    context_column: str | None,
    label_names: Sequence[str] | None,
) -> tuple[list[dict[str, Any]], list[int] | None, bool]:
    """Rows of one file, the line of each sentence (None when unknown) and whether its words are on consecutive
    lines from there (CoNLL / CLNER) or all on that line (JSON lines)."""
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {FORMATS}")
    if fmt == "clner":
        return (*_read_clner(path), True)
    if fmt == "conll":
        tok = token_column if isinstance(token_column, int) else 0
        if isinstance(tag_column, int):
            tag: int | None = tag_column
        else:
            tag = None if _conll_is_unlabeled(path) else -1
        return (*_read_conll(path, token_column=tok, tag_column=tag), True)
    names = {
        "token_column": token_column if isinstance(token_column, str) else None,
        "tag_column": tag_column if isinstance(tag_column, str) else None,
        "context_column": context_column,
        "label_names": label_names,
    }
    if fmt == "parquet":
        return read_parquet(path, **names), None, False
    return (*_read_json(path, **names), False)


#: characters a token or tag can never hold: the column files this project writes (predictions, CoNLL) separate
#: fields by tabs and records by newlines, so such a token would not read back
_UNWRITABLE = "\t\n\r"


def check_label_names(names: Sequence[str], what: str) -> None:
    """A label list must name each id once, without whitespace: a duplicate name would merge two ids and `'B-PER '`
    would be a type of its own. Raises ValueError naming `what` and the ids."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"{what}: label {i} {name!r} is empty or holds whitespace (labels are never trimmed)")
        if name in seen:
            raise ValueError(f"{what}: ids {seen[name]} and {i} are both named {name!r}; each id needs its own name")
        seen[name] = i


def check_words_and_tags(rows: Sequence[Mapping[str, Any]], source: str, lines: Sequence[int | None] | None = None,
                         words_on_lines: bool = True) -> None:
    """Refuse, naming the file, line (or record) and word, what would corrupt a file this project writes or
    silently change the label set: a token that is not a non-empty string or holds a tab or newline, and a tag
    that holds whitespace (`'B-PER '` would be a type of its own; `'B-P ER'` splits predictions.txt's fields)."""
    for i, row in enumerate(rows):
        for what, items in (("token", row.get("tokens") or []), ("tag", row.get("tags") or [])):
            for j, item in enumerate(items):
                if what == "token":
                    bad = (not isinstance(item, str) or not item.strip() or any(c in item for c in _UNWRITABLE))
                    why = "a token must be a non-empty string without tabs or newlines"
                else:
                    bad = not isinstance(item, str) or not item or any(c.isspace() for c in item)
                    why = "a tag holds no whitespace (labels are never trimmed or remapped silently)"
                if bad:
                    line = None
                    if lines is not None and i < len(lines) and lines[i] is not None:
                        line = lines[i] + (j if words_on_lines else 0)
                    where = {} if line is not None else {"record": i}
                    raise CLNERFormatError(source, line, f"sentence {i + 1}, word {j + 1}: {what} {item!r}: {why}",
                                           **where)


def _row_features(labeled: bool):
    import datasets

    columns = {"id": datasets.Value("string"), "tokens": datasets.List(datasets.Value("string"))}
    if labeled:
        columns["tags"] = datasets.List(datasets.Value("string"))
    columns["context"] = datasets.List(datasets.Value("string"))
    return datasets.Features(columns)


def rows_to_dataset(rows: list[dict[str, Any]], source: str):
    import datasets

    labeled = [("tags" in row) for row in rows]
    if any(labeled) and not all(labeled):
        raise ValueError(f"{source}: some rows have tags and some do not (row {labeled.index(not labeled[0])})")
    is_labeled = bool(rows) and all(labeled)
    ordered = []
    for i, row in enumerate(rows):
        out = {"id": str(row.get("id", i)), "tokens": row["tokens"]}
        if is_labeled:
            out["tags"] = row["tags"]
        out["context"] = row.get("context") or []
        ordered.append(out)
    return datasets.Dataset.from_list(ordered, features=_row_features(is_labeled))


def _convert_hub_split(ds, split: str, source: str, token_column, tag_column, context_column, label_names):
    """A Hub split -> tokens/tags/context/id with tag names."""
    token_col = _pick_column(ds.column_names, token_column, TOKEN_COLUMN_CANDIDATES, "token", source, required=True)
    tag_col = _pick_column(ds.column_names, tag_column, TAG_COLUMN_CANDIDATES, "tag", source, required=False)
    names = label_names
    if tag_col is not None and names is None:
        names = _classlabel_names(ds.features[tag_col])
    ctx_col = context_column if context_column in ds.column_names else None
    has_id = "id" in ds.column_names

    def convert(batch, indices):
        out: dict[str, list] = {"id": [], "tokens": []}
        if tag_col is not None:
            out["tags"] = []
        out["context"] = []
        for k, idx in enumerate(indices):
            record = {token_col: batch[token_col][k]}
            if tag_col is not None:
                record[tag_col] = batch[tag_col][k]
            if ctx_col is not None:
                record[ctx_col] = batch[ctx_col][k]
            try:
                row = _record_to_row(record, token_col, tag_col, ctx_col, names)
            except TypeError as err:
                raise CLNERFormatError(source, None, f"split {split!r}: {err}", record=idx) from None
            out["id"].append(str(batch["id"][k]) if has_id else str(idx))
            out["tokens"].append(row["tokens"])
            if tag_col is not None:
                out["tags"].append(row["tags"])
            out["context"].append(row["context"])
        return out

    return ds.map(
        convert,
        batched=True,
        with_indices=True,
        remove_columns=ds.column_names,
        features=_row_features(tag_col is not None),
        desc=f"Reading {split}",
    )


def load_ner_dataset(
    data_files: Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]] | str | None = None,
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    tag_column: str | int | None = None,
    token_column: str | int | None = None,
    context_column: str | None = "context",
    format: str | None = None,
    label_names: Sequence[str] | None = None,
    cache_dir: str | None = None,
    tag_scheme: str | None = "BIO",
    check_transitions: bool = True,
    **load_dataset_kwargs: Any,
):
    """Load NER data as a :class:`datasets.DatasetDict` with columns ``id``, ``tokens``, ``tags``, ``context``.

    Args:
        data_files: ``{split: path}`` (or ``{split: [paths]}``, concatenated; a single path means ``train``).
            The format comes from the extension: ``.conll/.txt/.tsv/.bio`` are CoNLL columns, or the CLNER
            context format when the file has ``<EOS>`` context lines; ``.json/.jsonl/.parquet``.
        dataset_name, dataset_config_name: a Hub (or local) dataset for ``datasets.load_dataset``; ClassLabel tag
            ids become names. ``data_files`` is then forwarded to ``load_dataset``.
        tag_column, token_column: column names for JSON/parquet/Hub data (default ``tags``/``ner_tags`` and
            ``tokens``/``words``), or column indices for CoNLL files (default: first and last column; a
            single-column CoNLL file is read as unlabeled).
        context_column: the snippet column of JSON/parquet/Hub data (a list of strings, or one string).
        format: force ``conll``, ``clner``, ``json``, ``jsonl`` or ``parquet`` for every file.
        label_names: names for integer tags that carry no ClassLabel.
        cache_dir, load_dataset_kwargs: forwarded to ``datasets.load_dataset``.
        tag_scheme: every labeled split is checked against it (``BIO``, ``BIOES``, ``IOB1`` or ``IO``; see
            :func:`apply_tag_scheme`), naming the file, line, sentence and word of a bad tag; IOB1 and IO tags are
            converted to BIO. ``None`` takes the tags as they are.
        check_transitions: also check the order of the tags (``False`` when the CRF has no constraints).

    Splits without any tag column have no ``tags`` column (unlabeled data). A file without any sentence is an error.
    """
    import datasets

    if label_names is not None:
        check_label_names(label_names, "--tag_names")
    if dataset_name is None and (load_dataset_kwargs or cache_dir is not None):
        raise TypeError(
            f"cache_dir/{sorted(load_dataset_kwargs)} apply to datasets.load_dataset: they need dataset_name"
        )
    if dataset_name is not None:
        if isinstance(data_files, Mapping):
            data_files = {
                k: [str(p) for p in v] if isinstance(v, (list, tuple)) else str(v) for k, v in data_files.items()
            }
        loaded = datasets.load_dataset(
            dataset_name, dataset_config_name, data_files=data_files, cache_dir=cache_dir, **load_dataset_kwargs
        )
        if isinstance(loaded, datasets.Dataset):
            loaded = datasets.DatasetDict({"train": loaded})
        source = dataset_name + (f"/{dataset_config_name}" if dataset_config_name else "")
        converted = datasets.DatasetDict(
            {
                split: _convert_hub_split(
                    ds,
                    split,
                    source,
                    token_column if isinstance(token_column, str) else None,
                    tag_column if isinstance(tag_column, str) else None,
                    context_column,
                    label_names,
                )
                for split, ds in loaded.items()
            }
        )
        for split, ds in converted.items():
            check_words_and_tags(ds, f"{source} split {split!r}")
        if tag_scheme is not None:
            for split, ds in converted.items():
                if "tags" not in ds.column_names:
                    continue
                tags = apply_tag_scheme(ds["tags"], tag_scheme, f"{source} split {split!r}", tokens=ds["tokens"],
                                        check_transitions=check_transitions)
                if tags != ds["tags"]:
                    converted[split] = ds.map(lambda b, idx: {"tags": [tags[i] for i in idx]}, batched=True,
                                              with_indices=True, desc=f"Converting {split} tags to BIO")
        return converted
    if data_files is None:
        raise ValueError("load_ner_dataset needs data_files or dataset_name")
    if isinstance(data_files, (str, os.PathLike)):
        data_files = {"train": data_files}
    splits = {}
    for split, paths in data_files.items():
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        rows: list[dict[str, Any]] = []
        for path in paths:
            if not os.path.exists(path):
                raise FileNotFoundError(f"{split} data file not found: {path}")
            file_rows, lines, words_on_lines = _read_file(
                path, format, token_column, tag_column, context_column, label_names
            )
            if not file_rows:
                raise CLNERFormatError(path, None, "no sentences (the file is empty or holds only blank lines or no "
                                                   "records)")
            check_words_and_tags(file_rows, str(path), lines, words_on_lines)
            if tag_scheme is not None and all("tags" in row for row in file_rows):
                tags = apply_tag_scheme(
                    [row["tags"] for row in file_rows],
                    tag_scheme,
                    str(path),
                    tokens=[row["tokens"] for row in file_rows],
                    lines=lines,
                    words_on_lines=words_on_lines,
                    check_transitions=check_transitions,
                )
                file_rows = [{**row, "tags": t} for row, t in zip(file_rows, tags)]
            if len(paths) > 1:  # ids from several files stay unique
                file_rows = [{**row, "id": f"{len(rows) + i}"} for i, row in enumerate(file_rows)]
            rows.extend(file_rows)
        splits[split] = rows_to_dataset(rows, ", ".join(map(str, paths)))
    return datasets.DatasetDict(splits)


# ----------------------------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------------------------


def _select_split(data: Any, split: str):
    import datasets

    if isinstance(data, (datasets.DatasetDict, dict)):
        if split not in data:
            raise ValueError(f"no {split!r} split (splits: {list(data)})")
        return data[split]
    return data


def get_label_list(dataset_dict_or_dataset: Any, split: str = "train", tag_column: str = "tags") -> list[str]:
    """Label names: the ClassLabel names when the tag column has them (in ClassLabel order), else the sorted
    names seen in ``split`` with ``O`` first. Accepts a DatasetDict, a Dataset or a list of rows."""
    ds = _select_split(dataset_dict_or_dataset, split)
    features = getattr(ds, "features", None)
    if features is not None:
        if tag_column not in features:
            raise ValueError(f"no {tag_column!r} column in the {split} data (columns: {list(features)})")
        names = _classlabel_names(features[tag_column])
        if names is not None:
            return names
        column = ds[tag_column]
    else:
        column = []
        for i, row in enumerate(ds):
            if tag_column not in row:
                raise ValueError(f"{split} row {i} has no {tag_column!r}")
            column.append(row[tag_column])
    labels = {tag for tags in column for tag in tags}
    if not labels:
        raise ValueError(f"no labels in the {split} data")
    ordered = sorted(labels)
    if "O" in labels:
        ordered.remove("O")
        ordered.insert(0, "O")
    return ordered


def check_labels(dataset: Any, label2id: Mapping[str, int], split_name: str, tag_column: str = "tags") -> None:
    """Raise ValueError if ``dataset`` has a label missing from ``label2id`` (labels are never remapped).

    The message names every unseen label with the split, and the row (and word) of its first occurrence.
    Unlabeled data (no tag column) passes.
    """
    features = getattr(dataset, "features", None)
    if features is not None and tag_column not in features:
        return
    names = _classlabel_names(features[tag_column]) if features is not None else None
    ids = dataset["id"] if features is not None and "id" in features else None
    column = dataset[tag_column] if features is not None else [row.get(tag_column) or [] for row in dataset]
    unseen: dict[str, tuple[int, int]] = {}
    for i, tags in enumerate(column):
        for j, tag in enumerate(tags):
            if names is not None and isinstance(tag, int):
                tag = names[tag]
            if tag not in label2id and tag not in unseen:
                unseen[tag] = (i, j)
    if unseen:
        details = "; ".join(
            f"{tag!r} (first at row {i}" + (f", id {ids[i]!r}" if ids is not None else "") + f", word {j})"
            for tag, (i, j) in unseen.items()
        )
        raise ValueError(
            f"{split_name} split: label(s) unseen in training: {details}. Known labels: {sorted(label2id)}. "
            f"Fix the {split_name} data or add the label to the training data; labels are never remapped."
        )


# ----------------------------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------------------------


def _to_python(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def preprocess_dataset(
    dataset: Any,
    tokenizer: Any,
    label2id: Mapping[str, int] | None = None,
    max_seq_length: int = 512,
    stride: int = 16,
    with_labels: bool = True,
    num_proc: int | None = None,
    desc: str = "Encoding sentences and contexts",
    snippet_separator: str | None = None,
    tag_column: str = "tags",
    load_from_cache_file: bool | None = None,
):
    """Encode rows into model features: one output row per window from ``modeling_clner.encode_example``.

    Output columns: the feature keys of ``encode_example`` (both views, ``word_index``, ``has_context``,
    ``word_start``, ``own_start``, ``own_end``), ``example_id`` (index of the source row), ``length`` (the
    sub-tokens a training step runs for the row: its sentence view, plus its context view when it has a context;
    what `--train_sampling_strategy group_by_length` groups on) and, for labeled data when ``with_labels``,
    ``labels`` (label ids of the window's words). Source columns are removed.
    A DatasetDict is processed split by split.
    """
    import datasets

    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict(
            {
                split: preprocess_dataset(
                    ds,
                    tokenizer,
                    label2id,
                    max_seq_length,
                    stride,
                    with_labels,
                    num_proc,
                    f"{desc} ({split})",
                    snippet_separator,
                    tag_column,
                    load_from_cache_file,
                )
                for split, ds in dataset.items()
            }
        )
    from modeling_clner import encode_example

    labeled = with_labels and tag_column in dataset.column_names
    if labeled and label2id is None:
        raise ValueError("preprocess_dataset needs label2id for labeled data (or with_labels=False)")
    names = _classlabel_names(dataset.features[tag_column]) if labeled else None
    has_context = "context" in dataset.column_names
    label2id = dict(label2id) if label2id is not None else None

    def encode(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
        out: dict[str, list] = {}
        keys: list[str] | None = None
        for k, idx in enumerate(indices):
            words = batch["tokens"][k]
            context = batch["context"][k] if has_context else None
            can_start = None
            if labeled and len(batch[tag_column][k]) == len(words):  # no window opens inside a gold entity
                row_tags = [names[t] if names is not None and isinstance(t, int) else t for t in batch[tag_column][k]]
                can_start = [parse_tag(str(t))[0] not in ("I", "E") for t in row_tags]
            features = encode_example(
                tokenizer,
                words,
                context,
                max_seq_length=max_seq_length,
                stride=stride,
                snippet_separator=snippet_separator,
                can_start=can_start,
            )
            if not features:
                raise ValueError(f"row {idx}: encode_example returned no feature")
            for feature in features:
                feature = {key: _to_python(value) for key, value in feature.items()}
                if keys is None:
                    keys = list(feature)
                    for key in keys:
                        out[key] = []
                    if labeled:
                        out["labels"] = []
                    out["example_id"] = []
                    out["length"] = []
                elif sorted(feature) != sorted(keys):
                    raise ValueError(f"row {idx}: feature keys {sorted(feature)} differ from {sorted(keys)}")
                for key in keys:
                    out[key].append(feature[key])
                out["length"].append(len(feature["input_ids"]) + (len(feature["ctx_input_ids"])
                                                                   if feature["has_context"] else 0))
                if labeled:
                    start = int(feature["word_start"])
                    n_words = len(feature["word_index"])
                    tags = batch[tag_column][k][start : start + n_words]
                    if len(tags) != n_words:
                        raise ValueError(
                            f"row {idx}: window at word {start} has {n_words} words but only {len(tags)} tags"
                        )
                    labels = []
                    for j, tag in enumerate(tags):
                        if names is not None and isinstance(tag, int):
                            tag = names[tag]
                        if tag not in label2id:
                            raise ValueError(
                                f"row {idx}, word {start + j}: label {tag!r} not in label2id {sorted(label2id)}"
                            )
                        labels.append(label2id[tag])
                    out["labels"].append(labels)
                out["example_id"].append(idx)
        return out

    return dataset.map(
        encode,
        batched=True,
        with_indices=True,
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc=desc,
        load_from_cache_file=load_from_cache_file,
    )


# ----------------------------------------------------------------------------------------------------------------
# Collator
# ----------------------------------------------------------------------------------------------------------------


def _to_list(value: Any) -> list:
    value = _to_python(value)
    return list(value)


@dataclass
class CLNERDataCollator:
    """Pads a batch of two-view features into torch tensors.

    The sentence view (``input_ids``...) and the context view (``ctx_input_ids``...) are padded EACH to its own
    longest row (rounded up to ``pad_to_multiple_of``). ``word_index``/``ctx_word_index`` pad with ``-1`` and
    ``labels`` with ``-100`` to the batch's largest word count (both views share the word-level labels);
    ``has_context`` becomes a bool tensor; ``example_id``, ``word_start``, ``own_start``, ``own_end`` pass
    through as long tensors. Other keys are ignored.
    """

    tokenizer: Any
    pad_to_multiple_of: int | None = None
    label_pad_token_id: int = -100
    word_index_pad_id: int = -1

    def _pad_view(self, features: list[Mapping[str, Any]], prefix: str, batch: dict[str, Any]) -> None:
        """One view, padded by the inference core's `pad_view` (as every inference path pads it)."""
        import torch

        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            raise ValueError("the tokenizer has no pad token")
        padded = pad_view(features, prefix, pad_id, getattr(self.tokenizer, "pad_token_type_id", 0) or 0,
                          multiple_of=self.pad_to_multiple_of,
                          left=getattr(self.tokenizer, "padding_side", "right") == "left",
                          word_pad_id=self.word_index_pad_id)
        for key, rows in padded.items():
            batch[prefix + key] = torch.tensor(rows, dtype=torch.long).reshape(len(rows), len(rows[0]))

    def __call__(self, features: list[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        if not features:
            raise ValueError("empty batch")
        batch: dict[str, Any] = {}
        for prefix in ("", "ctx_"):
            if f"{prefix}input_ids" in features[0]:
                self._pad_view(features, prefix, batch)
        if "word_index" in batch and "ctx_word_index" in batch:
            width = max(batch["word_index"].shape[1], batch["ctx_word_index"].shape[1])
            for key in ("word_index", "ctx_word_index"):
                t = batch[key]
                if t.shape[1] < width:
                    batch[key] = torch.nn.functional.pad(t, (0, width - t.shape[1]), value=self.word_index_pad_id)
        if "labels" in features[0]:
            if any("labels" not in f for f in features):
                raise ValueError("'labels' missing from some features")
            labels = [_to_list(f["labels"]) for f in features]
            width = max(len(v) for v in labels)
            if "word_index" in batch:
                width = max(width, batch["word_index"].shape[1])
            batch["labels"] = torch.tensor(
                [v + [self.label_pad_token_id] * (width - len(v)) for v in labels], dtype=torch.long
            )
        if "has_context" in features[0]:
            batch["has_context"] = torch.tensor(
                [bool(_to_python(f["has_context"])) for f in features], dtype=torch.bool
            )
        for key in SCALAR_FEATURE_KEYS:
            if key in features[0]:
                batch[key] = torch.tensor([int(_to_python(f[key])) for f in features], dtype=torch.long)
        return batch


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` of the clner commands, each default said once: a help text that states its default keeps its own
    words, a required option says none, the others get argparse's ``(default: ...)``."""

    def _get_help_string(self, action):
        text = action.help or ""
        return text if action.required or "default" in text.lower() else super()._get_help_string(action)
