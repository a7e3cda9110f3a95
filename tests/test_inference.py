"""The inference core (`inference_clner`): the steps every prediction path shares, against brute force."""

import random

import pytest

from inference_clner import (
    decode_windows,
    encode_example,
    entities_from_tags,
    group_entities,
    pad_view,
    parse_tag,
    split_words,
    stitch_windows,
    tokens_from_tags,
    words_and_offsets,
)


def test_parse_tag_reads_every_prefix_once():
    assert parse_tag("B-PER") == ("B", "PER") and parse_tag("I_loc") == ("I", "loc")
    assert parse_tag("L-PER") == ("E", "PER") and parse_tag("U-PER") == ("S", "PER")  # BILOU read as BIOES
    assert parse_tag("O") == ("O", "") and parse_tag("PER") == (None, "PER") and parse_tag("B-") == (None, "B-")


def test_words_and_offsets_point_into_the_text():
    words, text, offsets = words_and_offsets("Justin Bieber, in Paris!")
    assert words == ["Justin", "Bieber", ",", "in", "Paris", "!"]
    assert [text[a:b] for a, b in offsets] == words
    words, text, offsets = words_and_offsets(["New", "York", "City"])
    assert text == "New York City" and [text[a:b] for a, b in offsets] == words


def test_pad_view_pads_right_or_left_to_a_multiple():
    feats = [
        {"input_ids": [1, 5, 6, 2], "word_index": [1, 2]},
        {"input_ids": [1, 7, 2], "word_index": [1], "attention_mask": [1, 1, 1]},
    ]
    with pytest.raises(ValueError, match="'attention_mask' missing from some features"):
        pad_view(feats, pad_id=0)
    del feats[1]["attention_mask"]
    right = pad_view(feats, pad_id=0, multiple_of=3)
    assert right == {
        "input_ids": [[1, 5, 6, 2, 0, 0], [1, 7, 2, 0, 0, 0]],
        "attention_mask": [[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]],
        "word_index": [[1, 2], [1, -1]],
    }
    left = pad_view(feats, pad_id=9, left=True, width=3)
    assert left["input_ids"] == [[1, 5, 6, 2], [9, 1, 7, 2]]
    # word positions follow the shifted tokens; the word columns are at least `width`
    assert left["word_index"] == [[1, 2, -1], [2, -1, -1]]
    assert all(
        left["input_ids"][r][p] == feats[r]["input_ids"][q]
        for r in range(2)
        for p, q in zip(left["word_index"][r], feats[r]["word_index"])
        if p >= 0
    )
    ctx = pad_view([{"ctx_input_ids": [1, 2], "ctx_word_index": [0], "ctx_token_type_ids": [0, 1]}], "ctx_")
    assert ctx == {"input_ids": [[1, 2]], "attention_mask": [[1, 1]], "token_type_ids": [[0, 1]], "word_index": [[0]]}


def test_decode_windows_stitches_long_sentences_like_brute_force(minilm_tokenizer):
    """Windows of a long sentence, decoded by a decoder that tags each word by its position in the sentence: the
    stitched result is every word exactly once, in order, whatever the batch size."""
    random.seed(0)
    sentences = [[f"w{i}" for i in range(n)] for n in (3, 70, 1, 41)]
    features = []
    for k, words in enumerate(sentences):
        for feat in encode_example(minilm_tokenizer, words, None, max_seq_length=16, stride=3):
            feat["example_id"] = k
            features.append(feat)
    assert len(features) > len(sentences)
    random.shuffle(features)  # the order of windows does not matter
    rows = iter(features)

    def decode(batch):
        paths = []
        for word_index in batch["word_index"]:
            feat = next(rows)
            paths.append([feat["word_start"] + j for j, p in enumerate(word_index) if p >= 0])
        return paths, None

    for batch_size in (1, 3, 64):
        rows = iter(features)
        out = decode_windows(features, decode, [len(s) for s in sentences], batch_size=batch_size)
        assert [[t for t, _ in words] for words in out] == [list(range(len(s))) for s in sentences]
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        decode_windows(features, decode, [len(s) for s in sentences], batch_size=0)
    with pytest.raises(ValueError, match="not covered by any window"):
        stitch_windows([{"example_id": 0, "word_start": 0, "own_start": 0, "own_end": 2, "predictions": [1, 2]}], [3])


def test_entities_and_tokens_from_tags():
    words, text, offsets = words_and_offsets("Justin Bieber visits New York")
    tags = ["B-person", "I-person", "O", "B-location", "I-location"]
    scores = [0.9, 0.7, 1.0, 0.5, 0.3]
    entities = entities_from_tags(tags, scores, text, offsets, context_used=True)
    assert entities == [
        {
            "entity_group": "person",
            "score": pytest.approx(0.8),
            "word": "Justin Bieber",
            "start": 0,
            "end": 13,
            "word_span": [0, 2],
            "context_used": True,
        },
        {
            "entity_group": "location",
            "score": pytest.approx(0.4),
            "word": "New York",
            "start": 21,
            "end": 29,
            "word_span": [3, 5],
            "context_used": True,
        },
    ]
    assert [e["entity_group"] for e in entities_from_tags(tags, scores, text, offsets, ignore=["person"])] == [
        "location"
    ]
    assert [(t["entity"], t["index"], t["word"]) for t in tokens_from_tags(tags, scores, text, offsets)] == [
        ("B-person", 0, "Justin"),
        ("I-person", 1, "Bieber"),
        ("B-location", 3, "New"),
        ("I-location", 4, "York"),
    ]
    assert group_entities(["I-x", "I-x", "B-x", "S-y", "E-y", "O"]) == [
        ("x", 0, 2),
        ("x", 2, 3),
        ("y", 3, 4),
        ("y", 4, 5),
    ]


def test_windows_of_labelled_long_sentences_never_open_inside_an_entity(minilm_tokenizer, tmp_path):
    """Regression: a window of a long sentence that started inside an entity (`I-` first) crashed training and
    evaluation on valid BIO data ("gold tags ... violate the tagging-scheme constraints"). Windows of labelled data
    now open only where an entity could start, every word is still covered, and a model trains and evaluates on
    such rows with a finite loss, both views."""
    import datasets
    import torch
    from transformers import TrainingArguments

    from clner.arguments import CLArguments
    from clner.data.io import load_ner_dataset
    from clner.data.preprocess import CLNERDataCollator, get_label_list, preprocess_dataset
    from conftest import REPO_ROOT, tiny_bert_config
    from modeling_clner import CLNERConfig, CLNERForTokenClassification
    from trainer_clner import CLNERTrainer

    raw = load_ner_dataset({"dev": str(REPO_ROOT / "examples" / "data" / "dev.txt")})["dev"]
    labels = get_label_list(raw)
    rows = []
    for start in range(0, 40, 5):  # 5 sentences joined into one row, as in the report
        part = raw.select(range(start, start + 5))
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
    ds = datasets.Dataset.from_list(rows, features=raw.features)
    label2id = {label: i for i, label in enumerate(labels)}
    # without the fix, max_seq_length 12 and stride 1 open a window on 'Smith' (I-person) of the last row
    from inference_clner import _safe_words, _windows

    last = rows[-1]
    starts = [a for a, _ in _windows(_safe_words(minilm_tokenizer, last["tokens"])[1], 10, 1)]
    assert any(last["tags"][a].startswith("I-") for a in starts)
    for max_len, stride in ((32, 2), (64, 16), (12, 1)):  # the model below trains on the last
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


@pytest.mark.parametrize(
    "text,words",
    [
        ("Jose\u0301 Garcia", ["Jose\u0301", "Garcia"]),  # NFD: the accent stays on its letter
        ("नरेंद्र मोदी दिल्ली में हैं", ["नरेंद्र", "मोदी", "दिल्ली", "में", "हैं"]),  # Indic vowel signs and viramas
        (
            "the \U0001f468\u200d\U0001f469\u200d\U0001f467 family \U0001f44d\U0001f3fd!",
            ["the", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "family", "\U0001f44d\U0001f3fd", "!"],
        ),  # ZWJ, skin tone
        ("Paris\u200bFrance", ["Paris", "France"]),  # a zero-width space separates, and is no word
        (
            "U.S. &amp; co , he 's here ... !! :) 30,000 at 7:30 w/ p.m. 100% -_- :D",
            [
                "U.S.",
                "&amp;",
                "co",
                ",",
                "he",
                "'s",
                "here",
                "...",
                "!!",
                ":)",
                "30,000",
                "at",
                "7:30",
                "w/",
                "p.m.",
                "100%",
                "-_-",
                ":D",
            ],
        ),  # WNUT-17's conventions
        (
            "Justin Bieber's show, http://t.co/x #fun @you",
            ["Justin", "Bieber's", "show", ",", "http://t.co/x", "#fun", "@you"],
        ),
    ],
)
def test_split_words_keeps_grapheme_clusters_and_wnut_conventions(text, words):
    spans = split_words(text)
    assert [w for w, _, _ in spans] == words
    assert all(text[a:b] == w for w, a, b in spans)


def test_split_words_warns_on_text_without_spaces():
    with pytest.warns(UserWarning, match="pass pre-split words"):
        assert [w for w, _, _ in split_words("東京に行く")] == ["東京に行く"]


def test_split_words_agrees_with_wnut17_tokens(wnut_dir):
    """Joined with spaces, WNUT-17's own tokens come back from `split_words` (the splitter of `predict` and the
    pipeline): 95.90% of the 78,463 train + dev tokens did before the grapheme / WNUT-convention splitter, 99.36%
    now (the rest are idiosyncratic: `'RT`, `SMS/WA`, `$5`)."""
    from clner.data.io import read_conll

    total = agree = 0
    for split in ("train", "dev"):
        for row in read_conll(wnut_dir / f"{split}.conll"):
            text = " ".join(row["tokens"])
            spans = {(a, b) for _, a, b in split_words(text)}
            pos = 0
            for token in row["tokens"]:
                total += 1
                agree += (pos, pos + len(token)) in spans
                pos += len(token) + 1
    assert total == 78463 and agree / total >= 0.99, agree / total
