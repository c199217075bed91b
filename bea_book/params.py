"""A chapter's parameters: the cell tagged ``parameters``, and the values that override it.

Overrides come from a profile in ``book/profiles.yml``, a ``--params-file`` and ``-p NAME
VALUE`` (later ones winning). Every override is checked against the parameters cell before
any kernel starts: the name must be one the cell assigns, and the value must have the type of
the cell's default (an int where it holds an int, a number where it holds a float, a list
where it holds a list, ...), so that a typo fails in a second with the parameter's name, not
minutes later inside a cell.
"""
from __future__ import annotations

import ast
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
    (``n_train = 1000  # ... (None: all)``)."""

    def __init__(self, defaults: dict, nullable=()):
        super().__init__(defaults)
        self.nullable = frozenset(nullable)


def declared_parameters(notebook_path: Path) -> Declared:
    """name -> default (source text) of the assignments papermill reads in the cell tagged
    ``parameters`` of the notebook at ``notebook_path``."""
    import papermill

    found = papermill.inspect_notebook(str(notebook_path))
    return Declared({name: info["default"] for name, info in found.items()},
                    [name for name, info in found.items()
                     if info["default"] == "None" or re.search(r"\bNone\b", info["help"] or "")])


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


OUTPUT_PATHS = ("fig_dir",)  # parameters naming where a chapter writes what the book shows
NOT_A_NUMBER = re.compile(r"[-+]?(?:0[0-9]+|[0-9]+(?::[0-9]+)+)(?:\.[0-9]*)?")  # 010, 1:30


def check_output_path(chapter: str, name: str, value) -> str:
    """An output folder inside the run's folder: relative, and not climbing out of it."""
    text = str(value)
    parts = Path(text).parts
    if not text or Path(text).is_absolute() or ".." in parts or text.startswith("~"):
        raise BookError(
            f"chapter {chapter!r}: parameter {name} must be a folder inside the run's folder "
            f"(relative, without '..'), got {value!r}; the build folder holds every output")
    return text


def check_overrides(chapter: str, overrides: dict, declared: dict[str, str]) -> dict:
    """The overrides with names and types checked against the parameters cell's defaults.

    ``None`` is accepted where the default is None or the cell's comment says what None
    means (``declared.nullable``, see :class:`Declared`); output folders (``OUTPUT_PATHS``)
    must stay inside the run's folder.
    """
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise BookError(
            f"chapter {chapter!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(declared) or 'none'}")
    nullable = getattr(declared, "nullable", None)
    if nullable is None:
        nullable = {name for name, text in declared.items() if text == "None"}
    checked = {}
    for name, value in overrides.items():
        default = literal(declared[name])
        if name in OUTPUT_PATHS and value is not None:
            value = check_output_path(chapter, name, value)
        if value is None:
            if name not in nullable:
                raise BookError(
                    f"chapter {chapter!r}: parameter {name} cannot be None (null); its default "
                    f"is {declared[name]} and its comment gives None no meaning")
            checked[name] = None
            continue
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
            **check_overrides(chapter, overrides, declared)}
