"""Rendering: stage the static pages and the current runs, build the HTML with Jupyter Book.

Staging copies the static pages, each chapter's current executed notebook with the files it
wrote, and the generated execution report into ``build/stage``; Jupyter Book renders that
(notebooks are not executed again) into ``build/html``. A chapter without a current run is
staged as a page that says it was not run in this build and how to run it; such a partial book
renders with Sphinx warnings shown (cross-references into missing chapters cannot resolve),
while a complete book renders with any warning as an error.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from . import processes, store
from .banner import mark_run_parameters
from .citation import fill_citation
from .inputs import claims_files
from .report import DOWNLOAD_DIR, DOWNLOADS, not_run_markdown, report_markdown
from .sources import (FINDINGS, PAPERMILL_LABEL, REPORT_PAGE, BookError, book_version,
                      build_year, chapters, toc_pages)

STAGED_FILES = ("_config.yml", "_toc.yml", "references.bib")


def check_run(name: str, folder: Path) -> dict:
    """The record of a current run, after :func:`bea_book.store.verify_run` (its files are
    those it recorded, its notebook finished); a BookError naming the chapter, the file and
    the command that replaces the run otherwise (with the profile the run had)."""
    profile = ""
    try:
        record = json.loads((Path(folder) / store.RUN_RECORD).read_text())
        if isinstance(record.get("profile"), str) and record["profile"] != PAPERMILL_LABEL:
            profile = f" --profile {record['profile'].split(' ')[0]}"
    except (OSError, ValueError, AttributeError):
        pass
    return store.verify_run(name, folder, fix=f"run it again (`python -m bea_book run {name}"
                                               f"{profile}`), then render")


def _title(source: Path, name: str) -> str:
    for line in source.read_text().splitlines() if source.is_file() else []:
        if line.startswith("# "):
            return line[2:].strip()
    return name


def _copy_run(name: str, folder: Path, dest: Path) -> None:
    """The run's notebook and the files it wrote, without its record or others' claims; the
    files a reader may download (:data:`bea_book.report.DOWNLOADS`) also under
    ``downloads/<chapter>/``, where no other chapter's file of the same name replaces them."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_dir() or relative.name == store.RUN_RECORD:
            continue
        if relative.name.endswith(".claims.json") and relative.name != f"{name}.claims.json":
            continue
        targets = [dest / relative]
        if relative.name.endswith(DOWNLOADS):
            targets.append(dest / DOWNLOAD_DIR / name / relative)
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def stage(root: Path, build_dir: Path, staged_runs: dict | None = None
          ) -> tuple[Path, list[str]]:
    """Assemble the sources Jupyter Book renders; returns the folder and the chapters that
    have not been run in this build folder. ``staged_runs``, when given, receives chapter ->
    the run folder staged (what ``rendered.json`` records)."""
    root, build_dir = Path(root).resolve(), Path(build_dir).resolve()
    pages, staged = chapters(root), build_dir / "stage"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    for name in STAGED_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, staged / name)
    version = book_version(root)
    _stamp_version(staged / "_config.yml", version)
    sources = {f"{page}.md" for page in pages.values()}
    for top in sorted({Path(page).parts[0] for page in toc_pages(root)}):
        if (root / top).is_dir():
            shutil.copytree(
                root / top, staged / top, dirs_exist_ok=True,
                ignore=lambda d, names: [n for n in names
                                         if os.path.relpath(Path(d) / n, root) in sources])
    fill_citation(staged / f"{toc_pages(root)[0]}.md", root / "CITATION.cff")
    not_run, report = [], {}
    for name, page in pages.items():
        folder = store.current_run(build_dir, name)
        if folder is None:
            not_run.append(name)
            (staged / f"{page}.md").write_text(
                not_run_markdown(_title(root / f"{page}.md", name), name))
            continue
        report[name] = check_run(name, folder)
        _copy_run(name, folder, (staged / page).parent)
        mark_run_parameters((staged / page).parent / f"{name}.ipynb", report[name])
        if staged_runs is not None:
            staged_runs[name] = folder
        if report[name]["inputs"]["source"] != store.sha256(root / f"{page}.md"):
            print(f"note: chapter {name!r} has changed since its last run; rendering that run")
    if FINDINGS in report and "claims" in report[FINDINGS]["inputs"]:
        now = {n: store.sha256(p) for n, p in claims_files(build_dir, report).items()
               if n != FINDINGS}
        if now != report[FINDINGS]["inputs"]["claims"]:
            print(f"note: chapter {FINDINGS!r} tabulates claims that changed since it ran")
    _summary_placeholder(staged, pages)
    actions = store.read_report(build_dir)
    for name in report:
        report[name]["action"] = actions.get(name, {}).get("action", "executed")
    for page in toc_pages(root):
        if Path(page).name == REPORT_PAGE:
            (staged / f"{page}.md").write_text(report_markdown(report, pages, version=version))
    return staged, not_run


def _summary_placeholder(staged: Path, pages: dict) -> None:
    """The Findings sentences and summary the introduction includes, when the Findings chapter
    has not run."""
    from bea_lib.evidence.findings import SENTENCES_FILE, SUMMARY_FILE

    if FINDINGS not in pages:
        return
    folder = staged / Path(pages[FINDINGS]).parent
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in ((SENTENCES_FILE, "*The Findings chapter has not run in this build, so "
                        "there is nothing to summarise here.*\n"),
                       (SUMMARY_FILE, "*The Findings chapter has not run in this build, so "
                        "there are no verdicts to show here.*\n")):
        if not (folder / name).is_file():
            (folder / name).write_text(text)


def _stamp_version(config: Path, version: str) -> None:
    """Show the book's version in its title and the build's year in its footer's copyright
    (the staged copy of ``_config.yml``)."""
    if not config.is_file():
        return
    settings = yaml.safe_load(config.read_text()) or {}
    settings["title"] = f"{settings.get('title', 'Book')} (version {version})"
    settings["copyright"] = str(build_year())
    config.write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))


def _jupyter_book(command: list[str]) -> subprocess.CompletedProcess:
    """Run the build in a session of its own that dies with this process (Linux) and is
    killed when the command is stopped (:mod:`bea_book.processes`)."""
    posix = os.name == "posix"
    build = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=posix,
                             preexec_fn=processes.session_preexec if posix else None)
    processes.register(build.pid)
    try:
        out, err = build.communicate()
    except BaseException:
        processes.kill_children(signal.SIGKILL)
        build.wait()
        raise
    finally:
        processes.unregister(build.pid)
    return subprocess.CompletedProcess(command, build.returncode, out, err)


def html_hashes(html: Path) -> dict[str, str]:
    """relative path -> SHA-256 of every file of the rendered HTML (a symbolic link in it is
    refused, :func:`bea_book.store.plain_files`)."""
    fix = "render again (python -m bea_book render)"
    return {str(path.relative_to(html)): store.sha256(path)
            for path in store.plain_files(html, fix)}


def render(*, root: Path = Path("."), build_dir: Path | None = None,
           complete: bool = False) -> Path:
    """Render the staged book to ``build_dir/html``; return the path to its ``index.html``.

    ``complete`` refuses a book in which a chapter has not been run. Holds the build folder's
    lock, so no run is committed while the book renders; ``rendered.json`` records the runs
    that were staged, their records' and the HTML's SHA-256 (checked by ``archive``).
    """
    root, build_dir = store.build_folder(root, build_dir)
    with store.build_lock(build_dir):
        return _render(root, build_dir, complete)


def _render(root: Path, build_dir: Path, complete: bool) -> Path:
    staged_runs: dict[str, Path] = {}
    staged, not_run = stage(root, build_dir, staged_runs)
    if not_run and complete:
        raise BookError(f"chapters not run in {build_dir}: {', '.join(not_run)}")
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
               "build", str(staged), "--builder", "html", "-n", "--keep-going"]
    if not not_run:
        command.append("-W")
    print("rendering ..." if not not_run else
          f"rendering; not run in this build: {', '.join(not_run)} ...", flush=True)
    build = _jupyter_book(command)
    if build.returncode != 0:  # the messages matter only when the build fails
        print(build.stdout, build.stderr, sep="\n", file=sys.stderr)
        raise BookError("the book did not render without warnings; see the messages above")
    if not_run:
        warnings = sum("WARNING" in line for line in (build.stdout + build.stderr).splitlines())
        if warnings:
            print(f"note: {warnings} Sphinx warnings, expected in a book with chapters not run "
                  "(a complete build treats any warning as an error)")
    html = build_dir / "html"
    store.write_json(build_dir / "rendered.json", {"status": "rendering"})
    shutil.rmtree(html, ignore_errors=True)
    shutil.move(staged / "_build" / "html", html)
    store.write_json(build_dir / "rendered.json", {
        "version": book_version(root), "not_run": not_run,
        "runs": {n: folder.name for n, folder in staged_runs.items()},
        "records": {n: store.sha256(folder / store.RUN_RECORD)
                    for n, folder in staged_runs.items()},
        "html": html_hashes(html)})
    return html / "index.html"
