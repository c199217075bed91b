"""Atomic writes (bea_lib.base.fileio): the temporary file of a killed writer is removed by the
next write of the same file."""
import os
import subprocess
import sys


def test_a_killed_writer_leaves_no_temporary_file_after_the_next_write(tmp_path):
    from bea_lib.base import fileio
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".book.zip.{dead.pid}.tmp"
    stale.write_bytes(b"half a zip")
    mine = tmp_path / f".book.zip.{os.getpid()}.tmp"
    fileio.atomic_write_text(tmp_path / "book.zip", "whole")
    assert not stale.exists() and not mine.exists()
    assert (tmp_path / "book.zip").read_text() == "whole"
