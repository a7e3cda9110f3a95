"""Preprocessing (`clner.data.preprocess`): the label list, labels unseen in training, two-view features of each
sentence and their windows (never opening inside a gold entity), the collator that pads each view to its own
length, and the feature cache."""

import datasets
import pytest
import torch
from transformers import TrainingArguments

from clner.arguments import CLArguments
from clner.data import io as data_io
from clner.data.io import load_ner_dataset, read_conll
from clner.data.preprocess import CLNERDataCollator, check_labels, get_label_list, preprocess_dataset
from conftest import DATA_FIXTURES, SAMPLE, tiny_bert_config, write_file
from inference_clner import _safe_words, _windows, stitch_windows
from modeling_clner import CLNERConfig, CLNERForTokenClassification
from trainer_clner import CLNERTrainer

# ------------------------------------------------------------------------------------------------------------
# Labels
# ------------------------------------------------------------------------------------------------------------


def test_get_label_list_sorted_with_o_first():
    dd = load_ner_dataset({"train": str(DATA_FIXTURES / "sample.conll")})
    assert get_label_list(dd) == ["O", "B-group", "B-person", "B-product", "I-person", "I-product"]
    assert get_label_list(dd["train"]) == get_label_list(read_conll(DATA_FIXTURES / "sample.conll"))
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
    dev = write_file(tmp_path, "dev.conll", "a\tO\nb\tB-person\n\nx\tO\ny\tB-weird\nz\tI-weird\n\nq\tB-weird\n")
    dd = load_ner_dataset(
        {
            "train": str(DATA_FIXTURES / "sample.conll"),
            "validation": str(dev),
            "ok": str(DATA_FIXTURES / "sample.json"),
        }
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
    unlabeled = load_ner_dataset({"test": str(DATA_FIXTURES / "unlabeled.conll")})["test"]
    assert unlabeled["tokens"] == [["new", "phone", "who", "dis"], ["@jess_k", "lol"]]
    check_labels(unlabeled, label2id, "test")


# ------------------------------------------------------------------------------------------------------------
# Features, windows, collator (real tokenizer, real encode_example)
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def label2id(labels):
    return {label: i for i, label in enumerate(labels)}


def test_preprocess_dataset_labels_and_columns(minilm_tokenizer, raw, label2id):
    from inference_clner import encode_example

    ds = raw["train"].select(range(12))
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


def long_labelled_rows():
    """Long labelled rows: the quickstart dev set's sentences joined five by five (with a context), and a row whose
    entity starts at word 12 (without one). The rows, as a dataset, its labels and their ids."""
    dev = load_ner_dataset({"dev": str(SAMPLE / "dev.txt")})["dev"]
    labels = get_label_list(dev)
    rows = []
    for start in range(0, 40, 5):  # 5 sentences joined into one row
        part = dev.select(range(start, start + 5))
        rows.append(
            {
                "id": f"joined-{start}",
                "tokens": sum(part["tokens"], []),
                "tags": sum(part["tags"], []),
                "context": ["a snippet about it"],
            }
        )
    rows.append(
        {
            "id": "entity-at-12",
            "tokens": [f"w{i}" for i in range(11)] + ["Justin", "Bieber", "Smith"] + ["x"] * 9,
            "tags": ["O"] * 11 + ["B-person", "I-person", "I-person"] + ["O"] * 9,
            "context": [],
        }
    )
    ds = datasets.Dataset.from_list(rows, features=dev.features)
    label2id = {label: i for i, label in enumerate(labels)}
    return rows, ds, labels, label2id


def test_windows_of_labelled_long_sentences_never_open_inside_an_entity(minilm_tokenizer):
    """Windows of a long labelled sentence open only where an entity could start (a window opening on `I-` would
    break the tagging-scheme constraints of valid BIO data), and their owned slices still cover every word once."""
    rows, ds, labels, label2id = long_labelled_rows()
    # windows that ignore the tags: max_seq_length 12 and stride 1 open one on 'Smith' (I-person) of the last row
    last = rows[-1]
    starts = [a for a, _ in _windows(_safe_words(minilm_tokenizer, last["tokens"])[1], 10, 1)]
    assert any(last["tags"][a].startswith("I-") for a in starts)
    for max_len, stride in ((32, 2), (64, 16), (12, 1)):
        feats = preprocess_dataset(ds, minilm_tokenizer, label2id, max_seq_length=max_len, stride=stride)
        assert len(feats) > len(ds)
        assert all(not labels[f["labels"][0]].startswith("I-") for f in feats)
        by_row = {}
        for f in feats:
            by_row.setdefault(f["example_id"], []).append(f)
        for idx, windows in by_row.items():  # the owned slices tile the sentence
            owned = sorted((w["word_start"] + w["own_start"], w["word_start"] + w["own_end"]) for w in windows)
            assert owned[0][0] == 0 and owned[-1][1] == len(rows[idx]["tokens"])
            assert all(a[1] == b[0] for a, b in zip(owned, owned[1:]))


def test_a_model_trains_and_evaluates_on_windows_of_long_labelled_sentences(minilm_tokenizer, tmp_path):
    """Training and evaluation run on such windows (max_seq_length 12, stride 1) with a finite loss, both views."""
    rows, ds, labels, label2id = long_labelled_rows()
    feats = preprocess_dataset(ds, minilm_tokenizer, label2id, max_seq_length=12, stride=1)
    torch.manual_seed(0)
    model = CLNERForTokenClassification(
        CLNERConfig(encoder=tiny_bert_config().to_dict(), id2label=dict(enumerate(labels)))
    )
    args = TrainingArguments(
        output_dir=str(tmp_path / "o"),
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        max_steps=2,
        disable_tqdm=True,
    )
    trainer = CLNERTrainer(
        model=model,
        args=args,
        train_dataset=feats,
        eval_dataset=feats,
        cl_args=CLArguments(),
        data_collator=CLNERDataCollator(minilm_tokenizer),
    )
    trainer.train()
    metrics = trainer.evaluate()
    assert torch.isfinite(torch.tensor(metrics["eval_loss"])) and "eval_context_f1" in metrics


def test_collator_pads_each_view_to_its_own_length(minilm_tokenizer, raw, label2id):
    ds = raw["train"]
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
