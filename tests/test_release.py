"""One version and one description of the work, wherever they are shown.

`bea_lib.__version__` is the single source of the version; pyproject.toml reads it, and
CITATION.cff, .zenodo.json (what Zenodo reads for a deposit), CHANGELOG.md and the rendered
book's title must agree with it and with each other.
"""
import json
import tomllib
from pathlib import Path

import yaml

from bea_book.render import _stamp_version
from bea_book.sources import book_version

ROOT = Path(__file__).resolve().parents[1]
VERSION = book_version(ROOT)


def citation():
    return yaml.safe_load((ROOT / "CITATION.cff").read_text())


def zenodo():
    return json.loads((ROOT / ".zenodo.json").read_text())


def test_pyproject_reads_the_version_from_bea_lib():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"] and "version" not in project["project"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "bea_lib.__version__"}


def test_citation_and_zenodo_agree_on_title_authors_version_licence():
    cff, zen = citation(), zenodo()
    assert cff["version"] == zen["version"] == VERSION
    assert cff["title"] == zen["title"]
    assert cff["license"] == zen["license"]
    assert [a["name"] for a in cff["authors"]] == [c["name"] for c in zen["creators"]]


def test_changelog_has_the_current_version():
    assert f"\n## [{VERSION}]\n" in (ROOT / "CHANGELOG.md").read_text()


def test_the_book_title_shows_the_version(tmp_path):
    config = tmp_path / "_config.yml"
    config.write_text((ROOT / "_config.yml").read_text())
    _stamp_version(config, VERSION)
    assert yaml.safe_load(config.read_text())["title"].endswith(f"(version {VERSION})")


def test_the_repository_is_the_one_the_citation_names():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == citation()["repository-code"]
