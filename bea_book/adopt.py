"""The plain papermill path: a chapter executed by ``papermill`` itself, then rendered.

``python -m bea_book notebooks`` writes each chapter's Markdown source as a notebook
(``build/notebooks/<chapter>.ipynb``) that papermill can execute with ``-p``;
``python -m bea_book adopt OUT.ipynb`` takes papermill's output (with the claims and figures
the kernel wrote beside it, in ``--cwd``) as the chapter's current run, after checks that a
notebook executed elsewhere is the chapter's: a valid notebook (nbformat's schema), metadata of
the right types naming a chapter of this book, every cell executed to the end; its parameters
read from the cell papermill injected (and equal to those its metadata reports), with the names
and types of the chapter's parameters cell; every other cell's source equal to the chapter's
as it is now. What does not match is refused with one line naming it. (Outputs cannot be
checked without executing the chapter again: adopting is trusting whoever ran papermill.)
"""
from __future__ import annotations

import ast
import shutil
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from bea_lib import provenance

from . import inputs as inp
from . import store
from .execute import _claims_summary, print_claims, write_notebook
from .params import check_overrides, declared_parameters, literal
from .sources import PAPERMILL_LABEL, BookError, book_version, chapters

ADOPTED = "executed by papermill"


def _utc(stamp: str) -> str:
    """papermill's time stamp (ISO format, UTC, often without a zone) as the runner writes it."""
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _read_notebook(path: Path):
    """The notebook at ``path``, validated against nbformat's schema."""
    raw = store.read_json(path, "the notebook", "adopt the .ipynb papermill wrote")
    try:
        if raw.get("nbformat") != 4:
            raise nbformat.ValidationError(f"nbformat {raw.get('nbformat')!r}, not 4")
        nbformat.validate(raw)
        notebook = nbformat.reads(path.read_text(), as_version=4)
    except Exception as err:  # noqa: BLE001 - nbformat raises many kinds; all mean "not valid"
        reason = str(err).splitlines()[0][:200]
        raise BookError(f"{path} is not a valid notebook ({reason})") from None
    return notebook


def _mapping(value, what: str, path: Path) -> dict:
    if not isinstance(value, dict):
        raise BookError(f"{path}: its {what} must be a mapping, got {type(value).__name__}")
    return value


INJECTED = "injected-parameters"


def injected_parameters(notebook, path: Path) -> dict:
    """name -> value of the assignments in the cell papermill injected (``{}`` without one);
    only literal values, one ``name = value`` per statement."""
    cells = [c for c in notebook.cells if INJECTED in c.get("metadata", {}).get("tags", [])]
    if len(cells) > 1:
        raise BookError(f"{path} has {len(cells)} cells tagged {INJECTED!r}; papermill injects one")
    if not cells:
        return {}
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as err:
        raise BookError(f"{path}: its injected parameters cell is not Python ({err.msg}, line "
                        f"{err.lineno})") from None
    found = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise BookError(f"{path}: its injected parameters cell holds "
                            f"{ast.get_source_segment(cells[0].source, node)!r}, not an "
                            "assignment `name = value`")
        try:
            found[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise BookError(f"{path}: the injected parameter {node.targets[0].id} is not a "
                            "literal value") from None
    return found


def _same_values(a, b) -> bool:
    """Equal as parameters: lists and tuples alike, ints and floats by value."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_values(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_values(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float))
        and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def compare_sources(notebook, chapter_notebook, path: Path, chapter: str) -> None:
    """Every cell but the injected one must be the chapter's, in order, with its source."""
    ours = [(c.cell_type, c.source) for c in chapter_notebook.cells]
    theirs = [(c.cell_type, c.source) for c in notebook.cells
              if INJECTED not in c.get("metadata", {}).get("tags", [])]
    for i, (mine, found) in enumerate(zip(ours, theirs)):
        if mine != found:
            first = (found[1].splitlines() or [""])[0][:60]
            raise BookError(f"{path}: cell {i + 1} ({first!r}) is not the cell of chapter "
                            f"{chapter!r} there; execute the notebook `python -m bea_book "
                            "notebooks` writes for the chapter as it is now")
    if len(ours) != len(theirs):
        raise BookError(f"{path} has {len(theirs)} cells besides the injected one; the chapter "
                        f"{chapter!r} has {len(ours)}")


def _mark_claims(source: Path, folder: Path, label: str, custom: dict) -> None:
    """Copy the claims the kernel recorded into ``folder``, each marked with the run's profile
    and its custom parameters: the kernel ran outside the runner, which tells a kernel both."""
    claims = store.read_json(source, "the claims file", "run the chapter again")
    if not isinstance(claims, dict) or not all(isinstance(c, dict) for c in claims.values()):
        raise BookError(f"{source}: not a claims file (a mapping of claim records)")
    for record in claims.values():
        record.update(profile=label, custom=dict(custom))
    store.write_json(folder / source.name, claims)


def adopt(notebook_path: Path, *, root: Path = Path("."), build_dir: Path | None = None) -> str:
    """Make a notebook executed by papermill its chapter's current run; returns the chapter."""
    root = Path(root).resolve()
    build_dir = store.check_writable(Path(build_dir or root / "_build").resolve())
    with store.build_lock(build_dir):
        return _adopt(Path(notebook_path), root, build_dir)


def _adopt(notebook_path: Path, root: Path, build_dir: Path) -> str:
    if not notebook_path.is_file():
        raise BookError(f"no notebook {notebook_path}")
    notebook = _read_notebook(notebook_path)
    ours = _mapping(notebook.metadata.get("bea_book", {}), "metadata 'bea_book'", notebook_path)
    chapter = ours.get("chapter")
    pages = chapters(root)
    if not isinstance(chapter, str) or chapter not in pages:
        raise BookError(f"{notebook_path} was not made by `python -m bea_book notebooks` "
                        "(its metadata names no chapter of this book)")
    meta = _mapping(notebook.metadata.get("papermill", {}), "metadata 'papermill'",
                    notebook_path)
    if (not meta or meta.get("exception") or not isinstance(meta.get("end_time"), str)
            or not isinstance(meta.get("duration", 0.0) or 0.0, (int, float))):
        raise BookError(f"{notebook_path} is not a notebook papermill executed to the end")
    try:
        _utc(meta["end_time"])
    except ValueError:
        raise BookError(f"{notebook_path}: its papermill end_time {meta['end_time']!r} is not a "
                        "time") from None
    for i, cell in enumerate(notebook.cells):
        state = cell.get("metadata", {}).get("papermill", {})
        if cell.cell_type == "code" and isinstance(state, dict) and state.get("status") not in (
                None, "completed"):
            raise BookError(f"{notebook_path}: cell {i + 1} did not complete "
                            f"(papermill status {state.get('status')!r})")
    chapter_nb = write_notebook(root, build_dir, chapter, pages[chapter])
    compare_sources(notebook, nbformat.read(chapter_nb, as_version=4), notebook_path, chapter)
    injected = injected_parameters(notebook, notebook_path)
    reported = _mapping(meta.get("parameters") or {}, "papermill parameters", notebook_path)
    if injected.keys() != reported.keys() or not all(
            _same_values(injected[k], reported[k]) for k in injected):
        raise BookError(f"{notebook_path}: the parameters its injected cell sets "
                        f"({injected or 'none'}) are not those its metadata reports "
                        f"({reported or 'none'})")
    declared = declared_parameters(chapter_nb)
    overrides = check_overrides(chapter, injected, declared)
    parameters = {**{k: literal(v) for k, v in declared.items()}, **overrides}

    label = PAPERMILL_LABEL
    tmp = store.new_run_folder(build_dir, chapter)
    try:
        shutil.copy2(notebook_path, tmp / f"{chapter}.ipynb")
        beside = notebook_path.parent
        if (beside / f"{chapter}.claims.json").is_file():
            _mark_claims(beside / f"{chapter}.claims.json", tmp, label, overrides)
        if (beside / "figures").is_dir():
            shutil.copytree(beside / "figures", tmp / "figures")
        counts, bad = _claims_summary(tmp, chapter)
        inputs = inp.chapter_inputs(root, build_dir, chapter, pages[chapter], label=label,
                                    parameters=parameters, others=list(pages),
                                    library=inp.library_hash())
        store.write_json(tmp / store.RUN_RECORD, {
            "chapter": chapter, "page": pages[chapter], "profile": label,
            "parameters": parameters, "overrides": overrides, "custom": overrides,
            "parameter_order": list(parameters),
            "wall_time_s": round(float(meta.get("duration") or 0.0), 2),
            "started": meta.get("start_time"),
            "finished": _utc(meta["end_time"]),
            "commit": provenance.commit_label(root), "book_version": book_version(root),
            "versions": provenance.versions(), "lock_sha256": inputs["lock"],
            "inputs": inputs, "claims": counts, "failed_claims": bad,
            "notebook_sha256": store.sha256(tmp / f"{chapter}.ipynb"), "status": "finished",
            "executed_by": "papermill", "files": store.file_hashes(tmp),
        })
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    store.commit_run(build_dir, chapter, tmp)
    store.update_report(build_dir, pages, {chapter: ADOPTED})
    print(f"{chapter}: adopted {notebook_path} ({ADOPTED})")
    print_claims(chapter, counts, bad)
    return chapter
