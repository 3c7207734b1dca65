"""Experiment config -> optax chain (clip, weight decay, optimizer, learning-rate schedule).

``config.optimizer`` holds (defaults from :func:`default_optimizer_config`)::

    name='sgd'            sgd|gd, momentum|heavy_ball, nesterov, adam, adamw (optax's), or
                          ours_<any of those> (dlnotes.optim.transforms, same numbers)
    learning_rate=0.1     η, peak of the schedule                     > 0
    momentum=0.9          β of momentum / heavy_ball / nesterov       [0, 1)
    b1=0.9, b2=0.999      Adam's EMA factors                          [0, 1)
    eps=1e-8              Adam's ε                                    > 0
    weight_decay=0.0      λ; adamw: decoupled; others: L2 added to the gradient   ≥ 0
    clip_norm=0.0         clip the gradient's global norm to this; 0 = off        ≥ 0
    schedule.name='constant'   one of SCHEDULES (formulas in :func:`schedule_fn`)
    schedule.decay_rate=0.1    r of step / exponential (0, 1] and inverse_time ≥ 0
    schedule.step_size=100     s (int ≥ 1) of step / exponential / inverse_time
    schedule.boundaries=()     step: decay at these steps instead of every s (ints, increasing)
    schedule.warmup_steps=0    W (int) of warmup_cosine, 0 ≤ W < num_steps
    schedule.alpha=0.0         cosine floor: η_T = α η, [0, 1]

and ``config.num_steps`` (int) is T for cosine / warmup_cosine.

Numbers vs structure: every float is read with ``hparams.get(hp, config, ...)`` so a sweep may
trace it (η, β, λ, schedule r and α ...). Which terms exist is static and read from the
config itself: the clip is in the chain iff ``config.optimizer.clip_norm > 0``, the L2
decay (non-adamw) iff ``config.optimizer.weight_decay > 0``; a traced value then only
sets their strength. To sweep λ or the clip from 0, give the base config a nonzero value.

Weight decay mask (:func:`decay_mask`): only leaves with ndim ≥ 2 (dense / conv kernels,
embeddings) are decayed; biases, norm scales and offsets, scalars are not.

Chain order: clip_by_global_norm(c) → [add_decayed_weights(λ, mask) unless adamw] → optimizer.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dlnotes.errors import ConfigError
from dlnotes.optim import transforms
from dlnotes import hparams

SCHEDULES = ("constant", "step", "inverse_time", "exponential", "cosine", "warmup_cosine")

_BASE_NAMES = ("sgd", "gd", "momentum", "heavy_ball", "nesterov", "adam", "adamw")
NAMES = _BASE_NAMES + tuple(f"ours_{n}" for n in _BASE_NAMES)
_CANONICAL = {"sgd": "gd", "gd": "gd", "momentum": "heavy_ball", "heavy_ball": "heavy_ball",
              "nesterov": "nesterov", "adam": "adam", "adamw": "adamw"}


def default_optimizer_config() -> ml_collections.ConfigDict:
    """All optimizer fields with their defaults (see the module docstring)."""
    return ml_collections.ConfigDict(
        dict(
            name="sgd",
            learning_rate=0.1,
            momentum=0.9,
            b1=0.9,
            b2=0.999,
            eps=1e-8,
            weight_decay=0.0,
            clip_norm=0.0,
            schedule=dict(
                name="constant",
                decay_rate=0.1,
                step_size=100,
                boundaries=(),
                warmup_steps=0,
                alpha=0.0,
            ),
        )
    )


_DEFAULTS = default_optimizer_config()


def _static(config, field: str):
    """Config value of ``optimizer.<field>`` (dotted), or its default when absent."""
    node = config.optimizer
    for part in field.split("."):
        if node is None or part not in node:
            return hparams.lookup(_DEFAULTS, field)
        node = node[part]
    return node


def _get(hp: Mapping[str, Any] | None, config, field: str):
    """Traced ``hp["optimizer.<field>"]`` if present, else the config value (or default)."""
    path = f"optimizer.{field}"
    if hp is not None and path in hp:
        return hp[path]
    return _static(config, field)


def decay_mask(params):
    """Which leaves weight decay touches: ndim ≥ 2 (kernels), not biases / norm scales."""
    return jax.tree.map(lambda p: jnp.ndim(p) >= 2, params)


# ---------------------------------------------------------------- validation

def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


_RULES: dict[str, tuple[str, Callable[[np.ndarray], bool]]] = {
    "learning_rate": ("must be > 0", lambda v: np.all(v > 0)),
    "momentum": ("must be in [0, 1)", lambda v: np.all((v >= 0) & (v < 1))),
    "b1": ("must be in [0, 1)", lambda v: np.all((v >= 0) & (v < 1))),
    "b2": ("must be in [0, 1)", lambda v: np.all((v >= 0) & (v < 1))),
    "eps": ("must be > 0", lambda v: np.all(v > 0)),
    "weight_decay": ("must be >= 0", lambda v: np.all(v >= 0)),
    "clip_norm": ("must be >= 0 (0 = off)", lambda v: np.all(v >= 0)),
    "schedule.alpha": ("must be in [0, 1]", lambda v: np.all((v >= 0) & (v <= 1))),
}
_DECAY_RULES = {
    "step": ("must be in (0, 1]", lambda v: np.all((v > 0) & (v <= 1))),
    "exponential": ("must be in (0, 1]", lambda v: np.all((v > 0) & (v <= 1))),
    "inverse_time": ("must be >= 0", lambda v: np.all(v >= 0)),
}


def _check_value(field: str, value, rule) -> None:
    msg, ok = rule
    key = f"optimizer.{field}"
    if isinstance(value, jax.core.Tracer):
        return  # traced: checked where the concrete grid was built
    if not _is_number(value):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ConfigError(key, f"must be a number, got {value!r}") from None
    else:
        arr = np.asarray(value, dtype=float)
    if not (np.all(np.isfinite(arr)) and ok(arr)):
        raise ConfigError(key, f"{msg}, got {value!r}")


def _check_int(key: str, value, low: int, what: str = "") -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ConfigError(key, f"must be an integer >= {low}{what}, got {value!r}")


def validate_optimizer_config(config, hp: Mapping[str, Any] | None = None) -> None:
    """Raise ``ConfigError(<key>, <one line>)`` for the first bad optimizer setting.

    Checks names, unknown keys, ranges (η > 0; β, b1, b2 ∈ [0,1); ε > 0; λ, clip ≥ 0;
    schedule numbers) and ``num_steps`` where a schedule needs it. Concrete values in ``hp``
    (e.g. a sweep grid, any shape) are checked with the same rules; tracers are skipped.
    """
    if "optimizer" not in config or not isinstance(config.optimizer, (ml_collections.ConfigDict, dict)):
        raise ConfigError("optimizer", "missing: set config.optimizer = default_optimizer_config()")
    opt = config.optimizer
    for k in opt.keys():
        if k not in _DEFAULTS:
            raise ConfigError(f"optimizer.{k}", f"unknown key (known: {', '.join(_DEFAULTS.keys())})")
    name = _static(config, "name")
    if name not in NAMES:
        raise ConfigError("optimizer.name", f"unknown optimizer {name!r} (known: {', '.join(NAMES)})")
    for field, rule in _RULES.items():
        _check_value(field, _get(hp, config, field), rule)
        if hp is not None and f"optimizer.{field}" in hp:  # the config's own value too
            _check_value(field, _static(config, field), rule)

    if "schedule" in opt:
        if not isinstance(opt.schedule, (ml_collections.ConfigDict, dict)):
            raise ConfigError("optimizer.schedule", f"must be a ConfigDict with a name, got {opt.schedule!r}")
        for k in opt.schedule.keys():
            if k not in _DEFAULTS.schedule:
                raise ConfigError(
                    f"optimizer.schedule.{k}",
                    f"unknown key (known: {', '.join(_DEFAULTS.schedule.keys())})",
                )
    sched = _static(config, "schedule.name")
    if sched not in SCHEDULES:
        raise ConfigError("optimizer.schedule.name", f"unknown schedule {sched!r} (known: {', '.join(SCHEDULES)})")
    boundaries = _static(config, "schedule.boundaries")
    if sched in _DECAY_RULES:
        _check_value("schedule.decay_rate", _get(hp, config, "schedule.decay_rate"), _DECAY_RULES[sched])
    if sched in ("exponential", "inverse_time") or (sched == "step" and not boundaries):
        _check_int("optimizer.schedule.step_size", _static(config, "schedule.step_size"), 1)
    if sched == "step" and boundaries:
        b = list(boundaries) if isinstance(boundaries, (list, tuple)) else None
        if b is None or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in b) or any(
            x <= 0 for x in b) or any(y <= x for x, y in zip(b, b[1:])):
            raise ConfigError("optimizer.schedule.boundaries",
                              f"must be increasing integers > 0, got {boundaries!r}")
    if sched in ("cosine", "warmup_cosine"):
        if "num_steps" not in config:
            raise ConfigError("num_steps", f"required by schedule {sched!r}")
        _check_int("num_steps", config.num_steps, 1)
    if sched == "warmup_cosine":
        w = _static(config, "schedule.warmup_steps")
        _check_int("optimizer.schedule.warmup_steps", w, 0)
        if w >= config.num_steps:
            raise ConfigError("optimizer.schedule.warmup_steps", f"must be < num_steps={config.num_steps}, got {w}")


# ---------------------------------------------------------------- schedules

def schedule_fn(config, hp: Mapping[str, Any] | None = None) -> Callable[[jax.Array], jax.Array]:
    """η_t for step count t = 0, 1, ... (the t-th update uses η_t). With η = learning_rate,
    r = decay_rate, s = step_size, T = num_steps, W = warmup_steps, α = alpha:

    constant       η
    step           η r^⌊t/s⌋, or η r^#{b ∈ boundaries: t ≥ b}
    inverse_time   η / (1 + r t / s)                                   (the 1/t decay)
    exponential    η r^(t/s)
    cosine         η (α + (1 − α) (1 + cos(π min(t, T)/T)) / 2)
    warmup_cosine  η t/W for t < W, then cosine from η to α η over the T − W steps left

    Same numbers as optax's constant / exponential_decay(staircase) / piecewise_constant /
    cosine_decay_schedule / warmup_cosine_decay_schedule(0, η, W, T, α η). Every float
    (η, r, α) may be traced.
    """
    sched = _static(config, "schedule.name")
    lr = _get(hp, config, "learning_rate")
    r = _get(hp, config, "schedule.decay_rate")
    alpha = _get(hp, config, "schedule.alpha")
    s = _static(config, "schedule.step_size")
    boundaries = tuple(_static(config, "schedule.boundaries"))
    w = _static(config, "schedule.warmup_steps")
    if sched not in SCHEDULES:
        raise ConfigError("optimizer.schedule.name", f"unknown schedule {sched!r} (known: {', '.join(SCHEDULES)})")

    def cosine(t, length):
        frac = jnp.clip(t, 0, length) / length
        return alpha + (1 - alpha) * 0.5 * (1 + jnp.cos(jnp.pi * frac))

    def factor(t):
        if sched == "constant":
            return jnp.ones_like(t)
        if sched == "step":
            if boundaries:
                n = sum((t >= b).astype(t.dtype) for b in boundaries)
            else:
                n = jnp.floor(t / s)
            return r**n
        if sched == "inverse_time":
            return 1 / (1 + r * t / s)
        if sched == "exponential":
            return r ** (t / s)
        if sched == "cosine":
            return cosine(t, config.num_steps)
        # warmup_cosine
        warm = t / max(w, 1)
        return jnp.where(t < w, warm, cosine(t - w, config.num_steps - w))

    def fn(count):
        t = jnp.asarray(count).astype(jnp.result_type(float))
        return lr * factor(t)

    return fn


# ---------------------------------------------------------------- the chain

def make_optimizer(config, hp: Mapping[str, Any] | None = None) -> optax.GradientTransformation:
    """``optax.chain`` for ``config.optimizer`` (module docstring); floats from ``hp`` if traced.

    Validates first (:func:`validate_optimizer_config`), so bad input fails before any compile.
    """
    validate_optimizer_config(config, hp)
    name = _static(config, "name")
    ours = name.startswith("ours_")
    kind = _CANONICAL[name.removeprefix("ours_")]
    g = lambda field: _get(hp, config, field)  # noqa: E731

    lr = g("learning_rate") if _static(config, "schedule.name") == "constant" else schedule_fn(config, hp)
    parts = []
    if _static(config, "clip_norm") > 0:
        parts.append(optax.clip_by_global_norm(g("clip_norm")))
    if kind != "adamw" and _static(config, "weight_decay") > 0:
        parts.append(optax.add_decayed_weights(g("weight_decay"), mask=decay_mask))

    if kind == "gd":
        core = transforms.gd(lr) if ours else optax.sgd(lr)
    elif kind == "heavy_ball":
        core = transforms.heavy_ball(lr, g("momentum")) if ours else optax.sgd(lr, momentum=g("momentum"))
    elif kind == "nesterov":
        core = (transforms.nesterov(lr, g("momentum")) if ours
                else optax.sgd(lr, momentum=g("momentum"), nesterov=True))
    elif kind == "adam":
        core = (transforms.adam if ours else optax.adam)(lr, g("b1"), g("b2"), g("eps"))
    else:
        core = (transforms.adamw if ours else optax.adamw)(
            lr, g("b1"), g("b2"), g("eps"), weight_decay=g("weight_decay"), mask=decay_mask
        )
    parts.append(core)
    return optax.chain(*parts)


__all__ = [
    "NAMES",
    "SCHEDULES",
    "decay_mask",
    "default_optimizer_config",
    "make_optimizer",
    "schedule_fn",
    "validate_optimizer_config",
]
