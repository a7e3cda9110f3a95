"""Reading and writing NER data: the file formats, the checks of words and tags at load, and `load_ner_dataset`.

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

import io
import json
import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from clner.data.schemes import apply_tag_scheme
from clner.errors import CLNERFormatError, CLNERUsageError
from clner.files import atomic_open
from inference_clner import context_snippets

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


# ----------------------------------------------------------------------------------------------------------------
# Line-oriented readers
# ----------------------------------------------------------------------------------------------------------------


def iter_lines(path: str | os.PathLike, encoding: str = "utf-8", fix: str | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` with universal newlines (``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line;
    U+2028 & co. do not: tokens may hold them), a leading BOM dropped. Undecodable bytes raise
    :class:`CLNERFormatError` naming the line and column, and `fix` (default: re-save the file as UTF-8)."""
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
                    f"not valid {encoding.upper()} (byte 0x{byte:02x} at column {bad.start() + 1}); "
                    + (
                        fix
                        or f"re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 {os.path.basename(str(path))}`)"
                    ),
                )
            yield lineno, line.rstrip("\n")


def is_sentence_break(line: str, path: str | os.PathLike, lineno: int) -> bool:
    """Whether a line of a CoNLL / CLNER file ends a sentence: it is empty or holds only spaces and tabs. A line
    blank only by Unicode's measure (NBSP, U+2028, other exotic spaces) is an error naming it: read as a break it
    would split a sentence in two without a word."""
    if not line.strip(" \t\r\n"):
        return True
    if not line.strip():
        codes = ", ".join(sorted({f"U+{ord(c):04X}" for c in line if c not in " \t\r\n"}))
        raise CLNERFormatError(
            path,
            lineno,
            f"a line of invisible space characters ({codes}): a sentence ends at an empty line, and a word cannot "
            "be blank; make the line empty or remove it",
        )
    return False


def check_docstart(tokens: Sequence[str], path: str | os.PathLike, lineno: int) -> None:
    """A `-DOCSTART-` line marks a document's start, between sentences; inside a sentence it is an error naming the
    line (skipped, it would split the sentence in two)."""
    if tokens:
        raise CLNERFormatError(
            path,
            lineno,
            f"{DOCSTART} inside a sentence (after {len(tokens)} word(s)): a document marker stands between "
            "sentences, after an empty line",
        )


def iter_json_lines(path: str | os.PathLike, fix: str | None = None) -> Iterator[tuple[int, Any]]:
    """``(line_number, value)`` of each non-blank line of a JSON-lines file, read as :func:`iter_lines` reads
    (so a byte that is not UTF-8 is an error naming the line, with `fix`); a line that is not JSON is a
    :class:`CLNERFormatError` naming the file and line. What a record must hold is the caller's policy."""
    for lineno, line in iter_lines(path, fix=fix):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise CLNERFormatError(path, lineno, f"invalid JSON line: {err.msg}") from None
        yield lineno, value


def split_columns(line: str) -> tuple[list[str], bool]:
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
    return read_conll_with_lines(path, token_column, tag_column)[0]


def read_conll_with_lines(
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

    for lineno, line in iter_lines(path):
        if is_sentence_break(line, path, lineno):
            flush()
            continue
        if not tokens:
            start = lineno
        fields, _ = split_columns(line)
        if fields[0] == DOCSTART:
            check_docstart(tokens, path, lineno)
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
    return read_clner_with_lines(path)[0]


def read_clner_with_lines(path: str | os.PathLike) -> tuple[list[dict[str, Any]], list[int]]:
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

    for lineno, line in iter_lines(path):
        if is_sentence_break(line, path, lineno):
            flush()
            continue
        fields, tab_separated = split_columns(line)
        if _is_eos_line(fields):
            if not tokens:
                raise CLNERFormatError(path, lineno, f"context line before any sentence token: {_show(line)}")
            in_context = True
            snippets.append([])
            continue
        if not in_context:
            if fields[0] == DOCSTART:
                check_docstart(tokens, path, lineno)
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


def normalise_context(value: Any) -> list[str]:
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
                raise TypeError(
                    f"tag id {tag} out of range for {len(label_names)} label names {list(label_names)}: "
                    "--tag_names (label_names=) names every tag id, in id order from 0"
                )
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
        row["context"] = normalise_context(record.get(context_column) if context_column else None)
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
    for lineno, record in iter_json_lines(path):
        records.append(record)
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
        label_names = classlabel_names(features.get(tag_col))
    return _records_to_rows(table.to_pylist(), path, token_column, tag_col, context_column, label_names)


# ----------------------------------------------------------------------------------------------------------------
# Writers
# ----------------------------------------------------------------------------------------------------------------


def iter_named_rows(rows_or_dataset: Any) -> Iterator[dict[str, Any]]:
    """Rows as dicts with tag names (ClassLabel ids of a `datasets.Dataset` converted)."""
    names = None
    features = getattr(rows_or_dataset, "features", None)
    if features is not None and "tags" in features:
        names = classlabel_names(features["tags"])
    for i, row in enumerate(rows_or_dataset):
        if names is not None and row.get("tags") is not None:
            row = {**row, "tags": tag_names(row["tags"], names, f"row {i}")}
        yield row


def _check_writable_token(token: Any, i: int, j: int, what: str = "token") -> None:
    if not isinstance(token, str) or not token or token != token.strip() or any(c in token for c in "\t\n\r"):
        raise ValueError(
            f"row {i}: {what} {j} ({token!r}) cannot be written as a column (empty, padded or holds a tab/newline)"
        )


def sentence_lines(row: Mapping[str, Any], i: int, *, require_tags: bool) -> list[str]:
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
    for i, row in enumerate(iter_named_rows(rows_or_dataset)):
        out.extend(sentence_lines(row, i, require_tags=False))
        out.append("")
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(out) + ("\n" if out else ""))


def write_clner(rows_or_dataset: Any, path: str | os.PathLike) -> None:
    """Write the official CLNER format: sentence ``token<TAB>tag`` lines, then per snippet an ``<EOS> B-X`` line
    and its whitespace-split tokens as ``token B-X`` lines; a blank line after each sentence."""
    out = []
    for i, row in enumerate(iter_named_rows(rows_or_dataset)):
        out.extend(sentence_lines(row, i, require_tags=True))
        for k, snippet in enumerate(normalise_context(row.get("context"))):
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
# Loading into a DatasetDict
# ----------------------------------------------------------------------------------------------------------------


def has_context_lines(path: str | os.PathLike) -> bool:
    return any(line.startswith(EOS_TOKEN) and _is_eos_line(split_columns(line)[0]) for _, line in iter_lines(path))


def detect_format(path: str | os.PathLike) -> str:
    """``clner`` / ``conll`` / ``json`` / ``jsonl`` / ``parquet`` from the extension (and ``<EOS>`` lines)."""
    name = str(path).lower()
    if name.endswith(CONLL_EXTENSIONS):
        return "clner" if has_context_lines(path) else "conll"
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


def conll_is_unlabeled(path: str | os.PathLike) -> bool:
    """A single-column file (every token line one column) is unlabeled; one token line with a tag makes it labeled,
    so that a line missing its tag is reported at that line, even the first."""
    single = False
    for _, line in iter_lines(path):
        if line.strip():
            fields, _ = split_columns(line)
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
        return (*read_clner_with_lines(path), True)
    if fmt == "conll":
        tok = token_column if isinstance(token_column, int) else 0
        if isinstance(tag_column, int):
            tag: int | None = tag_column
        else:
            tag = None if conll_is_unlabeled(path) else -1
        return (*read_conll_with_lines(path, token_column=tok, tag_column=tag), True)
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


def check_words_and_tags(
    rows: Sequence[Mapping[str, Any]],
    source: str,
    lines: Sequence[int | None] | None = None,
    words_on_lines: bool = True,
) -> None:
    """Refuse, naming the file, line (or record) and word, what would corrupt a file this project writes or
    silently change the label set: a token that is not a non-empty string or holds a tab or newline, and a tag
    that holds whitespace (`'B-PER '` would be a type of its own; `'B-P ER'` splits predictions.txt's fields)."""
    for i, row in enumerate(rows):
        for what, items in (("token", row.get("tokens") or []), ("tag", row.get("tags") or [])):
            for j, item in enumerate(items):
                if what == "token":
                    bad = not isinstance(item, str) or not item.strip() or any(c in item for c in _UNWRITABLE)
                    why = "a token must be a non-empty string without tabs or newlines"
                else:
                    bad = not isinstance(item, str) or not item or any(c.isspace() for c in item)
                    why = "a tag holds no whitespace (labels are never trimmed or remapped silently)"
                if bad:
                    line = None
                    if lines is not None and i < len(lines) and lines[i] is not None:
                        line = lines[i] + (j if words_on_lines else 0)
                    where = {} if line is not None else {"record": i}
                    raise CLNERFormatError(
                        source, line, f"sentence {i + 1}, word {j + 1}: {what} {item!r}: {why}", **where
                    )


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
        names = classlabel_names(ds.features[tag_col])
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
        return _load_hub_dataset(
            data_files,
            dataset_name,
            dataset_config_name,
            tag_column,
            token_column,
            context_column,
            label_names,
            cache_dir,
            tag_scheme,
            check_transitions,
            **load_dataset_kwargs,
        )
    if data_files is None:
        raise ValueError("load_ner_dataset needs data_files or dataset_name")
    if isinstance(data_files, (str, os.PathLike)):
        data_files = {"train": data_files}
    splits = {}
    for split, paths in data_files.items():
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        rows: list[dict[str, Any]] = []
        for path in paths:
            file_rows = _load_local_file(
                path,
                split,
                format,
                token_column,
                tag_column,
                context_column,
                label_names,
                tag_scheme,
                check_transitions,
            )
            if len(paths) > 1:  # ids from several files stay unique
                file_rows = [{**row, "id": f"{len(rows) + i}"} for i, row in enumerate(file_rows)]
            rows.extend(file_rows)
        splits[split] = rows_to_dataset(rows, ", ".join(map(str, paths)))
    return datasets.DatasetDict(splits)


def provenance_path(path: str | os.PathLike) -> Path:
    """Where `clner-retrieve` records the provenance of an output: inside a `save_to_disk` folder, else beside the
    file (`<file>.provenance.json`)."""
    path = Path(path)
    return path / "retrieval_provenance.json" if path.is_dir() else path.with_name(f"{path.name}.provenance.json")


def check_provenance_rows(path: str | os.PathLike, rows: int) -> None:
    """Refuse a `clner-retrieve` output whose row count differs from the one its provenance records: a file cut
    short (a copy or a write that was interrupted) would otherwise train on part of the data without a word."""
    side = provenance_path(path)
    try:
        recorded = json.loads(side.read_text(encoding="utf-8")).get("rows")
    except (OSError, ValueError, AttributeError):
        return
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded != rows:
        raise CLNERFormatError(
            path,
            None,
            f"holds {rows} rows, but its provenance ({side.name}) records {recorded}: the file was cut short or "
            "edited after retrieval. Re-run clner-retrieve to rebuild it, or delete the provenance file if the "
            "change is intended",
        )


def _load_local_file(
    path,
    split: str,
    format,
    token_column,
    tag_column,
    context_column,
    label_names,
    tag_scheme,
    check_transitions: bool,
) -> list[dict[str, Any]]:
    """One local file's rows, checked (words and tags, naming the file and line) and in BIO when `tag_scheme`
    converts (IOB1 / IO)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{split} data file not found: {path}")
    file_rows, lines, words_on_lines = _read_file(path, format, token_column, tag_column, context_column, label_names)
    if not file_rows:
        raise CLNERFormatError(path, None, "no sentences (the file is empty or holds only blank lines or no records)")
    check_provenance_rows(path, len(file_rows))
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
    return file_rows


def _load_hub_dataset(
    data_files,
    dataset_name: str,
    dataset_config_name,
    tag_column,
    token_column,
    context_column,
    label_names,
    cache_dir,
    tag_scheme,
    check_transitions: bool,
    **load_dataset_kwargs,
):
    """A Hub (or local `load_dataset`) dataset in CLNER's columns: ClassLabel tag ids become names, every split is
    checked (naming the dataset and split) and converted to BIO when `tag_scheme` converts."""
    import datasets

    if isinstance(data_files, Mapping):
        data_files = {
            k: [str(p) for p in v] if isinstance(v, (list, tuple)) else str(v) for k, v in data_files.items()
        }
    try:
        loaded = datasets.load_dataset(
            dataset_name, dataset_config_name, data_files=data_files, cache_dir=cache_dir, **load_dataset_kwargs
        )
    except (ConnectionError, OSError) as err:  # offline, unknown id, no access (the Hub's errors are OSErrors)
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        raise CLNERUsageError(
            f"--dataset_name {dataset_name}: cannot load it ({type(err).__name__}: {' '.join(str(err).split())[:200]})"
            f"{'; HF_HUB_OFFLINE is set and no cached copy was found' if offline else ''}. Check the id and the "
            "network, or give local files (--train_file, --validation_file, --test_file)"
        ) from None
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
    if tag_scheme is None:
        return converted
    for split, ds in converted.items():
        if "tags" not in ds.column_names:
            continue
        tags = apply_tag_scheme(
            ds["tags"],
            tag_scheme,
            f"{source} split {split!r}",
            tokens=ds["tokens"],
            check_transitions=check_transitions,
        )
        if tags != ds["tags"]:
            converted[split] = ds.map(
                lambda b, idx, tags=tags: {"tags": [tags[i] for i in idx]},
                batched=True,
                with_indices=True,
                desc=f"Converting {split} tags to BIO",
            )
    return converted


def classlabel_names(feature: Any) -> list[str] | None:
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


def tag_names(tags: Any, names: list[str] | None, where: str) -> list:
    """A row's tags as names: ClassLabel ids become their names, names stay as they are. An id that is not a class
    (such as datasets' -1 for a missing label) is an error naming `where` and the word, never a wrap-around to the
    last class."""
    if names is None:
        return list(tags)
    out = []
    for j, tag in enumerate(tags):
        if isinstance(tag, int) and not isinstance(tag, bool):
            if not 0 <= tag < len(names):
                hint = (
                    " (-1 is how datasets marks a missing label: label every word, or leave the tags column out "
                    "of unlabeled data)"
                    if tag == -1
                    else ""
                )
                raise ValueError(
                    f"{where}, word {j}: tag id {tag} is not one of the {len(names)} classes {names}{hint}"
                )
            tag = names[tag]
        out.append(tag)
    return out
