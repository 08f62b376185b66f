"""Prepare a data set as DIR/{train,val}/<class>/ folders plus DIR/manifest.json.

For cats-vs-dogs the default source is Microsoft's PetImages zip (824,887,076
bytes, downloaded once into $VGGSPEC_HOME/data, resumed if interrupted); Kaggle's
train.zip, a URL of either zip, or an extracted folder of either layout works
too. Unreadable images are dropped and listed. The split is stratified and set
by --seed. Running it again with the same arguments does nothing; an
interrupted run resumes."""

from __future__ import annotations

import argparse
from typing import Any

SHOWN_DROPPED = 5  # dropped files named on the printed line; manifest.json lists all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    datasets = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    cats = _data_set(
        datasets,
        "cats-vs-dogs",
        "Cats vs Dogs (Microsoft PetImages or Kaggle train.zip)",
        "Split Cats vs Dogs into DIR/{train,val}/{cat,dog}/ (stratified, deterministic) and write DIR/manifest.json.",
        seed="the seed of the split",
    )
    cats.add_argument(
        "--source", metavar="URL|ZIP|FOLDER", help="where the images come from (default: Microsoft's PetImages zip)"
    )
    cats.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        metavar="F",
        help="the fraction of each class put in val (default 0.2)",
    )
    shapes = _data_set(
        datasets,
        "shapes",
        "generated pictures, circles vs stripes (no download: a task small networks learn on a CPU)",
        "Write DIR/{train,val}/{circles,stripes}/*.jpg: one to three discs, or a band of stripes, in random colours "
        "and places; deterministic for --seed.",
        seed="the seed of the drawing",
    )
    shapes.add_argument("--size", type=int, default=64, help="the images' height and width in pixels (default 64)")
    shapes.add_argument("--train", type=int, default=200, help="training images per class (default 200)")
    shapes.add_argument("--val", type=int, default=60, help="validation images per class (default 60)")


def _data_set(datasets: Any, name: str, help_text: str, description: str, seed: str) -> argparse.ArgumentParser:
    """The sub-command of one data set, with what every data set takes: --dest and --seed."""
    parser: argparse.ArgumentParser = datasets.add_parser(name, help=help_text, description=description)
    parser.add_argument("--dest", required=True, metavar="DIR", help="the folder to create (new or empty)")
    parser.add_argument("--seed", type=int, default=0, help=f"{seed} (default 0)")
    return parser


def run(args: argparse.Namespace) -> int:
    if args.dataset == "shapes":
        return _shapes(args)
    from vggspec.data.cats_vs_dogs import prepare_cats_vs_dogs

    prepared = prepare_cats_vs_dogs(args.dest, args.source, val_fraction=args.val_fraction, seed=args.seed)
    manifest = prepared.manifest
    counts = manifest["counts"]
    totals = ", ".join(
        f"{split} {sum(per_class.values()):,} ("
        + ", ".join(f"{label} {count:,}" for label, count in per_class.items())
        + ")"
        for split, per_class in counts.items()
    )
    if prepared.already_complete:
        print(f"{prepared.dest}: already complete ({totals}); nothing to do")
        return 0
    dropped = manifest["dropped"]
    if dropped:
        shown = "; ".join(f"{entry['file']} ({entry['reason']})" for entry in dropped[:SHOWN_DROPPED])
        more = f"; and {len(dropped) - SHOWN_DROPPED:,} more" if len(dropped) > SHOWN_DROPPED else ""
        print(
            f"dropped {len(dropped):,} of {sum(manifest['found'].values()):,} files that are not readable "
            f"JPEGs (listed in manifest.json): {shown}{more}"
        )
    print(f"wrote {prepared.dest}: {totals}")
    return 0


def _shapes(args: argparse.Namespace) -> int:
    from vggspec.data.shapes import CLASSES, make_shapes

    made = make_shapes(args.dest, args.size, args.train, args.val, args.seed)
    per_split = ", ".join(
        f"{split} {count * len(CLASSES):,} ({', '.join(f'{name} {count:,}' for name in CLASSES)})"
        for split, count in (("train", made.train_per_class), ("val", made.val_per_class))
    )
    print(f"wrote {made.dest}: {per_split}, {made.size}×{made.size} JPEGs")
    return 0
