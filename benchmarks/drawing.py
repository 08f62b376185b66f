"""Drawing: ``vggspec draw SPEC --out FILE`` of every shipped spec, as SVG and as PNG, in a fresh process.

Each run is a new process, timed from start to exit, as a user runs the command; per spec and
format the figure is the median of the runs, and the slowest spec is reported. Goal: under a
second. The reference, measured in the same rounds, is ``vggspec summary vgg16`` (the start-up
that every command pays: the interpreter, the core package, the spec and its plan), so the ratio
is what drawing adds. SVG is written by vggspec's own code; PNG imports matplotlib and lets its
Agg canvas draw every label.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Case, figure, median, ratio
from benchmarks.startup import summary_command

GOAL_S = ("<", 1.0)
FORMATS = ("svg", "png")


def ratio_names() -> list[str]:
    return [*(f"drawing/{form}_slowest_spec_seconds" for form in FORMATS), "drawing/svg_slowest_vs_summary"]


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def _specs(case: Case) -> list[str]:
    if case.drawing_specs is not None:
        return list(case.drawing_specs)
    from vggspec.spec.shipped import shipped_names

    return shipped_names()


def measure(case: Case) -> dict[str, Any]:
    specs = _specs(case)
    prefix = summary_command()[:-2]  # the vggspec command without "summary vgg16"
    samples: dict[str, dict[str, list[float]]] = {form: {spec: [] for spec in specs} for form in FORMATS}
    reference: list[float] = []
    with tempfile.TemporaryDirectory(prefix="vggspec-bench-draw-") as folder:
        _seconds([*prefix, "draw", specs[0], "--out", str(Path(folder) / "warm.svg")])  # warm-up
        for _ in range(case.drawing_repeats):
            for spec in specs:
                reference.append(_seconds(summary_command()))
                for form in FORMATS:
                    out = str(Path(folder) / f"{spec}.{form}")
                    samples[form][spec].append(_seconds([*prefix, "draw", spec, "--out", out]))
    medians = {form: {spec: median(values) for spec, values in by_spec.items()} for form, by_spec in samples.items()}
    slowest = {form: max(medians[form], key=medians[form].__getitem__) for form in FORMATS}
    summary_s = median(reference)
    ratios = {
        f"drawing/{form}_slowest_spec_seconds": figure(
            medians[form][slowest[form]],
            unit="s",
            goal=GOAL_S,
            note=f"{slowest[form]}, median of {case.drawing_repeats} fresh processes; {len(specs)} specs drawn",
        )
        for form in FORMATS
    }
    ratios["drawing/svg_slowest_vs_summary"] = figure(
        ratio(medians["svg"][slowest["svg"]], summary_s), note=f"vggspec summary vgg16: {summary_s:.3f} s"
    )
    return {
        "details": {
            "specs": specs,
            "seconds_median": {
                form: {spec: round(s, 4) for spec, s in by_spec.items()} for form, by_spec in medians.items()
            },
            "summary_vgg16_seconds_median": round(summary_s, 4),
        },
        "ratios": ratios,
    }
