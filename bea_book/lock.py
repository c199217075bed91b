"""``make lock``: refresh ``requirements.lock``, the exact versions of everything the package,
the book and the tests use (``pyproject.toml``'s dependencies and its ``book`` and ``dev``
extras), with pip-tools' ``pip-compile``.

Run it again after changing ``pyproject.toml``: pins that still satisfy it are kept and only
new or changed requirements are resolved (``--upgrade`` re-resolves everything to the newest
versions). Constraint files that pip is configured with (``PIP_CONSTRAINT``, or
``constraint`` in a pip configuration file) are applied, so the lock holds what pip on this
machine would install.

The GPU runtime that torch's Linux wheel pulls in (``nvidia-*``, ``cuda-*``, ``triton``) is
left out of the lock: torch pins those libraries itself in its metadata, and leaving them out
lets one lock serve both builds of the pinned torch version: ``torch==X`` is met by the CUDA
wheel from PyPI and by the CPU wheel ``X+cpu`` from PyTorch's CPU index (a local version label
satisfies ``==X``), which the CPU GitHub job installs through ``PIP_EXTRA_INDEX_URL``.

    python -m bea_book.lock [--upgrade] [--output requirements.lock]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from .sources import LOCK_FILE

EXTRAS = ("book", "dev")
GPU_RUNTIME = re.compile(r"^(nvidia-[\w.-]+|cuda-[\w.-]+|triton)==")


def pip_constraints() -> list[str]:
    """The constraint files pip is configured with here."""
    found = os.environ.get("PIP_CONSTRAINT", "").split()
    if not found:
        listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"],
                                capture_output=True, text=True).stdout
        for line in listed.splitlines():  # global.constraint='/path/a /path/b'
            key, _, value = line.partition("=")
            if key.split(".")[-1] == "constraint":
                found += value.strip("'\"").split()
    return list(dict.fromkeys(found))


def strip_gpu_runtime(text: str) -> str:
    """The lock without the GPU runtime's pins (each pin with its ``# via`` lines)."""
    kept, skipping = [], False
    for line in text.splitlines():
        if not line.startswith((" ", "#")) and line.strip():
            skipping = bool(GPU_RUNTIME.match(line))
        elif not line.startswith(" "):
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n"


def compile_lock(root: Path, output: Path, *, upgrade: bool = False) -> Path:
    """Run pip-compile on ``root/pyproject.toml`` into ``output``; returns ``output``."""
    command = [sys.executable, "-m", "piptools", "compile", "--quiet", "--strip-extras",
               "--no-emit-index-url", "--no-emit-find-links", "--output-file", str(output)]
    command += [arg for extra in EXTRAS for arg in ("--extra", extra)]
    command += [arg for path in pip_constraints() for arg in ("--constraint", path)]
    command += ["--upgrade"] * upgrade + [str(Path(root) / "pyproject.toml")]
    env = {**os.environ, "CUSTOM_COMPILE_COMMAND": "make lock"}
    subprocess.run(command, check=True, env=env, cwd=root)
    output.write_text(strip_gpu_runtime(output.read_text()))
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bea_book.lock", description=__doc__)
    parser.add_argument("--output", type=Path, default=Path(LOCK_FILE))
    parser.add_argument("--upgrade", action="store_true", help="re-resolve every pin")
    args = parser.parse_args(argv)
    path = compile_lock(Path("."), args.output, upgrade=args.upgrade)
    print(f"{path}: {sum(1 for l in path.read_text().splitlines() if '==' in l)} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
