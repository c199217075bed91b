"""Run the book's chapters with parameters and render them to HTML.

A chapter is a Jupytext MyST Markdown file named in ``_toc.yml`` whose front matter has a
``jupytext`` or ``kernelspec`` header; other pages of the table of contents (the introduction,
the execution report) are static. Running a chapter::

    book/X.md --jupytext--> _build/notebooks/X.ipynb --papermill--> _build/executed/book/X.ipynb

executes it in the ``python3`` kernel with its working directory beside the executed notebook,
so that files a chapter writes (figures) land in the build folder, never next to the source.
Each run is recorded in ``_build/report.json``. Rendering copies the static pages and the
executed notebooks into ``_build/stage``, writes the report page there, and builds it with
Jupyter Book (notebooks are not executed again; any Sphinx warning is an error) into
``_build/html``.

Parameters come from three places, later ones winning: the chapter's cell tagged
``parameters`` (the ``default`` profile), a named profile in ``book/profiles.yml``, and values
given explicitly (``-p NAME VALUE``, parsed as YAML scalars, or ``--params-file FILE.yml``).

Command line::

    python -m bea_book run adam [--profile smoke] [-p rho 0.99] [--params-file p.yml]
    python -m bea_book render
    python -m bea_book all [--profile paper]
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

KERNEL = "python3"
DEFAULT_PROFILE = "default"
FALLBACK_PROFILES = ("paper",)  # a chapter without these runs its defaults, with a note
REPORT_PAGE = "report"  # the toc page generated from report.json at render time
STAGED_FILES = ("_config.yml", "_toc.yml", "references.bib")
VERSIONED = ("torch", "numpy", "scipy", "matplotlib", "bea_lib", "papermill", "jupyter-book")


class BookError(Exception):
    """A user-facing failure: unknown chapter, profile or parameter, a failed cell or build."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, except that ``1e-8`` is a float (YAML 1.2), not a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


# ---------------------------------------------------------------------------------------------
# The table of contents and the profiles


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


def load_profiles(root: Path) -> dict:
    """``book/profiles.yml``: chapter -> profile -> parameter overrides."""
    path = Path(root) / "book" / "profiles.yml"
    return (yaml.load(path.read_text(), _Loader) or {}) if path.is_file() else {}


def resolve_profile(chapter: str, profile: str, profiles: dict) -> tuple[str, dict]:
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
        print(f"note: chapter {chapter!r} has no {profile!r} profile; running its defaults")
        return f"{profile} (= {DEFAULT_PROFILE})", {}
    names = ", ".join([DEFAULT_PROFILE, *own])
    raise BookError(f"chapter {chapter!r} has no profile {profile!r}; it has: {names}")


def parse_value(text: str):
    """A ``-p`` value read as YAML: ``0.99`` and ``1e-8`` are floats, ``true`` is a bool,
    ``[1, 2]`` a list, anything else that is not YAML syntax a string."""
    return yaml.load(text, _Loader)


def load_params_file(path: Path) -> dict:
    """A YAML file holding a mapping of parameter names to values."""
    params = yaml.load(Path(path).read_text(), _Loader) or {}
    if not isinstance(params, dict):
        raise BookError(f"{path} must hold a mapping of parameter names to values")
    return params


# ---------------------------------------------------------------------------------------------
# Running a chapter


def _check_kernel() -> None:
    """Fail early unless the ``python3`` kernel runs this interpreter's environment."""
    install = f"{sys.executable} -m ipykernel install --sys-prefix --name {KERNEL}"
    try:
        argv0 = KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    except NoSuchKernel:
        raise BookError(f"no Jupyter kernel {KERNEL!r}; install it with `{install}`") from None
    executable = shutil.which(argv0) or argv0
    if Path(os.path.abspath(executable)).parent != Path(sys.executable).parent:
        raise BookError(
            f"the Jupyter kernel {KERNEL!r} starts {executable}, not this environment's "
            f"{sys.executable}; install it with `{install}` (make setup does this)"
        )


def _literal(text: str):
    """A parameter default as written in the parameters cell, evaluated when it is a literal."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def commit(root: Path) -> str:
    """``git rev-parse HEAD``, with ``-dirty`` if the tree has changes; ``unknown`` outside git."""
    try:
        git = ["git", "-C", str(root)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a chapter's numbers depend on."""
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def read_report(build_dir: Path) -> dict:
    """``report.json``: chapter -> record of its last successful run."""
    path = Path(build_dir) / "report.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _record(build_dir: Path, chapter: str, record: dict) -> None:
    """Merge one chapter's record into ``report.json``, atomically."""
    report = read_report(build_dir)
    report[chapter] = record
    fd, tmp = tempfile.mkstemp(dir=build_dir, prefix=".report.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(report, f, indent=2, default=str)
    os.replace(tmp, Path(build_dir) / "report.json")


def _check_parameter_lines(chapter: str, notebook, declared: dict) -> None:
    """Every top-level assignment in the ``parameters`` cell must be one that papermill read.

    papermill silently skips lines it cannot parse (``a, b = 1, 2``; an ``=`` inside the trailing
    comment), and the parameter would then look unknown; name the line instead.
    """
    for cell in notebook.cells:
        if "parameters" not in cell.get("metadata", {}).get("tags", []):
            continue
        for number, line in enumerate(cell.source.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#") or line[0].isspace() or line[0] in ")]}":
                continue
            name = re.match(r"([A-Za-z_]\w*)\s*(?::[^=]*)?=", line)
            if name is None or name.group(1) not in declared:
                raise BookError(
                    f"chapter {chapter!r}: line {number} of its parameters cell is not read as a "
                    f"parameter: {line.strip()!r}; write one `name = value  # comment` per line, "
                    "with no '=' inside the comment")


def run_chapter(
    chapter: str,
    *,
    root: Path = Path("."),
    build_dir: Path | None = None,
    profile: str = DEFAULT_PROFILE,
    params: dict | None = None,
) -> Path:
    """Execute one chapter with a profile and explicit parameters; return the executed notebook.

    Unknown parameter names are rejected before the kernel starts. A failing cell raises
    ``BookError`` naming the chapter; the notebook, with the traceback, is still written.
    """
    root = Path(root).resolve()
    build_dir = Path(build_dir or root / "_build").resolve()
    pages = chapters(root)
    if chapter not in pages:
        raise BookError(f"no chapter {chapter!r} in _toc.yml; chapters: {', '.join(pages)}")
    label, from_profile = resolve_profile(chapter, profile, load_profiles(root))
    overrides = {**from_profile, **(params or {})}

    source = build_dir / "notebooks" / f"{chapter}.ipynb"
    executed = build_dir / "executed" / f"{pages[chapter]}.ipynb"
    source.parent.mkdir(parents=True, exist_ok=True)
    executed.parent.mkdir(parents=True, exist_ok=True)
    notebook = jupytext.read(root / f"{pages[chapter]}.md")
    notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, source)

    declared = papermill.inspect_notebook(str(source))
    _check_parameter_lines(chapter, notebook, declared)
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise BookError(
            f"chapter {chapter!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(declared) or 'none'}"
        )
    _check_kernel()

    print(f"running {chapter} (profile {profile}) ...", flush=True)
    os.environ["TQDM_DISABLE"] = "1"  # the kernel inherits it: no progress bars in the pages
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source), str(executed), parameters=overrides, kernel_name=KERNEL,
            cwd=str(executed.parent), progress_bar=False,
        )
    except papermill.PapermillExecutionError as err:
        raise BookError(
            f"chapter {chapter!r} failed in cell [{err.exec_count}]: {err.ename}: {err.evalue} "
            f"(see {executed})"
        ) from err
    wall = time.perf_counter() - start

    parameters = {name: _literal(info["default"]) for name, info in declared.items()}
    _record(build_dir, chapter, {
        "profile": label,
        "parameters": {**parameters, **overrides},
        "overrides": overrides,
        "wall_time_s": round(wall, 2),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit(root),
        "versions": versions(),
    })
    print(f"  {chapter} done in {wall:.1f} s -> {executed}", flush=True)
    return executed


# ---------------------------------------------------------------------------------------------
# Rendering


def _cell(text) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|")


def report_markdown(report: dict, pages: dict[str, str]) -> str:
    """The MyST page that shows how each chapter of the rendered book was executed."""
    lines = [
        "# Execution report",
        "",
        "Every number and figure in this book was computed when the book was built. This page,",
        "generated at render time from `report.json` in the build folder, records how each",
        "chapter was last executed: its profile and parameter values (in bold those set by the",
        "profile or on the command line), the wall time, the commit of the sources (`-dirty`",
        "when they had uncommitted changes) and the versions of the software.",
        "",
    ]
    rows = [name for name in pages if name in report]
    if not rows:
        return "\n".join([*lines, "No chapter has been executed yet.", ""])
    lines += [
        "| chapter | profile | parameters | wall time | finished (UTC) | commit |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in rows:
        rec = report[name]
        shown = []
        for key, value in rec["parameters"].items():
            item = f"`{key} = {value!r}`"
            shown.append(f"**{item}**" if key in rec["overrides"] else item)
        lines.append(
            f"| {{doc}}`{name} </{pages[name]}>` | {rec['profile']} | {_cell(', '.join(shown))} "
            f"| {rec['wall_time_s']:.1f} s | {rec['finished']} | `{rec['commit'][:12]}"
            f"{'-dirty' if rec['commit'].endswith('-dirty') else ''}` |"
        )
    packages = list(report[rows[0]]["versions"])
    lines += ["", "## Software", "", "| chapter | " + " | ".join(packages) + " |",
              "| --- " * (len(packages) + 1) + "|"]
    for name in rows:
        found = report[name]["versions"]
        lines.append(f"| {name} | " + " | ".join(_cell(found.get(p, "")) for p in packages) + " |")
    return "\n".join([*lines, ""])


def stage(root: Path, build_dir: Path) -> Path:
    """Assemble the sources Jupyter Book renders: static pages plus executed notebooks."""
    root, build_dir = Path(root).resolve(), Path(build_dir).resolve()
    pages, staged = chapters(root), build_dir / "stage"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for name in STAGED_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, staged / name)
    sources = {f"{page}.md" for page in pages.values()}
    for top in sorted({Path(page).parts[0] for page in toc_pages(root)}):
        if (root / top).is_dir():
            shutil.copytree(
                root / top, staged / top, dirs_exist_ok=True,
                ignore=lambda d, names: [n for n in names
                                         if os.path.relpath(Path(d) / n, root) in sources],
            )
    for name, page in pages.items():
        executed = build_dir / "executed" / f"{page}.ipynb"
        if not executed.is_file():
            raise BookError(f"chapter {name!r} has not been run; run `python -m bea_book run {name}`")
        if nbformat.read(executed, as_version=4).metadata.get("papermill", {}).get("exception"):
            raise BookError(f"the last run of chapter {name!r} failed; see {executed}")
        if (root / f"{page}.md").stat().st_mtime > executed.stat().st_mtime:
            print(f"note: chapter {name!r} has changed since its last run; rendering that run")
    if pages:
        shutil.copytree(build_dir / "executed", staged, dirs_exist_ok=True)
    for page in toc_pages(root):
        if Path(page).name == REPORT_PAGE:
            (staged / f"{page}.md").write_text(report_markdown(read_report(build_dir), pages))
    return staged


def render(*, root: Path = Path("."), build_dir: Path | None = None) -> Path:
    """Render the staged book to ``build_dir/html``; return the path to its ``index.html``."""
    root = Path(root).resolve()
    build_dir = Path(build_dir or root / "_build").resolve()
    staged = stage(root, build_dir)
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
               "build", str(staged), "--builder", "html", "-W", "-n", "--keep-going"]
    print("rendering ...", flush=True)
    build = subprocess.run(command, capture_output=True, text=True)
    if build.returncode != 0:  # the messages matter only when the build fails
        print(build.stdout, build.stderr, sep="\n", file=sys.stderr)
        raise BookError("the book did not render without warnings; see the messages above")
    html = build_dir / "html"
    shutil.rmtree(html, ignore_errors=True)
    shutil.move(staged / "_build" / "html", html)
    return html / "index.html"


def run_all(*, root: Path = Path("."), build_dir: Path | None = None,
            profile: str = DEFAULT_PROFILE) -> Path:
    """Run every chapter of the table of contents with one profile, then render the book."""
    for chapter in chapters(root):
        run_chapter(chapter, root=root, build_dir=build_dir, profile=profile)
    return render(root=root, build_dir=build_dir)


# ---------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bea_book", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, default=Path("."),
                        help="directory holding _toc.yml (default: the current one)")
    common.add_argument("--build-dir", type=Path, help="build folder (default: ROOT/_build)")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", parents=[common], help="execute chapters")
    run.add_argument("chapters", nargs="+", metavar="CHAPTER")
    run.add_argument("--profile", default=DEFAULT_PROFILE, help="profile in book/profiles.yml")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"), help="set a parameter (VALUE is read as YAML)")
    run.add_argument("--params-file", type=Path, help="YAML mapping of parameters")

    commands.add_parser("render", parents=[common], help="render the executed chapters to HTML")
    everything = commands.add_parser("all", parents=[common], help="run every chapter, then render")
    everything.add_argument("--profile", default=DEFAULT_PROFILE, help="profile in book/profiles.yml")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bea_book``; returns the exit status."""
    args = _parser().parse_args(argv)
    where = {"root": args.root, "build_dir": args.build_dir}
    try:
        if args.command == "run":
            params = load_params_file(args.params_file) if args.params_file else {}
            params.update({name: parse_value(value) for name, value in args.param})
            for chapter in args.chapters:
                run_chapter(chapter, profile=args.profile, params=params, **where)
            return 0
        index = render(**where) if args.command == "render" else run_all(profile=args.profile, **where)
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"The book is at {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
