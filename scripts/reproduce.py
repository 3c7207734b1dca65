"""Run the experiments of CLAIMS.md and write DIR/report.md.

    python scripts/reproduce.py --workdir=results                  # every claim, fast profile
    python scripts/reproduce.py --workdir=results --only=C1,C3 --profile=full
    python scripts/reproduce.py --workdir=results --jobs=2          # experiments in 2 processes

Exit status 1 if a claim's verdict is ``fails`` (``differs`` is a measured result, not an error).
"""
import sys

from absl import flags

from dlnotes import cli

flags.DEFINE_string("workdir", "results", "Where report.md, report.json and the figures go.")
flags.DEFINE_list("only", [], "Claim IDs to check, e.g. C1,C3 (default: all).")
flags.DEFINE_enum("profile", "fast", ["fast", "full"], "fast = the CI profile (fewer seeds and steps).")
flags.DEFINE_integer("jobs", 1, "Experiments run in this many processes at once (e.g. one per core).")
FLAGS = flags.FLAGS


def main(argv):
    from dlnotes.errors import ConfigError
    from dlnotes.experiments import base
    from dlnotes.report import run_experiments, summary

    known = {c for ids in base.EXPERIMENTS.values() for c in ids}
    unknown = [c for c in FLAGS.only if c.strip().upper() not in known]
    if unknown:
        raise ConfigError("--only", f"unknown claim(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if FLAGS.jobs < 1:
        raise ConfigError("--jobs", "must be ≥ 1")
    claims = run_experiments(FLAGS.workdir, only=FLAGS.only, profile=FLAGS.profile, jobs=FLAGS.jobs)
    failed = [c.id for c in claims if c.verdict == "fails"]
    print(f"{len(claims)} claims: {summary(claims)} -> {FLAGS.workdir}/report.md")
    if failed:
        print("failed: " + ", ".join(failed))
        sys.exit(1)


if __name__ == "__main__":
    cli.run(main)
