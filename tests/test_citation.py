"""The citation block of the first page is written from CITATION.cff, with BibTeX that pastes:
it parses and formats with pybtex (the library BibTeX styles are reimplemented in) as a reader
expects, author by author and with the titles' capitals kept."""
import json
from pathlib import Path

import pytest
import yaml

from bea_book.citation import MARKER, bibtex, fill_citation
from bea_book.sources import build_year

ROOT = Path(__file__).resolve().parents[1]
CFF = yaml.safe_load((ROOT / "CITATION.cff").read_text())


def _formatted(text: str) -> dict[str, str]:
    """key -> the entry as pybtex's "plain" style formats it, in plain text."""
    from pybtex.database import parse_string
    from pybtex.plugin import find_plugin

    entries = parse_string(text, "bibtex").entries
    style = find_plugin("pybtex.style.formatting", "plain")()
    backend = find_plugin("pybtex.backends", "text")()
    return {e.key: e.text.render(backend) for e in style.format_entries(entries.values())}


def test_bibtex_carries_the_version_authors_and_the_paper():
    text = bibtex(CFF)
    assert text.startswith("@misc{") and f"Version {CFF['version']};" in text
    assert "@inproceedings{cattaneo2024," in text and "eprint = {2309.00079}" in text
    assert text.count("{") == text.count("}")


def test_the_bibtex_parses_with_pybtex_author_by_author(monkeypatch):
    from pybtex.database import parse_string

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1900000000")  # 2030-03-17
    entries = parse_string(bibtex(CFF), "bibtex").entries
    ours = entries[f"bealib{CFF['version'].replace('.', '')}"]
    # an organisation is one brace-protected name, not the surname "contributors"
    (person,) = ours.persons["author"]
    assert person.first_names == [] and person.last_names == ["{The bea\\_lib contributors}"]
    assert ours.fields["year"] == "2030" and "\\_" in ours.fields["note"]  # `_` escaped
    paper = entries["cattaneo2024"]
    assert [p.last_names for p in paper.persons["author"]] == [
        ["Cattaneo"], ["Klusowski"], ["Shigida"]]
    assert paper.fields["year"] == "2024"


def test_the_formatted_entries_keep_the_titles_capitals_and_the_doi():
    text = bibtex(CFF, {"doi": "10.5281/zenodo.1234567"})
    formatted = _formatted(text)
    ours = formatted[f"bealib{CFF['version'].replace('.', '')}"]
    assert ours.startswith(f"The bea_lib contributors. {CFF['title']}. {build_year()}.")
    assert "doi:10.5281/zenodo.1234567" in ours
    assert "On the Implicit Bias of Adam." in formatted["cattaneo2024"]
    assert "doi" not in bibtex(CFF, {})  # no DOI in .zenodo.json: none made up
    # the check can fail: an unprotected title is lower-cased by the style ("adam")
    bare = text.replace("{{On the Implicit Bias of Adam}}", "{On the Implicit Bias of Adam}")
    assert "On the implicit bias of adam." in _formatted(bare)["cattaneo2024"]


def test_the_year_is_the_release_date_when_there_is_one():
    assert "year = {2025}" in bibtex({**CFF, "date-released": "2025-06-01"})


def test_a_bad_build_date_is_named(monkeypatch):
    from bea_book.sources import BookError

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(BookError, match="SOURCE_DATE_EPOCH must be seconds since 1970"):
        build_year()


def test_the_intro_holds_the_marker_and_staging_fills_it(tmp_path):
    intro = ROOT / "book" / "intro.md"
    assert MARKER in intro.read_text()
    page = tmp_path / "intro.md"
    page.write_text(intro.read_text())
    cff = tmp_path / "CITATION.cff"
    cff.write_text((ROOT / "CITATION.cff").read_text())
    (tmp_path / ".zenodo.json").write_text(json.dumps({"doi": "10.5281/zenodo.42"}))
    assert fill_citation(page, cff)
    filled = page.read_text()
    assert MARKER not in filled and "```bibtex\n@misc{" in filled
    assert "doi = {10.5281/zenodo.42}" in filled and "doi:10.5281/zenodo.42" in filled
    assert not fill_citation(page, cff)  # filled once
