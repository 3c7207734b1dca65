"""Numeric hyperparameters as traced values.

Rule: every **float** leaf of an experiment config is a hyperparameter the engine
passes as a traced scalar, so changing or sweeping it never recompiles. Ints,
strings and bools (widths, step counts, names) are static and shape the program.

``hp`` is a flat dict ``{"optimizer.learning_rate": Array(...), ...}``;
code reads a number with ``get(hp, config, "optimizer.learning_rate")`` which
falls back to the config value when the key is not traced.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp
import ml_collections


def _walk(cfg, prefix=""):
    items = cfg.items() if hasattr(cfg, "items") else []
    for k, v in items:
        path = f"{prefix}{k}"
        if isinstance(v, (ml_collections.ConfigDict, dict)):
            yield from _walk(v, path + ".")
        else:
            yield path, v


def lookup(config, path: str) -> Any:
    """``config`` value at a dotted path, e.g. ``"optimizer.learning_rate"``."""
    node = config
    for part in path.split("."):
        node = node[part]
    return node


STATIC_SUBTREES = ("data",)


def float_paths(config) -> list[str]:
    """Dotted paths of all float leaves (the traced hyperparameters).

    Floats under ``data`` are excluded: data are built before the compiled call,
    so their settings are static (changing them rebuilds the data).
    """
    return sorted(p for p, v in _walk(config)
                  if isinstance(v, float) and not isinstance(v, bool)
                  and p.split(".")[0] not in STATIC_SUBTREES)


def from_config(config, dtype=None) -> dict[str, Any]:
    """The traced-hyperparameter dict of a config: every float leaf as an array
    (default float dtype: float32, or float64 under ``jax.enable_x64``)."""
    return {p: jnp.asarray(lookup(config, p), dtype) for p in float_paths(config)}


def get(hp: Mapping[str, Any] | None, config, path: str):
    """Traced value of ``path`` if present in ``hp``, else the config's value."""
    if hp is not None and path in hp:
        return hp[path]
    return lookup(config, path)


def with_changes(config, **changes):
    """A copy of ``config`` with dotted paths set: ``with_changes(c, **{"model.width": 8})``."""
    import copy

    c = copy.deepcopy(config)
    with c.unlocked():
        for path, v in changes.items():
            node = c
            parts = path.split(".")
            for p in parts[:-1]:
                node = node[p]
            node[parts[-1]] = v
    return c
