"""verify-grads: check hand-written gradients against JAX autodiff and finite differences.

    check_grads(loss_fn, params, grad_fn)        a loss's hand-written gradient, per layer
    assert_grads_close(loss_fn, params, grad_fn) the same, raising GradientMismatch on a failure
    check_vjp(fn, vjp_fn, inputs)                a hand-written vector-Jacobian product
    verify_network(net, params, x, y)            the built-in reference backpropagation
    strategies                                   hypothesis strategies for networks and cases

Every check returns a Report (per-layer verdicts, root cause, JSON and Markdown).

The names are loaded on first use (PEP 562), so that `import verifier` (and the command line's
start-up) does not pay for numpy, hypothesis or JAX until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from verifier.errors import GradientMismatch, InvalidArgument

if TYPE_CHECKING:
    from verifier import strategies
    from verifier.check import assert_grads_close, check_grads, check_vjp, verify_network
    from verifier.compare import Verdict
    from verifier.report import Report

__all__ = [
    "GradientMismatch",
    "InvalidArgument",
    "Report",
    "Verdict",
    "assert_grads_close",
    "check_grads",
    "check_vjp",
    "strategies",
    "verify_network",
]

_LAZY = {
    "strategies": ("verifier.strategies", None),
    "assert_grads_close": ("verifier.check", "assert_grads_close"),
    "check_grads": ("verifier.check", "check_grads"),
    "check_vjp": ("verifier.check", "check_vjp"),
    "verify_network": ("verifier.check", "verify_network"),
    "Verdict": ("verifier.compare", "Verdict"),
    "Report": ("verifier.report", "Report"),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'verifier' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
