"""Build a spec with a backend and save the native model: a .keras file (keras), a state dict (torch), an
.onnx graph (onnx) or a .safetensors weight file (numpy).

With --weights the file's arrays are checked against the spec and loaded
first; --skip-mismatch loads what fits (e.g. all but a replaced head).
"""

from __future__ import annotations

import argparse

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


def run(args: argparse.Namespace) -> int:
    from vggspec.backends import get_backend
    from vggspec.building import build_model, save_model

    spec = load_spec(args.spec)
    plan = lower_to_plan(spec)
    backend = get_backend(args.backend)
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
