"""run_ner_cl.py, the training command (clner-train), end to end: training in one and two processes, evaluation,
prediction and the files of a run; user errors as one paragraph before any training; run_ner.py's flags; other tag
schemes; resuming; a diverged run, a SIGTERM, a busy or foreign output folder and a failed final save; pushing to
the Hub; and no credential in what a run records."""

import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard

from clner.data.io import load_ner_dataset
from clner.hub.upload import check_hub_folder
from conftest import HUB_TOKEN, REPO_ROOT, SAMPLE, FakeHub, error_of, hub_folder_files, one_error_line, train
from modeling_clner import CLNERForTokenClassification

EXPECTED_FILES = hub_folder_files()


def run_cli(args, nproc=1, timeout=300):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(REPO_ROOT / "run_ner_cl.py")] + args
    if nproc > 1:
        cmd = (
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", "29533"]
            + cmd[1:]
            + ["--use_cpu", "--ddp_backend", "gloo"]
        )
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    return proc


def run_main(argv, capsys):
    """run_ner_cl.py's entry point in this process, on one torch thread (as `run_cli`'s OMP_NUM_THREADS=1): its
    stdout. Saves a subprocess launch (an import of transformers' Trainer, ~10 s on 2 cores) where the test is not
    about the process itself."""
    from clner.cli import run_cli as run_entry_point
    from run_ner_cl import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    capsys.readouterr()
    try:
        assert run_entry_point(main, argv, prog="run_ner_cl.py") == 0
    finally:
        torch.set_num_threads(threads)
    return capsys.readouterr().out


def run_in_process(argv, capsys):
    """run_ner_cl.py's entry point in this process: a user error exits with code 2 and one paragraph on stderr."""
    from clner.cli import run_cli
    from run_ner_cl import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_cli(main, argv, prog="run_ner_cl.py")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("run_ner_cl.py: error: ")
    return line[len("run_ner_cl.py: error: ") :]


def run_failing(argv, capsys):
    """run_ner_cl.py's entry point in this process, for an error found during training (after progress bars):
    exit code 2, no traceback, and the error as one `run_ner_cl.py: error:` line, the last on stderr."""
    from clner.cli import run_cli
    from run_ner_cl import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    capsys.readouterr()
    try:
        with pytest.raises(SystemExit) as exit_:
            run_cli(main, argv, prog="run_ner_cl.py")
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if "run_ner_cl.py: error: " in line]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err[-2000:]
    return errors[0].split("run_ner_cl.py: error: ", 1)[1]


# ---------------------------------------------------------------------------------------- training, evaluation
def test_cli_train_two_processes_and_eval_matches_one_process(tiny_encoder_dir, tmp_path, capsys):
    """DDP training (two forward passes per step, CL-KL) whose end-of-run evaluation runs in the two processes:
    40 rows in batches of 7 over 2 processes is uneven, yet no row is lost or doubled (the metrics equal an
    evaluation of the saved model in one process). An evaluation-only run writes only results."""
    common = [
        "--validation_file",
        str(SAMPLE / "dev.txt"),
        "--max_seq_length",
        "64",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--per_device_eval_batch_size",
        "7",
        "--seed",
        "5",
    ]
    trained = tmp_path / "trained"
    run_cli(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--do_train",
            "--do_eval",
            "--num_train_epochs",
            "2",
            "--learning_rate",
            "5e-3",
            "--per_device_train_batch_size",
            "8",
            "--output_dir",
            str(trained),
            "--logging_steps",
            "1",
        ]
        + common,
        nproc=2,
    )
    state = json.loads((trained / "trainer_state.json").read_text())
    assert state["global_step"] == 16  # 120 rows / (2 processes x 8) per step x 2 epochs
    assert all(k in state["log_history"][0] for k in ("loss_nll", "loss_nll_ext", "loss_cl"))
    two = json.loads((trained / "eval_results.json").read_text())  # evaluated by the two processes
    card = (trained / "README.md").read_text()
    out = tmp_path / "eval1"
    stdout = run_main(["--model_name_or_path", str(trained), "--do_eval", "--output_dir", str(out)] + common, capsys)
    one = json.loads((out / "eval_results.json").read_text())
    # evaluation only: results, no model copy, no card listing training settings that never ran
    assert {f.name for f in out.iterdir()} == {"eval_results.json", "all_results.json"}
    assert f"model:       none (no --do_train: the model {trained} was only evaluated)" in stdout
    # evaluating in the model's own folder leaves its card and weights as they were
    weights = (trained / "model.safetensors").read_bytes()
    run_main(["--model_name_or_path", str(trained), "--do_eval", "--output_dir", str(trained)] + common, capsys)
    assert (trained / "README.md").read_text() == card and (trained / "model.safetensors").read_bytes() == weights
    assert one["eval_samples"] == two["eval_samples"] == 40
    for k in ("eval_sentence_f1", "eval_context_f1", "eval_sentence_accuracy", "eval_context_accuracy"):
        assert one[k] == pytest.approx(two[k], abs=1e-9), k
    assert one["eval_sentence_accuracy"] > 0


@pytest.fixture(scope="module")
def full_run(tiny_encoder_dir, tmp_path_factory):
    """A run of every stage in a process of its own: training (with unlabeled rows), evaluation each epoch,
    prediction, per-type metrics and TensorBoard logging. Its output folder and the finished process."""
    unlabeled = tmp_path_factory.mktemp("unlabeled") / "unlabeled.jsonl"
    unlabeled.write_text(
        "\n".join(
            json.dumps(
                {"tokens": ["Nokia", "phones", "rock"], "context": ["Nokia is a Finnish telecommunications company ."]}
            )
            for _ in range(6)
        )
        + "\n"
    )
    out = tmp_path_factory.mktemp("full_run") / "run"
    proc = run_cli(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--unlabeled_file",
            str(unlabeled),
            "--validation_file",
            str(SAMPLE / "dev.txt"),
            "--test_file",
            str(SAMPLE / "dev.txt"),
            "--do_train",
            "--do_eval",
            "--do_predict",
            "--max_train_samples",
            "16",
            "--num_train_epochs",
            "2",
            "--max_seq_length",
            "64",
            "--output_dir",
            str(out),
            "--report_to",
            "tensorboard",
            "--eval_strategy",
            "epoch",
            "--logging_steps",
            "1",
            "--save_strategy",
            "no",
            "--return_entity_level_metrics",
        ]
    )
    return out, proc


def test_cli_run_ends_with_the_per_type_table_and_the_summary(full_run):
    """The run ends with the per-type table (once), then the summary block: both views' F1 per named split, the
    folder, the files."""
    out, proc = full_run
    table = proc.stdout[proc.stdout.rindex("per entity type, F1 (%)") :].splitlines()
    assert re.fullmatch(r"type +dev sentence +dev context +test sentence +test context   support", table[1])
    assert [line.split()[0] for line in table[2:8]] == [
        "corporation",
        "creative-work",
        "group",
        "location",
        "person",
        "product",
    ]
    summary = proc.stdout[proc.stdout.rindex("clner run summary") :].splitlines()
    dev = str(SAMPLE / "dev.txt")
    assert re.fullmatch(rf"dev +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d   {re.escape(dev)}, 40 sentences", summary[3])
    assert re.fullmatch(rf"test +\d+\.\d\d +\d+\.\d\d +\d+\.\d\d   {re.escape(dev)}, 40 sentences", summary[4])
    assert summary[5] == f"output folder: {out}"
    assert (
        "  model:       model.safetensors, config.json, modeling_clner.py, crf_clner.py, inference_clner.py, "
        "pipeline_clner.py, tokenizer.json, tokenizer_config.json" in summary
    )  # every remote-code file
    assert "  model card:  README.md, training_curves.png" in summary
    assert (
        "  predictions: predictions.txt (context view, run_ner.py format), predictions_sentence.txt, "
        "predictions_context.txt" in summary
    )
    results = next(line for line in summary if line.startswith("  results:"))
    assert results.startswith("  results:     all_results.json, train_results.json, eval_results.json, ")
    assert (
        "the card has no model-index (the Hub shows no results): name the data with --dataset_card_name" in proc.stdout
    )  # no --dataset_card_name / --dataset_name: the summary says how to get results on the Hub
    assert summary[-1] == "=" * 100 and proc.stdout.rstrip().endswith(summary[-1])


def test_cli_per_type_metrics_are_printed_once_and_library_noise_stays_out(full_run):
    _, proc = full_run
    # per-type metrics: once, in the table; not in the per-epoch log lines nor the metric dumps
    assert proc.stdout.count("person") == 1 and "eval_sentence_f1" in proc.stdout
    assert "pin_memory" not in proc.stderr and "PAD/BOS/EOS" not in proc.stdout + proc.stderr


def test_cli_run_writes_results_predictions_and_tensorboard_logs(full_run):
    """Every results file, both views' predictions (token, gold, predicted) and run_ner.py's predictions.txt (a line
    of the context view's tags per sentence); the unlabeled rows are counted apart."""
    out, _ = full_run
    assert list(out.rglob("events.out.tfevents.*"))  # the Trainer's TensorBoard logging
    for name in (
        "train_results.json",
        "eval_results.json",
        "predict_results.json",
        "all_results.json",
        "predictions_sentence.txt",
        "predictions_context.txt",
        "model.safetensors",
        "modeling_clner.py",
    ):
        assert (out / name).exists(), name
    train_results = json.loads((out / "train_results.json").read_text())
    assert train_results["train_samples"] == 16 and train_results["train_unlabeled_samples"] == 6
    lines = [line.split("\t") for line in (out / "predictions_context.txt").read_text().splitlines() if line]
    raw = load_ner_dataset({"dev": str(SAMPLE / "dev.txt")})["dev"]
    assert len(lines) == sum(len(t) for t in raw["tokens"]) and all(len(x) == 3 for x in lines)
    assert [x[0] for x in lines[: len(raw[0]["tokens"])]] == raw[0]["tokens"]
    # run_ner.py's predictions.txt: a line of tags per sentence, the context view's
    by_sentence = (out / "predictions.txt").read_text().splitlines()
    assert [len(line.split(" ")) for line in by_sentence] == [len(t) for t in raw["tokens"]]
    context_tags = [x[2] for x in lines]
    assert " ".join(by_sentence).split(" ") == context_tags


def test_cli_run_records_the_objective_it_trained(full_run):
    out, _ = full_run
    config = json.loads((out / "config.json").read_text())
    assert config["train_views"] == "both" and config["cl_loss"] == "kl" and config["trained_with_context"]
    # the objective actually trained (the official defaults) is recorded in the config and in run_config.json
    assert (config["nll_weight"], config["nll_ext_weight"], config["cl_weight"]) == (1.0, 0.5, 0.5)
    assert config["cl_temperature"] == 0.3
    run_config = json.loads((out / "run_config.json").read_text())["cl"]
    assert run_config["cl_weight"] == 0.5 and run_config["nll_ext_weight_no_context"] == 1.0
    assert "| loss weights L_NLL / L_NLL-EXT / L_CL | 1 / 0.5 / 0.5 |" in (out / "README.md").read_text()


def run_ner_style_data(tmp_path):
    """A JSON-lines training file with run_ner.py's column names (`words`, `ner_tags`) and no contexts."""
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps({"words": w.split(), "ner_tags": t.split()}) + "\n"
            for w, t in [
                ("John Smith lives in Paris", "B-person I-person O O B-location"),
                ("Paris is nice", "B-location O O"),
            ]
        )
    )
    return data


#: one step of sentence-view training (the data of `run_ner_style_data` has no contexts)
ONE_SENTENCE_VIEW_STEP = [
    "--do_train",
    "--max_steps",
    "1",
    "--max_seq_length",
    "32",
    "--report_to",
    "none",
    "--save_strategy",
    "no",
    "--per_device_train_batch_size",
    "2",
    "--train_views",
    "sentence",
]


def test_cli_accepts_run_ner_flags(tiny_encoder_dir, tmp_path, capsys, caplog):
    """run_ner.py's --text_column_name, --config_name, --tokenizer_name, --label_all_tokens (a no-op, said so) and
    --ignore_mismatched_sizes (continue a trained model on data with other labels)."""
    from transformers import AutoConfig

    import run_ner_cl
    from clner.cli import run_cli as run_cli_main

    data = run_ner_style_data(tmp_path)
    config_dir = tmp_path / "encoder-config"
    AutoConfig.from_pretrained(tiny_encoder_dir, hidden_dropout_prob=0.25).save_pretrained(config_dir)
    common = ONE_SENTENCE_VIEW_STEP
    first = tmp_path / "first"
    run_ner_cl.main(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(data),
            "--text_column_name",
            "words",
            "--label_column_name",
            "ner_tags",
            "--label_all_tokens",
            "--config_name",
            str(config_dir),
            "--tokenizer_name",
            str(tiny_encoder_dir),
            "--output_dir",
            str(first),
        ]
        + common
    )
    assert "--label_all_tokens has no effect: the CRF labels each word" in caplog.text
    config = json.loads((first / "config.json").read_text())
    assert config["encoder"]["hidden_dropout_prob"] == 0.25
    assert sorted(config["id2label"].values()) == ["B-location", "B-person", "I-person", "O"]

    other = tmp_path / "other.conll"
    other.write_text("Acme\tB-org\nrocks\tO\n\nAcme\tB-org\nwins\tO\n")
    again = [
        "--model_name_or_path",
        str(first),
        "--train_file",
        str(other),
        "--output_dir",
        str(tmp_path / "second"),
        "--learning_rate",
        "0",
    ] + common
    with pytest.raises(SystemExit) as exit_info:
        run_cli_main(run_ner_cl.main, again)
    assert exit_info.value.code == 2
    assert re.search(
        r"label\(s\) unseen in training: 'B-org'.*pass --ignore_mismatched_sizes", capsys.readouterr().err
    )
    run_ner_cl.main(again + ["--ignore_mismatched_sizes"])
    second = CLNERForTokenClassification.from_pretrained(tmp_path / "second")
    assert sorted(second.config.labels) == ["B-org", "O"] and second.classifier.out_features == 2
    trained = CLNERForTokenClassification.from_pretrained(first)
    for (name, p), (_, q) in zip(trained.encoder.state_dict().items(), second.encoder.state_dict().items()):
        assert torch.equal(p, q), name  # the encoder carried over (learning rate 0); the head started afresh


def test_cli_text_and_token_column_names_that_differ_are_refused(tiny_encoder_dir, tmp_path, capsys):
    import run_ner_cl
    from clner.cli import run_cli as run_cli_main

    data = run_ner_style_data(tmp_path)
    common = ONE_SENTENCE_VIEW_STEP
    with pytest.raises(SystemExit):
        run_cli_main(
            run_ner_cl.main,
            [
                "--model_name_or_path",
                str(tiny_encoder_dir),
                "--train_file",
                str(data),
                "--text_column_name",
                "words",
                "--token_column_name",
                "tokens",
                "--output_dir",
                str(tmp_path / "x"),
            ]
            + common,
        )
    assert "--text_column_name words and --token_column_name tokens name different columns" in capsys.readouterr().err


IOB1_TRAIN = (
    "EU\tI-ORG\nrejects\tO\nGerman\tI-MISC\ncall\tO\n\n"
    "Peter\tI-PER\nBlackburn\tI-PER\nJohn\tB-PER\nSmith\tI-PER\nand\tO\nAcme\tI-ORG\n\n"
)


def test_cli_iob1_data_trains_in_bio_and_writes_iob1(tiny_encoder_dir, tmp_path, one_torch_thread):
    from clner.data.io import read_conll
    from clner.data.schemes import bio_to_iob1, iob1_to_bio
    from run_ner_cl import main

    data = tmp_path / "iob1.conll"
    data.write_text(IOB1_TRAIN)
    out = tmp_path / "out"
    common = ["--test_file", str(data), "--do_predict", "--report_to", "none", "--use_cpu", "--save_strategy", "no"]
    main(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(data),
            "--do_train",
            "--max_steps",
            "2",
            "--tag_scheme",
            "IOB1",
            "--train_views",
            "sentence",
            "--output_dir",
            str(out),
            *common,
        ]
    )
    config = json.loads((out / "config.json").read_text())
    assert config["tag_scheme"] == "BIO" and config["data_tag_scheme"] == "IOB1"
    assert sorted(config["label2id"]) == ["B-MISC", "B-ORG", "B-PER", "I-PER", "O"]  # the BIO tags of the data
    gold = [r["tags"] for r in read_conll(data)]
    for again in (out, tmp_path / "again"):  # the trained model predicts IOB1 files without being told
        if again != out:
            main(["--model_name_or_path", str(out), "--output_dir", str(again), *common])
        rows = read_conll(again / "predictions_sentence.txt", tag_column=1)
        assert [r["tags"] for r in rows] == gold  # the gold column is the file's own tags, back in IOB1
        predicted = [r["tags"] for r in read_conll(again / "predictions_sentence.txt", tag_column=2)]
        assert all(bio_to_iob1(iob1_to_bio(p)) == p for p in predicted)


def test_cli_tag_names_and_unconstrained_training(tiny_encoder_dir, tmp_path, one_torch_thread):
    from run_ner_cl import main

    ids = tmp_path / "ids.jsonl"
    ids.write_text('{"tokens": ["Peter", "Blackburn", "says"], "tags": [1, 2, 0]}\n{"tokens": ["hi"], "tags": [0]}\n')
    o_to_i = tmp_path / "o_to_i.conll"
    o_to_i.write_text("says\tO\nBlackburn\tI-PER\n\nPeter\tB-PER\n")
    common = [
        "--model_name_or_path",
        str(tiny_encoder_dir),
        "--do_train",
        "--max_steps",
        "1",
        "--report_to",
        "none",
        "--use_cpu",
        "--save_strategy",
        "no",
        "--train_views",
        "sentence",
    ]  # the data has no contexts
    main(
        common + ["--train_file", str(ids), "--tag_names", "O", "B-PER", "I-PER", "--output_dir", str(tmp_path / "a")]
    )
    assert json.loads((tmp_path / "a" / "config.json").read_text())["id2label"] == {
        "0": "O",
        "1": "B-PER",
        "2": "I-PER",
    }
    main(common + ["--train_file", str(o_to_i), "--crf_constraints", "false", "--output_dir", str(tmp_path / "b")])
    assert json.loads((tmp_path / "b" / "config.json").read_text())["crf_constraints"] is False


# ------------------------------------------------------------------------------------------------- user errors
def test_cli_rejects_unseen_dev_label(tiny_encoder_dir, tmp_path, capsys):
    bad = tmp_path / "dev.conll"
    bad.write_text("Acme\tB-org\nrocks\tO\n")
    message = run_in_process(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--validation_file",
            str(bad),
            "--do_eval",
            "--output_dir",
            str(tmp_path / "o"),
            "--report_to",
            "none",
        ],
        capsys,
    )
    assert "B-org" in message and "validation" in message


USER_ERRORS = {
    "scheme": (
        ["train", "--validation_file", "{o_to_i}", "--do_eval"],
        "{o_to_i}:2: sentence 1 (line 1), word 2 'Blackburn': 'I-PER' follows 'O': under --tag_scheme BIO an "
        "entity starts with B-PER. If the file is IOB1",
    ),
    "empty": (["--train_file", "{empty}", "--do_train"], "{empty}: no sentences"),
    "eval_without_tags": (
        ["train", "--validation_file", "{raw}", "--do_eval"],
        "--do_eval: --validation_file {raw} has no tags",
    ),
    "eval_without_file": (["train", "--do_eval"], "--do_eval needs --validation_file"),
    "integer_tags": (
        ["--train_file", "{ids}", "--do_train"],
        "{ids}:1: record 0: integer tag 1 but no label names: give the name of each tag id, in id order, "
        "with run_ner_cl.py --tag_names",
    ),
    "max_seq_length": (
        ["train", "--max_seq_length", "1024"],
        "--max_seq_length 1024 exceeds the 512 positions of the encoder of {encoder} "
        "(max_position_embeddings); use 512 or less",
    ),
    "max_seq_length_too_small": (
        ["train", "--max_seq_length", "2"],
        "--max_seq_length 2 leaves no room for words: a view holds 2 special tokens",
    ),
    "negative_window_stride": (["train", "--window_stride", "-3"], "--window_stride -3 is negative"),
    "cl_args": (["train", "--cl_temperature", "-1"], "--cl_temperature must be positive"),
    "unlabeled_without_cl": (
        ["train", "--train_views", "sentence", "--unlabeled_file", "{raw}"],
        "--unlabeled_file adds only the CL loss, which this run does not train (--train_views sentence --cl_loss none",
    ),
    "resume": (["train", "--resume_from_checkpoint", "last"], "--resume_from_checkpoint last: no checkpoint in {out}"),
    "missing_model_folder": (
        ["train", "--model_name_or_path", "{out}/no-such-model"],
        "--model_name_or_path {out}/no-such-model: no such folder (a local path",
    ),
    # flags the CRF objective ignores, and trainer flags that would crash after training
    "label_smoothing": (
        ["train", "--label_smoothing_factor", "0.3"],
        "--label_smoothing_factor 0.3 has no effect here: label smoothing applies to a per-token "
        "cross-entropy, and the CLNER loss is the CRF's sentence-level negative log-likelihood",
    ),
    "eval_do_concat_batches": (
        ["train", "--validation_file", "{dev}", "--do_eval", "--eval_do_concat_batches", "false"],
        "--eval_do_concat_batches false cannot work here: the metrics stitch",
    ),
    "batch_eval_metrics": (["train", "--batch_eval_metrics", "true"], "--batch_eval_metrics cannot work here"),
    "prediction_loss_only": (
        ["train", "--test_file", "{dev}", "--do_predict", "--prediction_loss_only", "true"],
        "--prediction_loss_only true --do_predict: prediction writes the predicted tags",
    ),
    "prediction_loss_only_metric": (
        [
            "train",
            "--validation_file",
            "{dev}",
            "--do_eval",
            "--eval_strategy",
            "epoch",
            "--prediction_loss_only",
            "true",
            "--metric_for_best_model",
            "f1",
        ],
        "--prediction_loss_only true --metric_for_best_model f1: evaluation then computes the loss only",
    ),
    "max_train_samples": (
        ["train", "--max_train_samples", "0"],
        "--max_train_samples 0 keeps no sentence: give 1 or more",
    ),
    "max_eval_samples": (
        ["train", "--validation_file", "{dev}", "--do_eval", "--max_eval_samples", "-1"],
        "--max_eval_samples -1 keeps no sentence",
    ),
    # two-view training on data without any context
    "no_contexts": (
        ["--train_file", "{plain}", "--do_train"],
        "--train_views both (the default) trains on retrieved contexts, and no training sentence of "
        "--train_file {plain} has one: retrieve them first with clner-retrieve",
    ),
    "no_contexts_context_view": (
        ["--train_file", "{plain}", "--do_train", "--train_views", "context"],
        "--train_views context trains on retrieved contexts, and no training sentence",
    ),
}


@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_cli_user_errors_are_one_paragraph_before_any_training(tiny_encoder_dir, tmp_path, capsys, case):
    files = {
        "o_to_i": "says\tO\nBlackburn\tI-PER\n",
        "empty": "\n\n",
        "raw": "EU\nrejects\n",
        "ids": '{"tokens": ["a", "b"], "tags": [1, 0]}\n',
        "plain": "EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\n",
    }
    names = {"out": tmp_path / "out", "encoder": tiny_encoder_dir, "dev": SAMPLE / "dev.txt"}
    for name, text in files.items():
        names[name] = tmp_path / (name + (".jsonl" if name == "ids" else ".conll"))
        names[name].write_text(text)
    argv, start = USER_ERRORS[case]
    argv = [a.format(**names) for a in argv]
    if argv[0] == "train":
        argv = ["--train_file", str(SAMPLE / "train.txt"), "--do_train"] + argv[1:]
    message = run_in_process(
        ["--model_name_or_path", str(tiny_encoder_dir), "--output_dir", str(names["out"]), "--report_to", "none"]
        + argv,
        capsys,
    )
    assert message.startswith(start.format(**names)), message
    assert not names["out"].exists() or not any(names["out"].iterdir())  # nothing trained, nothing written


def test_cli_exit_code_2_and_one_line_for_a_user_error(tmp_path, capsys):
    """A user mistake is one `run_ner_cl.py: error:` line and exit code 2 (in this process; the same path through a
    real `python run_ner_cl.py` process is `test_cli_push_to_hub_offline_fails_before_training`)."""
    message = run_in_process(
        [
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--output_dir",
            str(tmp_path / "o"),
            "--cl_loss",
            "kl",
            "--train_views",
            "sentence",
        ],
        capsys,
    )
    assert message == (
        "--cl_loss kl needs --train_views both: the CL loss compares the two views, and --train_views "
        "sentence trains one (use --cl_loss none, or leave it out)"
    )


# ---------------------------------------------------------------------------------------------------- resuming
def test_cli_resume_last_skips_an_incomplete_checkpoint_and_notes_it(
    tiny_encoder_dir, tmp_path, caplog, one_torch_thread
):
    import shutil

    from clner.run_utils import checkpoint_problem
    from run_ner_cl import main

    out = tmp_path / "out"
    common = [
        "--model_name_or_path",
        str(tiny_encoder_dir),
        "--train_file",
        str(SAMPLE / "train.txt"),
        "--max_train_samples",
        "16",
        "--per_device_train_batch_size",
        "8",
        "--do_train",
        "--report_to",
        "none",
        "--use_cpu",
        "--output_dir",
        str(out),
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
        "--max_seq_length",
        "64",
    ]
    main(common + ["--max_steps", "2"])
    assert checkpoint_problem(out / "checkpoint-1") is None and checkpoint_problem(out / "checkpoint-2") is None
    shutil.copytree(out / "checkpoint-2", out / "checkpoint-3")  # killed while saving: no trainer_state.json yet
    (out / "checkpoint-3" / "trainer_state.json").unlink()
    weights = out / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # and one killed while writing its weights
    assert checkpoint_problem(out / "checkpoint-3") == "no trainer_state.json"
    assert checkpoint_problem(out / "checkpoint-2").startswith("model.safetensors is truncated or corrupt")
    with caplog.at_level("WARNING"):
        main(common + ["--max_steps", "3", "--resume_from_checkpoint", "last"])
    assert (
        "skipping incomplete checkpoint-3 (no trainer_state.json), checkpoint-2 (model.safetensors is truncated"
        in caplog.text
        and f"resuming from {out / 'checkpoint-1'}" in caplog.text
    )
    results = json.loads((out / "train_results.json").read_text())
    assert results["train_resumed_from"] == str(out / "checkpoint-1")
    assert results["train_note"].startswith("resumed at step 1: train_loss and the speed metrics cover steps 2-3 only")


def fake_checkpoint(folder, id2label):
    """A checkpoint complete enough for `resolve_checkpoint` (the label check comes before any loading)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 3}))
    save_file({"w": torch.zeros(1)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(
        json.dumps({"model_type": "clner", "id2label": {str(i): label for i, label in enumerate(id2label)}})
    )
    return folder


@pytest.mark.parametrize("how", ["path", "last"])
def test_resume_from_a_checkpoint_with_other_labels_is_refused(tiny_encoder_dir, tmp_path, capsys, labels, how):
    out = tmp_path / "out"
    swapped = list(labels)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    ckpt = fake_checkpoint((out if how == "last" else tmp_path) / "checkpoint-3", swapped)
    value = "last" if how == "last" else str(ckpt)
    message = run_in_process(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--do_train",
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--resume_from_checkpoint",
            value,
        ],
        capsys,
    )
    ours, theirs = ", ".join(labels), ", ".join(swapped)
    assert message.startswith(
        f"--resume_from_checkpoint {value}: {ckpt} was trained for the labels [{theirs}] and "
        f"this run's are [{ours}] (in id order; id 1 is {swapped[1]!r} there and "
        f"{labels[1]!r} here)"
    ), message
    assert not out.exists() or {p.name for p in out.iterdir()} <= {"checkpoint-3"}  # nothing trained, nothing written


# ----------------------------------------------------------------------------------- runs that must stop cleanly
def test_diverged_run_stops_with_a_clear_error_and_writes_no_model(tiny_encoder_dir, tmp_path, capsys):
    out = tmp_path / "out"
    message = run_failing(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--test_file",
            str(SAMPLE / "dev.txt"),
            "--do_train",
            "--do_predict",
            "--max_steps",
            "4",
            "--learning_rate",
            "1e8",
            "--max_seq_length",
            "64",
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--logging_steps",
            "1",
            "--use_cpu",
            "--disable_tqdm",
            "true",
            "--output_dir",
            str(out),
        ],
        capsys,
    )
    assert message.startswith(
        "training diverged at step 2: the loss is nan (loss_nll nan, loss_nll_ext nan, "
        "loss_cl nan). Lower --learning_rate (now 1e+08)"
    ), message
    assert "check the training data" in message and f"were written to {out}" in message
    written = {p.name for p in out.iterdir()} if out.exists() else set()
    assert not written & {
        "model.safetensors",
        "README.md",
        "config.json",
        "predictions.txt",
        "predictions_context.txt",
        "all_results.json",
    }, written


def test_sigterm_mid_training_saves_a_checkpoint_that_resumes(tiny_encoder_dir, tmp_path, capsys, monkeypatch):
    """A SIGTERM mid-training (schedulers send one before a kill): the step finishes, a checkpoint is saved
    (whatever --save_strategy), the run exits 143 naming it and writes no final model, and
    `--resume_from_checkpoint last` continues from it."""
    import os

    import run_ner_cl
    from clner import run_utils
    from clner.cli import run_cli

    real = run_utils.StopOnSigterm.on_step_end

    def sigterm_at_step_2(self, args, state, control, **kwargs):
        if state.global_step == 2 and self.received is None:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the run's handler, in this (main) thread
        return real(self, args, state, control, **kwargs)

    out = tmp_path / "run"
    argv = [
        "--model_name_or_path",
        str(tiny_encoder_dir),
        "--train_file",
        str(SAMPLE / "train.txt"),
        "--do_train",
        "--max_steps",
        "4",
        "--per_device_train_batch_size",
        "8",
        "--max_seq_length",
        "64",
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--logging_steps",
        "1",
        "--do_eval",
        "--validation_file",
        str(SAMPLE / "dev.txt"),
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "1",
    ]
    monkeypatch.setattr(run_utils.StopOnSigterm, "on_step_end", sigterm_at_step_2)
    previous = signal.getsignal(signal.SIGTERM)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_cli(run_ner_cl.main, argv, prog="run_ner_cl.py")
    err = capsys.readouterr().err
    assert exit_.value.code == 143 and signal.getsignal(signal.SIGTERM) == previous  # the handler is taken down
    assert f"stopped by SIGTERM at step 2: checkpoint saved in {out / 'checkpoint-2'}" in err
    assert (out / "checkpoint-2" / "trainer_state.json").is_file() and not (out / "model.safetensors").exists()
    saved = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
    # no evaluation at the SIGTERM step (minutes on a real dev set would outlast a scheduler's notice)
    assert [h["step"] for h in saved if "eval_f1" in h] == [1]
    monkeypatch.setattr(run_utils.StopOnSigterm, "on_step_end", real)
    capsys.readouterr()
    assert run_cli(run_ner_cl.main, argv + ["--resume_from_checkpoint", "last"], prog="run_ner_cl.py") == 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and [h["step"] for h in state["log_history"] if "loss" in h][-2:] == [3, 4]


def test_a_second_run_or_another_models_files_in_the_output_folder_are_refused(tiny_encoder_dir, tmp_path, capsys):
    """One --output_dir for one run: a live run's lock is refused naming its process, a dead run's lock is taken
    over, and another model's files (a shard index that would be uploaded stale) are refused unless
    --overwrite_output_dir, which removes them first."""
    import os
    import subprocess
    import sys

    from clner.run_utils import LOCK_FILE

    out = tmp_path / "run"
    out.mkdir()
    argv = [
        "--model_name_or_path",
        str(tiny_encoder_dir),
        "--train_file",
        str(SAMPLE / "train.txt"),
        "--do_train",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "8",
        "--max_seq_length",
        "64",
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        "--save_strategy",
        "no",
    ]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_FILE).write_text(str(other.pid))
        message = run_in_process(argv, capsys)
        assert f"--output_dir {out} is being written by another run (process {other.pid}" in message
    finally:
        other.kill()
        other.wait()
    (out / "model.safetensors.index.json").write_text("{}")  # another model's (sharded) files
    (out / "model-00001-of-00002.safetensors").write_bytes(b"stale")
    message = run_in_process(argv, capsys)  # the dead run's lock is taken over; the stale model is refused
    assert "already holds a model (model.safetensors.index.json, model-00001-of-00002.safetensors)" in message
    assert "--overwrite_output_dir" in message
    from clner.cli import run_cli
    from run_ner_cl import main

    capsys.readouterr()
    assert run_cli(main, argv + ["--overwrite_output_dir"], prog="run_ner_cl.py") == 0
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and not names & {
        "model.safetensors.index.json",
        LOCK_FILE,
        "model-00001-of-00002.safetensors",
    }
    assert os.path.getsize(out / "model.safetensors") > 1000


def test_a_failed_final_save_names_the_checkpoint_it_keeps(tiny_encoder_dir, tmp_path, capsys, monkeypatch):
    """A final save that fails (a full disk) replaces nothing and leaves no partial file (the model is saved into a
    temporary folder first, run_config.json through `atomic_open`), and the message names the newest complete
    checkpoint, which is kept."""
    import errno

    real = CLNERForTokenClassification.save_pretrained

    def full_disk_at_the_end(self, save_directory, *args, **kwargs):
        if ".clner-tmp-" in str(save_directory):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, save_directory, *args, **kwargs)

    monkeypatch.setattr(CLNERForTokenClassification, "save_pretrained", full_disk_at_the_end)
    out = tmp_path / "run"
    message = run_failing(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(SAMPLE / "train.txt"),
            "--do_train",
            "--max_steps",
            "2",
            "--per_device_train_batch_size",
            "8",
            "--max_seq_length",
            "64",
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--save_strategy",
            "steps",
            "--save_steps",
            "1",
        ],
        capsys,
    )
    assert message.startswith(f"could not write the trained model to {out} (OSError: [Errno 28] No space left")
    assert f"the newest complete checkpoint, {out / 'checkpoint-2'}, is kept" in message
    names = {p.name for p in out.iterdir()}
    assert not names & {"model.safetensors", "run_config.json"} and not any(n.startswith(".") for n in names)


# --------------------------------------------------------------------------------------------- the Hub, records
def test_cli_push_to_hub_uploads_the_hub_folder(tiny_encoder_dir, tmp_path, monkeypatch):
    """`run_ner_cl.py --push_to_hub --hub_model_id ...`: one upload of the clner folder (no pickles, no checkpoints),
    with the user's revision / private / token, and no upload by the Trainer itself."""
    import run_ner_cl

    hub = FakeHub(monkeypatch)
    sample = REPO_ROOT / "examples" / "data"
    out = tmp_path / "clner-test"
    run_ner_cl.main(
        [
            "--model_name_or_path",
            str(tiny_encoder_dir),
            "--train_file",
            str(sample / "train.txt"),
            "--validation_file",
            str(sample / "dev.txt"),
            "--do_train",
            "--do_eval",
            "--max_train_samples",
            "16",
            "--max_eval_samples",
            "8",
            "--num_train_epochs",
            "1",
            "--max_seq_length",
            "64",
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--save_strategy",
            "no",
            "--push_to_hub",
            "--hub_model_id",
            "org/clner-test",
            "--hub_revision",
            "v1",
            "--hub_private_repo",
            "true",
            "--hub_token",
            HUB_TOKEN,
            "--token",
            HUB_TOKEN,
        ]
    )
    uploads = [c for c in hub.calls if c[0] == "upload_folder"]
    assert len(uploads) == 1 and uploads[0][1] == "org/clner-test"
    recorded = (out / "run_config.json").read_text()  # the run's arguments, next to the model: no credential
    assert HUB_TOKEN not in recorded and json.loads(recorded)["model"]["token"] == "<redacted>"
    sent = uploads[0][2]
    assert set(sent["files"]) >= EXPECTED_FILES and sent["revision"] == "v1" and sent["token"] == HUB_TOKEN
    assert not any(f.endswith((".bin", ".pt", ".pkl")) or f.startswith("checkpoint-") for f in sent["files"])
    assert not any(HUB_TOKEN.encode() in content for content in sent["files"].values())
    create = [c for c in hub.calls if c[0] == "create_repo"]
    assert create and create[0][2]["private"] is True and create[0][2]["token"] == HUB_TOKEN
    config = json.loads(sent["files"]["config.json"])
    assert list(config["custom_pipelines"]) == ["token-classification"] and config["auto_map"]["AutoModel"]
    card = ModelCard(sent["files"]["README.md"].decode())
    assert {"clner", "crf"} <= set(card.data.tags)
    assert card.data.base_model is None  # a local encoder path is not a Hub id


def test_cli_push_to_hub_offline_fails_before_training(tiny_encoder_dir, tmp_path, capsys):
    """With the Hub unreachable, `--push_to_hub` stops in seconds, before loading data or training, with one
    paragraph (no traceback) that says nothing was trained and how to upload later; a bad id stops the same way."""
    out = tmp_path / "never-trained"
    argv = [
        sys.executable,
        str(REPO_ROOT / "run_ner_cl.py"),
        "--model_name_or_path",
        str(tiny_encoder_dir),
        "--train_file",
        str(REPO_ROOT / "examples" / "data" / "train.txt"),
        "--do_train",
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        "--push_to_hub",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        argv + ["--hub_model_id", "org/clner-x"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Encoding train" not in proc.stderr + proc.stdout
    (message,) = [line for line in proc.stderr.splitlines() if line.startswith("run_ner_cl.py: error:")]
    assert re.fullmatch(
        r"run_ner_cl\.py: error: --push_to_hub: cannot create or reach the model repository "
        r"'org/clner-x' on the Hugging Face Hub \(\w+.*\)\. Nothing was trained\. Log in .*"
        r"\(HF_HUB_OFFLINE is set\).*upload the output folder later with `clner-push OUTPUT_DIR "
        r"org/clner-x`",
        message,
    )
    assert not out.exists() or not any(out.iterdir())
    # a bad id stops the same way (in this process: the subprocess above already showed the exit path)
    import run_ner_cl
    from clner.cli import run_cli

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_cli(run_ner_cl.main, argv[2:] + ["--hub_model_id", "org/bad id!"], prog="run_ner_cl.py")
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--hub_model_id 'org/bad id!' is not a valid Hub repository id" in err
    assert not out.exists() or not any(out.iterdir())


def test_cli_failed_upload_names_the_folder_and_the_command(tiny_encoder_dir, tmp_path, monkeypatch, capsys):
    import run_ner_cl

    hub = FakeHub(monkeypatch)

    def unreachable(api, **kwargs):
        raise ConnectionError("Network is unreachable")

    monkeypatch.setattr(HfApi, "upload_folder", unreachable)
    sample = REPO_ROOT / "examples" / "data"
    out = tmp_path / "clner-test"
    with pytest.raises(SystemExit) as exit_info:
        run_ner_cl.main(
            [
                "--model_name_or_path",
                str(tiny_encoder_dir),
                "--train_file",
                str(sample / "train.txt"),
                "--do_train",
                "--max_train_samples",
                "8",
                "--max_steps",
                "1",
                "--max_seq_length",
                "64",
                "--output_dir",
                str(out),
                "--report_to",
                "none",
                "--save_strategy",
                "no",
                "--push_to_hub",
                "--hub_model_id",
                "org/clner-test",
                "--hub_revision",
                "v1",
                "--hub_private_repo",
                "true",
            ]
        )
    assert exit_info.value.code == 1
    assert hub.names() == ["create_repo", "create_repo", "create_branch"]  # before training, then to upload
    captured = capsys.readouterr()
    assert captured.out.rstrip().endswith("=" * 100) and f"output folder: {out}" in captured.out
    assert captured.err.strip().splitlines()[-1].split(": ", 1)[1] == (
        "the upload to 'org/clner-test' failed (ConnectionError: Network is unreachable). The model "
        f"folder {out} is complete (weights, card, remote code, tokenizer); upload it with `clner-push {out} "
        "org/clner-test --revision v1 --private`"
    )
    assert set(check_hub_folder(out)) >= EXPECTED_FILES


def test_run_config_never_holds_a_credential():
    """`--token hf_...` (or any other credential) never reaches run_config.json, which lies next to the model and may
    be shared; the rest of the run's arguments are recorded as given."""
    import dataclasses

    import run_ner_cl
    from clner import arguments
    from clner.arguments import CLArguments

    model_args = arguments.ModelArguments(model_name_or_path="bert-base-cased", token=HUB_TOKEN)
    data_args = arguments.DataTrainingArguments(
        train_file="train.txt",
        token_column_name="words",
        context_source=f"https://user:{HUB_TOKEN}@example.org/contexts",
    )
    content = run_ner_cl.run_config(model_args, data_args, CLArguments(cl_loss="kl"))
    assert HUB_TOKEN not in json.dumps(content)
    assert content["model"]["token"] == "<redacted>" and content["model"]["model_name_or_path"] == "bert-base-cased"
    assert content["data"]["token_column_name"] == "words" and content["data"]["train_file"] == "train.txt"
    assert content["data"]["context_source"] == "https://user:<redacted>@example.org/contexts"
    assert content["cl"] == dataclasses.asdict(CLArguments(cl_loss="kl"))
    assert json.loads(json.dumps(content)) == content


# ----------------------------------------------------------------------------- checkpoints of another run
def test_overwrite_removes_old_checkpoints_and_resume_refuses_another_runs(tiny_encoder_dir, tmp_path, capsys):
    """Run A leaves checkpoints 2 and 4 (its max_steps 4). Run B, with other settings and --overwrite_output_dir,
    removes them; B's own checkpoint is the one `last` finds. A run with other settings never resumes a checkpoint
    it did not write; a new run refuses a folder holding another run's checkpoints."""
    out = tmp_path / "out"
    train(tiny_encoder_dir, out, "--max_steps", "4", "--learning_rate", "1e-3")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert (
        json.loads((out / "checkpoint-4" / "clner_run_settings.json").read_text())["training"]["learning_rate"] == 1e-3
    )
    train(tiny_encoder_dir, out, "--max_steps", "2", "--learning_rate", "5e-4", "--overwrite_output_dir")
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]  # A's checkpoint-4 is gone
    (out / "model.safetensors").unlink()  # as if B died before its final save
    line = error_of(capsys, train, tiny_encoder_dir, out, "--max_steps", "4", "--learning_rate", "1e-3",
                    "--resume_from_checkpoint", "last")  # fmt: skip
    assert "belongs to a run with other settings (--learning_rate 0.0005 there, 0.001 now)" in line, line
    # B's own settings resume it
    train(tiny_encoder_dir, out, "--max_steps", "4", "--learning_rate", "5e-4", "--resume_from_checkpoint", "last")
    assert (out / "checkpoint-4").is_dir()
    # a new run without --overwrite_output_dir refuses a folder with checkpoints and no model
    fresh = tmp_path / "fresh"
    train(tiny_encoder_dir, fresh, "--max_steps", "2")
    for name in ("model.safetensors", "config.json"):
        (fresh / name).unlink()
    line = error_of(capsys, train, tiny_encoder_dir, fresh, "--max_steps", "2")
    assert "already holds checkpoints of another run (checkpoint-2)" in line, line


def test_a_training_runs_files_follow_the_umask(tiny_encoder_dir, tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        train(tiny_encoder_dir, out, "--max_steps", "1", "--save_strategy", "no")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir() if p.is_file()}
    assert modes["model.safetensors"] == modes["run_config.json"] == modes["config.json"] == 0o644, modes
    assert Path(out).is_dir() and not list(out.glob(".clner-tmp-*"))


def test_training_refuses_a_stride_past_the_window(tiny_encoder_dir, tmp_path, capsys):
    line = error_of(capsys, train, tiny_encoder_dir, tmp_path / "o", "--max_seq_length", "32", "--window_stride", "40")
    assert "--window_stride 40 is not smaller than the 30 words a window of max_seq_length 32 can hold" in line


def test_training_mistakes_are_one_line(tmp_path, capsys):
    from run_ner_cl import cli

    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("hi")
    common = ["--do_train", "--output_dir", str(tmp_path / "o"), "--report_to", "none"]
    line = one_error_line(
        capsys, cli, ["--model_name_or_path", str(not_a_model), "--train_file", str(SAMPLE / "train.txt"), *common],
        "",
    )  # fmt: skip
    assert "cannot load a model config from it" in line
    line = one_error_line(capsys, cli, ["--dataset_name", "org/no-such-dataset", *common], "")
    assert "--dataset_name org/no-such-dataset: cannot load it" in line and "HF_HUB_OFFLINE" in line


def test_a_budget_smaller_than_the_longest_word_is_refused_naming_it(tiny_encoder_dir, tmp_path, capsys):
    """--max_seq_length 3 holds one sub-token after [CLS] and [SEP]: the sample's two-sub-token words are named."""
    argv = ["--max_seq_length", "3", "--window_stride", "0", "--max_steps", "1"]
    line = error_of(capsys, train, tiny_encoder_dir, tmp_path / "o", *argv)
    assert "--max_seq_length 3 is too small for the word" in line and "its 2 sub-tokens" in line, line


def test_a_run_with_nothing_to_do_is_refused_and_leaves_no_folder(tiny_encoder_dir, tmp_path, capsys):
    from run_ner_cl import main

    out = tmp_path / "o"
    line = error_of(capsys, main, ["--model_name_or_path", str(tiny_encoder_dir), "--train_file",
                                   str(SAMPLE / "train.txt"), "--output_dir", str(out)])  # fmt: skip
    assert "nothing to do: give --do_train" in line and not out.exists()
    line = error_of(capsys, train, tiny_encoder_dir, out, "--window_stride", "-1")  # refused after the lock
    assert "--window_stride -1 is negative" in line and not out.exists()
