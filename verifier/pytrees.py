"""Parameter pytrees of user functions: leaves with readable paths, layers, rebuilding.

A pytree (dict, list, tuple, namedtuple, nested; anything jax.tree_util flattens) is seen as a
list of leaves, each with a path (`layer1.W`, `0.b`: jax.tree_util.keystr, dot-separated), a
layer (the first path component) and a place in the flat float64 vector theta that finite
differences move. jax.tree_util sorts dict keys; the layer order and every rebuilt tree keep the
order in which the caller's dicts list their keys, since a user's loss may iterate over them.
JAX is imported on first use, so that importing the package stays light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from verifier.errors import InvalidArgument

Array = np.ndarray
ROOT = "params"  # the path of a bare array given as params


@dataclass(frozen=True)
class Leaf:
    """One array of the tree; `start` places it in theta."""

    path: str
    layer: str
    shape: tuple[int, ...]
    dtype: np.dtype
    start: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class Tree:
    """The caller's pytree, flattened. `raw` are the caller's leaves as given, `values` private
    numpy copies of them; `layers` lists layer names from the input end to the output end."""

    template: Any
    treedef: Any
    leaves: list[Leaf]
    raw: list[Any]
    values: list[Array]
    layers: list[str]

    @property
    def theta(self) -> Array:
        """Every leaf, raveled and concatenated, in float64: shape (n,)."""
        return np.concatenate([np.asarray(v, np.float64).ravel() for v in self.values] or [np.zeros(0)])

    def split(self, flat: Array, dtypes: Sequence[Any] | None = None) -> list[Array]:
        """A flat vector (n,) cut back into leaf-shaped arrays, cast to `dtypes` when given."""
        parts = [flat[leaf.start : leaf.start + leaf.size].reshape(leaf.shape) for leaf in self.leaves]
        return parts if dtypes is None else [p.astype(d) for p, d in zip(parts, dtypes, strict=True)]

    def rebuild(self, arrays: Sequence[Any]) -> Any:
        """A tree shaped like the caller's, with `arrays` as leaves, dict keys in the caller's order."""
        return _reorder_like(self.template, self.treedef.unflatten(list(arrays)))

    def copy(self) -> Any:
        """A fresh copy of the caller's tree, leaves of the caller's types: numpy arrays are copied,
        so writes cannot reach the original; immutable leaves (JAX arrays, floats) are shared."""
        return self.rebuild([r.copy() if isinstance(r, np.ndarray) else r for r in self.raw])

    def by_path(self, tree: Any, who: str) -> dict[str, Array]:
        """The leaves of `tree` (what `who` returned, shaped like params) by path, checked against
        this tree: InvalidArgument on a missing or extra leaf, a wrong shape or a non-numeric dtype."""
        found = {path_of(p): leaf for p, leaf in _tree_util().tree_flatten_with_path(tree)[0]}
        expected = {leaf.path: leaf for leaf in self.leaves}
        for path, leaf in expected.items():
            if path not in found:
                raise InvalidArgument(
                    f"{who} returned no gradient for `{path}` (expected shape {leaf.shape}); it must return a pytree "
                    f"shaped like params, found leaves {sorted(found)}. Return zeros for a parameter the loss does "
                    "not use (None is not a gradient)."
                )
        for path in found:
            if path not in expected:
                raise InvalidArgument(
                    f"{who} returned a gradient for `{path}`, which is not in params (params has {sorted(expected)}); "
                    "remove it, or add the parameter to params."
                )
        out = {}
        for path, leaf in expected.items():
            value = np.array(found[path], copy=True)
            if value.dtype.kind not in "fiu":
                raise InvalidArgument(
                    f"{who} returned `{path}` of dtype {value.dtype}; expected a real floating-point array"
                )
            if value.shape != leaf.shape:
                hint = " (transposed?)" if value.shape == leaf.shape[::-1] else ""
                raise InvalidArgument(
                    f"{who} returned `{path}` with shape {value.shape}{hint}; expected {leaf.shape}, the shape of "
                    f"params' `{path}`: a gradient has the shape of its parameter."
                )
            out[path] = value
        return out


def _tree_util() -> Any:
    from jax import tree_util

    return tree_util


def path_of(keys: tuple[Any, ...]) -> str:
    return _tree_util().keystr(keys, simple=True, separator=".") if keys else ROOT


def flatten(params: Any, layers: Sequence[str] | None = None, argument: str = "params") -> Tree:
    """Flatten and check `params`: every leaf a real floating-point array, at least one leaf."""
    pairs, treedef = _tree_util().tree_flatten_with_path(params)
    if not pairs:
        raise InvalidArgument(
            f"{argument}: found no arrays in {type(params).__name__}; expected a pytree of float arrays"
        )
    leaves, values, start = [], [], 0
    for keys, raw in pairs:
        path = path_of(keys)
        value = np.array(raw, copy=True)
        if value.dtype.kind != "f":
            raise InvalidArgument(
                f"{argument}: `{path}` has dtype {value.dtype}; expected a floating-point array (float32 or float64): "
                "an integer, boolean or complex parameter has no real gradient. Cast it with .astype(np.float64)."
            )
        layer = path_of(keys[:1])
        leaves.append(Leaf(path, layer, value.shape, value.dtype, start))
        values.append(value)
        start += value.size
    order = _layer_order(params, [leaf.layer for leaf in leaves])
    return Tree(params, treedef, leaves, [raw for _, raw in pairs], values, _checked_layers(layers, order))


def _layer_order(params: Any, seen: list[str]) -> list[str]:
    """Layers in the order params lists them: dict insertion order, else flattening order."""
    names = list(dict.fromkeys(seen))
    if isinstance(params, Mapping):
        rank = {path_of((_tree_util().DictKey(k),)): i for i, k in enumerate(params)}
        names.sort(key=lambda name: rank.get(name, len(rank)))
    return names


def _checked_layers(layers: Sequence[str] | None, order: list[str]) -> list[str]:
    if layers is None:
        return order
    if isinstance(layers, str) or not isinstance(layers, Sequence):
        raise InvalidArgument(f"layers={layers!r}: expected a list of layer names (input end first), e.g. {order}")
    given = list(layers)
    missing = [n for n in order if n not in given]
    unknown = [n for n in given if n not in order]
    if missing or unknown or len(set(given)) != len(given):
        raise InvalidArgument(
            f"layers={given!r}: expected every layer of params exactly once, input end first; the layers are "
            f"{order} (missing {missing}, unknown {unknown})"
        )
    return given


def _reorder_like(template: Any, tree: Any) -> Any:
    """`tree` with the dicts' keys in `template`'s order (jax.tree_util sorts them)."""
    if type(template) is dict and isinstance(tree, dict):
        return {k: _reorder_like(template[k], tree[k]) for k in template}
    if isinstance(template, (list, tuple)) and type(tree) is type(template):
        items = [_reorder_like(t, v) for t, v in zip(template, tree, strict=True)]
        return type(template)(*items) if hasattr(template, "_fields") else type(template)(items)
    return tree
