"""Writing outputs whole or not at all (`clner.files`)."""

import errno

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
