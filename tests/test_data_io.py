"""Tests for clner.data.io: readers/writers, labels, preprocessing, the two-view collator and window stitching."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import datasets
import pytest
import torch

from clner.data import io as data_io
from clner.data import schemes
from clner.data.io import load_ner_dataset, read_clner, read_conll, read_json, write_clner, write_conll
from clner.data.preprocess import CLNERDataCollator, check_labels, get_label_list, preprocess_dataset
from clner.errors import CLNERFormatError
from inference_clner import stitch_windows

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "data"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

WNUT_LABELS = {"O"} | {
    f"{p}-{t}" for p in "BI" for t in ("person", "location", "group", "creative-work", "corporation", "product")
}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------------------
# Readers
# ------------------------------------------------------------------------------------------------------------


def test_read_conll_tab_space_docstart_and_whitespace_separator_lines():
    rows = read_conll(FIXTURES / "sample.conll")
    assert rows == [
        {"tokens": ["EU", "rejects", "German", "call"], "tags": ["B-group", "O", "O", "O"], "context": []},
        {"tokens": ["Peter", "Blackburn"], "tags": ["B-person", "I-person"], "context": []},
        {
            "tokens": ["@paulwalk", "loves", "Zephyr", "X2"],
            "tags": ["O", "O", "B-product", "I-product"],
            "context": [],
        },
    ]


def test_read_conll_columns():
    rows = read_conll(FIXTURES / "conll03_columns.txt")
    assert [r["tokens"] for r in rows] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert [r["tags"] for r in rows] == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    chunks = read_conll(FIXTURES / "conll03_columns.txt", tag_column=2)
    assert chunks[0]["tags"] == ["B-NP", "B-VP", "B-NP"]
    unlabeled = read_conll(FIXTURES / "conll03_columns.txt", tag_column=None)
    assert "tags" not in unlabeled[0] and unlabeled[1]["tokens"] == ["Peter", "Blackburn"]


def test_read_clner_snippets_quirks_and_ambiguous_tags():
    rows = read_clner(FIXTURES / "sample.clner.txt")
    assert len(rows) == 4
    assert rows[0]["tokens"] == ["trump", "is", "the", "Kremlin", "'s", "boy"]
    assert rows[0]["tags"] == ["B-person", "O", "O", "B-location", "O", "O"]
    # <EOS> markers dropped, tokens joined by spaces; S-X / X context tags; non-Latin text kept
    assert rows[0]["context"] == ["Is Trump the Kremlin 's boy ?", "Кремль — Москва 東京"]
    assert rows[1] == {"tokens": ["no", "context", "here"], "tags": ["O", "O", "O"], "context": []}
    # space-separated sentence lines are tolerated
    assert rows[2]["tags"] == ["B-product", "I-product", "O", "O"]
    assert rows[2]["context"] == ["The Zephyr X2 is a smartphone by Nimbrix"]
    # `<EOS>\tO` and `weird\tB-X` are sentence tokens: the context starts at the first `<EOS> B-X` line;
    # an empty snippet is kept, not dropped
    assert rows[3]["tokens"] == ["<EOS>", "weird", "token"]
    assert rows[3]["tags"] == ["O", "B-X", "O"]
    assert rows[3]["context"] == ["", "next snippet"]


def test_read_json_and_jsonl():
    rows = read_json(FIXTURES / "sample.jsonl")
    assert [r["tags"] for r in rows] == [["B-group", "O", "O", "O"], ["B-person", "I-person"], ["O", "O"]]
    # a list of snippets, one string -> one snippet, missing -> []
    assert [r["context"] for r in rows] == [
        ["The EU is a political union", "German beef"],
        ["Peter Blackburn is a journalist"],
        [],
    ]
    rows = read_json(FIXTURES / "sample.json")
    assert rows[0] == {
        "tokens": ["Kaleo", "Brandt", "rocks"],
        "tags": ["B-person", "I-person", "O"],
        "context": ["Kaleo Brandt is a singer"],
    }


def test_read_json_columnar_custom_tag_column_and_label_names(tmp_path):
    path = _write(tmp_path, "cols.json", json.dumps({"words": [["a", "b"], ["c"]], "labels": [[1, 0], [0]]}))
    rows = read_json(path, tag_column="labels", label_names=["O", "B-person"])
    assert rows == [
        {"tokens": ["a", "b"], "tags": ["B-person", "O"], "context": []},
        {"tokens": ["c"], "tags": ["O"], "context": []},
    ]
    # no tag column -> unlabeled rows
    assert "tags" not in read_json(path)[0]
    # a single record (not a dict of columns)
    one = _write(tmp_path, "one.json", json.dumps({"tokens": ["a", "b"], "tags": ["O", "O"], "context": "c"}))
    assert read_json(one) == [{"tokens": ["a", "b"], "tags": ["O", "O"], "context": ["c"]}]


# ------------------------------------------------------------------------------------------------------------
# Writers: round trips
# ------------------------------------------------------------------------------------------------------------


def test_clner_round_trip(tmp_path):
    rows = read_clner(FIXTURES / "sample.clner.txt")
    out = tmp_path / "out.txt"
    write_clner(rows, out)
    assert read_clner(out) == rows
    # writing again gives the same bytes
    out2 = tmp_path / "out2.txt"
    write_clner(read_clner(out), out2)
    assert out.read_bytes() == out2.read_bytes()


def test_clner_writer_splits_snippets_on_whitespace(tmp_path):
    rows = [{"tokens": ["Kaleo", "rocks"], "tags": ["B-person", "O"], "context": ["Kaleo  Brandt\tis a\nsinger"]}]
    out = tmp_path / "w.txt"
    write_clner(rows, out)
    text = out.read_text(encoding="utf-8")
    assert text == "Kaleo\tB-person\nrocks\tO\n<EOS> B-X\nKaleo B-X\nBrandt B-X\nis B-X\na B-X\nsinger B-X\n\n"
    assert read_clner(out)[0]["context"] == ["Kaleo Brandt is a singer"]


def test_conll_round_trip_and_dataset_input(tmp_path):
    rows = read_conll(FIXTURES / "sample.conll")
    out = tmp_path / "out.conll"
    write_conll(rows, out)
    assert read_conll(out) == rows
    # from a datasets.Dataset with ClassLabel ids: names are written
    names = ["O", "B-person", "I-person"]
    ds = datasets.Dataset.from_dict(
        {"tokens": [["Peter", "Blackburn", "ok"]], "tags": [[1, 2, 0]]},
        features=datasets.Features(
            {
                "tokens": datasets.List(datasets.Value("string")),
                "tags": datasets.List(datasets.ClassLabel(names=names)),
            }
        ),
    )
    write_conll(ds, out)
    assert out.read_text(encoding="utf-8") == "Peter\tB-person\nBlackburn\tI-person\nok\tO\n\n"
    # unlabeled rows round-trip with tag_column=None
    write_conll([{"tokens": ["a", "b"]}], out)
    assert read_conll(out, tag_column=None) == [{"tokens": ["a", "b"], "context": []}]


@pytest.mark.parametrize(
    "row, fragment",
    [
        ({"tokens": ["a b\tc"], "tags": ["O"]}, "cannot be written"),
        ({"tokens": [""], "tags": ["O"]}, "cannot be written"),
        ({"tokens": [], "tags": []}, "no tokens"),
        ({"tokens": ["a", "b"], "tags": ["O"]}, "1 tags for 2 tokens"),
        ({"tokens": ["<EOS>"], "tags": ["B-X"]}, "read back as context"),
        ({"tokens": ["a"], "tags": ["O"], "context": ["x <EOS> y"]}, "snippet break"),
        ({"tokens": ["a"]}, "no tags"),
    ],
)
def test_clner_writer_refuses_unrepresentable_rows(tmp_path, row, fragment):
    with pytest.raises(ValueError, match=re.escape(fragment)):
        write_clner([row], tmp_path / "bad.txt")


# ------------------------------------------------------------------------------------------------------------
# Malformed input: a ValueError naming file and line
# ------------------------------------------------------------------------------------------------------------

CONLL_ERRORS = [
    ("a\tO\nb\tX\tO\n", 2, "wrong column count"),
    ("a O\nb X O\n", 2, "wrong column count"),
    ("a\tO\n\nb\tO\n\tO\n", 4, "empty token"),
    ("a\tO\nb\n", 2, "missing tag"),
    ("a\tO\nb\t\n", 2, "missing tag"),
    ("a\tO\n<EOS> B-X\nctx B-X\n", 2, "read_clner"),
]

CLNER_ERRORS = [
    ("<EOS> B-X\nctx B-X\n", 1, "context line before any sentence token"),
    ("a\tO\n\n<EOS> B-X\nctx B-X\n", 3, "context line before any sentence token"),
    ("ctx B-X\n", 1, "before any sentence token"),
    ("a\tO\nctx B-X\n", 2, "no preceding '<EOS> B-X'"),
    ("a\tO\n<EOS> B-X\nctx B-X\nb\tO\n", 4, "tab-separated sentence line after the context started"),
    ("a\tO\n<EOS> B-X\nctx B-person\n", 3, "context token tagged 'B-person'"),
    ("a\tO\n<EOS> B-X\nctx\n", 3, "missing tag in context line"),
    ("a\tO\n<EOS> B-X\nctx more B-X\n", 3, "wrong column count in context line"),
    ("a\tO\tO\n", 1, "wrong column count"),
    ("a\tO\n\tO\n", 2, "empty token"),
    ("a\tO\nb\n", 2, "missing tag"),
    ("a\tO\nb\t\n", 2, "missing tag"),
]


@pytest.mark.parametrize("text, line, fragment", CONLL_ERRORS)
def test_read_conll_errors_name_file_and_line(tmp_path, text, line, fragment):
    path = _write(tmp_path, "bad.conll", text)
    with pytest.raises(ValueError) as err:
        read_conll(path)
    assert isinstance(err.value, CLNERFormatError)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert fragment in str(err.value)


@pytest.mark.parametrize("text, line, fragment", CLNER_ERRORS)
def test_read_clner_errors_name_file_and_line(tmp_path, text, line, fragment):
    path = _write(tmp_path, "bad.txt", text)
    with pytest.raises(ValueError) as err:
        read_clner(path)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert fragment in str(err.value)
    # load_ner_dataset surfaces the same error
    with pytest.raises(ValueError, match=re.escape(f"{path}:{line}: ")):
        load_ner_dataset({"train": str(path)}, format="clner")


def test_read_clner_skips_empty_context_tokens_and_warns_once(tmp_path):
    # released CLNER files hold context lines whose token is empty: " B-X" (and whitespace-only tokens)
    text = (
        "Kaleo\tB-person\nsings\tO\n<EOS> B-X\nKaleo B-X\n B-X\nis B-X\n\u00a0 B-X\n<EOS> B-X\n B-X\nsinger B-X\n\n"
        "next\tO\n<EOS> B-X\n B-X\n\nlast\tO\n"
    )
    path = _write(tmp_path, "released.txt", text)
    with pytest.warns(UserWarning, match=r"skipped 4 empty context token\(s\).*lines 5, 7, 9, 14") as record:
        rows = read_clner(path)
    assert len([w for w in record if "empty context token" in str(w.message)]) == 1
    assert rows == [
        {"tokens": ["Kaleo", "sings"], "tags": ["B-person", "O"], "context": ["Kaleo is", "singer"]},
        {"tokens": ["next"], "tags": ["O"], "context": [""]},
        {"tokens": ["last"], "tags": ["O"], "context": []},
    ]
    dd = load_ner_dataset({"train": str(path)}, format="clner")
    assert dd["train"]["tokens"] == [["Kaleo", "sings"], ["next"], ["last"]]
    # sentence lines stay strict: an empty sentence token is still an error naming its line
    strict = _write(tmp_path, "strict.txt", "a\tO\n B-X\n")
    with pytest.raises(CLNERFormatError, match=re.escape(f"{strict}:2: ")):
        read_clner(strict)


def test_invalid_utf8_names_line(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_bytes(b"a\tO\nb\xff\tO\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}:2: not valid UTF-8")):
        read_conll(path)


@pytest.mark.parametrize(
    "name, text, where, fragment",
    [
        (
            "bad.jsonl",
            '{"tokens": ["a"], "tags": ["O"]}\n\n{"tokens": ["a", "b"], "tags": ["O"]}\n',
            ":3: record 1",
            "1 tags for 2 tokens",
        ),
        ("bad.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a"], \n', ":2: ", "invalid JSON line"),
        (
            "bad.jsonl",
            '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a"]}\n',
            ":2: record 1",
            "missing tag column 'tags'",
        ),
        ("bad.jsonl", '{"tokens": ["a", ""], "tags": ["O", "O"]}\n', ":1: record 0", "empty token at word 1"),
        ("bad.jsonl", '{"tokens": [], "tags": []}\n', ":1: record 0", "empty sentence"),
        ("bad.jsonl", '{"tokens": ["a"], "tags": [0]}\n', ":1: record 0", "no label names"),
        ("bad.jsonl", '{"tokens": ["a"], "tags": ["O"], "context": [1]}\n', ":1: record 0", "'context'"),
        ("bad.json", '[{"tokens": ["a"], "tags": ["O"]},\n {"tokens": ["b"] "tags": ["O"]}]', ":2: ", "invalid JSON"),
        (
            "bad.json",
            '[{"tokens": ["a"], "tags": ["O"]}, {"tokens": "b", "tags": ["O"]}]',
            ": record 1",
            "list of strings",
        ),
        ("bad.json", '[{"words": ["a"], "tags": ["O"]}]', ": ", "no token column"),
    ],
)
def test_read_json_errors_name_file_and_record(tmp_path, name, text, where, fragment):
    path = _write(tmp_path, name, text)
    with pytest.raises(ValueError) as err:
        read_json(path, token_column="tokens" if "words" in text else None)
    assert str(err.value).startswith(f"{path}{where}"), str(err.value)
    assert fragment in str(err.value)


# ------------------------------------------------------------------------------------------------------------
# load_ner_dataset
# ------------------------------------------------------------------------------------------------------------


def test_load_ner_dataset_detects_formats(tmp_path):
    clner_txt = tmp_path / "ctx.txt"
    clner_txt.write_bytes((FIXTURES / "sample.clner.txt").read_bytes())
    dd = load_ner_dataset(
        {
            "train": str(clner_txt),
            "validation": str(FIXTURES / "sample.conll"),
            "test": str(FIXTURES / "sample.jsonl"),
            "extra": str(FIXTURES / "sample.json"),
        }
    )
    assert set(dd) == {"train", "validation", "test", "extra"}
    for ds in dd.values():
        assert ds.column_names == ["id", "tokens", "tags", "context"]
        assert ds.features["context"] == datasets.List(datasets.Value("string"))
        assert ds["id"] == [str(i) for i in range(len(ds))]
    assert dd["train"]["context"][0] == read_clner(FIXTURES / "sample.clner.txt")[0]["context"]
    assert dd["validation"]["context"] == [[], [], []]
    assert dd["test"]["context"][1] == ["Peter Blackburn is a journalist"]
    # format= overrides the detection
    with pytest.raises(ValueError, match=re.escape(f"{clner_txt}:7: <EOS> context line in a CoNLL file")):
        load_ner_dataset({"train": str(clner_txt)}, format="conll")
    as_json = _write(tmp_path, "rows.txt", (FIXTURES / "sample.jsonl").read_text(encoding="utf-8"))
    assert load_ner_dataset({"train": str(as_json)}, format="jsonl")["train"]["tokens"] == dd["test"]["tokens"]
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_ner_dataset({"train": str(_write(tmp_path, "x.csv", "a,b\n"))})


def test_load_ner_dataset_unlabeled_and_multiple_files(tmp_path):
    unlabeled = _write(tmp_path, "test.conll", "a\nb\n\nc\n")
    dd = load_ner_dataset(
        {"train": [str(FIXTURES / "sample.conll"), str(FIXTURES / "sample.json")], "test": str(unlabeled)}
    )
    assert dd["test"].column_names == ["id", "tokens", "context"]
    assert dd["test"]["tokens"] == [["a", "b"], ["c"]]
    assert dd["train"].num_rows == 5 and dd["train"]["id"] == ["0", "1", "2", "3", "4"]
    assert dd["train"]["tokens"][3] == ["Kaleo", "Brandt", "rocks"]


def test_load_ner_dataset_parquet_with_classlabel(tmp_path):
    names = ["O", "B-location", "I-location"]
    features = datasets.Features(
        {
            "tokens": datasets.List(datasets.Value("string")),
            "ner_tags": datasets.List(datasets.ClassLabel(names=names)),
            "context": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_dict(
        {"tokens": [["Port", "Haverly", "!"], ["hi"]], "ner_tags": [[1, 2, 0], [0]], "context": ["a town", ""]},
        features=features,
    )
    path = tmp_path / "train.parquet"
    ds.to_parquet(str(path))
    out = load_ner_dataset({"train": str(path)})["train"]
    assert out["tags"] == [["B-location", "I-location", "O"], ["O"]]
    assert out["context"] == [["a town"], []]


def test_load_ner_dataset_hub_style_classlabel_to_names(tmp_path):
    """A dataset repository (here a local folder, offline) with Sequence(ClassLabel) tags and no context."""
    names = ["O", "B-person", "I-person", "B-group"]
    features = datasets.Features(
        {
            "id": datasets.Value("string"),
            "tokens": datasets.Sequence(datasets.Value("string")),
            "ner_tags": datasets.Sequence(datasets.ClassLabel(names=names)),
        }
    )
    repo = tmp_path / "repo" / "data"
    repo.mkdir(parents=True)
    for split, tags in (("train", [[1, 2, 0], [3]]), ("validation", [[0, 1, 0], [0]])):
        ds = datasets.Dataset.from_dict(
            {
                "id": [f"{split}-a", f"{split}-b"],
                "tokens": [["Mira", "Solenne", "sings"], ["Harbor"]],
                "ner_tags": tags,
            },
            features=features,
        )
        ds.to_parquet(str(repo / f"{split}-00000-of-00001.parquet"))
    # straight from the datasets library: ClassLabel names in their own order
    assert (
        get_label_list(
            datasets.load_dataset(str(tmp_path / "repo"), cache_dir=str(tmp_path / "cache")), tag_column="ner_tags"
        )
        == names
    )
    dd = load_ner_dataset(dataset_name=str(tmp_path / "repo"), cache_dir=str(tmp_path / "cache"))
    assert set(dd) == {"train", "validation"}
    assert dd["train"].column_names == ["id", "tokens", "tags", "context"]
    assert dd["train"]["tags"] == [["B-person", "I-person", "O"], ["B-group"]]
    assert dd["validation"]["id"] == ["validation-a", "validation-b"]
    assert dd["train"]["context"] == [[], []]


# ------------------------------------------------------------------------------------------------------------
# Hostile input: line endings, empty files, tagging schemes
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sample.conll", "sample.clner.txt", "sample.jsonl"])
@pytest.mark.parametrize("newline", [b"\r", b"\r\n"])
def test_cr_only_and_crlf_line_endings_read_like_lf(tmp_path, name, newline):
    lf = (FIXTURES / name).read_bytes()
    assert b"\r" not in lf
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + lf.replace(b"\n", newline))  # an old-Mac / Windows export, with a BOM
    expected = load_ner_dataset({"train": str(FIXTURES / name)})["train"]
    got = load_ner_dataset({"train": str(path)})["train"]
    assert got["tokens"] == expected["tokens"] and got["tags"] == expected["tags"] and len(got) > 1
    assert got["context"] == expected["context"]


@pytest.mark.parametrize(
    "name, text",
    [
        ("empty.conll", ""),
        ("blank.conll", "\n  \n\t\n"),
        ("blank.txt", "\r\n\r\n"),
        ("empty.json", "[]"),
        ("empty.jsonl", "\n\n"),
        ("docstart.conll", "-DOCSTART- -X- O O\n\n"),
    ],
)
def test_a_file_without_sentences_is_an_error_naming_it(tmp_path, name, text):
    path = _write(tmp_path, name, text)
    with pytest.raises(CLNERFormatError) as err:
        load_ner_dataset({"train": str(FIXTURES / "sample.conll"), "validation": str(path)})
    assert str(err.value) == f"{path}: no sentences (the file is empty or holds only blank lines or no records)"


def test_first_line_without_a_tag_is_reported_at_line_1(tmp_path):
    path = _write(tmp_path, "bad.conll", "EU\nrejects\tO\n")
    with pytest.raises(CLNERFormatError, match=re.escape(f"{path}:1: missing tag (a single column): 'EU'")):
        load_ner_dataset({"train": str(path)})
    # a file where no line has a tag is still read as unlabeled
    assert load_ner_dataset({"test": str(_write(tmp_path, "raw.conll", "EU\nrejects\n"))})["test"].column_names == [
        "id",
        "tokens",
        "context",
    ]


def test_tab_separated_context_line_is_named_as_such(tmp_path):
    path = _write(tmp_path, "ctx.txt", "Look\tO\n<EOS> B-X\nLook\tB-X\n")
    with pytest.raises(CLNERFormatError) as err:
        read_clner(path)
    assert str(err.value).startswith(f"{path}:3: context line separated by a tab: 'Look\\tB-X'")
    assert "replace the tab with a space" in str(err.value) and "missing blank line" not in str(err.value)


def test_integer_tags_error_names_the_cli_flag(tmp_path):
    path = _write(tmp_path, "ids.jsonl", '{"tokens": ["a"], "tags": [1]}\n')
    with pytest.raises(CLNERFormatError, match=re.escape("--tag_names")):
        load_ner_dataset({"train": str(path)})
    assert load_ner_dataset({"train": str(path)}, label_names=["O", "B-x"])["train"]["tags"] == [["B-x"]]
    message = f"{path}:1: record 0: tag id 1 out of range for 1 label names ['O']: --tag_names (label_names=) names"
    with pytest.raises(CLNERFormatError, match=re.escape(message)):
        load_ner_dataset({"train": str(path)}, label_names=["O"])


SCHEME_ERRORS = [
    # scheme, text, line of the bad tag, fragments of the message
    (
        "BIO",
        "EU\tB-ORG\nsays\tO\n\nPeter\tO\nBlackburn\tI-PER\n",
        5,
        [
            "sentence 2 (line 4), word 2 'Blackburn': 'I-PER' follows 'O'",
            "--tag_scheme IOB1",
            "--crf_constraints false",
        ],
    ),
    ("BIO", "Peter\tI-PER\nsays\tO\n", 1, ["'I-PER' starts the sentence", "--tag_scheme IOB1"]),
    ("BIO", "Peter\tB-PER\nParis\tI-LOC\n", 2, ["'I-LOC' follows 'B-PER'"]),
    (
        "BIO",
        "Peter\tPER\nsays\tO\n\nParis\tLOC\n",
        1,
        ["tag 'PER' has no B-/I- prefix", "--tag_scheme IO", "(1 more such tag(s) in this data)"],
    ),
    ("BIO", "Peter\tS-PER\n", 1, ["BIOES tag", "--tag_scheme BIOES"]),
    (
        "BIOES",
        "Peter\tB-PER\nsays\tO\n\nPeter\tS-PER\n",
        1,
        ["entity 'B-PER' is not closed before 'O'", "E-PER", "S-PER"],
    ),
    (
        "BIOES",
        "Peter\tB-PER\nBlackburn\tI-PER\n",
        2,
        ["not closed at the end of the sentence", "no E-/S- tags at all: it looks like BIO (--tag_scheme BIO)"],
    ),
    ("BIOES", "says\tO\nBlackburn\tE-PER\n", 2, ["'E-PER' follows 'O'"]),
    ("IOB1", "Peter\tB-PER\nsays\tO\n", 1, ["'B-PER' starts the sentence", "the file is BIO: pass --tag_scheme BIO"]),
    ("IO", "Peter\tB-PER\n", 1, ["has a B- prefix", "--tag_scheme BIO"]),
]


@pytest.mark.parametrize("scheme, text, line, fragments", SCHEME_ERRORS)
def test_every_split_is_checked_against_the_tag_scheme_at_load_time(tmp_path, scheme, text, line, fragments):
    dev = _write(tmp_path, "dev.conll", text)
    with pytest.raises(CLNERFormatError) as err:
        load_ner_dataset({"validation": str(dev)}, tag_scheme=scheme)
    message = str(err.value)
    assert message.startswith(f"{dev}:{line}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_bare_types_under_bioes_are_not_said_to_look_like_bio(tmp_path):
    dev = _write(tmp_path, "dev.conll", "Peter\tPER\nsays\tO\n")
    with pytest.raises(CLNERFormatError) as err:
        load_ner_dataset({"validation": str(dev)}, tag_scheme="BIOES")
    assert "--tag_scheme IO" in str(err.value) and "looks like BIO" not in str(err.value)


def test_scheme_errors_in_json_lines_name_the_record_line_and_word(tmp_path):
    text = '{"tokens": ["a"], "tags": ["O"]}\n\n{"tokens": ["b", "c"], "tags": ["O", "I-x"]}\n'
    path = _write(tmp_path, "dev.jsonl", text)
    with pytest.raises(CLNERFormatError, match=re.escape(f"{path}:3: sentence 2, word 2 'c': 'I-x' follows 'O'")):
        load_ner_dataset({"validation": str(path)})


def test_tag_order_is_not_checked_without_crf_constraints(tmp_path):
    path = _write(tmp_path, "dev.conll", "says\tO\nBlackburn\tI-PER\n")
    assert load_ner_dataset({"v": str(path)}, check_transitions=False)["v"]["tags"] == [["O", "I-PER"]]
    with pytest.raises(CLNERFormatError, match="no B-/I- prefix"):  # the tags' form still is
        load_ner_dataset({"v": str(_write(tmp_path, "bare.conll", "Peter\tPER\n"))}, check_transitions=False)
    assert load_ner_dataset({"v": str(path)}, tag_scheme=None)["v"]["tags"] == [["O", "I-PER"]]


IOB1_TEXT = (
    "EU\tI-ORG\nrejects\tO\nGerman\tI-MISC\ncall\tO\n\n"
    "Peter\tI-PER\nBlackburn\tI-PER\nJohn\tB-PER\nSmith\tI-PER\nand\tO\nAcme\tI-ORG\n\n"
)


def test_iob1_and_io_files_are_converted_to_bio_and_back(tmp_path):
    path = _write(tmp_path, "iob1.conll", IOB1_TEXT)
    original = [r["tags"] for r in read_conll(path)]
    bio = load_ner_dataset({"train": str(path)}, tag_scheme="IOB1")["train"]["tags"]
    assert bio == [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER", "B-PER", "I-PER", "O", "B-ORG"]]
    assert [schemes.tags_to_scheme(t, "IOB1") for t in bio] == original
    assert schemes.model_tag_scheme("IOB1") == "BIO" and schemes.model_tag_scheme("BIOES") == "BIOES"
    io = _write(tmp_path, "io.conll", "Peter\tPER\nBlackburn\tPER\nin\tO\nParis\tLOC\n")
    bio = load_ner_dataset({"train": str(io)}, tag_scheme="IO")["train"]["tags"]
    assert bio == [["B-PER", "I-PER", "O", "B-LOC"]]
    assert schemes.tags_to_scheme(bio[0], "IO") == ["PER", "PER", "O", "LOC"]
    assert schemes.tags_to_scheme(["B-x", "I-x"], None) == ["B-x", "I-x"]
    with pytest.raises(ValueError, match="unknown tag scheme 'IOE2'"):
        load_ner_dataset({"train": str(io)}, tag_scheme="IOE2")


def test_hub_splits_are_checked_and_converted(tmp_path):
    features = datasets.Features(
        {
            "tokens": datasets.List(datasets.Value("string")),
            "ner_tags": datasets.List(datasets.ClassLabel(names=["O", "B-person", "I-person"])),
        }
    )
    repo = tmp_path / "repo" / "data"
    repo.mkdir(parents=True)
    ds = datasets.Dataset.from_dict(
        {"tokens": [["hi"], ["Mira", "Solenne"]], "ner_tags": [[0], [2, 2]]}, features=features
    )
    ds.to_parquet(str(repo / "validation-00000-of-00001.parquet"))
    kwargs = dict(dataset_name=str(tmp_path / "repo"), cache_dir=str(tmp_path / "cache"))
    with pytest.raises(CLNERFormatError, match=r"split 'validation': sentence 2, word 1 'Mira': 'I-person' starts"):
        load_ner_dataset(**kwargs)
    assert load_ner_dataset(tag_scheme="IOB1", **kwargs)["validation"]["tags"] == [["O"], ["B-person", "I-person"]]


# ------------------------------------------------------------------------------------------------------------
# Labels
# ------------------------------------------------------------------------------------------------------------


def test_get_label_list_sorted_with_o_first():
    dd = load_ner_dataset({"train": str(FIXTURES / "sample.conll")})
    assert get_label_list(dd) == ["O", "B-group", "B-person", "B-product", "I-person", "I-product"]
    assert get_label_list(dd["train"]) == get_label_list(read_conll(FIXTURES / "sample.conll"))
    with pytest.raises(ValueError, match="no 'validation' split"):
        get_label_list(dd, split="validation")
    no_o = [{"tokens": ["a", "b"], "tags": ["I-x", "B-x"]}]
    assert get_label_list(no_o) == ["B-x", "I-x"]


def test_get_label_list_classlabel_names():
    names = ["O", "B-person", "I-person", "B-never-seen"]
    ds = datasets.Dataset.from_dict(
        {"tokens": [["a"]], "tags": [[1]]},
        features=datasets.Features(
            {
                "tokens": datasets.List(datasets.Value("string")),
                "tags": datasets.List(datasets.ClassLabel(names=names)),
            }
        ),
    )
    assert get_label_list(ds) == names


def test_check_labels_unseen_label_is_an_error(tmp_path):
    dev = _write(tmp_path, "dev.conll", "a\tO\nb\tB-person\n\nx\tO\ny\tB-weird\nz\tI-weird\n\nq\tB-weird\n")
    dd = load_ner_dataset(
        {"train": str(FIXTURES / "sample.conll"), "validation": str(dev), "ok": str(FIXTURES / "sample.json")}
    )
    label2id = {label: i for i, label in enumerate(get_label_list(dd))}
    check_labels(dd["train"], label2id, "train")
    check_labels(dd["ok"], label2id, "ok")  # B-person, I-person, O: all seen in training
    with pytest.raises(ValueError) as err:
        check_labels(dd["validation"], label2id, "validation")
    message = str(err.value)
    assert message.startswith("validation split: label(s) unseen in training: ")
    assert "'B-weird' (first at row 1, id '1', word 1)" in message
    assert "'I-weird' (first at row 1, id '1', word 2)" in message
    assert "'B-person'" not in message.split("Known labels")[0]
    # plain rows, and ClassLabel ids
    with pytest.raises(ValueError, match=r"test split: .*'B-x' \(first at row 0, word 0\)"):
        check_labels([{"tokens": ["a"], "tags": ["B-x"]}], label2id, "test")
    ds = datasets.Dataset.from_dict(
        {"tokens": [["a", "b"]], "tags": [[0, 1]]},
        features=datasets.Features(
            {
                "tokens": datasets.List(datasets.Value("string")),
                "tags": datasets.List(datasets.ClassLabel(names=["O", "B-new"])),
            }
        ),
    )
    with pytest.raises(ValueError, match=r"'B-new' \(first at row 0, word 1\)"):
        check_labels(ds, label2id, "test")
    # unlabeled data has nothing to check
    unlabeled = load_ner_dataset({"test": str(FIXTURES / "unlabeled.conll")})["test"]
    assert unlabeled["tokens"] == [["new", "phone", "who", "dis"], ["@jess_k", "lol"]]
    check_labels(unlabeled, label2id, "test")


def test_a_tag_id_outside_the_classes_is_an_error_not_the_last_class(tmp_path, minilm_tokenizer, label2id):
    """datasets marks a missing label with -1; as a list index it would read the last class. Every path that turns
    ClassLabel ids into names (label check, features, writers, card statistics) refuses it, naming row and word."""
    names = ["O", "B-person", "I-person"]
    ds = datasets.Dataset.from_dict(
        {"tokens": [["hi"], ["Mira", "Solenne", "waves"]], "tags": [[0], [1, 2, -1]]},
        features=datasets.Features(
            {
                "tokens": datasets.List(datasets.Value("string")),
                "tags": datasets.List(datasets.ClassLabel(names=names)),
            }
        ),
    )
    message = r"row 1, word 2: tag id -1 is not one of the 3 classes .*missing label"
    with pytest.raises(ValueError, match="test split, " + message):
        check_labels(ds, {n: i for i, n in enumerate(names)}, "test")
    with pytest.raises(ValueError, match=message):
        preprocess_dataset(ds, minilm_tokenizer, {n: i for i, n in enumerate(names)}, max_seq_length=32)
    with pytest.raises(ValueError, match=message):
        data_io.write_conll(ds, tmp_path / "out.conll")
    assert not (tmp_path / "out.conll").exists() or "waves" not in (tmp_path / "out.conll").read_text()
    from clner.hub.publish import _rows_with_tag_names

    with pytest.raises(ValueError, match=message):
        _rows_with_tag_names(ds)
    assert _rows_with_tag_names(ds.select([0])) == [{"tokens": ["hi"], "tags": ["O"]}]  # a valid id still maps


# ------------------------------------------------------------------------------------------------------------
# Preprocessing, collator, stitching (real tokenizer, real encode_example)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_dd():
    return load_ner_dataset(
        {"train": str(EXAMPLES / "data" / "train.txt"), "validation": str(EXAMPLES / "data" / "dev.txt")}
    )


@pytest.fixture(scope="module")
def label2id(sample_dd):
    return {label: i for i, label in enumerate(get_label_list(sample_dd))}


def test_preprocess_dataset_labels_and_columns(minilm_tokenizer, sample_dd, label2id):
    from inference_clner import encode_example

    ds = sample_dd["train"].select(range(12))
    features = preprocess_dataset(ds, minilm_tokenizer, label2id, max_seq_length=64)
    assert "tokens" not in features.column_names and "tags" not in features.column_names
    assert {
        "input_ids",
        "ctx_input_ids",
        "word_index",
        "ctx_word_index",
        "has_context",
        "labels",
        "example_id",
    } <= set(features.column_names)
    assert features.num_rows == 12  # short sentences: one window each
    for i, feature in enumerate(features):
        row = ds[i]
        assert feature["example_id"] == i
        assert feature["labels"] == [label2id[t] for t in row["tags"]]
        expected = encode_example(minilm_tokenizer, row["tokens"], row["context"], max_seq_length=64)[0]
        assert feature["input_ids"] == expected["input_ids"]
        assert feature["ctx_input_ids"] == expected["ctx_input_ids"]
        assert feature["has_context"] == bool(row["context"])
        # the sub-tokens a training step runs for the row: the context pass only when there is a context
        assert feature["length"] == len(expected["input_ids"]) + (
            len(expected["ctx_input_ids"]) if row["context"] else 0
        )
    # unlabeled: no labels column
    unlabeled = preprocess_dataset(ds.remove_columns("tags"), minilm_tokenizer, max_seq_length=64)
    assert "labels" not in unlabeled.column_names and unlabeled.num_rows == 12
    assert "labels" not in preprocess_dataset(ds, minilm_tokenizer, label2id, with_labels=False).column_names


def test_preprocess_dataset_windows_and_stitching(minilm_tokenizer, label2id):
    tags = ["O", "B-person", "I-person"] * 10 + ["O", "B-location"]
    words = [f"w{i}" for i in range(len(tags))]
    rows = [
        {"tokens": words, "tags": tags, "context": ["some context here"]},
        {"tokens": ["hi"], "tags": ["O"], "context": []},
    ]
    ds = data_io.rows_to_dataset(rows, "test")
    features = preprocess_dataset(ds, minilm_tokenizer, label2id, max_seq_length=24, stride=4)
    first = [f for f in features if f["example_id"] == 0]
    assert len(first) > 1  # the long sentence was split into windows
    for f in first:
        n = len(f["word_index"])
        assert f["labels"] == [label2id[t] for t in tags[f["word_start"] : f["word_start"] + n]]
    # stitching the labels back recovers each sentence's tags exactly once
    stitched = stitch_windows([{**f, "predictions": f["labels"]} for f in features], num_words=[len(words), 1])
    assert stitched == [[label2id[t] for t in tags], [label2id["O"]]]
    # an unknown label is an error naming the row and word
    bad = data_io.rows_to_dataset([{"tokens": ["a", "b"], "tags": ["O", "B-nope"], "context": []}], "bad")
    with pytest.raises(ValueError, match=r"row 0, word 1: label 'B-nope'"):
        preprocess_dataset(bad, minilm_tokenizer, label2id)


def test_collator_pads_each_view_to_its_own_length(minilm_tokenizer, sample_dd, label2id):
    ds = sample_dd["train"]
    with_ctx = next(i for i in range(len(ds)) if ds[i]["context"])
    without = next(
        i for i in range(len(ds)) if not ds[i]["context"] and len(ds[i]["tokens"]) != len(ds[with_ctx]["tokens"])
    )
    features = list(preprocess_dataset(ds.select([with_ctx, without]), minilm_tokenizer, label2id, max_seq_length=128))
    features[0]["tokens"] = ["ignored"]  # extra keys are ignored
    batch = CLNERDataCollator(minilm_tokenizer)(features)
    lens = [len(f["input_ids"]) for f in features]
    ctx_lens = [len(f["ctx_input_ids"]) for f in features]
    assert max(ctx_lens) > max(lens)
    assert batch["input_ids"].shape == (2, max(lens))  # the sentence view is not padded to the context view
    assert batch["ctx_input_ids"].shape == (2, max(ctx_lens))
    pad = minilm_tokenizer.pad_token_id
    for k, f in enumerate(features):
        assert batch["input_ids"][k, : lens[k]].tolist() == f["input_ids"]
        assert (batch["input_ids"][k, lens[k] :] == pad).all()
        assert batch["attention_mask"][k].sum().item() == lens[k]
        assert batch["ctx_attention_mask"][k].sum().item() == ctx_lens[k]
        n = len(f["word_index"])
        assert batch["word_index"][k, :n].tolist() == f["word_index"]
        assert batch["ctx_word_index"][k, :n].tolist() == f["ctx_word_index"]
        assert (batch["word_index"][k, n:] == -1).all() and (batch["ctx_word_index"][k, n:] == -1).all()
        assert batch["labels"][k, :n].tolist() == f["labels"] and (batch["labels"][k, n:] == -100).all()
    assert batch["word_index"].shape == batch["ctx_word_index"].shape == batch["labels"].shape
    assert batch["has_context"].dtype == torch.bool and batch["has_context"].tolist() == [True, False]
    for key in ("example_id", "word_start", "own_start", "own_end"):
        assert batch[key].dtype == torch.long
    assert batch["example_id"].tolist() == [0, 1]
    assert "tokens" not in batch and "token_type_ids" in batch and "ctx_token_type_ids" in batch
    assert all(isinstance(v, torch.Tensor) for v in batch.values())
    # pad_to_multiple_of rounds each view separately
    batch8 = CLNERDataCollator(minilm_tokenizer, pad_to_multiple_of=8)(features)
    assert batch8["input_ids"].shape[1] == -(-max(lens) // 8) * 8
    assert batch8["ctx_input_ids"].shape[1] == -(-max(ctx_lens) // 8) * 8


def test_collator_left_padding_shifts_word_index(minilm_tokenizer):
    features = [
        {"input_ids": [101, 7, 8, 102], "word_index": [1, 2], "labels": [0, 1]},
        {"input_ids": [101, 9, 102], "word_index": [1], "labels": [2]},
    ]

    class LeftTok:
        pad_token_id = 0
        pad_token_type_id = 0
        padding_side = "left"

    batch = CLNERDataCollator(LeftTok())(features)
    assert batch["input_ids"].tolist() == [[101, 7, 8, 102], [0, 101, 9, 102]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [0, 1, 1, 1]]
    assert batch["word_index"].tolist() == [[1, 2], [2, -1]]
    assert batch["labels"].tolist() == [[0, 1], [2, -100]]


def test_stitch_windows_errors():
    def feat(example_id, word_start, own_start, own_end, n):
        return {
            "example_id": example_id,
            "word_start": word_start,
            "own_start": own_start,
            "own_end": own_end,
            "predictions": list(range(word_start, word_start + n)),
        }

    ok = [feat(0, 0, 0, 3, 4), feat(0, 2, 1, 3, 3), feat(1, 0, 0, 2, 2)]
    assert stitch_windows(ok) == [[0, 1, 2, 3, 4], [0, 1]]
    assert stitch_windows(list(reversed(ok)), num_words=[5, 2]) == [[0, 1, 2, 3, 4], [0, 1]]
    with pytest.raises(ValueError, match=r"example 0: words 2\.\.2 covered more than once"):
        stitch_windows([feat(0, 0, 0, 3, 4), feat(0, 2, 0, 3, 3)])
    with pytest.raises(ValueError, match=r"example 0: words 3\.\.3 not covered"):
        stitch_windows([feat(0, 0, 0, 3, 4), feat(0, 2, 2, 3, 3)])
    with pytest.raises(ValueError, match=r"example 0: words 5\.\.5 not covered"):
        stitch_windows(ok, num_words=[6, 2])
    with pytest.raises(ValueError, match=r"example 1: no window covers it"):
        stitch_windows([feat(0, 0, 0, 2, 2), feat(2, 0, 0, 1, 1)])
    with pytest.raises(ValueError, match=r"example 2: no window"):
        stitch_windows(ok, num_words=[5, 2, 1])
    with pytest.raises(ValueError, match="outside its 2 predictions"):
        stitch_windows([feat(0, 0, 0, 3, 2)])


# ------------------------------------------------------------------------------------------------------------
# The real WNUT-17 files
# ------------------------------------------------------------------------------------------------------------

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\ufeff"))


def _norm(token: str) -> str:
    return token.translate(_QUOTES).translate(_INVISIBLE)


@pytest.mark.parametrize("split, n_sentences, n_with_context", [("train", 3394, 1050), ("dev", 1009, 989)])
def test_real_wnut_context_files(wnut_dir, split, n_sentences, n_with_context):
    rows = read_clner(wnut_dir / f"{split}.context.txt")
    plain = read_conll(wnut_dir / f"{split}.conll")
    assert len(rows) == len(plain) == n_sentences
    assert sum(1 for r in rows if r["context"]) == n_with_context
    for r, p in zip(rows, plain):
        assert [_norm(t) for t in r["tokens"]] == [_norm(t) for t in p["tokens"]]
        assert r["tags"] == p["tags"]
    assert {t for r in rows for t in r["tags"]} == WNUT_LABELS
    # quirks: long snippets and non-Latin text survive as snippet strings
    snippets = [s for r in rows for s in r["context"]]
    assert not any("<EOS>" in s or "B-X" in s for s in snippets)
    # consecutive `<EOS> B-X` lines in the real train file give empty snippets, kept (not dropped)
    assert sum(1 for s in snippets if not s) == (258 if split == "train" else 0)
    assert len(snippets) == (12409 if split == "train" else 989)
    if split == "train":
        assert rows[0]["tokens"][:2] == ["@paulwalk", "It"]
        assert rows[0]["context"][0].startswith("Look at the weather report ! - Empire State Building")
    else:
        assert max(len(s.split()) for s in snippets) > 100
        assert any(any(ord(c) > 0x2FF for c in s) for s in snippets)


# ------------------------------------------------------------------------------------------------------------
# The quickstart sample
# ------------------------------------------------------------------------------------------------------------


def test_quickstart_sample_is_reproducible_and_well_formed(tmp_path, sample_dd, label2id):
    spec = importlib.util.spec_from_file_location("make_sample", EXAMPLES / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = module.random.Random(module.SEED)
    for split, n in (("train", module.N_TRAIN), ("dev", module.N_DEV)):
        text = module.to_clner([module.make_sentence(rng, split) for _ in range(n)])
        committed = EXAMPLES / "data" / f"{split}.txt"
        assert committed.read_text(encoding="utf-8") == text, f"{committed} differs from make_sample.py output"
        assert committed.stat().st_size < 100_000
    train, dev = sample_dd["train"], sample_dd["validation"]
    assert (train.num_rows, dev.num_rows) == (120, 40)
    for ds in (train, dev):
        rate = sum(1 for c in ds["context"] if c) / ds.num_rows
        assert 0.6 <= rate <= 0.85
        assert max(len(c) for c in ds["context"]) <= 3
    assert set(label2id) == WNUT_LABELS
    check_labels(dev, label2id, "validation")
    # a sentence with context has a snippet naming each of its entities
    n_entities = 0
    for tokens, tags, context in zip(train["tokens"], train["tags"], train["context"]):
        spans, current = [], None
        for token, tag in zip(tokens, tags):
            if tag.startswith("B-"):
                current = [token]
                spans.append(current)
            elif tag.startswith("I-"):
                current.append(token)
        if context:
            for span in spans:
                n_entities += 1
                assert any(" ".join(span) in s for s in context), (span, context)
    assert n_entities > 60


def test_check_model_path_refuses_missing_local_folders_only(tmp_path):
    from clner.cli import check_model_path
    from clner.errors import CLNERUsageError

    for hub_id in ("bert-base-cased", "org/clner-wnut17"):
        check_model_path(hub_id, "--model")  # Hub ids are the Hub's to resolve
    check_model_path(str(tmp_path), "--model")
    for missing in (str(tmp_path / "nope"), "./nope-folder", "../nope", "a/b/c"):
        with pytest.raises(CLNERUsageError, match=re.escape(f"--model {missing}: no such folder")):
            check_model_path(missing, "--model")


@pytest.mark.parametrize(
    "name,text,fragment",
    [
        ("tab.jsonl", '{"tokens": ["Jo\\thn", "x"], "tags": ["B-PER", "O"]}\n', "token 'Jo\\thn': a token must be"),
        ("nl.jsonl", '{"tokens": ["Jo\\nhn", "x"], "tags": ["B-PER", "O"]}\n', "token 'Jo\\nhn'"),
        ("null.jsonl", '{"tokens": ["John", null], "tags": ["B-PER", "O"]}\n', "must be a list of strings"),
        (
            "space.jsonl",
            '{"tokens": ["John", "x"], "tags": ["B-P ER", "O"]}\n',
            "tag 'B-P ER': a tag holds no whitespace",
        ),
        ("pad.jsonl", '{"tokens": ["John", "x"], "tags": ["B-PER ", "O"]}\n', "tag 'B-PER '"),
        ("space.conll", "John\tB-P ER\nx\tO\n", "space.conll:1: sentence 1, word 1: tag 'B-P ER'"),
    ],
)
def test_tokens_and_tags_that_would_not_round_trip_are_refused_at_load(tmp_path, name, text, fragment):
    """Regression (issue 18 items 10, 11, 16): a token with a tab or newline corrupted the prediction files, a JSON
    null became the word "None", a tag with a space split predictions.txt's fields and `'B-PER '` became a type of
    its own. Each is refused when loaded, naming the file, line and word."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CLNERFormatError) as err:
        load_ner_dataset({"train": str(path)})
    assert str(err.value).startswith(str(path)) and fragment in str(err.value)


def test_duplicate_or_padded_tag_names_are_refused():
    from clner.data.io import check_label_names

    with pytest.raises(ValueError, match=r"--tag_names: ids 1 and 2 are both named 'B-PER'"):
        check_label_names(["O", "B-PER", "B-PER"], "--tag_names")
    with pytest.raises(ValueError, match=r"label 1 'B-PER ' is empty or holds whitespace"):
        check_label_names(["O", "B-PER ", "I-PER"], "--tag_names")
    check_label_names(["O", "B-PER", "I-PER"], "--tag_names")


def test_bilou_is_a_scheme_of_its_own(tmp_path):
    """Regression (issue 18 item 12): BILOU tags were accepted under BIOES and the metrics misread them (`U-PER
    U-PER` scored F1 1.0 against `B-PER L-PER`). Now BIOES refuses them naming --tag_scheme BILOU, and BILOU trains
    as BIOES and is written back as BILOU."""
    from clner.data.schemes import model_tag_scheme, tags_to_scheme

    path = tmp_path / "bilou.conll"
    path.write_text("John\tU-PER\nx\tO\n\nNew\tB-LOC\nYork\tL-LOC\n", encoding="utf-8")
    with pytest.raises(CLNERFormatError, match=r"'U-PER' is a BILOU tag .* pass --tag_scheme BILOU"):
        load_ner_dataset({"train": str(path)}, tag_scheme="BIOES")
    ds = load_ner_dataset({"train": str(path)}, tag_scheme="BILOU")["train"]
    assert ds["tags"] == [["S-PER", "O"], ["B-LOC", "E-LOC"]] and model_tag_scheme("BILOU") == "BIOES"
    assert tags_to_scheme(["S-PER", "O", "B-LOC", "E-LOC"], "BILOU") == ["U-PER", "O", "B-LOC", "L-LOC"]
    path.write_text("New\tB-LOC\nYork\tE-LOC\n", encoding="utf-8")
    with pytest.raises(CLNERFormatError, match=r"'E-LOC' is a BIOES tag, not BILOU"):
        load_ner_dataset({"train": str(path)}, tag_scheme="BILOU")
    path.write_text("New\tB-LOC\nYork\tI-LOC\n", encoding="utf-8")
    with pytest.raises(
        CLNERFormatError,
        match=r"not closed at the end of the sentence: under --tag_scheme BILOU an "
        r"entity ends with L-LOC \(a one-word entity is U-LOC\)",
    ):
        load_ner_dataset({"train": str(path)}, tag_scheme="BILOU")


def test_feature_cache_follows_the_encoding_code(tmp_path, monkeypatch, minilm_tokenizer):
    """Cached features are reused for the same rows, tokenizer and settings, and not after the encoding code
    changes (datasets alone keys importable helpers such as encode_example by name, not by code)."""
    import datasets

    from clner.data import preprocess

    rows = {
        "tokens": [["Paris", "is", "nice"], ["Bieber", "sings"]],
        "tags": [["B-loc", "O", "O"], ["B-per", "O"]],
        "context": [["Paris is the capital of France"], []],
    }
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "rows"))
    ds = datasets.load_from_disk(str(tmp_path / "rows"))
    label2id = {"O": 0, "B-loc": 1, "B-per": 2}

    def encode(**kw):
        return preprocess.preprocess_dataset(ds, minilm_tokenizer, label2id, max_seq_length=32, **kw)

    first = encode()
    again = encode()
    assert again._fingerprint == first._fingerprint and again.cache_files == first.cache_files
    assert encode(stride=4)._fingerprint != first._fingerprint
    monkeypatch.setattr(preprocess, "encoding_code_key", lambda: "an edited encode_example")
    edited = encode()
    assert edited._fingerprint != first._fingerprint
    assert edited["labels"] == first["labels"]
