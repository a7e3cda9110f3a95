"""Writing outputs so that nothing is lost: every file or folder the commands write goes to a temporary name beside
its destination and is renamed over it when complete. A run killed partway (a full disk, SIGKILL) leaves the earlier
output whole, never a shorter file that still reads as valid. A new file's mode follows the umask, as `open()`'s
does, and a replaced file keeps its mode."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

#: the prefix of every temporary output: `remove_litter` finds a killed run's leftovers by it
TEMP_PREFIX = ".clner-tmp-"


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (os.umask can only be read by setting it,
    which races with other threads)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_mode(path: str | os.PathLike, directory: bool = False) -> int:
    """The permission bits an output at `path` gets: those of the file it replaces, else the umask's default."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return (0o777 if directory else 0o666) & ~_umask()


def _temporary_name(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", dir=path.parent)
    os.close(fd)
    os.unlink(name)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` for a writer that takes a path (`Dataset.to_parquet`, `save_to_disk`, ...):
    when the block ends it replaces `path` (a folder: the old one is moved aside, the new one renamed in, the old one
    removed); when the block fails it is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = output_mode(path, directory)
    tmp = _temporary_name(path)
    try:
        yield tmp
        if directory:
            tmp.chmod(mode)
            old = _temporary_name(path) if path.exists() else None
            if old is not None:
                os.replace(path, old)
            os.replace(tmp, path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.chmod(tmp, mode)
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """`open(path, mode)` for writing through `atomic_path`: the file appears whole when the block ends."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8, ``\\n`` line ends) to `path` atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def apply_umask(folder: str | os.PathLike) -> None:
    """Give the files a library wrote into `folder` (the Trainer's checkpoints, safetensors' weights, which it
    creates 0600) the mode a new file gets under the umask."""
    mode = 0o666 & ~_umask()
    for item in Path(folder).iterdir():
        if item.is_file() and not item.is_symlink():
            os.chmod(item, mode)


@contextlib.contextmanager
def staged_files(folder: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder inside `folder` for a writer that saves several files (`save_pretrained`); when the block
    ends each file replaces its namesake in `folder` by a rename (a replaced file keeps its mode, a new one follows
    the umask); when it fails nothing in `folder` changes. Subfolders are moved whole."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}staging-", dir=out))
    try:
        yield staging
        apply_umask(staging)
        for item in sorted(staging.iterdir()):
            target = out / item.name
            if item.is_file() and target.is_file():
                os.chmod(item, output_mode(target))
            if item.is_dir() and target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_litter(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary outputs a killed run left in `folder` (names starting with `TEMP_PREFIX`); returns
    them, so that the caller can say what it removed."""
    found = sorted(Path(folder).glob(f"{TEMP_PREFIX}*")) if Path(folder).is_dir() else []
    for item in found:
        if item.is_dir() and not item.is_symlink():
            shutil.rmtree(item, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                item.unlink()
    return found
