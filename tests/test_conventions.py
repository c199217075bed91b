"""One convention everywhere: every public function that takes a hyperparameter (h, beta, rho,
eps) takes it by keyword only, rejects an out-of-range value with a ValueError naming it, and
cannot be called with β and ρ swapped by position (a TypeError, before any work is done).

The functions are discovered, not listed by hand: ``bea_lib.__all__``, ``bea_lib.nets`` and the
modules the chapters import by name (bilinear, nets.config, nets.train, nets.sweeps). A new public
function with a hyperparameter fails ``test_every_function_is_covered`` until it has a call below.
"""
import ast
import inspect
from pathlib import Path

import pytest
import torch

import bea_lib as bl
from bea_lib.studies import bilinear
from bea_lib.evidence import readings as sweeps
from bea_lib.nets import config, loop, train

HYPER = ("h", "beta", "rho", "eps")
GOOD = {"h": 0.1, "beta": 0.9, "rho": 0.999, "eps": 1e-8}
BAD = {"h": 0.0, "beta": 1.0, "rho": -0.5, "eps": -1.0}  # each outside its range

LOSS = lambda th: 0.5 * (th**2).sum()  # noqa: E731
THETA0 = torch.tensor([1.0, -0.5], dtype=torch.float64)
PATH = torch.tensor([[1.0, -0.5], [0.5, -0.2], [0.2, -0.1]], dtype=torch.float64)


# For each function: the data arguments, positionally, and the call with keyword hyperparameters.
CALLS = {
    "adam": (LOSS, THETA0, 2),
    "rmsprop": (LOSS, THETA0, 2),
    "gd": (LOSS, THETA0, 2),
    "heavy_ball": (LOSS, THETA0, 2),
    "adam_runs": (LOSS, THETA0, 2),
    "adam_flow": (LOSS, THETA0, 1),
    "rmsprop_flow": (LOSS, THETA0, 1),
    "gd_flow": (LOSS, THETA0, 1),
    "heavy_ball_flow": (LOSS, THETA0, 1),
    "adam_rhs": (LOSS,),
    "heavy_ball_rhs": (LOSS,),
    "minibatch_adam_rhs": ([LOSS, LOSS], 1),
    "solve_flow": (lambda t, th: -th, THETA0, 1),
    "perturbed_one_norm": (THETA0,),
    "bias_coefficient": (THETA0,),
    "bias_effect": (LOSS, lambda o: bl.heavy_ball_rhs(LOSS, h=0.1, beta=0.0, order=o), THETA0),
    "implicit_bias_strength": (),
    "bias_potential_1d": (THETA0,),
    "implicit_bias_regime": (THETA0,),
    "path_share_by_regime": (LOSS, PATH),
    "heavy_ball_limit": (),
    "explicit_bias_family": (LOSS,),
    "explicit_bias_loss": (LOSS,),
    "late_phase_stability": (bilinear.bilinear_cross(),),
    "gradient_norms": (torch.ones(2, 3),),  # the gradients of two runs
    "TrainConfig": (),
    "Adam": ([torch.nn.Parameter(torch.zeros(2))],),  # params
}
EXTRA = {"explicit_bias_loss": {"strength": 1.0}, "Adam": {"lr": 1e-3},
         "bias_effect": {"norm": lambda v: (v**2).sum()}}


def _public():
    """(name, callable) of every public function or class with a hyperparameter argument."""
    found = {}
    spaces = [(bl, bl.__all__), (bl.nets, bl.nets.__all__)]
    spaces += [(m, [n for n in dir(m) if not n.startswith("_")])
               for m in (bilinear, config, loop, train, sweeps)]
    for module, names in spaces:
        for name in names:
            obj = getattr(module, name)
            if not callable(obj) or inspect.ismodule(obj):
                continue
            if inspect.isclass(obj) and not obj.__module__.startswith("bea_lib"):
                continue
            if inspect.isfunction(obj) and not obj.__module__.startswith("bea_lib"):
                continue
            if module is not bl and module is not bl.nets and obj.__module__ != module.__name__:
                continue  # a name the module imports is checked where it is defined
            try:
                params = inspect.signature(obj).parameters
            except (TypeError, ValueError):
                continue
            if any(p in params for p in HYPER):
                found[name] = obj
    return found


PUBLIC = _public()


def _hyper(name):
    return [p for p in HYPER if p in inspect.signature(PUBLIC[name]).parameters]


CASES = sorted(PUBLIC)


def test_every_function_is_covered():
    assert set(PUBLIC) == set(CALLS), "give each public function with a hyperparameter a call"


@pytest.mark.parametrize("name", CASES)
def test_hyperparameters_are_keyword_only(name):
    params = inspect.signature(PUBLIC[name]).parameters
    positional = [p for p in _hyper(name) if params[p].kind is not inspect.Parameter.KEYWORD_ONLY]
    assert not positional, f"{name}: {positional} can be passed by position"


@pytest.mark.parametrize("name", CASES)
def test_out_of_range_hyperparameters_are_rejected_by_name(name):
    for p in _hyper(name):
        kwargs = {**EXTRA.get(name, {}), **{q: GOOD[q] for q in _hyper(name)}, p: BAD[p]}
        with pytest.raises(ValueError, match=rf"\b{p}\b"):
            PUBLIC[name](*CALLS[name], **kwargs)


@pytest.mark.parametrize("name", CASES)
def test_swapped_beta_and_rho_by_position_is_a_type_error(name):
    hyper = _hyper(name)
    values = [GOOD[p] for p in hyper]
    values[:2] = values[:2][::-1]  # e.g. (rho, beta) where (beta, rho) was meant
    with pytest.raises(TypeError):
        PUBLIC[name](*CALLS[name], *values, **EXTRA.get(name, {}))


def test_the_public_namespace_holds_every_name_the_chapters_call():
    import re
    from pathlib import Path

    book = Path(__file__).resolve().parents[1] / "book"
    used = {m for f in book.glob("*.md") for m in re.findall(r"\bbl\.([A-Za-z]\w*)", f.read_text())}
    assert used and used <= set(bl.__all__), sorted(used - set(bl.__all__))
    assert all(hasattr(bl, name) for name in bl.__all__)


# --- read with ast: every function of the package, private ones too --------------------------

ROOT = Path(__file__).resolve().parents[1]
HYPERPARAMETERS = ("h", "beta", "rho", "eps", "kappa", "eps_inside")


def positional_hyperparameters(package: Path = ROOT / "bea_lib") -> list[str]:
    """``file:line function`` of every function (or lambda) of the package that takes one of
    :data:`HYPERPARAMETERS` by position."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                if any(a.arg in HYPERPARAMETERS for a in node.args.posonlyargs + node.args.args):
                    found.append(f"{path.relative_to(package.parent).as_posix()}:{node.lineno} "
                                 f"{getattr(node, 'name', 'lambda')}")
    return found


def test_every_function_takes_its_hyperparameters_by_keyword():
    assert positional_hyperparameters() == []


def test_the_keyword_check_finds_a_positional_hyperparameter(tmp_path):
    (tmp_path / "bea_lib").mkdir()
    (tmp_path / "bea_lib" / "m.py").write_text(
        "def _bracket(D, k, beta, *, rho):\n    return 0\n\n\nf = lambda g, *, eps: g\n")
    assert positional_hyperparameters(tmp_path / "bea_lib") == ["bea_lib/m.py:1 _bracket"]


def private_uses(root: Path = ROOT, packages=("bea_lib", "bea_book")) -> list[str]:
    """``file:line name`` where a module of the packages uses a private name (one underscore)
    of another of their modules: ``from .x import _name``, or ``x._name`` of a module ``x`` it
    imported from them."""
    found = []
    for path in sorted(p for package in packages for p in (root / package).rglob("*.py")):
        where = path.relative_to(root).as_posix()
        ours = {"bea_lib", "bea_book"}
        modules = set()  # local names of our modules
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (
                    node.level or node.module.split(".")[0] in ours):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        found.append(f"{where}:{node.lineno} {a.name}")
                    stem = f"{node.module}.{a.name}" if node.module else a.name
                    if node.level or (root / stem.replace(".", "/")).with_suffix(".py").exists():
                        modules.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                modules |= {a.asname for a in node.names
                            if a.asname and a.name.split(".")[0] in ours}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{where}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names():
    assert private_uses() == []


def test_the_private_name_check_finds_both_forms(tmp_path):
    (tmp_path / "bea_lib" / "core").mkdir(parents=True)
    (tmp_path / "bea_lib" / "core" / "integrate.py").write_text("def _solve():\n    pass\n")
    (tmp_path / "bea_lib" / "core" / "flows.py").write_text(
        "from . import integrate\nfrom .integrate import _solve\n\nx = integrate._solve\n")
    assert private_uses(tmp_path, ("bea_lib",)) == ["bea_lib/core/flows.py:2 _solve",
                                                    "bea_lib/core/flows.py:4 integrate._solve"]
