"""The Hub side of publishing a CLNER model: the upload folder (`save_for_hub`, `check_hub_folder`: safetensors
weights, CLNER's remote code and no other, CLNER's `auto_map` only, no links), the upload (`push_to_hub`, which pins
the card's usage example to the uploaded commit), the early repository check of a training run
(`prepare_hub_repo`) and the `clner-push` command. The card itself is `clner.hub.model_card`'s.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shlex
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import HfApi, ModelCard
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

import modeling_clner
from clner.errors import HubError
from clner.files import atomic_path, staged_files, write_text
from clner.hub.model_card import REVISION_PLACEHOLDER, build_model_card, is_repo_id

logger = logging.getLogger(__name__)

#: Never uploaded: pickles (torch/TF/flax/sklearn/Trainer state), checkpoints, logs, caches.
HUB_IGNORE_PATTERNS = [
    "*.bin",
    "*.pt",
    "*.pth",
    "*.pkl",
    "*.pickle",
    "*.ckpt",
    "*.h5",
    "*.msgpack",
    "*.joblib",
    "*.npy",
    "*.npz",
    "checkpoint-*",
    "runs/*",
    "*/runs/*",
    "__pycache__/*",
    "*/__pycache__/*",
    "*.pyc",
    ".*",
    "*/.*",
    "trainer_state.json",
    "training_args.*",
    "optimizer.*",
    "scheduler.*",
    "rng_state*",
    "run_config.json",
    "clner_run_settings.json",
    "predictions*",  # the run's arguments (may hold a --token) and predicted data (run_ner.py's predictions.txt too)
]
#: Weight files that a previous save may have left; removed by `save_for_hub` (they would be stale).
STALE_WEIGHT_PATTERNS = [
    "pytorch_model*.bin",
    "pytorch_model.bin.index.json",
    "tf_model.h5",
    "flax_model.msgpack",
    "model.ckpt*",
]
_REQUIRED = ["config.json", *modeling_clner.REMOTE_CODE_FILES, "README.md", "tokenizer_config.json"]


# ------------------------------------------------------------------------------------------------- the folder
def _walk(folder: Path) -> tuple[list[str], list[str]]:
    """The regular files and the symbolic links under `folder` (relative POSIX paths, sorted), following no link: a
    link to a folder is one entry of the links, never entered; a link to a file is never counted as a file."""
    files, links = [], []
    for root, dirs, names in os.walk(folder, followlinks=False):
        base = Path(root)
        for name in dirs + names:
            path = base / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                links.append(rel)
            elif name in names and path.is_file():
                files.append(rel)
    return sorted(files), sorted(links)


def _upload_patterns(ignore_patterns: Sequence[str] | None) -> list[str]:
    return list(HUB_IGNORE_PATTERNS if ignore_patterns is None else ignore_patterns) + DEFAULT_IGNORE_PATTERNS


def hub_files(folder: str | os.PathLike, ignore_patterns: Sequence[str] | None = None) -> list[str]:
    """The files of `folder` that `push_to_hub` uploads (relative POSIX paths, sorted): every regular file but
    `HUB_IGNORE_PATTERNS` (and `.git`), and of code files only CLNER's own (`REMOTE_CODE_FILES`): a `.py` left in
    the folder by a base model or anyone else is never published next to the model. Symbolic links are never
    among them (see `hub_links`)."""
    files, _ = _walk(Path(folder))
    files = [f for f in files if not f.endswith(".py") or f in modeling_clner.REMOTE_CODE_FILES]
    return list(filter_repo_objects(files, ignore_patterns=_upload_patterns(ignore_patterns)))


def strip_tokenizer_auto_map(folder: str | os.PathLike) -> None:
    """Drop `auto_map` from a saved `tokenizer_config.json`: a base model's entry (e.g. `AutoTokenizer ->
    evil.EvilTok`) would make `AutoTokenizer.from_pretrained(model, trust_remote_code=True)` run code that is not
    CLNER's. CLNER models use a stock fast tokenizer."""
    path = Path(folder) / "tokenizer_config.json"
    if not path.is_file():
        return
    cfg = json.loads(path.read_text(encoding="utf-8"))
    if "auto_map" in cfg:
        logger.warning(
            "removing the base model's tokenizer auto_map %s from %s (remote code that is not CLNER's)",
            cfg.pop("auto_map"),
            path,
        )
        write_text(path, json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def hub_links(folder: str | os.PathLike, ignore_patterns: Sequence[str] | None = None) -> list[str]:
    """The symbolic links of `folder` that an upload would otherwise send (to a file, or to a folder whose files
    would be sent; relative POSIX paths, sorted): `check_hub_folder` refuses a folder with any, since an upload
    sends a link's target - which may lie outside the folder (a key, a home directory) - under the link's name."""
    _, links = _walk(Path(folder))
    patterns = _upload_patterns(ignore_patterns)
    kept = lambda path: bool(list(filter_repo_objects([path], ignore_patterns=patterns)))  # noqa: E731
    return [link for link in links if kept(link) and kept(f"{link}/file")]


def check_hub_folder(folder: str | os.PathLike) -> list[str]:
    """Check that `folder` is a complete, pickle-free CLNER Hub folder; returns the files to upload.

    Raises ValueError naming every problem: a symbolic link that the upload would send (`hub_links`: what it points
    to is never uploaded), a file that resolves outside the folder, a missing file (config, safetensors weights,
    remote code, tokenizer, README), `auto_map` / `custom_pipelines` entries missing from the config, a card whose
    YAML does not parse.
    """
    folder = Path(folder)
    files = hub_files(folder)
    problems = []
    links = hub_links(folder)
    if links:
        problems.append(
            "refusing symbolic links, which would upload what they point to (it may lie outside the "
            "folder): "
            + ", ".join(f"{link} -> {os.readlink(folder / link)}" for link in links)
            + " (replace each by a copy of the file it points to, or remove it)"
        )
    root = folder.resolve()
    outside = [f for f in files if not (folder / f).resolve().is_relative_to(root)]
    if outside:
        problems.append(f"files that resolve outside the folder: {', '.join(outside)}")
    problems += [f"missing {name}" for name in _REQUIRED if name not in files]
    if not any(f in files for f in ("model.safetensors", "model.safetensors.index.json")):
        problems.append("missing model.safetensors (weights must be safetensors)")
    if not any(
        f in files
        for f in (
            "tokenizer.json",
            "vocab.txt",
            "vocab.json",
            "sentencepiece.bpe.model",
            "spiece.model",
            "tokenizer.model",
        )
    ):
        problems.append("missing tokenizer files")
    if "config.json" in files:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        auto_map = cfg.get("auto_map") or {}
        for auto in ("AutoConfig", "AutoModel", "AutoModelForTokenClassification"):
            if not str(auto_map.get(auto, "")).startswith("modeling_clner."):
                problems.append(f"config.json auto_map lacks {auto} -> modeling_clner.*")
        foreign = {k: v for k, v in auto_map.items() if not str(v).startswith("modeling_clner.")}
        if foreign:  # another model's remote code, which every from_pretrained of this one would run
            problems.append(f"config.json auto_map holds entries that are not CLNER's: {foreign}")
        task = modeling_clner.PIPELINE_TASK
        published = cfg.get("custom_pipelines") or {}
        if published.get(task, {}).get("impl") != modeling_clner.custom_pipelines_config()[task]["impl"]:
            problems.append(f"config.json custom_pipelines lacks {task!r}")
        elif len(published) != 1:  # a task-less pipeline(model=repo) call refuses a config with several
            problems.append(f"config.json custom_pipelines lists {sorted(published)}; only {task!r} may be listed")
    if "tokenizer_config.json" in files:
        tok_cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        if tok_cfg.get("auto_map"):
            problems.append(
                f"tokenizer_config.json auto_map {tok_cfg['auto_map']} would run remote tokenizer code "
                "(CLNER models use a stock tokenizer)"
            )
    if "README.md" in files:
        try:
            ModelCard.load(folder / "README.md")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"README.md does not parse: {exc}")
    if problems:
        raise ValueError(f"{folder} is not ready for the Hub: " + "; ".join(problems))
    return files


def save_for_hub(model, tokenizer, output_dir: str | os.PathLike, card: ModelCard | None = None) -> Path:
    """Write the complete folder to upload: safetensors weights, config (with `auto_map` and `custom_pipelines`),
    `modeling_clner.py` + `pipeline_clner.py`, the tokenizer and `README.md`: `card` (replacing an existing card, with
    a warning), else the card already there, else a minimal card without results. Stale pickle weight files of an
    earlier save in `output_dir` are removed; other files are left alone (and `push_to_hub` does not upload pickles,
    checkpoints or logs). Returns the folder, checked by `check_hub_folder`."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for pattern in STALE_WEIGHT_PATTERNS:
        for stale in out.glob(pattern):
            logger.warning("save_for_hub: removing stale weights %s (only safetensors are published)", stale)
            stale.unlink()
    with staged_files(out) as staging:  # each file replaces its namesake whole, by a rename
        model.save_pretrained(staging)  # weights, config, and every remote-code file next to the model's own module
        modeling_clner.save_remote_code(staging)  # any that module lacked (a Hub copy loaded without its pipeline)
        tokenizer.save_pretrained(staging)
        strip_tokenizer_auto_map(staging)
    readme = out / "README.md"
    if card is None and readme.exists():
        logger.info("save_for_hub: keeping the existing model card %s", readme)
    else:
        if card is None:
            name = getattr(model.config, "_name_or_path", None) or getattr(model.config, "name_or_path", None)

            card = build_model_card(model.config, {}, base_model=name if is_repo_id(name) else None)
        if readme.exists() and readme.read_text(encoding="utf-8") != str(card):
            logger.warning(
                "save_for_hub: replacing the model card %s with a new one (call save_for_hub without "
                "card= to keep an existing card)",
                readme,
            )
        with atomic_path(readme) as tmp:
            card.save(tmp)
    check_hub_folder(out)
    return out


# ------------------------------------------------------------------------------------------------------- push
def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    revision: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    create_pr: bool = False,
    *,
    pin_revision: bool = True,
    api: HfApi | None = None,
):
    """Upload a folder written by `save_for_hub` to the model repository `repo_id`.

    Creates the repository when needed (`private` applies then), the branch `revision` when given, uploads exactly
    the files that `check_hub_folder` returns in one `upload_folder` call (its `allow_patterns` name each one):
    regular files but `HUB_IGNORE_PATTERNS` - no pickles, checkpoints or logs, and never a symbolic link (a folder
    with one that the upload would send is refused, naming it). With `pin_revision`, it then replaces
    `REVISION_PLACEHOLDER` in the card's usage example by the uploaded commit (a second, README-only commit; the
    local README is updated too). `create_pr=True` opens a pull request against the default branch instead (it
    cannot be combined with `revision`). Returns the `CommitInfo` of the upload.
    """
    folder = Path(folder)
    files = check_hub_folder(folder)
    if isinstance(token, str) and len(token) >= 8:
        leaks = [
            f
            for f in files
            if (folder / f).stat().st_size < 10_000_000 and token.encode() in (folder / f).read_bytes()
        ]
        if leaks:
            raise ValueError(f"refusing to upload: the Hub token appears in {leaks}")
    if create_pr and revision not in (None, "main"):
        raise ValueError("create_pr=True opens a pull request against the default branch; do not set revision too")

    api = api or HfApi(token=token)
    url = api.create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model")
    repo_id = getattr(url, "repo_id", None) or repo_id
    if revision and revision != "main" and not create_pr:
        api.create_branch(repo_id, branch=revision, token=token, exist_ok=True, repo_type="model")
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        commit_message=commit_message or "Upload CLNER model (weights, remote code, tokenizer, model card)",
        token=token,
        repo_type="model",
        revision=None if create_pr else revision,
        create_pr=create_pr,
        allow_patterns=[glob.escape(f) for f in files],  # the checked files only: no link, nothing added since
        ignore_patterns=list(HUB_IGNORE_PATTERNS),
    )
    readme = folder / "README.md"
    text = readme.read_text(encoding="utf-8")
    oid = getattr(info, "oid", None)
    if pin_revision and oid and REVISION_PLACEHOLDER in text:
        text = text.replace(REVISION_PLACEHOLDER, oid)
        write_text(readme, text)
        api.upload_file(
            path_or_fileobj=text.encode("utf-8"),
            path_in_repo="README.md",
            repo_id=repo_id,
            token=token,
            repo_type="model",
            revision=getattr(info, "pr_revision", None) if create_pr else revision,
            commit_message=f"Pin the model card's usage example to revision {oid[:10]}",
        )
    return info


def upload_command(
    folder: str | os.PathLike, repo_id: str, revision: str | None = None, private: bool | None = None
) -> str:
    """The command that uploads a folder written by `save_for_hub` (the `clner-push` console command)."""
    parts = ["clner-push", shlex.quote(str(folder)), shlex.quote(repo_id)]
    if revision and revision != "main":
        parts += ["--revision", shlex.quote(revision)]
    if private:
        parts.append("--private")
    return " ".join(parts)


def prepare_hub_repo(
    repo_id: str, *, token: str | bool | None = None, private: bool | None = None, api: HfApi | None = None
) -> str:
    """Create (or find) the model repository `repo_id` before training, as the Trainer's own `init_hf_repo` does, so
    that a bad id, a missing login or an unreachable Hub fails in seconds rather than after training. Returns the
    repository id; raises `HubError` (its message names the cause and the fixes)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise HubError(
            f"--hub_model_id {repo_id!r} is not a valid Hub repository id ({exc}); use 'name' or "
            "'organisation/name' (letters, digits, '-', '_', '.')"
        ) from None
    api = api or HfApi(token=token)
    try:
        url = api.create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model")
    except Exception as exc:  # noqa: BLE001 - offline, no token, no rights, network: all end here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        offline = os.environ.get("HF_HUB_OFFLINE", "")
        raise HubError(
            f"--push_to_hub: cannot create or reach the model repository {repo_id!r} on the Hugging Face Hub "
            f"({type(exc).__name__}{': ' + reason if reason else ''}). Nothing was trained. Log in (`hf auth login`) "
            f"or pass --hub_token, check the network{' (HF_HUB_OFFLINE is set)' if offline not in ('', '0') else ''}"
            " and --hub_model_id, or train without --push_to_hub and upload the output folder later with "
            f"`{upload_command('OUTPUT_DIR', repo_id)}`"
        ) from None
    return getattr(url, "repo_id", None) or repo_id
