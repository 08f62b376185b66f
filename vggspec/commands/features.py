"""Named intermediate outputs of a spec for images: each layer's shape and summary statistics.

LAYERS are plan layer names (vggspec summary SPEC lists them); a convolution's output is
taken after its activation (with batch norm, after the activation that follows it). Only
the layers up to the deepest one asked for are built and run. --out FILE.npz saves the
arrays under the names asked for, channels last (N, H, W, C) or (N, features), the plan's
layout whatever the backend, written atomically.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="a spec file or a shipped name")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    parser.add_argument(
        "--layers", required=True, metavar="NAMES", help="comma-separated layer names, e.g. block1_conv1,block4_conv2"
    )
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="weights in any supported format (default: deterministic "
        "random weights, seed 0: shapes only mean something then)",
    )
    parser.add_argument("--backend", default="keras", help="keras (default), torch or another installed backend")
    parser.add_argument("--out", metavar="FILE.npz", help="save the outputs as a .npz file (channels last)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from vggspec.backends import get_backend
    from vggspec.building import read_checked_bundle
    from vggspec.errors import VggspecError
    from vggspec.features import feature_plan
    from vggspec.fileio import atomic_path
    from vggspec.images import image_mode, load_images
    from vggspec.parity.inputs import random_bundle
    from vggspec.planner.lower import lower_to_plan
    from vggspec.preprocessing import preprocess
    from vggspec.spec.load import load_spec

    spec = load_spec(args.spec)
    names = [name.strip() for name in args.layers.split(",") if name.strip()]
    try:
        plan, chosen = feature_plan(lower_to_plan(spec), names)
    except VggspecError as error:  # the library's setting "outputs" is this command's --layers
        if error.setting != "outputs":
            raise
        raise VggspecError("layers" + str(error).removeprefix("outputs"), setting="layers") from None
    if args.out is not None and not str(args.out).endswith(".npz"):
        raise VggspecError(f"out {args.out}: expected a file name ending in .npz, received another", setting="out")
    height, width, channels = plan.input_shape
    image_mode(channels, f"{spec.source or spec.name}: input_shape {list(plan.input_shape)}")
    images = preprocess(load_images(args.images, (height, width), channels), plan.preprocessing)
    backend = get_backend(args.backend)
    bundle = read_checked_bundle(plan, args.weights)[0] if args.weights else random_bundle(plan, 0)
    model = backend.build(plan)
    backend.set_weights(model, plan, bundle)
    everything = backend.activations(model, plan, images)
    arrays: dict[str, Any] = {name: np.asarray(everything[layer], dtype=np.float32) for name, layer in chosen.items()}
    if args.out is not None:
        with atomic_path(args.out, suffix=".npz") as temporary, open(temporary, "wb") as file:
            np.savez(file, **arrays)
    rows: list[dict[str, Any]] = [
        {
            "layer": name,
            "from": chosen[name],
            "shape": list(array.shape),
            "mean": float(array.mean()),
            "std": float(array.std()),
            "min": float(array.min()),
            "max": float(array.max()),
            "zero_fraction": float(np.mean(array == 0)),
        }
        for name, array in arrays.items()
    ]
    if args.json:
        print(
            json.dumps(
                {
                    "spec": spec.name,
                    "backend": backend.name,
                    "weights": bundle.source,
                    "images": len(images),
                    "layers": rows,
                    "out": args.out,
                },
                indent=2,
            )
        )
        return 0
    print(f"{spec.name} ({backend.name}), {len(images)} image(s), weights: {bundle.source}")
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
    if args.out is not None:
        print(f"saved {', '.join(arrays)} to {args.out}")
    return 0
