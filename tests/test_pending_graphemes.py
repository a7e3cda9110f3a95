"""`split_words` never puts a word boundary inside an extended grapheme cluster (UAX #29), with `regex`'s `\\X` and
with the standard-library fallback (`_grapheme_starts_stdlib`, used where the `regex` package is missing).

The property tests run on a generated sample: random strings built from pools of cluster kinds (base letters of
several scripts, combining marks, Indic viramas and vowel signs, Hangul jamo, regional indicators, emoji with
skin tones, variation selectors and ZWJ sequences, tag sequences, keycaps, Prepend characters, invisible joiners,
zero-width separators, ASCII and Unicode punctuation, spaces and line breaks), the pieces drawn one by one so that
marks also land after spaces, punctuation and line breaks, flags split into odd runs, and ZWJs join anything.

The fallback handles the same kinds (GB3-GB13: CR LF, controls, Hangul jamo and syllables, Extend / ZWJ / spacing
marks, Prepend, Indic conjuncts, emoji ZWJ sequences, regional-indicator pairs) from `unicodedata` (Unicode 14 on
Python 3.11) and small tables; where they are coarse it joins more than `\\X` (a non-emoji symbol after an emoji's
ZWJ, a letter of a script without conjuncts after a virama), never less, so its words keep the property;
characters newer than Python's Unicode tables are not covered (the sample leaves them out).
"""

import random
import unicodedata

import pytest

import inference_clner
from inference_clner import _grapheme_starts_stdlib, _whole_clusters, _word_re, split_words

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
