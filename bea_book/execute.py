"""Running chapters: validate every request first, then execute each chapter as a transaction.

``plan`` checks all requested chapters (profile, parameter names and types against each
parameters cell, the kernel, the build folder) before any kernel starts. ``execute`` then runs
one chapter with papermill in a fresh folder (the kernel's working directory, so the files a
chapter writes land beside its notebook), reads the claims it recorded, writes its record and
makes the run current in one step (see :mod:`bea_book.store`); or, when its inputs are those of
the current run (:mod:`bea_book.inputs`), reuses that run.

The kernel gets ``BEA_CHAPTER``, ``BEA_PROFILE`` and ``BEA_CUSTOM`` (the parameters given on
the command line or in a parameters file, as JSON; read by ``bea_lib.evidence.claims``,
which marks the claims of a custom run) and ``TQDM_DISABLE=1`` (no progress bars in the pages).
``execute_in_process`` runs one chapter in a worker process of its own (the runner executes
independent chapters side by side that way) and gives its kernel a share of the CPU's threads.
It is started over IPC sockets rather than TCP (on POSIX systems; Windows has no IPC sockets):
the connection stays on this machine, and ipykernel has no reason to print its warning about
unencrypted TCP.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path

import nbformat

from bea_lib.base import provenance

from . import inputs as inp
from . import processes, store
from .params import check_overrides, check_parameter_lines, declared_parameters, literal
from .sources import (DEFAULT_PROFILE, FINDINGS, KERNEL, PROVENANCE_SOURCE, PROVENANCE_TAG,
                      BookError, book_version, chapter_notebook, chapters, execution_order,
                      load_profiles, resolve_profile)

STRICT_PROFILES = ("smoke", "default")  # a failed claim fails the command at these profiles
REUSED = "reused (inputs unchanged)"
EXECUTED = "executed"


@dataclass
class Plan:
    """One validated chapter run, ready to execute."""

    chapter: str
    page: str
    label: str                # the profile as reported ("smoke", "paper (= default)")
    overrides: dict           # the values that replace the parameters cell's
    declared: dict            # name -> default as written in the parameters cell
    notebook: Path            # the generated notebook papermill executes
    strict: bool              # whether a failed claim fails the command
    custom: dict = field(default_factory=dict)  # the overrides given with -p or a file

    @property
    def parameters(self) -> dict:
        return {**{k: literal(v) for k, v in self.declared.items()}, **self.overrides}


@dataclass
class Outcome:
    """What happened to one chapter in this command."""

    chapter: str
    action: str
    wall_time_s: float
    claims: dict = field(default_factory=dict)          # passed / failed / not_checked counts
    failed_claims: list = field(default_factory=list)   # records of the claims that failed
    strict: bool = False
    run_time_s: float = 0.0   # the wall time of the run shown (an earlier one when reused)
    pending: Path | None = None  # a finished run a worker hands to the runner to commit


def check_kernel() -> None:
    """Fail early unless the ``python3`` kernel runs this interpreter's environment."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    install = f"{sys.executable} -m ipykernel install --sys-prefix --name {KERNEL}"
    try:
        argv0 = KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    except NoSuchKernel:
        raise BookError(f"no Jupyter kernel {KERNEL!r}; install it with `{install}`") from None
    executable = shutil.which(argv0) or argv0
    if Path(os.path.abspath(executable)).parent != Path(sys.executable).parent:
        raise BookError(
            f"the Jupyter kernel {KERNEL!r} starts {executable}, not this environment's "
            f"{sys.executable}; install it with `{install}` (make setup does this)")


def write_notebook(root: Path, build_dir: Path, chapter: str, page: str) -> Path:
    """``build_dir/notebooks/<chapter>.ipynb`` from the chapter's Markdown source."""
    path = Path(build_dir) / "notebooks" / f"{chapter}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    store.atomic_notebook(path, chapter_notebook(root, chapter, page))
    return path


def plan(names: list[str], *, root: Path, build_dir: Path, profile: str = DEFAULT_PROFILE,
         params: dict | None = None, force: bool = False) -> list[Plan]:
    """Validate the runs of ``names`` (all of them, before any kernel starts), in the order
    they will execute (Findings last); ``force`` moves aside what is not a run's link at
    ``B/chapters/<chapter>`` (:func:`bea_book.store.check_link`)."""
    pages = chapters(root)
    unknown = [n for n in names if n not in pages]
    if unknown:
        raise BookError(f"no chapter {unknown[0]!r} in _toc.yml; chapters: {', '.join(pages)}")
    store.check_writable(build_dir)
    profiles = load_profiles(root)
    plans = []
    for name in execution_order(list(dict.fromkeys(names))):
        label, from_profile = resolve_profile(name, profile, profiles)
        store.check_link(build_dir, name, force=force)
        notebook = write_notebook(root, build_dir, name, pages[name])
        declared = declared_parameters(notebook)
        check_parameter_lines(name, nbformat.read(notebook, as_version=4), declared)
        overrides = check_overrides(name, {**from_profile, **(params or {})}, declared,
                                    root=root)
        profile_values = {**{k: literal(v) for k, v in declared.items()},
                          **check_overrides(name, from_profile, declared, root=root)}
        plans.append(Plan(name, pages[name], label, overrides, declared, notebook,
                          strict=label in STRICT_PROFILES and not params,
                          custom={k: overrides[k] for k in (params or {})
                                  if overrides[k] != profile_values.get(k)}))
    check_kernel()
    return plans


def _kernel_manager(ipc: bool):
    """An async kernel manager that registers its kernel with :mod:`bea_book.processes` (killed
    with the runner), with ``ipc`` listens on IPC sockets (see the module docstring), and shuts
    its kernel down without interrupting it first."""
    from jupyter_client import AsyncKernelManager
    from traitlets import default

    class RunnerKernelManager(AsyncKernelManager):
        if ipc:
            @default("transport")
            def _transport_default(self):
                return "ipc"

        async def _async_interrupt_kernel(self):
            # jupyter_client interrupts a kernel before asking it to shut down; the chapter has
            # finished by then, and the interrupt only makes ipykernel print "KeyboardInterrupt
            # caught in kernel" when it arrives first (a race that load makes likely)
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            await super()._async_launch_kernel(kernel_cmd, **kw)
            process = getattr(self.provisioner, "process", None)
            if process is not None:
                processes.register(process.pid)
                _launched.append(process.pid)

    return RunnerKernelManager


_launched: list[int] = []  # kernels started by this process's papermill calls


def claims_summary(folder: Path, chapter: str) -> tuple[dict, list]:
    """Counts of the chapter's claims by status, and the failed ones, as recorded in its run."""
    if not (folder / f"{chapter}.claims.json").is_file():
        from bea_lib.evidence.claims import COUNT_KEYS
        return dict.fromkeys(COUNT_KEYS, 0), []
    from bea_lib.evidence.claims import claim_counts, failed, read_claims

    own = {k: c for k, c in read_claims(folder).items() if c.chapter == chapter}
    counts = claim_counts(own.values())
    bad = [{"id": c.id, "statement": c.statement, "paper": c.paper, "measured": c.measured}
           for c in failed(own)]
    return counts, bad


def print_claims(chapter: str, counts: dict, bad: list) -> None:
    if not any(counts.values()):
        return
    print(f"  claims: {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts.get('measured', 0)} measured (no check), {counts['not_checked']} not checked",
          flush=True)
    for c in bad:
        print(f"  ⚠ {c['id']} ({c['paper']}): {c['statement']} — measured {c['measured']}",
              flush=True)


def kernel_provenance(notebook, path: Path) -> dict:
    """What the notebook's last cell (``PROVENANCE_TAG``, see
    :func:`bea_book.sources.chapter_notebook`) printed when it ran: the commit, ``dirty``, the
    ``bea_lib`` hash and folder, and the package versions of the kernel. One line naming the
    notebook when the cell is missing, altered or printed something else."""
    cells = [c for c in notebook.cells if PROVENANCE_TAG in c.get("metadata", {}).get("tags", [])]
    again = ("execute the notebook `python -m bea_book notebooks` writes for the chapter as it "
             "is now")
    if len(cells) != 1 or cells[0].source != PROVENANCE_SOURCE:
        raise BookError(f"{path} does not end with the cell that records the code it ran with "
                        f"(tagged {PROVENANCE_TAG!r}); {again}")
    text = "".join(out.get("text", "") for out in cells[0].get("outputs", [])
                   if out.get("output_type") == "stream" and out.get("name") == "stdout")
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not (isinstance(found, dict) and isinstance(found.get("bea_lib_sha256"), str)
            and isinstance(found.get("versions"), dict)):
        raise BookError(f"{path}: its last cell did not record the code it ran with "
                        f"(it printed {text.strip()[:80]!r}); {again}")
    return found


def ran_commit(found: dict) -> str:
    """The commit a kernel ran (:func:`kernel_provenance`) as ``<sha>``, ``<sha>-dirty`` or
    ``unknown``: the label of :func:`bea_lib.provenance.commit_label`."""
    if not found.get("commit"):
        return "unknown"
    return found["commit"] + ("-dirty" if found.get("dirty") else "")


def _reusable(p: Plan, build_dir: Path) -> dict | None:
    """The record of the chapter's current run if it can be shown again as it is: a damaged
    or edited run is named and executed again (None)."""
    folder = store.current_run(build_dir, p.chapter)
    if folder is None:
        return None
    try:
        return store.verify_run(p.chapter, folder, fix="executing it again")
    except store.DamagedFile as err:
        print(f"note: {err}", flush=True)
        return None


def _failed_cell(notebook: Path) -> str:
    """The cell running when the kernel died, as ``#i [n]``: the last one the kernel began
    (papermill marks it "completed" all the same)."""
    try:
        cells = nbformat.read(notebook, as_version=4).cells
    except Exception:  # noqa: BLE001 - a half-written notebook: say nothing about the cell
        return "?"
    began = [(i, c.execution_count) for i, c in enumerate(cells)
             if c.cell_type == "code" and c.get("execution_count") is not None]
    return f"#{began[-1][0] + 1} [{began[-1][1]}]" if began else "?"


def execute(p: Plan, *, root: Path, build_dir: Path, force: bool = False,
            library: str | None = None, jobs: int = 1, commit: bool = True) -> Outcome:
    """Run one planned chapter (or reuse its current run when its inputs are unchanged and its
    files are those it recorded); ``jobs`` (recorded) is how many chapters the command
    executes side by side. With ``commit=False`` (a worker) the finished run is not made
    current but returned in ``Outcome.pending`` for the runner to commit."""
    build_dir = Path(build_dir)
    names = list(chapters(root))
    inputs = inp.chapter_inputs(root, build_dir, p.chapter, p.page, label=p.label,
                                parameters=p.parameters, others=names,
                                library=library or inp.library_hash())
    store.remove_stale(build_dir, p.chapter)
    previous = _reusable(p, build_dir)
    reasons = inp.changed(previous and previous.get("inputs"), inputs)
    if previous and not reasons and not force:
        print(f"{p.chapter}: {REUSED}", flush=True)
        counts = previous.get("claims", {})
        print_claims(p.chapter, counts, previous.get("failed_claims", []))
        return Outcome(p.chapter, REUSED, 0.0, counts, previous.get("failed_claims", []),
                       p.strict, previous["wall_time_s"])

    if previous is None:
        why = "no earlier run" if store.current_run(build_dir, p.chapter) is None else \
            "its run is damaged"
    else:
        why = ", ".join(reasons) + " changed" if reasons else "forced"
    print(f"{p.chapter}: executing (profile {p.label}; {why}) ...", flush=True)
    tmp = store.new_run_folder(build_dir, p.chapter)
    processes.track_run_folder(tmp)
    try:
        if p.chapter == FINDINGS:  # it reads the others' claims from its working directory
            for path in inp.claims_files(build_dir, [n for n in names if n != FINDINGS]).values():
                shutil.copy2(path, tmp / path.name)
        started = datetime.now(UTC)
        try:
            wall = _papermill(p, tmp / f"{p.chapter}.ipynb", tmp, root)
        except Exception as err:
            cell = _failed_cell(tmp / f"{p.chapter}.ipynb")
            failed = store.keep_failed(build_dir, p.chapter, tmp)
            kept = f"see {failed / (p.chapter + '.ipynb')}; the last good run is kept"
            if type(err).__name__ == "PapermillExecutionError":
                raise BookError(f"chapter {p.chapter!r} failed in cell [{err.exec_count}]: "
                                f"{err.ename}: {err.evalue} ({kept})") from err
            if type(err).__name__ == "DeadKernelError":
                raise BookError(f"chapter {p.chapter!r}: its kernel died in cell {cell} (killed "
                                f"from outside, often for lack of memory) ({kept})") from err
            raise BookError(f"chapter {p.chapter!r} could not be executed: "
                            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                            f" ({kept})") from err
        executed = tmp / f"{p.chapter}.ipynb"
        ran = kernel_provenance(nbformat.read(executed, as_version=4), executed)
        store.without_local_paths(executed, p.chapter)
        library_dir = inp.library_folder()
        if ran["bea_lib_sha256"] != inputs["bea_lib"]:
            raise BookError(f"chapter {p.chapter!r}: its kernel ran the bea_lib in "
                            f"{ran.get('bea_lib_path')}, not the one the runner hashed "
                            f"({library_dir}), or the package changed while the chapter ran; "
                            "run it again")
        counts, bad = claims_summary(tmp, p.chapter)
        record = {
            "chapter": p.chapter, "page": p.page, "profile": p.label,
            "parameters": p.parameters, "overrides": p.overrides, "custom": p.custom,
            "parameter_order": list(p.parameters),  # the cell's order (JSON keys are sorted)
            "wall_time_s": round(wall, 2),
            "jobs": jobs, "threads": os.environ.get("OMP_NUM_THREADS"),
            "started": started.isoformat(timespec="seconds"),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": provenance.commit_label(root), "book_version": book_version(root),
            # the bea_lib the kernel imported (its PYTHONPATH puts this copy first)
            "bea_lib_path": str(library_dir),
            "bea_lib_commit": provenance.commit_label(library_dir.parent) if library_dir
            else "unknown",
            "versions": provenance.versions(), "lock_sha256": inputs["lock"],
            "inputs": inputs, "claims": counts, "failed_claims": bad,
            "notebook_sha256": store.sha256(executed), "status": "finished",
            "executed_by": "bea_book", "files": store.file_hashes(tmp),
        }
        store.write_json(tmp / store.RUN_RECORD, record)
    except BookError:
        processes.track_run_folder(tmp, done=True)
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # interrupted: the current run stays
        processes.track_run_folder(tmp, done=True)
        raise
    print(f"  {p.chapter} done in {wall:.1f} s", flush=True)
    print_claims(p.chapter, counts, bad)
    outcome = Outcome(p.chapter, EXECUTED, wall, counts, bad, p.strict, wall, pending=tmp)
    return commit_outcome(outcome, build_dir) if commit else outcome


def commit_outcome(outcome: Outcome, build_dir: Path) -> Outcome:
    """Make an executed run current (in the runner, which holds the build folder's lock)."""
    if outcome.pending is not None:
        if not processes.runner_alive():  # a worker whose runner is gone commits nothing
            processes.die(143)
        try:
            store.commit_run(build_dir, outcome.chapter, outcome.pending)
        finally:
            processes.track_run_folder(outcome.pending, done=True)
        outcome.pending = None
    return outcome


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def execute_in_process(p: Plan, *, threads: int | None = None, **kwargs) -> Outcome:
    """:func:`execute` in a worker process, its kernel limited to ``threads`` CPU threads.

    Chapters running side by side would otherwise each start one thread per core (torch's
    default) and fight over the cores. A thread count the user set in the environment wins.
    """
    if threads is not None:
        for name in THREAD_VARIABLES:
            os.environ.setdefault(name, str(threads))
    return execute(p, commit=False, **kwargs)


def _papermill(p: Plan, output: Path, cwd: Path, root: Path) -> float:
    """Execute the plan's notebook into ``output`` with the kernel in ``cwd``; the wall time.

    The kernel runs in a temporary folder; ``BEA_ROOT`` (absolute) is the book's root, against
    which a chapter resolves its relative data and results paths."""
    import papermill

    env = {"BEA_CHAPTER": p.chapter, "BEA_PROFILE": p.label, "TQDM_DISABLE": "1",
           "BEA_ROOT": str(Path(root).resolve()),
           "BEA_CUSTOM": json.dumps(p.custom, default=repr)}
    library_dir = inp.library_folder()
    if library_dir is not None:  # the kernel imports the bea_lib the runner hashed and records
        env["PYTHONPATH"] = os.pathsep.join(
            [str(library_dir.parent), *filter(None, [os.environ.get("PYTHONPATH")])])
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the runner's environment
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(p.notebook), str(output), parameters=p.overrides, kernel_name=KERNEL,
            cwd=str(cwd), progress_bar=False,
            kernel_manager_class=_kernel_manager(ipc=os.name == "posix"))
    finally:
        while _launched:  # shut down by papermill by now
            processes.unregister(_launched.pop())
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return time.perf_counter() - start
