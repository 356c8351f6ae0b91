"""The one atomic writer (recsys.fileio.write_atomic) and the places that use it."""

from __future__ import annotations

import logging
import os
import stat

import numpy as np
import pytest

from recsys.errors import RecsysError, ZooError
from recsys.fileio import write_atomic
from recsys.paths import write_cache_npz
from recsys.zoo import load_zoo


def test_bytes_text_and_a_writer_function(tmp_path):
    write_atomic(tmp_path / "a", b"\x00\x01")
    write_atomic(tmp_path / "b", "é\r\n")
    write_atomic(tmp_path / "c", lambda fh: fh.write(b"x"))
    assert [(tmp_path / n).read_bytes() for n in "abc"] == [b"\x00\x01", "é\r\n".encode(), b"x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temporary file left


def test_a_probe_changes_nothing(tmp_path):
    assert write_atomic(tmp_path / "new" / "x.csv", None) == tmp_path / "new" / "x.csv"
    assert [p.name for p in tmp_path.iterdir()] == ["new"] and not list((tmp_path / "new").iterdir())


def test_a_failed_write_keeps_the_previous_file_and_says_so(tmp_path):
    (tmp_path / "f").write_text("old")

    def fail(fh):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(ZooError, match=r"^free some disk space or write elsewhere: cannot write zoo file '.*f' \(No "
                                       r"space left on device\); the previous file is unchanged$"):
        write_atomic(tmp_path / "f", fail, what="zoo file", error=ZooError, elsewhere="write elsewhere")
    assert (tmp_path / "f").read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f"]


def test_non_regular_targets_are_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(RecsysError, match=r"which exists and is a FIFO \(recsys only replaces regular files\)"):
        write_atomic(tmp_path / "fifo", "x")
    with pytest.raises(RecsysError, match=r"^give a file name such as '.*/scores.csv': cannot write .*, a directory"):
        write_atomic(tmp_path, "x", example="scores.csv")
    with pytest.raises(RecsysError, match="^give a file name such as model.npz: the model file name is empty"):
        write_atomic("", "x", what="model file", example="model.npz")


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path):
    dead = tmp_path / ".f.999999999-abc.tmp"  # no such pid
    dead.write_text("left by a kill -9")
    os.utime(dead, (0, 0))
    write_atomic(tmp_path / "f", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_zoo_files_keep_their_mode_and_symlinks(tmp_path, tiny_zoo_dir):
    zoo = load_zoo(tiny_zoo_dir)
    out = zoo.write(tmp_path / "z")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((out / "records.csv").stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600
    os.chmod(out / "records.csv", 0o640)
    (tmp_path / "elsewhere.csv").write_text("")
    os.replace(out / "models.csv", tmp_path / "elsewhere.csv")
    (out / "models.csv").symlink_to(tmp_path / "elsewhere.csv")
    zoo.write(out)
    assert stat.S_IMODE((out / "records.csv").stat().st_mode) == 0o640
    assert (out / "models.csv").is_symlink() and (tmp_path / "elsewhere.csv").read_text().startswith("model")
    assert load_zoo(out).fingerprint() == zoo.fingerprint()


def test_a_cache_that_cannot_be_written_is_a_warning(tmp_path, caplog):
    (tmp_path / "cache.npz").mkdir()
    with caplog.at_level(logging.WARNING, logger="recsys.paths"):
        assert not write_cache_npz(tmp_path / "cache.npz", "embedding cache", a=np.arange(3))
    assert "cannot write embedding cache" in caplog.text and "a directory" in caplog.text
    assert write_cache_npz(tmp_path / "ok.npz", "embedding cache", a=np.arange(3))
    assert np.load(tmp_path / "ok.npz")["a"].tolist() == [0, 1, 2]
