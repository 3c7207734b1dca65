"""Run experiments and write ``report.md``: each claim's number, threshold, verdict, figure.

Verdicts (CLAIMS.md): reproduced, differs (the notes' statement does not hold here; the finding
that explains it is checked), fails (a check failed).
"""
from __future__ import annotations

import json
import os
import time
import traceback

from dlnotes.experiments import base


def _run_one(name: str, workdir: str, profile: str):
    """One experiment -> (claims, seconds, error or None). Never raises."""
    t0 = time.time()
    try:
        config = base.load_config(name, profile)
        claims = base.module(name).run(config, os.path.join(workdir, name))
        err = None
    except Exception as e:  # noqa: BLE001 — one broken experiment must not hide the others
        traceback.print_exc()
        err = f"{type(e).__name__}: {e}"
        claims = [base.Claim(cid, "(experiment raised)", err, "-", "fails") for cid in base.EXPERIMENTS[name]]
    return claims, time.time() - t0, err


def _run_one_quiet(name: str, workdir: str, profile: str):
    os.environ["TQDM_DISABLE"] = "1"  # no interleaved progress bars from parallel workers
    return _run_one(name, workdir, profile)


def start_order(names):
    """The order parallel workers start experiments in: ``base.LONGEST_FIRST`` first (longest first, so
    the slowest is not the last one started), then the rest in registry order."""
    n = len(base.LONGEST_FIRST)
    return sorted(names, key=lambda x: base.LONGEST_FIRST.index(x) if x in base.LONGEST_FIRST else n)


def run_experiments(workdir: str, *, only=(), profile: str = "fast", jobs: int = 1, log=print) -> list[base.Claim]:
    """Run the experiments covering ``only`` (all if empty) — in ``jobs`` processes — and write the report."""
    os.makedirs(workdir, exist_ok=True)
    only = [c.strip().upper() for c in only if c.strip()]
    names = base.experiments_for(only)
    results, timings = [], {}

    def collect(name, out):
        claims, seconds, err = out
        timings[name] = seconds
        log(f"[{name}] {'FAILED: ' + err if err else 'done'} ({seconds:.0f} s)")
        for c in claims:
            if not only or c.id in only:
                results.append(c)
                log(f"  {c.id}: {c.verdict.upper() if c.verdict == 'fails' else c.verdict}  {c.measured}  "
                    f"(threshold {c.threshold})")

    if jobs > 1 and len(names) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp
        log(f"running {len(names)} experiments ({profile}) in {jobs} processes")
        with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_run_one_quiet, n, workdir, profile): n for n in start_order(names)}
            for f in cf.as_completed(futures):
                collect(futures[f], f.result())
    else:
        for name in names:
            log(f"[{name}] running ({profile})")
            collect(name, _run_one(name, workdir, profile))
    timings = {n: timings[n] for n in names}
    write_report(workdir, results, profile=profile, timings=timings)
    return results


VERDICT_CELL = {"reproduced": "reproduced", "differs": "*differs*", "fails": "**FAILS**"}


def summary(claims) -> str:
    """``"29 reproduced, 3 differs, 0 fails"``."""
    return ", ".join(f"{sum(c.verdict == v for c in claims)} {v}" for v in base.VERDICTS)


def _sort_key(c):
    return int(c.id[1:]) if c.id[1:].isdigit() else 10**6


def write_report(workdir: str, claims, *, profile: str, timings: dict) -> str:
    claims = sorted(claims, key=_sort_key)
    lines = [f"# dlnotes report ({profile} profile)", "",
             f"{len(claims)} claims: {summary(claims)}. Experiments: " +
             ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()), "",
             "Verdicts: **reproduced** — the notes' statement holds against CLAIMS.md's threshold; "
             "**differs** — measured, it does not hold at this scale (the row shows the number; the finding "
             "that explains it passed its own check); **FAILS** — a check failed, a defect.", "",
             *([f"Not in this report yet: {', '.join(c for ids in base.PENDING.values() for c in ids)} "
                f"({', '.join(base.PENDING)}: a check of their fast profile still fails; they train, but "
                "their claims are shown only once every check passes).", ""] if base.PENDING else []),
             "| claim | statement | measured | threshold | verdict | figure |",
             "| --- | --- | --- | --- | --- | --- |"]
    for c in claims:
        fig = f"[{os.path.basename(c.figure)}]({os.path.relpath(c.figure, workdir)})" if c.figure else ""
        cells = [c.id, c.statement, c.measured, c.threshold, VERDICT_CELL[c.verdict], fig]
        lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
    lines += ["", "## Details", ""]
    for c in claims:
        if c.details:
            lines.append(f"- **{c.id}**: {c.details}")
    path = os.path.join(workdir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(workdir, "report.json"), "w") as f:
        json.dump([c.as_dict() for c in claims], f, indent=2)
    return path
