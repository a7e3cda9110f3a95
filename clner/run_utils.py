"""The plumbing of a training run, apart from its recipe (`run_ner_cl.py`): the output folder's lock and checks,
checkpoints (finding, checking, resuming), the safe final save, SIGTERM, compact logs, credential redaction for
`run_config.json`, and the summary block that ends every run."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import zipfile
from dataclasses import asdict
from pathlib import Path

from transformers import TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

from clner.arguments import DataTrainingArguments
from clner.errors import CLNERUsageError
from clner.files import apply_umask, remove_litter, staged_files, write_text
from clner.metrics import best_evaluation, parse_view_metrics, per_type_metric
from modeling_clner import REMOTE_CODE_FILES

logger = logging.getLogger(__name__)


class StopOnSigterm(TrainerCallback):
    """SIGTERM (which schedulers send before a kill) during training: the current step finishes, a checkpoint is
    saved (whatever --save_strategy), training stops and the run exits 143 naming the checkpoint, so that
    `--resume_from_checkpoint last` continues from it."""

    def __init__(self):
        self.received: int | None = None

    @contextlib.contextmanager
    def installed(self):
        """The handler, for the duration of `Trainer.train` (in the main thread; elsewhere nothing is installed)."""
        try:
            previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:  # not the main thread
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _handle(self, signum, frame) -> None:
        self.received = signum
        logger.warning("SIGTERM: saving a checkpoint at the end of this step, then stopping")

    def on_step_end(self, args, state, control, **kwargs):
        if self.received is not None:  # save now; an evaluation (minutes on a large dev set) would outlast the notice
            control.should_save = True
            control.should_evaluate = False
            control.should_training_stop = True
        return control

    on_epoch_end = on_step_end  # the step that ends an epoch: its evaluation is skipped too

    def report(self, trainer) -> None:
        step = trainer.state.global_step
        folder = Path(trainer.args.output_dir) / f"checkpoint-{step}"
        print(
            f"{os.path.basename(sys.argv[0])}: stopped by SIGTERM at step {step}: checkpoint saved in {folder}; "
            f"continue with --resume_from_checkpoint last (the same flags otherwise). No final model, card or "
            "predictions were written.",
            file=sys.stderr,
        )
        sys.exit(128 + signal.SIGTERM)


class _CompactLogs:
    """Training logs without per-entity-type metrics (printed once, as a table, at the end of the run)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = {k: v for k, v in (logs or {}).items() if not per_type_metric(k)}
        return super().on_log(args, state, control, logs=logs, **kwargs)


class CompactProgressCallback(_CompactLogs, ProgressCallback):
    pass


class CompactPrinterCallback(_CompactLogs, PrinterCallback):
    pass


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file cannot be loaded (None when it can): `safe_open` checks the header and that the data
    it describes is all in the file, which a save killed partway leaves short."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            f.keys()
    except SafetensorError as exc:
        return f"{path.name} is truncated or corrupt ({exc})"
    except OSError as exc:
        return f"{path.name} is unreadable ({exc})"
    return None


def checkpoint_problem(folder: Path) -> str | None:
    """Why a Trainer checkpoint cannot be resumed from (None when it is complete). The Trainer writes
    trainer_state.json last, so a checkpoint killed while saving lacks it or holds a truncated file."""
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "trainer_state.json is truncated"
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("pytorch_model*.bin"))
    if not weights:
        return "no model weights"
    for path in weights:
        problem = _safetensors_problem(path) if path.suffix == ".safetensors" else None
        if problem:
            return problem
    for path in sorted(folder.glob("*.pt")) + sorted(folder.glob("*.pth")) + sorted(folder.glob("*.bin")):
        if not zipfile.is_zipfile(path):  # torch.save writes zip archives; a truncated one has no directory
            return f"{path.name} is truncated"
    return None


def checkpoint_folders(output_dir: str | os.PathLike) -> list[Path]:
    """The Trainer's `checkpoint-<step>` folders of `output_dir`, by step (the newest last)."""
    pattern = re.compile(r"^checkpoint-(\d+)$")
    folder = Path(output_dir)
    found = sorted(
        (int(m.group(1)), p)
        for p in (folder.iterdir() if folder.is_dir() else [])
        if p.is_dir() and (m := pattern.match(p.name))
    )
    return [p for _, p in found]


def resolve_checkpoint(value: str | None, output_dir: str) -> str | None:
    """--resume_from_checkpoint: `last` (or true) is the newest complete checkpoint of output_dir; an incomplete newer
    one (killed while saving) is skipped with a warning. An explicit incomplete checkpoint is an error."""
    if value in (None, "", "False", "false"):
        return None
    if value not in ("last", "True", "true"):
        problem = checkpoint_problem(Path(value)) if Path(value).is_dir() else "not a directory"
        if problem:
            raise CLNERUsageError(
                f"--resume_from_checkpoint {value}: cannot resume from it ({problem}); pass "
                "--resume_from_checkpoint last for the newest complete checkpoint"
            )
        return value
    skipped = []
    for path in reversed(checkpoint_folders(output_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            if skipped:
                logger.warning(
                    f"--resume_from_checkpoint last: skipping incomplete {', '.join(skipped)} (killed "
                    f"while saving?); resuming from {path}, the newest complete checkpoint"
                )
            return str(path)
        skipped.append(f"{path.name} ({problem})")
    if skipped:
        raise CLNERUsageError(
            f"--resume_from_checkpoint last: no complete checkpoint in {output_dir}: {'; '.join(skipped)}"
        )
    raise CLNERUsageError(f"--resume_from_checkpoint last: no checkpoint in {output_dir}")


#: the run's settings, written into each checkpoint: a resume checks that the checkpoint belongs to this run
RUN_SETTINGS_FILE = "clner_run_settings.json"
#: the settings a checkpoint must share with the run that resumes it (others, such as the number of epochs or the
#: evaluation data, may change on resume); every CL option counts
RESUME_SETTINGS = {
    "model": ("model_name_or_path", "config_name"),
    "data": (
        "dataset_name",
        "dataset_config_name",
        "train_file",
        "unlabeled_file",
        "max_train_samples",
        "max_seq_length",
        "window_stride",
        "tag_scheme",
    ),
    "training": (
        "learning_rate",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "weight_decay",
        "seed",
    ),
}


def run_settings(model_args, data_args, cl_args, training_args) -> dict:
    """What makes a training run the run it is (`RESUME_SETTINGS` and every CL option), local paths absolute."""

    def value(args, name):
        v = getattr(args, name, None)
        return (
            os.path.abspath(v) if isinstance(v, str) and name.endswith(("_file", "_path")) and os.path.exists(v) else v
        )

    settings = {
        group: {name: value(args, name) for name in RESUME_SETTINGS[group]}
        for group, args in (("model", model_args), ("data", data_args), ("training", training_args))
    }
    settings["cl"] = dict(sorted(asdict(cl_args).items()))
    return redact_credentials(settings)


class SaveRunSettings(TrainerCallback):
    """Writes the run's settings (`run_settings`) into every checkpoint the Trainer saves."""

    def __init__(self, settings: dict):
        self.settings = settings

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            apply_umask(folder)
            write_text(folder / RUN_SETTINGS_FILE, json.dumps(self.settings, indent=2, sort_keys=True) + "\n")
        return control


def check_resume_settings(checkpoint: str, settings: dict, flag_value: str) -> None:
    """Refuse to resume a checkpoint that another run wrote (other data, encoder, sequence budget, CL options,
    learning rate, batch size or seed), naming what differs: continuing it would return that run's model as this
    one's. A checkpoint without recorded settings is resumed with a warning."""
    path = Path(checkpoint) / RUN_SETTINGS_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        logger.warning(
            f"{checkpoint} records no run settings ({RUN_SETTINGS_FILE}): cannot check that it belongs to this run"
        )
        return
    differ = [
        f"--{name} {saved.get(group, {}).get(name)!r} there, {value!r} now"
        for group, values in settings.items()
        for name, value in values.items()
        if saved.get(group, {}).get(name) != value
    ]
    if differ:
        raise CLNERUsageError(
            f"--resume_from_checkpoint {flag_value}: {checkpoint} belongs to a run with other settings "
            f"({'; '.join(differ)}): resuming it would continue that run, not this one. Resume with that run's "
            "settings, or start afresh with --overwrite_output_dir (it removes the old checkpoints) or another "
            "--output_dir"
        )


def _label_names(id2label: dict[int, str]) -> str:
    return "[" + ", ".join(id2label[i] for i in sorted(id2label)) + "]"


def check_resume_labels(checkpoint: str, label_list: list[str], flag_value: str) -> None:
    """Refuse resuming from a checkpoint whose labels (config.json `id2label`) are not this run's, in the same id
    order: its emission layer and CRF would score every tag id as another label, with no error to show it (a
    training file with a label more, or other --tag_names, renumbers them)."""
    try:
        saved = json.loads((Path(checkpoint) / "config.json").read_text(encoding="utf-8")).get("id2label")
        saved = {int(k): v for k, v in saved.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return  # no readable labels to compare (the Trainer reports a checkpoint it cannot load)
    ours = dict(enumerate(label_list))
    if saved == ours:
        return
    differ = next((i for i in sorted(set(saved) | set(ours)) if saved.get(i) != ours.get(i)), None)
    where = (
        f"; id {differ} is {saved.get(differ, 'missing')!r} there and {ours.get(differ, 'missing')!r} here"
        if differ is not None
        else ""
    )
    raise CLNERUsageError(
        f"--resume_from_checkpoint {flag_value}: {checkpoint} was trained for the labels "
        f"{_label_names(saved)} and this run's are {_label_names(ours)} (in id order{where}): "
        "resumed, its emission layer and CRF would score each tag as another. Resume with that "
        "run's training data (and --tag_names), or train afresh without --resume_from_checkpoint"
    )


LOCK_FILE = ".clner-run.lock"


#: what a model folder holds: another model's files in a training run's --output_dir (a stale shard index, say)
#: would be mixed with the new model's, and uploaded with it
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


@contextlib.contextmanager
def output_dir_lock(training_args: TrainingArguments):
    """While a training run writes its --output_dir, `.clner-run.lock` there names its process (`process_identity`:
    the process id with its start time and the machine's boot id, so that a reused id, as after a container restart
    where the trainer is process 1, is not mistaken for the run): a second run on the same folder is refused naming
    it; a lock whose process is gone is taken over, with a warning. The run that holds the lock removes the temporary
    files a killed run left there (`clner.files.remove_litter`), saying so. Only the main process of a distributed
    run takes it."""
    if not training_args.do_train or not training_args.should_save:
        yield
        return
    out = Path(training_args.output_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK_FILE
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            pid, identity = _read_lock(lock)
            if pid and _lock_holder_alive(pid, identity):
                raise CLNERUsageError(
                    f"--output_dir {out} is being written by another run (process {pid}, "
                    f"{lock}): two runs in one folder would overwrite each other's model and "
                    "checkpoints; give another --output_dir, or wait for that run"
                ) from None
            logger.warning(f"taking over {lock}: its process {pid or '?'} is gone (a run that was killed)")
            lock.unlink(missing_ok=True)
    else:  # pragma: no cover - the lock reappeared between the two tries
        raise CLNERUsageError(f"--output_dir {out} is being written by another run ({lock})")
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "identity": process_identity(os.getpid())}, f)
    for item in remove_litter(out):
        logger.warning(f"removed {item}, left by a run that was killed while writing")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        if created and not any(out.iterdir()):  # a run refused before writing anything leaves no empty folder
            out.rmdir()


def process_identity(pid: int) -> str | None:
    """`<boot id>:<pid>:<start time>` of a running process (Linux's /proc), which no later process shares even when
    it gets the same id; None where /proc does not tell."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after the command name: state is field 3, starttime field 22
    return f"{boot}:{pid}:{fields[19]}" if len(fields) > 19 else None


def _read_lock(lock: Path) -> tuple[int, str | None]:
    """The process id and identity a lock file records (a bare process id is read too)."""
    try:
        text = lock.read_text().strip()
    except OSError:
        return 0, None
    try:
        data = json.loads(text or "0")
    except ValueError:
        return 0, None
    if isinstance(data, dict):
        pid = data.get("pid")
        return (pid if isinstance(pid, int) else 0), data.get("identity")
    return (data if isinstance(data, int) else 0), None


def _lock_holder_alive(pid: int, identity: str | None) -> bool:
    """Whether the process a lock names still runs: the same identity where one was recorded and /proc tells."""
    now = process_identity(pid)
    if identity is not None and now is not None:
        return now == identity
    if identity is not None and Path("/proc").is_dir() and now is None:
        return False
    return _process_alive(pid)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def save_model_safely(trainer) -> None:
    """`trainer.save_model()` into a temporary folder inside --output_dir, whose files then replace the folder's:
    a save that fails (a full disk) leaves no half-written weights in place of a good model, and the error names
    the checkpoint that was kept, to resume from."""
    out = Path(trainer.args.output_dir)
    try:
        with staged_files(out) as staging:
            trainer.save_model(str(staging))
    except Exception as exc:  # noqa: BLE001 - turned into one message that says what is left
        checkpoints = [p for p in checkpoint_folders(out) if checkpoint_problem(p) is None]
        kept = (
            f"the newest complete checkpoint, {checkpoints[-1]}, is kept: continue with --resume_from_checkpoint last"
            if checkpoints
            else "no checkpoint was saved (--save_strategy steps or epoch keeps one)"
        )
        raise CLNERUsageError(
            f"could not write the trained model to {out} ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())}); nothing of it replaced earlier files, {kept}. Free "
            "space or give another --output_dir"
        ) from None


def check_output_dir(
    data_args: DataTrainingArguments, training_args: TrainingArguments, model_path: str, checkpoint: str | None
) -> None:
    """A training run's --output_dir may already hold a model only when the run continues it: it resumes a
    checkpoint there, or it trains the model in that folder in place. Another model's files are refused unless
    --overwrite_output_dir, which removes them first (so that no stale weight shard or index survives)."""
    out = Path(training_args.output_dir)
    if not training_args.do_train or checkpoint or not out.is_dir():
        return
    if Path(model_path).is_dir() and os.path.samefile(model_path, out):
        return
    found = [name for name in MODEL_FILES if (out / name).exists()] + sorted(
        p.name for p in out.glob("model-*-of-*.safetensors")
    )
    checkpoints = checkpoint_folders(out)
    if not found and not checkpoints:
        return
    if not data_args.overwrite_output_dir:
        held = ", ".join(found + [p.name for p in checkpoints][-3:])
        raise CLNERUsageError(
            f"--output_dir {out} already holds {'a model' if found else 'checkpoints of another run'} ({held}): "
            "this run's files would be mixed with them, and --resume_from_checkpoint last would later pick theirs. "
            "Pass --overwrite_output_dir to replace them (they are removed first), --resume_from_checkpoint last "
            "to continue that run, or another --output_dir"
        )
    for name in found + [p.name for p in out.glob("pytorch_model-*-of-*.bin")]:
        logger.warning(f"--overwrite_output_dir: removing {out / name} of the earlier model")
        (out / name).unlink(missing_ok=True)
    for folder in checkpoints:
        logger.warning(f"--overwrite_output_dir: removing {folder} of the earlier run")
        shutil.rmtree(folder)


#: keys whose string value is always a credential; besides them, any key naming a token, password, secret or API key
_CREDENTIAL_KEYS = {"token", "hub_token", "use_auth_token"}


_HF_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{20,}")


REDACTED = "<redacted>"


def redact_credentials(obj):
    """A copy of `obj` (dicts, lists and scalars, as `asdict` gives them) in which no credential is left, for files
    written next to the model (run_config.json, which may be shared or uploaded): the string value of `token`,
    `hub_token` or `use_auth_token`, or of a key naming a password, a secret or an API key, and a Hub token ("hf_...")
    under any key naming a token or inside any other string (a URL, say), become "<redacted>". Everything else is
    kept as it is (`hub_always_push`, `token_column_name`, `token=True`), so that the file still records the run."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            name = str(key).lower()
            secret = (
                isinstance(value, str)
                and bool(value)
                and (
                    name in _CREDENTIAL_KEYS
                    or any(w in name for w in ("password", "secret", "api_key", "apikey"))
                    or ("token" in name and value.startswith("hf_"))
                )
            )
            out[key] = REDACTED if secret else redact_credentials(value)
        return out
    if isinstance(obj, (list, tuple)):
        return [redact_credentials(v) for v in obj]
    return _HF_TOKEN_RE.sub(REDACTED, obj) if isinstance(obj, str) and _HF_TOKEN_RE.search(obj) else obj


# ---------------------------------------------------------------------------------------------------- the summary
_FILE_GROUPS = (
    (
        "model",
        (
            "model.safetensors",
            "model.safetensors.index.json",
            "config.json",
            *REMOTE_CODE_FILES,
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "vocab.txt",
            "vocab.json",
            "merges.txt",
            "sentencepiece.bpe.model",
            "spiece.model",
        ),
    ),
    ("model card", ("README.md", "training_curves.png")),
    ("predictions", ("predictions.txt", "predictions_sentence.txt", "predictions_context.txt")),
    (
        "results",
        (
            "all_results.json",
            "train_results.json",
            "eval_results.json",
            "predict_results.json",
            "trainer_state.json",
            "run_config.json",
        ),
    ),
)


def kept_model(state_file: Path, training_args) -> str | None:
    """Which evaluation's model a run with --load_best_model_at_end kept (from trainer_state.json): its epoch,
    step and metric; None without that flag or that file."""
    if not getattr(training_args, "load_best_model_at_end", False):
        return None
    try:
        state = json.loads(Path(state_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    best = best_evaluation(state.get("log_history", []), state.get("best_model_checkpoint"))
    if best is None:
        return None
    (step, epoch), value = best, state.get("best_metric")
    metric = training_args.metric_for_best_model or "loss"
    where = f"epoch {epoch:g}, step {step}" if epoch is not None else f"step {step}"
    shown = f"{metric} {value:.4f}" if isinstance(value, (int, float)) else metric
    return f"the best evaluation's, {where} ({shown}; --load_best_model_at_end)"


def _split_source(data_args: DataTrainingArguments, split: str) -> str:
    path = {"validation": data_args.validation_file, "test": data_args.test_file}.get(split)
    if path:
        return str(path)
    return f"{data_args.dataset_name}[{split}]" if data_args.dataset_name else split


def run_summary(
    metrics: dict,
    data_args: DataTrainingArguments,
    training_args: TrainingArguments,
    raw,
    started: float,
    prediction_view: str | None = None,
    per_type: bool = False,
    model_path: str | None = None,
) -> str:
    """What ends a run: the per-type F1 table (once, with --return_entity_level_metrics), then the summary block:
    both views' F1 on each evaluated split (named), the output folder and the files this run wrote into it."""
    rule = "=" * 100
    splits = [
        (name, prefix, split)
        for name, prefix, split in (("dev", "eval", "validation"), ("test", "predict", "test"))
        if any(k.startswith(f"{prefix}_sentence_") for k in metrics)
    ]
    parsed = {name: parse_view_metrics(metrics, prefix) for name, prefix, _ in splits}
    lines = []
    types = sorted({t for views in parsed.values() for view in views.values() for t in view["types"]})
    if per_type and types:
        lines += [
            "",
            "per entity type, F1 (%) [gold entities]:",
            f"{'type':<19} "
            + " ".join(f"{f'{name} {v}':>15}" for name, _, _ in splits for v in ("sentence", "context"))
            + "   support",
        ]
        for t in types:
            cells, support = [], []
            for name, _, _ in splits:
                for v in ("sentence", "context"):
                    value = parsed[name].get(v, {}).get("types", {}).get(t, {}).get("f1")
                    cells.append(f"{100 * value:>15.2f}" if value is not None else f"{'-':>15}")
                n = parsed[name].get("context", parsed[name].get("sentence", {})).get("types", {}).get(t, {})
                support.append(f"{name} {int(n['number'])}" if "number" in n else "")
            lines.append(f"{t:<19} " + " ".join(cells) + "   " + ", ".join(s for s in support if s))
    lines += ["", rule, "clner run summary", rule]
    if splits:
        lines.append(f"{'entity-level F1 (%)':<19} {'sentence view':>13} {'context view':>13} {'mean':>7}   data")
        for name, prefix, split in splits:
            views = parsed[name]
            f1 = [views.get(v, {}).get("overall", {}).get("f1") for v in ("sentence", "context")]
            mean = metrics.get(f"{prefix}_f1")
            cells = [f"{100 * x:>13.2f}" if x is not None else f"{'-':>13}" for x in f1]
            size = f", {len(raw[split])} sentences" if raw is not None and split in raw else ""
            lines.append(
                f"{name:<19} {cells[0]} {cells[1]} {100 * mean if mean is not None else float('nan'):>7.2f}"
                f"   {_split_source(data_args, split)}{size}"
            )
    else:
        lines.append("no evaluation (add --do_eval with --validation_file, or --do_predict with --test_file)")
    out = Path(training_args.output_dir).absolute()
    kept = kept_model(out / "trainer_state.json", training_args) if training_args.do_train else None
    if kept:
        lines.append(f"model kept: {kept}")
    lines.append(f"output folder: {out}")
    written = (
        {p.name for p in out.iterdir() if p.is_file() and p.stat().st_mtime >= started - 1} if out.is_dir() else set()
    )
    for group, names in _FILE_GROUPS:
        files = [n for n in names if n in written]
        if group == "predictions" and prediction_view and "predictions.txt" in files:
            files[files.index("predictions.txt")] = f"predictions.txt ({prediction_view} view, run_ner.py format)"
        if files:
            lines.append(f"  {group + ':':<13}{', '.join(files)}")
        elif group in ("model", "model card") and not training_args.do_train:
            lines.append(f"  {group + ':':<13}none (no --do_train: the model {model_path} was only evaluated)")
    checkpoints = [p for p in checkpoint_folders(out) if p.stat().st_mtime >= started - 1]
    if checkpoints:  # the Trainer's, by --save_strategy (each a full copy of the model and the optimizer state)
        size = sum(f.stat().st_size for c in checkpoints for f in c.rglob("*") if f.is_file()) / 2**20
        lines.append(
            f"  {'checkpoints:':<13}{', '.join(c.name for c in checkpoints)} ({size:,.0f} MiB; "
            "--save_strategy no keeps none)"
        )
    if "README.md" in written and not (
        getattr(data_args, "dataset_name", None) or getattr(data_args, "dataset_card_name", None)
    ):
        lines.append(
            "  the card has no model-index (the Hub shows no results): name the data with "
            "--dataset_card_name (e.g. 'WNUT-17') or train from a Hub --dataset_name"
        )
    lines.append(rule)
    return "\n".join(lines)
