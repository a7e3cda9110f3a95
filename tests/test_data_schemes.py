"""Tagging schemes (`clner.data.schemes`): every split is checked against the scheme when it loads, with a message
that names the file, line and word and the scheme the data looks like; IOB1, IO and BILOU data train in BIO or
BIOES and are written back in their own scheme."""

import re

import datasets
import pytest

from clner.data import schemes
from clner.data.io import load_ner_dataset, read_conll
from clner.errors import CLNERFormatError
from conftest import write_file

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
    dev = write_file(tmp_path, "dev.conll", text)
    with pytest.raises(CLNERFormatError) as err:
        load_ner_dataset({"validation": str(dev)}, tag_scheme=scheme)
    message = str(err.value)
    assert message.startswith(f"{dev}:{line}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_bare_types_under_bioes_are_not_said_to_look_like_bio(tmp_path):
    dev = write_file(tmp_path, "dev.conll", "Peter\tPER\nsays\tO\n")
    with pytest.raises(CLNERFormatError) as err:
        load_ner_dataset({"validation": str(dev)}, tag_scheme="BIOES")
    assert "--tag_scheme IO" in str(err.value) and "looks like BIO" not in str(err.value)


def test_scheme_errors_in_json_lines_name_the_record_line_and_word(tmp_path):
    text = '{"tokens": ["a"], "tags": ["O"]}\n\n{"tokens": ["b", "c"], "tags": ["O", "I-x"]}\n'
    path = write_file(tmp_path, "dev.jsonl", text)
    with pytest.raises(CLNERFormatError, match=re.escape(f"{path}:3: sentence 2, word 2 'c': 'I-x' follows 'O'")):
        load_ner_dataset({"validation": str(path)})


def test_tag_order_is_not_checked_without_crf_constraints(tmp_path):
    path = write_file(tmp_path, "dev.conll", "says\tO\nBlackburn\tI-PER\n")
    assert load_ner_dataset({"v": str(path)}, check_transitions=False)["v"]["tags"] == [["O", "I-PER"]]
    with pytest.raises(CLNERFormatError, match="no B-/I- prefix"):  # the tags' form still is
        load_ner_dataset({"v": str(write_file(tmp_path, "bare.conll", "Peter\tPER\n"))}, check_transitions=False)
    assert load_ner_dataset({"v": str(path)}, tag_scheme=None)["v"]["tags"] == [["O", "I-PER"]]


IOB1_TEXT = (
    "EU\tI-ORG\nrejects\tO\nGerman\tI-MISC\ncall\tO\n\n"
    "Peter\tI-PER\nBlackburn\tI-PER\nJohn\tB-PER\nSmith\tI-PER\nand\tO\nAcme\tI-ORG\n\n"
)


def test_iob1_and_io_files_are_converted_to_bio_and_back(tmp_path):
    path = write_file(tmp_path, "iob1.conll", IOB1_TEXT)
    original = [r["tags"] for r in read_conll(path)]
    bio = load_ner_dataset({"train": str(path)}, tag_scheme="IOB1")["train"]["tags"]
    assert bio == [["B-ORG", "O", "B-MISC", "O"], ["B-PER", "I-PER", "B-PER", "I-PER", "O", "B-ORG"]]
    assert [schemes.tags_to_scheme(t, "IOB1") for t in bio] == original
    assert schemes.model_tag_scheme("IOB1") == "BIO" and schemes.model_tag_scheme("BIOES") == "BIOES"
    io = write_file(tmp_path, "io.conll", "Peter\tPER\nBlackburn\tPER\nin\tO\nParis\tLOC\n")
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


def test_bilou_is_a_scheme_of_its_own(tmp_path):
    """BILOU is not BIOES (the metrics would misread it: `U-PER U-PER` against `B-PER L-PER`): BIOES refuses BILOU
    tags naming --tag_scheme BILOU, BILOU refuses BIOES tags, and BILOU trains as BIOES and is written back as
    BILOU."""

    path = tmp_path / "bilou.conll"
    path.write_text("John\tU-PER\nx\tO\n\nNew\tB-LOC\nYork\tL-LOC\n", encoding="utf-8")
    with pytest.raises(CLNERFormatError, match=r"'U-PER' is a BILOU tag .* pass --tag_scheme BILOU"):
        load_ner_dataset({"train": str(path)}, tag_scheme="BIOES")
    ds = load_ner_dataset({"train": str(path)}, tag_scheme="BILOU")["train"]
    assert ds["tags"] == [["S-PER", "O"], ["B-LOC", "E-LOC"]] and schemes.model_tag_scheme("BILOU") == "BIOES"
    assert schemes.tags_to_scheme(["S-PER", "O", "B-LOC", "E-LOC"], "BILOU") == ["U-PER", "O", "B-LOC", "L-LOC"]
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
