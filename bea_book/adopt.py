"""The plain papermill path: a chapter executed by ``papermill`` itself, then rendered.

``python -m bea_book notebooks`` writes each chapter's Markdown source as a notebook
(``build/notebooks/<chapter>.ipynb``) that papermill can execute with ``-p``;
``python -m bea_book adopt OUT.ipynb`` takes papermill's output (with the claims and figures
the kernel wrote beside it, in ``--cwd``) as the chapter's current run, after the same checks
as the runner's own: the notebook finished, its parameters are the chapter's, with the right
types.
"""
from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from bea_lib import provenance

from . import inputs as inp
from . import store
from .execute import _claims_summary, print_claims, write_notebook
from .params import check_overrides, declared_parameters, literal
from .sources import BookError, book_version, chapters

ADOPTED = "executed by papermill"


def _utc(stamp: str) -> str:
    """papermill's time stamp (ISO format, UTC, often without a zone) as the runner writes it."""
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def adopt(notebook_path: Path, *, root: Path = Path("."), build_dir: Path | None = None) -> str:
    """Make a notebook executed by papermill its chapter's current run; returns the chapter."""
    root = Path(root).resolve()
    build_dir = store.check_writable(Path(build_dir or root / "_build").resolve())
    notebook_path = Path(notebook_path)
    if not notebook_path.is_file():
        raise BookError(f"no notebook {notebook_path}")
    notebook = nbformat.read(notebook_path, as_version=4)
    chapter = notebook.metadata.get("bea_book", {}).get("chapter")
    pages = chapters(root)
    if chapter not in pages:
        raise BookError(f"{notebook_path} was not made by `python -m bea_book notebooks` "
                        "(its metadata names no chapter of this book)")
    meta = notebook.metadata.get("papermill", {})
    if not meta or meta.get("exception") or not meta.get("end_time"):
        raise BookError(f"{notebook_path} is not a notebook papermill executed to the end")
    declared = declared_parameters(write_notebook(root, build_dir, chapter, pages[chapter]))
    overrides = check_overrides(chapter, dict(meta.get("parameters") or {}), declared)
    parameters = {**{k: literal(v) for k, v in declared.items()}, **overrides}

    label = "papermill"
    tmp = store.new_run_folder(build_dir, chapter)
    try:
        shutil.copy2(notebook_path, tmp / f"{chapter}.ipynb")
        beside = notebook_path.parent
        if (beside / f"{chapter}.claims.json").is_file():
            shutil.copy2(beside / f"{chapter}.claims.json", tmp)
        if (beside / "figures").is_dir():
            shutil.copytree(beside / "figures", tmp / "figures")
        counts, bad = _claims_summary(tmp, chapter)
        inputs = inp.chapter_inputs(root, build_dir, chapter, pages[chapter], label=label,
                                    parameters=parameters, others=list(pages),
                                    library=inp.library_hash())
        store.write_json(tmp / store.RUN_RECORD, {
            "chapter": chapter, "page": pages[chapter], "profile": label,
            "parameters": parameters, "overrides": overrides,
            "parameter_order": list(parameters),
            "wall_time_s": round(float(meta.get("duration") or 0.0), 2),
            "started": meta.get("start_time"),
            "finished": _utc(meta["end_time"]),
            "commit": provenance.commit_label(root), "book_version": book_version(root),
            "versions": provenance.versions(), "lock_sha256": inputs["lock"],
            "inputs": inputs, "claims": counts, "failed_claims": bad,
            "notebook_sha256": store.sha256(tmp / f"{chapter}.ipynb"), "status": "finished",
            "executed_by": "papermill",
        })
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    store.commit_run(build_dir, chapter, tmp)
    store.update_report(build_dir, pages, {chapter: ADOPTED})
    print(f"{chapter}: adopted {notebook_path} ({ADOPTED})")
    print_claims(chapter, counts, bad)
    return chapter
