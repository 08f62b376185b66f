"""Named intermediate outputs of a spec for images: each layer's shape and summary statistics.

LAYERS are plan layer names (vggspec summary SPEC lists them); a convolution's output is
taken after its activation (with batch norm, after the activation that follows it). Only
the layers up to the deepest one asked for are built and run. --out FILE.npz saves the
arrays under the names asked for, channels last (N, H, W, C) or (N, features), the plan's
layout whatever the backend, written atomically.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from vggspec.commands.predict import add_preprocessing_argument
from vggspec.strict_json import dumps

if TYPE_CHECKING:
    from vggspec.planner.lower import Plan
    from vggspec.spec.model import Spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "spec",
        metavar="SPEC",
        help="a spec file, a shipped name, or a run folder of vggspec finetune (its best weights)",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    parser.add_argument(
        "--layers",
        dest="outputs",  # the library's setting: an error about it is shown as --layers
        required=True,
        metavar="NAMES",
        help="comma-separated layer names, e.g. block1_conv1,block4_conv2",
    )
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="weights in any supported format, or a known name (vggspec weights list); a whole network's file "
        "serves a cut one (default: deterministic random weights, seed 0: shapes only mean something then)",
    )
    add_preprocessing_argument(parser)
    parser.add_argument(
        "--backend",
        help="keras, torch, onnx, numpy or another installed backend (default: keras, else torch, else onnx, "
        "else numpy)",
    )
    parser.add_argument("--out", metavar="FILE.npz", help="save the outputs as a .npz file (channels last)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from vggspec.errors import VggspecError
    from vggspec.features import feature_plan
    from vggspec.fileio import check_destination
    from vggspec.model_source import model_source
    from vggspec.planner.lower import lower_to_plan

    source = model_source(args.spec, args.weights, args.preprocessing, progress=not args.json)
    spec = source.spec
    names = [name.strip() for name in args.outputs.split(",") if name.strip()]
    whole = lower_to_plan(spec)
    plan, chosen = feature_plan(whole, names)
    if args.out is not None and not str(args.out).endswith(".npz"):
        raise VggspecError(f"out {args.out}: expected a file name ending in .npz, received another", setting="out")
    if args.out is not None:  # before the computing, not after it
        check_destination(args.out, "out")
    weights = None if source.weights is None else source.weights.path
    outputs = _layer_outputs(args.images, args.backend, weights, spec, whole, plan, chosen)
    if args.out is not None:
        _save(args.out, outputs.arrays)
    rows = _statistics(outputs)
    if args.json:
        about = {
            "spec": outputs.spec,
            "backend": outputs.backend,
            "weights": outputs.weights,
            "preprocessing": plan.preprocessing,
        }
        print(dumps({**about, "images": outputs.images, "layers": rows, "out": args.out}))
        return 0
    _print_table(outputs, rows, source.note)
    if args.out is not None:
        print(f"saved {', '.join(outputs.arrays)} to {args.out}")
    return 0


@dataclass(frozen=True)
class LayerOutputs:
    """The outputs asked for: name -> float32 array, channels last; ``chosen``: name -> the plan layer read."""

    spec: str
    backend: str
    weights: str  # where they came from, as the bundle says
    images: int
    chosen: dict[str, str]
    arrays: dict[str, Any]


def _layer_outputs(
    paths: list[str],
    backend_name: Optional[str],
    weights: Optional[Path],
    spec: Spec,
    whole: Plan,
    plan: Plan,
    chosen: dict[str, str],
) -> LayerOutputs:
    """Build ``plan`` (``whole``, the spec's plan, up to the deepest layer asked for), set its weights, run it
    on the images. A file of the whole network has the layers past the cut too: unnamed, unless they do not fit."""
    import numpy as np

    from vggspec.backends import get_backend
    from vggspec.building import backend_for_file, read_checked_bundle, read_model_file
    from vggspec.images import image_mode, load_images
    from vggspec.parity.inputs import random_bundle
    from vggspec.preprocessing import preprocess
    from vggspec.weights.bundle import WeightBundle

    height, width, channels = plan.input_shape
    image_mode(channels, f"{spec.source or spec.name}: input_shape {list(plan.input_shape)}")
    images = preprocess(load_images(paths, (height, width), channels), plan.preprocessing)
    backend = get_backend(backend_for_file(backend_name, weights))  # x.onnx alone: onnx
    model = read_model_file(backend, whole, weights) if weights else None  # a quantized .onnx, say
    if model is not None:
        source = f"{weights} (run as it is)"
    else:
        if weights:
            fitted, skipped = read_checked_bundle(plan, weights, whole=whole)
            for line in skipped:  # layers past the cut that do not fit the spec: never read, but said
                warnings.warn(f"skipped: {line}", UserWarning, stacklevel=2)
            bundle: WeightBundle = fitted
        else:
            bundle = random_bundle(plan, 0)
        model, source = backend.build(plan), bundle.source
        backend.set_weights(model, plan, bundle)
    everything = backend.activations(model, plan, images)
    arrays = {name: np.asarray(everything[layer], dtype=np.float32) for name, layer in chosen.items()}
    return LayerOutputs(spec.name, backend.name, source, len(images), chosen, arrays)


def _save(out: str, arrays: dict[str, Any]) -> None:
    import numpy as np

    from vggspec.fileio import atomic_path

    with atomic_path(out, suffix=".npz") as temporary, open(temporary, "wb") as file:
        np.savez(file, **arrays)


def _statistics(outputs: LayerOutputs) -> list[dict[str, Any]]:
    """Each layer's shape and statistics; a layer holding NaN or infinite values is counted and warned about."""
    import numpy as np

    rows = []
    for name, array in outputs.arrays.items():
        non_finite = int(array.size - np.count_nonzero(np.isfinite(array)))
        if non_finite:
            warnings.warn(
                f"{name}: {non_finite:,} of {array.size:,} values are NaN or infinite "
                "(the weights overflow float32 on these images)",
                UserWarning,
                stacklevel=2,
            )
        rows.append(
            {
                "layer": name,
                "from": outputs.chosen[name],
                "shape": list(array.shape),
                "mean": float(array.mean()),
                "std": float(array.std()),
                "min": float(array.min()),
                "max": float(array.max()),
                "zero_fraction": float(np.mean(array == 0)),
                "non_finite": non_finite,
            }
        )
    return rows


def _print_table(outputs: LayerOutputs, rows: list[dict[str, Any]], note: str) -> None:
    print(f"{outputs.spec} ({outputs.backend}), {outputs.images} image(s), weights: {outputs.weights}")
    print(note)
    width_name = max(len("layer"), *(len(row["layer"]) for row in rows))
    print(
        f"{'layer':<{width_name}}  {'shape (N, H, W, C)':<22} {'mean':>10} {'std':>10} {'min':>10} {'max':>10} "
        f"{'zeros':>6}"
    )
    for row in rows:
        shape = "(" + ", ".join(map(str, row["shape"])) + ")"
        print(
            f"{row['layer']:<{width_name}}  {shape:<22} {row['mean']:>10.4g} {row['std']:>10.4g} "
            f"{row['min']:>10.4g} {row['max']:>10.4g} {row['zero_fraction']:>6.1%}"
        )
