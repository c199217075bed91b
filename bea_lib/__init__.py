"""bea_lib: backward error analysis of Adam, after Cattaneo, Klusowski & Shigida (2023).

The public names live in this flat namespace: ``import bea_lib as bl; bl.adam(...)``; it holds
exactly what the chapters and users call. Data arguments come first, hyperparameters are
keyword-only (``*, h, beta, rho, eps``). The networks are ``bl.nets`` (``bea_lib.nets.train``
is imported on its own: ``python -m bea_lib.nets.train`` runs it); the bilinear model of
Section 5 is ``bea_lib.bilinear``; the modules are listed in the README ("Package layout").
"""
import importlib
import importlib.util

# name -> the module that defines it: loaded on first use (PEP 562), so that importing a module
# that needs no torch (``bea_lib.fileio``, ``bea_lib.provenance``) does not load torch
_HOME = {
    **dict.fromkeys(("gradient", "gradient_and_hvp", "gradient_and_hvp_fn", "hvp"), "autodiff"),
    "claim": "claims", "classify_run": "convergence", "behaviour_gap": "convergence",
    **dict.fromkeys(("adam_flow", "adam_rhs", "gd_flow", "heavy_ball_flow", "heavy_ball_rhs",
                     "rmsprop_flow"), "flows"),
    "FlowError": "integrate", "solve_flow": "integrate",
    "average_weights": "minibatch", "minibatch_adam_rhs": "minibatch",
    **dict.fromkeys(("bias_coefficient", "bias_effect", "bias_potential_1d",
                     "explicit_bias_family", "explicit_bias_loss", "heavy_ball_limit",
                     "implicit_bias_regime", "implicit_bias_strength", "path_share_by_regime",
                     "perturbed_one_norm"),
                    "norms"),
    **dict.fromkeys(("Adam", "adam", "gd", "heavy_ball", "rmsprop", "torch_optimizer_iterates",
                     "torch_optimizer_steps"), "optimizers"),
    "max_distance": "order", "order_study": "order", "adam_runs": "runs",
    "ExpansionValidityWarning": "validation",
    **dict.fromkeys(("BiasRegime", "CheckRole", "ClaimStatus", "Convergence", "Stability",
                     "TrendVerdict", "Verdict", "paper_verdict"), "vocab"),
}


def __getattr__(name: str):
    """A public name (from its module) or a submodule (``bl.nets``, ``bl.flows``), on first use."""
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    elif not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})


__version__ = "0.1.0"

__all__ = [
    # update rules (optimizers, runs)
    "adam", "rmsprop", "gd", "heavy_ball", "Adam", "adam_runs",
    "torch_optimizer_iterates", "torch_optimizer_steps",
    # gradients (autodiff)
    "gradient", "hvp", "gradient_and_hvp", "gradient_and_hvp_fn",
    # modified flows (flows, minibatch, integrate)
    "adam_flow", "rmsprop_flow", "gd_flow", "heavy_ball_flow", "adam_rhs", "heavy_ball_rhs",
    "minibatch_adam_rhs", "average_weights", "solve_flow", "FlowError",
    "ExpansionValidityWarning",
    # what the bias penalises (norms)
    "perturbed_one_norm", "bias_coefficient", "bias_effect", "implicit_bias_strength",
    "bias_potential_1d", "implicit_bias_regime", "path_share_by_regime", "heavy_ball_limit",
    "explicit_bias_family", "explicit_bias_loss",
    # error orders (order), what became of a run (convergence)
    "order_study", "max_distance", "classify_run", "behaviour_gap",
    # vocabularies (vocab) and checked claims (claims)
    "BiasRegime", "CheckRole", "ClaimStatus", "Convergence", "Stability", "TrendVerdict", "Verdict",
    "paper_verdict", "claim",
    # subpackages and modules used as namespaces
    "losses", "nets", "registry",
]
