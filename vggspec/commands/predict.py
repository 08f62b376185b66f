"""Classify images with a spec and its weights: the top classes of each image.

With 1000 classes the names come from the ImageNet class index shipped in the
package (no download); with other heads the class indices are shown (or the
names given with --labels, e.g. the class folders of a fine-tuning run).
"""

from __future__ import annotations

import argparse
import json

from vggspec.errors import VggspecError
from vggspec.planner.lower import lower_to_plan
from vggspec.spec.load import load_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="a spec file or a shipped name")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--weights", required=True, metavar="FILE", help="weights in any supported format")
    parser.add_argument("--backend", default="keras", help="keras (default), torch or another installed backend")
    parser.add_argument(
        "--top", type=int, help="how many classes to show per image (default 5, or all classes when fewer)"
    )
    parser.add_argument("--labels", metavar="NAMES", help="comma-separated class names for a non-ImageNet head")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--fp32",
        action="store_true",
        help="no accelerator settings: float32 as built "
        "(default: a backend's fast settings, e.g. torch on CUDA with bf16 and channels last)",
    )


def run(args: argparse.Namespace) -> int:
    from vggspec.backends import Accelerates, get_backend
    from vggspec.building import build_model
    from vggspec.imagenet import top_classes
    from vggspec.images import image_mode, load_images
    from vggspec.preprocessing import preprocess

    spec = load_spec(args.spec)
    plan = lower_to_plan(spec)
    if not spec.include_top:
        raise VggspecError(f"{args.spec}: expected a spec with include_top: true to classify, received one without")
    labels = [name.strip() for name in args.labels.split(",")] if args.labels else None
    if labels is not None and len(labels) != spec.classes:
        raise VggspecError(f"--labels: expected {spec.classes} names (the spec's classes), received {len(labels)}")
    top = min(5, spec.classes) if args.top is None else args.top
    if not 1 <= top <= spec.classes:
        raise VggspecError(f"--top: expected 1 to {spec.classes}, received {top}")
    height, width, channels = plan.input_shape
    image_mode(channels, f"{args.spec}: input_shape {list(plan.input_shape)}")
    pixels = load_images(args.images, (height, width), channels)
    backend = get_backend(args.backend)
    model = build_model(spec, backend, args.weights)
    if isinstance(backend, Accelerates) and not args.fp32:  # e.g. torch: CUDA, channels last, bf16
        model = backend.accelerate(model)
    scores = backend.predict(model, preprocess(pixels, spec.preprocessing))
    results = top_classes(scores, top, labels)
    if args.json:
        print(
            json.dumps(
                {
                    path: [{"index": i, "label": name, "score": score} for i, name, score in rows]
                    for path, rows in zip(args.images, results)
                },
                indent=2,
            )
        )
        return 0
    for path, rows in zip(args.images, results):
        print(path)
        for rank, (index, name, score) in enumerate(rows, start=1):
            print(f"  {rank}. {name:<40} {score:.4f}  (index {index})")
    return 0
