"""Work directories: config.json, metrics.jsonl, figures, checkpoints/.

Nothing already written is lost: a finished workdir is not overwritten without
``overwrite``; resuming with a different config is refused, naming the keys
that differ.
"""
from __future__ import annotations

import json
import os
import shutil

from dlnotes.errors import ConfigError

DONE = "DONE"


def config_to_dict(config) -> dict:
    return json.loads(config.to_json_best_effort()) if hasattr(config, "to_json_best_effort") else dict(config)


def _flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def diff_keys(a: dict, b: dict) -> list[str]:
    fa, fb = dict(_flatten(a)), dict(_flatten(b))
    return sorted(k for k in set(fa) | set(fb) if fa.get(k, "<missing>") != fb.get(k, "<missing>"))


def prepare(workdir: str, config, *, overwrite: bool = False, kind: str = "train") -> bool:
    """Make ``workdir`` ready. Returns True when resuming an unfinished run.

    Raises ConfigError for an unwritable workdir, a finished run (without
    ``overwrite``) or a config differing from the saved one.
    """
    if not workdir:
        raise ConfigError("--workdir", "required")
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ConfigError(workdir, f"workdir not writable ({e.strerror})") from None
    cfg = config_to_dict(config)
    cfg_path = os.path.join(workdir, "config.json")
    done = os.path.exists(os.path.join(workdir, DONE))
    if overwrite:
        for name in os.listdir(workdir):
            p = os.path.join(workdir, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    elif done:
        raise ConfigError(workdir, f"holds a finished {kind}; pass --overwrite to replace it")
    elif os.path.exists(cfg_path):
        try:
            with open(cfg_path) as f:
                saved = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(cfg_path, f"unreadable ({e})") from None
        differ = diff_keys(saved.get("config", saved), cfg)
        if differ or saved.get("kind", kind) != kind:
            what = ", ".join(differ[:8]) + (" ..." if len(differ) > 8 else "") if differ else f"kind {saved.get('kind')}"
            raise ConfigError(workdir, f"holds a run with a different config ({what}); use another --workdir "
                                       "or --overwrite")
        return True
    tmp = cfg_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"kind": kind, "config": cfg}, f, indent=2)
    os.replace(tmp, cfg_path)
    return False


def mark_done(workdir: str) -> None:
    with open(os.path.join(workdir, DONE), "w") as f:
        f.write("finished\n")
