"""The build folder (bea_book.store): one writer at a time, a damaged run record named and
the run redone, a folder in the place of the runner's link refused, then set aside with --force."""
import os
import subprocess
import sys

import pytest

import bea_book as book
from bea_book import store
from test_book import TINY, run_main, write_book
from test_processes import ENV


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    root = write_book(tmp_path / "src", {"tiny": TINY})
    build = tmp_path / "build"
    with store.build_lock(build, "make book (the holder)"):
        with store.build_lock(build):  # re-entrant in the holder's process
            pass
        for command in (["render"], ["run", "tiny"], ["archive"], ["adopt", "x.ipynb"]):
            done = subprocess.run([sys.executable, "-m", "bea_book", *command, "--root",
                                   str(root), "--build-dir", str(build)], env=ENV,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 1, command
            assert "is being written by `make book (the holder)`" in done.stderr
            assert f"pid {os.getpid()}" in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1
    assert not (build / "chapters").exists()
    assert run_main("run", "tiny", "--root", root, "--build-dir", build) == 0  # released


@pytest.mark.parametrize("damage", [b"{", b"[]", b"\xff\xfe", b'{"chapter": 3}', b""])
def test_a_damaged_run_record_or_report_is_named_and_the_run_redone(tmp_path, capsys, damage):
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = tmp_path / "build"
    where = ("--root", root, "--build-dir", build)
    assert run_main("run", "tiny", *where) == 0
    (store.current_run(build, "tiny") / "run.json").write_bytes(damage)
    (build / "report.json").write_bytes(damage)
    assert run_main("render", *where) == 1
    err = capsys.readouterr().err
    assert "the run record" in err and "is damaged" in err and "run it again" in err
    assert len(err.strip().splitlines()) == 1
    assert run_main("run", "tiny", *where) == 0  # no --force needed: a damaged run is redone
    out = capsys.readouterr().out
    assert "is damaged" in out and "tiny: executing" in out
    assert book.read_report(build)["tiny"]["status"] == "finished"


def test_a_folder_where_the_runner_keeps_a_link_is_refused_then_moved_with_force(tmp_path, capsys):
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = tmp_path / "build"
    (build / "chapters" / "tiny").mkdir(parents=True)
    (build / "chapters" / "tiny" / "mine.txt").write_text("mine")
    assert run_main("run", "tiny", "--root", root, "--build-dir", build) == 1
    assert "chapters/tiny is a folder, not the link" in capsys.readouterr().err
    assert not (build / "runs").exists() or not list((build / "runs").glob("tiny-*"))
    assert run_main("run", "tiny", "--force", "--root", root, "--build-dir", build) == 0
    aside, = (build / "runs").glob("foreign-tiny-*")
    assert (aside / "mine.txt").read_text() == "mine"
    assert store.current_run(build, "tiny") is not None
