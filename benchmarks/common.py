"""What every measure shares: the case measured, interleaved timing, medians, ratios, child processes.

Every figure is a ratio against a reference measured in the same run on the same machine;
speeds are medians of several samples taken after a warm-up, with the candidates'
samples interleaved (A B, B A, ...) so that drift of the machine hits all of them alike.
"""

from __future__ import annotations

import math
import operator
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Optional, Sequence

# VGG16's convolution widths, "M" a 2x2 max pooling: the paper's configuration D, torchvision's cfgs["D"].
VGG16_CONVS: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
VGG16_FC = (4096, 4096)


@dataclass(frozen=True)
class Case:
    """What is measured and how often. The network is always VGG16's layers; ``--quick`` shrinks
    the input (and so the work per image) and the repetitions, not the architecture. The
    exception is the training measure, which trains the small spec (specs/examples/small64.yaml)
    from scratch; ``--quick`` shrinks its image set and epochs (and fine-tunes VGG16's layers on
    the case's input size, on fewer images)."""

    name: str
    input_size: int  # height = width, pixels
    classes: int
    forward_repeats: int  # interleaved samples per candidate, after the warm-up
    forward_min_sample_s: float  # one sample runs at least this long (several calls for fast ones)
    conversion_repeats: int
    startup_repeats: int
    finetune_epochs: int  # at least 2: the first epoch also pays for tracing and is not counted
    finetune_train_per_class: int  # images of the drawn two-class set, 64x64
    finetune_val_per_class: int
    vgg16_train_per_class: int  # images of the drawn set at the case's input size, VGG16 on a frozen base
    vgg16_val_per_class: int
    drawing_repeats: int  # fresh processes per spec and format of ``vggspec draw``
    drawing_specs: Optional[tuple[str, ...]]  # None: every shipped spec
    warmup: int = 1

    @property
    def is_vgg16(self) -> bool:
        return self.input_size == 224 and self.classes == 1000

    def spec(self) -> Any:
        """The vggspec Spec: the shipped ``vgg16`` itself, or it with this input size and class count."""
        import vggspec

        vgg16 = vggspec.load_spec("vgg16")
        if self.is_vgg16:
            return vgg16
        mapping = vggspec.spec_to_mapping(vgg16)
        mapping.update(name=self.name, input_shape=[self.input_size, self.input_size, 3], classes=self.classes)
        return vggspec.spec_from_mapping(mapping)

    def spec_argument(self, directory: str) -> str:
        """``--spec`` for the command line: ``vgg16``, or the case's spec written as YAML into ``directory``."""
        if self.is_vgg16:
            return "vgg16"
        import yaml

        import vggspec

        path = os.path.join(directory, f"{self.name}.yaml")
        with open(path, "w") as file:
            yaml.safe_dump(vggspec.spec_to_mapping(self.spec()), file)
        return path


FULL = Case(
    "vgg16",
    224,
    1000,
    forward_repeats=7,
    forward_min_sample_s=0.5,
    conversion_repeats=5,
    startup_repeats=10,
    finetune_epochs=4,
    finetune_train_per_class=200,
    finetune_val_per_class=60,
    vgg16_train_per_class=64,
    vgg16_val_per_class=32,
    drawing_repeats=3,
    drawing_specs=None,
)
QUICK = Case(
    "vgg16_32x32",
    32,
    10,
    forward_repeats=2,
    forward_min_sample_s=0.05,
    conversion_repeats=1,
    startup_repeats=3,
    finetune_epochs=2,
    finetune_train_per_class=16,
    finetune_val_per_class=8,
    vgg16_train_per_class=16,
    vgg16_val_per_class=8,
    drawing_repeats=1,
    drawing_specs=("vgg16", "vgg19_bn"),  # the drawing with the most labels
)

GOAL_OPERATORS = {">=": operator.ge, "<=": operator.le, "<": operator.lt, "==": operator.eq}


def figure(
    value: Any,
    unit: str = "x",
    goal: Optional[tuple[str, Any]] = None,
    reason: Optional[str] = None,
    note: Optional[str] = None,
) -> dict[str, Any]:
    """One reported figure: ``value`` (None needs a ``reason``), its unit ("x" for a ratio, "s", "bool"),
    the goal as (operator, threshold), whether it is met (None when there is no value or goal), and
    a ``note`` with the measured numbers behind a ratio."""
    if value is None and not reason:
        raise ValueError("a missing figure needs the reason it is missing")
    if isinstance(value, float):
        value = round(value, 4)  # the goal is judged on the value as reported
    met = None
    if value is not None and goal is not None:
        met = bool(GOAL_OPERATORS[goal[0]](value, goal[1]))
    return {
        "value": value,
        "unit": unit,
        "goal": None if goal is None else f"{goal[0]} {goal[1]}".lower(),
        "met": met,
        "reason": reason,
        "note": note,
    }


def ratio(candidate: Optional[float], reference: Optional[float]) -> Optional[float]:
    if candidate is None or not reference:
        return None
    return candidate / reference


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def speed_note(candidate: dict[str, Any], reference: dict[str, Any]) -> str:
    """The medians behind a speed ratio, and the range of the ratios of samples taken in the same
    round (how noisy the machine was)."""
    paired = [a / b for a, b in zip(candidate["samples"], reference["samples"])]
    return (
        f"{candidate['median']:.2f} vs {reference['median']:.2f} images/s, "
        f"per round {min(paired):.2f}-{max(paired):.2f}"
    )


def speed_figure(
    rates: dict[str, dict[str, Any]],
    candidate: str,
    reference: str,
    goal: Optional[tuple[str, Any]] = None,
    about: str = "",
) -> dict[str, Any]:
    """The figure of ``candidate``'s speed over ``reference``'s, two entries of :func:`interleaved_rates`'
    result: the ratio of their medians, the note giving both and the per-round range after ``about``."""
    return figure(
        ratio(rates[candidate]["median"], rates[reference]["median"]),
        goal=goal,
        note=about + speed_note(rates[candidate], rates[reference]),
    )


def interleaved_rates(
    candidates: dict[str, Callable[[], Any]], items_per_call: int, repeats: int, warmup: int, min_sample_s: float
) -> dict[str, dict[str, Any]]:
    """Throughput (items/s) of each candidate: ``warmup`` untimed calls each, then ``repeats`` rounds in
    which every candidate takes one sample; the order rotates each round (A B C, B C A, ...).

    A sample is ``number`` consecutive calls, ``number`` chosen once (from the slowest candidate's
    last warm-up call) so that a sample lasts at least ``min_sample_s``; every candidate uses the same ``number``.
    """
    names = list(candidates)
    slowest = 0.0  # the slowest candidate's last warm-up call (the first may include tracing)
    for name in names:
        for _ in range(max(1, warmup)):
            started = time.perf_counter()
            candidates[name]()
            last = time.perf_counter() - started
        slowest = max(slowest, last)
    number = max(1, math.ceil(min_sample_s / max(slowest, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            call = candidates[name]
            started = time.perf_counter()
            for _ in range(number):
                call()
            samples[name].append(items_per_call * number / (time.perf_counter() - started))
    return {
        name: {"median": round(median(rates), 3), "samples": [round(r, 3) for r in rates], "calls_per_sample": number}
        for name, rates in samples.items()
    }


# Prepended to a child's ``python -c`` code: at exit the child prints its own peak resident set
# (VmHWM: the high-water mark of its memory since exec) to stderr. The parent cannot get this from
# os.wait4: on Linux a child's ru_maxrss also counts the parent's pages, which it shared until exec.
PEAK_RSS_MARKER = "benchmarks-peak-rss-kib:"
PEAK_RSS_PRELUDE = (
    "import atexit, sys\n"
    "def _report_peak_rss():\n"
    "    try:\n"
    "        with open('/proc/self/status') as status:\n"
    "            kib = next(line.split()[1] for line in status if line.startswith('VmHWM:'))\n"
    f"        print('{PEAK_RSS_MARKER}', kib, file=sys.stderr, flush=True)\n"
    "    except (OSError, StopIteration):\n"
    "        pass\n"
    "atexit.register(_report_peak_rss)\n"
)


def measured_module(module: str, *args: str, python_flags: Sequence[str] = ()) -> list[str]:
    """``python [python_flags] -m module args``, run so that it reports its own peak resident set."""
    code = (
        PEAK_RSS_PRELUDE + f"import runpy\nsys.argv[0] = {module!r}\n"
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
    )
    return [sys.executable, *python_flags, "-c", code, *args]


@dataclass
class ChildRun:
    """A finished child process: exit status, wall time (s), peak resident memory (bytes), output."""

    returncode: int
    wall_s: float
    max_rss_bytes: int
    stdout: str
    stderr: str


def run_child(command: Sequence[str], env: Optional[dict[str, str]] = None) -> ChildRun:
    """Run ``command`` and measure it: wall time from start to exit, and its peak resident set:
    the one it reported itself (``PEAK_RSS_PRELUDE``; the marker line is removed from stderr), else
    ``os.wait4``'s ru_maxrss for that child (an upper bound on Linux, see ``PEAK_RSS_MARKER``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(list(command), stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    max_rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)  # macOS reports bytes, Linux KiB
    lines = stderr.splitlines(keepends=True)
    reported = [line for line in lines if line.startswith(PEAK_RSS_MARKER)]
    if reported:
        max_rss = int(reported[-1].split()[1]) * 1024
        stderr = "".join(line for line in lines if not line.startswith(PEAK_RSS_MARKER))
    return ChildRun(process.returncode, wall, max_rss, stdout, stderr)


def set_torch_threads() -> int:
    """Let torch use every core this process may run on (as the machine has); returns the count."""
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(cores)
    return cores


def _version(distribution: str) -> Optional[str]:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """The machine and the software measured (versions read without importing the frameworks)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": cores,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in (
                "vggspec",
                "torch",
                "torchvision",
                "keras",
                "tensorflow",
                "tensorflow-cpu",
                "numpy",
                "h5py",
                "safetensors",
            )
        },
        "env": {name: os.environ.get(name) for name in ("TF_ENABLE_ONEDNN_OPTS", "OMP_NUM_THREADS", "KERAS_BACKEND")},
    }
