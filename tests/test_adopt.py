"""A notebook executed by plain papermill taken as its chapter's run (bea_book.adopt): refused,
in one line, unless it is the chapter executed to the end with the parameters it reports."""
import json
import subprocess
import sys

import pytest

from bea_book import store
from test_book import TINY, run_main, write_book
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
    (lambda p: _set(p, lambda nb: nb["cells"][-1].update(
        source=_source(nb["cells"][-1]).replace("n * rho", "n + rho"))),
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
