"""Benchmarks that survive a shared machine: interleaved runs, median per-pair ratios, load, results on disk.

Every benchmark times ours and each baseline *alternately* (A B A B …, the order flipped every
round so drift hits both), takes the ratio within each round (a pair run back to back sees the
same machine), and reports the median of those ratios with its spread. The load average is read
at the start and the end, but on a 2-core machine a benchmark's own two threads put it near 2, so
the verdict on noise is taken from what *other* processes used during the rounds: the machine's
busy CPU time (``/proc/stat``) minus this process's own (``os.times``, children included). A result
during which others used more than a quarter of a core on average is labelled ``noisy`` and is not a
result to quote (where ``/proc/stat`` cannot be read: a load average above half a core per core at
the start). ``write_result`` saves numbers + machine to ``benchmarks/results/<name>.json``.

    from harness import compare, write_result
    cmp = compare({"ours": run_ours, "torch eager": run_torch}, repeats=5)   # each fn: one timed run -> seconds
    write_result("cnn", {"comparison": cmp, ...})
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from typing import Callable

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def load() -> float:
    """1-minute load average."""
    return os.getloadavg()[0]


def cores() -> int:
    return os.cpu_count() or 1


def busy_cpu_s() -> float | None:
    """Seconds of CPU time the whole machine has spent busy (all cores; ``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)          # idle + iowait
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


OTHERS_MAX_CORES = 0.25


def others_cores_since(start: tuple) -> float | None:
    """Cores other processes kept busy on average since ``start = others_start()`` (None without /proc/stat)."""
    busy0, own0, wall0 = start
    busy1 = busy_cpu_s()
    if busy0 is None or busy1 is None:
        return None
    return max(0.0, ((busy1 - busy0) - (own_cpu_s() - own0)) / (time.perf_counter() - wall0))


def others_start() -> tuple:
    return busy_cpu_s(), own_cpu_s(), time.perf_counter()


def noisy(load_avg: float) -> bool:
    """A load above half a core per core: the measurement is not quotable."""
    return load_avg > 0.5 * cores()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "torch_geometric", "gensim", "sklearn"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception:  # noqa: BLE001 — a missing baseline is reported as absent
            pass
    return out


def machine() -> dict:
    info = {"cpu": cpu_model(), "cores": cores(), "platform": platform.platform(), "versions": versions()}
    try:
        import jax
        info["jax_devices"] = [str(d) for d in jax.devices()]
    except Exception:  # noqa: BLE001
        pass
    return info


def child_json(script: str, args: list[str], *, env: dict | None = None, timeout: int = 900) -> dict:
    """Run ``python script *args`` in a fresh process (JAX on the CPU, plus ``env``) and return the last
    line of its stdout that is a JSON object; a failed child raises with its last stderr line."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, os.path.abspath(script), *args], capture_output=True, text=True,
                       timeout=timeout, env=dict(os.environ, JAX_PLATFORMS="cpu", **(env or {})))
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode or not lines:
        raise RuntimeError(f"{os.path.basename(script)} {' '.join(args)} failed: "
                           f"{p.stderr.strip().splitlines()[-1:]}")
    return json.loads(lines[-1])


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes (``fn`` must block until its work is done)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def engine_timer(runner, hp):
    """(one timed run of ``runner`` with a fresh seed key -> seconds, first call incl. compile in s)."""
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(runner.run(hp, jax.random.key(10**6)).state.params)
    first = time.perf_counter() - t0
    seed = iter(range(10**6))

    def run_once():
        t0 = time.perf_counter()
        jax.block_until_ready(runner.run(hp, jax.random.key(next(seed))).state.params)
        return time.perf_counter() - t0
    return run_once, first


def compare(fns: dict[str, Callable[[], float]], *, repeats: int = 5, reference: str | None = None,
            log=print) -> dict:
    """Run each ``fns[name]()`` (one timed run, returns seconds) ``repeats`` times, interleaved.

    Returns per-name times, and for each other name the median (min, max) of the per-round ratios
    time(other) / time(reference) — how many times faster the reference (ours, the first by default) is.
    """
    names = list(fns)
    reference = reference or names[0]
    load_start = load()
    start = others_start()
    times = {n: [] for n in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            times[n].append(float(fns[n]()))
        log(f"  round {r + 1}/{repeats}: " + ", ".join(f"{n} {times[n][-1]:.4g} s" for n in names)
            + f" (load {load():.2f})")
    load_end = load()
    others = others_cores_since(start)
    ratios = {}
    for n in names:
        if n == reference:
            continue
        per = [b / a for a, b in zip(times[reference], times[n])]
        ratios[n] = {"median": statistics.median(per), "min": min(per), "max": max(per), "per_round": per}
    out = {"reference": reference, "repeats": repeats, "times_s": times,
           "median_s": {n: statistics.median(v) for n, v in times.items()},
           "ratio_vs_reference": ratios, "load_start": load_start, "load_end": load_end,
           "others_cores": others,
           "noisy": noisy(load_start) if others is None else others > OTHERS_MAX_CORES}
    for n, r in ratios.items():
        log(f"{reference} vs {n}: {r['median']:.2f}× faster (median of {repeats} interleaved rounds; "
            f"range {r['min']:.2f}–{r['max']:.2f}); other processes used {others if others is not None else float('nan'):.2f} "
            f"cores on average, load {load_start:.1f}→{load_end:.1f}{'  [NOISY]' if out['noisy'] else ''}")
    return out


def write_result(name: str, payload: dict) -> str:
    """``benchmarks/results/<name>.json`` with the machine it ran on and the time it was taken."""
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    doc = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(), **payload}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, default=float)
    print(f"-> {path}")
    return path
