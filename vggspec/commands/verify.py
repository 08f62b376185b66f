"""Build a spec in several backends, load the same weights, feed the same images, compare every layer.

Reports the parameter counts against the plan, each layer's difference, naming the
first layer that diverges (and, with three backends or more, the odd one out there),
and checks the paths users call in each backend: predict (against its own last layer
and the first backend's predict, whose outputs give the largest difference and top-5
agreement), get_weights (the arrays set, bit for bit) and save (the file read back, for
a format vggspec reads). Exit status 0 when all hold, 1 when not (a backend whose
activations miss or misshape layers: one line), 2 on bad input.

With --quantized FILE (build --precision int8 or float16) and --images DIR, the file is compared with SPEC in
float32 (--weights: its source) on the images of DIR instead: top-1 and top-5 agreement, the largest output
difference and, on class folders, both accuracies; exit status 1 under 0.99 top-1 agreement.
"""

from __future__ import annotations

import argparse

from vggspec.backends import default_backends
from vggspec.commands.predict import add_preprocessing_argument
from vggspec.errors import BackendError, VggspecError
from vggspec.model_source import model_source
from vggspec.planner.lower import lower_to_plan
from vggspec.strict_json import dumps

# every layer's output of every image is kept for each backend: some 60 MB per image and backend for VGG16
# at 224x224, so 16 images hold about 2 GB for two backends
MAX_IMAGES = 16


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="a spec file or a shipped name")
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="weights in any supported format, or a known name (default: deterministic random weights)",
    )
    add_preprocessing_argument(parser)
    parser.add_argument(
        "--backends",
        help="comma-separated, two or more (default: the first two of keras, torch, onnx and numpy that can run here); "
        "every pair is compared, and with three or more a diverging layer names the odd one out "
        "(e.g. keras,torch,onnx)",
    )
    parser.add_argument(
        "--image",
        dest="image_files",
        nargs="+",
        metavar="IMAGE",
        help=f"image files to feed, at most {MAX_IMAGES} (default: synthetic images)",
    )
    parser.add_argument(
        "--images",
        type=_count_or_folder,
        default=2,
        metavar="N|DIR",
        help=f"number of synthetic images, 1 to {MAX_IMAGES} (default 2): every layer's output of "
        "every image is kept for each backend, about 60 MB per image and backend for VGG16; with --quantized, "
        "a folder of images (class folders give both accuracies)",
    )
    parser.add_argument(
        "--quantized",
        metavar="FILE",
        help="compare this lower-precision model (build --precision, e.g. int8.onnx) with SPEC in float32 "
        "(--weights: its source) on --images DIR: top-1 and top-5 agreement, largest difference, accuracies",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the random weights and images, 0 to 4294967295 (default 0)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw each layer's relative difference per pair of backends, on a log scale, as FILE.svg or "
        "FILE.png (PNG needs matplotlib)",
    )


def _count_or_folder(text: str) -> object:
    """``--images``: a count (an integer) or, for ``--quantized``, a folder."""
    try:
        return int(text)
    except ValueError:
        return text


def _run_quantized(args: argparse.Namespace) -> int:
    """``--quantized FILE --images DIR``: exit 0 when the top-1 agreement is at least the minimum, else 1."""
    from vggspec.backends import get_backend
    from vggspec.building import backend_for_file
    from vggspec.precision.agreement import MIN_AGREEMENT
    from vggspec.precision.build import verify_lower_precision

    if not isinstance(args.images, str):
        raise VggspecError("images: expected a folder of images to compare on, received a count", setting="images")
    source = model_source(args.spec, args.weights, args.preprocessing, progress=not args.json)
    weights = None if source.weights is None else source.weights.path
    backend = get_backend(backend_for_file(args.backends, args.quantized))
    found = verify_lower_precision(source.spec, backend, args.quantized, args.images, weights)
    print(dumps(found.to_dict()) if args.json else found.line())
    return 0 if found.top1 >= MIN_AGREEMENT else 1


def _check_count(images: object) -> None:
    if not isinstance(images, int):
        raise VggspecError(
            f"--images: expected a number of synthetic images (a folder goes with --quantized), received {images!r}"
        )


def run(args: argparse.Namespace) -> int:
    from vggspec.building import read_checked_bundle
    from vggspec.drawing.files import check_picture_destination, write_picture
    from vggspec.drawing.verify_plot import draw_verify_report
    from vggspec.parity.compare import compare_backends
    from vggspec.parity.inputs import checked_seed, random_bundle, synthetic_images
    from vggspec.parity.paths import ActivationsMismatch
    from vggspec.parity.report_text import format_report
    from vggspec.preprocessing import CHANNELS, preprocess

    if args.quantized:
        return _run_quantized(args)
    _check_count(args.images)
    checked_seed(args.seed, "--seed")
    if args.plot:
        check_picture_destination(args.plot, "plot")
    count = len(args.image_files) if args.image_files else args.images
    if not 1 <= count <= MAX_IMAGES:
        flag = "--image" if args.image_files else "--images"
        raise VggspecError(
            f"{flag}: expected 1 to {MAX_IMAGES} images (every layer's output of every image is "
            f"kept for each backend), received {count}"
        )
    source = model_source(args.spec, args.weights, args.preprocessing, progress=not args.json)
    plan = lower_to_plan(source.spec)
    backends = (
        [name.strip() for name in args.backends.split(",") if name.strip()] if args.backends else default_backends()
    )
    if len(backends) < 2:
        raise BackendError(f"--backends: expected at least two backends to compare, received {args.backends!r}")
    repeated = next((name for name in backends if backends.count(name) > 1), None)
    if repeated is not None:
        raise BackendError(f"--backends: expected each backend once, received {repeated!r} twice in {args.backends!r}")
    weights = None if source.weights is None else source.weights.path
    bundle = read_checked_bundle(plan, weights)[0] if weights else random_bundle(plan, args.seed)
    height, width, channels = plan.input_shape
    if args.image_files:
        from vggspec.images import image_mode, load_images

        image_mode(channels, f"{args.spec}: input_shape {list(plan.input_shape)}")
        pixels = load_images(args.image_files, (height, width), channels)
    else:
        pixels = synthetic_images(args.images, height, width, channels, seed=args.seed)
    # images of any other channel count (synthetic only) are compared as they are, 0..255
    images = preprocess(pixels, plan.preprocessing) if channels in CHANNELS else pixels
    try:
        report = compare_backends(plan, bundle, images, backends, progress=not args.json)
    except ActivationsMismatch as error:  # the layers cannot be compared: one line, the verdict's exit status
        failed = {"ok": False, "spec": plan.name, "backends": backends, "failed": str(error)}
        print(dumps(failed) if args.json else f"FAILED: {error}")
        return 1
    if not args.json:
        print(f"{plan.name}: {source.note}")
    print(dumps({**report.to_dict(), "preprocessing": plan.preprocessing}) if args.json else format_report(report))
    if args.plot:
        write_picture(draw_verify_report(report.to_dict()), args.plot, "plot")
    return 0 if report.ok else 1
