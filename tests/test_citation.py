"""The citation block of the first page is written from CITATION.cff, with BibTeX."""
from pathlib import Path

import yaml

from bea_book.citation import MARKER, bibtex, fill_citation

ROOT = Path(__file__).resolve().parents[1]


def test_bibtex_carries_the_version_authors_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    text = bibtex(cff)
    assert text.startswith("@software{") and f"version = {{{cff['version']}}}" in text
    assert all(a.get("name", a.get("family-names")) in text for a in cff["authors"])
    assert "@inproceedings{cattaneo2024," in text and "eprint = {2309.00079}" in text
    assert text.count("{") == text.count("}")


def test_the_intro_holds_the_marker_and_staging_fills_it(tmp_path):
    intro = ROOT / "book" / "intro.md"
    assert MARKER in intro.read_text()
    page = tmp_path / "intro.md"
    page.write_text(intro.read_text())
    assert fill_citation(page, ROOT / "CITATION.cff")
    filled = page.read_text()
    assert MARKER not in filled and "```bibtex\n@software{" in filled
    assert not fill_citation(page, ROOT / "CITATION.cff")  # filled once
