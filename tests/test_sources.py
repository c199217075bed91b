"""The book's sources (``bea_book.sources``): a table of contents or a profiles file of the
wrong shape is one line naming it, before any kernel starts (issue 32, rows 8 and 12)."""

import pytest

from test_book import TINY, refused_in_one_line, write_book


def refused_in_a_second(capsys, root, tmp_path, expect):
    seconds = refused_in_one_line(capsys, "run", "tiny", "--profile", "smoke", "--root", root,
                                  "--build-dir", tmp_path / "build", expect=expect)
    assert not (tmp_path / "build" / "runs").exists()
    return seconds


@pytest.mark.parametrize("profiles, expect", [
    ("- tiny\n- smoke\n", "must hold a mapping of chapters to their profiles, got a list"),
    ("tiny:\n  - smoke\n",
     "chapter 'tiny' must hold a mapping of profiles to parameters, got a list"),
    ("tiny:\n  smoke: [1, 2]\n",
     "profile 'smoke' of chapter 'tiny' must be a mapping of parameters"),
    ("tiny:\n  smoke: {n: 1}\ntinny:\n  smoke: {n: 2}\n",
     "has a section 'tinny', which is not a chapter of _toc.yml; the chapters are: tiny"),
    ("tiny:\n  smoke: {n: 1}\n  smoke: {n: 2}\n", "the key 'smoke' is given twice"),
])
def test_a_profiles_file_of_the_wrong_shape_is_one_line(tmp_path, capsys, profiles, expect):
    """Before: a list raised AttributeError with a traceback; a section for a chapter that
    does not exist (a typo) was ignored, and the profile silently not applied."""
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    (root / "book" / "profiles.yml").write_text(profiles)
    refused_in_a_second(capsys, root, tmp_path, expect)


@pytest.mark.parametrize("toc, expect", [
    ("format: jb-book\nroot: book/intro\nchapters: 5\n",
     "'chapters' (at the top) must be a list of entries, got an int (5)"),
    ("format: jb-book\nroot: book/intro\nchapters:\n  - book/tiny\n",
     "the entries (entry 1 of 'chapters') must be mappings (`- file: book/page`), got a str"),
    ("format: jb-book\nroot: book/intro\nchapters:\n  - file: [book/tiny]\n",
     "'file' (entry 1 of 'chapters') must be a page path like book/adam, got a list"),
    ("format: jb-book\nroot: book/intro\nchapters: [\n", "_toc.yml is not valid YAML"),
])
def test_a_table_of_contents_of_the_wrong_shape_is_one_line(tmp_path, capsys, toc, expect):
    """Before: `chapters: 5` raised TypeError ('int' object is not iterable) with a traceback."""
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    (root / "_toc.yml").write_text(toc)
    refused_in_a_second(capsys, root, tmp_path, expect)


def test_a_front_matter_that_is_not_yaml_is_one_line(tmp_path, capsys):
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    source = root / "book" / "tiny.md"
    source.write_text(source.read_text().replace("jupytext:\n", "jupytext: [\n", 1))
    refused_in_a_second(capsys, root, tmp_path, f"the front matter of {source} is not valid YAML")
