"""A run's card and plot (`clner.hub.publish.publish_from_run`): the dataset, language and license given, the
training set, the run's per-epoch results, only the options that applied, the training curves and both splits."""

import re
from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard

from clner.arguments import CLArguments
from clner.hub.plots import CURVES_FILE
from clner.hub.publish import publish_from_run
from clner.hub.upload import hub_files
from conftest import (
    CARD_METRICS,
    CURVES_HISTORY,
    LOG_HISTORY,
    RECIPES,
    TRAIN_ROWS,
    TWO_SPLITS,
    WNUT_LABELS,
    png_size,
    tiny_clner,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_publish_from_run_writes_the_card(tmp_path, minilm_tokenizer, caplog):
    """The card of a run: the dataset from --dataset_card_name / --dataset_name (never the data file's folder),
    --language / --license, the training set, the run's per-epoch results, and only the CL options that applied."""
    datasets = pytest.importorskip("datasets")
    cl_args = CLArguments(train_views="sentence")
    model = tiny_clner(WNUT_LABELS, decisive=True, **cl_args.recipe())
    validation = datasets.Dataset.from_list(
        [
            {
                "tokens": ["John", "Smith", "lives", "in", "New", "York"],
                "tags": ["B-person", "I-person", "O", "O", "B-location", "I-location"],
                "context": [],
            }
        ]
    )
    raw = {"train": datasets.Dataset.from_list(TRAIN_ROWS), "validation": validation}
    args = SimpleNamespace(
        output_dir=str(tmp_path / "out"),
        push_to_hub=False,
        hub_model_id=None,
        learning_rate=5e-5,
        num_train_epochs=3.0,
        seed=42,
        per_device_train_batch_size=8,
    )
    data_args = SimpleNamespace(
        dataset_name=None,
        train_file=str(tmp_path / "wnut17" / "train.conll"),
        validation_file=None,
        test_file=None,
        context_source="web search",
        dataset_config_name=None,
        dataset_card_name=None,
    )
    model_args = SimpleNamespace(model_name_or_path=None, language="en, de", license="cc-by-4.0")
    trainer = SimpleNamespace(state=SimpleNamespace(log_history=LOG_HISTORY))
    result = publish_from_run(
        trainer, model, minilm_tokenizer, CARD_METRICS, model_args, data_args, cl_args, args, raw
    )
    assert result is None
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert card.data.widget[0]["text"] == "John Smith lives in New York"
    assert card.data.language == ["en", "de"] and card.data.license == "cc-by-4.0"
    assert card.data.datasets is None and "wnut17" not in card.text  # a folder's name is no dataset name
    assert "the paper's *w/o context* baseline" in card.text and "web search" not in card.text
    assert "L_CL" not in card.text.split("Objective")[0].split("## Training")[1]  # no CL option of a run without CL
    assert re.search(r"^\| sentences \| 3 \|$", card.text, re.M) and re.search(
        r"^\| 2 \| 20 \| 4\.125 ", card.text, re.M
    )
    # a named dataset fills `datasets:`; the card of the first run is replaced, and the log says so
    data_args.dataset_card_name = "leondz/wnut_17"
    with caplog.at_level("WARNING", logger="clner.hub.model_card"):
        publish_from_run(trainer, model, minilm_tokenizer, CARD_METRICS, model_args, data_args, cl_args, args, raw)
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.datasets == ["leondz/wnut_17"] and "on leondz/wnut_17" in card.text
    assert re.search(r"replacing the model card .*README\.md", caplog.text)


def test_publish_from_run_display_name_and_max_steps(tmp_path, minilm_tokenizer, monkeypatch):
    """--dataset_card_name that is a display name, not a Hub id, names the data in the card but stays out of
    `datasets:`; a run ended by --max_steps lists max_steps, never the num_train_epochs that did not apply."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.chdir(tmp_path)
    cl_args = CLArguments(train_views="sentence")
    model = tiny_clner(WNUT_LABELS, decisive=True, **cl_args.recipe())
    raw = {"train": datasets.Dataset.from_list(TRAIN_ROWS)}
    args = SimpleNamespace(
        output_dir=str(tmp_path / "out"),
        push_to_hub=False,
        hub_model_id=None,
        learning_rate=5e-5,
        num_train_epochs=3.0,
        max_steps=2,
        seed=42,
        per_device_train_batch_size=8,
    )
    data_args = SimpleNamespace(
        dataset_name=None,
        train_file=None,
        validation_file=None,
        test_file=None,
        context_source=None,
        dataset_config_name=None,
        dataset_card_name="WNUT-17 tweets (2017)",
    )
    model_args = SimpleNamespace(model_name_or_path=None, language=None, license=None)
    trainer = SimpleNamespace(state=SimpleNamespace(log_history=LOG_HISTORY))
    publish_from_run(trainer, model, minilm_tokenizer, CARD_METRICS, model_args, data_args, cl_args, args, raw)
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.datasets is None and "on WNUT-17 tweets (2017)" in card.text
    assert re.search(r"^\| max_steps \| 2 \|$", card.text, re.M) and "num_train_epochs" not in card.text
    args.max_steps = -1  # trained by epochs: they are listed
    publish_from_run(trainer, model, minilm_tokenizer, CARD_METRICS, model_args, data_args, cl_args, args, raw)
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert re.search(r"^\| num_train_epochs \| 3\.0 \|$", card.text, re.M) and "max_steps" not in card.text


def test_publish_from_run_plots_curves_and_reports_both_splits(tmp_path, minilm_tokenizer, caplog):
    """A run that evaluated during training gets training_curves.png in its folder (uploaded with it) and in its
    card, whose results show the validation and the test set; a later run without evaluations removes the plot."""
    pytest.importorskip("matplotlib")
    model = tiny_clner(WNUT_LABELS, decisive=True, **RECIPES["CL-KL"])
    args = SimpleNamespace(
        output_dir=str(tmp_path / "out"),
        push_to_hub=False,
        hub_model_id=None,
        learning_rate=5e-5,
        num_train_epochs=2.0,
        seed=42,
        per_device_train_batch_size=8,
    )
    data_args = SimpleNamespace(
        dataset_name=None, dataset_card_name="WNUT-17", context_source=None, dataset_config_name=None
    )
    model_args = SimpleNamespace(model_name_or_path=None, language=None, license=None)
    trainer = SimpleNamespace(state=SimpleNamespace(log_history=CURVES_HISTORY))
    publish_from_run(trainer, model, minilm_tokenizer, TWO_SPLITS, model_args, data_args, None, args, None)
    out = tmp_path / "out"
    assert png_size(out / CURVES_FILE) == (1100, 400) and CURVES_FILE in hub_files(out)
    card = ModelCard.load(out / "README.md")
    assert "![Training curves](training_curves.png)" in card.text
    assert "### Validation set" in card.text and "### Test set" in card.text
    assert re.search(r"^\| with context \| 50\.00 \| 40\.00 \| 44\.44 \|$", card.text, re.M)
    assert {r.dataset_split for r in card.data.eval_results} == {"validation"}
    trainer.state.log_history = [e for e in CURVES_HISTORY if "eval_loss" not in e]
    with caplog.at_level("WARNING", logger="clner.hub.model_card"):
        publish_from_run(trainer, model, minilm_tokenizer, TWO_SPLITS, model_args, data_args, None, args, None)
    assert not (out / CURVES_FILE).exists() and "training_curves.png of an earlier run" in caplog.text
    assert "![Training curves]" not in ModelCard.load(out / "README.md").text
