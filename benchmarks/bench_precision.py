"""Float32 against float64 on the network chapters: does float32 change anything they report?

Each chapter is run twice by the book's runner on a subset of its experiment (fewer seeds,
every other setting of the chosen profile), once with ``-p dtype float64`` and once with
``float32``, each into its own build folder. Its per-run tables (``runs*.csv``) and its claims
are then compared by :func:`bea_lib.nets.precision.compare_runs`: every numeric column row by
row and the κ effects on the norm readings (the columns ``norm*``: N(κ = +1) − N(κ = −1) of a
seed and pair, and the steps κ = −1 → 0 → +1 where three κ were run) within ``--rtol``
relative to float64, every category
(the gate, the regime, the shape) and every claim's status and verdict the same. A chapter
may run in float32 only where this passes.

    python benchmarks/bench_precision.py [--chapters mechanism networks] [--seeds 0 1 2]
        [--profile default] [--build-dir _build/precision] [--rtol 0.01] [--reuse]

``--noise-floor`` also runs float64 once more with the examples summed in other passes (a
chapter's ``chunk_size`` halved, where it has one: ``NOISE``) and compares the two float64
runs the same way: how far rounding at float64's level moves what the chapter reports.

A future experiment is compared the same way if its chapter has a ``dtype`` parameter and
writes its runs to ``runs*.csv`` (:mod:`bea_lib.nets.evidence`); ``SUBSETS`` says how to take
fewer seeds of it.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import yaml

from bea_lib.claims import read_claims
from bea_lib.nets.evidence import read_runs_csv
from bea_lib.nets.precision import RUN_KEY, compare_runs
from bea_lib.plotting import markdown_table

ROOT = Path(__file__).resolve().parents[1]
DTYPES = ("float64", "float32")
# chapter -> the parameters that take its subset of seeds
SUBSETS = {
    "mechanism": lambda seeds: {"seeds": seeds},
    "networks": lambda seeds: {"models": {"mlp": {"width": 32, "seeds": seeds,
                                                  "read_below": 1.2}}},
}
# chapter -> parameters that change only the order of float64's sums (the noise floor)
NOISE = {"networks": {"chunk_size": 500}}
# columns that say which run a row is or how it was set up, not what it measured
SETTINGS = {*RUN_KEY, "epochs", "loss_threshold"}


def run_chapter(chapter: str, params: dict, build_dir: Path, profile: str) -> tuple[Path, float]:
    """Run ``chapter`` with ``params`` into ``build_dir``; its run folder and the wall time."""
    build_dir.mkdir(parents=True, exist_ok=True)
    params_file = build_dir / f"{chapter}.params.yml"
    params_file.write_text(yaml.safe_dump(params))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bea_book", "run", chapter, "--profile", profile,
                    "--params-file", str(params_file), "--build-dir", str(build_dir),
                    "--jobs", "1"], cwd=ROOT, check=True)
    return (build_dir / "chapters" / chapter).resolve(), time.perf_counter() - t0


def kappa_differences(rows: list[dict], columns: list[str]) -> list[tuple]:
    """The κ effects on the norm readings (the columns ``norm*``): +1 − (−1), and the steps
    −1 → 0 → +1 where the table has the three."""
    kappas = {r["kappa"] for r in rows}
    steps = [(1.0, -1.0)] if {1.0, -1.0} <= kappas else []
    if {1.0, 0.0, -1.0} <= kappas:
        steps += [(1.0, 0.0), (0.0, -1.0)]
    return [(c, "kappa", hi, lo) for c in columns if c.startswith("norm") for hi, lo in steps]


def compare_folders(run64: Path, run32: Path, rtol: float):
    """The comparison of every runs table the two runs wrote, and of their claims."""
    verdicts = [{cid: f"{c.status}: {c.verdict}" for cid, c in read_claims(folder).items()}
                for folder in (run64, run32)]
    tables = sorted(p.name for p in run64.glob("runs*.csv"))
    if not tables:
        raise SystemExit(f"{run64} holds no runs*.csv")
    results = {}
    for i, name in enumerate(tables):
        rows64, rows32 = read_runs_csv(run64 / name), read_runs_csv(run32 / name)
        first = rows64[0]
        numbers = [c for c, v in first.items() if c not in SETTINGS
                   and isinstance(v, (int, float)) and not isinstance(v, bool)]
        categories = [c for c, v in first.items() if c not in SETTINGS
                      and (isinstance(v, (bool, str)))]
        extra = {} if i else {"verdicts64": verdicts[0], "verdicts32": verdicts[1]}
        results[name] = compare_runs(rows64, rows32, numbers=numbers, categories=categories,
                                     differences=kappa_differences(rows64, numbers),
                                     rtol=rtol, **extra)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chapters", nargs="+", default=list(SUBSETS), choices=list(SUBSETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "_build" / "precision")
    parser.add_argument("--rtol", type=float, default=0.01)
    parser.add_argument("--noise-floor", action="store_true",
                        help="also compare float64 with float64 summed in other passes")
    parser.add_argument("--reuse", action="store_true",
                        help="compare the runs already in --build-dir without running again")
    args = parser.parse_args(argv)
    verdict = {}
    for chapter in args.chapters:
        variants = {dtype: {"dtype": dtype} for dtype in DTYPES}
        if args.noise_floor and chapter in NOISE:
            variants["float64-other-passes"] = {"dtype": "float64", **NOISE[chapter]}
        folders = {}
        for name, extra in variants.items():
            build = args.build_dir / name
            if args.reuse:
                folders[name] = (build / "chapters" / chapter).resolve()
                continue
            params = {**SUBSETS[chapter](args.seeds), **extra}
            folders[name], seconds = run_chapter(chapter, params, build, args.profile)
            print(f"{chapter}, {name}, seeds {args.seeds}: {seconds:.0f} s", flush=True)
        for name in variants:
            if name == "float64":
                continue
            results = compare_folders(folders["float64"], folders[name], args.rtol)
            for table, result in results.items():
                print(f"\n{chapter}: {table}, {name} against float64 (rtol {args.rtol:g}): "
                      f"{'passed' if result.passed else 'FAILED'}")
                header = ["quantity", "largest relative difference / rows that differ",
                          "where", "verdict"]
                print(markdown_table(header, result.table()).data)
            if name == "float32":
                verdict[chapter] = all(r.passed for r in results.values())
    said = {True: "changes nothing reported", False: "changes what is reported"}
    print("\n" + "; ".join(f"{c}: float32 {said[ok]}" for c, ok in verdict.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
