"""The Hub model card: YAML parsed back with huggingface_hub, body checked against patterns, widget examples."""

import re
from types import SimpleNamespace

import pytest
import torch
import yaml
from conftest import tiny_bert_config
from huggingface_hub import ModelCard

from model_card_clner import (
    CARD_TAGS,
    REVISION_PLACEHOLDER,
    build_model_card,
    choose_widget_examples,
    parse_view_metrics,
    publish_from_run,
)
from modeling_clner import CLNERConfig, CLNERForTokenClassification
from pipeline_clner import clner_pipeline

LABELS = ["O"] + [f"{p}-{t}" for t in ("corporation", "creative-work", "group", "location", "person", "product")
                  for p in ("B", "I")]
METRICS = {
    "eval_loss": 1.23, "eval_sentence_precision": 0.5512, "eval_sentence_recall": 0.4123, "eval_sentence_f1": 0.4718,
    "eval_sentence_accuracy": 0.95, "eval_context_precision": 0.6034, "eval_context_recall": 0.4511,
    "eval_context_f1": 0.5162, "eval_context_person_f1": 0.71, "eval_context_person_precision": 0.8,
    "eval_context_person_recall": 0.64, "eval_context_person_number": 470, "eval_sentence_person_f1": 0.66,
    "eval_sentence_creative-work_f1": 0.2, "eval_context_creative-work_f1": 0.25, "eval_runtime": 3.2,
    "predict_context_f1": 0.1,
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(**kwargs):
    torch.manual_seed(0)
    config = CLNERConfig(encoder=tiny_bert_config().to_dict(), id2label=dict(enumerate(LABELS)), **kwargs)
    model = CLNERForTokenClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0, 1.0)
    return model


def full_card(widget=None, **kwargs):
    config = tiny_model(cl_loss="kl", cl_temperature=1.0, train_views="both", nll_weight=1.0, nll_ext_weight=0.5,
                        cl_weight=0.5).config
    return build_model_card(
        config, METRICS, base_model="xlm-roberta-large", dataset_name="WNUT-17", dataset_id="wnut_17",
        hyperparameters={"learning_rate": 5e-6, "num_train_epochs": 10, "seed": 42},
        context_source="Google search results re-ranked with BERTScore (the contexts released with the paper).",
        widget_examples=widget, repo_id="org/clner-wnut17", **kwargs)


def test_parse_view_metrics():
    parsed = parse_view_metrics(METRICS)
    assert parsed["sentence"]["overall"] == {"precision": 0.5512, "recall": 0.4123, "f1": 0.4718, "accuracy": 0.95}
    assert parsed["context"]["types"]["person"] == {"f1": 0.71, "precision": 0.8, "recall": 0.64, "number": 470}
    assert parsed["context"]["types"]["creative-work"] == {"f1": 0.25}
    assert parse_view_metrics(METRICS, prefix="predict") == {"context": {"overall": {"f1": 0.1}, "types": {}}}
    assert parse_view_metrics({"eval_sentence_f1": float("nan"), "eval_loss": 1.0}) == {}


def test_card_yaml_round_trip(tmp_path):
    widget = [{"text": "Justin Bieber lands in Paris", "example_title": "location, person",
               "output": [{"entity_group": "person", "word": "Justin Bieber", "start": 0, "end": 13, "score": 0.98}]}]
    full_card(widget).save(tmp_path / "README.md")
    card = ModelCard.load(tmp_path / "README.md")
    data = card.data
    assert data.language == ["en"] and data.license == "apache-2.0" and data.library_name == "transformers"
    assert data.tags == CARD_TAGS == ["clner", "ner", "crf", "token-classification"]
    assert data.datasets == ["wnut_17"] and data.metrics == ["precision", "recall", "f1"]
    assert data.base_model == "xlm-roberta-large" and data.pipeline_tag == "token-classification"
    assert data.widget == widget
    # model-index: P/R/F1 of both views, read back as EvalResults
    assert data.model_name == "clner-wnut17"
    got = {(r.metric_config, r.metric_type): r.metric_value for r in data.eval_results}
    assert got == {("sentence", "precision"): 0.5512, ("sentence", "recall"): 0.4123, ("sentence", "f1"): 0.4718,
                   ("context", "precision"): 0.6034, ("context", "recall"): 0.4511, ("context", "f1"): 0.5162}
    for r in data.eval_results:
        assert (r.task_type, r.dataset_type, r.dataset_name, r.dataset_split) == (
            "token-classification", "wnut_17", "WNUT-17", "validation")
        assert r.metric_name.endswith("(with context)" if r.metric_config == "context" else "(sentence only)")
    raw = yaml.safe_load((tmp_path / "README.md").read_text(encoding="utf-8").split("---")[1])
    (entry,) = raw["model-index"]
    (result,) = entry["results"]
    assert len(result["metrics"]) == 6 and result["task"]["type"] == "token-classification"


def test_card_body_patterns():
    text = full_card().text
    assert re.search(r"^# clner-wnut17$", text, re.M)
    assert re.search(r"trained with \*\*CLNER\*\* \(Wang et al\., ACL 2021\).*on WNUT-17", text)
    # results table for both views, percentages
    assert re.search(r"^\| view \| precision \| recall \| F1 \|$", text, re.M)
    assert re.search(r"^\| with context \| 60\.34 \| 45\.11 \| 51\.62 \|$", text, re.M)
    assert re.search(r"^\| sentence only \| 55\.12 \| 41\.23 \| 47\.18 \|$", text, re.M)
    # per entity type, both views
    assert re.search(r"^\| type \| with context precision .* sentence only F1 \|$", text, re.M)
    assert re.search(r"^\| person \| 80\.00 \| 64\.00 \| 71\.00 \| – \| – \| 66\.00 \|$", text, re.M)
    assert re.search(r"^\| creative-work \| – \| – \| 25\.00 \| – \| – \| 20\.00 \|$", text, re.M)
    # usage: remote code with a pinned revision, the pipeline and the model
    assert re.search(r'pipeline\(model="org/clner-wnut17", revision="<commit-sha>", trust_remote_code=True\)', text)
    assert re.search(r'AutoModelForTokenClassification\.from_pretrained\("org/clner-wnut17", revision="<commit-sha>",'
                     r'\s+trust_remote_code=True, use_safetensors=True\)', text)
    assert re.search(r"context=\[", text) and re.search(r"retrieve=True", text)
    # training hyper-parameters and CL settings
    assert re.search(r"^\| learning_rate \| 5e-06 \|$", text, re.M) and re.search(r"^\| seed \| 42 \|$", text, re.M)
    assert re.search(r"^\| cooperative-learning loss \| kl \|$", text, re.M)
    assert re.search(r"^\| CL-KL temperature \| 1\.0 \|$", text, re.M)
    assert re.search(r"^\| loss weights L_NLL / L_NLL-EXT / L_CL \| 1 / 0\.5 / 0\.5 \|$", text, re.M)
    assert re.search(r"^\| views trained \| both \|$", text, re.M)
    # contexts and citation
    assert re.search(r"## Contexts\s+Google search results re-ranked with BERTScore", text)
    assert re.search(r"Xinyu Wang, Yong Jiang, Nguyen Bach, Tao Wang, Zhongqiang Huang, Fei Huang, Kewei Tu\. "
                     r"\*Improving Named Entity Recognition by External Context Retrieving and Cooperative "
                     r"Learning\*\. ACL-IJCNLP 2021", text)
    assert re.search(r"@inproceedings\{wang-etal-2021-improving,.*2021\.acl-long\.142", text, re.S)
    assert REVISION_PLACEHOLDER in text
    assert 'revision="abc123"' in full_card(revision="abc123").text


def test_card_without_results_or_hub_base_model(tmp_path):
    card = build_model_card(tiny_model().config, {}, base_model=str(tmp_path))  # a local path is not a Hub id
    data = card.data
    assert data.base_model is None and data.eval_results is None and data.datasets is None
    assert "No evaluation results were recorded" in card.text and f"(`{tmp_path}`)" in card.text
    card.save(tmp_path / "README.md")
    assert ModelCard.load(tmp_path / "README.md").data.pipeline_tag == "token-classification"


def test_choose_widget_examples_covers_entity_types(minilm_tokenizer):
    model = tiny_model()
    rows = [
        {"tokens": "I love it so much today".split(), "tags": ["O"] * 6, "context": []},
        {"tokens": "John Smith lives in New York".split(),
         "tags": ["B-person", "I-person", "O", "O", "B-location", "I-location"], "context": ["ctx"]},
        {"tokens": "Mary met John in the park".split(), "tags": ["B-person", "O", "B-person", "O", "O", "O"],
         "context": []},
        {"tokens": "Apple sold the new iPhone in Paris".split(),
         "tags": ["B-corporation", "O", "O", "O", "B-product", "O", "B-location"], "context": []},
        {"tokens": "Too short".split(), "tags": ["B-group", "O"], "context": []},
        {"tokens": "We watched Star Wars with the Beatles fans".split(),
         "tags": ["O", "O", "B-creative-work", "I-creative-work", "O", "O", "B-group", "O"], "context": []},
    ]
    examples = choose_widget_examples(model, minilm_tokenizer, rows, k=3)
    assert [e["example_title"] for e in examples] == ["corporation, location, product", "creative-work, group",
                                                      "location, person"]
    pipe = clner_pipeline(model, minilm_tokenizer)
    for example in examples:
        expected = pipe(example["text"])
        assert example["output"] == [{"entity_group": e["entity_group"], "word": e["word"], "start": e["start"],
                                      "end": e["end"], "score": round(e["score"], 4)} for e in expected]
        for entity in example["output"]:
            assert example["text"][entity["start"]:entity["end"]] == entity["word"]
    # more examples asked than rows with entities that fit: the short one, then entity-less rows
    titles = [e["example_title"] for e in choose_widget_examples(model, minilm_tokenizer, rows, k=6)]
    assert titles == ["corporation, location, product", "creative-work, group", "location, person", "person",
                      "group", "no entities"]


def test_publish_from_run_writes_the_card(tmp_path, minilm_tokenizer):
    datasets = pytest.importorskip("datasets")
    model = tiny_model()
    validation = datasets.Dataset.from_list([
        {"tokens": "John Smith lives in New York".split(),
         "tags": ["B-person", "I-person", "O", "O", "B-location", "I-location"], "context": []}])
    args = SimpleNamespace(output_dir=str(tmp_path / "out"), push_to_hub=False, hub_model_id=None, learning_rate=5e-5,
                           num_train_epochs=3.0, seed=42, per_device_train_batch_size=8)
    data_args = SimpleNamespace(dataset_name=None, train_file=str(tmp_path / "wnut17" / "train.conll"),
                                validation_file=None, test_file=None, context_source="web search",
                                dataset_config_name=None)
    result = publish_from_run(None, model, minilm_tokenizer, METRICS, SimpleNamespace(model_name_or_path=None),
                              data_args, SimpleNamespace(cl_loss="kl"), args, {"validation": validation})
    assert result is None
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.widget[0]["text"] == "John Smith lives in New York"
    assert "| cl.cl_loss | kl |" in card.text and "wnut17" in card.text and "web search" in card.text
