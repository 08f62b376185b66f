"""Check spec files (or shipped names) against the schema and the semantic rules.

A table of configurations (a file with `configurations`, as specs/vgg.yaml) is
checked too: its schema, and every column as a spec over the table's defaults.
Prints every problem as FILE:LINE:COL $.path: expected ..., received ...;
exits 0 when every file is valid, 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys

from vggspec.errors import SpecError
from vggspec.planner.lower import lower_to_plan
from vggspec.spec.load import load_document
from vggspec.spec.table import Table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("specs", nargs="+", metavar="SPEC", help="a spec file or a shipped name")


def run(args: argparse.Namespace) -> int:
    failed = False
    for name in args.specs:
        try:
            checked = load_document(name)
        except SpecError as error:
            print(error, file=sys.stderr)
            failed = True
            continue
        if isinstance(checked, Table):
            print(f"{name}: ok (a table of {len(checked.columns)} configurations: {', '.join(checked.columns)})")
            continue
        plan = lower_to_plan(checked)
        print(f"{name}: ok ({checked.name}, {plan.total_params:,} parameters)")
    return 2 if failed else 0
