"""The ``vggspec`` command.

Each sub-command lives in ``vggspec/commands/<name>.py`` with ``add_arguments(parser)``
and ``run(args) -> int``. Any :class:`VggspecError` (bad input) is printed as
one line per problem on stderr with exit status 2, never as a traceback. An error
about a library setting that is one of the command's options names the option
(``batch_size: ...`` is printed ``--batch-size: ...``; see :func:`error_text`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import warnings
from typing import Mapping, Optional, Sequence

from vggspec.errors import VggspecError

# name -> (module, one-line help)
COMMANDS = {
    "validate": ("vggspec.commands.validate", "check spec files against the schema and the semantic rules"),
    "list": ("vggspec.commands.list_specs", "list the shipped specs and the paper's configurations"),
    "summary": ("vggspec.commands.summary", "print the layers, output shapes and parameter counts of a spec"),
    "diff": ("vggspec.commands.diff", "compare two specs layer by layer: layers changed, added, removed, totals"),
    "draw": ("vggspec.commands.draw", "draw a spec's network as SVG or PNG, or two specs aligned to compare them"),
    "backends": ("vggspec.commands.backends", "list the installed backends and whether each can be used"),
    "build": ("vggspec.commands.build", "build a spec with a backend and save the model"),
    "verify": ("vggspec.commands.verify", "compare backends layer by layer on the same weights and images"),
    "predict": ("vggspec.commands.predict", "classify images with a spec and its weights"),
    "weights": ("vggspec.commands.weights", "list the known weight files, or download one into the cache"),
    "convert": ("vggspec.commands.convert", "convert a weight file between .h5, .weights.h5, .safetensors and .pt"),
    "codegen": ("vggspec.commands.codegen", "write a spec as a standalone Keras or PyTorch Python file"),
    "data": ("vggspec.commands.data", "prepare a data set as train/val folders (cats-vs-dogs)"),
    "finetune": ("vggspec.commands.finetune", "fine-tune a spec on train/val class folders (keras, torch, DDP)"),
    "evaluate": ("vggspec.commands.evaluate", "accuracy and confusion matrix of a finetune run's best checkpoint"),
    "features": ("vggspec.commands.features", "named intermediate outputs of a spec for images (shapes, statistics)"),
}


def make_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (start-up stays fast), or every one when None."""
    from vggspec import __version__

    parser = argparse.ArgumentParser(
        prog="vggspec", description="One description of a VGG network, a correct model in Keras and PyTorch."
    )
    parser.add_argument("--version", action="version", version=f"vggspec {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        if command is not None and name != command:
            commands.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        sub = commands.add_parser(
            name, help=help_text, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run, setting_flags=_setting_flags(sub))
    return parser


def _setting_flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each option's destination (the library setting it sets, e.g. ``learning_rate``) -> its flag (``--lr``),
    the options of the command's own sub-commands included (``data cats-vs-dogs --dest``)."""
    flags: dict[str, str] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags = {**_setting_flags(sub), **flags}
        elif action.option_strings:
            flags[action.dest] = action.option_strings[0]
    return flags


def error_text(error: VggspecError, flags: Mapping[str, str]) -> str:
    """What the command line prints for ``error``: ``error: <message>`` (a message of several lines as it is).
    The error's setting, when it is one of ``flags``, is shown as its flag where the message starts with it
    and where the message writes it in backticks (``use a `val_fraction` nearer 0.5``)."""
    text, setting = str(error), getattr(error, "setting", None) or ""
    if setting in flags:
        if text.startswith((f"{setting}:", f"{setting} ")):
            text = flags[setting] + text[len(setting) :]
        text = text.replace(f"`{setting}`", flags[setting])
    return text if "\n" in text else f"error: {text}"


def _command_name(argv: Sequence[str]) -> Optional[str]:
    """The sub-command named on the command line (the first word that is one), if any."""
    return next((word for word in argv if word in COMMANDS), None)


def _one_line_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: Optional[str] = None
) -> str:
    return f"warning: {message}\n"


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler, a container stopping), raised where the program is, as Ctrl-C's
    KeyboardInterrupt is: everything unwinds, so temporary files are removed and processes closed."""


# Set when SIGTERM arrives. Raised inside a C extension's import (pybind11's module init), the interrupt comes
# back as an ImportError, and a later import of that module as another one ("type ... is already registered"):
# with the flag set, whatever then escapes is the termination, not a crash.
_TERMINATION = threading.Event()


def _terminate(signum: int, frame: object) -> None:
    _TERMINATION.set()
    raise Terminated


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; SIGTERM is handled as Ctrl-C while it runs (the caller's handler is put back after)."""
    warnings.formatwarning = _one_line_warning
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    argv = list(sys.argv[1:] if argv is None else argv)
    _TERMINATION.clear()
    try:
        return _run(make_parser(_command_name(argv)).parse_args(argv))
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (Terminated), wherever it landed
        terminated = isinstance(interrupt, Terminated)
        print("terminated" if terminated else "interrupted", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    except Exception:
        if not _TERMINATION.is_set():
            raise
        print("terminated", file=sys.stderr)  # the interrupt, turned into another error where it landed
        return 128 + signal.SIGTERM
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    """The command's ``run``, its bad input as one line (exit 2)."""
    try:
        return int(args.run(args) or 0)
    except VggspecError as error:
        print(error_text(error, getattr(args, "setting_flags", {})), file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `vggspec summary vgg16 | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
