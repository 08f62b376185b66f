"""Known weight files: `weights list` shows them (name, file, size, md5, the spec
each fits, cached or not); `weights fetch NAME` downloads one once into
$VGGSPEC_HOME/weights (default ~/.cache/vggspec/weights), checks its size and
md5, and prints its path."""

from __future__ import annotations

import argparse

from vggspec.weights.registry import REGISTRY, cached_path, fetch, weights_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch_parser = actions.add_parser("fetch", help="download a known weight file once and print its path")
    fetch_parser.add_argument("name", metavar="NAME", help=f"one of: {', '.join(REGISTRY.names())}")
    fetch_parser.add_argument("--url", help="download from this address instead (a mirror)")
    actions.add_parser("list", help="list the known weight files and whether they are cached")


def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        print(fetch(args.name, url=args.url))
        return 0
    rows = [
        (
            f.name,
            f.file_name,
            "unknown" if f.size is None else f"{f.size:,}",
            f.md5,
            f.fits,
            "yes" if cached_path(f) else "no",
        )
        for f in REGISTRY
    ]
    header = ("name", "file", "bytes", "md5", "fits", "cached")
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print(
            "  ".join(
                cell.rjust(w) if i == 2 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))
            ).rstrip()
        )
    print(f"\ncache: {weights_dir()}")
    return 0
