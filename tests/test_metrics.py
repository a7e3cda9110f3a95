"""The metrics of a run (`clner.metrics`): its flat `eval_` / `predict_` keys read back per view, overall and per
entity type."""

import random

import pytest

from clner.metrics import parse_view_metrics, per_type_metric, seqeval_metrics, surface_form_metrics
from conftest import CARD_METRICS


def test_parse_view_metrics():
    parsed = parse_view_metrics(CARD_METRICS)
    assert parsed["sentence"]["overall"] == {"precision": 0.5512, "recall": 0.4123, "f1": 0.4718, "accuracy": 0.95}
    assert parsed["context"]["types"]["person"] == {"f1": 0.71, "precision": 0.8, "recall": 0.64, "number": 470}
    assert parsed["context"]["types"]["creative-work"] == {"f1": 0.25}
    assert parse_view_metrics(CARD_METRICS, prefix="predict") == {"context": {"overall": {"f1": 0.1}, "types": {}}}
    assert parse_view_metrics({"eval_sentence_f1": float("nan"), "eval_loss": 1.0}) == {}


# ------------------------------------------------------------------------------------ surface-form scores (WNUT-17)
# The official scorer of WNUT-17, wnuteval.py (noisy-text.github.io/2017/files/wnuteval.py), computes them in
# `calc_results(gold, guess, surface_form=True)`: the correct entities are the guessed ones equal to a gold one (words,
# sentence, first and last word, type); then the gold, guessed and correct entities are each reduced to their set of
# (words, type), and precision = |correct| / |guessed|, recall = |correct| / |gold|, each 0.0 on a zero denominator.
def test_surface_forms_count_each_distinct_string_once():
    """A string found once counts as found, however often it is gold: entity recall 1/3, surface recall 1."""
    tokens = [["I", "love", "London"], ["London", "calling"], ["back", "to", "London"]]
    gold = [["O", "O", "B-location"], ["B-location", "O"], ["O", "O", "B-location"]]
    pred = [["O", "O", "B-location"], ["O", "O"], ["O", "O", "O"]]
    assert surface_form_metrics(tokens, gold, pred) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert seqeval_metrics(gold, pred)["recall"] == pytest.approx(1 / 3)
    # a wrong guess made three times is one wrong surface form: P = 1/2
    tokens = [["Hey", "love", "London"], ["Hey", "London"], ["Hey", "to", "London"]]
    gold = [["O", "O", "B-location"], ["O", "B-location"], ["O", "O", "B-location"]]
    pred = [["B-person", "O", "B-location"], ["B-person", "O"], ["B-person", "O", "O"]]
    assert surface_form_metrics(tokens, gold, pred) == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3})


def test_surface_forms_are_typed_and_case_sensitive():
    """The same string with two types is two surface forms; case variants are distinct strings (no lowercasing)."""
    tokens = [["Apple", "sues", "Samsung"], ["my", "Apple", "broke"]]
    gold = [["B-corporation", "O", "B-corporation"], ["O", "B-product", "O"]]
    pred = [["B-corporation", "O", "O"], ["O", "B-corporation", "O"]]  # Apple as a corporation at both places
    # gold {(Apple, corporation), (Samsung, corporation), (Apple, product)}; guessed {(Apple, corporation)}: correct
    assert surface_form_metrics(tokens, gold, pred) == pytest.approx({"precision": 1.0, "recall": 1 / 3, "f1": 0.5})
    tokens = [["London", "is", "big"], ["london", "is", "wet"], ["LONDON", "!"]]
    gold = [["B-location", "O", "O"], ["B-location", "O", "O"], ["B-location", "O"]]
    pred = [["B-location", "O", "O"], ["O", "O", "O"], ["O", "O"]]
    assert surface_form_metrics(tokens, gold, pred) == pytest.approx({"precision": 1.0, "recall": 1 / 3, "f1": 0.5})


def test_a_surface_form_is_correct_only_where_an_entity_is():
    """A string guessed only where it is not gold is not correct, though it is gold elsewhere (no intersection of the
    string sets); the words of an entity are compared as words, boundaries included."""
    tokens = [["Paris", "Hilton", "in", "Paris"], ["Paris", "again"]]
    gold = [["B-person", "I-person", "O", "B-location"], ["O", "O"]]
    pred = [["B-location", "O", "O", "O"], ["B-location", "O"]]  # (Paris, location) guessed, never where it is gold
    assert surface_form_metrics(tokens, gold, pred) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    tokens = [["New York", "rocks"], ["New", "York", "rocks"]]
    gold = [["B-location", "O"], ["B-location", "I-location", "O"]]
    pred = [["B-location", "O"], ["B-location", "O", "O"]]  # ("New York",) != ("New", "York"); ("New",) is wrong
    assert surface_form_metrics(tokens, gold, pred) == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5})


def test_surface_forms_without_gold_or_without_guesses_score_zero():
    tokens = [["Justin", "Bieber", "sings"]]
    some, none = [["B-person", "I-person", "O"]], [["O", "O", "O"]]
    zero = {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert surface_form_metrics(tokens, none, some) == zero  # no gold: recall 0, precision 0 (nothing correct)
    assert surface_form_metrics(tokens, some, none) == zero  # no guess: precision 0 (not undefined)
    assert surface_form_metrics(tokens, none, none) == zero
    assert surface_form_metrics([], [], []) == zero


def test_surface_forms_read_bio_and_bioes_alike():
    """BIOES tags give the entities of the same BIO tags; an I- that continues no entity of its type starts one
    (IOB1, and how wnuteval.py and seqeval read a stray I-)."""
    tokens = [["Justin", "Bieber", "in", "Paris", "with", "Selena", "Gomez", "Inc"]]
    bio = [["B-person", "I-person", "O", "B-location", "O", "B-person", "I-person", "I-corporation"]]
    bioes = [["B-person", "E-person", "O", "S-location", "O", "B-person", "E-person", "S-corporation"]]
    pred_bio = [["B-person", "I-person", "O", "B-person", "O", "B-person", "O", "O"]]
    pred_bioes = [["B-person", "E-person", "O", "S-person", "O", "S-person", "O", "O"]]
    expected = {"precision": 1 / 3, "recall": 1 / 4, "f1": 2 / 7}
    assert surface_form_metrics(tokens, bio, pred_bio) == pytest.approx(expected)
    assert surface_form_metrics(tokens, bioes, pred_bioes) == pytest.approx(expected)
    iob1 = [["I-person", "I-person", "O", "I-location", "O", "I-person", "I-person", "I-corporation"]]
    assert surface_form_metrics(tokens, iob1, bio) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_surface_forms_refuse_misaligned_input():
    with pytest.raises(ValueError, match="as many sentences"):
        surface_form_metrics([["a"]], [["O"]], [])
    with pytest.raises(ValueError, match="sentence 0: 2 words, 1 gold tags and 1 predicted tags"):
        surface_form_metrics([["a", "b"]], [["O"]], [["O"]])


def official_surface_scores(tokens, gold, pred):
    """WNUT-17's surface-form P/R/F1 by brute force over every span, BIO tags as wnuteval.py reads them: a span
    [a, b] of type t is an entity when its first tag is B-t or I-t and opens an entity (B-t, the first word, or a
    previous tag that is not of type t), every later tag of the span is I-t and the next tag (if any) is not."""

    def entities(tags):
        found = set()
        for a in range(len(tags)):
            for b in range(a, len(tags)):
                t = tags[a][2:]
                opens = tags[a] == f"B-{t}" or (tags[a] == f"I-{t}" and (a == 0 or tags[a - 1][2:] != t))
                inside = all(tags[i] == f"I-{t}" for i in range(a + 1, b + 1))
                closed = b + 1 == len(tags) or tags[b + 1] != f"I-{t}"
                if tags[a] != "O" and opens and inside and closed:
                    found.add((t, a, b))
        return found

    forms = {"gold": set(), "guess": set(), "correct": set()}
    for words, g, p in zip(tokens, gold, pred):
        eg, ep = entities(g), entities(p)
        for name, ents in (("gold", eg), ("guess", ep), ("correct", eg & ep)):
            forms[name] |= {(tuple(words[a : b + 1]), t) for t, a, b in ents}
    n_correct = len(forms["correct"])
    p = n_correct / len(forms["guess"]) if forms["guess"] else 0.0
    r = n_correct / len(forms["gold"]) if forms["gold"] else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def random_tags(rng, n, scheme):
    """`n` tags: any BIO tags (stray I- included) or valid BIOES tags of random spans, with their BIO tags."""
    types = ["person", "location", "product"][: rng.randint(1, 3)]
    if scheme == "BIO":
        tags = [rng.choice(["O", "O"] + [f"{p}-{t}" for p in "BI" for t in types]) for _ in range(n)]
        return tags, tags
    bio, bioes, i = [], [], 0
    while i < n:
        length = rng.randint(0, min(3, n - i))
        if length == 0:
            bio.append("O")
            bioes.append("O")
            i += 1
            continue
        t = rng.choice(types)
        bio += [f"B-{t}"] + [f"I-{t}"] * (length - 1)
        bioes += [f"S-{t}"] if length == 1 else [f"B-{t}"] + [f"I-{t}"] * (length - 2) + [f"E-{t}"]
        i += length
    return bioes, bio


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_surface_forms_match_the_brute_force_definition_on_random_input(scheme):
    """Random sentences over a small vocabulary (so surface forms repeat, in several cases and types)."""
    rng = random.Random(17)
    vocabulary = ["London", "london", "Apple", "apple", "x", "New", "York"]
    for _ in range(400):
        tokens, gold, pred, gold_bio, pred_bio = [], [], [], [], []
        for _ in range(rng.randint(0, 5)):
            n = rng.randint(0, 8)
            tokens.append([rng.choice(vocabulary[: rng.randint(1, len(vocabulary))]) for _ in range(n)])
            for tags, as_bio in ((gold, gold_bio), (pred, pred_bio)):
                written, bio = random_tags(rng, n, scheme)
                tags.append(written)
                as_bio.append(bio)
            if rng.random() < 0.3:  # often right, as a model is
                pred[-1], pred_bio[-1] = gold[-1], gold_bio[-1]
        expected = official_surface_scores(tokens, gold_bio, pred_bio)
        assert surface_form_metrics(tokens, gold, pred) == pytest.approx(expected), (tokens, gold, pred)


def test_surface_form_keys_are_a_views_scores():
    """``eval_{view}_surface_{precision,recall,f1}`` are the view's surface-form scores, not an entity type's; an entity
    type named ``surface`` (it has a ``_number``) stays a type."""
    metrics = {"eval_sentence_f1": 0.5, "eval_sentence_surface_f1": 0.4, "eval_context_surface_recall": 0.3}
    parsed = parse_view_metrics(metrics)
    assert parsed == {
        "sentence": {"overall": {"f1": 0.5, "surface_f1": 0.4}, "types": {}},
        "context": {"overall": {"surface_recall": 0.3}, "types": {}},
    }
    assert not per_type_metric("eval_sentence_surface_f1") and per_type_metric("eval_sentence_person_f1")
    typed = {"eval_context_surface_f1": 0.2, "eval_context_surface_number": 7}
    assert parse_view_metrics(typed)["context"] == {"overall": {}, "types": {"surface": {"f1": 0.2, "number": 7}}}


def test_best_evaluation_reads_the_kept_checkpoints_step_and_epoch():
    from clner.metrics import best_evaluation

    history = [{"step": 10, "epoch": 1.0, "eval_loss": 0.5}, {"step": 20, "epoch": 2.0, "loss": 0.1},
               {"step": 20, "epoch": 2.0, "eval_loss": 0.4}]  # fmt: skip
    assert best_evaluation(history, "out/checkpoint-20") == (20, 2.0)
    assert best_evaluation(history, "out/checkpoint-30") == (30, None)
    assert best_evaluation(history, None) is None and best_evaluation(history, "out/model") is None
