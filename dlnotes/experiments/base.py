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

# Experiment name -> claims, in report order. Add a line here when you add an experiment. Every
# entry must import: a missing module is an error, never a claim silently dropped from the report.
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
    "pca_autoencoder": ("C47",),
    "kmeans": ("C48",),
    "self_supervised": ("C49", "C50"),
    "filters_rnn": ("C38",),
    "lstm_memory": ("C39", "C40"),
    "seq2seq_attention": ("C41",),
    "word2vec": ("C46",),
    "gnn": ("C34", "C35", "C36", "C37"),
    "transformer": ("C42", "C43", "C44", "C45"),
}

EXPERIMENTS: dict[str, tuple[str, ...]] = dict(_ALL)

# The slowest full profiles (measured, 2026-12-01), longest first: ``reproduce.py --jobs=N`` starts
# these before the rest, so the longest is not the last one started (the report's order is unchanged).
LONGEST_FIRST = ("transformer", "seq2seq_attention", "gnn", "lstm_memory", "depth_residual")

# Experiments whose modules exist and train (scripts/train.py, sweep.py) but whose claims are not in the
# report or the tests yet (a fast-profile check still fails or takes too long). None today: C41 left it on
# 2026-12-01 once its protocol's batch was measured (configs/seq2seq_attention.py).
PENDING: dict[str, tuple[str, ...]] = {}

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


VERDICTS = ("reproduced", "differs", "fails")


@dataclasses.dataclass
class Claim:
    """One claim's check: the measured number against its threshold, and a verdict.

    verdict: ``reproduced`` (the notes' statement holds against CLAIMS.md's threshold), ``differs``
    (measured, it does not hold here; the finding that explains it passed its own check) or
    ``fails`` (a check failed: a defect). ``passed`` = not ``fails``.
    """

    id: str
    statement: str
    measured: str        # the number(s), formatted
    threshold: str       # what it must satisfy
    verdict: str
    figure: str | None = None
    details: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict != "fails"

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "passed": self.passed}


def verdict_of(passed: bool, notes_hold: bool | None = None) -> str:
    """``fails`` if a check failed; else ``reproduced`` unless the notes' statement was measured
    not to hold (``notes_hold=False``), then ``differs``."""
    if not passed:
        return "fails"
    return "differs" if notes_hold is False else "reproduced"


def claim(id: str, statement: str, measured, threshold: str, passed, figure=None, details="", *,
          notes_hold=None) -> Claim:
    """A claim's row.

    passed: every check of this claim held — the notes' statement against its threshold for an
      ordinary claim; for one whose notes' statement does not hold here, the checks of the finding
      that explains it (and any exact checks the claim also makes).
    notes_hold: ``None`` for an ordinary claim (its checks *are* the notes' statement); else whether
      the notes' statement, measured, held. ``False`` (with ``passed``) gives ``differs``.
    """
    if not isinstance(measured, str):
        measured = f"{float(measured):.4g}"
    return Claim(id, statement, measured, threshold, verdict_of(bool(passed), None if notes_hold is None
                                                                 else bool(notes_hold)), figure, details)


def module(name: str):
    """The experiment module ``dlnotes.experiments.<name>``."""
    return importlib.import_module(f"dlnotes.experiments.{name}")


def load_config(name: str, profile: str = "fast"):
    """``configs/<name>.py``'s ``get_config(profile)`` (``dlnotes/configs``, installed with the package)."""
    path = os.path.join(CONFIG_DIR, f"{name}.py")
    if not os.path.isfile(path):
        from dlnotes.errors import ConfigError
        raise ConfigError(path, f"no config for experiment {name!r} (known: {', '.join(EXPERIMENTS)})")
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
