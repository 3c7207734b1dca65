"""Draw the augmentation gallery: each augmentation on two real digits and scikit-learn's two photos.

    python scripts/augment_gallery.py --out=/tmp/augment_gallery.png [--seed=0]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dlnotes.data.augment import draw_gallery  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="PNG path to write")
    parser.add_argument("--seed", type=int, default=0, help="which digits / random draws")
    args = parser.parse_args(argv)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        print(f"error: --out: directory {out_dir} does not exist", file=sys.stderr)
        return 2
    print(draw_gallery(args.out, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
