"""Classify images with a spec and its weights: the top classes of each image.

With 1000 classes the names come from the ImageNet class index shipped in the
package (no download); with other heads the class indices are shown (or the
names given with --labels, e.g. the class folders of a fine-tuning run).
"""

from __future__ import annotations

import argparse
import sys

from vggspec.errors import VggspecError
from vggspec.model_source import model_source
from vggspec.planner.lower import lower_to_plan
from vggspec.strict_json import dumps


def add_preprocessing_argument(parser: argparse.ArgumentParser) -> None:
    """``--preprocessing``, for the commands that feed images (predict, features, verify, finetune)."""
    from vggspec.spec.model import PREPROCESSING_MODES

    parser.add_argument(
        "--preprocessing",
        choices=PREPROCESSING_MODES,
        help="how images are scaled (default: as the weights say, else as the spec says)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "spec",
        metavar="SPEC",
        help="a spec file, a shipped name, or a run folder of vggspec finetune (its spec, best weights and classes)",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="weights in any supported format, or a known name (vggspec weights list); needed unless SPEC is a run; "
        "or a model file the backend runs (.onnx: float32, float16, int8)",
    )
    add_preprocessing_argument(parser)
    parser.add_argument(
        "--backend",
        help="keras, torch, onnx, numpy or another installed backend (default: keras, else torch, else onnx, "
        "else numpy)",
    )
    parser.add_argument(
        "--top", type=int, help="how many classes to show per image (default 5, or all classes when fewer)"
    )
    parser.add_argument("--labels", metavar="NAMES", help="comma-separated class names for a non-ImageNet head")
    from vggspec.inference import BATCH_SIZE

    parser.add_argument(
        "--batch-size",
        type=int,
        default=BATCH_SIZE,
        help=f"images read and run at a time (default {BATCH_SIZE}): memory follows the batch, not the number of "
        "images",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--fp32",
        action="store_true",
        help="no accelerator settings: float32 as built "
        "(default: a backend's fast settings, e.g. torch on CUDA with bf16 and channels last)",
    )


def _labels(text: str, classes: int) -> list[str]:
    """The class names of ``--labels``: as many as the spec's classes, none empty, each once."""
    labels = [name.strip() for name in text.split(",")]
    if len(labels) != classes:
        raise VggspecError(
            f"labels: expected {classes} names (the spec's classes), received {len(labels)}", setting="labels"
        )
    if not all(labels):
        raise VggspecError(f"labels: expected {classes} non-empty names, received {text!r}", setting="labels")
    repeated = next((name for name in labels if labels.count(name) > 1), None)
    if repeated is not None:
        raise VggspecError(f"labels: expected each name once, received {repeated!r} twice", setting="labels")
    return labels


def run(args: argparse.Namespace) -> int:
    from vggspec.backends import Accelerates, get_backend
    from vggspec.building import backend_for_file, build_model
    from vggspec.imagenet import top_classes
    from vggspec.images import check_image_paths, image_mode
    from vggspec.inference import predict_files

    source = model_source(args.spec, args.weights, args.preprocessing, progress=not args.json)
    spec = source.spec
    if source.weights is None:
        raise VggspecError("weights: expected a weight file or a known name to classify with, received none")
    plan = lower_to_plan(spec)
    if not spec.include_top:
        raise VggspecError(f"{args.spec}: expected a spec with include_top: true to classify, received one without")
    labels = _labels(args.labels, spec.classes) if args.labels is not None else source.labels
    top = min(5, spec.classes) if args.top is None else args.top
    if not 1 <= top <= spec.classes:
        raise VggspecError(f"top: expected 1 to {spec.classes}, received {top}", setting="top")
    image_mode(plan.input_shape[2], f"{args.spec}: input_shape {list(plan.input_shape)}")
    check_image_paths(args.images)
    backend = get_backend(backend_for_file(args.backend, source.weights.path))  # x.onnx alone: onnx
    model = build_model(spec, backend, source.weights.path)
    if isinstance(backend, Accelerates) and not args.fp32:  # e.g. torch: CUDA, channels last, bf16
        model = backend.accelerate(model)
    scores = predict_files(backend, model, plan, args.images, spec.preprocessing, args.batch_size, not args.json)
    results = top_classes(scores, top, labels)
    print(f"{spec.name}: {source.note}", file=sys.stderr if args.json else sys.stdout)  # what the scores mean
    if args.json:
        print(
            dumps(
                {
                    path: [{"index": i, "label": name, "score": score} for i, name, score in rows]
                    for path, rows in zip(args.images, results)
                }
            )
        )
        return 0
    for path, rows in zip(args.images, results):
        print(path)
        for rank, (index, name, score) in enumerate(rows, start=1):
            print(f"  {rank}. {name:<40} {score:.4f}  (index {index})")
    return 0
