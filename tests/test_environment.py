"""environment.yml and pyproject.toml must list the same dependencies with the same bounds."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# conda-forge name -> PyPI name, where they differ
CONDA_TO_PYPI = {"pytorch": "torch"}
# conda-only entries: the interpreter and the installer of the editable package
CONDA_ONLY = {"python", "pip"}
EDITABLE = '-e ".[book,dev]"'  # the last pip entry: the package itself, with both extras


def split(requirement):
    """('name', 'specifier') with the name normalised (PEP 503) and spaces removed."""
    name, spec = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)", requirement).groups()
    return re.sub(r"[-_.]+", "-", name).lower(), spec.replace(" ", "")


def pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return project, [*project["dependencies"], *extras["book"], *extras["dev"]]


def environment():
    return yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]


def listed_in_environment():
    """name -> specifier over conda's entries and pip's (packages conda-forge lacks)."""
    entries = environment()
    pip = next(entry["pip"] for entry in entries if isinstance(entry, dict))
    listed = {}
    for entry in [e for e in entries if isinstance(e, str)] + [e for e in pip if e != EDITABLE]:
        name, spec = split(entry)
        if name not in CONDA_ONLY:
            listed[CONDA_TO_PYPI.get(name, name)] = spec
    return listed


def test_same_packages_and_bounds():
    _, requirements = pyproject()
    wanted = dict(split(r) for r in requirements)
    listed = listed_in_environment()
    assert sorted(set(wanted) - set(listed)) == [], "in pyproject.toml, not in environment.yml"
    assert sorted(set(listed) - set(wanted)) == [], "in environment.yml, not in pyproject.toml"
    assert listed == wanted


def test_python_bound_and_editable_install():
    project, _ = pyproject()
    entries = environment()
    assert f"python{project['requires-python']}" in entries
    pip = next(entry["pip"] for entry in entries if isinstance(entry, dict))
    assert pip[-1] == EDITABLE


# The lock file: every requirement above pinned to a version that meets its bound.
LOCK = ROOT / "requirements.lock"
GPU_RUNTIME = re.compile(r"(nvidia-.*|cuda-.*|triton)")  # left out on purpose (bea_book.lock)


def locked():
    """name (normalised) -> pinned version, over the lock's `name==version` lines."""
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, version = line.split(";")[0].strip().split("==")
            pins[split(name)[0]] = version
    return pins


def test_every_requirement_is_pinned_in_the_lock():
    from packaging.specifiers import SpecifierSet

    _, requirements = pyproject()
    pins = locked()
    missing = sorted(name for name, _ in map(split, requirements) if name not in pins)
    assert missing == [], "in pyproject.toml, missing from requirements.lock: run `make lock`"
    for name, spec in map(split, requirements):
        assert pins[name] in SpecifierSet(spec), f"{name}=={pins[name]} does not meet {spec}"


def test_lock_leaves_out_the_gpu_runtime_that_torch_pins_itself():
    assert [name for name in locked() if GPU_RUNTIME.fullmatch(name)] == []
    assert "torch" in locked() and "+" not in locked()["torch"]  # no local label: CPU or CUDA


def test_make_lock_drops_the_gpu_runtime_with_its_annotations():
    from bea_book.lock import strip_gpu_runtime

    text = ("#\n#    make lock\n#\nnvidia-cublas==13.4.1.3\n    # via\n    #   cuda-toolkit\n"
            "    #   torch\nnumpy==2.3.0\n    # via torch\ntriton==3.9.0\n    # via torch\n"
            "\n# The following packages are considered to be unsafe in a requirements file:\n"
            "# setuptools\n")
    assert strip_gpu_runtime(text) == (
        "#\n#    make lock\n#\nnumpy==2.3.0\n    # via torch\n\n"
        "# The following packages are considered to be unsafe in a requirements file:\n"
        "# setuptools\n")
