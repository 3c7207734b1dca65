"""Optimizers: from-scratch transforms in the notes' form, and the config -> optax factory."""
from dlnotes.optim.factory import (
    NAMES,
    SCHEDULES,
    decay_mask,
    default_optimizer_config,
    make_optimizer,
    schedule_fn,
    validate_optimizer_config,
)
from dlnotes.optim.transforms import adam, adamw, gd, heavy_ball, momentum_as_ema, nesterov

__all__ = [
    "NAMES",
    "SCHEDULES",
    "adam",
    "adamw",
    "decay_mask",
    "default_optimizer_config",
    "gd",
    "heavy_ball",
    "make_optimizer",
    "momentum_as_ema",
    "nesterov",
    "schedule_fn",
    "validate_optimizer_config",
]
