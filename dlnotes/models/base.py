"""The functional boundary between flax.nnx modules and the engine.

An NNX module is built once (abstractly, with ``nnx.eval_shape``) to get its
static ``graphdef``; from then on a model is two pure functions of pytrees:

    init(key, hp)                               -> (params, model_state)
    apply(params, model_state, x, *, train, key) -> (out, new_model_state)

``params`` holds the ``nnx.Param`` variables (what the optimizer updates),
``model_state`` everything else (batch-norm running statistics, counters).
Both are ``nnx.State`` pytrees, so ``jit``/``vmap``/``scan`` take them directly.

Modules used this way take explicit randomness: ``__call__(x, *, train, key)``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
from flax import nnx

HParams = Any  # a pytree of (possibly traced) numbers, usually a dict


@dataclasses.dataclass(frozen=True)
class Functional:
    """A model as pure functions. ``make(rngs, hp) -> nnx.Module``."""

    make: Callable[..., nnx.Module]
    graphdef: Any

    def init(self, key: jax.Array, hp: HParams = None):
        model = self.make(nnx.Rngs(params=key), hp)
        _, params, rest = nnx.split(model, nnx.Param, ...)
        return params, rest

    def apply(self, params, model_state, x, *, train: bool = False, key=None, **kwargs):
        # copy=True: fresh Variables, so a layer that writes its state (batch-norm running
        # averages) can do so under an outer trace such as the engine's value_and_grad.
        model = nnx.merge(self.graphdef, params, model_state, copy=True)
        out = model(x, train=train, key=key, **kwargs)
        _, _, new_state = nnx.split(model, nnx.Param, ...)
        return out, new_state

    def module(self, params, model_state) -> nnx.Module:
        """The stateful module for interactive use (plotting, inspection)."""
        return nnx.merge(self.graphdef, params, model_state)


def functional(make: Callable[..., nnx.Module], hp_example: HParams = None) -> Functional:
    """Wrap ``make(rngs, hp) -> nnx.Module`` as pure ``init``/``apply``.

    ``hp_example`` gives the structure of the numeric hyperparameters ``make``
    reads (e.g. ``{"init_scale": 1.0}``); shapes must not depend on their values.
    """
    abstract = nnx.eval_shape(lambda: make(nnx.Rngs(params=0), hp_example))
    graphdef, _, _ = nnx.split(abstract, nnx.Param, ...)
    return Functional(make=make, graphdef=graphdef)


def count_params(params) -> int:
    """Number of scalars in a params pytree."""
    return int(sum(x.size for x in jax.tree.leaves(params)))
