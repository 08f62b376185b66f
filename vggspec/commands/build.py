"""Build a spec with a backend and save the native model: a .keras file (keras), a state dict (torch), an
.onnx graph (onnx) or a .safetensors weight file (numpy).

With --weights the file's arrays are checked against the spec and loaded
first; --skip-mismatch loads what fits (e.g. all but a replaced head).

--precision int8 (onnx) quantizes the model, calibrated on the images of --calibrate (class folders or image
files, preprocessed as the model expects), and checks it against float32 on the images held out of them (one
in five), or on --images: below --min-agreement (top-1) it is refused, exit 2, nothing written. float16 too.
"""

from __future__ import annotations

import argparse
from typing import Any

from vggspec.errors import VggspecError
from vggspec.planner.lower import lower_to_plan
from vggspec.spec.load import load_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="a spec file or a shipped name")
    parser.add_argument("--backend", required=True, help="keras, torch, onnx, numpy or another installed backend")
    parser.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="where to save the model (keras: .keras; torch: .pt state dict; onnx: .onnx; numpy: .safetensors)",
    )
    parser.add_argument("--weights", metavar="FILE", help="weights to load (any supported format)")
    parser.add_argument("--skip-mismatch", action="store_true", help="load only the layers that fit")
    _add_precision_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from vggspec.backends import get_backend
    from vggspec.building import build_model, save_model

    spec = load_spec(args.spec)
    plan = lower_to_plan(spec)
    backend = get_backend(args.backend)
    if args.precision != "float32":
        return _run_lower_precision(args, spec, backend)
    lowering = (("--calibrate", args.calibrate), ("--images", args.images), ("--preprocessing", args.preprocessing))
    given = next((flag for flag, value in lowering if value), None)
    if given is not None:
        raise VggspecError(f"{given}: expected with --precision int8 or float16, received it with float32")
    model = build_model(spec, backend, args.weights, args.skip_mismatch)
    trainable, non_trainable = backend.count_params(model)
    note = save_model(backend, model, args.out)
    print(
        f"{args.out}: {spec.name} ({args.backend}), {trainable + non_trainable:,} parameters "
        f"({trainable:,} trainable; the plan: {plan.total_params:,})"
    )
    if note:  # e.g. how to load a Keras model with vggspec's LRN layer
        print(f"note: {note}")
    return 0


def _add_precision_arguments(parser: argparse.ArgumentParser) -> None:
    from vggspec.precision import PRECISIONS
    from vggspec.precision.agreement import MIN_AGREEMENT

    parser.add_argument(
        "--precision", choices=PRECISIONS, default="float32", help="float32 (default), or int8 / float16 (onnx)"
    )
    parser.add_argument("--calibrate", metavar="DIR", help="int8: images to calibrate on, class folders or image files")
    parser.add_argument(
        "--images",
        metavar="DIR",
        help="images to check the model against float32 on (default: the one in five held out of --calibrate)",
    )
    parser.add_argument(
        "--min-agreement",
        type=float,
        default=MIN_AGREEMENT,
        metavar="F",
        help=f"the least top-1 agreement with float32 a model is written with, 0 to 1 (default {MIN_AGREEMENT})",
    )
    from vggspec.commands.predict import add_preprocessing_argument

    add_preprocessing_argument(parser)


def _run_lower_precision(args: argparse.Namespace, spec: Any, backend: Any) -> int:
    """The images are fed as the weights say (their metadata, a known name's), else as the spec says."""
    from vggspec.model_source import model_source
    from vggspec.precision.build import build_lower_precision

    source = model_source(args.spec, args.weights, args.preprocessing)
    print(f"{spec.name}: {source.note}")
    made = build_lower_precision(
        source.spec,
        backend,
        args.precision,
        args.out,
        calibrate=args.calibrate,
        images=args.images,
        weights=None if source.weights is None else source.weights.path,
        min_agreement=args.min_agreement,
        skip_mismatch=args.skip_mismatch,
    )
    calibrated = f", calibrated on {made.calibration_images} images of {args.calibrate}" if args.calibrate else ""
    print(f"{args.out}: {spec.name} ({args.backend}, {args.precision}{calibrated}), {made.out.stat().st_size:,} bytes")
    print(made.checked.line() if made.checked else "not checked against float32: no images given (--images)")
    return 0
