"""The book runner on tiny books written to temporary folders.

Chapters here take a kernel start (seconds), not the real chapters' minutes; the real chapters
are executed at their `smoke` profile and rendered by `make test`.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

import bea_lib as bl

import bea_book as book
from bea_lib.base import provenance
from bea_book import store
from bea_book.sources import PROVENANCE_TAG

HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""

TINY = HEADER + """
# Tiny

```{code-cell} ipython3
:tags: [parameters]

rho = 0.999  # second-moment decay
n = 3
label = "x"
seconds = 0.0  # time to sleep (the interruption test kills the run meanwhile)
```

```{code-cell} ipython3
import time

time.sleep(seconds)
print(f"{label}: {n * rho!r} ({type(rho).__name__})")
```
"""

FAILING = HEADER + """
# Failing

```{code-cell} ipython3
:tags: [parameters]

divisor = 1  # 0: a division by zero, the failure these tests need
```

```{code-cell} ipython3
1 / divisor
```
"""

# A chapter that records one checked claim as bea_lib.evidence.claims.claim does (plain JSON here:
# the kernel then need not import torch), under the chapter and profile the runner passes it.
CLAIMY = HEADER + """
# Claimy

```{code-cell} ipython3
:tags: [parameters]

ok = True  # whether the claim holds
```

```{code-cell} ipython3
import json
import os

chapter, profile = os.environ["BEA_CHAPTER"], os.environ["BEA_PROFILE"]
record = dict(id="claimy/holds", chapter=chapter, statement="the sum is right",
              paper="Figure 1", measured=f"ok = {ok}", status="passed" if ok else "failed",
              verdict="reproduced" if ok else "contradicted", profile=profile, needs="smoke",
              section=None)
with open(f"{chapter}.claims.json", "w") as f:
    json.dump({record["id"]: record}, f)
print(profile)
```
"""

FINDINGS = HEADER + """
# Findings

```{code-cell} ipython3
import glob

print("claims files:", sorted(glob.glob("*.claims.json")))
```
"""

PROFILES = """\
tiny:
  smoke: {n: 1}
  fast: {n: 2, rho: 0.5}
failing:
  smoke: {}
claimy:
  smoke: {}
  fast: {ok: false}
findings:
  smoke: {}
"""


def write_book(root, pages, profiles=PROFILES):
    """A book at `root`: static intro and report pages around `pages` (name -> source); of
    `profiles`, the sections of its chapters (a section for another is refused)."""
    sections = re.split(r"\n(?=\S)", profiles.strip())
    profiles = "".join(f"{part}\n" for part in sections if part.split(":")[0] in pages)
    (root / "book").mkdir(parents=True)
    (root / "book" / "intro.md").write_text("# Intro\n\nA test book.\n")
    (root / "book" / "report.md").write_text("# Report\n\nGenerated at build time.\n")
    (root / "book" / "profiles.yml").write_text(profiles)
    for name, source in pages.items():
        (root / "book" / f"{name}.md").write_text(source)
    entries = "".join(f"  - file: book/{name}\n" for name in [*pages, "report"])
    (root / "_toc.yml").write_text(f"format: jb-book\nroot: book/intro\nchapters:\n{entries}")
    (root / "_config.yml").write_text(
        'title: Test\nonly_build_toc_files: true\nexecute:\n  execute_notebooks: "off"\n'
    )
    return root


@pytest.fixture
def root(tmp_path):
    return write_book(tmp_path / "src", {"tiny": TINY, "failing": FAILING})


def run_main(*argv):
    """``python -m bea_book`` in this process; its exit status."""
    return book.main([str(a) for a in argv])


def refused_in_one_line(capsys, *argv, expect: str) -> float:
    """Run the command, which must fail (status 1) with one ``error:`` line holding ``expect``
    and no traceback; the seconds it took."""
    start = time.perf_counter()
    assert run_main(*argv) == 1
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert expect in err, err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return seconds


def executed(build, chapter):
    """The executed notebook of the chapter's current run."""
    return store.current_run(build, chapter) / f"{chapter}.ipynb"


def outputs(notebook_path):
    """The text printed, and the names of the errors raised, by an executed notebook's cells
    (the chapter's own: not the last cell, which records the code the kernel ran with)."""
    notebook = nbformat.read(notebook_path, as_version=4)
    return "".join(out.get("text", "") + out.get("ename", "")
                   for cell in notebook.cells for out in cell.get("outputs", [])
                   if PROVENANCE_TAG not in cell.get("metadata", {}).get("tags", []))


def test_chapters_are_the_toc_pages_with_a_jupytext_header(root):
    assert book.chapters(root) == {"tiny": "book/tiny", "failing": "book/failing"}
    assert book.toc_pages(root) == ["book/intro", "book/tiny", "book/failing", "book/report"]


@pytest.mark.parametrize("text, value", [
    ("0.99", 0.99), ("1e-8", 1e-8), ("3", 3), ("true", True), ("[1, 2]", [1, 2]),
    ("adam", "adam"), ("'3'", "3"),
])
def test_p_values_are_yaml_scalars(text, value):
    parsed = book.parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_profiles_resolve_to_overrides(root, capsys):
    profiles = book.load_profiles(root)
    assert book.resolve_profile("tiny", "default", profiles) == ("default", {})
    assert book.resolve_profile("tiny", "fast", profiles) == ("fast", {"n": 2, "rho": 0.5})
    assert book.resolve_profile("tiny", "paper", profiles) == ("paper (= default)", {})
    assert "no 'paper' profile" in capsys.readouterr().out
    with pytest.raises(book.BookError,
                       match="'tiny' has no profile 'huge'; it has: default, smoke, fast"):
        book.resolve_profile("tiny", "huge", profiles)


def test_run_applies_profile_file_and_p_and_records_the_run(tmp_path):
    root = write_book(tmp_path / "src", {"tiny": TINY})
    build = tmp_path / "build"
    params_file = tmp_path / "params.yml"
    params_file.write_text("label: y\nrho: 0.25\n")

    assert run_main("run", "tiny", "--root", root, "--build-dir", build, "--profile", "fast",
                    "--params-file", params_file, "-p", "rho", "0.75") == 0

    # n = 2 (profile), rho = 0.75 (-p), label (file)
    assert "y: 1.5 (float)" in outputs(executed(build, "tiny"))
    assert not (root / "book" / "tiny.ipynb").exists()  # nothing is written next to the source
    record = book.read_report(build)["tiny"]
    assert record["profile"] == "fast" and record["action"] == "executed"
    assert record["overrides"] == {"n": 2, "rho": 0.75, "label": "y"}
    assert record["parameters"] == {"rho": 0.75, "n": 2, "label": "y", "seconds": 0.0}
    assert record["parameter_order"] == ["rho", "n", "label", "seconds"]  # the cell's order
    assert record["commit"] == "unknown"  # tmp_path is outside any git repository
    assert record["lock_sha256"] is None  # this book has no lock file
    assert {"python", "torch", "numpy", "bea_lib", "papermill"} <= set(record["versions"])

    staged, not_run = book.stage(root, build)
    assert not_run == []
    assert (staged / "book" / "tiny.ipynb").is_file() and not (staged / "book" / "tiny.md").exists()
    page = (staged / "book" / "report.md").read_text()
    assert "| {doc}`tiny </book/tiny>` | executed | fast |" in page
    assert "**`rho = 0.75`**, **`n = 2`**, **`label = 'y'`**, `seconds = 0.0`\n" in page
    assert "tiny (fast): 4 parameters, set for this run: rho, n, label" in page  # the fold's title


def test_a_second_run_reuses_unchanged_inputs_and_a_prose_edit_reexecutes(tmp_path, capsys):
    root = write_book(tmp_path / "src", {"tiny": TINY})
    build = tmp_path / "build"
    args = ("run", "tiny", "--root", root, "--build-dir", build, "--profile", "smoke")
    assert run_main(*args) == 0
    first = store.current_run(build, "tiny")
    assert run_main(*args) == 0
    assert "tiny: reused (inputs unchanged)" in capsys.readouterr().out
    assert store.current_run(build, "tiny") == first
    assert book.read_report(build)["tiny"]["action"] == "reused (inputs unchanged)"

    source = root / "book" / "tiny.md"
    source.write_text(source.read_text().replace("# Tiny", "# Tiny\n\nNew prose."))
    assert run_main(*args) == 0
    assert "executing (profile smoke; source changed)" in capsys.readouterr().out
    second = store.current_run(build, "tiny")
    assert second != first and not first.exists()  # the replaced run is removed
    assert run_main(*args, "-p", "n", "1") == 0  # the same resolved parameters: reused
    assert run_main(*args, "--force") == 0
    assert "forced" in capsys.readouterr().out and store.current_run(build, "tiny") != second
    assert book.read_report(build)["tiny"]["action"] == "executed"


def test_every_parameter_of_every_chapter_is_checked_before_any_kernel(tmp_path):
    root = write_book(tmp_path / "src", {"tiny": TINY, "failing": FAILING})
    build = tmp_path / "build"
    with pytest.raises(book.BookError,
                       match="'failing' has no parameter 'n'; its parameters are: divisor"):
        book.run_chapters(["tiny", "failing"], root=root, build_dir=build, params={"n": 5})
    with pytest.raises(book.BookError,
                       match=r"'tiny': parameter n must be an int like its default 3, "
                                             r"got 'abc' \(a string\)"):
        book.run_chapters(["tiny"], root=root, build_dir=build, params={"n": "abc"})
    assert not (build / "runs").exists()  # no kernel started, nothing executed


@pytest.mark.parametrize("value, ok", [
    (2, True), (True, False), (0.5, False), ("1", False), (None, False),
])
def test_int_parameters_take_ints_only(value, ok):
    declared = {"n": "3", "rho": "0.999", "grid": "[0.9, 0.99]", "name": "'x'", "f": "np.pi"}
    if ok:
        book.check_overrides("c", {"n": value}, declared)
    else:
        with pytest.raises(book.BookError, match="parameter n must be an int|n cannot be None"):
            book.check_overrides("c", {"n": value}, declared)


def test_float_and_list_parameters_accept_ints_and_expressions_are_unchecked():
    declared = {"rho": "0.999", "grid": "[0.9, 0.99]", "name": "'x'", "f": "np.pi"}
    checked = book.check_overrides("c", {"rho": 1, "grid": [1, 0.5], "f": "anything"}, declared)
    assert checked == {"rho": 1.0, "grid": [1.0, 0.5], "f": "anything"}
    assert type(checked["rho"]) is float
    with pytest.raises(book.BookError, match="parameter grid must be a list"):
        book.check_overrides("c", {"grid": 0.9}, declared)
    with pytest.raises(book.BookError, match="parameter name must be a string"):
        book.check_overrides("c", {"name": 3}, declared)


@pytest.mark.parametrize("content, message", [
    (None, "the parameters file {} does not exist"),
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe",
     "the parameters file {} is not a text file; it must be YAML"),
    (b"rho: [0.9\n", "the parameters file {} is not valid YAML at line 2, column 1"),
    (b"- 1\n- 2\n", "the parameters file {} must hold a mapping"),
])
def test_a_bad_params_file_is_one_line_naming_it(root, tmp_path, capsys, content, message):
    path = tmp_path / "p.yml"
    if content is not None:
        path.write_bytes(content)
    assert run_main("run", "tiny", "--root", root, "--build-dir", tmp_path / "b",
                    "--params-file", path) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: " + message.format(path)) and err.count("\n") == 1


def test_an_unwritable_build_folder_is_one_line(root, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert run_main("run", "tiny", "--root", root, "--build-dir", blocker / "build") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write to the build folder {blocker / 'build'}")
    assert err.count("\n") == 1
    if os.geteuid() != 0:  # root writes into read-only folders
        readonly = tmp_path / "ro"
        readonly.mkdir(mode=0o555)
        assert run_main("render", "--root", root, "--build-dir", readonly) == 1
        assert "cannot write to the build folder" in capsys.readouterr().err


@pytest.mark.parametrize("line", ["a, b = 1, 2", "epochs = 10  # (= number of steps)"])
def test_parameter_line_papermill_cannot_read_is_named(tmp_path, line):
    text = TINY.replace("n = 3\n", f"n = 3\n{line}\n")
    root = write_book(tmp_path / "src", {"tiny": text})
    with pytest.raises(book.BookError,
                       match=r"line 3 of its parameters cell is not read as a parameter"):
        book.run_chapter("tiny", root=root, build_dir=tmp_path / "build")


def test_a_failing_cell_names_the_chapter_and_keeps_the_last_good_run(tmp_path, capsys):
    root = write_book(tmp_path / "src", {"failing": FAILING})
    build = tmp_path / "build"
    assert run_main("run", "failing", "--root", root, "--build-dir", build) == 0
    good = store.current_run(build, "failing")
    assert run_main("run", "failing", "--root", root, "--build-dir", build,
                    "-p", "divisor", "0") == 1
    assert "chapter 'failing' failed in cell" in capsys.readouterr().err
    assert "ZeroDivisionError" in outputs(build / "runs" / "failed-failing" / "failing.ipynb")
    assert store.current_run(build, "failing") == good
    assert book.read_report(build)["failing"]["overrides"] == {}


def test_an_interrupted_run_is_never_rendered(tmp_path):
    """Kill a run part-way: render shows the previous run, with its parameters in the report."""
    root = write_book(tmp_path / "src", {"tiny": TINY})
    build = tmp_path / "build"
    assert run_main("run", "tiny", "--root", root, "--build-dir", build) == 0
    command = [sys.executable, "-m", "bea_book", "run", "tiny", "--root", str(root),
               "--build-dir", str(build), "-p", "n", "5", "-p", "seconds", "600"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120  # the kernel of a loaded machine may take a minute
    while not list((build / "runs").glob(".tmp-tiny-*/tiny.ipynb")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    time.sleep(1.0)  # papermill has started the cells
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    staged, _ = book.stage(root, build)
    assert "x: 2.997 (float)" in outputs(staged / "book" / "tiny.ipynb")  # n = 3, the old run
    assert "`n = 3`" in (staged / "book" / "report.md").read_text()
    assert book.read_report(build)["tiny"]["overrides"] == {}
    assert run_main("run", "tiny", "--root", root, "--build-dir", build) == 0  # reused
    assert not list((build / "runs").glob(".tmp-*"))  # the dead run's folder is cleaned up


def test_render_refuses_a_notebook_that_did_not_finish(tmp_path):
    root = write_book(tmp_path / "src", {"tiny": TINY})
    build = tmp_path / "build"
    assert run_main("run", "tiny", "--root", root, "--build-dir", build) == 0
    notebook = executed(build, "tiny")
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata["papermill"]["end_time"] = None  # as papermill leaves it mid-run
    nbformat.write(nb, notebook)
    with pytest.raises(book.BookError, match="tiny.ipynb was changed after the run"):
        book.stage(root, build)
    record = json.loads((notebook.parent / "run.json").read_text())
    record["notebook_sha256"] = record["files"]["tiny.ipynb"] = store.sha256(notebook)
    (notebook.parent / "run.json").write_text(json.dumps(record))
    with pytest.raises(book.BookError,
                       match="last run of chapter 'tiny' .* failed or did not finish"):
        book.stage(root, build)


def test_unknown_chapter(root, tmp_path):
    with pytest.raises(book.BookError,
                       match="no chapter 'adamw' in _toc.yml; chapters: tiny, failing"):
        book.run_chapter("adamw", root=root, build_dir=tmp_path / "build")


def test_report_page_marks_overrides_claims_and_escapes_pipes():
    record = {"profile": "smoke", "parameters": {"rho": 0.9, "label": "a|b"},
              "overrides": {"rho": 0.9},
              "wall_time_s": 1.234, "finished": "2024-01-01T00:00:00+00:00", "action": "executed",
              "commit": "0123456789abcdef-dirty", "versions": {"python": "3.11"},
              "claims": {"passed": 2, "failed": 1, "not_checked": 0}, "lock_sha256": "ab" * 32,
              "failed_claims": [{"id": "tiny/x", "statement": "s", "paper": "Figure 1",
                                 "measured": "m"}],
              "files": {"tiny.ipynb": "", "figures/f.png": "", "figures/f.pdf": "",
                        "runs.csv": ""}}
    page = book.report_markdown({"tiny": record}, {"tiny": "book/tiny", "other": "book/other"},
                                version="1.2.3")
    assert "**`rho = 0.9`**, `label = 'a|b'`" in page  # in a fold, not a table cell
    assert "tiny (smoke): 2 parameters, set for this run: rho" in page
    assert "| 1.2 s | 2 ✓, **1 ⚠** | 2024-01-01 00:00 | `0123456789ab-dirty` |" in page
    assert "| {doc}`other </book/other>` | not run in this build |" in page
    assert "| python | 3.11 |" in page
    assert "Book version **1.2.3**" in page and "abababababababab" in page
    assert "Total execution time of the runs shown: 1.2 s" in page
    assert "| tiny | s (`tiny/x`) | Figure 1 | m |" in page
    # the PDF figures and the per-run table, for download (not the PNGs or the notebook)
    assert ("| {doc}`tiny </book/tiny>` | {download}`f.pdf <downloads/tiny/figures/f.pdf>`, "
            "{download}`runs.csv <downloads/tiny/runs.csv>` |") in page
    assert "No chapter has been executed yet." in book.report_markdown({}, {"tiny": "book/tiny"})


def test_commit_marks_a_dirty_tree(tmp_path):
    commit_label = provenance.commit_label
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a").write_text("a")
    subprocess.run([*git, "add", "a"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert commit_label(tmp_path) == head
    (tmp_path / "a").write_text("b")
    assert commit_label(tmp_path) == head + "-dirty"


def test_render_fails_on_a_sphinx_warning(tmp_path):
    """A static book (nothing to execute) with a broken cross-reference must not render."""
    root = write_book(tmp_path / "src", {})
    with (root / "book" / "intro.md").open("a") as f:
        f.write("\nSee {ref}`no-such-label`.\n")
    with pytest.raises(book.BookError, match="did not render without warnings"):
        book.render(root=root, build_dir=tmp_path / "build")


def test_failed_claims_fail_smoke_and_default_but_not_other_parameters(tmp_path, capsys):
    """Findings is listed first but runs last; a failed claim at `smoke` fails `all` after the
    book is rendered; at another profile, or with a reader's parameters, it only shows."""
    profiles = PROFILES.replace("claimy:\n  smoke: {}", "claimy:\n  smoke: {ok: false}")
    root = write_book(tmp_path / "src", {"findings": FINDINGS, "claimy": CLAIMY}, profiles)
    build = tmp_path / "build"
    where = ("--root", root, "--build-dir", build)

    assert run_main("all", "--profile", "smoke", *where) == 1
    out, err = capsys.readouterr()
    assert out.index("claimy: executing") < out.index("findings: executing")
    assert "claims: 0 passed, 1 failed, 0 measured (no check), 0 not checked" in out
    assert "1 checked claims did not hold at the smoke profile" in err and "claimy/holds" in err
    assert (build / "html" / "index.html").is_file()  # rendered all the same
    assert "claimy.claims.json" in outputs(executed(build, "findings"))
    report = book.read_report(build)
    assert report["claimy"]["claims"] == {"passed": 0, "failed": 1, "measured": 0, "not_checked": 0,
                                          "consistency": 0}
    assert "smoke" in outputs(executed(build, "claimy"))  # BEA_PROFILE reached the kernel
    page = (build / "stage" / "book" / "report.md").read_text()
    assert "**1 ⚠**" in page and "## Claims that did not hold" in page

    assert run_main("run", "claimy", "--profile", "smoke", "-p", "ok", "true", *where) == 0
    assert run_main("run", "findings", "--profile", "smoke", *where) == 0
    assert "findings: executing (profile smoke; claims changed)" in capsys.readouterr().out
    assert run_main("run", "claimy", "--profile", "fast", *where) == 0  # fails, not strict
    assert book.read_report(build)["claimy"]["claims"]["failed"] == 1


# A chapter that writes a per-run table of the same name as another chapter's
TABLED = HEADER + """
# Tabled

```{code-cell} ipython3
:tags: [parameters]

mark = "a"
```

```{code-cell} ipython3
with open("runs.csv", "w") as f:
    f.write(f"chapter\\n{mark}\\n")
```
"""


def test_each_chapters_downloads_are_staged_apart_and_linked(tmp_path):
    root = write_book(tmp_path / "src", {"one": TABLED, "two": TABLED})
    build = tmp_path / "build"
    where = ("--root", root, "--build-dir", build)
    assert run_main("run", "one", *where) == 0
    assert run_main("run", "two", "-p", "mark", "b", *where) == 0
    book.stage(root, build)
    staged = build / "stage" / "book" / "downloads"
    assert (staged / "one" / "runs.csv").read_text() == "chapter\na\n"
    assert (staged / "two" / "runs.csv").read_text() == "chapter\nb\n"  # not one's
    page = (build / "stage" / "book" / "report.md").read_text()
    assert "{download}`runs.csv <downloads/two/runs.csv>`" in page


def test_partial_render_and_the_plain_papermill_path(tmp_path, capfd):
    root = write_book(tmp_path / "src", {"tiny": TINY, "failing": FAILING})
    build = tmp_path / "build"
    where = ("--root", root, "--build-dir", build)
    assert run_main("notebooks", "tiny", *where) == 0
    notebook = build / "notebooks" / "tiny.ipynb"
    out = tmp_path / "my-run"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(book.__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(out / "tiny.ipynb"),
                    "-p", "n", "5", "--cwd", str(out)], check=True, capture_output=True,
                   env=env)  # the kernel imports this checkout's bea_lib, which adopt checks
    assert run_main("adopt", out / "tiny.ipynb", *where) == 0
    assert run_main("render", *where) == 0
    assert "not run in this build: failing" in capfd.readouterr().out

    html = build / "html" / "book"
    assert "x: 4.995" in (html / "tiny.html").read_text()
    assert "This chapter was not run in this build" in (html / "failing.html").read_text()
    page = (build / "stage" / "book" / "report.md").read_text()
    assert "| {doc}`failing </book/failing>` | not run in this build |" in page
    assert ("| {doc}`tiny </book/tiny>` | executed by papermill | custom parameters (papermill) |"
            in page)
    assert "**`n = 5`**" in page
    with pytest.raises(book.BookError, match="chapters not run in .*: failing"):
        book.render(root=root, build_dir=build, complete=True)
    with pytest.raises(book.BookError, match="chapters not run in .*: failing"):
        book.make_archive(root=root, build_dir=build)


def test_archive_holds_the_build_and_a_manifest_sha256sum_checks(tmp_path, capfd):
    root = write_book(tmp_path / "src", {"tiny": TINY})
    (root / "CITATION.cff").write_text("title: Test\n")
    (root / "requirements.lock").write_text("numpy==2.0.0\n")
    build = tmp_path / "build"
    where = ("--root", root, "--build-dir", build)
    assert run_main("all", "--profile", "smoke", *where) == 0
    assert "without encryption" not in capfd.readouterr().err  # the kernel listens on IPC
    assert run_main("archive", "--output", tmp_path / "book.zip", *where) == 0

    with zipfile.ZipFile(tmp_path / "book.zip") as zf:
        zf.extractall(tmp_path / "unpacked")
    # this book has no bea_lib (version unknown); it ran at the smoke profile, which the name says
    top = tmp_path / "unpacked" / "implicit-bias-of-adam-unknown-smoke"
    for name in ["html/index.html", "html/book/tiny.html", "chapters/tiny/tiny.ipynb",
                 "chapters/tiny/run.json", "report.json", "CITATION.cff", "requirements.lock"]:
        assert (top / name).is_file(), name
    manifest = (top / "MANIFEST.sha256").read_text().splitlines()
    assert len(manifest) == sum(1 for p in top.rglob("*") if p.is_file()) - 1
    check = subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST.sha256"], cwd=top)
    assert check.returncode == 0
    with (top / "report.json").open("a") as f:
        f.write(" ")
    assert subprocess.run(["sha256sum", "-c", "--quiet", "MANIFEST.sha256"], cwd=top,
                          capture_output=True).returncode == 1  # the check does detect a change
    record = json.loads((top / "chapters" / "tiny" / "run.json").read_text())
    assert record["lock_sha256"] == store.sha256(root / "requirements.lock")

    assert run_main("run", "tiny", "--force", *where) == 0
    with pytest.raises(book.BookError, match="rendered before the last chapter runs"):
        book.make_archive(root=root, build_dir=build)


# Two chapters that can only both finish if they run at the same time: each announces its
# start in the shared folder and waits (up to 120 s, far beyond a kernel start) for the other.
RENDEZVOUS = HEADER + """
# {name}

```{{code-cell}} ipython3
import os
import pathlib
import time

here = pathlib.Path(os.environ["BEA_TEST_SHARED"])  # the folder the test shares with both
(here / "{name}.started").write_text(os.environ.get("OMP_NUM_THREADS", "unset"))
deadline = time.monotonic() + 120
while not (here / "{other}.started").exists():
    if time.monotonic() > deadline:
        raise TimeoutError("{other} never started while {name} ran")
    time.sleep(0.05)
print("met {other}")
```
"""


def test_jobs_run_chapters_side_by_side_with_a_share_of_the_threads_and_findings_last(
        tmp_path, capsys, monkeypatch):
    pages = {"left": RENDEZVOUS.format(name="left", other="right"),
             "right": RENDEZVOUS.format(name="right", other="left"), "findings": FINDINGS}
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("BEA_TEST_SHARED", str(shared))  # the kernels inherit it
    profiles = "left:\n  smoke: {}\nright:\n  smoke: {}\nfindings:\n  smoke: {}\n"
    root = write_book(tmp_path / "src", pages, profiles)
    build = tmp_path / "build"
    for name in book.execute.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(book.cli, "cpu_count", lambda: 4)
    outcomes = book.run_chapters(["left", "right", "findings"], root=root, build_dir=build,
                                 profile="smoke", jobs=2)
    assert [o.chapter for o in outcomes] == ["left", "right", "findings"]
    assert "met right" in outputs(executed(build, "left"))
    assert "met left" in outputs(executed(build, "right"))
    assert (shared / "left.started").read_text() == "2"  # 4 CPUs / 2 jobs
    records = {n: store.read_run(store.current_run(build, n))
               for n in ("left", "right", "findings")}
    assert records["left"]["jobs"] == 2 and records["findings"]["jobs"] == 1
    assert records["findings"]["started"] >= max(records[n]["finished"] for n in ("left", "right"))
    page = book.report_markdown(book.read_report(build), book.chapters(root))
    assert "up to 2 chapters side by side" in page


def test_jobs_must_be_a_positive_integer(root, tmp_path):
    with pytest.raises(book.BookError, match="jobs must be a positive integer, got 0"):
        book.run_chapters(["tiny"], root=root, build_dir=tmp_path / "b", jobs=0)


WHERE_FROM = HEADER + """
# Where

```{code-cell} ipython3
import importlib.util

print(importlib.util.find_spec("bea_lib").submodule_search_locations[0])
```
"""


def test_the_kernel_imports_the_bea_lib_the_runner_hashed_and_records(tmp_path):
    root = write_book(tmp_path / "src", {"where": WHERE_FROM}, profiles="")
    build = tmp_path / "build"
    book.run_chapters(["where"], root=root, build_dir=build)
    record = store.read_run(store.current_run(build, "where"))
    here = str(Path(bl.__file__).resolve().parent)
    assert record["bea_lib_path"] == here
    assert outputs(store.current_run(build, "where") / "where.ipynb").strip() == here


def test_an_adopted_runs_claims_carry_its_label_and_custom_parameters(tmp_path):
    from bea_book.adopt import _mark_claims
    from bea_book.sources import PAPERMILL_LABEL
    from bea_lib.evidence.claims import read_claims

    source = tmp_path / "kernel" / "claimy.claims.json"
    source.parent.mkdir()
    source.write_text(json.dumps({"claimy/holds": dict(
        id="claimy/holds", chapter="claimy", statement="s", paper="Figure 1", measured="m",
        status="passed", verdict="reproduced", profile="default", needs="smoke")}))
    (tmp_path / "run").mkdir()
    _mark_claims(source, tmp_path / "run", PAPERMILL_LABEL, {"ok": False})
    (record,) = read_claims(tmp_path / "run").values()
    assert record.profile == "custom parameters (papermill)" and record.custom == {"ok": False}
    source.write_text("[1]")
    with pytest.raises(book.BookError, match="holds a list"):
        _mark_claims(source, tmp_path / "run", PAPERMILL_LABEL, {})
