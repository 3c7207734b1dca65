"""Shared plumbing of the absl scripts: flags, one-line errors, exit codes."""
from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from dlnotes.errors import ConfigError


def define_config_flags():
    """``--config`` (an ml_collections config file, ``path.py[:profile]``) and ``--workdir``."""
    config_flags.DEFINE_config_file("config", None, "Experiment config file, e.g. configs/lr_stability.py:fast",
                                    lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory for config.json, metrics, figures and checkpoints.")
    flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
    flags.DEFINE_bool("progress", True, "Show a progress bar.")


def fail(key: str, message: str) -> None:
    print(f"error: {key}: {message}", file=sys.stderr)
    sys.exit(2)


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        fail("flags", msg)
    except ConfigError as e:
        fail(e.key, e.message)
    except (FileNotFoundError, OSError) as e:
        fail(getattr(e, "filename", None) or "--config", e.strerror or str(e))
    except (KeyError, AttributeError, TypeError, ValueError) as e:
        fail("--config", str(e).strip("'\"").splitlines()[0])


def run(main: Callable[[list[str]], None]) -> None:
    """``app.run`` with bad input reported as one line and exit status 2."""

    def wrapped(argv):
        logging.set_verbosity(logging.WARNING)  # hide backend-probing INFO lines
        try:
            main(argv)
        except ConfigError as e:
            fail(e.key, e.message)

    app.run(wrapped, flags_parser=_parse_flags)
