"""``make archive``: one zip of a complete build, for deposit as supplementary material.

Inside one top folder ``<name>-<version>/``: the rendered HTML (``html/``, opens from disk),
every executed notebook with the files it wrote (``chapters/<chapter>/``: figures as PNG and
PDF, checked claims, the run record), ``report.json``, and from the repository
``CITATION.cff``, ``.zenodo.json``, ``CHANGELOG.md``, ``README.md`` and the lock file; last,
``MANIFEST.sha256``, the SHA-256 of every other file in ``sha256sum`` format, so that
``cd <folder> && sha256sum -c MANIFEST.sha256`` checks an unpacked copy.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from bea_lib import fileio

from . import store
from .render import check_run
from .sources import LOCK_FILE, BookError, book_version, chapters

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
    shown = json.loads(rendered.read_text())
    if shown.get("runs") != {n: folder.name for n, folder in current.items()}:
        raise BookError(f"the HTML in {build_dir} was rendered before the last chapter runs; "
                        "render again (python -m bea_book render)")
    files = {}
    for path in sorted((build_dir / "html").rglob("*")):
        if path.is_file():
            files[f"html/{path.relative_to(build_dir / 'html')}"] = path
    for name, folder in current.items():
        check_run(name, folder)
        for path in sorted(folder.rglob("*")):
            foreign = path.name.endswith(".claims.json") and path.name != f"{name}.claims.json"
            if path.is_file() and not foreign:
                files[f"chapters/{name}/{path.relative_to(folder)}"] = path
    files["report.json"] = build_dir / "report.json"
    for name in PROJECT_FILES:
        if (Path(root) / name).is_file():
            files[name] = Path(root) / name
    return files


def make_archive(*, root: Path = Path("."), build_dir: Path | None = None,
                 output: Path | None = None) -> Path:
    """Write the archive of the build (see the module docstring); returns its path."""
    root = Path(root).resolve()
    build_dir = Path(build_dir or root / "_build").resolve()
    files = archive_files(root, build_dir)
    profiles = sorted({store.read_run(folder).get("profile", "default")
                       for folder in map(lambda n: store.current_run(build_dir, n), chapters(root))})
    # a build at another profile than the default says so in its name, so that a smoke
    # archive cannot pass for the book
    top = f"{NAME}-{book_version(root)}" + "".join(f"-{p}" for p in profiles if p != "default")
    output = Path(output or build_dir / f"{top}.zip")
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
