"""The Hub model card (`clner.hub.model_card`): YAML parsed back with huggingface_hub, body checked against patterns,
the recipe and splits it describes, widget examples, escaping of every data-derived text, and the template."""

import ast
import json
import re

import pytest
import yaml
from huggingface_hub import ModelCard

from clner.hub.model_card import (
    CARD_TAGS,
    CITATION,
    MODEL_CARD_TEMPLATE_PATH,
    REVISION_PLACEHOLDER,
    WIDGET_DIFFERS,
    CLNERModelCard,
    CLNERModelCardData,
    build_model_card,
    choose_widget_examples,
    epoch_results,
    training_set_statistics,
)
from clner.hub.plots import CURVES_FILE
from conftest import (
    CARD_METRICS,
    LOG_HISTORY,
    RECIPES,
    TRAIN_ROWS,
    TWO_SPLITS,
    WNUT_LABELS,
    oracle_model,
    tiny_bert_config,
    tiny_clner,
)
from modeling_clner import CLNERConfig
from pipeline_clner import clner_pipeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(**kwargs):
    """A decisive tiny model with WNUT-17's labels; `kwargs` are `CLNERConfig` fields."""
    return tiny_clner(WNUT_LABELS, decisive=True, **kwargs)


def full_card(widget=None, recipe="CL-KL", **kwargs):
    config = tiny_model(**RECIPES[recipe]).config
    kwargs = {"language": "en", "license": "apache-2.0", **kwargs}
    return build_model_card(
        config,
        CARD_METRICS,
        base_model="xlm-roberta-large",
        dataset_name="WNUT-17",
        dataset_id="wnut_17",
        hyperparameters={"learning_rate": 5e-6, "num_train_epochs": 10, "seed": 42},
        context_source="Google search results re-ranked with BERTScore (the contexts released with the paper).",
        widget_examples=widget,
        repo_id="org/clner-wnut17",
        training_stats=training_set_statistics(TRAIN_ROWS),
        epochs=epoch_results(LOG_HISTORY),
        versions={"Python": "3.11.7", "Transformers": "5.23.0"},
        **kwargs,
    )


def test_card_yaml_round_trip(tmp_path):
    widget = [
        {
            "text": "Justin Bieber lands in Paris",
            "example_title": "location, person",
            "output": [{"entity_group": "person", "word": "Justin Bieber", "start": 0, "end": 13, "score": 0.98}],
        }
    ]
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
    assert got == {
        ("sentence", "precision"): 0.5512,
        ("sentence", "recall"): 0.4123,
        ("sentence", "f1"): 0.4718,
        ("context", "precision"): 0.6034,
        ("context", "recall"): 0.4511,
        ("context", "f1"): 0.5162,
    }
    for r in data.eval_results:
        assert (r.task_type, r.dataset_type, r.dataset_name, r.dataset_split) == (
            "token-classification",
            "wnut_17",
            "WNUT-17",
            "validation",
        )
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
    assert re.search(
        r'pipeline\("ner", model="org/clner-wnut17", revision="<commit-sha>", trust_remote_code=True\)', text
    )
    assert re.search(r'model\.predict\("Justin Bieber lands in Paris", tokenizer\)', text)
    assert re.search(
        r'AutoModelForTokenClassification\.from_pretrained\("org/clner-wnut17", revision="<commit-sha>",'
        r"\s+trust_remote_code=True, use_safetensors=True\)",
        text,
    )
    assert re.search(r"context=\[", text) and re.search(r"retrieve=True", text)
    # training hyper-parameters and CL settings
    assert re.search(r"^\| learning_rate \| 5e-06 \|$", text, re.M) and re.search(r"^\| seed \| 42 \|$", text, re.M)
    assert re.search(r"^\| cooperative-learning loss \| kl \|$", text, re.M)
    assert re.search(r"^\| CL-KL temperature \| 1\.0 \|$", text, re.M)
    assert re.search(r"^\| loss weights L_NLL / L_NLL-EXT / L_CL \| 1 / 0\.5 / 0\.5 \|$", text, re.M)
    assert re.search(r"^\| views trained \| both \|$", text, re.M)
    assert re.search(r"trained on two views of each sentence.*plus the cooperative-learning loss CL-KL", text)
    # the training set, the run's evaluations during training (not the one after it), the framework versions
    assert re.search(r"^\| sentences \| 3 \|$", text, re.M)
    assert re.search(r"^\| with a context \| 1 \(33\.3%\) \|$", text, re.M)
    assert re.search(r"^\| words per sentence \(min / median / max\) \| 1 / 3 / 6 \|$", text, re.M)
    assert "| entity type | entities |\n| --- | --- |\n| location | 1 |\n| person | 3 |\n" in text
    row = r"^\| (\d+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$"
    assert re.findall(row, text, re.M) == [
        ("1", "10", "9.25", "8", "41.00", "45.00", "43.00"),
        ("2", "20", "4.125", "6.5", "50.00", "55.00", "52.50"),
    ]
    assert re.search(r"^\| Transformers \| 5\.23\.0 \|$", text, re.M)
    # contexts and citation
    assert re.search(r"## Contexts\s+Google search results re-ranked with BERTScore", text)
    assert re.search(
        r"Xinyu Wang, Yong Jiang, Nguyen Bach, Tao Wang, Zhongqiang Huang, Fei Huang, Kewei Tu\. "
        r"\*Improving Named Entity Recognition by External Context Retrieving and Cooperative "
        r"Learning\*\. ACL-IJCNLP 2021",
        text,
    )
    assert re.search(r"@inproceedings\{wang-etal-2021-improving,.*2021\.acl-long\.142", text, re.S)
    assert REVISION_PLACEHOLDER in text
    assert 'revision="abc123"' in full_card(revision="abc123").text


@pytest.mark.parametrize("recipe", ["no CL", "sentence", "context"])
def test_card_describes_the_recipe_that_ran(recipe):
    """A baseline or ablation is never described as trained with a CL loss, nor a sentence-only one with contexts."""
    text = full_card(recipe=recipe).text
    intro = text.split("## Results")[0]
    assert "cooperative-learning loss CL-" not in intro and "no cooperative-learning loss" in intro
    assert not re.search(r"^\| (CL-KL temperature \||cooperative-learning loss \| (kl|l2))", text, re.M)
    if recipe == "no CL":
        assert "trained on two views of each sentence" in intro and "the ablation of CLNER" in intro
        assert re.search(r"^\| loss weights L_NLL / L_NLL-EXT / L_CL \| 1 / 0\.5 / 0 \|$", text, re.M)
    elif recipe == "sentence":
        assert "without external contexts (the paper's *w/o context* baseline)" in intro
        assert "retrieved context" not in intro and re.search(r"^\| loss \| L_NLL \(sentence view\) \|$", text, re.M)
        assert re.search(r"^\| trained with contexts \| False \|$", text, re.M)
        assert re.search(r"## Contexts\s+This model was trained without external contexts", text)
        assert "Google search results" not in text
    else:
        assert "the paper's *w/ context* baseline" in intro
        assert re.search(r"^\| loss \| L_NLL-EXT \(context view\) \|$", text, re.M)


def test_card_without_results_or_hub_base_model(tmp_path):
    card = build_model_card(tiny_model().config, {}, base_model=str(tmp_path))  # a local path is not a Hub id
    data = card.data
    assert data.base_model is None and data.eval_results is None and data.datasets is None
    assert data.language is None and data.license is None  # nothing is claimed that was not given
    assert "No evaluation results were recorded" in card.text and f"(`{tmp_path}`)" in card.text
    assert "records no training recipe" in card.text and "trained with **CLNER**" not in card.text
    card.save(tmp_path / "README.md")
    assert ModelCard.load(tmp_path / "README.md").data.pipeline_tag == "token-classification"


#: rows to pick widget examples from: ones the oracle model tags right or wrong, a short one, entity-less ones
WIDGET_ROWS = [
    {"tokens": ["I", "love", "it", "so", "much", "today"], "tags": ["O"] * 6, "context": []},
    {
        "tokens": ["Mary", "met", "John", "in", "the", "park"],
        "tags": ["B-person", "O", "B-person", "O", "O", "O"],
        "context": [],
    },
    {
        "tokens": ["John", "Smith", "flew", "to", "Paris", "today"],
        "tags": ["B-person", "I-person", "O", "O", "B-location", "O"],
        "context": ["ctx"],
    },
    {
        "tokens": ["Apple", "sold", "the", "new", "phone", "in", "Paris"],
        "tags": ["B-corporation", "O", "O", "O", "O", "O", "B-location"],
        "context": [],
    },
    {"tokens": ["Too", "short"], "tags": ["B-group", "O"], "context": []},
    {
        "tokens": ["we", "all", "went", "to", "Paris", "again"],
        "tags": ["O", "O", "O", "O", "B-location", "O"],
        "context": [],
    },
]


def test_choose_widget_examples_prefers_rows_the_model_gets_right(minilm_tokenizer):
    """Rows the model tags exactly right come first (covering types greedily); a wrong one is used only when too few
    are right, and its title says that the output is the model's, not the gold answer."""
    model = oracle_model(minilm_tokenizer)  # john: B-person, smith: I-person, paris: B-location, else O
    rows = WIDGET_ROWS
    examples = choose_widget_examples(model, minilm_tokenizer, rows, k=3)
    assert [e["example_title"] for e in examples] == [
        "location, person",
        "location",
        f"corporation, location {WIDGET_DIFFERS}",
    ]
    pipe = clner_pipeline(model, minilm_tokenizer)
    for example in examples:
        expected = pipe(example["text"])
        assert example["output"] == [
            {
                "entity_group": e["entity_group"],
                "word": e["word"],
                "start": e["start"],
                "end": e["end"],
                "score": round(e["score"], 4),
            }
            for e in expected
        ]
        for entity in example["output"]:
            assert example["text"][entity["start"] : entity["end"]] == entity["word"]


def test_choose_widget_examples_fills_up_with_wrong_short_then_entity_less_rows(minilm_tokenizer):
    """More examples asked than rows with entities that fit: the wrong ones, the short one, then entity-less rows;
    the card says how many match the gold entities."""
    model = oracle_model(minilm_tokenizer)
    rows = WIDGET_ROWS
    examples = choose_widget_examples(model, minilm_tokenizer, rows, k=3)
    titles = [e["example_title"] for e in choose_widget_examples(model, minilm_tokenizer, rows, k=6)]
    assert titles == [
        "location, person",
        "location",
        f"corporation, location {WIDGET_DIFFERS}",
        f"person {WIDGET_DIFFERS}",
        f"group {WIDGET_DIFFERS}",
        "no entities",
    ]
    card = full_card(examples).text
    assert f'2 of 3 match the gold entities; a title ending in "{WIDGET_DIFFERS}" marks one that does not' in card


def test_training_set_statistics_and_epoch_results():
    assert training_set_statistics(TRAIN_ROWS, unlabeled=4) == {
        "sentences": 3,
        "with_context": 1,
        "unlabeled": 4,
        "words": (1, 3, 6),
        "entities": {"location": 1, "person": 3},
    }
    assert [(r["epoch"], r["step"], r["training_loss"], r["f1"]) for r in epoch_results(LOG_HISTORY)] == [
        (1.0, 10, 9.25, 0.43),
        (2.0, 20, 4.125, 0.525),
    ]


# ------------------------------------------------------------------------------------------------- escaping
#: entity-type names that try to inject HTML, split a table cell, and add a heading and a link of their own
HOSTILE_TYPES = ["per</script><img src=x onerror=alert(1)>|x", "p\n## Injected\n[link](http://x)"]
HOSTILE = "x</script><img src=x onerror=alert(1)>|y\r\n## Injected\u2028[link](http://x)"


def _cells(row: str) -> int:
    """The cells of a Markdown table row: its pipes that no backslash escapes, less one."""
    pipes, i = 0, 0
    while i < len(row):
        if row[i] == "\\":
            i += 2
            continue
        pipes += row[i] == "|"
        i += 1
    return pipes - 1


def _front_matter(text: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, text[:500]
    return yaml.safe_load(match.group(1))


def test_md_escape():
    from clner.hub.model_card import md_escape

    assert md_escape("person") == "person" and md_escape("creative-work", table=True) == "creative-work"
    assert md_escape(HOSTILE_TYPES[0], table=True) == r"per&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;\|x"
    assert md_escape(HOSTILE_TYPES[1]) == r"p ## Injected \[link\](http://x)"
    assert md_escape("## Injected") == r"\## Injected" and md_escape("  1. item") == r"1\. item"
    assert md_escape(r"\[a\](b) & \"q\"") == r"\\\[a\\\](b) &amp; \\&quot;q\\&quot;"
    assert md_escape("a\nb\rc\x0bd\x85e\u2028f\u2029g\x00h\ti") == "a b c d e f g h i"
    assert md_escape("-1", table=True) == "-1" and md_escape("-1") == r"\-1"
    assert md_escape("a`b<c>", code=True) == "`a'b&lt;c&gt;`"


#: labels whose types are `HOSTILE_TYPES`
HOSTILE_LABELS = ["O"] + [f"{p}-{t}" for t in HOSTILE_TYPES for p in ("B", "I")]


def hostile_card(tmp_path):
    """A card built from hostile text wherever the data, the config or the user's flags reach it (entity types, the
    dataset's name, the contexts' source, hyper-parameters, the model's name, a local base model path, an unknown CL
    loss), from a hand-made config: the card, and its widget examples."""
    config = CLNERConfig(
        encoder=tiny_bert_config().to_dict(),
        id2label={0: "O"},
        **dict(RECIPES["CL-KL"], cl_loss=HOSTILE, tag_scheme="BIO"),
    )
    # labels a config refuses, set by hand: the card escapes them all the same
    config.id2label, config.label2id = (
        dict(enumerate(HOSTILE_LABELS)),
        {label: i for i, label in enumerate(HOSTILE_LABELS)},
    )
    metrics = dict(CARD_METRICS)
    for t in HOSTILE_TYPES:
        metrics.update({f"eval_context_{t}_f1": 0.5, f"eval_sentence_{t}_precision": 0.25})
    rows = [
        {
            "tokens": ["a", "b", "c"],
            "tags": [f"B-{HOSTILE_TYPES[0]}", "O", f"B-{HOSTILE_TYPES[1]}"],
            "context": [HOSTILE],
        }
    ]
    widget = [{"text": HOSTILE, "example_title": HOSTILE, "output": []}]
    card = build_model_card(
        config,
        metrics,
        base_model=str(tmp_path / "enc`<img src=x>"),
        dataset_name=HOSTILE,
        dataset_id="wnut_17",
        language="en",
        license="apache-2.0",
        hyperparameters={"learning_rate": 5e-6, HOSTILE: HOSTILE},
        context_source="\n## Injected\n[link](http://x)",
        widget_examples=widget,
        model_name=HOSTILE,
        training_stats=training_set_statistics(rows),
        epochs=epoch_results(LOG_HISTORY),
        versions={"Python": "3.11.7", HOSTILE: HOSTILE},
    )
    return card, widget


def test_labels_with_whitespace_are_refused_when_a_config_is_made():
    """Hostile entity types are refused when a config loads; a card escapes them all the same (defence in depth:
    `hostile_card` builds one from a hand-made config)."""
    with pytest.raises(ValueError, match="holds whitespace"):
        CLNERConfig(encoder=tiny_bert_config().to_dict(), id2label=dict(enumerate(HOSTILE_LABELS)))


def test_card_escapes_data_derived_text(tmp_path):
    """Text that comes from the data, the config or the user's flags is plain text in the card: no raw HTML, no
    heading or link of its own."""
    card, _ = hostile_card(tmp_path)
    body = card.text
    assert "<script" not in body.lower() and "<img" not in body.lower() and "</script" not in body.lower()
    for line in body.splitlines():  # no heading or link of its own
        assert not re.match(r" {0,3}(#+ *Injected|\[link\])", line), line
    assert "\n\\## Injected \\[link\\](http://x)\n" in body  # the contexts' source, at a line's start
    prose = re.sub(r"`[^`\n]*`", "`code`", body.split("## Usage")[0] + body.split("## Training")[1])
    assert "[link](http://x)" not in prose and r"\[link\](http://x)" in prose  # (inert in a code span)
    assert "`p ## Injected [link](http://x)`, `per&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;|x` (BIO)" in body


def test_card_tables_keep_their_cell_count_with_hostile_names(tmp_path):
    """Every table keeps its header's cell count, row after row; the per-type table names the types escaped."""
    card, _ = hostile_card(tmp_path)
    body = card.text
    tables, current = [], []
    for line in body.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    assert len(tables) >= 6
    for table in tables:
        assert {_cells(row) for row in table} == {_cells(table[0])}, table
    per_type = next(t for t in tables if t[0].startswith("| type |"))
    assert any(row.startswith(r"| per&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;\|x | ") for row in per_type)
    assert any(row.startswith(r"| p ## Injected \[link\](http://x) | ") for row in per_type)


def test_card_usage_example_is_valid_python_whatever_the_model_name(tmp_path):
    card, _ = hostile_card(tmp_path)
    body = card.text
    code = body.split("```python\n", 1)[1].split("```", 1)[0]
    call = next(line for line in code.splitlines() if line.startswith("ner = pipeline("))
    assert ast.literal_eval(call.split("model=", 1)[1].split(", revision=")[0]) == "<org>/" + HOSTILE


def test_card_front_matter_keeps_hostile_values_exactly(tmp_path):
    """The YAML front matter still parses, and keeps the exact values (widget texts and titles, dataset and model
    names: they are data, not Markdown); the card reads back as written."""
    card, widget = hostile_card(tmp_path)
    body = card.text
    data = _front_matter(str(card))
    assert data["widget"] == widget and data["model-index"][0]["name"] == HOSTILE
    assert data["model-index"][0]["results"][0]["dataset"]["name"] == HOSTILE
    card.save(tmp_path / "README.md")
    loaded = ModelCard.load(tmp_path / "README.md")
    assert loaded.data.widget == widget and loaded.text == body


# ------------------------------------------------------------------------------------------ template and card data
def _spy_from_template(monkeypatch) -> list[dict]:
    """Records each `huggingface_hub.ModelCard.from_template` call (class, card data, template, keyword arguments)
    and lets it render."""
    calls, original = [], ModelCard.from_template.__func__

    def spy(cls, card_data, template_path=None, template_str=None, **template_kwargs):
        calls.append(
            {
                "cls": cls,
                "card_data": card_data,
                "template_path": template_path,
                "template_str": template_str,
                "kwargs": template_kwargs,
            }
        )
        return original(cls, card_data, template_path, template_str, **template_kwargs)

    monkeypatch.setattr(ModelCard, "from_template", classmethod(spy))
    return calls


def _outside_code(text: str) -> list[str]:
    """The card's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def test_card_renders_through_model_card_from_template(monkeypatch):
    """The card is `ModelCard.from_template` of MODEL_CARD_TEMPLATE with a CLNERModelCardData: the card (a
    ModelCard) keeps that data class, its front matter is the card data's safe YAML and parses back to the same
    dict, and the body has its sections in order with one blank line between blocks."""
    calls = _spy_from_template(monkeypatch)
    card = full_card(curves=CURVES_FILE, space_id="org/clner-demo")
    (call,) = calls
    assert call["cls"] is CLNERModelCard and call["template_str"] == MODEL_CARD_TEMPLATE_PATH.read_text(
        encoding="utf-8"
    )
    assert call["template_path"] is None
    data = call["card_data"]
    assert isinstance(data, CLNERModelCardData) and set(call["kwargs"]) == set(data.template_kwargs())
    assert isinstance(card, ModelCard) and isinstance(card.data, CLNERModelCardData)
    # the front matter: the card data's to_yaml (safe_dump), the same dict parsed back, no body field in it
    assert str(card).startswith(f"---\n{data.to_yaml()}\n---\n\n# clner-wnut17\n")
    assert _front_matter(str(card)) == data.to_dict() == card.data.to_dict() == ModelCard(str(card)).data.to_dict()
    assert not set(data.to_dict()) & set(CLNERModelCardData.BODY_FIELDS)
    assert data.results and data.training_stats["sentences"] == 3 and data.dataset_label == "WNUT-17"
    # the layout: the sections in order, blocks one blank line apart, one line break at the end
    headings = [line for line in _outside_code(card.text) if line.startswith("#")]
    assert headings == [
        "# clner-wnut17",
        "## Results",
        "### Validation set",
        "### Test set",
        "## Demo",
        "## Usage",
        "## Training",
        "## Contexts",
        "## Limitations",
        "## Citation",
    ]
    assert "\n\n\n" not in card.text and card.text.startswith("\n# clner-wnut17\n\nA named-entity")
    assert card.text.endswith("\n```bibtex\n" + CITATION + "\n```\n")
    assert re.search(r"\n\n## Training\n\nTraining set \(WNUT-17\):\n\n\| \| value \|\n", card.text)
    assert re.search(r"\n\| person \| 3 \|\n\n\| hyper-parameter \| value \|\n", card.text)
    assert re.search(
        r"\n\n## Results\n\n### Validation set\n\nWNUT-17 validation set, entity-level \(seqeval\) "
        r"\(%\):\n\n\| view \| precision \| recall \| F1 \|\n\| --- \| --- \| --- \| --- \|\n"
        r"\| with context \|[^\n]*\|\n\| sentence only \|[^\n]*\|\n\nPer entity type",
        card.text,
    )
    assert re.search(r"\n\| Transformers \| 5\.23\.0 \|\n\n## Contexts\n\nGoogle search", card.text)
    # without results, recipe, statistics, widget or versions: each optional block goes with its blank line
    text = build_model_card(tiny_model().config, {}, base_model=None, versions={}).text
    assert "\n\n\n" not in text and re.search(
        r"\n## Results\n\nNo evaluation results were recorded for this model\.\n\n## Usage\n", text
    )
    assert re.search(
        r"\n## Training\n\nModel settings:\n\n\| setting \| value \|\n\| --- \| --- \|\n(\|[^\n]*\|\n)+"
        r"\n## Contexts\n",
        text,
    )


def hostile_template_call(monkeypatch):
    """The `from_template` call of a card built with hostile names everywhere (a hand-made config names an unknown
    CL loss): its card data and keyword arguments."""
    calls = _spy_from_template(monkeypatch)
    config = tiny_model(**dict(RECIPES["CL-KL"])).config
    config.cl_loss = HOSTILE  # a hand-made config: an unknown CL loss named by the data
    build_model_card(
        config,
        {**CARD_METRICS, f"eval_context_{HOSTILE}_f1": 0.5},
        base_model="/x/enc`<img src=x>",
        dataset_name=HOSTILE,
        language=[HOSTILE],
        hyperparameters={HOSTILE: HOSTILE},
        context_source=HOSTILE,
        widget_examples=[{"text": HOSTILE, "example_title": HOSTILE}],
        model_name=HOSTILE,
        training_stats={"sentences": 1, "entities": {HOSTILE: 1}},
        epochs=[{"epoch": HOSTILE}],
        versions={HOSTILE: HOSTILE},
        space_id="org/demo",
    )
    return calls[0]


def test_card_template_reads_only_the_card_datas_template_kwargs(monkeypatch):
    """Security: every variable MODEL_CARD_TEMPLATE reads is one of the card data's `template_kwargs()` (made inert
    for Markdown there), never a raw front-matter field that `from_template` also passes."""
    from jinja2 import Environment, meta

    read = meta.find_undeclared_variables(Environment().parse(MODEL_CARD_TEMPLATE_PATH.read_text(encoding="utf-8")))
    call = hostile_template_call(monkeypatch)
    kwargs = call["kwargs"]
    assert read == set(kwargs) | {"card_data"}  # all provided, all used
    front_matter = {
        "base_model",
        "datasets",
        "eval_results",
        "language",
        "library_name",
        "license",
        "metrics",
        "model_name",
        "model-index",
        "pipeline_tag",
        "tags",
        "widget",
    }
    assert not read & (front_matter | set(call["card_data"].to_dict()))  # what from_template passes raw


def test_card_template_reads_only_escaped_values(monkeypatch):
    """With hostile names, no value the template reads holds a line break, raw ``<`` or an unescaped ``[``/``|``,
    save the fixed placeholders and the citation."""
    kwargs = hostile_template_call(monkeypatch)["kwargs"]

    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from strings(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from strings(v)

    raw = {"citation", "repo_code", "revision_code"}  # a constant; `_py_str` literals (placeholders as written)
    values = [s for key, value in kwargs.items() if key not in raw for s in strings(value)]
    assert any("Injected" in s for s in values)  # the hostile names are there, escaped
    for s in values:
        assert "\n" not in s and "<" not in s and not re.search(r"(?<!\\)\[(?!sentence ; SEP)", s), s
        assert not re.search(r"(?<![\\ ])\|(?! )", s), s  # a pipe is escaped, or a cell separator of `_row`
    assert (
        kwargs["repo_code"]
        == '"<org>/'
        + json.dumps(HOSTILE)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        + '"'
        and kwargs["revision_code"] == f'"{REVISION_PLACEHOLDER}"'
    )


def test_card_data_front_matter_is_safe_yaml():
    """CLNERModelCardData writes its front matter by yaml.safe_dump (ModelCardData's own to_yaml uses yaml.dump,
    which writes a Python object as a `!!python/` tag), keeps a parsed card's key order, leaves the body fields out,
    and refuses a curves path or Space id that would reach the body unescaped."""
    from huggingface_hub import ModelCardData

    assert "!!python/object" in ModelCardData(license="mit", widget=[{"x": object()}]).to_yaml()
    with pytest.raises(yaml.representer.RepresenterError):
        CLNERModelCardData(license="mit", widget=[{"x": object()}]).to_yaml()
    data = CLNERModelCardData(license="mit", tags=["a"], dataset_label="x", results=[("validation", {})])
    assert data.to_dict() == {"license": "mit", "tags": ["a"]} and data.to_yaml() == "license: mit\ntags:\n- a"
    assert data.to_yaml(original_order=["tags", "license"]) == "tags:\n- a\nlicense: mit"
    assert CLNERModelCard(f"---\n{data.to_yaml()}\n---\n\n# x\n").data.to_dict() == data.to_dict()
    with pytest.raises(ValueError, match="not a relative image path"):
        CLNERModelCardData(curves="../x.png")
    with pytest.raises(ValueError, match="not a Hub Space id"):
        CLNERModelCardData(space_id="x) [a](http://y")


# ------------------------------------------------------------------------------------------ splits, n/a, limitations
def _section(text: str, heading: str) -> str:
    """The body of a `### heading` section, up to the next heading."""
    match = re.search(rf"^### {re.escape(heading)}\n(.*?)(?=^##)", text, re.M | re.S)
    assert match, heading
    return match.group(1)


def test_card_reports_validation_and_test_splits():
    """A run with validation (eval_) and test (predict_) metrics reports both in the card's body, each table labelled
    with its split; the model-index keeps the validation split."""
    card = build_model_card(
        tiny_model(**RECIPES["CL-KL"]).config,
        TWO_SPLITS,
        base_model="xlm-roberta-large",
        dataset_name="WNUT-17",
        dataset_id="wnut_17",
        versions={},
    )
    text = card.text
    results = text.split("## Results\n")[1].split("## Usage")[0]
    assert results.index("### Validation set") < results.index("### Test set")
    validation, test = _section(text, "Validation set"), _section(text, "Test set")
    assert "WNUT-17 validation set, entity-level (seqeval) (%):" in validation
    assert re.search(r"^\| with context \| 60\.34 \| 45\.11 \| 51\.62 \|$", validation, re.M)
    assert re.search(r"^\| sentence only \| 55\.12 \| 41\.23 \| 47\.18 \|$", validation, re.M)
    assert "Per entity type, validation set (%):" in validation
    assert re.search(r"^\| person \| 80\.00 \| 64\.00 \| 71\.00 \| – \| – \| – \|$", validation, re.M)
    assert "WNUT-17 test set, entity-level (seqeval) (%):" in test
    assert re.search(r"^\| with context \| 50\.00 \| 40\.00 \| 44\.44 \|$", test, re.M)
    assert re.search(r"^\| sentence only \| 42\.00 \| 38\.00 \| 39\.90 \|$", test, re.M)
    assert "Per entity type, test set (%):" in test
    assert re.search(r"^\| person \| 70\.00 \| 50\.00 \| 58\.33 \| – \| – \| – \|$", test, re.M)
    assert "60.34" not in test and "50.00 | 40.00" not in validation
    assert {(r.dataset_split, r.metric_config, r.metric_type): r.metric_value for r in card.data.eval_results} == {
        ("validation", v, m): TWO_SPLITS[f"eval_{v}_{m}"]
        for v in ("sentence", "context")
        for m in ("precision", "recall", "f1")
    }
    # a run that only predicted: its test set, in the body and in the model-index
    only_test = {k: v for k, v in TWO_SPLITS.items() if k.startswith("predict_")}
    card = build_model_card(
        tiny_model().config,
        only_test,
        base_model=None,
        dataset_name="WNUT-17",
        metric_prefix="predict",
        dataset_split="test",
        versions={},
    )
    assert "### Test set" in card.text and "### Validation set" not in card.text
    assert {r.dataset_split for r in card.data.eval_results} == {"test"}


def test_card_type_without_gold_entities_is_not_applicable():
    """seqeval scores a type the split has no gold entity of (predicted only) with recall and F1 0 (its
    zero_division); the card shows n/a there, not 0.00, and says what n/a means. A type that was missed (gold
    entities, no correct prediction) keeps its real 0.00."""
    metrics = {
        "eval_context_f1": 0.5,
        "eval_sentence_f1": 0.4,
        "eval_context_group_precision": 0.0,
        "eval_context_group_recall": 0.0,
        "eval_context_group_f1": 0.0,
        "eval_context_group_number": 0,
        "eval_sentence_group_precision": 0.0,
        "eval_sentence_group_recall": float("nan"),
        "eval_sentence_group_f1": 0.0,  # no number recorded, recall undefined: no gold entities either
        "eval_context_product_precision": 0.0,
        "eval_context_product_recall": 0.0,
        "eval_context_product_f1": 0.0,
        "eval_context_product_number": 12,
        "eval_sentence_product_precision": float("nan"),
        "eval_sentence_product_recall": 0.0,
        "eval_sentence_product_f1": 0.0,
        "eval_sentence_product_number": 12,
    }
    text = build_model_card(tiny_model().config, metrics, base_model=None, dataset_name="WNUT-17", versions={}).text
    assert re.search(r"^\| group \| 0\.00 \| n/a \| n/a \| 0\.00 \| n/a \| n/a \|$", text, re.M)
    assert re.search(r"^\| product \| 0\.00 \| 0\.00 \| 0\.00 \| n/a \| 0\.00 \| 0\.00 \|$", text, re.M)
    assert "(n/a: the set has no gold entity of the type, so no recall or F1)" in text
    assert "n/a" not in full_card().text  # every type of the usual card has gold entities


@pytest.mark.parametrize("recipe", ["CL-KL", "sentence", "context"])
def test_card_limitations(recipe):
    """The card says where CLNER helps, what the model needs at inference for the views it was trained on, and what
    it was evaluated on (the card's own dataset and splits) and not (other domains and languages)."""
    text = full_card(recipe=recipe).text
    section = text.split("## Limitations\n")[1].split("## Citation")[0]
    assert text.index("## Limitations") > text.index("## Contexts")
    assert "short, context-poor text such as tweets" in section and "external context" in section
    if recipe == "CL-KL":
        assert "The context view needs a context source at inference: retrieval" in section
        assert (
            "`context=[...]`" in section
            and "use the sentence view (text only), which the model also learned" in section
        )
    elif recipe == "sentence":
        assert "trained on sentences alone" in section and "needs no context source" in section
    else:
        assert "trained on the context view only" in section and "a view it was not trained on" in section
    assert (
        "It was evaluated on the validation and test sets of WNUT-17 only; not on other domains or languages "
        "than its training data (language: en)"
    ) in section
    # no results: it says so; a dataset name from the data is escaped
    text = build_model_card(tiny_model().config, {}, base_model=None, dataset_name="<b>x</b>|y", versions={}).text
    section = text.split("## Limitations\n")[1].split("## Citation")[0]
    assert "It has no evaluation data" in section and "not on other domains or languages" in section
    text = build_model_card(
        tiny_model().config,
        {"eval_context_f1": 0.5},
        base_model=None,
        dataset_name="<b>x</b> [l](http://x)",
        versions={},
    ).text
    assert "evaluated on the validation set of &lt;b&gt;x&lt;/b&gt; \\[l\\](http://x) only" in text


# ------------------------------------------------------------------------------------------------ training curves
def test_card_embeds_training_curves():
    text = full_card(curves=CURVES_FILE).text
    assert re.search(r"^!\[Training curves\]\(training_curves\.png\)$", text, re.M)
    training = text.split("## Training\n")[1].split("## Contexts")[0]
    assert training.index("Results per evaluation during training") < training.index("![Training curves]")
    assert "![Training curves]" not in full_card().text
    for bad in ("../x.png", "/tmp/x.png", "a b.png", "x.png)\n## Injected", "x.png\n", "[x](y).png"):
        with pytest.raises(ValueError, match="not a relative image path"):
            full_card(curves=bad)


# ---------------------------------------------------------------------------------- surface-form F1 (WNUT-17)
def test_card_shows_surface_form_f1_beside_the_entity_scores_where_the_metrics_hold_it():
    """A split whose metrics hold the views' surface-form F1 gets a column for it (a view without one: ``–``, an
    undefined one: ``n/a``); a split without it keeps the entity table as it was. It is no entity type, and the
    model-index keeps the entity scores only."""
    metrics = dict(
        TWO_SPLITS,
        eval_sentence_surface_precision=0.6,
        eval_sentence_surface_recall=0.35,
        eval_sentence_surface_f1=0.4421,
        eval_context_surface_f1=0.4987,
        eval_surface_f1=0.4704,
    )
    card = build_model_card(
        tiny_model(**RECIPES["CL-KL"]).config,
        metrics,
        base_model="xlm-roberta-large",
        dataset_name="WNUT-17",
        dataset_id="wnut_17",
        versions={},
    )
    validation, test = _section(card.text, "Validation set"), _section(card.text, "Test set")
    assert re.search(
        r"^WNUT-17 validation set, entity-level \(seqeval\), and surface-form F1 \(WNUT-17's second measure: over "
        r"the distinct entity strings with their type, each counted once\) \(%\):\n\n"
        r"\| view \| precision \| recall \| F1 \| surface-form F1 \|\n\| --- \| --- \| --- \| --- \| --- \|\n"
        r"\| with context \| 60\.34 \| 45\.11 \| 51\.62 \| 49\.87 \|\n"
        r"\| sentence only \| 55\.12 \| 41\.23 \| 47\.18 \| 44\.21 \|\n",
        validation,
        re.M,
    )
    assert "surface" not in test and re.search(
        r"^\| view \| precision \| recall \| F1 \|\n\| --- \| --- \| --- \| --- \|\n"
        r"\| with context \| 50\.00 \| 40\.00 \| 44\.44 \|$",
        test,
        re.M,
    )
    assert not re.search(r"^\| surface \|", card.text, re.M)  # not a row of the per-type table
    assert {r.metric_type for r in card.data.eval_results} == {"precision", "recall", "f1"}
    one_view = {"eval_sentence_f1": 0.5, "eval_context_f1": 0.6, "eval_context_surface_f1": float("nan")}
    text = build_model_card(tiny_model().config, one_view, base_model=None, versions={}).text
    assert re.search(
        r"^\| with context \| – \| – \| 60\.00 \| n/a \|\n\| sentence only \| – \| – \| 50\.00 \| – \|$", text, re.M
    )
