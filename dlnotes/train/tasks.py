"""Ready-made tasks for problems whose model is a formula (least squares)."""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from dlnotes.train import hparams as hpmod
from dlnotes.train.loop import Task


def least_squares_loss(w, x, y):
    """L(w) = ½·mean((Xw − y)²); ∇L = H(w − ŵ) with H = XᵀX/n."""
    return 0.5 * jnp.mean(jnp.square(x @ w - y))


def least_squares_task(config, data, *, optimizer: Callable, evaluate: Callable | None = None,
                       num_steps: int | None = None, batch_size: int | None = None,
                       sampling: str | None = None, log_every: int | None = None) -> Task:
    """Linear regression w ∈ R^d on ``data["train"] = {"x": (n, d), "y": (n,)}``.

    Init: w0 = model.init_scale · N(0, I) (0 gives the zero init). ``init_scale`` is traced.
    """
    d = data["train"]["x"].shape[1]

    def init(key, hp):
        scale = hpmod.get(hp, config, "model.init_scale")
        return scale * jax.random.normal(key, (d,), data["train"]["x"].dtype), {}

    def loss(w, ms, batch, key, hp):
        return least_squares_loss(w, batch["x"], batch["y"]), ({}, ms)

    return Task(init=init, loss=loss, optimizer=optimizer, data=data,
                num_steps=num_steps or config.num_steps,
                batch_size=batch_size if batch_size is not None else (config.get("batch_size", 0) or None),
                sampling=sampling or config.get("sampling", "epoch"),
                log_every=log_every or config.get("log_every", 1), evaluate=evaluate)
