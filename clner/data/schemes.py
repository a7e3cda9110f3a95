"""Tagging schemes of NER data: which schemes a file may use, the check of every sentence's tags against its scheme
(naming the file, line, sentence and word of the first bad tag, and the flag that fixes it), and the conversions
between the schemes the data is written in and the ones a model trains in (IOB1 / IO -> BIO, BILOU -> BIOES, and
back). Labels are never remapped silently.
"""

from __future__ import annotations

from collections.abc import Sequence

from clner.errors import CLNERFormatError
from inference_clner import PREFIX_UNDERSCORE, parse_tag

# ----------------------------------------------------------------------------------------------------------------

#: Tagging schemes of input files. BIO (IOB2) and BIOES are trained as they are; IOB1 (entities start with I-, B-
#: only splits two adjacent entities of one type) and IO (bare types: ``PER``) are converted to BIO on reading,
#: BILOU (L- last, U- unit) to BIOES, and predictions written to files are converted back.
TAG_SCHEMES = ("BIO", "BIOES", "BILOU", "IOB1", "IO")
_PREFIXES = {"BIO": "BI", "BIOES": "BIES", "BILOU": "BILU", "IOB1": "BI", "IO": ""}


def model_tag_scheme(scheme: str) -> str:
    """The scheme a model trains in for data in ``scheme``: BIOES for BIOES and BILOU, else BIO."""
    scheme = _check_scheme(scheme)
    return "BIOES" if scheme in ("BIOES", "BILOU") else "BIO"


def _check_scheme(scheme: str) -> str:
    name = str(scheme).upper()
    if name == "IOB2":
        name = "BIO"
    if name not in TAG_SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}: expected one of {TAG_SCHEMES} (--tag_scheme)")
    return name


def _tag_form_error(tag: str, scheme: str) -> str | None:
    """Why ``tag`` cannot appear in ``scheme`` at all (None when it can)."""
    if PREFIX_UNDERSCORE.match(tag):
        return (
            f"tag {tag!r} joins its prefix with '_': seqeval and conlleval read {tag!r} as one entity type and "
            f"{tag[0]}-{tag[2:]} as prefix and type; write the tags with '-' (e.g. {tag[0]}-{tag[2:]})"
        )
    prefix, etype = parse_tag(tag)
    if prefix == "O":
        return None
    if scheme == "IO":
        if prefix is None:
            return None
        return (
            f"tag {tag!r} has a {prefix}- prefix, but --tag_scheme IO tags each entity word with its bare type "
            f"(e.g. {etype!r}); for B-/I- tags pass --tag_scheme BIO (or IOB1 if entities start with I-)"
        )
    if prefix is None:
        return (
            f"tag {tag!r} has no B-/I- prefix: under --tag_scheme {scheme} every entity tag is B-<type> or "
            f"I-<type>{' (or E-/S-)' if scheme == 'BIOES' else ''}. If the file tags each entity word with its "
            f"bare type (IO tagging), pass --tag_scheme IO (converted to BIO for training); labels are never "
            "remapped silently"
        )
    if tag[0] not in _PREFIXES[scheme]:  # the raw prefix: parse_tag reads L-/U- as E-/S-
        if tag[0] in "LU":
            return f"tag {tag!r} is a BILOU tag (L- last, U- unit), not {scheme}: pass --tag_scheme BILOU"
        if scheme == "BILOU":
            return f"tag {tag!r} is a BIOES tag, not BILOU: pass --tag_scheme BIOES"
        return f"tag {tag!r} is a BIOES tag, not {scheme}: pass --tag_scheme BIOES"
    return None


def _transition_error(prev: str | None, tag: str | None, scheme: str) -> tuple[int, str] | None:
    """Why ``tag`` cannot follow ``prev`` (None: the sentence start; ``tag`` None: the sentence end) in ``scheme``,
    with the position of the tag at fault: 0 for ``tag``, -1 for ``prev``."""
    p_prefix, p_type = parse_tag(prev) if prev is not None else ("O", "")
    c_prefix, c_type = parse_tag(tag) if tag is not None else ("O", "")
    after = f"follows {prev!r}" if prev is not None else "starts the sentence"
    if scheme == "BIO":
        if c_prefix == "I" and not (p_prefix in ("B", "I") and p_type == c_type):
            return 0, (
                f"{tag!r} {after}: under --tag_scheme BIO an entity starts with B-{c_type}. If the file is "
                "IOB1 (entities start with I-; B- only splits two adjacent entities of one type), pass "
                "--tag_scheme IOB1 (converted to BIO for training and back on writing); to train on the tags "
                "as they are, pass --crf_constraints false"
            )
    elif scheme == "IOB1":
        if c_prefix == "B" and not (p_prefix in ("B", "I") and p_type == c_type):
            return 0, (
                f"{tag!r} {after}: under --tag_scheme IOB1, B- only splits two adjacent entities of one type "
                f"(an entity starts with I-{c_type}). If entities start with B-, the file is BIO: pass "
                "--tag_scheme BIO"
            )
    elif scheme in ("BIOES", "BILOU"):  # parse_tag reads L-/U- as E-/S-
        last, unit = ("L", "U") if scheme == "BILOU" else ("E", "S")
        open_entity = p_prefix in ("B", "I")
        if c_prefix in ("I", "E"):
            if not (open_entity and p_type == c_type):
                return 0, (
                    f"{tag!r} {after}: under --tag_scheme {scheme}, I-/{last}-{c_type} continue an entity "
                    f"opened by B-{c_type}"
                )
        elif open_entity:  # reported at `prev`, the tag that should have closed it
            where = f"before {tag!r}" if tag is not None else "at the end of the sentence"
            return -1, (
                f"entity {prev!r} is not closed {where}: under --tag_scheme {scheme} an entity ends with "
                f"{last}-{p_type} (a one-word entity is {unit}-{p_type})"
            )
    return None


def apply_tag_scheme(
    tag_lists: Sequence[Sequence[str]],
    scheme: str,
    source: str,
    *,
    tokens: Sequence[Sequence[str]] | None = None,
    lines: Sequence[int | None] | None = None,
    words_on_lines: bool = True,
    check_transitions: bool = True,
) -> list[list[str]]:
    """Check every sentence's tags against ``scheme`` and return them in the scheme the model trains in
    (:func:`model_tag_scheme`: IOB1 and IO become BIO).

    Raises :class:`CLNERFormatError` at the first bad tag, naming ``source``, its line (``lines[i]`` is the line of
    sentence i, and word j is on line ``lines[i] + j`` when ``words_on_lines``), the sentence and the word, the
    flag that fixes it, and how many more bad tags the data holds. ``check_transitions=False`` checks only the tags'
    form (for training without CRF constraints).
    """
    scheme = _check_scheme(scheme)
    first: tuple[int, int, str] | None = None
    more = 0
    for i, tags in enumerate(tag_lists):
        prev: str | None = None
        for j, tag in enumerate([*tags, None]):
            problem = (0, _tag_form_error(tag, scheme)) if tag is not None else (0, None)
            if problem[1] is None and check_transitions:
                problem = _transition_error(prev, tag, scheme) or problem
            if problem[1] is not None:
                if first is None:
                    first = (i, j + problem[0], problem[1])
                else:
                    more += 1
            prev = tag
    if first is not None:
        i, j, problem = first
        line = None
        if lines is not None and lines[i] is not None:
            line = lines[i] + (j if words_on_lines else 0)
        word = f" {tokens[i][j]!r}" if tokens is not None and j < len(tokens[i]) else ""
        where = f"sentence {i + 1}" + (f" (line {lines[i]})" if line is not None and words_on_lines else "")
        message = f"{where}, word {j + 1}{word}: {problem}"
        if more:
            message += f" ({more} more such tag(s) in this data)"
        prefixes = {parse_tag(t)[0] for tags in tag_lists for t in tags}
        if scheme == "BIOES" and not prefixes & {"E", "S"} and prefixes & {"B", "I"}:
            message += "; the data has no E-/S- tags at all: it looks like BIO (--tag_scheme BIO)"
        raise CLNERFormatError(source, line, message)
    if scheme == "IOB1":
        return [iob1_to_bio(tags) for tags in tag_lists]
    if scheme == "IO":
        return [io_to_bio(tags) for tags in tag_lists]
    if scheme == "BILOU":
        return [bilou_to_bioes(tags) for tags in tag_lists]
    return [list(tags) for tags in tag_lists]


def _swap_prefixes(tags: Sequence[str], swap: dict[str, str]) -> list[str]:
    return [swap.get(t[0], t[0]) + t[1:] if t != "O" and t[1:2] in ("-", "_") else t for t in tags]


def bilou_to_bioes(tags: Sequence[str]) -> list[str]:
    """BILOU -> BIOES: ``L-x`` is ``E-x``, ``U-x`` is ``S-x``."""
    return _swap_prefixes(tags, {"L": "E", "U": "S"})


def bioes_to_bilou(tags: Sequence[str]) -> list[str]:
    """BIOES -> BILOU: ``E-x`` is ``L-x``, ``S-x`` is ``U-x``."""
    return _swap_prefixes(tags, {"E": "L", "S": "U"})


def iob1_to_bio(tags: Sequence[str]) -> list[str]:
    """IOB1 -> BIO: an ``I-x`` that does not continue an ``x`` entity starts one (``B-x``)."""
    out, prev = [], ("O", "")
    for tag in tags:
        prefix, etype = parse_tag(tag)
        if prefix == "I" and not (prev[0] in ("B", "I") and prev[1] == etype):
            tag = "B" + tag[1:]
        out.append(tag)
        prev = (prefix, etype)
    return out


def bio_to_iob1(tags: Sequence[str]) -> list[str]:
    """BIO -> IOB1: an entity starts with ``I-x``, except right after another ``x`` entity (``B-x``)."""
    out, prev = [], ("O", "")
    for tag in tags:
        prefix, etype = parse_tag(tag)
        if prefix == "B" and not (prev[0] in ("B", "I") and prev[1] == etype):
            tag = "I" + tag[1:]
        out.append(tag)
        prev = (prefix, etype)
    return out


def io_to_bio(tags: Sequence[str]) -> list[str]:
    """IO (bare types) -> BIO: a run of one type is one entity."""
    out, prev = [], "O"
    for tag in tags:
        out.append("O" if tag == "O" else ("I-" if tag == prev else "B-") + tag)
        prev = tag
    return out


def bio_to_io(tags: Sequence[str]) -> list[str]:
    """BIO -> IO: the bare type of every entity word."""
    return ["O" if parse_tag(tag)[0] in ("O", None) else tag[2:] for tag in tags]


def tags_to_scheme(tags: Sequence[str], scheme: str | None) -> list[str]:
    """Tags of the model's scheme written back in the data's ``scheme`` (IOB1, IO and BILOU converted; others
    unchanged)."""
    scheme = _check_scheme(scheme) if scheme else None
    if scheme == "BILOU":
        return bioes_to_bilou(tags)
    if scheme == "IOB1":
        return bio_to_iob1(tags)
    if scheme == "IO":
        return bio_to_io(tags)
    return list(tags)
