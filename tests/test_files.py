"""Writing outputs whole or not at all (`clner.files`)."""

import errno
import os
import stat

import pytest

from clner.files import atomic_open


def test_atomic_open_leaves_the_earlier_file_whole_when_writing_fails(tmp_path):
    """A failure inside `atomic_open` leaves the earlier file whole and no temporary file; a write that ends
    replaces it."""
    target = tmp_path / "results.json"
    target.write_text("earlier")
    with pytest.raises(OSError), atomic_open(target) as f:
        f.write("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert target.read_text() == "earlier" and [p.name for p in tmp_path.glob(".results.json*")] == []
    with atomic_open(target) as f:
        f.write("new")
    assert target.read_text() == "new"


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_outputs_follow_the_umask_and_keep_a_replaced_files_mode(tmp_path, umask):
    from clner.files import atomic_open, atomic_path

    old = os.umask(umask)
    try:
        with atomic_open(tmp_path / "new.txt") as f:
            f.write("x")
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o666 & ~umask
        with atomic_path(tmp_path / "folder", directory=True) as tmp:
            tmp.mkdir()
        assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~umask
        (tmp_path / "kept.txt").write_text("old")
        (tmp_path / "kept.txt").chmod(0o640)
        with atomic_open(tmp_path / "kept.txt") as f:
            f.write("new")
        assert stat.S_IMODE((tmp_path / "kept.txt").stat().st_mode) == 0o640
        assert (tmp_path / "kept.txt").read_text() == "new"
    finally:
        os.umask(old)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".clner-tmp-")]
