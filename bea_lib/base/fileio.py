"""Files written so that a reader never sees half of one: write to a temporary name in the
same folder, flush it to disk, then rename it into place (``os.replace`` is atomic on POSIX).

A run killed while writing leaves the previous file intact, and a temporary file that a
killed writer left behind (``.<name>.<pid>.tmp``, its process gone) is removed by the next
write of the same file; this is the only place in the package (and in the book runner) that
writes a result file.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from collections.abc import Callable
from datetime import datetime, UTC
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary files of writes of ``path`` whose process is gone; the removed."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)``, fsync the file, then rename it to ``path`` in one step."""
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj) -> Path:
    """Write ``obj`` as indented JSON (keys sorted, non-JSON values as ``str``), atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


# ---------------------------------------------------------------------------------------------
# One writer per folder

LOCK_NAME = ".bea.lock"


class FolderBusy(RuntimeError):
    """Another process holds the lock of a folder this one would write."""


def lock_holder(folder: str | Path) -> str:
    """Who holds ``folder``'s lock, from the note its holder wrote beside it."""
    try:
        note = json.loads((Path(folder) / f"{LOCK_NAME}.holder").read_text())
        return (f"`{note['command']}` (pid {note['pid']} on {note['host']}, since "
                f"{note['since']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it left no note)"


_held: dict[Path, list] = {}  # lock file -> [lock, depth]: re-entrant within one process


@contextlib.contextmanager
def folder_lock(folder: str | Path, command: str | None = None, *, wait: float = 0.0,
                what: str = "folder"):
    """Hold ``folder``'s lock (``folder/.bea.lock``, an OS lock that ends with its process,
    however it ends) for the block. Another process waits up to ``wait`` seconds, then gets a
    :class:`FolderBusy` naming the holder (the command, pid, host and start it noted in
    ``.bea.lock.holder``). Re-entrant within one process."""
    from filelock import FileLock, Timeout

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_file = (folder / LOCK_NAME).resolve()
    if lock_file in _held:
        _held[lock_file][1] += 1
        try:
            yield
        finally:
            _held[lock_file][1] -= 1
        return
    lock = FileLock(str(lock_file))
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise FolderBusy(f"the {what} {folder} is being written by {lock_holder(folder)}; wait "
                         "for it to finish or stop it, then try again") from None
    _held[lock_file] = [lock, 1]
    try:
        atomic_write_json(folder / f"{LOCK_NAME}.holder", {
            "pid": os.getpid(), "host": socket.gethostname(),
            "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "since": datetime.now(UTC).isoformat(timespec="seconds")})
        yield
    finally:
        if _held[lock_file][1] <= 1:
            del _held[lock_file]
            (folder / f"{LOCK_NAME}.holder").unlink(missing_ok=True)
            lock.release()
