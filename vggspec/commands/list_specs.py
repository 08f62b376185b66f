"""List the shipped specs (usable by name instead of a path) and the paper's configurations."""

from __future__ import annotations

import argparse
from pathlib import Path

from vggspec.planner.lower import lower_to_plan
from vggspec.spec.load import load_spec
from vggspec.spec.shipped import EXAMPLES, shipped_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    rows = []
    for name in shipped_names():
        spec = load_spec(name)
        plan = lower_to_plan(spec)
        origin = f"configuration {spec.configuration}" if spec.configuration else "layers written out"
        if Path(spec.source).parent.name == EXAMPLES:
            origin = f"example, {'×'.join(map(str, spec.input_shape))} input"
        rows.append(
            (
                name,
                f"{plan.depth} weight layers",
                f"{plan.trainable_params:,}",
                f"{plan.non_trainable_params:,}",
                "batch norm" if spec.batch_norm else "",
                origin,
            )
        )
    header = ("name", "depth", "trainable", "non-trainable", "", "from")
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print(
            "  ".join(
                cell.rjust(w) if i in (2, 3) else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))
            ).rstrip()
        )
    return 0
