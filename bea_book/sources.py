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
    from datetime import datetime, timezone

    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), timezone.utc).year
        except (ValueError, OverflowError, OSError):
            raise BookError(f"SOURCE_DATE_EPOCH must be seconds since 1970, got "
                            f"{epoch!r}") from None
    return datetime.now(timezone.utc).year


class BookError(Exception):
    """A user-facing failure, printed as one line: bad chapter, profile, parameter or file."""


def toc_pages(root: Path) -> list[str]:
    """The pages of ``_toc.yml`` in order, as paths without extension (``book/adam``)."""
    toc_file = Path(root) / "_toc.yml"
    if not toc_file.is_file():
        raise BookError(f"no _toc.yml in {root}; run from the repository root or pass --root")
    toc = yaml.safe_load(toc_file.read_text())

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node:
                    yield str(Path(node[key]).with_suffix(""))
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []):
                    yield from walk(child)

    return list(walk(toc))


def _front_matter(path: Path) -> dict:
    """The YAML header of a Markdown file, or ``{}`` when it has none."""
    text = path.read_text()
    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---", 4)
    if end < 0:
        return {}
    return yaml.safe_load(text[4:end]) or {}


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


def chapter_notebook(root: Path, chapter: str, page: str):
    """The chapter's Markdown source as a notebook for the ``python3`` kernel; its metadata
    names the chapter, so that a notebook executed elsewhere (plain papermill) can be adopted."""
    import jupytext

    notebook = jupytext.read(Path(root) / f"{page}.md")
    notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3",
                                       "language": "python"}
    notebook.metadata["bea_book"] = {"chapter": chapter, "page": page}
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


class _Loader(yaml.SafeLoader):
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


# YAML 1.1's int and float resolvers (octal 010, sexagesimal 1:30, 1_000) replaced by YAML 1.2's
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?"
               r"|[-+]?[0-9]+[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    return int(text, 0) if text.lower().startswith(("0o", "0x")) else int(text)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


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
                        "not a parameters file")
    try:
        return yaml.load(text, _Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise BookError(f"{what} {path} is not valid YAML{where}: {problem}") from None


def load_profiles(root: Path) -> dict:
    """``book/profiles.yml``: chapter -> profile -> parameter overrides."""
    path = Path(root) / "book" / "profiles.yml"
    return (read_yaml(path, "the profiles file") or {}) if path.is_file() else {}


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
