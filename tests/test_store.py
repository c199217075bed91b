"""The build folder (bea_book.store): one writer at a time, a damaged run record named and
the run redone, a folder in the place of the runner's link refused, then set aside with --force.

The build folder (``bea_book.store``): where it may be, and links in it (issue 32, rows 4
and 8).
"""
import os
import subprocess
import sys

import pytest

import bea_book as book
from bea_book import store
from test_book import TINY, refused_in_one_line, run_main, write_book
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


@pytest.mark.parametrize("command", ["run", "render", "notebooks"])
@pytest.mark.parametrize("where", ["book/_build", "book", ".", ".."])
def test_a_build_folder_in_or_around_the_sources_is_refused(tmp_path, capsys, command, where):
    """Before: a build folder inside book/ rendered a stage/book/stage/book/… tree 490 levels
    deep (13 MB) until a RecursionError."""
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = (root / where).resolve()
    argv = [command, *(["tiny"] if command == "run" else []), "--root", root, "--build-dir", build]
    expect = "lies inside the sources" if where.startswith("book") else "holds the book's sources"
    assert refused_in_one_line(capsys, *argv, expect=f"the build folder {build} {expect}") < 30
    assert not (build / "stage").exists() and not (build / "runs").exists()
    assert not (root / "book" / "_build").exists()


def test_a_build_folder_inside_the_library_is_refused(tmp_path, capsys):
    from bea_book.inputs import library_folder

    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    inside = library_folder() / "_build-test"
    refused_in_one_line(capsys, "render", "--root", root, "--build-dir", inside,
             expect=f"lies inside the sources ({library_folder()})")
    assert not inside.exists()


def test_a_loop_of_links_as_the_build_folder_or_root_is_one_line(tmp_path, capsys):
    """Before: RuntimeError: Symlink loop, with a traceback."""
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    for command in (["render"], ["run", "tiny"], ["archive"]):
        refused_in_one_line(capsys, *command, "--root", root, "--build-dir", tmp_path / "a",
                 expect=f"{tmp_path / 'a'}")
    refused_in_one_line(capsys, "render", "--root", tmp_path / "a", expect=f"{tmp_path / 'a'}")


def test_a_chapter_link_to_a_run_outside_the_build_is_refused_then_moved_with_force(
        tmp_path, capsys):
    """A run is never read through, or removed through, a link that leaves ``B/runs``."""
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = tmp_path / "build"
    where = ("--root", root, "--build-dir", build)
    assert run_main("run", "tiny", *where) == 0
    run = store.current_run(build, "tiny")
    outside = tmp_path / "elsewhere"
    run.rename(outside)
    link = build / "chapters" / "tiny"
    link.unlink()
    link.symlink_to(outside)
    refused_in_one_line(capsys, "render", *where, expect=f"{link} is a link to {outside}")
    refused_in_one_line(capsys, "run", "tiny", *where, expect=f"{link} is a link to somewhere else")
    assert run_main("run", "tiny", "--force", *where) == 0
    assert (outside / "tiny.ipynb").is_file()  # moved aside as a link, its target untouched
    assert store.current_run(build, "tiny").parent == (build / "runs").resolve()
