"""The book runner's processes (bea_book.processes): a signal stops the workers and their
kernels and nothing commits; a dead runner takes them along; a killed kernel is one line naming
the chapter; SIGTERM during render stops Jupyter Book. The chapters are small fakes (a kernel
start each)."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import bea_book as book
from test_book import HEADER, TINY, run_main, write_book

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
KERNEL_WAIT_S = 120  # a kernel start on a loaded machine can take a minute

# A chapter that records the pids of its kernel and of the kernel's parent in the folder the
# test shares with it (BEA_TEST_SHARED: a parameter may not name a folder outside the run's),
# then sleeps.
SLEEPER = HEADER + """
# {name}

```{{code-cell}} ipython3
:tags: [parameters]

seconds = 0.0  # how long the chapter sleeps
```

```{{code-cell}} ipython3
import os
import pathlib
import time

shared = os.environ["BEA_TEST_SHARED"]
pathlib.Path(shared, "{name}.pids").write_text(f"{{os.getpid()}} {{os.getppid()}}")
time.sleep(seconds)
```
"""


def sleepers(tmp_path, names=("one", "two"), seconds=600):
    shared = tmp_path / "shared"  # start_runner tells the chapters (BEA_TEST_SHARED)
    shared.mkdir()
    profiles = "".join(f"{n}:\n  smoke: {{seconds: {seconds}}}\n" for n in names)
    root = write_book(tmp_path / "src", {n: SLEEPER.format(name=n) for n in names}, profiles)
    return root, shared


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def start_runner(root, build, *args):
    return subprocess.Popen([sys.executable, "-m", "bea_book", "run", *args, "--profile", "smoke",
                             "--root", str(root), "--build-dir", str(build)],
                            env={**ENV, "BEA_TEST_SHARED": str(Path(root).parent / "shared")},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def pids_of(shared, names):
    """Each chapter's kernel and its parent (the worker, or the runner with --jobs 1)."""
    found = []
    for n in names:
        found += [int(x) for x in (shared / f"{n}.pids").read_text().split()]
    return found



@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig, status, jobs", [(signal.SIGTERM, 143, 2), (signal.SIGINT, 130, 2),
                                               (signal.SIGTERM, 143, 1)])
def test_a_signal_stops_workers_and_kernels_and_nothing_commits(tmp_path, sig, status, jobs):
    names = ("one", "two") if jobs > 1 else ("one",)
    root, shared = sleepers(tmp_path, names)
    build = tmp_path / "build"
    proc = start_runner(root, build, *names, "--jobs", str(jobs))
    wait_for(lambda: all((shared / f"{n}.pids").exists() for n in names),
             KERNEL_WAIT_S, "the kernels")
    time.sleep(0.5)
    children = [p for p in pids_of(shared, names) if p != proc.pid]  # kernels (and workers)
    start = time.monotonic()
    proc.send_signal(sig)
    assert proc.wait(timeout=20) == status  # the runner stops within the workers' grace
    wait_for(lambda: not any(alive(p) for p in children), 10, "workers and kernels to end")
    assert time.monotonic() - start < 15
    assert "stopped by" in proc.stderr.read()
    time.sleep(2)  # nothing left to commit later
    assert not (build / "chapters").exists() or not list((build / "chapters").iterdir())
    assert not list((build / "runs").glob(".tmp-*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_dead_runner_takes_its_workers_and_kernels_and_a_new_runner_is_not_overwritten(
        tmp_path):
    root, shared = sleepers(tmp_path)
    build = tmp_path / "build"
    proc = start_runner(root, build, "one", "two", "--jobs", "2")
    wait_for(lambda: all((shared / f"{n}.pids").exists() for n in ("one", "two")),
             KERNEL_WAIT_S, "both kernels")
    children = pids_of(shared, ("one", "two"))
    proc.kill()  # SIGKILL: no handler runs in the runner
    proc.wait()
    wait_for(lambda: not any(alive(p) for p in children), 10, "orphaned workers and kernels")
    assert not list((build / "runs").glob(".tmp-*"))  # the workers removed their runs
    assert not (build / "chapters").exists() or not list((build / "chapters").iterdir())


KILLABLE = HEADER + """
# Killable

```{code-cell} ipython3
import os
import pathlib
import time

pathlib.Path("kernel.pid").write_text(str(os.getpid()))
time.sleep(600)
```
"""


def test_a_killed_kernel_is_one_line_naming_the_chapter_with_the_notebook_kept(tmp_path):
    root = write_book(tmp_path / "src", {"killable": KILLABLE}, profiles="")
    build = tmp_path / "build"

    def kill_the_kernel():
        deadline = time.monotonic() + KERNEL_WAIT_S
        while time.monotonic() < deadline:
            found = list((build / "runs").glob(".tmp-killable-*/kernel.pid"))
            if found and found[0].read_text():
                time.sleep(0.3)
                os.kill(int(found[0].read_text()), signal.SIGKILL)  # as the OOM killer does
                return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_the_kernel)
    killer.start()
    start = time.monotonic()
    with pytest.raises(book.BookError) as err:
        book.run_chapters(["killable"], root=root, build_dir=build)
    killer.join()
    message = str(err.value)
    assert message.startswith("chapter 'killable': its kernel died in cell #2")
    assert "\n" not in message
    assert (build / "runs" / "failed-killable" / "killable.ipynb").is_file()
    assert time.monotonic() - start < KERNEL_WAIT_S + 30


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_during_render_stops_jupyter_book(tmp_path):
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = tmp_path / "build"
    assert run_main("run", "tiny", "--root", root, "--build-dir", build) == 0
    proc = subprocess.Popen([sys.executable, "-m", "bea_book", "render", "--root", str(root),
                             "--build-dir", str(build)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)

    def builds():
        found = []
        for stat in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if str(build / "stage") in stat.read_text().replace("\0", " "):
                    found.append(int(stat.parent.name))
            except OSError:
                pass
        return [p for p in found if alive(p)]

    wait_for(lambda: builds(), 60, "jupyter-book")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 143
    wait_for(lambda: not builds(), 5, "jupyter-book to end")
    assert not (build / "html").exists()
