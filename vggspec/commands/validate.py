"""Check spec files (or shipped names) against the schema and the semantic rules.

Prints every problem as FILE:LINE:COL $.path: expected ..., received ...;
exits 0 when every spec is valid, 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from vggspec.errors import SpecError
from vggspec.planner.lower import lower_to_plan
from vggspec.spec.load import load_spec


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="a spec file or a shipped name")


def run(args: argparse.Namespace) -> int:
    failed = False
    for name in args.specs:
        try:
            spec = load_spec(name)
        except SpecError as error:
            print(error, file=sys.stderr)
            failed = True
            continue
        plan = lower_to_plan(spec)
        print(f"{name}: ok ({spec.name}, {plan.total_params:,} parameters)")
    return 2 if failed else 0
