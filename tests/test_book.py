"""The book runner on a tiny book written to a temporary folder.

Chapters here take a kernel start (seconds), not the real chapters' minutes; the real chapters
are executed at their `smoke` profile and rendered by `make test`.
"""
import json
import subprocess

import nbformat
import pytest

from bea_book import runner as book

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
```

```{code-cell} ipython3
print(f"{label}: {n * rho!r} ({type(rho).__name__})")
```
"""

FAILING = HEADER + """
# Failing

```{code-cell} ipython3
:tags: [parameters]

divisor = 1
```

```{code-cell} ipython3
1 / divisor
```
"""

PROFILES = """\
tiny:
  smoke: {n: 1}
  fast: {n: 2, rho: 0.5}
failing:
  smoke: {}
"""


def write_book(root, pages, profiles=PROFILES):
    """A book at `root`: static intro and report pages around `pages` (name -> source)."""
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


def outputs(notebook_path):
    """The text printed, and the names of the errors raised, by an executed notebook's cells."""
    notebook = nbformat.read(notebook_path, as_version=4)
    return "".join(out.get("text", "") + out.get("ename", "")
                   for cell in notebook.cells for out in cell.get("outputs", []))


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
    with pytest.raises(book.BookError, match="'tiny' has no profile 'huge'; it has: default, smoke, fast"):
        book.resolve_profile("tiny", "huge", profiles)


def test_run_applies_profile_file_and_p_and_merges_the_report(tmp_path):
    root = write_book(tmp_path / "src", {"tiny": TINY})
    build = tmp_path / "build"
    build.mkdir()
    (build / "report.json").write_text(json.dumps({"other": {"profile": "smoke"}}))
    params_file = tmp_path / "params.yml"
    params_file.write_text("label: y\nrho: 0.25\n")
    argv = ["run", "tiny", "--root", str(root), "--build-dir", str(build), "--profile", "fast",
            "--params-file", str(params_file), "-p", "rho", "0.75"]

    assert book.main(argv) == 0

    executed = build / "executed" / "book" / "tiny.ipynb"
    assert "y: 1.5 (float)" in outputs(executed)  # n = 2 (profile), rho = 0.75 (-p), label (file)
    assert not (root / "book" / "tiny.ipynb").exists()  # nothing is written next to the source
    report = json.loads((build / "report.json").read_text())
    assert report["other"] == {"profile": "smoke"}  # earlier records are kept
    record = report["tiny"]
    assert record["profile"] == "fast"
    assert record["overrides"] == {"n": 2, "rho": 0.75, "label": "y"}
    assert record["parameters"] == {"rho": 0.75, "n": 2, "label": "y"}
    assert record["commit"] == "unknown"  # tmp_path is outside any git repository
    assert {"python", "torch", "numpy", "bea_lib", "papermill", "jupyter-book"} <= set(record["versions"])

    staged = book.stage(root, build)
    assert (staged / "book" / "tiny.ipynb").is_file() and not (staged / "book" / "tiny.md").exists()
    page = (staged / "book" / "report.md").read_text()
    assert "| {doc}`tiny </book/tiny>` | fast |" in page and "**`rho = 0.75`**" in page


def test_unknown_parameter_is_rejected_before_execution(root, tmp_path):
    with pytest.raises(book.BookError, match="'tiny' has no parameter 'beta'; its parameters are: rho, n, label"):
        book.run_chapter("tiny", root=root, build_dir=tmp_path, params={"beta": 0.9})
    assert not (tmp_path / "executed" / "book" / "tiny.ipynb").exists()


@pytest.mark.parametrize("line", ["a, b = 1, 2", "epochs = 10  # (= number of steps)"])
def test_parameter_line_papermill_cannot_read_is_named(tmp_path, line):
    text = TINY.replace("n = 3\n", f"n = 3\n{line}\n")
    root = write_book(tmp_path / "src", {"tiny": text})
    with pytest.raises(book.BookError, match=r"line 3 of its parameters cell is not read as a parameter"):
        book.run_chapter("tiny", root=root, build_dir=tmp_path / "build")


def test_failing_cell_names_the_chapter(tmp_path, capsys):
    root = write_book(tmp_path / "src", {"failing": FAILING})
    argv = ["run", "failing", "--root", str(root), "--build-dir", str(tmp_path), "-p", "divisor", "0"]
    assert book.main(argv) == 1
    assert "chapter 'failing' failed in cell" in capsys.readouterr().err
    assert "ZeroDivisionError" in outputs(tmp_path / "executed" / "book" / "failing.ipynb")
    assert not (tmp_path / "report.json").exists()
    with pytest.raises(book.BookError, match="last run of chapter 'failing' failed"):
        book.stage(root, tmp_path)


def test_unknown_chapter(root, tmp_path):
    with pytest.raises(book.BookError, match="no chapter 'adamw' in _toc.yml; chapters: tiny, failing"):
        book.run_chapter("adamw", root=root, build_dir=tmp_path)


def test_report_page_marks_overrides_and_escapes_pipes():
    record = {"profile": "smoke", "parameters": {"rho": 0.9, "label": "a|b"}, "overrides": {"rho": 0.9},
              "wall_time_s": 1.234, "finished": "2024-01-01T00:00:00+00:00",
              "commit": "0123456789abcdef-dirty", "versions": {"python": "3.11"}}
    page = book.report_markdown({"tiny": record}, {"tiny": "book/tiny"})
    assert "**`rho = 0.9`**, `label = 'a\\|b'`" in page
    assert "| 1.2 s |" in page and "`0123456789ab-dirty`" in page
    assert "No chapter has been executed yet." in book.report_markdown({}, {"tiny": "book/tiny"})


def test_commit_marks_a_dirty_tree(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "a").write_text("a")
    subprocess.run([*git, "add", "a"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert book.commit(tmp_path) == head
    (tmp_path / "a").write_text("b")
    assert book.commit(tmp_path) == head + "-dirty"


def test_render_fails_on_a_sphinx_warning(tmp_path):
    """A static book (nothing to execute) with a broken cross-reference must not render."""
    root = write_book(tmp_path / "src", {})
    with (root / "book" / "intro.md").open("a") as f:
        f.write("\nSee {ref}`no-such-label`.\n")
    with pytest.raises(book.BookError, match="did not render without warnings"):
        book.render(root=root, build_dir=tmp_path / "build")
