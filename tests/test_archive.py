"""The deposit zip (bea_book.archive): render records what it staged, and archive refuses a
build whose files changed after their run or after rendering, naming the file.

``python -m bea_book archive``: it reads plain files of a current, complete build and writes
the zip where no file of the build can be replaced (issue 32, rows 2, 3, 7 and 13).

One small book (a chapter writing a figure and a table, a chapter with a claim, Findings) is
built and rendered once; each test works on its own copy of it.
"""
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from bea_book import store
from test_book import HEADER, refused_in_one_line, run_main, write_book
from test_book import CLAIMY, FINDINGS


CLAIMS_AND_FIGURE = HEADER + """
# Figured

```{code-cell} ipython3
:tags: [parameters]

fig_dir = "figures"  # where figures are saved
```

```{code-cell} ipython3
import json
import os
import pathlib

pathlib.Path(fig_dir).mkdir(exist_ok=True)
pathlib.Path(fig_dir, "f.png").write_bytes(b"png")
record = dict(id="figured/c", chapter="figured", statement="s", paper="p", measured="m",
              status="passed", verdict="reproduced", profile=os.environ["BEA_PROFILE"],
              needs="smoke", section=None)
pathlib.Path("figured.claims.json").write_text(json.dumps({record["id"]: record}))
```
"""


def test_archive_refuses_a_build_whose_files_changed_after_commit_or_render(tmp_path, capsys):
    root = write_book(tmp_path / "src", {"figured": CLAIMS_AND_FIGURE},
                      profiles="figured:\n  smoke: {}\n")
    build = tmp_path / "build"
    where = ("--root", root, "--build-dir", build)
    assert run_main("all", "--profile", "smoke", *where) == 0
    shown = json.loads((build / "rendered.json").read_text())
    folder = store.current_run(build, "figured")
    assert shown["runs"] == {"figured": folder.name}
    assert shown["records"]["figured"] == store.sha256(folder / "run.json")
    assert "index.html" in shown["html"]

    def refused(path, pattern, change=lambda p: p.write_bytes(p.read_bytes() + b" ")):
        saved = path.read_bytes()
        change(path)
        assert run_main("archive", *where) == 1
        assert pattern in capsys.readouterr().err
        path.write_bytes(saved)

    refused(folder / "figured.claims.json", "figured.claims.json was changed after the run")
    refused(folder / "figures" / "f.png", "f.png was changed after the run")
    refused(folder / "figured.ipynb", "figured.ipynb was changed after the run")
    refused(folder / "run.json", "run.json changed after the book was rendered",
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "claims": {
                "passed": 5, "failed": 0, "measured": 0, "not_checked": 0}})))
    refused(build / "html" / "index.html", "index.html was changed after rendering")
    (folder / "figures" / "extra.png").write_bytes(b"x")
    assert run_main("archive", *where) == 1
    assert "extra.png was added after the run" in capsys.readouterr().err
    (folder / "figures" / "extra.png").unlink()
    assert run_main("archive", *where) == 0

    # an edited notebook: render names it and the command that replaces the run, which runs
    nb = folder / "figured.ipynb"
    nb.write_text(nb.read_text().replace("png", "PNG"))
    assert run_main("render", *where) == 1
    err = capsys.readouterr().err
    assert "run it again (`python -m bea_book run figured --profile smoke`)" in err
    assert run_main("run", "figured", "--profile", "smoke", *where) == 0
    out = capsys.readouterr().out
    assert "figured.ipynb was changed after the run" in out and "executing it again" in out
    assert run_main("render", *where) == 0


ROOT = Path(__file__).resolve().parents[1]

# A chapter that writes what a network chapter writes: a figure under fig_dir, a table at
# runs_file, and one checked claim.
WRITER = HEADER + """
# Writer

```{code-cell} ipython3
:tags: [parameters]

fig_dir = "figures"    # where figures are saved
runs_file = "runs.csv"  # the per-run table, in the run's folder
```

```{code-cell} ipython3
import json
import os
import pathlib

pathlib.Path(fig_dir).mkdir(parents=True, exist_ok=True)
pathlib.Path(fig_dir, "f.png").write_bytes(b"png")
pathlib.Path(runs_file).parent.mkdir(parents=True, exist_ok=True)
pathlib.Path(runs_file).write_text("seed,h\\n0,0.1\\n")
record = dict(id="writer/c", chapter="writer", statement="s", paper="p", measured="m",
              status="passed", verdict="reproduced", profile=os.environ.get("BEA_PROFILE", "x"),
              needs="smoke", section=None)
pathlib.Path("writer.claims.json").write_text(json.dumps({record["id"]: record}))
```
"""

PAGES = {"writer": WRITER, "claimy": CLAIMY, "findings": FINDINGS}
PROFILES = "writer:\n  smoke: {}\nclaimy:\n  smoke: {}\nfindings:\n  smoke: {}\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A complete book run at the smoke profile and rendered: (root, build)."""
    top = tmp_path_factory.mktemp("archive")
    root = write_book(top / "src", PAGES, PROFILES)
    (root / "CITATION.cff").write_text("title: Test\n")
    build = top / "build"
    assert run_main("all", "--profile", "smoke", "--root", root, "--build-dir", build,
                    "--jobs", "1") == 0
    return root, build


@pytest.fixture
def book_copy(built, tmp_path):
    """This test's own copy of the built book: (root, build, the --root/--build-dir options)."""
    root, build = tmp_path / "src", tmp_path / "build"
    shutil.copytree(built[0], root, symlinks=True)
    shutil.copytree(built[1], build, symlinks=True)  # the chapters' links are relative
    return root, build, ("--root", root, "--build-dir", build)


@pytest.mark.parametrize("inside", ["chapters/writer/writer.ipynb", "report.json",
                                    "html/index.html", "runs/archive.zip",
                                    "chapters/writer/figures/f.zip"])
def test_an_output_inside_the_build_is_refused_and_replaces_nothing(book_copy, capsys, inside):
    _, build, where = book_copy
    target = build / inside
    before = target.read_bytes() if target.is_file() else None
    refused_in_one_line(capsys, "archive", "--output", target, *where,
            expect="inside the build folder" if target.suffix == ".zip" else "must name a .zip")
    assert (target.read_bytes() if target.is_file() else None) == before
    assert run_main("archive", *where) == 0  # the build is intact and still archives


def test_an_output_beside_the_default_or_outside_the_build_is_written(book_copy, tmp_path):
    _, build, where = book_copy
    assert run_main("archive", "--output", build / "mine.zip", *where) == 0
    assert run_main("archive", "--output", tmp_path / "out.zip", *where) == 0
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        assert any(n.endswith("chapters/writer/runs.csv") for n in zf.namelist())


def test_an_output_that_is_a_folder_or_in_no_folder_is_named_as_given(book_copy, tmp_path,
                                                                      capsys):
    _, _, where = book_copy
    folder = tmp_path / "somewhere"
    folder.mkdir()
    refused_in_one_line(capsys, "archive", "--output", folder, *where,
            expect=f"--output {folder} is a folder; give the archive's file name")
    refused_in_one_line(capsys, "archive", "--output", tmp_path / "nowhere" / "a.zip", *where,
            expect=f"the folder {tmp_path / 'nowhere'} does not exist")
    assert not list(tmp_path.rglob(".*.tmp"))


@pytest.mark.parametrize("where_link", ["figure", "html", "citation", "chapter link"])
def test_a_symbolic_link_in_what_the_archive_reads_is_refused_naming_it(book_copy, tmp_path,
                                                                       capsys, where_link):
    """A link is refused even where its target has the bytes the build recorded (before:
    the private file was packed, and listed in the manifest)."""
    root, build, where = book_copy
    run = store.current_run(build, "writer")
    private = tmp_path / "private"
    private.mkdir()
    if where_link == "figure":
        link = run / "figures" / "f.png"
    elif where_link == "html":
        link = build / "html" / "index.html"
    elif where_link == "citation":
        link = root / "CITATION.cff"
    else:  # the chapter's link made to lead to a copy of its run outside the build
        outside = private / "run"
        shutil.copytree(run, outside)
        (build / "chapters" / "writer").unlink()
        (build / "chapters" / "writer").symlink_to(outside)
        refused_in_one_line(capsys, "archive", *where, expect="is never followed")
        return
    (private / link.name).write_bytes(link.read_bytes())  # the same bytes: the hashes agree
    link.unlink()
    link.symlink_to(private / link.name)
    refused_in_one_line(capsys, "archive", *where,
            expect=f"{link} is a symbolic link (to {private / link.name})")
    assert not list(build.glob("*.zip"))


def test_a_build_whose_findings_are_stale_is_refused_naming_the_fix(book_copy, capsys):
    _, build, where = book_copy
    assert run_main("run", "claimy", "-p", "ok", "false", *where) == 0  # its claim changes
    assert run_main("render", *where) == 0
    assert "tabulates claims that changed since it ran" in capsys.readouterr().out
    refused_in_one_line(capsys, "archive", *where,
            expect="the Findings chapter in")
    assert not list(build.glob("*.zip"))
    assert run_main("run", "findings", *where) == 0 and run_main("render", *where) == 0
    assert run_main("archive", *where) == 0


def test_the_archive_names_no_build_folder_of_this_machine(built, book_copy, tmp_path):
    root, build, where = book_copy
    assert run_main("archive", "--output", tmp_path / "out.zip", *where) == 0
    folders = [str(p).encode() for p in (built[1], build, built[0], root)]
    folders.append(str(ROOT / "bea_lib").encode())  # the kernel's bea_lib (run.json keeps it)
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        carrying = [n for n in zf.namelist() if not n.endswith(("run.json", "report.json"))
                    and any(f in zf.read(n) for f in folders)]
    assert not carrying  # before: every executed notebook named the build's runs/.tmp-* folder
