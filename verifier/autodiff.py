"""The JAX oracle: the network written again in jax.numpy, from the spec alone.

It shares no formula with `reference/`: activations come from jax.nn, losses are written with
jax.nn.log_softmax and jnp. Gradients with respect to every h^r come from zero "taps" added to
each h^r: d loss / d tap_r = Delta(h^r). Everything runs in float64 inside a scoped
`jax.enable_x64(True)`, so the caller's global JAX setting is left alone.

JAX is imported lazily, on first use, so that the command line starts fast.
"""

from __future__ import annotations

import dataclasses
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


def _losses() -> dict[str, Callable[[Any, Any, Any], Any]]:
    """Per-example losses (batch,) from o, y (batch, n_out) and a mask of the valid outputs
    (all true, except in the padded oracle)."""
    import jax
    import jax.numpy as jnp

    def mse(o: Any, y: Any, mask: Any) -> Any:
        return 0.5 * jnp.sum(jnp.where(mask, (o - y) ** 2, 0.0), axis=-1)

    def softmax_cross_entropy(o: Any, y: Any, mask: Any) -> Any:
        # padded logits get a huge negative value: softmax weight exactly 0
        logp = jax.nn.log_softmax(jnp.where(mask, o, -1e300), axis=-1)
        return -jnp.sum(jnp.where(mask, y * logp, 0.0), axis=-1)

    def sigmoid_binary_cross_entropy(o: Any, y: Any, mask: Any) -> Any:
        # optax.sigmoid_binary_cross_entropy, summed over outputs
        per_entry = -y * jax.nn.log_sigmoid(o) - (1.0 - y) * jax.nn.log_sigmoid(-o)
        return jnp.sum(jnp.where(mask, per_entry, 0.0), axis=-1)

    def huber(o: Any, y: Any, mask: Any, delta: float = 1.0) -> Any:
        r = jnp.abs(o - y)
        per_entry = jnp.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))
        return jnp.sum(jnp.where(mask, per_entry, 0.0), axis=-1)

    return {
        "mse": mse,
        "softmax_cross_entropy": softmax_cross_entropy,
        "sigmoid_binary_cross_entropy": sigmoid_binary_cross_entropy,
        "huber": huber,
    }


def batch_loss(name: str) -> Callable[[Any, Any], Any]:
    """The loss `name` in jax.numpy: the batch mean of the per-example loss."""
    per_example = _losses()[name]

    def loss(o: Any, y: Any) -> Any:
        import jax.numpy as jnp

        return jnp.mean(per_example(o, y, jnp.ones(o.shape[-1], bool)))

    return loss


def jax_loss(net: Network) -> Callable[..., Any]:
    """loss(params, taps, x, y) in jax.numpy; taps[r - 1] is added to h^r."""
    acts = _activations()
    loss_fn = batch_loss(net.loss)

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
    r = 1..k (deltas[0] is None).

    Small networks go through one padded program compiled once per size bucket (so a search
    over random architectures compiles a handful of times, not once per network); larger ones
    through a program compiled for their own architecture."""
    import jax

    f64 = functools.partial(np.asarray, dtype=np.float64)
    x64, y64 = f64(x), f64(y)
    bucket = bucket_for(net, x64.shape[0])
    with jax.enable_x64(True):
        if bucket is not None:
            return _padded_gradients(net, params, x64, y64, bucket)
        p64 = {name: {k: f64(v) for k, v in layer.items()} for name, layer in params.items()}
        taps = [np.zeros((x64.shape[0], layer.width)) for layer in net.layers]
        value, (grads, tap_grads) = _compiled(net)(p64, taps, x64, y64)
        grads_np = {name: {k: np.asarray(v) for k, v in layer.items()} for name, layer in grads.items()}
        deltas: list[Array] = [None, *(np.asarray(t) for t in tap_grads)]  # type: ignore[list-item]
        return float(value), grads_np, deltas


# --- one compiled program for many architectures ---------------------------------------------
# Every network of a bucket is embedded in a fixed-size one: `depth` layers of `width` units, a
# batch of `batch` rows. Layer j reads every earlier unit through a (width, depth * width) weight
# block that is zero outside the columns of the units it really reads; its activation is picked
# with lax.switch; the loss reads the real output layer, masks padded outputs and weights padded
# rows by zero. Padded entries only ever add exact zeros, so no gradient changes.
BUCKET_DEPTHS = (5, 8)
BUCKET_WIDTHS = (16, 32)
BUCKET_BATCHES = (8, 16, 32, 64)


@dataclasses.dataclass(frozen=True)
class Bucket:
    depth: int
    width: int
    batch: int


def bucket_for(net: Network, batch: int) -> Bucket | None:
    """The smallest bucket that holds the network and batch, or None (too large to pad)."""
    widest = max(net.n_inputs, *(layer.width for layer in net.layers))
    depth = next((d for d in BUCKET_DEPTHS if net.depth <= d), None)
    width = next((w for w in BUCKET_WIDTHS if widest <= w), None)
    rows = next((b for b in BUCKET_BATCHES if batch <= b), None)
    if depth is None or width is None or rows is None:
        return None
    return Bucket(depth, width, rows)


ACTIVATION_ORDER = (
    "identity",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "elu",
    "softplus",
    "gelu",
    "gelu_tanh",
    "silu",
    "sin",
)
LOSS_ORDER = ("mse", "softmax_cross_entropy", "sigmoid_binary_cross_entropy", "huber")


@functools.lru_cache(maxsize=16)
def _padded_program(bucket: Bucket) -> Any:
    import jax
    import jax.numpy as jnp

    acts = _activations()
    losses = _losses()
    branches = [acts[name] for name in ACTIVATION_ORDER]
    loss_branches = [losses[name] for name in LOSS_ORDER]
    depth = bucket.depth

    def loss(w: Any, b: Any, taps: Any, x: Any, y: Any, act: Any, loss_id: Any, out: Any, mask: Any, rows: Any) -> Any:
        zeros = jnp.zeros_like(x)
        h = [x]
        for j in range(depth):
            inp = jnp.concatenate([h[u] if u <= j else zeros for u in range(depth)], axis=-1)
            a = inp @ w[j].T + b[j]
            h.append(jax.lax.switch(act[j], branches, a) + taps[j])
        o = jnp.stack(h)[out]
        per_example = jax.lax.switch(loss_id, loss_branches, o, y, mask)
        return jnp.sum(rows * per_example)

    grad = jax.value_and_grad(loss, argnums=(0, 1, 2))

    def packed(*args: Any) -> Any:  # one array out: one transfer to numpy, not four
        value, (gw, gb, gt) = grad(*args)
        return jnp.concatenate([value[None], gw.ravel(), gb.ravel(), gt.ravel()])

    return jax.jit(packed)


def _padded_gradients(
    net: Network, params: Mapping[str, Mapping[str, Array]], x: Array, y: Array, bucket: Bucket
) -> tuple[float, dict[str, dict[str, Array]], list[Array]]:
    d, wd, rows = bucket.depth, bucket.width, bucket.batch
    batch = x.shape[0]
    w = np.zeros((d, wd, d * wd))
    b = np.zeros((d, wd))
    columns: list[Array] = []  # per layer: the padded column of each real input column
    for r, layer in enumerate(net.layers, start=1):
        cols = np.concatenate([u * wd + np.arange(net.width_of(u)) for u in net.inputs_of(r)])
        columns.append(cols)
        w[r - 1, : layer.width, cols] = np.asarray(params[layer_name(r)]["W"], np.float64).T
        b[r - 1, : layer.width] = params[layer_name(r)]["b"]
    xp = np.zeros((rows, wd))
    xp[:batch, : net.n_inputs] = x
    yp = np.zeros((rows, wd))
    yp[:batch, : net.n_outputs] = y
    act = np.zeros(d, np.int32)
    act[: net.depth] = [ACTIVATION_ORDER.index(layer.activation) for layer in net.layers]
    mask = np.arange(wd) < net.n_outputs
    weights = np.where(np.arange(rows) < batch, 1.0 / batch, 0.0)
    taps = np.zeros((d, rows, wd))
    flat = np.asarray(
        _padded_program(bucket)(
            w, b, taps, xp, yp, act, np.int32(LOSS_ORDER.index(net.loss)), np.int32(net.depth), mask, weights
        )
    )
    value, gw, gb, gt = np.split(flat, np.cumsum([1, w.size, b.size]))
    gw, gb, gt = gw.reshape(w.shape), gb.reshape(b.shape), gt.reshape(taps.shape)
    grads = {
        layer_name(r): {"W": gw[r - 1, : layer.width][:, columns[r - 1]], "b": gb[r - 1, : layer.width]}
        for r, layer in enumerate(net.layers, start=1)
    }
    deltas: list[Array] = [None, *(gt[r - 1, :batch, : layer.width] for r, layer in enumerate(net.layers, 1))]  # type: ignore[list-item]
    return float(value[0]), grads, deltas
