"""Print a spec's layers, output shapes and parameter counts, as Keras' model.summary() does.

With --backend NAME the model is also built in that framework and its own
parameter counts are shown beside the plan's.
"""

from __future__ import annotations

import argparse

from vggspec.planner.lower import lower_to_plan
from vggspec.planner.summary import parameter_counts, summary_json, summary_markdown, summary_table
from vggspec.spec.load import load_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="a spec file or a shipped name (vggspec list)")
    parser.add_argument("--format", choices=("table", "json", "markdown"), default="table")
    parser.add_argument(
        "--backend",
        metavar="NAME",
        help="also build the model with this backend and show the framework's own parameter counts",
    )


def run(args: argparse.Namespace) -> int:
    plan = lower_to_plan(load_spec(args.spec))
    counts = None
    if args.backend:
        from vggspec.backends import get_backend

        backend = get_backend(args.backend)
        counts = {"name": args.backend, **parameter_counts(plan, *backend.count_params(backend.build(plan)))}
    if args.format == "json":
        print(summary_json(plan, counts))
        return 0 if counts is None or counts["equal_to_plan"] else 1
    print(summary_table(plan) if args.format == "table" else summary_markdown(plan))
    if counts is not None:
        verdict = "equal to the plan" if counts["equal_to_plan"] else "DIFFERENT from the plan"
        print(
            f"\n {args.backend} counts: total {counts['total_params']:,}, trainable "
            f"{counts['trainable_params']:,}, non-trainable {counts['non_trainable_params']:,} ({verdict})"
        )
    return 0 if counts is None or counts["equal_to_plan"] else 1
