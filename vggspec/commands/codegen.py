"""Write a spec as one standalone, readable Python file for Keras or PyTorch (it imports only the framework).

Keras: --style sequential (the default; one model.add per layer) or functional (as
keras.applications.vgg16 writes VGG16), layers named as keras.applications names them, so
Keras weight files load with model.load_weights. Torch: torchvision's VGG as an nn.Module
whose state_dict keys are torchvision's, and build(). Without --out the file goes to standard
output; with it, it is written whole or not at all.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Optional


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vggspec.codegen import FRAMEWORKS, KERAS_STYLES

    parser.add_argument("spec", metavar="SPEC", help="a spec file or a shipped name")
    parser.add_argument("--framework", required=True, choices=FRAMEWORKS, help="the framework the file is for")
    parser.add_argument(
        "--style", choices=KERAS_STYLES, help="keras only: sequential (default) or functional; torch takes none"
    )
    parser.add_argument("--out", metavar="FILE", help="the .py file to write (default: standard output)")


def codegen_command(spec: str, framework: str, style: Optional[str] = None, out: Optional[str] = None) -> str:
    """The command line that writes this file (for its header), arguments shell-quoted."""
    from vggspec.codegen import chosen_style

    words = ["vggspec", "codegen", spec, "--framework", framework]
    chosen = chosen_style(framework, style)
    words += ["--style", chosen] if chosen else []
    words += ["--out", out] if out else []
    return " ".join(shlex.quote(word) for word in words)


def run(args: argparse.Namespace) -> int:
    from vggspec.codegen import generate_source, write_source
    from vggspec.planner.lower import lower_to_plan
    from vggspec.spec.load import load_spec

    plan = lower_to_plan(load_spec(args.spec))
    command = codegen_command(args.spec, args.framework, args.style, args.out)
    source = generate_source(plan, args.framework, args.style, command)
    if args.out is None:
        sys.stdout.write(source)
        return 0
    write_source(args.out, source)
    style = f" ({args.style or 'sequential'})" if args.framework == "keras" else ""
    print(
        f"{args.out}: {plan.name} for {args.framework}{style}, {source.count(chr(10))} lines, "
        f"{plan.total_params:,} parameters"
    )
    return 0
