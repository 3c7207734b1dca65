"""Work directories: config.json, metrics.jsonl, figures, checkpoints/.

Nothing already written is lost: a finished workdir is not overwritten without
``overwrite``; resuming with a different config is refused, naming the keys
that differ. One workdir, one run: :func:`prepare` takes an exclusive ``flock``
on ``DIR/.lock`` for the life of the run (the kernel drops it when the process
dies, SIGKILL included, so nothing stale is left behind); a second run on the
same workdir is refused in one line naming the holder.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time

from dlnotes.errors import ConfigError

DONE = "DONE"
LOCK = ".lock"
# Set by a launcher that holds the lock (``scripts/sweep.py --processes=N``) for the processes it starts.
HELD_ENV = "DLNOTES_WORKDIR_LOCK_HELD"
_held: dict[str, int] = {}   # absolute workdir -> fd holding its lock (this process)


def lock(workdir: str) -> None:
    """Hold ``workdir`` for this process (idempotent); ConfigError if another run holds it."""
    path = os.path.abspath(workdir)
    if path in _held or os.environ.get(HELD_ENV) == path:
        return
    fd = os.open(os.path.join(path, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 500, 0).decode(errors="replace").strip() or "holder unknown"
        os.close(fd)
        raise ConfigError(workdir, f"in use by another run ({holder}); wait for it to finish or use another "
                                   "--workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
              .encode(), 0)
    _held[path] = fd


def release(workdir: str) -> None:
    """Let go of ``workdir`` (the lock file stays; only the flock matters)."""
    fd = _held.pop(os.path.abspath(workdir), None)
    if fd is not None:
        os.close(fd)


def hand_to_children(workdir: str) -> None:
    """Processes started from here (with this environment) run under this process's lock."""
    os.environ[HELD_ENV] = os.path.abspath(workdir)


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


def prepare(workdir: str, config, *, overwrite: bool = False, kind: str = "train", hold: bool = True) -> bool:
    """Make ``workdir`` ready and hold it (``hold``; see :func:`lock`). Returns True when resuming.

    Raises ConfigError for an unwritable workdir, one held by another run, a finished run
    (without ``overwrite``) or a config differing from the saved one.
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
    if hold:
        lock(workdir)
    cfg = config_to_dict(config)
    cfg_path = os.path.join(workdir, "config.json")
    done = os.path.exists(os.path.join(workdir, DONE))
    if overwrite:
        for name in os.listdir(workdir):
            if name == LOCK:
                continue
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
