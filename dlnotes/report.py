"""Run experiments and write ``report.md``: each claim's number, threshold, pass/fail, figure."""
from __future__ import annotations

import json
import os
import time
import traceback

from dlnotes.experiments import base


def run_experiments(workdir: str, *, only=(), profile: str = "fast", log=print) -> list[base.Claim]:
    """Run the experiments covering ``only`` (all if empty); return their claims."""
    os.makedirs(workdir, exist_ok=True)
    only = [c.strip().upper() for c in only if c.strip()]
    names = base.experiments_for(only)
    results, timings = [], {}
    for name in names:
        t0 = time.time()
        log(f"[{name}] running ({profile})")
        try:
            config = base.load_config(name, profile)
            claims = base.module(name).run(config, os.path.join(workdir, name))
        except Exception as e:  # noqa: BLE001 — one broken experiment must not hide the others
            log(f"[{name}] FAILED: {type(e).__name__}: {e}")
            traceback.print_exc()
            claims = [base.Claim(cid, "(experiment raised)", f"{type(e).__name__}: {e}", "-", False)
                      for cid in base.EXPERIMENTS[name]]
        timings[name] = time.time() - t0
        for c in claims:
            if not only or c.id in only:
                results.append(c)
                log(f"  {c.id}: {'pass' if c.passed else 'FAIL'}  {c.measured}  (threshold {c.threshold})")
    write_report(workdir, results, profile=profile, timings=timings)
    return results


def _sort_key(c):
    return int(c.id[1:]) if c.id[1:].isdigit() else 10**6


def write_report(workdir: str, claims, *, profile: str, timings: dict) -> str:
    claims = sorted(claims, key=_sort_key)
    n_pass = sum(c.passed for c in claims)
    lines = [f"# dlnotes report ({profile} profile)", "",
             f"{n_pass}/{len(claims)} claims pass. Experiments: " +
             ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()), "",
             "| claim | statement | measured | threshold | result | figure |",
             "| --- | --- | --- | --- | --- | --- |"]
    for c in claims:
        fig = f"[{os.path.basename(c.figure)}]({os.path.relpath(c.figure, workdir)})" if c.figure else ""
        cells = [c.id, c.statement, c.measured, c.threshold, "pass" if c.passed else "**FAIL**", fig]
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
