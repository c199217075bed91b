"""``make archive``: one zip of a complete build, for deposit as supplementary material.

Inside one top folder ``<name>-<version>/``: the rendered HTML (``html/``, opens from disk),
every executed notebook with the files it wrote (``chapters/<chapter>/``: figures as PNG and
PDF, checked claims, the run record), ``report.json``, and from the repository
``CITATION.cff``, ``.zenodo.json``, ``CHANGELOG.md``, ``README.md`` and the lock file; last,
``MANIFEST.sha256``, the SHA-256 of every other file in ``sha256sum`` format, so that
``cd <folder> && sha256sum -c MANIFEST.sha256`` checks an unpacked copy.

Before anything is packed, the build is checked against the hashes recorded when it was made:
every file of every run against its ``run.json`` (claims, figures, notebook), every record and
every file of ``html/`` against ``rendered.json``. An edited, added or missing file is named and
the archive refused, and so is a symbolic link anywhere in what is packed, and a Findings page
that tabulates claims changed since it ran. ``--output`` is a ``.zip`` outside the build
folder (or directly in it, where the default goes): no file of the build can be replaced. The
build folder's lock is held meanwhile.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from bea_lib.base import fileio

from . import store
from .inputs import claims_files
from .render import check_run, html_hashes
from .sources import FINDINGS, LOCK_FILE, BookError, book_version, chapters

NAME = "implicit-bias-of-adam"
PROJECT_FILES = ("CITATION.cff", ".zenodo.json", "CHANGELOG.md", "README.md", LOCK_FILE)
MANIFEST = "MANIFEST.sha256"
FIXED_TIME = (2000, 1, 1, 0, 0, 0)  # entry times: the zip of a build depends on its files only


def archive_files(root: Path, build_dir: Path) -> dict[str, Path]:
    """Archive path -> file, for a complete build that has been rendered after its last run."""
    build_dir = Path(build_dir)
    rendered = build_dir / "rendered.json"
    names = list(chapters(root))
    current = {n: store.current_run(build_dir, n) for n in names}
    missing = [n for n, folder in current.items() if folder is None]
    if missing:
        raise BookError(f"chapters not run in {build_dir}: {', '.join(missing)}; an archive "
                        "holds the complete book (make book)")
    if not rendered.is_file() or not (build_dir / "html" / "index.html").is_file():
        raise BookError(f"no rendered book in {build_dir}; render it first (make book)")
    again = "render again (python -m bea_book render)"
    shown = store.read_json(rendered, "the render record", again)
    if not all(isinstance(shown.get(k), dict) for k in ("runs", "records", "html")):
        raise store.DamagedFile(f"the render record {rendered} is damaged or unfinished; {again}")
    if shown["runs"] != {n: folder.name for n, folder in current.items()}:
        raise BookError(f"the HTML in {build_dir} was rendered before the last chapter runs; "
                        f"{again}")
    records = {}
    for name, folder in current.items():
        records[name] = check_run(name, folder)
        if shown["records"].get(name) != store.sha256(folder / store.RUN_RECORD):
            raise BookError(f"the run record {folder / store.RUN_RECORD} changed after the book "
                            f"was rendered; {again}")
    check_findings(build_dir, records)
    html = build_dir / "html"
    now = html_hashes(html)
    for rel in sorted(set(now) | set(shown["html"])):
        if now.get(rel) != shown["html"].get(rel):
            how = ("is missing" if rel not in now else "was added after rendering"
                   if rel not in shown["html"] else "was changed after rendering")
            raise BookError(f"{html / rel} {how} (SHA-256 in {rendered}); {again}")
    files = {f"html/{rel}": html / rel for rel in now}
    for name, folder in current.items():
        for path in store.plain_files(folder, f"run the chapter again ({name})"):
            foreign = path.name.endswith(".claims.json") and path.name != f"{name}.claims.json"
            if not foreign:
                files[f"chapters/{name}/{path.relative_to(folder)}"] = path
    files["report.json"] = build_dir / "report.json"
    for name in PROJECT_FILES:
        if (Path(root) / name).is_file() or (Path(root) / name).is_symlink():
            files[name] = Path(root) / name
    for path in files.values():  # the files outside the folders walked above
        store.refuse_link(path, "an archive holds the files themselves; put the file there")
    return files


def check_findings(build_dir: Path, records: dict) -> None:
    """The Findings chapter tabulates the claims the other chapters have now: a chapter run or
    adopted after it (with other claims) makes the table stale, and such a build is refused."""
    if FINDINGS not in records or "claims" not in records[FINDINGS]["inputs"]:
        return
    then = records[FINDINGS]["inputs"]["claims"]
    now = {n: store.sha256(p) for n, p in claims_files(build_dir, records).items()
           if n != FINDINGS}
    changed = sorted(n for n in set(then) | set(now) if then.get(n) != now.get(n))
    if changed:
        raise BookError(f"the Findings chapter in {build_dir} tabulates claims that changed since "
                        f"it ran (those of {', '.join(changed)}); run it again and render "
                        f"(python -m bea_book run {FINDINGS} && python -m bea_book render), then "
                        "archive")


def check_output(output: Path, build_dir: Path) -> Path:
    """Where ``--output`` puts the archive, checked before anything is read: a ``.zip`` file
    name (not a folder) in an existing folder, outside the build folder (or directly in it,
    where the default archive goes), so that no file of the build can be replaced."""
    given = output
    output = store.resolve_folder(output.parent, "the folder of --output", "--output") / output.name
    if output.is_dir():
        raise BookError(f"--output {given} is a folder; give the archive's file name "
                        f"(for example {given / 'book.zip'})")
    if output.suffix != ".zip":
        raise BookError(f"--output {given} must name a .zip file")
    if not output.parent.is_dir():
        raise BookError(f"--output {given}: the folder {output.parent} does not exist")
    if build_dir in output.parents and output.parent != build_dir:
        raise BookError(f"--output {given} lies inside the build folder {build_dir}, whose "
                        "files the archive holds; write it outside the build folder (the default "
                        "is a .zip directly in it)")
    return output


def make_archive(*, root: Path = Path("."), build_dir: Path | None = None,
                 output: Path | None = None) -> Path:
    """Write the archive of the build (see the module docstring); returns its path."""
    root, build_dir = store.build_folder(root, build_dir, create=False)
    if not build_dir.is_dir():
        raise BookError(f"no build folder {build_dir}; build the book first (make book)")
    with store.build_lock(build_dir):
        return _make_archive(root, build_dir, output)


def _make_archive(root: Path, build_dir: Path, output: Path | None) -> Path:
    output = None if output is None else check_output(Path(output), build_dir)
    files = archive_files(root, build_dir)
    profiles = sorted({store.read_run(store.current_run(build_dir, name)).get("profile", "default")
                       for name in chapters(root)})
    # a build at another profile than the default says so in its name, so that a smoke
    # archive cannot pass for the book
    top = f"{NAME}-{book_version(root)}" + "".join(f"-{p}" for p in profiles if p != "default")
    output = output or build_dir / f"{top}.zip"
    manifest = "".join(f"{store.sha256(path)}  {name}\n" for name, path in sorted(files.items()))

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, path in sorted(files.items()):
                info = zipfile.ZipInfo(f"{top}/{name}", FIXED_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())
            info = zipfile.ZipInfo(f"{top}/{MANIFEST}", FIXED_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, manifest)

    fileio.atomic_write(output, write)
    return output
