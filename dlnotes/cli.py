"""Shared plumbing of the absl scripts: flags, one-line errors, exit codes."""
from __future__ import annotations

import os
import re
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


def _config_arg(argv):
    for i, a in enumerate(argv):
        if a.startswith("--config="):
            return a.split("=", 1)[1]
        if a == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _overrides(argv):
    return [a[2:].split("=", 1)[0] for a in argv if a.startswith("--config.")]


def _parse_flags(argv):
    """Parse flags; any bad input becomes one ``error: <key>: <message>`` line, exit 2."""
    cfg = _config_arg(argv)
    if cfg is not None:
        path = cfg.split(":", 1)[0]
        if not os.path.isfile(path):
            fail(path, "no such config file")
    try:
        return flags.FLAGS(argv)
    except flags.UnrecognizedFlagError as e:
        name = getattr(e, "flagname", None) or str(e).split("'")[1] if "'" in str(e) else str(e)
        fail(name, "unknown flag or config key")
    except flags.Error as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        m = re.match(r"flag --([\w.]+)=[^:]*: (.*)", msg)
        if m:
            fail(m.group(1), m.group(2))
        fail("flags", msg)
    except ConfigError as e:
        fail(e.key, e.message)
    except (KeyError, AttributeError) as e:  # an override naming a key the config does not have
        missing = str(e).strip("'\"")
        key = next((o for o in _overrides(argv) if o.split(".")[-1] == missing or missing in o.split(".")),
                   f"config.{missing}")
        fail(key, "unknown config key")
    except (OSError, TypeError, ValueError) as e:
        fail("--config", str(e).strip("'\"").splitlines()[0])


def run(main: Callable[[list[str]], None]) -> None:
    """``app.run`` with bad input reported as one line and exit status 2."""

    from dlnotes.train.parallel import pin_from_env

    pin_from_env()

    def wrapped(argv):
        logging.set_verbosity(logging.WARNING)  # hide backend-probing INFO lines
        from dlnotes.compile_cache import enable

        enable()  # a rerun of the same program loads its compiled code instead of compiling it again
        try:
            main(argv)
        except ConfigError as e:
            fail(e.key, e.message)

    app.run(wrapped, flags_parser=_parse_flags)
