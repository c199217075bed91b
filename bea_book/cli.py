"""The command line: ``python -m bea_book {run,render,all,notebooks,adopt,archive,sweep}``."""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from . import processes, store
from .adopt import adopt
from .archive import make_archive
from .execute import (EXECUTED, commit_outcome, execute, execute_in_process, plan,
                      write_notebook)
from .inputs import library_hash
from .params import load_params_file, parse_value
from .render import render
from .sources import DEFAULT_PROFILE, FINDINGS, BookError, chapters
from .sweep import add_arguments, sweep

USAGE = """\
examples:
  python -m bea_book all --profile smoke     run every chapter (reusing unchanged ones), render
  python -m bea_book all --chapters adam     run one chapter, render it, the others "not run"
  python -m bea_book run adam -p rho 0.99    run one chapter with a parameter changed
  python -m bea_book render                  render what has run
  python -m bea_book archive                 zip a complete build for deposit
  python -m bea_book sweep --profile paper --out DIR   the networks runs as resumable jobs
"""


def cpu_count() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_chapters(names: list[str], *, root: Path = Path("."), build_dir: Path | None = None,
                 profile: str = DEFAULT_PROFILE, params: dict | None = None,
                 force: bool = False, jobs: int = 1) -> list:
    """Validate every requested chapter, then run each (Findings last); the outcomes, in the
    order of execution_order.

    With ``jobs`` > 1 up to that many chapters execute side by side, each in a worker process
    whose kernel gets ``cpu_count() // jobs`` threads; the longest (by its last run) start
    first. The Findings chapter, which reads the others' claims, waits for all of them.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise BookError(f"jobs must be a positive integer, got {jobs!r}")
    root, build_dir = store.build_folder(root, build_dir)
    with store.build_lock(build_dir):
        return _run_chapters(names, root=root, build_dir=build_dir, profile=profile,
                             params=params, force=force, jobs=jobs)


def _run_chapters(names, *, root, build_dir, profile, params, force, jobs) -> list:
    plans = plan(names, root=root, build_dir=build_dir, profile=profile, params=params,
                 force=force)
    library, pages = library_hash(), list(chapters(root))
    common = dict(root=root, build_dir=build_dir, force=force, library=library)
    outcomes = {}

    def done(outcome):  # in the runner, which holds the build folder's lock
        commit_outcome(outcome, build_dir)
        store.update_report(build_dir, pages, {outcome.chapter: outcome.action})
        outcomes[outcome.chapter] = outcome

    others = [p for p in plans if p.chapter != FINDINGS]
    if jobs > 1 and len(others) > 1:
        _run_side_by_side(others, jobs=min(jobs, len(others)), done=done, **common)
    else:
        for p in others:
            done(execute(p, **common))
    for p in plans:
        if p.chapter == FINDINGS:
            done(execute(p, **common))
    return [outcomes[p.chapter] for p in plans]


def _run_side_by_side(plans: list, *, jobs: int, done, build_dir: Path, **common) -> None:
    """Execute ``plans`` in ``jobs`` worker processes, longest first; ``done(outcome)`` (which
    commits the run) as each ends. On a failure no further chapter starts; those running
    finish, then the first error is raised. When the command is stopped (a signal, or any
    other exception here) the workers are stopped with their kernels
    (:func:`bea_book.processes.stop_workers`) before the exception goes on."""
    def last_wall_time(p):
        try:
            previous = store.read_run(store.current_run(build_dir, p.chapter))
        except store.DamagedFile:
            previous = None
        return previous.get("wall_time_s", 0.0) if previous else 0.0

    queue = sorted(plans, key=last_wall_time, reverse=True)  # stable: toc order among equals
    threads = max(1, cpu_count() // jobs)
    print(f"executing up to {jobs} chapters side by side, {threads} CPU thread(s) each",
          flush=True)
    error = None
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=processes.init_worker, initargs=(os.getpid(),))
    try:
        running = set()
        while queue or running:
            while queue and len(running) < jobs and error is None:
                running.add(pool.submit(execute_in_process, queue.pop(0), threads=threads,
                                        jobs=jobs, build_dir=build_dir, **common))
            if not running:
                break
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    done(future.result())
                except BookError as err:
                    error = error or err
    except BaseException:
        processes.stop_workers(list((pool._processes or {}).values()))
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if error is not None:
        raise error


def run_chapter(chapter: str, **kwargs) -> Path:
    """Run one chapter; returns the folder of its current run."""
    outcome, = run_chapters([chapter], **kwargs)
    build_dir = Path(kwargs.get("build_dir") or Path(kwargs.get("root", ".")) / "_build")
    return store.current_run(build_dir.resolve(), outcome.chapter)


def print_summary(outcomes: list, render_s: float | None = None,
                  elapsed_s: float | None = None) -> None:
    """Each chapter's action and wall time, the totals, and the command's elapsed time for
    the chapters (less than the sum when they ran side by side)."""
    if not outcomes:
        return
    width = max(len(name) for name in ["chapter", *(o.chapter for o in outcomes)])
    print(f"\n{'chapter':<{width}}  {'wall time':>10}  action")
    for o in outcomes:
        earlier = f"; its run took {o.run_time_s:.1f} s" if o.action != EXECUTED else ""
        print(f"{o.chapter:<{width}}  {o.wall_time_s:8.1f} s  {o.action}{earlier}")
    ran = [o for o in outcomes if o.action == EXECUTED]
    total = sum(o.wall_time_s for o in outcomes)
    line = (f"{'total':<{width}}  {total:8.1f} s  {len(ran)} executed, "
            f"{len(outcomes) - len(ran)} reused")
    if elapsed_s is not None:
        line += f"; elapsed {elapsed_s:.1f} s"
    if render_s is not None:
        line += f"; rendering {render_s:.1f} s"
    print(line, flush=True)


def failed_strict(outcomes: list) -> list:
    """The failed claims that fail the command (smoke or default profile, no overrides)."""
    return [(o.chapter, c) for o in outcomes if o.strict for c in o.failed_claims]


NEGATIVE_NUMBER = re.compile(r"^-(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^-\.?inf$",
                             re.IGNORECASE)

# What a stop by a signal (Ctrl-C, SIGTERM) leaves, by command.
STOPPED = {
    "run": "the chapters being executed were stopped with their kernels; runs already finished "
           "are kept, and so are the earlier runs of the others",
    "all": "the chapters being executed were stopped with their kernels, or the rendering; runs "
           "already finished are kept, and so are the earlier runs of the others (render again "
           "to show them)",
    "render": "the rendering was stopped; the runs are unchanged (render again to bring the HTML "
              "up to date)",
    "archive": "no archive was written; the build is unchanged",
    "adopt": "nothing was adopted; the build is unchanged",
    "notebooks": "the notebooks written so far are kept; the runs are unchanged",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bea_book", epilog=USAGE,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description="Run the book's chapters and render them.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, default=Path("."),
                        help="directory holding _toc.yml (default: the current one)")
    common.add_argument("--build-dir", type=Path, help="build folder (default: ROOT/_build)")
    running = argparse.ArgumentParser(add_help=False)
    running.add_argument("--profile", default=DEFAULT_PROFILE,
                         help="profile in book/profiles.yml (default: the parameters cells)")
    running.add_argument("--force", action="store_true",
                         help="execute even chapters whose inputs are unchanged")
    running.add_argument("--jobs", type=int, default=cpu_count(),
                         help="chapters executed side by side (default: one per CPU, here "
                              f"{cpu_count()}; 1: one after another)")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", parents=[common, running], help="execute chapters")
    run.add_argument("chapters", nargs="+", metavar="CHAPTER")
    run.add_argument("-p", "--param", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"), help="set a parameter (VALUE is read as YAML)")
    # argparse takes -1e-8 (but not -1 or -0.5) for an option: a negative number in any
    # notation is a value here (no option of the runner looks like a number)
    run._negative_number_matcher = NEGATIVE_NUMBER
    run.add_argument("--params-file", type=Path, help="YAML mapping of parameters")

    commands.add_parser("render", parents=[common], help="render what has run to HTML")
    everything = commands.add_parser("all", parents=[common, running],
                                     help="run every chapter (or those named), then render")
    everything.add_argument("--chapters", nargs="+", metavar="CHAPTER",
                            help="run only these; the others render as 'not run'")
    notebooks = commands.add_parser("notebooks", parents=[common],
                                    help="write the chapters as notebooks for papermill")
    notebooks.add_argument("chapters", nargs="*", metavar="CHAPTER")
    adopting = commands.add_parser("adopt", parents=[common],
                                   help="take a notebook papermill executed as its chapter's run")
    adopting.add_argument("notebook", type=Path)
    archive = commands.add_parser("archive", parents=[common],
                                  help="zip the complete rendered build with a SHA-256 manifest")
    archive.add_argument("--output", type=Path, help="the zip (default: BUILD/<name>.zip)")
    add_arguments(commands.add_parser("sweep", help="run the networks chapter's runs at a "
                                      "profile as resumable jobs (local or Slurm)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bea_book``; returns the exit status (1: an error, or a
    claim that failed at the smoke or default profile with no parameters given; 2: a usage
    error; 130 after Ctrl-C, 128 + n after signal n)."""
    args = _parser().parse_args(argv)
    if args.command == "sweep":  # writes run folders, not the build
        return sweep(args)
    processes.handle_signals()
    try:
        root, build_dir = store.build_folder(args.root, args.build_dir)
        where = {"root": root, "build_dir": build_dir}
        with store.build_lock(build_dir):
            return _main(args, root, build_dir, where)
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except processes.Interrupted as stop:
        print(f"\nstopped by {stop}: {STOPPED[args.command]}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:
        print(f"\nstopped by Ctrl-C: {STOPPED[args.command]}", file=sys.stderr)
        return 130


def _main(args, root: Path, build_dir: Path, where: dict) -> int:
    try:
        if args.command == "notebooks":
            names = args.chapters or list(chapters(root))
            pages = chapters(root)
            for name in names:
                if name not in pages:
                    raise BookError(f"no chapter {name!r} in _toc.yml; chapters: "
                                    f"{', '.join(pages)}")
                store.check_writable(build_dir)
                print(write_notebook(root, build_dir, name, pages[name]))
            return 0
        if args.command == "adopt":
            adopt(args.notebook, **where)
            return 0
        if args.command == "archive":
            path = make_archive(output=args.output, **where)
            print(f"The archive is at {path} ({path.stat().st_size / 2**20:.1f} MiB)")
            return 0
        outcomes = []
        if args.command == "run":
            params = load_params_file(args.params_file) if args.params_file else {}
            params.update({name: parse_value(value) for name, value in args.param})
            start = time.perf_counter()
            outcomes = run_chapters(args.chapters, profile=args.profile, params=params,
                                    force=args.force, jobs=args.jobs, **where)
            print_summary(outcomes, elapsed_s=time.perf_counter() - start)
        else:
            elapsed = None
            if args.command == "all":
                names = args.chapters or list(chapters(root))
                start = time.perf_counter()
                outcomes = run_chapters(names, profile=args.profile, force=args.force,
                                        jobs=args.jobs, **where)
                elapsed = time.perf_counter() - start
            start = time.perf_counter()
            index = render(**where)
            print_summary(outcomes, time.perf_counter() - start, elapsed)
            print(f"The book is at {index}")
    except BookError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # a file problem the checks above did not foresee: one line
        print(f"error: {err.strerror or err} ({err.filename})", file=sys.stderr)
        return 1
    failures = failed_strict(outcomes)
    if failures:
        print(f"\nerror: {len(failures)} checked claims did not hold at the {args.profile} "
              "profile:", file=sys.stderr)
        for chapter, c in failures:
            print(f"  {c['id']} ({c['paper']}): {c['statement']} — measured {c['measured']}",
                  file=sys.stderr)
        return 1
    return 0
