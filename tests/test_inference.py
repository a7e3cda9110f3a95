"""The inference core (`inference_clner`): the steps every prediction path shares, against brute force."""

import random
import unicodedata

import pytest

import inference_clner
from inference_clner import (
    _grapheme_starts_stdlib,
    _whole_clusters,
    _word_re,
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


# ----------------------------------------------------------------------------------------- window stride
def test_a_stride_past_the_window_is_refused_and_windows_grow_linearly(minilm_tokenizer):
    from inference_clner import encode_example
    from modeling_clner import CLNERConfig

    words = [f"w{i}" for i in range(400)]
    sane = encode_example(minilm_tokenizer, words, None, 64, stride=16)
    greedy = encode_example(minilm_tokenizer, words, None, 64, stride=60)  # stride near the window: capped at half
    assert len(greedy) <= 2 * len(sane) + 1, (len(greedy), len(sane))
    starts = [f["word_start"] for f in greedy]
    assert all(b - a >= 10 for a, b in zip(starts, starts[1:]))  # every window moves on by half a window or more
    covered = sorted(f["word_start"] + i for f in greedy for i in range(f["own_start"], f["own_end"]))
    assert covered == list(range(400))  # every word is owned by exactly one window
    with pytest.raises(ValueError, match="window_stride 62 is not smaller than the 62 words"):
        CLNERConfig(max_seq_length=64, window_stride=62)


# ----------------------------------------------------------------------------------------------------
# `split_words` never puts a word boundary inside an extended grapheme cluster (UAX #29), with `regex`'s `\X` and
# with the standard-library fallback (`_grapheme_starts_stdlib`, used where the `regex` package is missing).
#
# The property tests run on a generated sample: random strings built from pools of cluster kinds (base letters of
# several scripts, combining marks, Indic viramas and vowel signs, Hangul jamo, regional indicators, emoji with
# skin tones, variation selectors and ZWJ sequences, tag sequences, keycaps, Prepend characters, invisible joiners,
# zero-width separators, ASCII and Unicode punctuation, spaces and line breaks), the pieces drawn one by one so that
# marks also land after spaces, punctuation and line breaks, flags split into odd runs, and ZWJs join anything.
#
# The fallback handles the same kinds (GB3-GB13: CR LF, controls, Hangul jamo and syllables, Extend / ZWJ / spacing
# marks, Prepend, Indic conjuncts, emoji ZWJ sequences, regional-indicator pairs) from `unicodedata` (Unicode 14 on
# Python 3.11) and small tables; where they are coarse it joins more than `\X` (a non-emoji symbol after an emoji's
# ZWJ, a letter of a script without conjuncts after a virama), never less, so its words keep the property;
# characters newer than Python's Unicode tables are not covered (the sample leaves them out).


regex = pytest.importorskip("regex")


GRAPHEME = regex.compile(r"\X")


#: the sample: strings per generated test, and pieces per string
SAMPLE_SIZE = 3000


MAX_PIECES = 24


SEED = 20240229


#: invisible characters: never a word on their own (variation selectors included: nothing to show alone)
INVISIBLE = set("\u00ad\u034f\u061c\u180e\u200c\u200d\u200e\u200f\u202a\u202c\u2060\u2066\u2069\ufe0e\ufe0f")


#: separators that split like a space (zero-width space, BOM)
SEPARATORS = set("\u200b\ufeff")


def _chars(*ranges):
    return [chr(c) for lo, hi in ranges for c in range(lo, hi + 1) if unicodedata.category(chr(c)) != "Cn"]


# The pools, one per cluster kind: each piece a character or a ready-made sequence
LETTERS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") + _chars(
    (0xC0, 0xFF), (0x391, 0x3C9), (0x410, 0x44F), (0x5D0, 0x5EA), (0x627, 0x64A), (0x915, 0x939), (0x995, 0x9B9),
    (0xE01, 0xE2E), (0xAC00, 0xAC40), (0x3041, 0x3050), (0x4E00, 0x4E10), (0x1000, 0x1020),
)  # fmt: skip


MARKS = _chars(
    (0x300, 0x36F), (0x5B0, 0x5BD), (0x64B, 0x652), (0x900, 0x903), (0x93E, 0x94D), (0x9BE, 0x9CD), (0xE31, 0xE31),
    (0xE34, 0xE3A), (0xE47, 0xE4E), (0x102B, 0x103A), (0x1AB0, 0x1ABD), (0x20D0, 0x20F0), (0xFE20, 0xFE2F),
)  # fmt: skip


HANGUL_JAMO = _chars((0x1100, 0x1112), (0x1161, 0x1175), (0x11A8, 0x11C2), (0xA960, 0xA965), (0xD7B0, 0xD7B5))


REGIONAL_INDICATORS = _chars((0x1F1E6, 0x1F1FF))


EMOJI = _chars((0x1F466, 0x1F469), (0x1F600, 0x1F64F), (0x1F44D, 0x1F44E), (0x1F3F3, 0x1F3F4)) + list("❤☺✌ℹ©")


SKIN_TONES = _chars((0x1F3FB, 0x1F3FF))


EMOJI_SEQUENCES = [
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",  # family
    "\U0001f469\U0001f3fd\u200d\U0001f4bb",  # woman technologist: medium skin tone
    "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag
    "\u2764\ufe0f\u200d\U0001f525",  # heart on fire
    "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",  # Scotland: tag sequence
    "\U0001f1eb\U0001f1f7",  # France
]


KEYCAPS = [c + "\ufe0f\u20e3" for c in "0123456789#*"] + ["\u20e3", "\ufe0f", "\ufe0e"]


PREPEND = _chars((0x600, 0x605), (0x6DD, 0x6DD), (0x70F, 0x70F), (0xD4E, 0xD4E), (0x110BD, 0x110BD))


JOINERS = sorted(INVISIBLE) + ["\u200d"] * 4


PUNCTUATION = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + list("«»–—“”‘’…¿¡·•€£") + ["...", "n't", "'s", "U.S."]


SPACES = [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028"] + sorted(SEPARATORS)


#: (pool, weight)
POOLS = [
    (LETTERS, 30), (MARKS, 10), (HANGUL_JAMO, 4), (REGIONAL_INDICATORS, 5), (EMOJI, 5), (SKIN_TONES, 3),
    (EMOJI_SEQUENCES, 3), (KEYCAPS, 3), (PREPEND, 2), (JOINERS, 8), (PUNCTUATION, 8), (SPACES, 19),
]  # fmt: skip


def generated_sample(n=SAMPLE_SIZE, seed=SEED):
    rnd = random.Random(seed)
    pools, weights = zip(*POOLS)
    return [
        "".join(rnd.choice(rnd.choices(pools, weights)[0]) for _ in range(rnd.randint(1, MAX_PIECES)))
        for _ in range(n)
    ]


SAMPLE = generated_sample()


def cluster_bounds(text):
    """The offsets between `text`'s extended grapheme clusters as `regex`'s `\\X` finds them (0 and len included)."""
    return {m.start() for m in GRAPHEME.finditer(text)} | {len(text)}


def check_words(text, spans):
    """The properties of `split_words` on one text (an AssertionError naming the text when one fails)."""
    bounds, pos, gaps = cluster_bounds(text), 0, []
    for word, a, b in spans:
        assert pos <= a < b <= len(text) and text[a:b] == word, (text, spans)
        assert a in bounds and b in bounds, ("a word boundary inside a grapheme cluster", text, word, a, b)
        assert not set(word) <= INVISIBLE, ("a word of invisible characters only", text, word)
        assert not word[0].isspace(), ("a word starts with a space", text, word)
        gaps.append((pos, a))
        pos = b
    gaps.append((pos, len(text)))
    for i, (a, b) in enumerate(gaps):  # what lies between the words: spaces, separators, stray joiners
        clusters = [m.group() for m in GRAPHEME.finditer(text, a, b)]
        for c in clusters:
            assert c[0].isspace() or set(c) <= INVISIBLE | SEPARATORS, ("dropped", text, c, spans)
        if clusters and i > 0:  # a joiner right after a word stays in it
            assert clusters[0][0].isspace() or clusters[0] in SEPARATORS, ("joiner left out", text, spans)
        if clusters and i < len(gaps) - 1:  # ... as one right before a word
            assert clusters[-1][0].isspace() or clusters[-1] in SEPARATORS, ("joiner left out", text, spans)


@pytest.fixture(params=["regex", "stdlib"])
def clusters(request, monkeypatch):
    """Both ways of finding grapheme clusters: `regex`'s `\\X`, and the standard-library fallback (as where the
    `regex` package is missing)."""
    if request.param == "stdlib":
        monkeypatch.setattr(inference_clner, "_grapheme_re", lambda: None)
    return request.param


def test_sample_covers_every_cluster_kind():
    text = "".join(SAMPLE)
    assert len(SAMPLE) == SAMPLE_SIZE
    for pool, _ in POOLS:
        assert sum(piece in text for piece in pool) >= len(pool) * 0.8, pool[:5]
    assert regex.search(r"\p{RI}{3}", text) and regex.search(r"\s\p{Mn}", text)  # odd flag runs, marks on spaces


@pytest.mark.filterwarnings("ignore:split_words")
def test_split_words_keeps_grapheme_clusters_on_generated_sample(clusters):
    """Every word boundary falls between two clusters of `\\X`, the offsets give back the words, no word is only
    invisible characters, and only spaces (with what they carry), separators and joiners between spaces are
    skipped: with `regex` and with the standard-library fallback."""
    for text in SAMPLE:
        check_words(text, split_words(text))


@pytest.mark.filterwarnings("ignore:split_words")
def test_stdlib_fallback_splits_as_regex_on_generated_sample(monkeypatch):
    """On the sample, the fallback finds `\\X`'s clusters (but where its coarse tables join more) and so the same
    words: at least 99% of the texts split identically."""
    with_regex = [split_words(text) for text in SAMPLE]
    monkeypatch.setattr(inference_clner, "_grapheme_re", lambda: None)
    same = sum(split_words(text) == words for text, words in zip(SAMPLE, with_regex))
    assert same >= 0.99 * len(SAMPLE), same


def test_stdlib_clusters_never_cut_a_regex_cluster():
    """`_grapheme_starts_stdlib` starts a cluster only where `\\X` does (it may join more, never less), on the sample
    and on each piece of every pool after each piece of every pool."""
    pieces = [piece for pool, _ in POOLS for piece in pool]
    rnd = random.Random(SEED)
    pairs = [a + b for a in pieces for b in rnd.sample(pieces, 40)]
    exact = 0
    for text in SAMPLE + pairs:
        expected = {m.start() for m in GRAPHEME.finditer(text)}
        got = _grapheme_starts_stdlib(text)
        assert got == sorted(set(got)) and set(got) <= expected, (text, sorted(expected), got)
        exact += set(got) == expected
    assert exact >= 0.99 * (len(SAMPLE) + len(pairs)), exact


def test_stdlib_grapheme_classes_agree_with_unicode():
    """Every code point Python's `unicodedata` knows gets UAX #29's Grapheme_Cluster_Break from `_grapheme_class`,
    or one that joins more (a spacing mark as Extend, a symbol as Extended_Pictographic, a letter as a conjunct's
    consonant, a virama as a linker)."""
    g = inference_clner
    every = "".join(chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs"))
    truth = {}
    for value, cls in [
        ("CR", g._CR), ("LF", g._LF), ("Control", g._CONTROL), ("Extend", g._EXTEND), ("ZWJ", g._ZWJ),
        ("Regional_Indicator", g._RI), ("Prepend", g._PREPEND), ("SpacingMark", g._EXTEND), ("L", g._L),
        ("V", g._V), ("T", g._T), ("LV", g._LV), ("LVT", g._LVT),
    ]:  # fmt: skip
        for m in regex.finditer(rf"\p{{Grapheme_Cluster_Break={value}}}", every):
            truth[m.group()] = cls
    pict = {m.group() for m in regex.finditer(r"\p{Extended_Pictographic}", every)}
    joins_more = {g._OTHER: {g._PICT, g._LETTER}, g._EXTEND: {g._LINKER}}
    wrong = []
    for ch in every:
        expected = truth.get(ch, g._PICT if ch in pict else g._OTHER)
        got = g._grapheme_class(ord(ch), unicodedata.category)
        if got != expected and got not in joins_more.get(expected, set()):
            wrong.append((hex(ord(ch)), expected, got))
    assert not wrong, wrong[:20]


def test_whole_clusters_changes_nothing_where_the_pattern_keeps_clusters():
    """Where the pattern's words already start and end between clusters and none is only joiners, the words are
    the pattern's: the WNUT-17 conventions (punctuation on its own, clitics, URLs) stay as they were."""
    unchanged = 0
    for text in SAMPLE:
        spans = [m.span() for m in _word_re().finditer(text)]
        bounds = cluster_bounds(text)
        on_bounds = all(a in bounds and b in bounds for a, b in spans)
        if on_bounds and not any(c in INVISIBLE for c in text):
            assert _whole_clusters(text, spans) == spans, text
            unchanged += 1
    assert unchanged >= 200, unchanged


@pytest.mark.parametrize(
    "text,words",
    [
        ("France\U0001f1eb\U0001f1f7Paris", ["France", "\U0001f1eb\U0001f1f7", "Paris"]),  # a flag between words
        ("go \U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea\U0001f1ee !", ["go", "\U0001f1eb\U0001f1f7", "\U0001f1e9\U0001f1ea", "\U0001f1ee", "!"]),
        ("moms\U0001f469\u200d\U0001f469\u200d\U0001f467!", ["moms", "\U0001f469\u200d\U0001f469\u200d\U0001f467", "!"]),
        ("the \U0001f469\U0001f3fd\u200d\U0001f469\U0001f3fd\u200d\U0001f467\U0001f3fd family", ["the", "\U0001f469\U0001f3fd\u200d\U0001f469\U0001f3fd\u200d\U0001f467\U0001f3fd", "family"]),
        ("\u2139\u200d\U0001f44d ok", ["\u2139\u200d\U0001f44d", "ok"]),  # a letter-like emoji in a ZWJ sequence
        ("inter\u00adnational law", ["inter\u00adnational", "law"]),  # a soft hyphen inside a word
        ("\u00adpre \u00ad post\u2060, x\u200cy", ["\u00adpre", "post\u2060", ",", "x\u200cy"]),  # joiners stay in
        ("Cafe\u0301, Jose\u0301!", ["Cafe\u0301", ",", "Jose\u0301", "!"]),  # e + combining acute
        ("U.S.\u0301 ...\u0301", ["U.S.\u0301", "...\u0301"]),  # a mark after what the pattern ends
        ("a \u0301 b", ["a", "b"]),  # a mark on a space is part of the space
        ("press 1\ufe0f\u20e3 or #\ufe0f\u20e3", ["press", "1\ufe0f\u20e3", "or", "#\ufe0f\u20e3"]),  # keycaps
        ("\u1112\u1161\u11ab\u1100\u1173\u11af \ud55c", ["\u1112\u1161\u11ab\u1100\u1173\u11af", "\ud55c"]),  # jamo
        ("\u0928\u0930\u0947\u0902\u0926\u094d\u0930 \u0e01\u0e34\u0e19", ["\u0928\u0930\u0947\u0902\u0926\u094d\u0930", "\u0e01\u0e34\u0e19"]),
        ("\u0600\u0661\u0662 ok", ["\u0600\u0661\u0662", "ok"]),  # a Prepend character (Arabic number sign)
        ("Paris\u200bFrance", ["Paris", "France"]),  # a zero-width space still separates
    ],
)  # fmt: skip
def test_split_words_regressions(clusters, text, words):
    spans = split_words(text)
    assert [w for w, _, _ in spans] == words
    check_words(text, spans)
