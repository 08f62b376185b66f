"""Draw a spec's network: each block of convolutions as a group, each layer a box (its height the map's
size, its width the channels), labelled with its name, output shape and parameters, totals underneath.

With two specs, the second is drawn under the first, aligned layer by layer (by name), with
what differs marked: a changed layer outlined in red, a layer only in one of them in red or
green; `vggspec diff A B` says the same in text. The format follows --out's extension: .svg
(text, no dependency: a browser shows it as it is) or .png (needs matplotlib: pip install
"vggspec[plot]"). The file is written whole or not at all.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="a spec file or a shipped name (vggspec list)")
    parser.add_argument("other", metavar="SPEC2", nargs="?", help="a second spec, drawn under the first and compared")
    parser.add_argument("--out", required=True, metavar="FILE", help="the picture to write: FILE.svg or FILE.png")
    parser.add_argument(
        "--width",
        type=int,
        metavar="PIXELS",
        help="the picture's width in pixels, 100 to 10,000; the height follows (default: its natural size, "
        "where labels are 11 px)",
    )


def run(args: argparse.Namespace) -> int:
    from vggspec.drawing.files import check_picture_destination, write_picture
    from vggspec.drawing.network import draw_comparison, draw_plan
    from vggspec.drawing.svg import picture_size
    from vggspec.planner.lower import lower_to_plan
    from vggspec.spec.load import load_spec

    check_picture_destination(args.out, "out", args.width)
    plans = [lower_to_plan(load_spec(name)) for name in [args.spec, args.other] if name is not None]
    scene = draw_plan(plans[0]) if len(plans) == 1 else draw_comparison(*plans)
    write_picture(scene, args.out, "out", args.width)
    width, height = picture_size(scene, args.width)
    print(f"{args.out}: {' and '.join(plan.name for plan in plans)}, {width}×{height} pixels")
    return 0
