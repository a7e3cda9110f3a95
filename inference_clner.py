"""The inference core of CLNER: every path that tags text calls these steps, so each is written once.

Remote code: uploaded to the Hub next to `modeling_clner.py`, which imports it (as do `pipeline_clner.py` and this
project's `clner/onnx.py` and data collator), so it is self-contained: the standard library only, and no framework.
The steps, in the order a prediction runs them:

* tags: `parse_tag`, the one reader of tag prefixes (`B-`, `I-`, `E-`, `S-`; BILOU's `L-` / `U-` as `E-` / `S-`);
* words and offsets: `split_words` / `whitespace_words` / `words_and_offsets` turn a text, or a list of words, into
  words with character offsets (for a list of words, offsets into ``" ".join(words)``);
* contexts: `context_snippets` / `normalise_contexts` accept one input's snippets, or one entry per input, and refuse
  anything else with a TypeError naming the argument;
* features: `encode_example` builds both views of a sentence (windows of a long one), `pad_view` pads one view of
  a batch of features (plain lists; callers make tensors or arrays of them);
* window decoding: `decode_windows` runs a decoder (torch or ONNX Runtime: padded batch -> tag ids and scores per
  row) over windows and stitches each sentence back with `stitch_windows`;
* entities: `entities_from_tags` groups tags into entity dicts with offsets and scores (`tokens_from_tags`, one
  dict per tagged word, for the pipeline's `aggregation_strategy="none"`).

`predict_sentences` chains them: `CLNERForTokenClassification.predict` and `ONNXCLNER.predict` are thin callers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

#: A decoder: one padded view (`pad_view`'s dict) -> `(paths, scores)`, per row its words' tag ids and (or None)
#: the CRF marginal of each tag, both at least as long as the row's word count. `predict_sentences` passes a
#: second argument, `with_scores`: False when only tags are asked for, so that the marginals can be skipped.
#: The feature keys: a view's model inputs, the context view's prefix on the same keys, and the per-window scalars
#: that stitch windows back into sentences (see docs/architecture.md, "Features").
VIEW_KEYS = ("input_ids", "attention_mask", "token_type_ids", "word_index")
CONTEXT_PREFIX = "ctx_"
META_KEYS = ("example_id", "word_start", "own_start", "own_end")

#: The sub-token budget of a view when neither the run nor the model names one (BERT-style encoders' positions).
DEFAULT_MAX_SEQ_LENGTH = 512

Decoder = Callable[..., tuple[Sequence[Sequence[int]], Sequence[Sequence[float]] | None]]


def call_with_timeout(
    fn: Callable,
    timeout: float | None,
    *args,
    error: type = TimeoutError,
    message: str = "no answer within {timeout:g} s",
):
    """`fn(*args)`, given up after `timeout` seconds (None: no limit) with `error(message)`. The call runs in a
    daemon thread, since a blocking socket read cannot be interrupted from outside; a call that is given up on is
    left to finish (or hang) there, its result discarded, and never blocks the caller or the exit. (Live retrieval
    of the pipeline and every search of `clner.retrieval.retriever` go through here.)"""
    if timeout is None:
        return fn(*args)
    import threading

    outcome: dict[str, Any] = {}

    def work():
        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="clner-timeout", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise error(message.format(timeout=timeout))
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# --------------------------------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------------------------------
def parse_tag(tag: str) -> tuple[str | None, str]:
    """`'B-PER'` -> `('B', 'PER')` (BILOU prefixes read as BIOES: L = E, U = S), `'O'` -> `('O', '')`, a tag
    without a prefix (an IO-tagged bare type) -> `(None, tag)`. The prefix ends at `-`, as seqeval and conlleval
    read it (`'B_PER'` has none: the data checks refuse such tags, `PREFIX_UNDERSCORE`)."""
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BIESLU":
        return {"L": "E", "U": "S"}.get(tag[0], tag[0]), tag[2:]
    return None, tag


#: a tag whose prefix is joined by `_` (`B_PER`), which the scorers read as one type: refused where tags are read
PREFIX_UNDERSCORE = re.compile(r"^[BIESLU]_.")


def split_label(label: str) -> tuple[str, str]:
    """`parse_tag`, with a label without a prefix read as `('O', '')` (how the CRF and the entity grouping see it)."""
    prefix, etype = parse_tag(label)
    return ("O", "") if prefix is None else (prefix, etype)


# --------------------------------------------------------------------------------------------------------------
# Words and offsets
# --------------------------------------------------------------------------------------------------------------
def _glue_class(zwj: bool = True) -> str:
    """A regex character class body of the characters that continue the word before them: combining marks
    (Unicode categories Mn, Mc, Me: accents, Indic vowel signs and viramas), variation selectors, emoji skin-tone
    modifiers and the invisible characters of `_JOINERS` (soft hyphen, ZWNJ, ZWJ, word joiner, bidi marks, tag
    characters). Python's `re` has no `\\X`: `_whole_clusters` then widens the pattern's words to whole grapheme
    clusters, and a word is never cut at one of these (`Jose\u0301`, `नरेंद्र`, `👨\u200d👩\u200d👧`, `inter\u00adnational`)."""
    codes = list(_combining_marks())
    codes += [code for lo, hi in _JOINERS for code in range(lo, hi + 1) if zwj or code != 0x200D]
    codes += range(0x1F3FB, 0x1F400)
    return _class_body(codes)


def _class_body(codes: Iterable[int]) -> str:
    """A regex character class body (ranges of `\\U` escapes) of a set of code points."""
    codes = sorted(set(codes))
    ranges, first = [], codes[0]
    for prev, code in zip(codes, codes[1:] + [None]):
        if code != prev + 1:
            ranges.append(f"\\U{first:08x}" + (f"-\\U{prev:08x}" if prev != first else ""))
            first = code
    return "".join(ranges)


@functools.cache
def _combining_marks() -> tuple[int, ...]:
    """The code points of Unicode categories Mn, Mc and Me (a scan of the first three planes, once)."""
    import unicodedata

    return tuple(c for c in range(0x30000) if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me"))


#: invisible separators: split like a space, never a word of their own (zero-width space, BOM)
_INVISIBLE = "\u200b\ufeff"

#: invisible characters that stay inside the word they are in, never split it or make a word of their own: soft
#: hyphen, combining grapheme joiner, Arabic letter mark, Mongolian variation selectors and vowel separator, ZWNJ,
#: ZWJ, LRM / RLM, bidi embeddings and isolates, word joiner and invisible operators, variation selectors,
#: shorthand format controls, musical format controls, tag characters (Unicode's default-ignorable code points,
#: less the `_INVISIBLE` separators and the Hangul fillers, which are letters). Where one has no word next to it
#: (between spaces), it is skipped like a space.
_JOINERS = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x180B, 0x180F),
    (0x200C, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0xFE00, 0xFE0F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_JOINERS_RE = re.compile("[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in _JOINERS) + "]+")


# The alternatives, in order, follow WNUT-17's / CoNLL's tokenization: URLs; HTML entities (`&amp;`); emoticons
# (`:)`, `;-)`, `:D`, `-_-`); English clitics as their own token (`'s`, `n't`); dotted abbreviations (`U.S.`,
# `p.m.`); numbers with separators or a percent sign (`30,000`, `7:30`, `100%`); `w/`; words (letters, digits and
# marks, @mentions / #hashtags, inner apostrophes, hyphens, dots or ampersands); runs of ASCII punctuation (`...`,
# `!!`, `?!`); any other symbol (an emoji with its modifiers and ZWJ sequence) on its own.
@functools.cache
def _word_re() -> re.Pattern:
    """The word pattern, compiled on the first `split_words` (its character classes take a scan of Unicode that
    every import would otherwise pay: about 0.15 s)."""
    glue, glue_no_zwj = _glue_class(), _glue_class(zwj=False)  # after a symbol, a ZWJ joins the next symbol
    return re.compile(
        r"https?://\S+|www\.\S+"
        r"|&(?:[A-Za-z]{2,8}|#\d{1,6});"
        r"|(?<![\w])(?:[:;=8][\-o'^]?[)(\]\[DPpOo/\\|*3@]+|[-^>]_+[-^<])(?![\w])"
        r"|(?i:n't|'(?:s|m|d|re|ve|ll))(?![\w])"
        r"|(?:[A-Za-z]\.){2,}(?![\w])"
        r"|\d+(?:[.,:]\d+)+%?|\d+%"
        r"|(?i:w/)(?![\w/])"
        rf"|[@#]?\w[\w{glue}]*(?:['\u2019\-.&]\w[\w{glue}]*)*"
        r"|[!?.,:;\-'\"*~=+/\\|()\[\]{}<>`^_]{2,}"
        rf"|[^\w\s{_INVISIBLE}{glue}][{glue_no_zwj}]*(?:\u200d[^\w\s{_INVISIBLE}][{glue_no_zwj}]*)*\u200d?"
        rf"|[{glue}]+"  # glue with nothing before it: a mark is kept as a word; `_whole_clusters` places joiners
    )


# --- Extended grapheme clusters (UAX #29): `regex`'s `\X` where installed, else `_grapheme_starts_stdlib` ---
@functools.cache
def _grapheme_re() -> Any:
    """`regex`'s `\\X` pattern (extended grapheme clusters), or None where the `regex` package is missing (it comes
    with transformers, but remote code keeps to the standard library: then `_grapheme_starts_stdlib` stands in)."""
    try:
        import regex
    except ImportError:
        return None
    return regex.compile(r"\X")


def _grapheme_starts(text: str) -> list[int]:
    """The offsets at which `text`'s extended grapheme clusters start."""
    pattern = _grapheme_re()
    if pattern is None:
        return _grapheme_starts_stdlib(text)
    return [m.start() for m in pattern.finditer(text)]


# Grapheme_Cluster_Break values, as `_grapheme_class` approximates them with `unicodedata` (Unicode 14 on Python
# 3.11) and the tables below; where it errs, it errs towards joining (a cluster too long, never one cut in two).
_CR, _LF, _CONTROL, _EXTEND, _ZWJ, _RI, _PREPEND, _L, _V, _T, _LV, _LVT, _PICT, _LINKER, _LETTER, _OTHER = range(16)
#: Grapheme_Cluster_Break=Prepend (Arabic number signs, Malayalam dot reph, ...)
_PREPEND_CODES = frozenset(
    [*range(0x600, 0x606), 0x6DD, 0x70F, 0x890, 0x891, 0x8E2, 0xD4E, 0x110BD, 0x110CD, 0x111C2, 0x111C3]
    + [0x113D1, 0x1193F, 0x11941, *range(0x11A84, 0x11A8A), 0x11D46, 0x11F02]
)
#: Indic_Conjunct_Break=Linker: the viramas that join the consonants around them into one cluster (GB9c)
_LINKER_CODES = frozenset(
    [0x94D, 0x9CD, 0xACD, 0xB4D, 0xC4D, 0xD4D, 0x1039, 0x17D2, 0x1A60, 0x1B44, 0x1BAB, 0xA9C0, 0xAAF6, 0x10A3F]
    + [0x11133, 0x113D0, 0x1193E, 0x11A47, 0x11A99, 0x11F42]
)
#: spacing marks (Mc) that UAX #29 leaves apart from the letter before them (Grapheme_Cluster_Break=Other: Myanmar
#: and Tai Tham vowel signs, ...)
_MC_APART = frozenset(
    [*range(0x102B, 0x102D), 0x1038, *range(0x1062, 0x1065), *range(0x1067, 0x106E), 0x1083, *range(0x1087, 0x108D)]
    + [0x108F, *range(0x109A, 0x109D), 0x1A61, *range(0x1A63, 0x1A65), 0xAA7B, 0xAA7D, *range(0x11720, 0x11722)]
)
#: a superset of Extended_Pictographic (emoji and the symbols that take an emoji ZWJ sequence), as sorted ranges
_PICT_RANGES = (
    (0xA9, 0xA9), (0xAE, 0xAE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122), (0x2139, 0x2139),
    (0x2194, 0x21AA), (0x231A, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B55),
    (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3299), (0x1F000, 0x1F0FF), (0x1F10D, 0x1F10F),
    (0x1F12F, 0x1F12F), (0x1F16C, 0x1F171), (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E), (0x1F191, 0x1F19A),
    (0x1F1AD, 0x1F1E5), (0x1F201, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F774, 0x1F77F), (0x1F7D5, 0x1F7FF),
    (0x1F80C, 0x1F80F), (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F), (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8FF),
    (0x1F90C, 0x1FAFF), (0x1FC00, 0x1FFFD),
)  # fmt: skip
_PICT_RE = re.compile("[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in _PICT_RANGES) + "]")


def _grapheme_class(cp: int, category: Callable[[str], str]) -> int:
    """The Grapheme_Cluster_Break value of code point `cp` (`_PICT` for Extended_Pictographic, `_LINKER` for an
    Indic conjunct linker, `_LETTER` for an other letter (Lo), which may be a conjunct's consonant), from
    `unicodedata.category` and the tables above. Spacing marks (Mc, but `_MC_APART`) count as Extend."""
    if cp < 0x7F:
        return _CR if cp == 0x0D else _LF if cp == 0x0A else _CONTROL if cp < 0x20 else _OTHER
    if 0x1F1E6 <= cp <= 0x1F1FF:
        return _RI
    if cp == 0x200D:
        return _ZWJ
    if cp in _LINKER_CODES:
        return _LINKER
    if cp in _PREPEND_CODES:
        return _PREPEND
    if cp in (0x200C, 0xE33, 0xEB3, 0xFF9E, 0xFF9F) or 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:
        return _EXTEND  # ZWNJ, Thai / Lao SARA AM, halfwidth kana voicing marks, skin tones, tag characters
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C:
        return _L  # Hangul jamo: leading consonants, vowels, trailing consonants, precomposed syllables
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7C6:
        return _V
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FB:
        return _T
    if 0xAC00 <= cp <= 0xD7A3:
        return _LV if (cp - 0xAC00) % 28 == 0 else _LVT
    cat = category(chr(cp))
    if cat in ("Mn", "Me") or (cat == "Mc" and cp not in _MC_APART):
        return _EXTEND
    if cat in ("Cc", "Cf", "Zl", "Zp"):
        return _CONTROL
    if cat == "Lo":
        return _LETTER
    return _PICT if _PICT_RE.match(chr(cp)) else _OTHER


def _grapheme_starts_stdlib(text: str) -> list[int]:
    """`_grapheme_starts` with the standard library only: the rules of UAX #29 (GB3-GB13: CR LF, controls, Hangul
    syllables, Extend / ZWJ / spacing marks, Prepend, Indic conjuncts, emoji ZWJ sequences, regional-indicator
    pairs) over `_grapheme_class`. It may join more than `\\X` where its tables are coarse (a letter after a
    virama, a symbol after an emoji's ZWJ, Unicode's newest characters), never less."""
    import unicodedata

    category = unicodedata.category
    starts: list[int] = []
    prev = _CONTROL
    ri_run = 0  # regional indicators in the run that ends with the previous character
    pict = pict_zwj = False  # the text so far ends with ExtPict Extend* (and then a ZWJ)
    conjunct = 0  # 1: the text so far ends with a letter [Extend]*, 2: with a letter [Extend | Linker]* Linker ...
    for i, ch in enumerate(text):
        k = _grapheme_class(ord(ch), category)
        if i == 0:
            join = False
        elif prev == _CR and k == _LF:
            join = True  # GB3
        elif prev in (_CR, _LF, _CONTROL) or k in (_CR, _LF, _CONTROL):
            join = False  # GB4, GB5
        elif (
            (prev == _L and k in (_L, _V, _LV, _LVT))
            or (prev in (_LV, _V) and k in (_V, _T))
            or (prev in (_LVT, _T) and k == _T)
        ):
            join = True  # GB6-GB8
        elif k in (_EXTEND, _ZWJ, _LINKER) or prev == _PREPEND:
            join = True  # GB9, GB9a, GB9b
        elif conjunct == 2 and k == _LETTER:
            join = True  # GB9c
        elif pict_zwj and k == _PICT:
            join = True  # GB11
        else:
            join = prev == _RI and k == _RI and ri_run % 2 == 1  # GB12, GB13
        if not join:
            starts.append(i)
        pict_zwj = pict and k == _ZWJ
        pict = k == _PICT or (pict and k in (_EXTEND, _LINKER))
        ri_run = ri_run + 1 if k == _RI else 0
        if k == _LINKER:
            conjunct = 2 if conjunct else 0
        elif k not in (_EXTEND, _ZWJ):
            conjunct = 1 if k == _LETTER else 0
        prev = k
    return starts


def _whole_clusters(text: str, spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The pattern's `(start, end)` spans made whole: a span that ends or starts inside an extended grapheme cluster
    takes in the rest of it (two spans that then share a cluster become one word: a flag, `1️⃣`, an emoji ZWJ
    sequence, a letter with a mark the pattern left out), except that marks or joiners carried by a space belong
    to the space; a span of `_JOINERS` alone joins the word just before it, else the one just after it, else (with
    spaces on both sides) it is skipped like a space."""
    import bisect

    spans = list(spans)
    if text.isascii():
        return spans  # one cluster per character, but for CR LF (a space)
    bounds = _grapheme_starts(text) + [len(text)]
    whole: list[tuple[int, int]] = []
    for a, b in spans:
        i = bisect.bisect_right(bounds, a) - 1
        a = bounds[i + 1] if bounds[i] < a and text[bounds[i]].isspace() else bounds[i]
        b = bounds[bisect.bisect_left(bounds, b)]
        if a >= b:
            continue
        if whole and a < whole[-1][1]:
            whole[-1] = (whole[-1][0], max(b, whole[-1][1]))
        else:
            whole.append((a, b))
    words: list[list] = []  # [start, end, nothing but joiners so far]
    for a, b in whole:
        invisible = _JOINERS_RE.fullmatch(text, a, b) is not None
        if words and words[-1][1] == a and (invisible or words[-1][2]):
            words[-1][1:] = [b, invisible and words[-1][2]]
        else:
            words.append([a, b, invisible])
    return [(a, b) for a, b, invisible in words if not invisible]


_NO_SPACES_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,}")


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Split raw text into `(word, start, end)` character spans (how `predict` and the pipeline split text): WNUT-17
    / CoNLL conventions (see `_word_re`), and never a word boundary inside an extended grapheme cluster (UAX #29:
    a letter and its combining marks, a Hangul syllable of jamo, a flag, a keycap, an emoji with its skin tone or
    ZWJ sequence; `_whole_clusters`); invisible characters such as a soft hyphen or a word joiner stay inside the
    word they are in. Chinese or Japanese text written without spaces stays one word per run, with a warning:
    pass such text pre-split (a list of words, or `is_split_into_words=True` in the pipeline)."""
    spans = [(text[a:b], a, b) for a, b in _whole_clusters(text, (m.span() for m in _word_re().finditer(text)))]
    if _NO_SPACES_RE.search(text):
        import warnings

        warnings.warn(
            "split_words: Chinese / Japanese text without spaces becomes one word per run of characters; "
            "pass pre-split words instead (a list of words to predict, or is_split_into_words=True to "
            "the pipeline)",
            UserWarning,
            stacklevel=2,
        )
    return spans


def whitespace_words(text: str) -> list[tuple[str, int, int]]:
    """`(word, start, end)` spans of the whitespace-separated words of `text`."""
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]


def words_and_offsets(
    x: str | Sequence[str], splitter: Callable[[str], Iterable] = split_words
) -> tuple[list[str], str, list[tuple[int, int]]]:
    """`(words, text, offsets)` of one input: a text is split by `splitter` (spans `(word, start, end)`); a list
    of words is kept as it is, its offsets pointing into ``" ".join(words)``."""
    if isinstance(x, str):
        spans = list(splitter(x))
        return [str(s[0]) for s in spans], x, [(int(s[1]), int(s[2])) for s in spans]
    words, offsets, pos = [str(w) for w in x], [], 0
    for w in words:
        offsets.append((pos, pos + len(w)))
        pos += len(w) + 1
    return words, " ".join(words), offsets


# --------------------------------------------------------------------------------------------------------------
# Contexts
# --------------------------------------------------------------------------------------------------------------
def context_snippets(value: Any, what: str, hint: str = "") -> list[str] | None:
    """One input's context as snippet strings: None, one string, or a list / tuple of strings. Anything else (a
    dict, None or a number among the snippets) is a TypeError naming the argument (`what`, e.g. ``"context="``),
    never the text "None" or a dict's keys; `hint` is appended to the message."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        bad = next((i for i, s in enumerate(value) if not isinstance(s, str)), None)
        if bad is None:
            return list(value)
        raise TypeError(
            f"{what} must be a string or a list of snippet strings; item {bad} is "
            f"{type(value[bad]).__name__} {value[bad]!r}{hint}"
        )
    raise TypeError(
        f"{what} must be a string or a list of snippet strings (or None), got {type(value).__name__}{hint}"
    )


def result_text(result: Any) -> str:
    """One search result as one snippet string: strings as they are, dicts as `title - body` (`body`, else
    `snippet`, else `text`)."""
    if isinstance(result, str):
        return result
    if isinstance(result, dict):
        parts = [result.get("title"), result.get("body") or result.get("snippet") or result.get("text")]
        return " - ".join(str(p).strip() for p in parts if p and str(p).strip())
    raise TypeError(f"search result must be a str or a dict with title/body, got {type(result).__name__}")


def search_results(results: Any, k: int | None = None) -> list[str]:
    """A search function's results as snippet strings (the first `k`), for every path that takes a user's search
    function (`clner-retrieve`'s `CallableBackend`, the pipeline's `retriever=`): anything but a list of strings or
    of dicts with text is a TypeError, since a bare string would otherwise become one-character snippets."""
    if results is None:
        return []
    if isinstance(results, (str, bytes, dict)) or not isinstance(results, (list, tuple)):
        raise TypeError(
            f"the search function returned a {type(results).__name__}; it must return a list of snippet "
            "strings or of dicts with 'title'/'body' (or 'snippet'/'text')"
        )
    out = []
    for n, result in enumerate(results):
        if isinstance(result, str):
            out.append(result)
        elif isinstance(result, dict) and any(f in result for f in ("title", "body", "snippet", "text")):
            text = result_text(result)
            if text:  # a blank result is no snippet, not a malformed one: the query keeps its other results
                out.append(text)
        else:
            raise TypeError(
                f"search result {n + 1} is {type(result).__name__} {str(result)[:60]!r}: expected a "
                "snippet string or a dict with 'title'/'body' (or 'snippet'/'text')"
            )
    return out if k is None else out[:k]


def normalise_contexts(contexts: Any, n: int | None) -> list[list[str] | None] | None:
    """The `contexts=` argument of `predict`: for one text (`n` None) its snippets; for `n` sentences one entry
    each (a list of snippets, a string or None). Returns one entry per input, or None without contexts."""
    if contexts is None:
        return None
    if n is None:
        return [context_snippets(contexts, "contexts= (one text)")]
    if not isinstance(contexts, (list, tuple)):
        raise TypeError(
            f"contexts= for a list of sentences must be a list with one entry per sentence (a list of "
            f"snippets, a string or None), got {type(contexts).__name__}"
        )
    if len(contexts) != n:
        raise ValueError(
            f"contexts has {len(contexts)} entries for {n} sentences: give one context (a list of "
            "snippets, a string or None) per sentence"
        )
    return [context_snippets(c, f"contexts[{i}]") for i, c in enumerate(contexts)]


# --------------------------------------------------------------------------------------------------------------
# Features: the two views of a sentence
# --------------------------------------------------------------------------------------------------------------
def _word_piece_counts(tokenizer, words: Sequence[str]) -> list[int]:
    # counting only: a long sentence is split into windows later, so the over-length warning would be noise
    enc = tokenizer(list(words), is_split_into_words=True, add_special_tokens=False, verbose=False)
    counts = [0] * len(words)
    for w in enc.word_ids():
        if w is not None:
            counts[w] += 1
    return counts


def _safe_words(tokenizer, words: Sequence[str]) -> tuple[list[str], list[int]]:
    """Words whose tokenization is empty (zero-width characters, control codes...) are replaced by the unknown
    token so that no sentence word silently disappears; returns the words and their sub-token counts."""
    words = list(words)
    counts = _word_piece_counts(tokenizer, words) if words else []
    if any(c == 0 for c in counts):
        filler = tokenizer.unk_token or tokenizer.sep_token or "?"
        words = [w if c else filler for w, c in zip(words, counts)]
        counts = _word_piece_counts(tokenizer, words)
        if any(c == 0 for c in counts):
            empty = [w for w, c in zip(words, counts) if not c]
            raise ValueError(f"tokenizer produces no sub-token for words {empty}")
    return words, counts


def _windows(
    counts: Sequence[int], budget: int, stride: int, can_start: Sequence[bool] | None = None
) -> list[tuple[int, int]]:
    """Split words into `[start, end)` windows whose sub-tokens fit `budget`, consecutive windows sharing up to
    `stride` words, and at most half of a window's words: each window moves on by at least half the previous
    one, so the windows of a sentence grow linearly with its length, whatever `stride`. With `can_start` (labelled data: False on a word inside a gold entity), a window starts only
    where a sentence could: moved back to the entity's first word when that keeps the windows moving forward, else
    forward to the first word after the entity within the previous window (an entity longer than a window is the
    one case left), so that the CRF never sees a window open with `I-` under the scheme's start constraint."""
    n = len(counts)
    if sum(counts) <= budget:
        return [(0, n)]
    spans, start = [], 0
    while True:
        end, used = start, 0
        while end < n and (used + counts[end] <= budget or end == start):
            used += counts[end]
            end += 1
        spans.append((start, end))
        if end >= n:
            return spans
        prev, start = start, max(end - min(stride, (end - start) // 2), start + 1)
        if can_start is not None and not can_start[start]:
            back = next((j for j in range(start - 1, prev, -1) if can_start[j]), None)
            ahead = next((j for j in range(start + 1, end + 1) if j < n and can_start[j]), None)
            start = back if back is not None else ahead if ahead is not None else start


def _view(tokenizer, words, ctx_words, max_len):
    """Encode one view; returns ids, mask, optional type ids and the sentence words' first sub-token positions."""
    if ctx_words:
        enc = tokenizer(words, ctx_words, is_split_into_words=True, truncation="only_second", max_length=max_len)
    else:
        enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_len)
    seq_ids, word_ids = enc.sequence_ids(), enc.word_ids()
    word_index, seen = [], set()
    for pos, (s, w) in enumerate(zip(seq_ids, word_ids)):
        if s == 0 and w is not None and w not in seen:
            seen.add(w)
            word_index.append(pos)
    if len(word_index) != len(words):
        raise ValueError(f"only {len(word_index)} of {len(words)} words fit in max_seq_length={max_len}")
    feat = {
        "input_ids": list(enc["input_ids"]),
        "attention_mask": list(enc["attention_mask"]),
        "word_index": word_index,
    }
    if "token_type_ids" in enc:
        feat["token_type_ids"] = list(enc["token_type_ids"])
    return feat


def encode_example(
    tokenizer,
    words: Sequence[str],
    context: Sequence[str] | str | None = None,
    max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
    stride: int = 16,
    snippet_separator: str | None = None,
    can_start: Sequence[bool] | None = None,
) -> list[dict]:
    """Both views of one sentence as model features, one feature per window.

    The sentence view is `[CLS] x [SEP]`; the context view uses the tokenizer's pair template,
    `[CLS] x [SEP] x~ [SEP]`, where x~ is the snippets in rank order joined by `snippet_separator` (default: the
    tokenizer's sep token). The context is cut first: whole snippets are kept while they fit, then the next one is
    cut at the sub-token level. The sentence is never truncated: a sentence longer than `max_seq_length` is split
    into windows of whole words overlapping by `stride` words; each window owns the words `[own_start, own_end)`
    (relative to `word_start`) when predictions are stitched back.

    Args:
        tokenizer: a fast tokenizer (RoBERTa-style ones need `add_prefix_space=True` for pre-split words).
        words: the sentence's words; context: ranked snippet strings, one string, or None.
        can_start: per word, whether a window may start there (labelled data: not inside a gold entity).

    Returns:
        list of dicts with `input_ids`, `attention_mask`, [`token_type_ids`], `word_index`, the same keys prefixed
        `ctx_`, `has_context`, `context_snippets` (how many of the snippets, in rank order, reached the window's
        context view: the last of them may be cut; 0 without a context view), `word_start`, `own_start`,
        `own_end`.
    """
    if not words:
        raise ValueError("cannot encode an empty sentence")
    if isinstance(context, str):
        context = [context]
    snippets = [s.split() for s in (context or []) if s and s.strip()]
    safe, counts = _safe_words(tokenizer, words)
    single_budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    pair_budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=True)
    if single_budget < 1:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for words")
    spans = _windows(counts, single_budget, stride, can_start)
    sep = snippet_separator or tokenizer.sep_token or "|"
    snippet_counts = (
        [
            len(ids)
            for ids in tokenizer(snippets, is_split_into_words=True, add_special_tokens=False, verbose=False)[
                "input_ids"
            ]
        ]
        if snippets
        else []
    )  # one call

    features = []
    for k, (start, end) in enumerate(spans):
        win = safe[start:end]
        feat = _view(tokenizer, win, None, max_seq_length)
        room = pair_budget - sum(counts[start:end])
        ctx_words: list[str] = []
        packed = 0
        for snippet, n in zip(snippets, snippet_counts):
            if room <= 0:
                break
            ctx_words.extend(([sep] if ctx_words else []) + snippet)
            room -= n + (1 if packed else 0)
            packed += 1
        ctx = (
            _view(tokenizer, win, ctx_words, max_seq_length)
            if ctx_words and pair_budget > sum(counts[start:end])
            else dict(feat)
        )
        feat.update({CONTEXT_PREFIX + key: value for key, value in ctx.items()})
        feat["has_context"] = ctx["input_ids"] != feat["input_ids"]
        feat["context_snippets"] = packed if feat["has_context"] else 0
        own_start = 0 if k == 0 else (start + spans[k - 1][1]) // 2 - start
        own_end = end - start if k == len(spans) - 1 else (spans[k + 1][0] + end) // 2 - start
        feat.update(word_start=start, own_start=own_start, own_end=own_end)
        features.append(feat)
    return features


# --------------------------------------------------------------------------------------------------------------
# Padding
# --------------------------------------------------------------------------------------------------------------
def _as_list(value: Any) -> list:
    return value.tolist() if hasattr(value, "tolist") else list(value)


def pad_view(
    features: Sequence[Mapping[str, Any]],
    prefix: str = "",
    pad_id: int = 0,
    type_pad_id: int = 0,
    width: int = 0,
    multiple_of: int | None = None,
    left: bool = False,
    word_pad_id: int = -1,
) -> dict[str, list[list[int]]]:
    """Pad one view (`""` sentence, `"ctx_"` context) of a batch of features into model inputs, as plain lists.

    `input_ids`, `attention_mask` (ones where a feature has none) and `token_type_ids` (where the features have
    them) are padded to the longest row, rounded up to `multiple_of`, on the right (or on the `left`, which shifts
    the word positions); `word_index` is padded with `word_pad_id` to the largest word count (at least `width`).
    Keys come without the prefix. A key that some features have and others lack is an error."""
    ids_key = prefix + "input_ids"
    if any(f.get(ids_key) is None for f in features):
        raise ValueError(f"{ids_key!r} missing from some features")
    seqs = [_as_list(f[ids_key]) for f in features]
    length = max(len(s) for s in seqs)
    if multiple_of:
        length = -(-length // multiple_of) * multiple_of
    batch: dict[str, list[list[int]]] = {}
    for name, value in (("input_ids", pad_id), ("attention_mask", 0), ("token_type_ids", type_pad_id)):
        key = prefix + name
        present = [f.get(key) is not None for f in features]
        if not any(present):
            if name != "attention_mask":
                continue
            rows = [[1] * len(s) for s in seqs]
        elif not all(present):
            raise ValueError(f"{key!r} missing from some features")
        else:
            rows = seqs if name == "input_ids" else [_as_list(f[key]) for f in features]
        batch[name] = [[value] * (length - len(r)) + r if left else r + [value] * (length - len(r)) for r in rows]
    word_key = prefix + "word_index"
    if any(word_key in f for f in features):
        words = [_as_list(f[word_key]) for f in features]
        width = max([width] + [len(w) for w in words])
        rows = []
        for w, s in zip(words, seqs):
            shift = length - len(s) if left else 0
            w = [i + shift if i >= 0 else word_pad_id for i in w]
            rows.append(w + [word_pad_id] * (width - len(w)))
        batch["word_index"] = rows
    return batch


# --------------------------------------------------------------------------------------------------------------
# Window decoding
# --------------------------------------------------------------------------------------------------------------
def stitch_windows(
    features_predictions: Iterable[Mapping[str, Any]],
    num_words: Sequence[int] | None = None,
    predictions_key: str = "predictions",
) -> list[list[Any]]:
    """Reassemble per-example word predictions from per-window predictions.

    Each item holds ``predictions`` (one entry per word of the window, at least up to ``own_end``),
    ``example_id``, ``word_start``, ``own_start`` and ``own_end``; the window owns its words
    ``[own_start, own_end)``, i.e. sentence words ``[word_start + own_start, word_start + own_end)``.
    Returns the list of word predictions for examples ``0..N-1`` (N = ``len(num_words)`` or the largest
    ``example_id`` + 1). Raises ValueError unless every word of every example is covered exactly once.
    """
    pieces: dict[int, list[tuple[int, int, list[Any]]]] = {}
    for n, item in enumerate(features_predictions):
        try:
            example_id = int(_scalar(item["example_id"]))
            word_start = int(_scalar(item["word_start"]))
            own_start = int(_scalar(item["own_start"]))
            own_end = int(_scalar(item["own_end"]))
            predictions = _as_list(item[predictions_key])
        except KeyError as err:
            raise ValueError(f"feature {n}: missing {err.args[0]!r}") from None
        if not 0 <= own_start <= own_end <= len(predictions):
            raise ValueError(
                f"feature {n} (example {example_id}): owned slice [{own_start}, {own_end}) outside its "
                f"{len(predictions)} predictions"
            )
        piece = (word_start + own_start, word_start + own_end, predictions[own_start:own_end])
        pieces.setdefault(example_id, []).append(piece)
    if num_words is not None:
        n_examples = len(num_words)
        extra = [i for i in pieces if not 0 <= i < n_examples]
        if extra:
            raise ValueError(f"features for unknown example(s) {sorted(extra)[:10]} (only {n_examples} examples)")
    else:
        if any(i < 0 for i in pieces):
            raise ValueError(f"negative example_id {min(pieces)}")
        n_examples = max(pieces) + 1 if pieces else 0
    results: list[list[Any]] = []
    for example_id in range(n_examples):
        if example_id not in pieces:
            raise ValueError(f"example {example_id}: no window covers it")
        position = 0
        words: list[Any] = []
        for start, end, preds in sorted(pieces[example_id], key=lambda p: (p[0], p[1])):
            if start < position:
                raise ValueError(
                    f"example {example_id}: words {start}..{min(end, position) - 1} covered more than once"
                )
            if start > position:
                raise ValueError(f"example {example_id}: words {position}..{start - 1} not covered by any window")
            words.extend(preds)
            position = end
        if num_words is not None and position != num_words[example_id]:
            if position < num_words[example_id]:
                raise ValueError(
                    f"example {example_id}: words {position}..{num_words[example_id] - 1} not covered by any window"
                )
            raise ValueError(
                f"example {example_id}: windows cover {position} words, the example has {num_words[example_id]}"
            )
        results.append(words)
    return results


def _scalar(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def decode_windows(
    features: Sequence[Mapping[str, Any]],
    decode: Decoder,
    num_words: Sequence[int],
    batch_size: int = 16,
    prefix: str = "",
    pad_id: int = 0,
    type_pad_id: int = 0,
    width: int = 0,
) -> list[list[tuple[int, float | None]]]:
    """Decode one view of windowed features in batches and stitch each sentence back: per sentence (`example_id`
    indexes `num_words`), one `(tag id, score or None)` per word. `decode` gets `pad_view`'s padded batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    items = []
    for b in range(0, len(features), batch_size):
        chunk = features[b : b + batch_size]
        paths, scores = decode(pad_view(chunk, prefix, pad_id, type_pad_id, width=width))
        for r, (feat, path) in enumerate(zip(chunk, paths)):
            path = _as_list(path)
            score = _as_list(scores[r]) if scores is not None else [None] * len(path)
            items.append(
                {
                    "example_id": feat["example_id"],
                    "word_start": feat["word_start"],
                    "own_start": feat["own_start"],
                    "own_end": feat["own_end"],
                    "predictions": list(zip(path, score)),
                }
            )
    return stitch_windows(items, num_words)


# --------------------------------------------------------------------------------------------------------------
# Entities from tags
# --------------------------------------------------------------------------------------------------------------
def group_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entity spans `(type, start, end)` (word indices, end exclusive) of a BIO / BIOES tag sequence.

    Lenient like seqeval: an `I-`/`E-` tag that does not continue an open entity of its type starts a new one
    (this can only happen where windows of a very long input were stitched together).
    """
    spans: list[tuple[str, int, int]] = []
    cur: list | None = None
    for i, tag in enumerate(tags):
        prefix, etype = split_label(tag)
        if prefix == "O":
            if cur:
                spans.append(tuple(cur))
            cur = None
            continue
        if prefix in ("B", "S") or cur is None or cur[0] != etype:
            if cur:
                spans.append(tuple(cur))
            cur = [etype, i, i + 1]
        else:
            cur[2] = i + 1
        if prefix in ("E", "S"):
            spans.append(tuple(cur))
            cur = None
    if cur:
        spans.append(tuple(cur))
    return spans


def entities_from_tags(
    tags: Sequence[str],
    scores: Sequence[float],
    text: str,
    offsets: Sequence[tuple[int, int]],
    ignore: Iterable[str] = (),
    **flags: Any,
) -> list[dict]:
    """Entity dicts ``{"entity_group", "score", "word", "start", "end", "word_span", **flags}`` of one tagged
    input: `start` / `end` are character offsets into `text`, `word_span` the ``[first, last + 1)`` words and
    `score` the mean of the entity's word scores (the CRF marginals of its Viterbi tags). Types in `ignore` are
    left out."""
    ignore = set(ignore)
    found = []
    for etype, a, b in group_entities(tags):
        if etype in ignore:
            continue
        start, end = offsets[a][0], offsets[b - 1][1]
        found.append(
            {
                "entity_group": etype,
                "score": sum(scores[a:b]) / (b - a),
                "word": text[start:end],
                "start": start,
                "end": end,
                "word_span": [a, b],
                **flags,
            }
        )
    return found


def tokens_from_tags(
    tags: Sequence[str],
    scores: Sequence[float],
    text: str,
    offsets: Sequence[tuple[int, int]],
    ignore: Iterable[str] = ("O",),
    **flags: Any,
) -> list[dict]:
    """One dict ``{"entity", "score", "index", "word", "start", "end", **flags}`` per word whose tag is not in
    `ignore` (the pipeline's ``aggregation_strategy="none"``)."""
    ignore = set(ignore)
    return [
        {
            "entity": tag,
            "score": scores[i],
            "index": i,
            "word": text[offsets[i][0] : offsets[i][1]],
            "start": offsets[i][0],
            "end": offsets[i][1],
            **flags,
        }
        for i, tag in enumerate(tags)
        if tag not in ignore
    ]


# --------------------------------------------------------------------------------------------------------------
# The whole prediction
# --------------------------------------------------------------------------------------------------------------
def predict_sentences(
    inputs: str | Sequence[str | Sequence[str]],
    contexts: Any,
    encode: Callable[[list[str], list[str] | None], list[dict]],
    decode: Decoder,
    labels: Sequence[str],
    pad_id: int = 0,
    batch_size: int = 16,
    return_entities: bool | None = None,
    on_view: Callable[[bool], None] | None = None,
    width: int = 0,
) -> list:
    """Tag one text or a list of sentences (texts or word lists), as `CLNERForTokenClassification.predict`
    documents, with any backend: `encode(words, context)` builds a sentence's windowed features
    (`encode_example`), `decode(batch, with_scores)` tags a padded batch (`Decoder`), `labels` names the tag ids,
    `on_view(with_context)` is told which view runs (e.g. to warn when the model was trained otherwise)."""
    single = isinstance(inputs, str)
    if single:
        inputs = [inputs]
    contexts = normalise_contexts(contexts, None if single else len(inputs))
    entities = single if return_entities is None else bool(return_entities)
    parsed = [words_and_offsets(x, split_words if entities else whitespace_words) for x in inputs]
    with_context = contexts is not None and any(c for c in contexts)
    if on_view is not None:
        on_view(with_context)
    todo = [i for i, (words, _, _) in enumerate(parsed) if words]
    features = []
    for j, i in enumerate(todo):
        for feat in encode(parsed[i][0], contexts[i] if contexts is not None else None):
            feat["example_id"] = j
            features.append(feat)
    stitched = decode_windows(
        features,
        lambda batch: decode(batch, entities),
        [len(parsed[i][0]) for i in todo],
        batch_size,
        CONTEXT_PREFIX if with_context else "",
        pad_id,
        width=width,
    )
    used = [False] * len(parsed)
    for feat in features:
        used[todo[feat["example_id"]]] |= with_context and bool(feat["has_context"])
    tags: list[list[str]] = [[] for _ in parsed]
    scores: list[list[float]] = [[] for _ in parsed]
    for j, i in enumerate(todo):
        tags[i] = [labels[t] for t, _ in stitched[j]]
        scores[i] = [float(s) if s is not None else 0.0 for _, s in stitched[j]]
    if not entities:
        return tags
    results = [
        entities_from_tags(tags[i], scores[i], text, offsets, context_used=used[i])
        for i, (_, text, offsets) in enumerate(parsed)
    ]
    return results[0] if single else results
