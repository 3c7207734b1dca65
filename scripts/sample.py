"""Generate text from a trained character language model (the latest checkpoint in --workdir).

    python scripts/train.py --config=configs/char_lm.py --workdir=/tmp/charlm
    python scripts/sample.py --workdir=/tmp/charlm --prompt="Return the " --num_chars=400 \
        --temperature=0.8 --top_k=10

Reads --workdir/config.json (the run's config) and checkpoints/; the vocabulary is rebuilt from the
same corpus. Generation reads and writes a key–value cache, one position per new character; past the
model's context it continues from the last context/2 characters.
"""
from absl import flags

from dlnotes import cli

flags.DEFINE_string("workdir", None, "A scripts/train.py workdir of a char_lm config.")
flags.DEFINE_string("prompt", "", "Text to continue (default: a newline).")
flags.DEFINE_integer("num_chars", 500, "Characters to generate.")
flags.DEFINE_float("temperature", 0.8, "Softmax temperature; 0 = greedy.")
flags.DEFINE_integer("top_k", 0, "Sample among the k most likely characters (0 = all).")
flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.DEFINE_integer("num_samples", 1, "Independent samples.")
FLAGS = flags.FLAGS


def main(argv):
    import jax

    from dlnotes.errors import check
    from dlnotes.experiments.transformer import load_char_lm
    from dlnotes.models.transformer import generate_long

    check(FLAGS.num_chars >= 1, "--num_chars", "must be ≥ 1")
    check(FLAGS.temperature >= 0, "--temperature", "must be ≥ 0")
    check(FLAGS.num_samples >= 1, "--num_samples", "must be ≥ 1")
    lm, params, model_state, vocab, step = load_char_lm(FLAGS.workdir)
    check(0 <= FLAGS.top_k <= vocab.size, "--top_k", f"must be in [0, {vocab.size}] (the vocabulary size)")
    prompt = FLAGS.prompt or ("\n" if "\n" in vocab.chars else vocab.chars[0])
    ids = vocab.encode(prompt)
    batch = jax.numpy.tile(ids[None, :], (FLAGS.num_samples, 1))
    out = generate_long(lm, params, model_state, batch, FLAGS.num_chars, jax.random.key(FLAGS.seed),
                        temperature=FLAGS.temperature, top_k=FLAGS.top_k)
    for i, row in enumerate(out):
        if FLAGS.num_samples > 1:
            print(f"--- sample {i} (checkpoint step {step})")
        print(vocab.decode(row))


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    cli.run(main)
