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
    assert parse_tag("B-PER") == ("B", "PER") and parse_tag("I_loc") == (None, "I_loc")  # prefixes end at "-"
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


def test_encode_example_views_and_context_budget(minilm_tokenizer):
    tok = minilm_tokenizer
    words = ["John", "lives", "in", "Berlin"]
    snippets = ["John Smith moved to Berlin in 2010 .", "Berlin is the capital of Germany .", "x " * 50]
    (feat,) = encode_example(tok, words, snippets, max_seq_length=32)
    assert feat["input_ids"] == tok(words, is_split_into_words=True)["input_ids"]
    ctx_ids = feat["ctx_input_ids"]
    assert len(ctx_ids) == 32 and feat["has_context"]
    assert feat["word_index"] == feat["ctx_word_index"] == [1, 2, 3, 4]
    text = tok.decode(ctx_ids)
    # whole snippets in rank order, separated by [SEP], then the next one cut at the sub-token level
    assert "john smith moved to berlin in 2010. [SEP] berlin is the capital of germany. [SEP] x x" in text
    assert feat["ctx_token_type_ids"][:6] == [0] * 6 and feat["ctx_token_type_ids"][-1] == 1
    (plain,) = encode_example(tok, words, None)
    assert not plain["has_context"] and plain["ctx_input_ids"] == plain["input_ids"]
    assert (plain["word_start"], plain["own_start"], plain["own_end"]) == (0, 0, 4)


def test_encode_example_never_drops_words(minilm_tokenizer):
    words = ["a", "\u200b", "b", "\u200b\u200b"]  # zero-width words tokenize to nothing
    (feat,) = encode_example(minilm_tokenizer, words, ["ctx"])
    assert len(feat["word_index"]) == 4 and len(feat["ctx_word_index"]) == 4
    with pytest.raises(ValueError, match="empty sentence"):
        encode_example(minilm_tokenizer, [])


def test_long_sentence_windows_cover_every_word_once(minilm_tokenizer):
    words = [f"w{i}" if i % 7 else "internationalization" for i in range(600)]
    features = encode_example(minilm_tokenizer, words, ["some context"], max_seq_length=128, stride=16)
    assert len(features) > 5
    covered = []
    for f in features:
        assert len(f["input_ids"]) <= 128 and len(f["ctx_input_ids"]) <= 128
        n = len(f["word_index"])
        assert 0 <= f["own_start"] <= f["own_end"] <= n
        covered.extend(range(f["word_start"] + f["own_start"], f["word_start"] + f["own_end"]))
        # the window's words are the sentence's words, each at its first sub-token
        ids = f["input_ids"]
        first = [minilm_tokenizer.convert_ids_to_tokens(ids[p]) for p in f["word_index"]]
        expected = [minilm_tokenizer.tokenize(w)[0] for w in words[f["word_start"] : f["word_start"] + n]]
        assert first == expected
    assert covered == list(range(600))
    # consecutive windows overlap
    assert features[1]["word_start"] < features[0]["word_start"] + len(features[0]["word_index"])


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


def test_group_entities_bio_bioes_and_lenient():
    assert group_entities(["B-a", "I-a", "O", "B-b", "B-b", "I-a"]) == [
        ("a", 0, 2),
        ("b", 3, 4),
        ("b", 4, 5),
        ("a", 5, 6),
    ]
    assert group_entities(["S-a", "B-b", "I-b", "E-b", "I-b", "U-c", "L-c"]) == [
        ("a", 0, 1),
        ("b", 1, 4),
        ("b", 4, 5),
        ("c", 5, 6),
        ("c", 6, 7),
    ]
    assert group_entities(["O", "I-a", "I-a"]) == [("a", 1, 3)] and group_entities([]) == []


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
    pipeline), at least 99% of the 78,463 train + dev tokens (99.36%; the rest are idiosyncratic: `'RT`, `SMS/WA`,
    `$5`)."""
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
