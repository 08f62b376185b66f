"""Start-up: ``vggspec summary vgg16`` in a fresh process, with ``python -c pass`` as the floor.

Each run is a new process (stdout discarded), timed from start to exit; the two commands
alternate after one warm-up run each, and the figures are medians. Goal: under 0.5 s.
The summary needs no framework, so this is the price of the interpreter, the core package,
the YAML spec and the plan.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import Case, figure, median, ratio

GOAL_S = ("<", 0.5)


def ratio_names() -> list[str]:
    return ["startup/summary_vgg16_seconds", "startup/summary_vgg16_vs_python_floor"]


def summary_command() -> list[str]:
    """The ``vggspec`` console script beside this interpreter when installed, else ``python -m vggspec``."""
    script = os.path.join(os.path.dirname(sys.executable), "vggspec")
    prefix = [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "vggspec"]
    return [*prefix, "summary", "vgg16"]


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def measure(case: Case) -> dict[str, Any]:
    commands = {"python_floor": [sys.executable, "-c", "pass"], "summary_vgg16": summary_command()}
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():  # warm-up
        for _ in range(case.warmup):
            _seconds(command)
    names = list(commands)
    for round_index in range(case.startup_repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(_seconds(commands[name]))
    summary_s, floor_s = median(samples["summary_vgg16"]), median(samples["python_floor"])
    return {
        "details": {
            "commands": {name: " ".join(command) for name, command in commands.items()},
            "seconds_median": {"summary_vgg16": round(summary_s, 4), "python_floor": round(floor_s, 4)},
            "seconds": {name: [round(s, 4) for s in values] for name, values in samples.items()},
            "summary_minus_floor_s": round(summary_s - floor_s, 4),
        },
        "ratios": {
            "startup/summary_vgg16_seconds": figure(
                summary_s, unit="s", goal=GOAL_S, note=f"median of {case.startup_repeats} fresh processes"
            ),
            "startup/summary_vgg16_vs_python_floor": figure(
                ratio(summary_s, floor_s), note=f"python -c pass: {floor_s:.3f} s"
            ),
        },
    }
