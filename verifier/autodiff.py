"""The JAX oracle: the network written again in jax.numpy, from the spec alone.

It shares no formula with `reference/`: activations come from jax.nn, losses are written with
jax.nn.log_softmax and jnp. Gradients with respect to every h^r come from zero "taps" added to
each h^r: d loss / d tap_r = Delta(h^r). Everything runs in float64 inside a scoped
`jax.enable_x64(True)`, so the caller's global JAX setting is left alone.

JAX is imported lazily, on first use, so that the command line starts fast.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from reference.network import Network, layer_name

if TYPE_CHECKING:
    import jax

Array = np.ndarray


def _activations() -> dict[str, Callable[[Any], Any]]:
    import jax
    import jax.numpy as jnp

    return {
        "identity": lambda a: a,
        "sigmoid": jax.nn.sigmoid,
        "tanh": jnp.tanh,
        "relu": jax.nn.relu,
        "leaky_relu": jax.nn.leaky_relu,  # negative_slope 0.01
        "elu": jax.nn.elu,  # alpha 1
        "softplus": jax.nn.softplus,
        "gelu": lambda a: jax.nn.gelu(a, approximate=False),
        "gelu_tanh": lambda a: jax.nn.gelu(a, approximate=True),
        "silu": jax.nn.silu,
        "sin": jnp.sin,
    }


def _losses() -> dict[str, Callable[[Any, Any], Any]]:
    import jax
    import jax.numpy as jnp

    def mse(o: Any, y: Any) -> Any:
        return jnp.mean(0.5 * jnp.sum((o - y) ** 2, axis=-1))

    def softmax_cross_entropy(o: Any, y: Any) -> Any:
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(o, axis=-1), axis=-1))

    def sigmoid_binary_cross_entropy(o: Any, y: Any) -> Any:
        # optax.sigmoid_binary_cross_entropy, summed over outputs, batch mean
        per_entry = -y * jax.nn.log_sigmoid(o) - (1.0 - y) * jax.nn.log_sigmoid(-o)
        return jnp.mean(jnp.sum(per_entry, axis=-1))

    def huber(o: Any, y: Any, delta: float = 1.0) -> Any:
        r = jnp.abs(o - y)
        per_entry = jnp.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))
        return jnp.mean(jnp.sum(per_entry, axis=-1))

    return {
        "mse": mse,
        "softmax_cross_entropy": softmax_cross_entropy,
        "sigmoid_binary_cross_entropy": sigmoid_binary_cross_entropy,
        "huber": huber,
    }


def jax_loss(net: Network) -> Callable[..., Any]:
    """loss(params, taps, x, y) in jax.numpy; taps[r - 1] is added to h^r."""
    acts = _activations()
    loss_fn = _losses()[net.loss]

    def loss(params: Mapping[str, Mapping[str, Any]], taps: list[Any], x: Any, y: Any) -> Any:
        import jax.numpy as jnp

        h = [x]
        for r in range(1, net.depth + 1):
            p = params[layer_name(r)]
            inp = jnp.concatenate([h[i] for i in net.inputs_of(r)], axis=-1)
            h.append(acts[net.layers[r - 1].activation](inp @ p["W"].T + p["b"]) + taps[r - 1])
        return loss_fn(h[-1], y)

    return loss


@functools.lru_cache(maxsize=256)
def _compiled(net: Network) -> jax.stages.Wrapped:
    import jax

    return jax.jit(jax.value_and_grad(jax_loss(net), argnums=(0, 1)))


def jax_gradients(
    net: Network, params: Mapping[str, Mapping[str, Array]], x: Array, y: Array
) -> tuple[float, dict[str, dict[str, Array]], list[Array]]:
    """(loss, grads, deltas) in float64: grads shaped like params, deltas[r] = Delta(h^r) for
    r = 1..k (deltas[0] is None)."""
    import jax

    f64 = functools.partial(np.asarray, dtype=np.float64)
    with jax.enable_x64(True):
        p64 = {name: {k: f64(v) for k, v in layer.items()} for name, layer in params.items()}
        x64, y64 = f64(x), f64(y)
        taps = [np.zeros((x64.shape[0], layer.width)) for layer in net.layers]
        value, (grads, tap_grads) = _compiled(net)(p64, taps, x64, y64)
        grads_np = {name: {k: np.asarray(v) for k, v in layer.items()} for name, layer in grads.items()}
        deltas: list[Array] = [None, *(np.asarray(t) for t in tap_grads)]  # type: ignore[list-item]
        return float(value), grads_np, deltas
