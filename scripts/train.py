"""Train one run of an experiment's task.

    python scripts/train.py --config=configs/lr_stability.py:fast --workdir=/tmp/run \
        --config.optimizer.learning_rate=1.5

Writes config.json, metrics.jsonl, learning_curve.png, summary.json and
checkpoints/ to --workdir. Rerunning the same command after a kill resumes from
the last checkpoint and ends bit-identical to an uninterrupted run.
"""
from absl import flags

from dlnotes import cli

cli.define_config_flags()
flags.DEFINE_integer("chunk_steps", 0, "Steps per compiled chunk (progress/checkpoint interval); 0 = config's.")
FLAGS = flags.FLAGS


def main(argv):
    from dlnotes.errors import ConfigError
    from dlnotes.jobs import train_job

    if FLAGS.config is None:
        raise ConfigError("--config", "required (e.g. --config=configs/lr_stability.py:fast)")
    _, summary = train_job(FLAGS.config, FLAGS.workdir, overwrite=FLAGS.overwrite, progress=FLAGS.progress,
                           chunk_steps=FLAGS.chunk_steps or None)
    print(" ".join(f"{k}={v}" for k, v in summary.items()))


if __name__ == "__main__":
    cli.run(main)
