"""Convert a weight file to another format, checking every layer and shape against a spec first.

SRC and DST may be Keras 1/2 .h5, Keras 3 .weights.h5, .safetensors or PyTorch .pt/.pth;
SRC may also be a Keras 3 model archive (.keras), whose weights are read.
DST's name picks its format. Layouts (conv HWIO <-> OIHW, dense (in, out) <-> (out, in),
fc1's flatten order) are mapped with the spec's plan, so the spec must be the network the
file belongs to (default vgg16; give a spec with include_top: false for a notop file).
A file that does not fit is refused with the layer and both shapes, and nothing is written.
A file whose layer names are none of the spec's (saved from a hand-written Keras model:
conv2d_1 ... dense_3) is read by order, as Keras' load_weights does; a note on stderr pairs
its layers with the spec's. Every array is checked before any is read; .safetensors and .pt
are then written array by array (each read, written and dropped), so memory holds about one
array, not the file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Iterable

from vggspec.errors import WeightsError
from vggspec.planner.layers import Conv2D
from vggspec.planner.lower import Plan, lower_to_plan
from vggspec.spec.load import load_spec
from vggspec.spec.model import PREPROCESSING_MODES
from vggspec.weights.bundle import StoredArray, StoredBundle, WeightBundle
from vggspec.weights.canonical import swap_input_channels
from vggspec.weights.formats import (
    DESCRIPTIONS,
    KERAS_ARCHIVE,
    detect_format,
    format_for_name,
    write_bundle,
    written_format,
)

MAKE_KERAS_ARCHIVE = "vggspec build SPEC --backend keras --out FILE.keras --weights WEIGHTS"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC", help="the weight file to read")
    parser.add_argument("destination", metavar="DST", help="the weight file to write (its name picks the format)")
    parser.add_argument(
        "--spec",
        default="vgg16",
        metavar="SPEC",
        help="the network the weights belong to: a spec file or shipped name (default: vgg16)",
    )
    parser.add_argument(
        "--keras-version",
        type=int,
        choices=(1, 2),
        default=2,
        help="layout of a DST ending in .h5/.hdf5: Keras 1 or Keras 2 (default: 2)",
    )
    parser.add_argument(
        "--swap-rgb-bgr", action="store_true", help="reverse the input channels of the first convolution (RGB <-> BGR)"
    )
    parser.add_argument(
        "--preprocessing",
        choices=PREPROCESSING_MODES,
        help="the preprocessing the weights expect, written into DST (default: what SRC says, if it says)",
    )


def _swapped(stored: StoredBundle, plan: Plan) -> StoredBundle:
    """``stored`` with the first convolution's input channels reversed (that layer read now: a few KB)."""
    first = next((layer.name for layer in plan.layers if isinstance(layer, Conv2D)), "")
    read = WeightBundle(
        {first: {name: array.read() for name, array in stored.layers[first].items()}} if first in stored.layers else {},
        stored.source,
    )
    swapped = swap_input_channels(read, plan)  # refuses a plan without a convolution
    layers = dict(stored.layers)
    layers[first] = {name: StoredArray.of(array) for name, array in swapped.layers[first].items()}
    return StoredBundle(layers, stored.source)


def _output_format(destination: Path, keras_version: int) -> str:
    """The format DST's name picks, an unknown name refused before any work; a .keras name (a model archive,
    not a weight file) with the command that makes one."""
    try:
        return written_format(destination, keras_version)
    except WeightsError as error:
        if format_for_name(destination) != KERAS_ARCHIVE:
            raise
        raise WeightsError(f"{error}; make one with {MAKE_KERAS_ARCHIVE}") from None


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from vggspec.building import open_checked_bundle
    from vggspec.fileio import check_destination
    from vggspec.weights.resolve import copied_meta

    started = time.perf_counter()
    source, destination = Path(args.source), Path(args.destination)
    output_format = _output_format(destination, args.keras_version)
    check_destination(destination, "destination", error=WeightsError)  # before anything is read
    plan = lower_to_plan(load_spec(args.spec))
    input_format = detect_format(source)

    def progress(items: Iterable) -> Iterable:
        return tqdm(items, desc=f"writing {destination.name}", unit="layer", file=sys.stderr, leave=False)

    with open_checked_bundle(plan, source) as (stored, note):  # every array checked, none read yet
        if note:  # a hand-written model's file, read by order: how its layers were paired
            print(f"note: {note}", file=sys.stderr)
        if args.swap_rgb_bgr:
            stored = _swapped(stored, plan)
        meta = copied_meta(plan, source, args.preprocessing, keep_preprocessing=not args.swap_rgb_bgr)
        write_bundle(destination, stored, plan, keras_version=args.keras_version, progress=progress, meta=meta)
    parameters = sum(array.size for weights in stored.layers.values() for array in weights.values())
    swapped = ", input channels reversed (RGB <-> BGR)" if args.swap_rgb_bgr else ""
    print(
        f"{destination}: {DESCRIPTIONS[output_format]} from {source} ({DESCRIPTIONS[input_format]}), "
        f"{len(stored.layers)} layers, {parameters:,} parameters{swapped}, "
        f"preprocessing {meta.preprocessing or 'not known'}, "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0
