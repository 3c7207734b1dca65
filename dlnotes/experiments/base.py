"""What every experiment shares: claim results and the registry.

An experiment is one module ``dlnotes/experiments/<name>.py`` with

    CLAIMS = ("C1", ...)                         # the claims it checks
    build_task(config) -> dlnotes.train.Task     # what scripts/train.py and sweep.py train
    run(config, workdir) -> list[Claim]          # the experiment: sweeps, figures, checks

and one config ``configs/<name>.py`` with ``get_config(arg)`` (arg ``fast`` = CI profile).
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
from typing import Any

# Experiment name -> claims, in report order. Add a line here when you add an experiment;
# entries whose module does not exist yet are skipped (see ``available``).
_ALL: dict[str, tuple[str, ...]] = {
    "lr_stability": ("C1", "C2", "C5"),
    "sgd_noise": ("C3", "C4"),
    "relu_elbows": ("C6", "C7", "C8"),
    "ridge": ("C9", "C10", "C11", "C12", "C13"),
    "init_variance": ("C14", "C15"),
    "standardization": ("C26",),
    "momentum": ("C16", "C17"),
    "adaptive": ("C18",),
    "conv_geometry": ("C19", "C20", "C21", "C22"),
    "digits_cnn": ("C23",),
    "normalization": ("C24", "C25", "C27"),
    "depth_residual": ("C29", "C30"),
    "regularization": ("C31", "C32", "C33"),
}


def available() -> dict[str, tuple[str, ...]]:
    """The registered experiments whose module exists."""
    return {n: ids for n, ids in _ALL.items()
            if importlib.util.find_spec(f"dlnotes.experiments.{n}") is not None}


EXPERIMENTS = available()

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


@dataclasses.dataclass
class Claim:
    """One claim's check: the measured number against its threshold."""

    id: str
    statement: str
    measured: str        # the number(s), formatted
    threshold: str       # what it must satisfy
    passed: bool
    figure: str | None = None
    details: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def claim(id: str, statement: str, measured, threshold: str, passed, figure=None, details="") -> Claim:
    if not isinstance(measured, str):
        measured = f"{float(measured):.4g}"
    return Claim(id, statement, measured, threshold, bool(passed), figure, details)


def module(name: str):
    """The experiment module ``dlnotes.experiments.<name>``."""
    return importlib.import_module(f"dlnotes.experiments.{name}")


def load_config(name: str, profile: str = "fast"):
    """``configs/<name>.py``'s ``get_config(profile)``."""
    path = os.path.join(CONFIG_DIR, f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"dlnotes_config_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_config(profile)


def experiments_for(claim_ids) -> list[str]:
    """Experiments needed to check ``claim_ids`` (all if empty)."""
    if not claim_ids:
        return list(EXPERIMENTS)
    wanted = set(claim_ids)
    return [n for n, ids in EXPERIMENTS.items() if wanted & set(ids)]
