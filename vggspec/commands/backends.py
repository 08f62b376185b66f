"""List the installed backends (entry points of the vggspec.backends group) and whether each can be used."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    from vggspec.backends import backend_status

    rows = backend_status()
    width = max([len("backend")] + [len(name) for name, _, _ in rows])
    print(f"{'backend':<{width}}  {'status':<17}  detail")
    for name, status, detail in rows:
        print(f"{name:<{width}}  {status:<17}  {detail}")
    return 0
