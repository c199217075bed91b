"""A chapter's parameters: the cell tagged ``parameters``, and the values that override it.

Overrides come from a profile in ``book/profiles.yml``, a ``--params-file`` and ``-p NAME
VALUE`` (later ones winning). Every override is checked against the parameters cell before
any kernel starts: the name must be one the cell assigns, and the value must have the type of
the cell's default (an int where it holds an int, a number where it holds a float, a list
where it holds a list, ...), so that a typo fails in a second with the parameter's name, not
minutes later inside a cell. Values of the right type that no cell can use are refused as well
(a count below 1, an emptied list, an integer beyond 64 bits, a number that is not finite), and
a parameter that names a path must point where its rule allows: inside the run's folder,
unless :data:`PATH_RULES` says otherwise.
"""
from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import yaml

from .sources import BookError, YamlLoader, read_yaml


def parse_value(text: str):
    """A ``-p`` value read as YAML: ``0.99`` and ``1e-8`` are floats, ``true`` is a bool,
    ``[1, 2]`` a list, anything else that is not YAML syntax a string."""
    try:
        return yaml.load(text, YamlLoader)
    except yaml.YAMLError:
        return text


def load_params_file(path: Path) -> dict:
    """A YAML file holding a mapping of parameter names to values."""
    params = read_yaml(path, "the parameters file") or {}
    if not isinstance(params, dict):
        raise BookError(f"the parameters file {path} must hold a mapping of parameter names "
                        f"to values, not a {type(params).__name__}")
    return params


def literal(text: str):
    """A parameter default as written in the parameters cell, evaluated when it is a literal."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


class Declared(dict):
    """name -> default (source text) of a parameters cell; ``nullable`` holds the names that
    accept ``None``: those whose default is None or whose comment says what None means
    (``n_train = 1000  # ... (None: all)``); ``comments`` the comment of each line."""

    def __init__(self, defaults: dict, nullable=(), comments: dict | None = None):
        super().__init__(defaults)
        self.nullable = frozenset(nullable)
        self.comments = dict(comments or {})


def declared_parameters(notebook_path: Path) -> Declared:
    """name -> default (source text) of the assignments papermill reads in the cell tagged
    ``parameters`` of the notebook at ``notebook_path``."""
    import papermill

    found = papermill.inspect_notebook(str(notebook_path))
    return Declared({name: info["default"] for name, info in found.items()},
                    [name for name, info in found.items()
                     if info["default"] == "None" or re.search(r"\bNone\b", info["help"] or "")],
                    {name: info["help"] or "" for name, info in found.items()})


def check_parameter_lines(chapter: str, notebook, declared: dict) -> None:
    """Every top-level assignment in the ``parameters`` cell must be one that papermill read.

    papermill silently skips lines it cannot parse (``a, b = 1, 2``; an ``=`` inside the
    trailing comment), and the parameter would then look unknown; name the line instead.
    """
    for cell in notebook.cells:
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        for number, line in enumerate(cell.source.splitlines(), 1):
            if (not line.strip() or line.lstrip().startswith("#") or line[0].isspace()
                    or line[0] in ")]}"):
                continue
            name = re.match(r"([A-Za-z_]\w*)\s*(?::[^=]*)?=", line)
            if name is None or name.group(1) not in declared:
                raise BookError(
                    f"chapter {chapter!r}: line {number} of its parameters cell is not read as "
                    f"a parameter: {line.strip()!r}; write one `name = value  # comment` per "
                    "line, with no '=' inside the comment")


TYPE_NAMES = {bool: "a bool", int: "an int", float: "a number", str: "a string",
              list: "a list", tuple: "a list", dict: "a mapping"}


def _type_name(value) -> str:
    return TYPE_NAMES.get(type(value), type(value).__name__)


def _fits(value, default) -> bool:
    """Whether ``value`` may replace ``default`` (an int may stand for a float; a bool is not
    an int; None only where the default is None, see :func:`check_overrides`)."""
    if default is None:
        return True
    if value is None:
        return False
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return (isinstance(value, (list, tuple))
                and (not default or all(_fits(v, default[0]) for v in value)))
    return isinstance(value, type(default))


def _coerce(value, default):
    """An int given where the default is a float becomes that float (``-p rho 1``)."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (list, tuple)) and default and isinstance(value, (list, tuple)):
        return [_coerce(v, default[0]) for v in value]
    return value


NOT_A_NUMBER = re.compile(r"[-+]?(?:0[0-9]+|[0-9]+(?::[0-9]+)+)(?:\.[0-9]*)?")  # 010, 1:30

# -- parameters that name a path ----------------------------------------------------------------
#
# A parameter names a path when its default is a string or None and its name ends in one of
# PATH_WORDS (fig_dir, runs_file, data_root), or its default looks like a path ("out/x",
# "runs.csv"), or its comment speaks of a folder, file, directory or path. Such a value is an
# output of the run: relative, without '..', inside the run's folder (the kernel's working
# directory), and none of the runner's own files there. Three parameters of the networks chapter
# are resolved by the chapter against the repository's root instead (its ``resolve``): the data
# it reads (``data_root``, anywhere: nothing is written there) and the stored training runs,
# read and (``run_dir``) written, which stay inside the repository's ``results`` folder.
PATH_WORDS = ("dir", "file", "path", "folder", "root", "directory")
PATH_COMMENT = re.compile(r"\b(?:folder|file|directory|path)s?\b", re.IGNORECASE)
LOOKS_LIKE_PATH = re.compile(r"^\.{1,2}$|[/\\]|^[\w.-]*\w\.[A-Za-z][A-Za-z0-9]{0,4}$")
RESULTS_FOLDER = "results"  # the repository's folder of stored training runs
READ_ANYWHERE, IN_RESULTS = "read anywhere", "in results"
PATH_RULES = {"data_root": READ_ANYWHERE, "results_dir": IN_RESULTS, "run_dir": IN_RESULTS}


def names_path(name: str, default_text: str, comment: str = "") -> bool:
    """Whether the parameter ``name`` (default as written, and its comment) names a path."""
    default = literal(default_text)
    if default is not None and not (isinstance(default, str) and default_text != default):
        return False  # a number, a list, an expression: not a path
    return (name.lower().rsplit("_", 1)[-1] in PATH_WORDS
            or (isinstance(default, str) and bool(LOOKS_LIKE_PATH.search(default)))
            or bool(PATH_COMMENT.search(comment or "")))


def path_parameters(declared: dict) -> list[str]:
    """The parameters of a parameters cell that name a path (:func:`names_path`)."""
    comments = getattr(declared, "comments", {})
    return [name for name, text in declared.items() if names_path(name, text, comments.get(name))]


def check_path(chapter: str, name: str, value, *, root: Path | None = None) -> str:
    """A path parameter's value, checked against its rule (the comment above ``PATH_RULES``);
    one line naming the parameter and where it may point otherwise. ``root``, the book's root,
    is where the ``results`` folder is (its links resolved); without it only the text is
    checked."""
    if not isinstance(value, str):
        raise BookError(f"chapter {chapter!r}: parameter {name} names a path and must be a "
                        f"string, got {value!r} ({_type_name(value)})")
    rule = PATH_RULES.get(name)
    if rule == READ_ANYWHERE:
        if not value.strip():
            raise BookError(f"chapter {chapter!r}: parameter {name} must name a folder, got ''")
        return value
    parts = Path(value).parts
    climbs = (not value.strip() or Path(value).is_absolute() or ".." in parts
              or value.startswith("~") or "\\" in value)
    if rule == IN_RESULTS:
        inside = not climbs and parts[:1] == (RESULTS_FOLDER,)
        if inside and root is not None:
            results = (Path(root) / RESULTS_FOLDER).resolve()
            target = (Path(root) / value).resolve()
            inside = target == results or results in target.parents
        if not inside:
            raise BookError(f"chapter {chapter!r}: parameter {name} must be a folder inside the "
                            f"repository's {RESULTS_FOLDER}/ folder (relative to the repository, "
                            f"like {RESULTS_FOLDER}/networks/mine), got {value!r}")
        return value
    reserved = parts[:1] == (f"{chapter}.ipynb",) or parts[:1] == ("run.json",) or (
        len(parts) == 1 and parts[0].endswith(".claims.json"))
    if climbs:
        raise BookError(f"chapter {chapter!r}: parameter {name} names a path, which must lie "
                        f"inside the run's folder (relative, without '..'), got {value!r}")
    if reserved:
        raise BookError(f"chapter {chapter!r}: parameter {name} names {value!r}, a file the "
                        "runner writes in the run's folder; choose another name")
    return value


# -- numbers and lists that no chapter can use ---------------------------------------------------

INT64 = 2**63  # torch and numpy hold integers in 64 bits: seeds, sizes and counts stay below
AT_LEAST = re.compile(r"\((?:≥|>=)\s*(-?[0-9]+(?:\.[0-9]*)?)\)")  # "(≥ 2)" in a comment


def _check_numbers(chapter: str, name: str, value, default) -> None:
    """Every number in ``value`` (nested in lists and mappings too) fits in 64 bits and is
    finite (unless the default itself is not); one line naming the parameter otherwise."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not -INT64 <= value < INT64:
        raise BookError(f"chapter {chapter!r}: parameter {name} must be an integer that fits in "
                        f"64 bits (|n| < 2**63), got {value}")
    if (isinstance(value, float) and not math.isfinite(value)
            and not (isinstance(default, float) and not math.isfinite(default))):
        raise BookError(f"chapter {chapter!r}: parameter {name} must be a finite number, got "
                        f"{value}")
    inner = value.values() if isinstance(value, dict) else value if isinstance(
        value, (list, tuple)) else ()
    for item in inner:
        _check_numbers(chapter, name, item, None)


ZERO_MEANS = re.compile(r"\b0:")  # "(0: none)": the comment says what 0 means


def _check_size(chapter: str, name: str, value, default, comment: str) -> None:
    """An int whose default is positive stays positive (a count: steps, seeds, examples),
    unless its comment says what 0 means (``# ... (0: none)``, as for None); a number whose
    comment says ``(≥ k)`` stays at least k; a list or mapping whose default holds something
    is not empty. Values that pass the type check but that no computation of the chapter can
    use, refused before any kernel starts."""
    at_least = AT_LEAST.search(comment or "")
    if at_least is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        bound = float(at_least.group(1))
        if value < bound:
            raise BookError(f"chapter {chapter!r}: parameter {name} must be at least "
                            f"{at_least.group(1)} (its comment: {comment.strip()!r}), got {value}")
    elif (isinstance(default, int) and not isinstance(default, bool) and default >= 1
          and isinstance(value, int)):
        zero = bool(ZERO_MEANS.search(comment or ""))
        if value < (0 if zero else 1):
            raise BookError(f"chapter {chapter!r}: parameter {name} counts something and must be "
                            f"at least {0 if zero else 1} (its default is {default}"
                            f"{'' if zero else '; its comment gives 0 no meaning'}), got {value}")
    if isinstance(default, (list, tuple, dict)) and default and not value:
        raise BookError(f"chapter {chapter!r}: parameter {name} must not be empty (its default "
                        f"is {_type_name(default)} of {len(default)}), got {value!r}")


def check_overrides(chapter: str, overrides: dict, declared: dict[str, str], *,
                    root: Path | None = None) -> dict:
    """The overrides with names and types checked against the parameters cell's defaults.

    ``None`` is accepted where the default is None or the cell's comment says what None
    means (``declared.nullable``, see :class:`Declared`); a parameter that names a path must
    point where its rule allows (:func:`check_path`, inside the run's folder unless said
    otherwise; ``root`` is the book's root); numbers fit in 64 bits and are finite, counts
    stay positive and lists non-empty (:func:`_check_size`).
    """
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise BookError(
            f"chapter {chapter!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(declared) or 'none'}")
    nullable = getattr(declared, "nullable", None)
    if nullable is None:
        nullable = {name for name, text in declared.items() if text == "None"}
    comments = getattr(declared, "comments", {})
    paths = set(path_parameters(declared))
    checked = {}
    for name, value in overrides.items():
        default = literal(declared[name])
        if name in paths and value is not None and value != default:  # the default is fine
            value = check_path(chapter, name, value, root=root)
        if value is None:
            if name not in nullable:
                raise BookError(
                    f"chapter {chapter!r}: parameter {name} cannot be None (null); its default "
                    f"is {declared[name]} and its comment gives None no meaning")
            checked[name] = None
            continue
        _check_numbers(chapter, name, value, default)
        if isinstance(default, str) and declared[name] == default:  # an expression: unchecked
            checked[name] = value
            continue
        if not _fits(value, default):
            hint = ""
            if (isinstance(value, str) and NOT_A_NUMBER.fullmatch(value.strip())
                    and isinstance(default, (int, float)) and not isinstance(default, bool)):
                hint = ("; write numbers in decimal, without leading zeros or ':' (YAML 1.1 "
                        "would read 010 as 8 and 1:30 as 90)")
            raise BookError(
                f"chapter {chapter!r}: parameter {name} must be {_type_name(default)} like its "
                f"default {declared[name]}, got {value!r} ({_type_name(value)}){hint}")
        _check_size(chapter, name, value, default, comments.get(name, ""))
        checked[name] = _coerce(value, default)
    return checked


def chapter_parameters(root: Path, chapter: str, profile: str = "default") -> dict:
    """The values a chapter runs with at ``profile``: its parameters cell, read as papermill
    reads it, with the profile's overrides of ``book/profiles.yml`` checked and applied, the
    same reading as the runner's (``1e-8`` is a float in both). For tools that launch a
    chapter's work outside the book (``python -m bea_book sweep``)."""
    import tempfile

    import nbformat

    from .sources import chapter_notebook, chapters, load_profiles, resolve_profile

    root = Path(root)
    pages = chapters(root)
    if chapter not in pages:
        raise BookError(f"no executable chapter {chapter!r} in {root}; the chapters are: "
                        f"{', '.join(pages)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{chapter}.ipynb"
        nbformat.write(chapter_notebook(root, chapter, pages[chapter]), path)
        declared = declared_parameters(path)
    _, overrides = resolve_profile(chapter, profile, load_profiles(root), quiet=True)
    return {**{name: literal(text) for name, text in declared.items()},
            **check_overrides(chapter, overrides, declared, root=root)}
