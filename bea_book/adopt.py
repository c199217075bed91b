"""The plain papermill path: a chapter executed by ``papermill`` itself, then rendered.

``python -m bea_book notebooks`` writes each chapter's Markdown source as a notebook
(``build/notebooks/<chapter>.ipynb``) that papermill can execute with ``-p``;
``python -m bea_book adopt OUT.ipynb`` takes papermill's output (with the claims and figures
the kernel wrote beside it, in ``--cwd``) as the chapter's current run, after checks that a
notebook executed elsewhere is the chapter's: a valid notebook (nbformat's schema), metadata of
the right types naming a chapter of this book, every cell executed to the end; its parameters
read from the cell papermill injected (and equal to those its metadata reports), with the names
and types of the chapter's parameters cell; every other cell's source equal to the chapter's
as it is now; the ``bea_lib`` its kernel imported (printed by the notebook's last cell, see
:func:`bea_book.sources.chapter_notebook`) the one this checkout's runner would use, by hash.
What does not match is refused with one line naming it. The run records the commit, the
``bea_lib`` and the package versions of the notebook's own kernel. Copied into the run: the
notebook (its papermill paths made those of the build folder), the claims and the outputs the
chapter's path parameters name (figures, ``runs.csv``); a symbolic link among them is refused,
naming it, so that nothing is copied from outside the folder. (Outputs cannot be checked
without executing the chapter again: adopting is trusting whoever ran papermill.)
"""
from __future__ import annotations

import ast
import shutil
from datetime import datetime, UTC
from pathlib import Path

import nbformat

from bea_lib.base import provenance

from . import inputs as inp
from . import store
from .execute import (claims_summary, kernel_provenance, print_claims, ran_commit,
                      write_notebook)
from .params import PATH_RULES, check_overrides, declared_parameters, literal, path_parameters
from .sources import PAPERMILL_LABEL, BookError, book_version, chapters

ADOPTED = "executed by papermill"


def _utc(stamp: str) -> str:
    """papermill's time stamp (ISO format, UTC, often without a zone) as the runner writes it."""
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds")


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
    root, build_dir = store.build_folder(root, build_dir)
    with store.build_lock(build_dir):
        return _adopt(Path(notebook_path), root, build_dir)


def _adopt(notebook_path: Path, root: Path, build_dir: Path) -> str:
    notebook_path = store.resolve_folder(notebook_path.parent, "the notebook's folder",
                                         "its path") / notebook_path.name
    linked = "adopt reads plain files only; copy the file itself there"
    store.refuse_link(notebook_path, linked)
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
    ran = kernel_provenance(notebook, notebook_path)
    library = inp.library_hash()
    if ran["bea_lib_sha256"] != library:
        raise BookError(
            f"{notebook_path} ran with another bea_lib ({ran.get('bea_lib_path')}, commit "
            f"{ran_commit(ran)}) than this checkout's ({inp.library_folder()}, commit "
            f"{provenance.commit_label(root)}): its numbers are not this code's; execute it with "
            "this checkout's bea_lib (PYTHONPATH) or adopt it in a checkout of its commit")
    injected = injected_parameters(notebook, notebook_path)
    reported = _mapping(meta.get("parameters") or {}, "papermill parameters", notebook_path)
    if injected.keys() != reported.keys() or not all(
            _same_values(injected[k], reported[k]) for k in injected):
        raise BookError(f"{notebook_path}: the parameters its injected cell sets "
                        f"({injected or 'none'}) are not those its metadata reports "
                        f"({reported or 'none'})")
    declared = declared_parameters(chapter_nb)
    overrides = check_overrides(chapter, injected, declared, root=root)
    parameters = {**{k: literal(v) for k, v in declared.items()}, **overrides}
    beside = notebook_path.parent
    outputs = written_files(beside, chapter, parameters, declared, linked)

    label = PAPERMILL_LABEL
    tmp = store.new_run_folder(build_dir, chapter)
    try:
        shutil.copy2(notebook_path, tmp / f"{chapter}.ipynb")
        store.without_local_paths(tmp / f"{chapter}.ipynb", chapter)
        claims_name = Path(f"{chapter}.claims.json")
        for relative in outputs:
            if relative == claims_name:  # marked with the run's profile and parameters
                _mark_claims(beside / relative, tmp, label, overrides)
                continue
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(beside / relative, tmp / relative)
        counts, bad = claims_summary(tmp, chapter)
        inputs = inp.chapter_inputs(root, build_dir, chapter, pages[chapter], label=label,
                                    parameters=parameters, others=list(pages), library=library)
        store.write_json(tmp / store.RUN_RECORD, {
            "chapter": chapter, "page": pages[chapter], "profile": label,
            "parameters": parameters, "overrides": overrides, "custom": overrides,
            "parameter_order": list(parameters),
            "wall_time_s": round(float(meta.get("duration") or 0.0), 2),
            "started": meta.get("start_time"),
            "finished": _utc(meta["end_time"]),
            # the code the notebook's own kernel ran (its last cell), not this checkout's
            "commit": ran_commit(ran), "book_version": book_version(root),
            "bea_lib_path": ran.get("bea_lib_path"), "bea_lib_commit": ran_commit(ran),
            "adopted_at_commit": provenance.commit_label(root),
            "versions": ran["versions"], "lock_sha256": inputs["lock"],
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


def written_files(beside: Path, chapter: str, parameters: dict, declared, fix: str) -> list[Path]:
    """The files the chapter wrote beside its notebook (papermill's ``--cwd``), relative to it:
    its claims, and every file under the outputs its path parameters name (figures, tables).
    Nothing there may be a symbolic link (:func:`bea_book.store.plain_files`): adopting never
    copies a file from outside that folder."""
    found = []
    claims = beside / f"{chapter}.claims.json"
    store.refuse_link(claims, fix)
    if claims.is_file():
        found.append(Path(claims.name))
    for name in path_parameters(declared):
        value = parameters.get(name)
        if name in PATH_RULES or not isinstance(value, str) or Path(value) in (Path(""), Path(".")):
            continue  # read from elsewhere, not set, or the folder itself
        target = beside
        for part in Path(value).parts:  # no component may be a link either
            target = target / part
            store.refuse_link(target, fix)
        if target.is_file():
            found.append(Path(value))
        elif target.is_dir():
            found += [path.relative_to(beside) for path in store.plain_files(target, fix)]
    return sorted(set(found))
