"""``python -m bea_book`` (``bea_book.cli``): values on the command line, and what a stopped
command says it left (issue 32, rows 1, 11 and 13)."""
import signal
import time
from pathlib import Path

import pytest

import bea_book as book
from bea_book import cli, processes
from test_book import TINY, executed, outputs, run_main, write_book

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text, value", [("-1e-8", -1e-8), ("-2.5E+3", -2500.0), ("-1", -1),
                                         ("-.5", -0.5), ("-0.5e-3", -5e-4), ("-.inf", None)])
def test_p_takes_negative_numbers_in_any_notation(text, value):
    """Before: `-p eps -1e-8` stopped argparse ("expected 2 arguments")."""
    args = cli._parser().parse_args(["run", "adam", "-p", "eps", text, "-p", "h", "1e-2"])
    assert args.param == [["eps", text], ["h", "1e-2"]]
    parsed = book.parse_value(text)
    assert parsed == value if value is not None else parsed == float("-inf")


def test_a_negative_number_reaches_the_chapter(tmp_path):
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    build = tmp_path / "build"
    assert run_main("run", "tiny", "-p", "rho", "-1e-3", "--root", root, "--build-dir", build) == 0
    assert "x: -0.003 (float)" in outputs(executed(build, "tiny"))


def test_the_issues_probe_runs_file_outside_the_build_is_refused_in_seconds(tmp_path, capsys):
    """The probe of issue 32: `run mechanism --profile smoke -p runs_file
    ../../../../x/precious.txt` overwrote precious.txt and exited 0 (after minutes)."""
    build = tmp_path / "a" / "b" / "B"
    precious = tmp_path / "a" / "x" / "precious.txt"  # where the kernel's folder leads
    precious.parent.mkdir(parents=True)
    precious.write_text("precious")
    start = time.perf_counter()
    assert run_main("run", "mechanism", "--profile", "smoke", "-p", "runs_file",
                    "../../../../x/precious.txt", "--build-dir", build, "--root", ROOT) == 1
    assert time.perf_counter() - start < 60  # refused before any kernel (seconds, loaded)
    err = capsys.readouterr().err
    assert "'mechanism': parameter runs_file names a path, which must lie inside the run's " \
           "folder" in err
    assert precious.read_text() == "precious" and not (build / "runs").exists()


@pytest.mark.parametrize("command, says", [
    ("render", "the rendering was stopped; the runs are unchanged"),
    ("archive", "no archive was written; the build is unchanged"),
    ("adopt", "nothing was adopted; the build is unchanged"),
])
def test_a_stopped_command_says_what_it_left(tmp_path, capsys, monkeypatch, command, says):
    """Before: SIGINT during render or archive said that chapters' kernels were stopped."""
    def stop(*args, **kwargs):
        raise processes.Interrupted(signal.SIGINT)

    monkeypatch.setattr(cli, {"render": "render", "archive": "make_archive",
                              "adopt": "adopt"}[command], stop)
    root = write_book(tmp_path / "src", {"tiny": TINY}, profiles="")
    argv = [command, *(["x.ipynb"] if command == "adopt" else []), "--root", root,
            "--build-dir", tmp_path / "build"]
    assert run_main(*argv) == 130
    err = capsys.readouterr().err
    assert f"stopped by SIGINT: {says}" in err and "kernels" not in err
