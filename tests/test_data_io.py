"""Reading and writing NER data (`clner.data.io`): CoNLL, the CLNER text format, JSON and JSON lines, Parquet and Hub
datasets; round trips; malformed or hostile input as an error naming the file and line; the real WNUT-17 files."""

from __future__ import annotations

import json
import re

import datasets
import pytest

from clner.data import io as data_io
from clner.data.io import (
    check_label_names,
    load_ner_dataset,
    read_clner,
    read_conll,
    read_json,
    write_clner,
    write_conll,
)
from clner.data.preprocess import check_labels, get_label_list, preprocess_dataset
from clner.errors import CLNERFormatError
from clner.hub.publish import _rows_with_tag_names
from conftest import DATA_FIXTURES, WNUT_LABELS, write_file

# ------------------------------------------------------------------------------------------------------------
# Readers
# ------------------------------------------------------------------------------------------------------------


def test_read_conll_tab_space_docstart_and_whitespace_separator_lines():
    rows = read_conll(DATA_FIXTURES / "sample.conll")
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
    rows = read_conll(DATA_FIXTURES / "conll03_columns.txt")
    assert [r["tokens"] for r in rows] == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert [r["tags"] for r in rows] == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    chunks = read_conll(DATA_FIXTURES / "conll03_columns.txt", tag_column=2)
    assert chunks[0]["tags"] == ["B-NP", "B-VP", "B-NP"]
    unlabeled = read_conll(DATA_FIXTURES / "conll03_columns.txt", tag_column=None)
    assert "tags" not in unlabeled[0] and unlabeled[1]["tokens"] == ["Peter", "Blackburn"]


def test_read_clner_snippets_quirks_and_ambiguous_tags():
    rows = read_clner(DATA_FIXTURES / "sample.clner.txt")
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
    rows = read_json(DATA_FIXTURES / "sample.jsonl")
    assert [r["tags"] for r in rows] == [["B-group", "O", "O", "O"], ["B-person", "I-person"], ["O", "O"]]
    # a list of snippets, one string -> one snippet, missing -> []
    assert [r["context"] for r in rows] == [
        ["The EU is a political union", "German beef"],
        ["Peter Blackburn is a journalist"],
        [],
    ]
    rows = read_json(DATA_FIXTURES / "sample.json")
    assert rows[0] == {
        "tokens": ["Kaleo", "Brandt", "rocks"],
        "tags": ["B-person", "I-person", "O"],
        "context": ["Kaleo Brandt is a singer"],
    }


def test_read_json_columnar_custom_tag_column_and_label_names(tmp_path):
    path = write_file(tmp_path, "cols.json", json.dumps({"words": [["a", "b"], ["c"]], "labels": [[1, 0], [0]]}))
    rows = read_json(path, tag_column="labels", label_names=["O", "B-person"])
    assert rows == [
        {"tokens": ["a", "b"], "tags": ["B-person", "O"], "context": []},
        {"tokens": ["c"], "tags": ["O"], "context": []},
    ]
    # no tag column -> unlabeled rows
    assert "tags" not in read_json(path)[0]
    # a single record (not a dict of columns)
    one = write_file(tmp_path, "one.json", json.dumps({"tokens": ["a", "b"], "tags": ["O", "O"], "context": "c"}))
    assert read_json(one) == [{"tokens": ["a", "b"], "tags": ["O", "O"], "context": ["c"]}]


# ------------------------------------------------------------------------------------------------------------
# Writers: round trips
# ------------------------------------------------------------------------------------------------------------


def test_clner_round_trip(tmp_path):
    rows = read_clner(DATA_FIXTURES / "sample.clner.txt")
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
    rows = read_conll(DATA_FIXTURES / "sample.conll")
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
    path = write_file(tmp_path, "bad.conll", text)
    with pytest.raises(ValueError) as err:
        read_conll(path)
    assert isinstance(err.value, CLNERFormatError)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert fragment in str(err.value)


@pytest.mark.parametrize("text, line, fragment", CLNER_ERRORS)
def test_read_clner_errors_name_file_and_line(tmp_path, text, line, fragment):
    path = write_file(tmp_path, "bad.txt", text)
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
    path = write_file(tmp_path, "released.txt", text)
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
    strict = write_file(tmp_path, "strict.txt", "a\tO\n B-X\n")
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
    path = write_file(tmp_path, name, text)
    with pytest.raises(ValueError) as err:
        read_json(path, token_column="tokens" if "words" in text else None)
    assert str(err.value).startswith(f"{path}{where}"), str(err.value)
    assert fragment in str(err.value)


# ------------------------------------------------------------------------------------------------------------
# load_ner_dataset
# ------------------------------------------------------------------------------------------------------------


def test_load_ner_dataset_detects_formats(tmp_path):
    clner_txt = tmp_path / "ctx.txt"
    clner_txt.write_bytes((DATA_FIXTURES / "sample.clner.txt").read_bytes())
    dd = load_ner_dataset(
        {
            "train": str(clner_txt),
            "validation": str(DATA_FIXTURES / "sample.conll"),
            "test": str(DATA_FIXTURES / "sample.jsonl"),
            "extra": str(DATA_FIXTURES / "sample.json"),
        }
    )
    assert set(dd) == {"train", "validation", "test", "extra"}
    for ds in dd.values():
        assert ds.column_names == ["id", "tokens", "tags", "context"]
        assert ds.features["context"] == datasets.List(datasets.Value("string"))
        assert ds["id"] == [str(i) for i in range(len(ds))]
    assert dd["train"]["context"][0] == read_clner(DATA_FIXTURES / "sample.clner.txt")[0]["context"]
    assert dd["validation"]["context"] == [[], [], []]
    assert dd["test"]["context"][1] == ["Peter Blackburn is a journalist"]
    # format= overrides the detection
    with pytest.raises(ValueError, match=re.escape(f"{clner_txt}:7: <EOS> context line in a CoNLL file")):
        load_ner_dataset({"train": str(clner_txt)}, format="conll")
    as_json = write_file(tmp_path, "rows.txt", (DATA_FIXTURES / "sample.jsonl").read_text(encoding="utf-8"))
    assert load_ner_dataset({"train": str(as_json)}, format="jsonl")["train"]["tokens"] == dd["test"]["tokens"]
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_ner_dataset({"train": str(write_file(tmp_path, "x.csv", "a,b\n"))})


def test_load_ner_dataset_unlabeled_and_multiple_files(tmp_path):
    unlabeled = write_file(tmp_path, "test.conll", "a\nb\n\nc\n")
    dd = load_ner_dataset(
        {"train": [str(DATA_FIXTURES / "sample.conll"), str(DATA_FIXTURES / "sample.json")], "test": str(unlabeled)}
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
# Hostile input: line endings, empty files, tags and tokens
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sample.conll", "sample.clner.txt", "sample.jsonl"])
@pytest.mark.parametrize("newline", [b"\r", b"\r\n"])
def test_cr_only_and_crlf_line_endings_read_like_lf(tmp_path, name, newline):
    lf = (DATA_FIXTURES / name).read_bytes()
    assert b"\r" not in lf
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + lf.replace(b"\n", newline))  # an old-Mac / Windows export, with a BOM
    expected = load_ner_dataset({"train": str(DATA_FIXTURES / name)})["train"]
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
    path = write_file(tmp_path, name, text)
    with pytest.raises(CLNERFormatError) as err:
        load_ner_dataset({"train": str(DATA_FIXTURES / "sample.conll"), "validation": str(path)})
    assert str(err.value) == f"{path}: no sentences (the file is empty or holds only blank lines or no records)"


def test_first_line_without_a_tag_is_reported_at_line_1(tmp_path):
    path = write_file(tmp_path, "bad.conll", "EU\nrejects\tO\n")
    with pytest.raises(CLNERFormatError, match=re.escape(f"{path}:1: missing tag (a single column): 'EU'")):
        load_ner_dataset({"train": str(path)})
    # a file where no line has a tag is still read as unlabeled
    assert load_ner_dataset({"test": str(write_file(tmp_path, "raw.conll", "EU\nrejects\n"))})[
        "test"
    ].column_names == [
        "id",
        "tokens",
        "context",
    ]


def test_tab_separated_context_line_is_named_as_such(tmp_path):
    path = write_file(tmp_path, "ctx.txt", "Look\tO\n<EOS> B-X\nLook\tB-X\n")
    with pytest.raises(CLNERFormatError) as err:
        read_clner(path)
    assert str(err.value).startswith(f"{path}:3: context line separated by a tab: 'Look\\tB-X'")
    assert "replace the tab with a space" in str(err.value) and "missing blank line" not in str(err.value)


def test_integer_tags_error_names_the_cli_flag(tmp_path):
    path = write_file(tmp_path, "ids.jsonl", '{"tokens": ["a"], "tags": [1]}\n')
    with pytest.raises(CLNERFormatError, match=re.escape("--tag_names")):
        load_ner_dataset({"train": str(path)})
    assert load_ner_dataset({"train": str(path)}, label_names=["O", "B-x"])["train"]["tags"] == [["B-x"]]
    message = f"{path}:1: record 0: tag id 1 out of range for 1 label names ['O']: --tag_names (label_names=) names"
    with pytest.raises(CLNERFormatError, match=re.escape(message)):
        load_ner_dataset({"train": str(path)}, label_names=["O"])


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
    """Tokens and tags that could not be written back whole are refused when loaded, naming the file, line and word:
    a token with a tab or newline (it would break the prediction files' columns), a JSON null (it would become the
    word "None"), a tag with a space (it would split predictions.txt's fields) or padded with one (`'B-PER '` would
    be a type of its own)."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CLNERFormatError) as err:
        load_ner_dataset({"train": str(path)})
    assert str(err.value).startswith(str(path)) and fragment in str(err.value)


def test_duplicate_or_padded_tag_names_are_refused():
    with pytest.raises(ValueError, match=r"--tag_names: ids 1 and 2 are both named 'B-PER'"):
        check_label_names(["O", "B-PER", "B-PER"], "--tag_names")
    with pytest.raises(ValueError, match=r"label 1 'B-PER ' is empty or holds whitespace"):
        check_label_names(["O", "B-PER ", "I-PER"], "--tag_names")
    check_label_names(["O", "B-PER", "I-PER"], "--tag_names")


def test_a_tag_id_outside_the_classes_is_an_error_not_the_last_class(tmp_path, minilm_tokenizer):
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
    with pytest.raises(ValueError, match=message):
        _rows_with_tag_names(ds)
    assert _rows_with_tag_names(ds.select([0])) == [{"tokens": ["hi"], "tags": ["O"]}]  # a valid id still maps


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
    assert {t for r in rows for t in r["tags"]} == set(WNUT_LABELS)
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


# ------------------------------------------------------------------------------------------ read-back checks
def test_a_retrieval_output_cut_short_is_refused_when_read(tmp_path):
    """A JSONL / CLNER output whose rows are fewer than its provenance records (cut short by a copy or an
    interrupted write) is refused by the trainer's loader and by clner-retrieve's reader, naming both files."""
    import datasets

    from clner.data.io import load_ner_dataset
    from clner.errors import CLNERFormatError
    from clner.retrieval.retriever import load_input, save_output

    rows = [{"tokens": ["w", str(i)], "tags": ["O", "O"], "context": ["x"]} for i in range(5)]
    for name in ("out.jsonl", "out.txt"):
        path = tmp_path / name
        save_output(datasets.Dataset.from_list(rows), path, provenance={"rows": 5})
        assert len(load_ner_dataset({"train": str(path)}, tag_scheme=None)["train"]) == 5
        text = path.read_text().splitlines(keepends=True)
        cut = text[:1] if name.endswith(".jsonl") else "".join(text).split("\n\n")[0] + "\n"
        path.write_text("".join(cut))
        with pytest.raises(CLNERFormatError, match=rf"holds 1 rows, but its provenance \({name}.provenance.json\)"):
            load_ner_dataset({"train": str(path)}, tag_scheme=None)
        with pytest.raises(CLNERFormatError, match="records 5"):
            load_input(path)


@pytest.mark.parametrize("blank", ["\u00a0", "\u2028", " \u3000 ", "\u2029"])
def test_a_line_blank_only_by_unicode_is_an_error_not_a_sentence_break(tmp_path, blank):
    from clner.data.io import read_clner, read_conll
    from clner.errors import CLNERFormatError

    path = tmp_path / "data.conll"
    path.write_text(f"New\tB-loc\n{blank}\nYork\tI-loc\n\nok\tO\n", encoding="utf-8")
    with pytest.raises(CLNERFormatError, match=r"data\.conll:2: a line of invisible space characters \(U\+"):
        read_conll(path)
    with pytest.raises(CLNERFormatError, match=r":2: a line of invisible space"):
        read_clner(path)
    path.write_text("New\tB-loc\n \t \nYork\tB-loc\n", encoding="utf-8")  # spaces and tabs: a break, as ever
    assert [r["tokens"] for r in read_conll(path)] == [["New"], ["York"]]


def test_docstart_inside_a_sentence_is_an_error(tmp_path):
    from clner.data.io import read_clner, read_conll
    from clner.errors import CLNERFormatError

    path = tmp_path / "data.conll"
    path.write_text("-DOCSTART-\tO\n\nNew\tB-loc\n-DOCSTART-\tO\nYork\tO\n", encoding="utf-8")
    for reader in (read_conll, read_clner):
        with pytest.raises(CLNERFormatError, match=r"data\.conll:4: -DOCSTART- inside a sentence"):
            reader(path)
    path.write_text("-DOCSTART-\tO\n\nNew\tB-loc\n\n-DOCSTART-\tO\n\nYork\tO\n", encoding="utf-8")
    assert [r["tokens"] for r in read_conll(path)] == [["New"], ["York"]]
