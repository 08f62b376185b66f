"""``python -m benchmarks [--quick] [--only NAME,...] [--json-out FILE]``: run, print JSON, then a table.

Each measure runs in its own fresh ``python -m benchmarks --child NAME`` process, so that
one framework's threads or memory never weigh on another measure, and a measure that fails
is reported (its figures null, with the reason) without stopping the others.
Progress goes to stderr; stdout is one JSON object followed by a table of every figure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from benchmarks.common import FULL, QUICK, Case, figure, machine

MEASURES = {
    "forward_torch": "benchmarks.forward_torch",
    "forward_keras": "benchmarks.forward_keras",
    "forward_onnx": "benchmarks.forward_onnx",
    "forward_numpy": "benchmarks.forward_numpy",
    "forward_int8": "benchmarks.forward_int8",
    "digits": "benchmarks.digits",
    "conversion": "benchmarks.conversion",
    "startup": "benchmarks.startup",
    "finetune": "benchmarks.finetune",
    "processes": "benchmarks.processes",
    "features": "benchmarks.features",
    "predict_memory": "benchmarks.predict_memory",
    "drawing": "benchmarks.drawing",
}
REPOSITORY = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 1800


def _parse(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="VGG16's layers on a 32x32 input, few repetitions, two short training epochs: "
        "checks that it runs, not speed",
    )
    parser.add_argument("--only", metavar="NAME,...", help=f"run only these measures ({', '.join(MEASURES)})")
    parser.add_argument("--json-out", metavar="FILE", help="also write the JSON object to FILE")
    parser.add_argument("--child", metavar="NAME", help=argparse.SUPPRESS)  # one measure, JSON on stdout
    args = parser.parse_args(argv)
    names = list(MEASURES) if not args.only else [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in MEASURES]
    if unknown:
        parser.error(f"--only: expected names from {', '.join(MEASURES)}, received {', '.join(unknown)}")
    args.names = names
    return args


def _case(quick: bool) -> Case:
    return QUICK if quick else FULL


def _run_child(name: str, quick: bool) -> dict[str, Any]:
    """Run one measure in a fresh process; its result, or {"error": ...} when it failed."""
    command = [sys.executable, "-m", "benchmarks", "--child", name] + (["--quick"] if quick else [])
    started = time.perf_counter()
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=REPOSITORY, timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {CHILD_TIMEOUT_S} s"}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        return {"error": f"the measure's process exited with status {done.returncode} (its stderr is above)"}
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as error:
        return {"error": f"the measure printed no JSON on its last line ({error})"}
    result["details"]["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def _expected_names(name: str) -> list[str]:
    return importlib.import_module(MEASURES[name]).ratio_names()


def _format_value(entry: dict[str, Any]) -> str:
    value = entry["value"]
    if value is None:
        return "null"
    if entry["unit"] == "bool":
        return "yes" if value else "no"
    if entry["unit"] == "s":
        return f"{value:.3f} s"
    if entry["unit"] == "GB":
        return f"{value:.2f} GB"
    if entry["unit"] == "points":
        return f"{value:+.2f} points"
    if entry["unit"] == "share":
        return f"{value:.4f}"
    if entry["unit"] == "x":
        return f"{value:.3f}x"
    return f"{value:.1f} {entry['unit']}"


def machine_line(about: dict[str, Any]) -> str:
    versions = about["versions"]
    tensorflow = versions["tensorflow"] or versions["tensorflow-cpu"]
    return (
        f"machine: {about['cpu']}, {about['usable_cpus']} usable CPUs, load {about['load_average_1m_at_start']} "
        f"at start; torch {versions['torch']}, torchvision {versions['torchvision'] or 'not installed'}, "
        f"keras {versions['keras']}, tensorflow {tensorflow}"
    )


def table(ratios: dict[str, dict[str, Any]]) -> str:
    """One row per figure: name, value, goal, met (ok / MISSED / -), then why a value is missing or
    the numbers behind it."""
    rows = [("figure", "value", "goal", "met", "note")]
    for name, entry in ratios.items():
        met = "-" if entry["met"] is None else ("ok" if entry["met"] else "MISSED")
        rows.append((name, _format_value(entry), entry["goal"] or "-", met, entry["reason"] or entry["note"] or ""))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


def main(argv: Optional[list[str]] = None) -> int:
    from vggspec_keras.environment import set_tensorflow_environment

    set_tensorflow_environment()  # as the project's tests and command line run Keras
    args = _parse(argv)
    case = _case(args.quick)
    if args.child:
        result = importlib.import_module(MEASURES[args.child]).measure(case)
        print(json.dumps(result))
        return 0

    started = time.perf_counter()
    report: dict[str, Any] = {
        "benchmark": "vggspec",
        "quick": args.quick,
        "case": asdict(case),
        "machine": machine(),
        "measures": {},
        "ratios": {},
    }
    for name in args.names:
        print(f"== {name}", file=sys.stderr, flush=True)
        result = _run_child(name, args.quick)
        report["measures"][name] = result.get("details", {"error": result.get("error")})
        found = result.get("ratios", {})
        for ratio_name in _expected_names(name):  # every figure present: null with the reason when missing
            report["ratios"][ratio_name] = found.get(ratio_name) or figure(
                None, reason=f"the {name} measure failed: {result.get('error', 'no such figure')}"
            )
    report["goals_missed"] = [name for name, entry in report["ratios"].items() if entry["met"] is False]
    report["wall_s"] = round(time.perf_counter() - started, 1)

    text = json.dumps(report, indent=2)
    if args.json_out:
        from vggspec.fileio import atomic_path

        with atomic_path(args.json_out) as path:
            path.write_text(text + "\n")
    print(text)
    print()
    print(machine_line(report["machine"]))
    print(table(report["ratios"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
