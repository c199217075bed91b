"""The runner's processes: nothing it starts outlives it, and nothing commits after it is gone.

What a command starts: worker processes (chapters side by side), one Jupyter kernel per chapter
being executed, and the ``jupyter-book`` build of ``render``. The rules:

* SIGTERM, SIGINT (Ctrl-C) and SIGHUP in the runner raise :class:`Interrupted` in its main
  thread (:func:`handle_signals`) after killing the kernels and builds it started
  (:func:`kill_children`); the side-by-side runner then stops its workers
  (:func:`stop_workers`): SIGTERM, and SIGKILL after :data:`GRACE_S` seconds. The command
  exits 130 (SIGINT) or 128 + the signal's number.
* A worker (:func:`init_worker`) kills its kernel, removes its unfinished run folder and exits
  at SIGTERM or SIGINT, and when the runner is gone (Linux: ``PR_SET_PDEATHSIG``; elsewhere a
  thread that polls the parent's pid). Workers never commit a run: they hand the finished run
  folder to the runner, which holds the build folder's lock and commits it.
* A kernel exits by itself when its parent is gone (ipykernel polls ``JPY_PARENT_PID``);
  ``jupyter-book`` is started in a session of its own with ``PR_SET_PDEATHSIG`` (Linux).

Child processes are killed as process groups: a kernel and the build are session leaders
(jupyter_client starts kernels with ``start_new_session``), so their own children go too.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

GRACE_S = 5.0  # seconds a worker gets to stop its kernel before it is killed
POLL_S = 0.5  # how often a worker checks that the runner is alive where prctl is missing
_children: set[int] = set()  # process-group leaders started by this process (kernels, builds)
_run_folders: set[Path] = set()  # unfinished run folders of this process, removed on a kill
_parent_pid: int | None = None  # a worker's runner


class Interrupted(KeyboardInterrupt):
    """The command was stopped by a signal (SIGINT, SIGTERM, SIGHUP)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 130 if self.signum == signal.SIGINT else 128 + self.signum


def register(pid: int) -> None:
    """Remember a child that leads its own process group (killed with the command)."""
    _children.add(pid)


def unregister(pid: int) -> None:
    _children.discard(pid)


def track_run_folder(folder: Path, *, done: bool = False) -> None:
    """An unfinished run folder of this process (``done``: no longer)."""
    (_run_folders.discard if done else _run_folders.add)(Path(folder))


def kill_children(sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the process group of every registered child."""
    for pid in list(_children):
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, sig)
                break
            except ProcessLookupError:
                break
            except PermissionError:
                continue
        _children.discard(pid)


def _raise(signum, frame):
    kill_children()
    raise Interrupted(signum)


STOP_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGTERM", "SIGINT", "SIGHUP"))
                     if s is not None)


def handle_signals() -> None:
    """In the runner's main thread: the stop signals kill its children and raise
    :class:`Interrupted`."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            signal.signal(sig, _raise)


def die(code: int = 143) -> None:
    """A worker's end: kill its kernel, remove its unfinished run, exit at once."""
    kill_children()
    for folder in list(_run_folders):
        shutil.rmtree(folder, ignore_errors=True)
    os._exit(code)


def _on_signal(signum, frame):
    die(128 + signum)


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(sig), 0, 0, 0) == 0  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(POLL_S)
        if os.getppid() != parent:
            die(143)


def init_worker(parent: int) -> None:
    """Initializer of a worker process of the runner ``parent`` (see the module docstring)."""
    global _parent_pid
    _parent_pid = parent
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_signal)
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent:  # the runner died before prctl took effect
        die(143)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="bea_book-parent-watch").start()


def runner_alive() -> bool:
    """In a worker: whether the runner that started it is still its parent (always True in
    the runner itself)."""
    return _parent_pid is None or os.getppid() == _parent_pid


def stop_workers(processes) -> None:
    """Stop worker processes (``multiprocessing.Process``): SIGTERM (each kills its kernel
    and exits), then SIGKILL for any still alive after :data:`GRACE_S` seconds."""
    processes = [p for p in processes if p.is_alive()]
    for p in processes:
        p.terminate()
    deadline = time.monotonic() + GRACE_S
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
            p.join(1.0)


def session_preexec() -> None:
    """``preexec_fn`` of a child the runner starts (``jupyter-book``): killed with the runner."""
    die_with_parent(signal.SIGKILL)
