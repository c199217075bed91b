"""bea_lib: backward error analysis of Adam, after Cattaneo, Klusowski & Shigida (2023).

The public names live in this flat namespace: ``import bea_lib as bl; bl.adam(...)``; it holds
exactly what the chapters and users call. Data arguments come first, hyperparameters are
keyword-only (``*, h, beta, rho, eps``). The modules sit in layer folders, bottom up ``base``,
``core``, ``studies``, ``nets``, ``evidence`` and ``figures`` (the README's "Package layout");
``bl.<module>`` finds a module in any of them (``bl.flows``, ``bl.nets``). ``bea_lib.nets.train``
is imported on its own: ``python -m bea_lib.nets.train`` runs it.
"""
import importlib
import importlib.util

_LAYERS = ("base", "core", "studies", "nets", "evidence", "figures")  # the folders, bottom up
# public name -> the module that defines it (a module's own name: the module), loaded on first
# use (PEP 562), so that a module that needs no torch (``bea_lib.base``) does not load it
_HOME = {
    **dict.fromkeys(("Adam", "adam", "gd", "heavy_ball", "rmsprop", "torch_optimizer_iterates",
                     "torch_optimizer_steps"), "core.optimizers"),
    "adam_runs": "core.runs", "behaviour_gap": "core.convergence",
    "classify_run": "core.convergence",
    **dict.fromkeys(("gradient", "gradient_and_hvp", "gradient_and_hvp_fn", "hvp"),
                    "core.autodiff"),
    **dict.fromkeys(("adam_flow", "adam_rhs", "gd_flow", "heavy_ball_flow", "heavy_ball_rhs",
                     "rmsprop_flow"), "core.flows"),
    "average_weights": "core.minibatch", "minibatch_adam_rhs": "core.minibatch",
    "FlowError": "core.integrate", "solve_flow": "core.integrate",
    "ExpansionValidityWarning": "core.validation",
    **dict.fromkeys(("bias_coefficient", "bias_effect", "bias_potential_1d",
                     "explicit_bias_family", "explicit_bias_loss", "heavy_ball_limit",
                     "implicit_bias_regime", "implicit_bias_strength", "path_share_by_regime",
                     "perturbed_one_norm"), "core.norms"),
    "max_distance": "studies.order", "order_study": "studies.order", "losses": "studies.losses",
    **dict.fromkeys(("BiasRegime", "CheckRole", "ClaimStatus", "Convergence", "ExperimentVerdict",
                     "ProxyAnswer", "Stability", "TrendVerdict", "Verdict", "experiment_verdict",
                     "paper_verdict", "proxy_answer"), "base.vocab"),
    "claim": "evidence.claims", "registry": "evidence.registry", "nets": "nets",
}
__all__ = list(_HOME)
__version__ = "0.1.0"


def __getattr__(name: str):
    """A public name (from its module) or a module of a layer (``bl.flows``), on first use."""
    if name in _HOME:
        module = importlib.import_module(f".{_HOME[name]}", __name__)
        value = module if _HOME[name].rsplit(".", 1)[-1] == name else getattr(module, name)
    elif not name.startswith("_") and (found := _submodule(name)):
        value = importlib.import_module(found)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def _submodule(name: str) -> str | None:
    """``bea_lib.<layer>.<name>`` of the first layer (bottom up) holding a module ``name``, or
    the layer ``bea_lib.<name>`` itself."""
    for where in (__name__, *(f"{__name__}.{layer}" for layer in _LAYERS)):
        if importlib.util.find_spec(f"{where}.{name}") is not None:
            return f"{where}.{name}"
    return None


def __dir__():
    return sorted({*globals(), *__all__})
