"""The probes of issue 24, each as a test: signals, concurrent writers, damaged and foreign
files, resumes, hostile inputs. Book tests use small fake chapters (a kernel start each), not
the real ones."""
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import bea_book as book
import bea_lib as bl
from bea_book import params as book_params
from bea_book import store
from test_book import HEADER, TINY, outputs, run_main, write_book

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


# -- row 1: signals and a dead parent ---------------------------------------------------------

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


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    root = write_book(tmp_path / "src", {"tiny": TINY})
    build = tmp_path / "build"
    with store.build_lock(build, "make book (the holder)"):
        with store.build_lock(build):  # re-entrant in the holder's process
            pass
        for command in (["render"], ["run", "tiny"], ["archive"], ["adopt", "x.ipynb"]):
            done = subprocess.run([sys.executable, "-m", "bea_book", *command, "--root",
                                   str(root), "--build-dir", str(build)], env=ENV,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 1, command
            assert "is being written by `make book (the holder)`" in done.stderr
            assert f"pid {os.getpid()}" in done.stderr
            assert len(done.stderr.strip().splitlines()) == 1
    assert not (build / "chapters").exists()
    assert run_main("run", "tiny", "--root", root, "--build-dir", build) == 0  # released


# -- rows 2, 8, 10: render records what it staged; archive refuses what does not match -------

CLAIMS_AND_FIGURE = HEADER + """
# Figured

```{code-cell} ipython3
:tags: [parameters]

fig_dir = "figures"  # where figures are saved
```

```{code-cell} ipython3
import json
import os
import pathlib

pathlib.Path(fig_dir).mkdir(exist_ok=True)
pathlib.Path(fig_dir, "f.png").write_bytes(b"png")
record = dict(id="figured/c", chapter="figured", statement="s", paper="p", measured="m",
              status="passed", verdict="reproduced", profile=os.environ["BEA_PROFILE"],
              needs="smoke", section=None)
pathlib.Path("figured.claims.json").write_text(json.dumps({record["id"]: record}))
```
"""


def test_archive_refuses_a_build_whose_files_changed_after_commit_or_render(tmp_path, capsys):
    root = write_book(tmp_path / "src", {"figured": CLAIMS_AND_FIGURE},
                      profiles="figured:\n  smoke: {}\n")
    build = tmp_path / "build"
    where = ("--root", root, "--build-dir", build)
    assert run_main("all", "--profile", "smoke", *where) == 0
    shown = json.loads((build / "rendered.json").read_text())
    folder = store.current_run(build, "figured")
    assert shown["runs"] == {"figured": folder.name}
    assert shown["records"]["figured"] == store.sha256(folder / "run.json")
    assert "index.html" in shown["html"]

    def refused(path, pattern, change=lambda p: p.write_bytes(p.read_bytes() + b" ")):
        saved = path.read_bytes()
        change(path)
        assert run_main("archive", *where) == 1
        assert pattern in capsys.readouterr().err
        path.write_bytes(saved)

    refused(folder / "figured.claims.json", "figured.claims.json was changed after the run")
    refused(folder / "figures" / "f.png", "f.png was changed after the run")
    refused(folder / "figured.ipynb", "figured.ipynb was changed after the run")
    refused(folder / "run.json", "run.json changed after the book was rendered",
            lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "claims": {
                "passed": 5, "failed": 0, "measured": 0, "not_checked": 0}})))
    refused(build / "html" / "index.html", "index.html was changed after rendering")
    (folder / "figures" / "extra.png").write_bytes(b"x")
    assert run_main("archive", *where) == 1
    assert "extra.png was added after the run" in capsys.readouterr().err
    (folder / "figures" / "extra.png").unlink()
    assert run_main("archive", *where) == 0

    # an edited notebook: render names it and the command that replaces the run, which runs
    nb = folder / "figured.ipynb"
    nb.write_text(nb.read_text().replace("png", "PNG"))
    assert run_main("render", *where) == 1
    err = capsys.readouterr().err
    assert "run it again (`python -m bea_book run figured --profile smoke`)" in err
    assert run_main("run", "figured", "--profile", "smoke", *where) == 0
    out = capsys.readouterr().out
    assert "figured.ipynb was changed after the run" in out and "executing it again" in out
    assert run_main("render", *where) == 0


# -- rows 5, 6, 9, 19: provenance, damaged files, a killed kernel, foreign files -------------

WHERE_FROM = HEADER + """
# Where

```{code-cell} ipython3
import importlib.util

print(importlib.util.find_spec("bea_lib").submodule_search_locations[0])
```
"""


def test_the_kernel_imports_the_bea_lib_the_runner_hashed_and_records(tmp_path):
    root = write_book(tmp_path / "src", {"where": WHERE_FROM}, profiles="")
    build = tmp_path / "build"
    book.run_chapters(["where"], root=root, build_dir=build)
    record = store.read_run(store.current_run(build, "where"))
    here = str(Path(bl.__file__).resolve().parent)
    assert record["bea_lib_path"] == here
    assert outputs(store.current_run(build, "where") / "where.ipynb").strip() == here


@pytest.mark.parametrize("damage", [b"{", b"[]", b"\xff\xfe", b'{"chapter": 3}', b""])
def test_a_damaged_run_record_or_report_is_named_and_the_run_redone(tmp_path, capsys, damage):
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = tmp_path / "build"
    where = ("--root", root, "--build-dir", build)
    assert run_main("run", "tiny", *where) == 0
    (store.current_run(build, "tiny") / "run.json").write_bytes(damage)
    (build / "report.json").write_bytes(damage)
    assert run_main("render", *where) == 1
    err = capsys.readouterr().err
    assert "the run record" in err and "is damaged" in err and "run it again" in err
    assert len(err.strip().splitlines()) == 1
    assert run_main("run", "tiny", *where) == 0  # no --force needed: a damaged run is redone
    out = capsys.readouterr().out
    assert "is damaged" in out and "tiny: executing" in out
    assert book.read_report(build)["tiny"]["status"] == "finished"


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


def test_a_folder_where_the_runner_keeps_a_link_is_refused_then_moved_with_force(tmp_path, capsys):
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = tmp_path / "build"
    (build / "chapters" / "tiny").mkdir(parents=True)
    (build / "chapters" / "tiny" / "mine.txt").write_text("mine")
    assert run_main("run", "tiny", "--root", root, "--build-dir", build) == 1
    assert "chapters/tiny is a folder, not the link" in capsys.readouterr().err
    assert not (build / "runs").exists() or not list((build / "runs").glob("tiny-*"))
    assert run_main("run", "tiny", "--force", "--root", root, "--build-dir", build) == 0
    aside, = (build / "runs").glob("foreign-tiny-*")
    assert (aside / "mine.txt").read_text() == "mine"
    assert store.current_run(build, "tiny") is not None


def test_a_killed_writer_leaves_no_temporary_file_after_the_next_write(tmp_path):
    from bea_lib import fileio
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".book.zip.{dead.pid}.tmp"
    stale.write_bytes(b"half a zip")
    mine = tmp_path / f".book.zip.{os.getpid()}.tmp"
    fileio.atomic_write_text(tmp_path / "book.zip", "whole")
    assert not stale.exists() and not mine.exists()
    assert (tmp_path / "book.zip").read_text() == "whole"


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


# -- row 7: adopt ------------------------------------------------------------------------------

def papermill_run(tmp_path, root, build, *args):
    assert run_main("notebooks", "tiny", "--root", root, "--build-dir", build) == 0
    out = tmp_path / "mine"
    out.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "papermill", str(build / "notebooks" / "tiny.ipynb"),
                    str(out / "tiny.ipynb"), *args, "--cwd", str(out)], check=True,
                   capture_output=True, env=ENV)
    return out / "tiny.ipynb"


def _set(path, edit):
    nb = json.loads(path.read_text())
    edit(nb)
    path.write_text(json.dumps(nb))


def _injected(nb):
    return next(c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", []))


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.write_text("[]"), "holds a list, not a mapping"),
    (lambda p: p.write_text("{}"), "is not a valid notebook"),
    (lambda p: p.write_text(p.read_text()[:200]), "is damaged"),
    (lambda p: _set(p, lambda nb: nb["metadata"].update(bea_book=["tiny"])),
     "metadata 'bea_book' must be a mapping"),
    (lambda p: _set(p, lambda nb: nb["metadata"].update(papermill="done")),
     "metadata 'papermill' must be a mapping"),
    (lambda p: _set(p, lambda nb: nb["metadata"]["papermill"].update(parameters={})),
     "the parameters its injected cell sets ({'n': 5}) are not those its metadata reports"),
    (lambda p: _set(p, lambda nb: _injected(nb).update(source="n = 7\n")),
     "are not those its metadata reports"),
    (lambda p: _set(p, lambda nb: _injected(nb).update(source="import os\n")),
     "not an assignment"),
    (lambda p: _set(p, lambda nb: nb["cells"][-2].update(  # the last is the provenance cell
        source=_source(nb["cells"][-2]).replace("n * rho", "n + rho"))),
     "is not the cell of chapter 'tiny' there"),
    (lambda p: _set(p, lambda nb: nb["cells"].pop()), "cells besides the injected one"),
    (lambda p: _set(p, lambda nb: nb["metadata"]["papermill"].update(end_time=5)),
     "is not a notebook papermill executed to the end"),
])
def test_adopt_refuses_what_is_not_the_chapter_executed_with_its_parameters(
        tmp_path, capsys, edit, message):
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = tmp_path / "build"
    notebook = papermill_run(tmp_path, root, build, "-p", "n", "5")
    edit(notebook)
    assert run_main("adopt", notebook, "--root", root, "--build-dir", build) == 1
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert store.current_run(build, "tiny") is None


def test_adopt_reads_the_parameters_from_the_injected_cell(tmp_path):
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = tmp_path / "build"
    notebook = papermill_run(tmp_path, root, build, "-p", "n", "5", "-p", "rho", "0.5")
    assert run_main("adopt", notebook, "--root", root, "--build-dir", build) == 0
    record = store.read_run(store.current_run(build, "tiny"))
    assert record["overrides"] == {"n": 5, "rho": 0.5}
    assert "tiny.ipynb" in record["files"]


# -- rows 11, 18: parameter input ---------------------------------------------------------------

def test_yaml_aliases_are_refused_before_expansion(tmp_path):
    laughs = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefghij"):
        prev = "abcdefghij"[i]
        laughs.append(f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
    path = tmp_path / "params.yml"
    path.write_text("\n".join(laughs) + "\n")
    start = time.monotonic()
    with pytest.raises(book.BookError, match=r"not valid YAML .*aliases \(\*a\) are not accepted"):
        book.load_params_file(path)
    assert time.monotonic() - start < 1.0  # refused while parsing, nothing expanded
    assert book.parse_value("*a") == "*a"  # -p: not YAML then, a string the type check refuses
    path.write_text("n: " + "1" * (2 << 20))
    with pytest.raises(book.BookError, match="more than 1048576"):
        book.load_params_file(path)


DECLARED = book_params.Declared({"n_steps": "100", "h": "1e-2", "fig_dir": '"figures"',
                                 "n_train": "1000", "run_dir": "None"}, ["n_train", "run_dir"])


@settings(max_examples=60, deadline=None)
@given(st.one_of(
    st.integers(0, 10**6).map(lambda n: f"0{n}"),  # leading zeros: octal in YAML 1.1
    st.lists(st.integers(0, 59), min_size=2, max_size=3).map(
        lambda xs: ":".join(map(str, xs))),  # sexagesimal in YAML 1.1
))
def test_integers_with_leading_zeros_or_colons_are_refused(text):
    value = book.parse_value(text)
    assert value == text  # a string, not the number YAML 1.1 made of it
    for name in ("n_steps", "h"):
        with pytest.raises(book.BookError, match="write numbers in decimal"):
            book.check_overrides("c", {name: value}, DECLARED)


@settings(max_examples=40, deadline=None)
@given(st.integers(-10**6, 10**6))
def test_decimal_integers_still_read_as_integers(n):
    assert book.parse_value(str(n)) == n and type(book.parse_value(str(n))) is int


def test_null_only_where_none_means_something():
    assert book.check_overrides("c", {"n_train": None, "run_dir": None}, DECLARED) == {
        "n_train": None, "run_dir": None}
    for name in ("n_steps", "h", "fig_dir"):
        with pytest.raises(book.BookError, match=f"parameter {name} cannot be None"):
            book.check_overrides("c", {name: book.parse_value("null")}, DECLARED)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["..", "a", "b", "."]), min_size=1, max_size=5),
       st.booleans())
def test_output_folders_stay_inside_the_run(parts, absolute):
    text = ("/" if absolute else "") + "/".join(parts)
    escapes = absolute or ".." in parts
    if escapes:
        with pytest.raises(book.BookError, match="parameter fig_dir names a path, which must "
                                                 "lie inside the run's folder"):
            book.check_overrides("c", {"fig_dir": text}, DECLARED)
    else:
        assert book.check_overrides("c", {"fig_dir": text}, DECLARED) == {"fig_dir": text}


# -- row 14: perturbed_one_norm in every dtype -------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=8),
       st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]),
       st.sampled_from([1e-12, 1e-8, 1e-4, 1.0]))
def test_perturbed_one_norm_keeps_eps_in_every_float_dtype(values, dtype, eps):
    v = torch.tensor(values, dtype=dtype)
    exact = torch.sqrt(v.double() ** 2 + eps).sum().item()  # the same (rounded) inputs
    got = bl.perturbed_one_norm(v, eps=eps)
    assert got.dtype == (torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype)
    # float32 arithmetic on <= 8 terms: a relative error of a few 1e-7 (1e-6 allows for it)
    assert got.item() == pytest.approx(exact, rel=1e-6 if dtype != torch.float64 else 1e-14)


def test_perturbed_one_norm_of_float16_zeros_is_3e_minus_4_and_complex_bool_are_refused():
    got = bl.perturbed_one_norm(torch.zeros(3, dtype=torch.float16), eps=1e-8)
    assert got.item() == pytest.approx(3e-4, rel=1e-6)  # float32 rounding of √1e-8
    assert bl.perturbed_one_norm(torch.zeros(3), eps=1e-50).item() == pytest.approx(3e-25)
    with pytest.raises(TypeError, match="real tensor, got torch.complex64"):
        bl.perturbed_one_norm(torch.zeros(3, dtype=torch.complex64), eps=1e-8)
    with pytest.raises(TypeError, match="bool tensor"):
        bl.perturbed_one_norm(torch.zeros(3, dtype=torch.bool), eps=1e-8)


# -- rows 16, 17: solve_flow's budget and its rhs ----------------------------------------------

def test_a_stiff_flow_stops_at_the_default_wall_budget_which_can_be_raised(monkeypatch):
    from bea_lib import integrate

    assert integrate.DEFAULT_MAX_SECONDS <= 30
    monkeypatch.setattr(integrate, "DEFAULT_MAX_SECONDS", 0.5)  # the default, made quick

    def stiff(t, theta):  # λ = -1e6: the explicit method crawls, each step slowed
        time.sleep(1e-4)
        return -1e6 * (theta - torch.cos(torch.tensor(t, dtype=torch.float64)))

    theta0 = torch.ones(1, dtype=torch.float64)
    start = time.monotonic()
    with pytest.raises(bl.FlowError, match=r"max_seconds = 0.5 .*math.inf: no limit"):
        bl.solve_flow(stiff, theta0, 10, h=0.1, method="DOP853", max_evals=10**9)
    assert time.monotonic() - start < 3.0  # 0.5 s budget; a few evaluations' slack
    fast = bl.solve_flow(lambda t, th: -th, theta0, 10, h=0.1, max_seconds=math.inf)
    torch.testing.assert_close(fast[-1], torch.exp(torch.tensor([-1.0], dtype=torch.float64)),
                               rtol=1e-8, atol=0)  # rtol 1e-10 solve: 1e-8 is loose


@pytest.mark.parametrize("result", [np.zeros(1), [0.0], 0.0, None, "0"])
def test_a_rhs_that_returns_no_tensor_is_a_clear_error(result):
    with pytest.raises(TypeError, match=r"rhs\(t, theta\) must return a torch tensor of shape"):
        bl.solve_flow(lambda t, theta: result, torch.ones(1, dtype=torch.float64), 3, h=0.1)


# -- rows 3, 4, 12, 13, 15: the training command line, its run folder, the executor -------------

def train_args(out, *args, epochs=30):
    return ["--dataset", "digits", "--model", "mlp", "--width", "16", "--h", "1e-2", "--epochs",
            str(epochs), "--n-train", "200", "--n-test", "50", "--chunk-size", "64", "--dtype",
            "float64", "--device", "cpu", "--out", str(out), *args]


HOLD = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("fileio", sys.argv[1])
fileio = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fileio)
with fileio.folder_lock(sys.argv[2], "python -m bea_lib.nets.train --out run (the first)"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_run_folder_has_one_writer(tmp_path, capsys):
    from bea_lib.nets.train import main

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(ROOT / "bea_lib" / "fileio.py"),
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(train_args(out, epochs=3)) == 2
        err = capsys.readouterr().err
        assert "the run folder" in err and "(the first)" in err and f"pid {holder.pid}" in err
        assert not (out / "history.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    assert main(train_args(out, epochs=3)) == 0  # the lock ended with its holder
    assert (out / "history.csv").is_file() and not (out / ".bea.lock.holder").exists()


def test_max_time_is_a_budget_per_invocation_so_reruns_make_progress(tmp_path):
    from bea_lib.nets.history import History
    from bea_lib.nets.train import main

    out = tmp_path / "run"
    epochs = []
    for _ in range(3):  # a budget of 1e-9 s: each invocation takes one step, then stops
        assert main(train_args(out, "--max-time", "1e-9", "--checkpoint-every", "1",
                               epochs=5)) == 4
        epochs.append(int(History.read(out)["epoch"][-1]))
    assert epochs == [1, 2, 3]  # before: every rerun stopped where the first had
    info = json.loads((out / "run.json").read_text())
    assert [s["from_epoch"] for s in info["segments"]] == [0, 1, 2]
    assert [s["to_epoch"] for s in info["segments"]] == [1, 2, 3]


def test_a_resume_under_changed_code_is_named_and_recorded_per_segment(tmp_path, capsys,
                                                                       monkeypatch):
    from bea_lib import provenance
    from bea_lib.nets.train import TrainConfig, train

    config = TrainConfig(dataset="digits", model="mlp", width=16, h=1e-2, epochs=4,
                         chunk_size=64, n_train=200, n_test=50, device="cpu", dtype="float64",
                         checkpoint_every=1)
    out = tmp_path / "run"
    train(dataclasses_replace(config, epochs=2), out)
    real = provenance.code_state
    monkeypatch.setattr(provenance, "code_state",
                        lambda: {**real(), "bea_lib_sha256": "0" * 64, "commit": "abc123"})
    train(config, out)
    assert "resuming at epoch 2 under other code" in capsys.readouterr().err
    segments = json.loads((out / "run.json").read_text())["segments"]
    assert [(s["from_epoch"], s["to_epoch"]) for s in segments] == [(0, 2), (2, 4)]
    assert segments[0]["bea_lib_sha256"] == real()["bea_lib_sha256"]
    assert segments[1]["bea_lib_sha256"] == "0" * 64 and segments[1]["commit"] == "abc123"


def dataclasses_replace(config, **changes):
    import dataclasses

    return dataclasses.replace(config, **changes)


def test_a_finished_job_run_again_returns_at_once_without_checkpoints(tmp_path):
    from bea_lib.nets.executor import Job, run_job
    from bea_lib.nets.train import TrainConfig

    config = TrainConfig(dataset="digits", model="mlp", width=16, h=1e-2, epochs=3,
                         chunk_size=64, n_train=200, n_test=50, device="cpu", dtype="float64")
    job = Job(config, tmp_path / "job")
    first = run_job(job)
    stamp = (tmp_path / "job" / "history.csv").stat().st_mtime_ns
    start = time.monotonic()
    again = run_job(job)  # before: RunFileError (a history without a checkpoint)
    assert time.monotonic() - start < 5.0  # no data loaded, nothing trained
    assert again == first
    assert (tmp_path / "job" / "history.csv").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("device, message", [
    ("foo", "device must be 'cpu', 'cuda', 'cuda:N'"),
    pytest.param("cuda", "torch sees no CUDA GPU here",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
])
def test_a_bad_device_is_a_usage_error_and_leaves_no_folder(tmp_path, capsys, device, message):
    from bea_lib.nets.train import main

    out = tmp_path / "run"
    assert main([*train_args(out, epochs=3), "--device", device]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_exits_130_and_marks_the_run_interrupted(tmp_path, sig):
    from bea_lib.nets.train import main

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "bea_lib.nets.train",
                             *train_args(out, "--checkpoint-every", "1", epochs=10**6)],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: list(out.glob("checkpoint-*.pt")), 120, "the first checkpoint")
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 130
    assert "interrupted" in proc.stderr.read()
    info = json.loads((out / "run.json").read_text())
    assert info["stop_reason"] == "interrupted"
    assert "rerun the same command to resume" in info["message"]
    last = info["segments"][-1]["to_epoch"]
    assert main(train_args(out, "--checkpoint-every", "1", epochs=last + 2)) == 0  # resumed
    assert json.loads((out / "run.json").read_text())["segments"][-1]["from_epoch"] == last
