"""Weight and bias initialization schemes of the notes.

Weight initializers have the ``jax.nn.initializers`` signature plus a scale:
``init(key, shape, dtype=float32, scale=1.0) -> Array``; ``scale`` multiplies
the weights (so their variance is ``scale²·var``) and may be a traced value.
Fans follow flax's dense/conv layout: ``shape = (..., fan_in_axis, fan_out_axis)``
with any leading receptive-field axes multiplying both fans.

| name            | distribution                      | variance               |
| --------------- | --------------------------------- | ---------------------- |
| xavier_normal   | N(0, var)                         | 2/(fan_in + fan_out)   |
| xavier_uniform  | U(−a, a), a = √(6/(fan_in+fan_out)) | 2/(fan_in + fan_out) |
| he_normal       | N(0, var)                         | 2/fan_in               |
| he_uniform      | U(−a, a), a = √(6/fan_in)          | 2/fan_in               |
| lecun_normal    | N(0, var)                         | 1/fan_in               |
| lecun_uniform   | U(−a, a), a = √(3/fan_in)          | 1/fan_in               |
| normal          | N(0, 1) (elbows −b/w are Cauchy)  | 1                      |

Bias policies (``bias_init(name, fan_in, fan_out)`` -> flax initializer):
"xavier_fan_in_plus_one" (the bias is an extra input of weight 1: Xavier normal
with fan-in d+1, variance 2/(d + 1 + fan_out)), "zeros", "constant_0.01",
"small_random" (N(0, 0.01²)), and "normal" (N(0, 1), with the "normal" weights
the notes' Cauchy-elbow setting).
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from dlnotes.errors import ConfigError

Initializer = Callable[..., jax.Array]


def fans(shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a kernel of shape ``(..., in, out)``; a 1-D shape has fan_in = fan_out = n."""
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _normal(key, shape, dtype, std):
    return std * jax.random.normal(key, shape, dtype)


def _uniform(key, shape, dtype, limit):
    return limit * jax.random.uniform(key, shape, dtype, minval=-1.0, maxval=1.0)


def xavier_normal(key, shape, dtype=jnp.float32, scale=1.0):
    """Glorot normal: ``N(0, 2/(fan_in + fan_out))`` times ``scale``."""
    fi, fo = fans(shape)
    return scale * _normal(key, shape, dtype, math.sqrt(2.0 / (fi + fo)))


def xavier_uniform(key, shape, dtype=jnp.float32, scale=1.0):
    """Glorot uniform: ``U(−a, a)``, ``a = √(6/(fan_in + fan_out))`` (var 2/(fan_in+fan_out)), times ``scale``."""
    fi, fo = fans(shape)
    return scale * _uniform(key, shape, dtype, math.sqrt(6.0 / (fi + fo)))


def he_normal(key, shape, dtype=jnp.float32, scale=1.0):
    """He/Kaiming normal: ``N(0, 2/fan_in)`` times ``scale``."""
    fi, _ = fans(shape)
    return scale * _normal(key, shape, dtype, math.sqrt(2.0 / fi))


def he_uniform(key, shape, dtype=jnp.float32, scale=1.0):
    """He/Kaiming uniform: ``U(−a, a)``, ``a = √(6/fan_in)`` (var 2/fan_in), times ``scale``."""
    fi, _ = fans(shape)
    return scale * _uniform(key, shape, dtype, math.sqrt(6.0 / fi))


def lecun_normal(key, shape, dtype=jnp.float32, scale=1.0):
    """LeCun normal: ``N(0, 1/fan_in)`` times ``scale``."""
    fi, _ = fans(shape)
    return scale * _normal(key, shape, dtype, math.sqrt(1.0 / fi))


def lecun_uniform(key, shape, dtype=jnp.float32, scale=1.0):
    """LeCun uniform: ``U(−a, a)``, ``a = √(3/fan_in)`` (var 1/fan_in), times ``scale``."""
    fi, _ = fans(shape)
    return scale * _uniform(key, shape, dtype, math.sqrt(3.0 / fi))


def normal(key, shape, dtype=jnp.float32, scale=1.0):
    """Plain ``N(0, 1)`` times ``scale`` (with N(0,1) biases the elbows −b/w are Cauchy)."""
    return scale * jax.random.normal(key, shape, dtype)


WEIGHT_INITS: dict[str, Initializer] = {
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "glorot_normal": xavier_normal,
    "glorot_uniform": xavier_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "kaiming_normal": he_normal,
    "kaiming_uniform": he_uniform,
    "lecun_normal": lecun_normal,
    "lecun_uniform": lecun_uniform,
    "normal": normal,
}

# expected weight variance (before scale²) per scheme, for tests and reports
WEIGHT_VARIANCE: dict[str, Callable[[int, int], float]] = {
    "xavier_normal": lambda fi, fo: 2.0 / (fi + fo),
    "xavier_uniform": lambda fi, fo: 2.0 / (fi + fo),
    "he_normal": lambda fi, fo: 2.0 / fi,
    "he_uniform": lambda fi, fo: 2.0 / fi,
    "lecun_normal": lambda fi, fo: 1.0 / fi,
    "lecun_uniform": lambda fi, fo: 1.0 / fi,
    "normal": lambda fi, fo: 1.0,
}
for _alias, _name in (("glorot_normal", "xavier_normal"), ("glorot_uniform", "xavier_uniform"),
                      ("kaiming_normal", "he_normal"), ("kaiming_uniform", "he_uniform")):
    WEIGHT_VARIANCE[_alias] = WEIGHT_VARIANCE[_name]


def weight_init(name: str, scale=1.0) -> Initializer:
    """The weight initializer called ``name`` as a flax initializer ``(key, shape, dtype)``.

    ``scale`` (float or traced scalar) multiplies the weights. Unknown name:
    ``ConfigError("model.weight_init", ...)``.
    """
    if name not in WEIGHT_INITS:
        raise ConfigError("model.weight_init", f"unknown weight init {name!r}; choose from {sorted(WEIGHT_INITS)}")
    fn = WEIGHT_INITS[name]

    def init(key, shape, dtype=jnp.float32):
        return fn(key, shape, dtype, scale)

    return init


# ---------------------------------------------------------------------------
# biases

SMALL_RANDOM_STD = 0.01


def bias_xavier_fan_in_plus_one(key, shape, dtype=jnp.float32, *, fan_in: int, fan_out: int | None = None):
    """The bias as one more input of a Xavier-normal layer: ``N(0, 2/(fan_in + 1 + fan_out))``."""
    fo = shape[-1] if fan_out is None else fan_out
    return _normal(key, shape, dtype, math.sqrt(2.0 / (fan_in + 1 + fo)))


def bias_zeros(key, shape, dtype=jnp.float32):
    """All zeros."""
    del key
    return jnp.zeros(shape, dtype)


def bias_constant(value: float):
    """All equal to ``value`` (the notes' 0.01 keeps ReLUs initially active)."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)

    return init


def bias_small_random(key, shape, dtype=jnp.float32):
    """``N(0, 0.01²)``."""
    return _normal(key, shape, dtype, SMALL_RANDOM_STD)


def bias_normal(key, shape, dtype=jnp.float32):
    """``N(0, 1)``."""
    return jax.random.normal(key, shape, dtype)


BIAS_INITS = ("xavier_fan_in_plus_one", "zeros", "constant_0.01", "small_random", "normal")


def bias_init(name: str, fan_in: int | None = None, fan_out: int | None = None) -> Initializer:
    """The bias policy ``name`` as a flax initializer ``(key, shape, dtype)``.

    "xavier_fan_in_plus_one" needs the layer's ``fan_in`` (d); ``fan_out`` defaults
    to the bias length. Unknown name: ``ConfigError("model.bias_init", ...)``.
    """
    if name == "xavier_fan_in_plus_one":
        if fan_in is None:
            raise ValueError("bias_init('xavier_fan_in_plus_one') needs the layer's fan_in")

        def init(key, shape, dtype=jnp.float32):
            return bias_xavier_fan_in_plus_one(key, shape, dtype, fan_in=fan_in, fan_out=fan_out)

        return init
    if name == "zeros":
        return bias_zeros
    if name == "constant_0.01":
        return bias_constant(0.01)
    if name == "small_random":
        return bias_small_random
    if name == "normal":
        return bias_normal
    raise ConfigError("model.bias_init", f"unknown bias init {name!r}; choose from {list(BIAS_INITS)}")


def check_names(weight: str, bias: str) -> None:
    """Raise ``ConfigError`` for an unknown weight or bias init name (before building anything)."""
    weight_init(weight)
    bias_init(bias, fan_in=1)
