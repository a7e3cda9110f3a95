"""The quickstart sample (`examples/make_sample.py` and the `examples/data` it makes): reproducible from the script,
small, and well formed (a context for most sentences, naming each of their entities)."""

import importlib.util

from clner.data.preprocess import check_labels
from conftest import REPO_ROOT, WNUT_LABELS

EXAMPLES = REPO_ROOT / "examples"


def test_quickstart_sample_is_reproducible_and_well_formed(raw, labels):
    spec = importlib.util.spec_from_file_location("make_sample", EXAMPLES / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = module.random.Random(module.SEED)
    for split, n in (("train", module.N_TRAIN), ("dev", module.N_DEV)):
        text = module.to_clner([module.make_sentence(rng, split) for _ in range(n)])
        committed = EXAMPLES / "data" / f"{split}.txt"
        assert committed.read_text(encoding="utf-8") == text, f"{committed} differs from make_sample.py output"
        assert committed.stat().st_size < 100_000
    train, dev = raw["train"], raw["validation"]
    assert (train.num_rows, dev.num_rows) == (120, 40)
    for ds in (train, dev):
        rate = sum(1 for c in ds["context"] if c) / ds.num_rows
        assert 0.6 <= rate <= 0.85
        assert max(len(c) for c in ds["context"]) <= 3
    label2id = {label: i for i, label in enumerate(labels)}
    assert set(label2id) == set(WNUT_LABELS)
    check_labels(dev, label2id, "validation")
    # a sentence with context has a snippet naming each of its entities
    n_entities = 0
    for tokens, tags, context in zip(train["tokens"], train["tags"], train["context"]):
        spans, current = [], None
        for token, tag in zip(tokens, tags):
            if tag.startswith("B-"):
                current = [token]
                spans.append(current)
            elif tag.startswith("I-"):
                current.append(token)
        if context:
            for span in spans:
                n_entities += 1
                assert any(" ".join(span) in s for s in context), (span, context)
    assert n_entities > 60
