"""The ``vggspec`` command.

Each sub-command lives in ``vggspec/commands/<name>.py`` with ``add_arguments(parser)``
and ``run(args) -> int``. Any :class:`VggspecError` (bad input) is printed as
one line per problem on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from vggspec.errors import VggspecError

# name -> (module, one-line help)
COMMANDS = {
    "validate": ("vggspec.commands.validate", "check spec files against the schema and the semantic rules"),
    "list": ("vggspec.commands.list_specs", "list the shipped specs and the paper's configurations"),
    "summary": ("vggspec.commands.summary", "print the layers, output shapes and parameter counts of a spec"),
}


def make_parser() -> argparse.ArgumentParser:
    from vggspec import __version__

    parser = argparse.ArgumentParser(prog="vggspec", description="One description of a VGG network, "
                                     "a correct model in Keras and PyTorch.")
    parser.add_argument("--version", action="version", version=f"vggspec {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except VggspecError as error:
        print(f"error: {error}" if "\n" not in str(error) else str(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
