"""A notebook executed by plain papermill taken as its chapter's run (bea_book.adopt): refused,
in one line, unless it is the chapter executed to the end with the parameters it reports.

``python -m bea_book adopt``: a notebook papermill executed becomes its chapter's run only
when it ran this checkout's code, and only plain files beside it are copied (issue 32, rows
1, 2, 6 and 13).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bea_book import store
from bea_lib import provenance
from test_archive import WRITER
from test_book import TINY, refused_in_one_line, run_main, write_book
from test_processes import ENV


def papermill_run(tmp_path, root, build, *args):
    assert run_main("notebooks", "tiny", "--root", root, "--build-dir", build) == 0
    out = tmp_path / "mine"
    out.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "papermill", str(build / "notebooks" / "tiny.ipynb"),
                    str(out / "tiny.ipynb"), *args, "--cwd", str(out)], check=True,
                   capture_output=True, env=ENV)
    return out / "tiny.ipynb"


def _set(path, edit):
    nb = json.loads(path.read_text())
    edit(nb)
    path.write_text(json.dumps(nb))


def _injected(nb):
    return next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.write_text("[]"), "holds a list, not a mapping"),
    (lambda p: p.write_text("{}"), "is not a valid notebook"),
    (lambda p: p.write_text(p.read_text()[:200]), "is damaged"),
    (lambda p: _set(p, lambda nb: nb["metadata"].update(bea_book=["tiny"])),
     "metadata 'bea_book' must be a mapping"),
    (lambda p: _set(p, lambda nb: nb["metadata"].update(papermill="done")),
     "metadata 'papermill' must be a mapping"),
    (lambda p: _set(p, lambda nb: nb["metadata"]["papermill"].update(parameters={})),
     "the parameters its injected cell sets ({'n': 5}) are not those its metadata reports"),
    (lambda p: _set(p, lambda nb: _injected(nb).update(source="n = 7\n")),
     "are not those its metadata reports"),
    (lambda p: _set(p, lambda nb: _injected(nb).update(source="import os\n")),
     "not an assignment"),
    (lambda p: _set(p, lambda nb: nb["cells"][-2].update(  # the last is the provenance cell
        source=_source(nb["cells"][-2]).replace("n * rho", "n + rho"))),
     "is not the cell of chapter 'tiny' there"),
    (lambda p: _set(p, lambda nb: nb["cells"].pop()), "cells besides the injected one"),
    (lambda p: _set(p, lambda nb: nb["metadata"]["papermill"].update(end_time=5)),
     "is not a notebook papermill executed to the end"),
])
def test_adopt_refuses_what_is_not_the_chapter_executed_with_its_parameters(
        tmp_path, capsys, edit, message):
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = tmp_path / "build"
    notebook = papermill_run(tmp_path, root, build, "-p", "n", "5")
    edit(notebook)
    assert run_main("adopt", notebook, "--root", root, "--build-dir", build) == 1
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert store.current_run(build, "tiny") is None


def test_adopt_reads_the_parameters_from_the_injected_cell(tmp_path):
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = tmp_path / "build"
    notebook = papermill_run(tmp_path, root, build, "-p", "n", "5", "-p", "rho", "0.5")
    assert run_main("adopt", notebook, "--root", root, "--build-dir", build) == 0
    record = store.read_run(store.current_run(build, "tiny"))
    assert record["overrides"] == {"n": 5, "rho": 0.5}
    assert "tiny.ipynb" in record["files"]


ROOT = Path(__file__).resolve().parents[1]


def executed_by_papermill(tmp_path, *params, library: Path = ROOT) -> tuple[Path, Path, Path]:
    """The writer chapter's notebook (from ``notebooks``) executed by plain papermill in its
    own folder, its kernel importing the bea_lib under ``library``: (root, build, notebook)."""
    root = write_book(tmp_path / "src", {"writer": WRITER}, profiles="")
    build = tmp_path / "build"
    assert run_main("notebooks", "writer", "--root", root, "--build-dir", build) == 0
    out = tmp_path / "mine"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(library)}
    subprocess.run([sys.executable, "-m", "papermill", str(build / "notebooks" / "writer.ipynb"),
                    str(out / "writer.ipynb"), *params, "--cwd", str(out)], check=True,
                   capture_output=True, env=env)
    return root, build, out / "writer.ipynb"


def adopt_refused(capsys, notebook, root, build, expect: str) -> float:
    seconds = refused_in_one_line(capsys, "adopt", notebook, "--root", root, "--build-dir", build,
                                  expect=expect)
    assert store.current_run(build, "writer") is None
    return seconds


@pytest.mark.parametrize("what", ["a figure", "the figures folder", "the claims", "the table",
                                  "the notebook"])
def test_a_symbolic_link_beside_the_notebook_is_refused_naming_it(tmp_path, capsys, what):
    """Before: a figures/leak.png linking to a private file was copied into the run (and then
    into the archive and its manifest); a figures folder that was a link copied its target."""
    root, build, notebook = executed_by_papermill(tmp_path)
    private = tmp_path / "private"
    private.mkdir()
    (private / "secret.png").write_bytes(b"private bytes")
    beside = notebook.parent
    if what == "a figure":
        link, target = beside / "figures" / "leak.png", private / "secret.png"
    elif what == "the figures folder":
        shutil.rmtree(beside / "figures")
        link, target = beside / "figures", private
    elif what == "the claims":
        (private / "c.json").write_text((beside / "writer.claims.json").read_text())
        (beside / "writer.claims.json").unlink()
        link, target = beside / "writer.claims.json", private / "c.json"
    elif what == "the table":
        (beside / "runs.csv").unlink()
        link, target = beside / "runs.csv", private / "secret.png"
    else:
        shutil.move(notebook, private / "writer.ipynb")
        link, target = notebook, private / "writer.ipynb"
    link.symlink_to(target)
    adopt_refused(capsys, notebook, root, build, f"{link} is a symbolic link (to {target})")
    assert not any(b"private bytes" in p.read_bytes() for p in build.rglob("*") if p.is_file())


def test_adopt_copies_the_outputs_that_the_path_parameters_name(tmp_path):
    """Before: only `figures/` and the claims were copied, so a table (runs.csv) never
    reached the run or the archive, and a figure folder of another name was lost."""
    root, build, notebook = executed_by_papermill(
        tmp_path, "-p", "runs_file", "tables/r.csv", "-p", "fig_dir", "figs")
    assert run_main("adopt", notebook, "--root", root, "--build-dir", build) == 0
    run = store.current_run(build, "writer")
    assert (run / "tables" / "r.csv").read_text() == "seed,h\n0,0.1\n"
    assert (run / "figs" / "f.png").is_file()
    files = store.read_run(run)["files"]
    assert {"tables/r.csv", "figs/f.png", "writer.claims.json", "writer.ipynb"} <= set(files)
    text = (run / "writer.ipynb").read_text()  # no folder of this machine in the notebook
    assert str(notebook.parent) not in text and str(build) not in text


def test_a_notebook_that_ran_another_bea_lib_is_refused(tmp_path, capsys):
    """Before: it was recorded under the adopting checkout's commit, as if this code ran it."""
    other = tmp_path / "other"
    shutil.copytree(ROOT / "bea_lib", other / "bea_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(other / "bea_lib" / "norms.py", "a") as f:
        f.write("\n# another version\n")
    root, build, notebook = executed_by_papermill(tmp_path, library=other)
    seconds = adopt_refused(capsys, notebook, root, build,
                            f"ran with another bea_lib ({other / 'bea_lib'}, commit unknown) "
                            f"than this checkout's ({ROOT / 'bea_lib'}")
    assert seconds < 30  # refused on reading the notebook, nothing executed


def test_adopt_records_the_commit_and_bea_lib_of_the_notebooks_own_kernel(tmp_path):
    """The same bea_lib (by hash) in a folder outside any checkout: accepted, and recorded as
    what it was (its folder, commit unknown), not as this checkout's."""
    other = tmp_path / "other"
    shutil.copytree(ROOT / "bea_lib", other / "bea_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    root, build, notebook = executed_by_papermill(tmp_path, library=other)
    assert run_main("adopt", notebook, "--root", root, "--build-dir", build) == 0
    record = store.read_run(store.current_run(build, "writer"))
    assert record["bea_lib_path"] == str(other / "bea_lib")
    assert record["commit"] == record["bea_lib_commit"] == "unknown"
    assert record["adopted_at_commit"] == provenance.commit_label(root)  # the book's checkout
    assert record["versions"]["python"] == f"{sys.version_info.major}.{sys.version_info.minor}." \
                                           f"{sys.version_info.micro}"


def test_a_notebook_whose_last_cell_recorded_nothing_is_refused(tmp_path, capsys):
    root, build, notebook = executed_by_papermill(tmp_path)
    nb = json.loads(notebook.read_text())
    nb["cells"][-1]["outputs"] = []
    notebook.write_text(json.dumps(nb))
    adopt_refused(capsys, notebook, root, build,
                  "its last cell did not record the code it ran with")
