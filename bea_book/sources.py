"""The book's sources: the table of contents, the executable chapters, the parameter profiles.

A chapter is a Jupytext MyST Markdown file named in ``_toc.yml`` whose front matter has a
``jupytext`` or ``kernelspec`` header; other pages of the table of contents (the introduction,
the execution report) are static.
"""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import yaml
from datetime import UTC

KERNEL = "python3"
DEFAULT_PROFILE = "default"
FALLBACK_PROFILES = ("paper",)  # a chapter without these runs its defaults, with a note
REPORT_PAGE = "report"  # the toc page generated from report.json at render time
FINDINGS = "findings"  # the chapter that reads every other chapter's claims; executed last
LOCK_FILE = "requirements.lock"
PAPERMILL_LABEL = "custom parameters (papermill)"  # the profile of a run adopted from papermill


def build_year() -> int:
    """The year of this build: ``SOURCE_DATE_EPOCH`` (the reproducible-builds convention) when
    set, else today's (UTC). The footer's copyright and the citation's year."""
    from datetime import datetime

    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), UTC).year
        except (ValueError, OverflowError, OSError):
            raise BookError(f"SOURCE_DATE_EPOCH must be seconds since 1970, got "
                            f"{epoch!r}") from None
    return datetime.now(UTC).year


class BookError(Exception):
    """A user-facing failure, printed as one line: bad chapter, profile, parameter or file."""


def toc_pages(root: Path) -> list[str]:
    """The pages of ``_toc.yml`` in order, as paths without extension (``book/adam``); a table
    of contents of the wrong shape (``chapters: 5``, ``file: [a]``) is one line naming it."""
    toc_file = Path(root) / "_toc.yml"
    if not toc_file.is_file():
        raise BookError(f"no _toc.yml in {root}; run from the repository root or pass --root")
    toc = read_yaml(toc_file, "the table of contents")

    def walk(node, where):
        if not isinstance(node, dict):
            raise BookError(f"{toc_file}: the entries ({where}) must be mappings "
                            f"(`- file: book/page`), got {_kind(node)}")
        for key in ("root", "file"):
            if key in node:
                if not isinstance(node[key], str) or not node[key].strip():
                    raise BookError(f"{toc_file}: {key!r} ({where}) must be a page path like "
                                    f"book/adam, got {_kind(node[key])}")
                yield str(Path(node[key]).with_suffix(""))
        for key in ("parts", "chapters", "sections"):
            children = node.get(key, [])
            if not isinstance(children, list):
                raise BookError(f"{toc_file}: {key!r} ({where}) must be a list of entries, got "
                                f"{_kind(children)}")
            for i, child in enumerate(children):
                yield from walk(child, f"entry {i + 1} of {key!r}")

    return list(walk(toc if toc is not None else {}, "at the top"))


def _kind(value) -> str:
    """``value`` for a message: its type and, when short, itself."""
    text, kind = repr(value), type(value).__name__
    article = "an" if kind[0] in "aeiou" else "a"
    return f"{article} {kind}" + (f" ({text})" if len(text) <= 40 else "")


def _front_matter(path: Path) -> dict:
    """The YAML header of a Markdown file, or ``{}`` when it has none; a header that is not a
    YAML mapping is one line naming the file."""
    text = path.read_text()
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    if end < 0:
        return {}
    try:
        header = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as err:
        raise BookError(f"the front matter of {path} is not valid YAML "
                        f"({str(err).splitlines()[0]})") from None
    if not isinstance(header, dict):
        raise BookError(f"the front matter of {path} must be a YAML mapping, got {_kind(header)}")
    return header


def chapters(root: Path) -> dict[str, str]:
    """Executable chapters in toc order: chapter name (``adam``) -> toc path (``book/adam``)."""
    found = {}
    for page in toc_pages(root):
        source = Path(root) / f"{page}.md"
        header = _front_matter(source) if source.is_file() else {}
        if "jupytext" in header or "kernelspec" in header:
            found[Path(page).name] = page
    return found


def execution_order(names: list[str]) -> list[str]:
    """``names`` in toc order, except that the Findings chapter, which reads the others'
    claims, comes last."""
    return [n for n in names if n != FINDINGS] + [n for n in names if n == FINDINGS]


PROVENANCE_TAG = "bea-provenance"  # the last cell of a chapter's notebook (see below)
PROVENANCE_SOURCE = """\
# the code this notebook ran with: the commit and bea_lib the kernel imported (not shown)
import json as _json
from bea_lib import provenance as _provenance
print(_json.dumps({**_provenance.code_state(), "versions": _provenance.versions()}))"""


def chapter_notebook(root: Path, chapter: str, page: str):
    """The chapter's Markdown source as a notebook for the ``python3`` kernel; its metadata
    names the chapter, so that a notebook executed elsewhere (plain papermill) can be adopted.
    A last cell, removed from the page (``remove-cell``), prints the code the kernel ran with
    (:func:`bea_lib.provenance.code_state`: the commit, the hash and the folder of the
    ``bea_lib`` it imported; the package versions), which the runner and ``adopt`` check."""
    import jupytext
    import nbformat

    notebook = jupytext.read(Path(root) / f"{page}.md")
    notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata["bea_book"] = {"chapter": chapter, "page": page}
    notebook.cells.append(nbformat.v4.new_code_cell(
        PROVENANCE_SOURCE, metadata={"tags": ["remove-cell", PROVENANCE_TAG]}))
    return notebook


def book_version(root: Path) -> str:
    """``bea_lib.__version__``, read from the source (the one place the version is written)."""
    init = Path(root) / "bea_lib" / "__init__.py"
    if not init.is_file():
        return "unknown"
    for node in ast.parse(init.read_text()).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "__version__"):
            return ast.literal_eval(node.value)
    return "unknown"


# ---------------------------------------------------------------------------------------------
# Profiles


MAX_YAML_BYTES = 1 << 20  # a parameters or profiles file is a few hundred bytes; 1 MiB is plenty


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's numbers: ``1e-8`` is a float, ``010`` and ``1:30``
    are not numbers (YAML 1.1 reads them as the octal 8 and the sexagesimal 90), and aliases
    (``*name``) are refused before anything is expanded (nested aliases make a few hundred
    bytes expand into gigabytes)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"aliases (*{event.anchor}) are not accepted; write the value out",
                event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        """A mapping whose keys are all different: a key given twice (PyYAML keeps the last one
        silently) is refused, naming it."""
        seen = set()
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if isinstance(key_node, yaml.ScalarNode):
                if (key_node.tag, key_node.value) in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key_node.value!r} is given twice; keep one",
                        key_node.start_mark)
                seen.add((key_node.tag, key_node.value))
        return super().construct_mapping(node, deep=deep)


# YAML 1.1's int and float resolvers (octal 010, sexagesimal 1:30, 1_000) replaced by YAML 1.2's
YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?[0-9]+[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    return int(text, 0) if text.lower().startswith(("0o", "0x")) else int(text)


YamlLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def read_yaml(path: Path, what: str):
    """A YAML file's content; a missing, unreadable, binary or malformed file is one line that
    names it (``what`` says what the file is for)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise BookError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise BookError(f"{what} {path} is a folder, not a YAML file") from None
    except PermissionError:
        raise BookError(f"{what} {path} cannot be read (permission denied)") from None
    except UnicodeDecodeError:
        raise BookError(f"{what} {path} is not a text file; it must be YAML") from None
    if len(text) > MAX_YAML_BYTES:
        raise BookError(f"{what} {path} is {len(text)} bytes; more than {MAX_YAML_BYTES} is "
                        f"not what such a file holds")
    try:
        return yaml.load(text, YamlLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise BookError(f"{what} {path} is not valid YAML{where}: {problem}") from None


def load_profiles(root: Path) -> dict:
    """``book/profiles.yml``: chapter -> profile -> parameter overrides, checked: a mapping of
    chapters of ``_toc.yml`` to mappings of profiles to mappings (an empty profile may be
    left blank); anything else is one line naming the file and the entry."""
    path = Path(root) / "book" / "profiles.yml"
    profiles = (read_yaml(path, "the profiles file") or {}) if path.is_file() else {}
    if not isinstance(profiles, dict):
        raise BookError(f"the profiles file {path} must hold a mapping of chapters to their "
                        f"profiles, got {_kind(profiles)}")
    pages = chapters(root) if profiles else {}
    for chapter, own in profiles.items():
        if chapter not in pages:
            raise BookError(f"the profiles file {path} has a section {chapter!r}, which is not a "
                            f"chapter of _toc.yml; the chapters are: {', '.join(pages)}")
        if own is None:
            continue
        if not isinstance(own, dict):
            raise BookError(f"the profiles file {path}: chapter {chapter!r} must hold a mapping "
                            f"of profiles to parameters, got {_kind(own)}")
        for name, values in own.items():
            if values is not None and not isinstance(values, dict):
                raise BookError(f"the profiles file {path}: profile {name!r} of chapter "
                                f"{chapter!r} must be a mapping of parameters to values, got "
                                f"{_kind(values)}")
    return profiles


def resolve_profile(chapter: str, profile: str, profiles: dict, *, quiet: bool = False
                    ) -> tuple[str, dict]:
    """The parameter overrides of ``profile`` for ``chapter``, and the name to report it by.

    ``default`` means the chapter's own values. A chapter without a ``paper`` profile runs at
    its defaults, because those already are the paper's settings (reported as
    ``paper (= default)``); any other missing profile is an error that lists the profiles the
    chapter has.
    """
    own = profiles.get(chapter) or {}
    if profile == DEFAULT_PROFILE:
        return profile, {}
    if profile in own:
        return profile, dict(own[profile] or {})
    if profile in FALLBACK_PROFILES:
        if not quiet:
            print(f"note: chapter {chapter!r} has no {profile!r} profile; running its defaults")
        return f"{profile} (= {DEFAULT_PROFILE})", {}
    names = ", ".join([DEFAULT_PROFILE, *own])
    raise BookError(f"chapter {chapter!r} has no profile {profile!r}; it has: {names}")
