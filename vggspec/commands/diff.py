"""Compare two specs' plans layer by layer: the layers changed, added and removed, and the totals.

Layers are aligned by their names (the plan's canonical names: block3_conv3 is the third
convolution of block 3 in any spec). A changed layer shows what differs (its type's fields,
output shape, parameters). Exit status 0 when the plans are the same, 1 when they differ (as
diff does), 2 on bad input.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("before", metavar="SPEC_A", help="a spec file or a shipped name (vggspec list)")
    parser.add_argument("after", metavar="SPEC_B", help="the spec to compare it with")


def run(args: argparse.Namespace) -> int:
    from vggspec.drawing.compare import align_plans, diff_text, plans_differ
    from vggspec.planner.lower import lower_to_plan
    from vggspec.spec.load import load_spec

    before, after = lower_to_plan(load_spec(args.before)), lower_to_plan(load_spec(args.after))
    slots = align_plans(before, after)
    print(diff_text(before, after, slots))
    return 1 if plans_differ(before, after, slots) else 0
