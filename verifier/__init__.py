"""verify-grads: check hand-written gradients against JAX autodiff and finite differences.

    check_grads(loss_fn, params, grad_fn)        a loss's hand-written gradient, per layer
    assert_grads_close(loss_fn, params, grad_fn) the same, raising GradientMismatch on a failure
    check_vjp(fn, vjp_fn, inputs)                a hand-written vector-Jacobian product
    verify_network(net, params, x, y)            the built-in reference backpropagation
    strategies                                   hypothesis strategies for networks and cases

Every check returns a Report (per-layer verdicts, root cause, JSON and Markdown).
"""

from verifier import strategies
from verifier.check import assert_grads_close, check_grads, check_vjp, verify_network
from verifier.compare import Verdict
from verifier.errors import GradientMismatch, InvalidArgument
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
