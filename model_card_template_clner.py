"""The model card's template (Jinja), rendered by `model_card_clner.CLNERModelCard` through
`huggingface_hub.ModelCard.from_template`: its own module so that the card code stays readable; a module rather than a
``.md`` file because clner installs flat modules (`py-modules`), without package data."""

#: The card's body as a Jinja template, rendered by `huggingface_hub.ModelCard.from_template` (`CLNERModelCard`).
#: It reads only the values of `CLNERModelCardData.template_kwargs()`, each already escaped for Markdown (`md_escape`,
#: `_row`, `_py_str`) or a constant, and ``card_data``, the front matter (`CLNERModelCardData.to_yaml`). Jinja's
#: autoescape (HTML) stays off: it is the wrong escaping for Markdown. Block tags are written ``{%- ... %}`` (the
#: line break before them goes), so a block that adds lines starts with its own blank line.
MODEL_CARD_TEMPLATE = r"""
{%- set encoder -%}
a {{ encoder_type }} encoder{% if encoder_code %} ({{ encoder_code }}){% endif %} with a linear-chain CRF over words
{%- endset -%}
{%- set tagging -%}
It tags {{ entity_types | join(", ") if entity_types else "the labels in `config.json`" }} ({{ tag_scheme }}).
{%- endset -%}
{%- set retrieval -%}
a context source at inference: retrieval (`retrieve=True` with a search function, or a `retrieval_clner` backend over your corpus) or snippets you give (`context=[...]`)
{%- endset -%}
---
{{ card_data }}
---

# {{ title }}
{%- if recipe %}

A named-entity recogniser trained with **CLNER** (Wang et al., ACL 2021){% if dataset is not none %} on {{ dataset }}{% endif %}: {{ encoder }}, {{ recipe }}. {{ tagging }}
{%- else %}

A **CLNER** named-entity recogniser (Wang et al., ACL 2021): {{ encoder }}; its config records no training recipe. {{ tagging }}
{%- endif %}

## Results
{%- for split in splits %}

### {{ split.title }} set

{{ dataset if dataset is not none else "Evaluation" }} {{ split.name }} set, entity-level (seqeval){{ unit }}:

| view | precision | recall | F1 |
| --- | --- | --- | --- |
{{ split.rows | join("\n") }}
{%- if split.type_rows %}

Per entity type, {{ split.name }} set{{ unit }}{% if split.na %} (n/a: the set has no gold entity of the type, so no recall or F1){% endif %}:

| type | {{ split.type_head }} |
| --- |{{ " --- |" * split.type_columns }}
{{ split.type_rows | join("\n") }}
{%- endif %}
{%- else %}

No evaluation results were recorded for this model.
{%- endfor %}
{%- if demo %}

## Demo

Try both views live in the Space [{{ demo.name }}]({{ demo.url }}) (written by `clner-demo MODEL --export_space DIR`): the Hub's widget cannot run this model's custom code, so it shows precomputed outputs only.
{%- endif %}

## Usage

The model and its pipeline are custom code (`modeling_clner.py` with `crf_clner.py` and `inference_clner.py`, and `pipeline_clner.py`, in this repository): read them, then load with `trust_remote_code=True` and pin `revision` to the commit you reviewed. Only safetensors weights are read. The task may be `"ner"`, `"token-classification"` or left out.

```python
from transformers import pipeline

ner = pipeline("ner", model={{ repo_code }}, revision={{ revision_code }}, trust_remote_code=True)
ner("Justin Bieber lands in Paris tonight")  # sentence view
ner("Justin Bieber lands in Paris tonight",  # context view: snippets about the sentence
    context=["Justin Bieber is a Canadian singer ...", "Paris is the capital of France ..."])
ner(["Justin", "Bieber", "lands"], is_split_into_words=True)  # pre-tokenized words
ner(texts, batch_size=16)  # a batch
# live retrieval: any search function fn(query, k) -> list[str]; with `pip install clner`, also the
# retrieval_clner backends (retriever="duckduckgo", a ContextRetriever with BM25 over your corpus, ...)
ner("Justin Bieber lands in Paris tonight", retrieve=True, retriever=my_search)
```

Each entity has `entity_group`, `word`, `start` / `end` (character offsets), `score` (the mean CRF marginal of its words' Viterbi tags), `word_span` and `context_used`; `return_details=True` adds per input the words, their tags and scores, and a `note` saying why a context was not used. Labels come from Viterbi decoding, so they always form valid spans.

```python
from transformers import AutoModelForTokenClassification, AutoTokenizer

model = AutoModelForTokenClassification.from_pretrained({{ repo_code }}, revision={{ revision_code }},
                                                        trust_remote_code=True, use_safetensors=True)
tokenizer = AutoTokenizer.from_pretrained({{ repo_code }}, revision={{ revision_code }}, trust_remote_code=True)
model.predict("Justin Bieber lands in Paris", tokenizer)  # -> [{"entity_group": ..., "start": 0, ...}]
model.predict([["Justin", "Bieber", "lands", "in", "Paris"]], tokenizer,
              contexts=[["Justin Bieber is a Canadian singer ..."]])  # -> [["B-person", "I-person", ...]]
```

## Training
{%- if statistics_rows %}

Training set{% if dataset is not none %} ({{ dataset }}){% endif %}:

| | value |
| --- | --- |
{{ statistics_rows | join("\n") }}
{%- if entity_rows %}

| entity type | entities |
| --- | --- |
{{ entity_rows | join("\n") }}
{%- endif %}
{%- endif %}
{%- if hyperparameter_rows %}

| hyper-parameter | value |
| --- | --- |
{{ hyperparameter_rows | join("\n") }}
{%- endif %}
{%- if objective_rows %}

Objective (from `config.json`):

| setting | value |
| --- | --- |
{{ objective_rows | join("\n") }}
{%- endif %}

Model settings:

| setting | value |
| --- | --- |
{{ setting_rows | join("\n") }}
{%- if epoch_rows %}

Results per evaluation during training (validation set, F1 in %):

| epoch | step | training loss | validation loss | sentence-only F1 | with-context F1 | mean F1 |
| --- | --- | --- | --- | --- | --- | --- |
{{ epoch_rows | join("\n") }}
{%- endif %}
{%- if curves %}

![Training curves]({{ curves }})

Validation F1 of both views at each evaluation during training, and the training loss with its components (L_NLL of the sentence view, L_NLL-EXT of the context view, L_CL of cooperative learning; those logged).
{%- endif %}
{%- if version_rows %}

Framework versions:

| library | version |
| --- | --- |
{{ version_rows | join("\n") }}
{%- endif %}

## Contexts
{%- if with_context %}

{{ context_source if context_source is not none else "The source of the training contexts was not recorded." }}

At inference, pass the context of each sentence as a list of snippet strings, best first; they are joined with the tokenizer's separator and cut to fit after the sentence. Without a context the model runs on the sentence alone.
{%- else %}

This model was trained without external contexts: use it on sentences alone (passing a context makes it warn, and may make it worse).
{%- endif %}
{%- if widget_total %}

The widget examples are sentences of the evaluation set; their outputs are this model's predictions with the sentence view (the widget sends text only). {{ widget_right }} of {{ widget_total }} match the gold entities; a title ending in "{{ widget_differs }}" marks one that does not.
{%- endif %}

## Limitations

- **Where it helps.** CLNER is meant for short, context-poor text such as tweets and other user-generated posts, where external context (search results about the sentence) supplies what the sentence lacks: who or what a rare, new or ambiguous name refers to. On long, self-contained sentences a context adds less.
{%- if sentence_only %}
- **What it needs.** This model was trained on sentences alone (the baseline without contexts): it needs no context source, and it does not have CLNER's gain from one; a context passed at inference is not what it was trained on.
{%- elif context_only %}
- **What it needs.** This model was trained on the context view only: it needs {{ retrieval }}. Without one it runs on the sentence alone, a view it was not trained on, and is less accurate.
{%- else %}
- **What it needs.** The context view needs {{ retrieval }}. Without one, use the sentence view (text only), which the model also learned{% if cooperative %}, pulled towards the context view by cooperative learning{% endif %}; it is usually less accurate on context-poor text. Retrieved contexts can be off-topic, wrong or outdated, and the model may follow them.
{%- endif %}
- **What it was not evaluated on.** {% if evaluated_splits %}It was evaluated on {% if dataset is not none %}the {{ evaluated_splits }} set{{ plural }} of {{ dataset }}{% else %}its {{ evaluated_splits }} set{{ plural }} (the data's name was not recorded){% endif %} only{% else %}It has no evaluation data: its accuracy was not measured{% endif %}; not on other domains or languages than its training data{% if languages %} (language: {{ languages | join(", ") }}){% endif %}, where entity types, names and writing differ: evaluate it on your own data before relying on it.

## Citation

Xinyu Wang, Yong Jiang, Nguyen Bach, Tao Wang, Zhongqiang Huang, Fei Huang, Kewei Tu. *Improving Named Entity Recognition by External Context Retrieving and Cooperative Learning*. ACL-IJCNLP 2021.

```bibtex
{{ citation }}
```

"""  # noqa: E501 (the card's paragraphs stay on one line; Jinja drops the last line break)
