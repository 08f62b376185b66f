"""``vggspec convert`` of a full-size VGG16 ``.h5`` against a plain copy and a hand-written conversion.

The source is written here with h5py in the Keras 1 layout of the published
``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` (root attribute ``layer_names`` with
``input_1`` first; one group per layer with ``weight_names`` such as ``block1_conv1_W_1:0``;
the datasets directly in the group; conv kernels HWIO, dense (in, out)), with random float32
values: 138,357,544 numbers, about 553 MB, like the real file.

For each target (``.safetensors``, ``.pt``), ``python -m vggspec convert SRC DST`` runs as a
child process, interleaved with ``shutil.copyfile(SRC, COPY)`` and with the same conversion
written by hand the way a user would (``HAND_WRITTEN``: h5py reads every array, numpy
transposes them, then ``torch.save`` of the state dict or ``safetensors.numpy.save_file``), also
a child process reporting its own peak memory:
- time: the conversion's wall time (process start to exit) / the copy's (goal <= 2), and / the
  hand-written one's (goal <= 1.0);
- memory: the converting process's peak resident set (its VmHWM, which it prints at exit,
  see ``benchmarks.common.measured_module``) / the source file's size (goal <= 1.3); the
  hand-written one's in the details;
- TensorFlow: a run with ``python -X importtime`` lists every module imported; tensorflow
  must not be among them (those runs also warm the interpreter's files and are not timed).

Page cache: the source was just written, so it is in the page cache for every copy and
every conversion alike (warm cache); outputs are deleted after each run.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from typing import Any

import numpy as np

from vggspec.planner.layers import InputLayer

from benchmarks.common import PEAK_RSS_PRELUDE, Case, figure, measured_module, median, ratio, run_child

TARGETS = {"safetensors": ".safetensors", "pt": ".pt"}
TIME_GOAL = ("<=", 2.0)
HAND_WRITTEN_GOAL = ("<=", 1.0)
MEMORY_GOAL = ("<=", 1.3)
KERAS1_WORDS = {"kernel": "W", "bias": "b"}
REPORTED_SECONDS = re.compile(r"([0-9]+(?:\.[0-9]+)?) s\s*$")

# The conversions as a user writes them for the Keras 1 file (python -c CODE SRC DST): every array read with
# h5py, transposed with numpy where torch's layout differs, then one call that writes the file.
HAND_WRITTEN = {
    "safetensors": """
import sys
import h5py
from safetensors.numpy import save_file

source, destination = sys.argv[1], sys.argv[2]
arrays = {}
with h5py.File(source, "r") as file:
    for layer in file.attrs["layer_names"]:
        group = file[layer.decode()]
        for stored in group.attrs["weight_names"]:
            name = "kernel" if "_W_" in stored.decode() else "bias"
            arrays[f"{layer.decode()}/{name}"] = group[stored.decode()][()]
save_file(arrays, destination)
""",
    "pt": """
import sys
import h5py
import numpy as np
import torch

source, destination = sys.argv[1], sys.argv[2]
state = {}
with h5py.File(source, "r") as file:
    index, dense, channels = 0, 0, 0
    for layer in (name.decode() for name in file.attrs["layer_names"]):
        group = file[layer]
        if "conv" in layer:  # torchvision's features: conv, ReLU (and a pool after each block)
            kernel = group[f"{layer}_W_1:0"][()]
            channels = kernel.shape[3]
            state[f"features.{index}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
            state[f"features.{index}.bias"] = torch.from_numpy(group[f"{layer}_b_1:0"][()])
            index += 2
        elif "pool" in layer:
            index += 1
        elif layer in ("fc1", "fc2", "predictions"):  # classifier.0, .3, .6 (Linear, ReLU, Dropout)
            kernel = group[f"{layer}_W_1:0"][()]
            if layer == "fc1":  # rows in Keras' H,W,C flatten order -> torch's C,H,W columns
                side = int(round((kernel.shape[0] // channels) ** 0.5))
                weight = kernel.reshape(side, side, channels, -1).transpose(3, 2, 0, 1).reshape(kernel.shape[1], -1)
            else:
                weight = kernel.T
            state[f"classifier.{dense}.weight"] = torch.from_numpy(np.ascontiguousarray(weight))
            state[f"classifier.{dense}.bias"] = torch.from_numpy(group[f"{layer}_b_1:0"][()])
            dense += 3
torch.save(state, destination)
""",
}


def ratio_names() -> list[str]:
    return [
        f"conversion/{target}/{what}"
        for target in TARGETS
        for what in ("time_vs_copy", "time_vs_hand_written", "peak_rss_vs_file_size", "tensorflow_imported")
    ]


def write_keras1_h5(path: str, plan: Any, seed: int = 0) -> int:
    """Random float32 weights for ``plan`` in the Keras 1 layout (see the module docstring); returns bytes."""
    import h5py

    rng = np.random.default_rng(seed)
    names = ["input_1" if isinstance(layer, InputLayer) else layer.name for layer in plan.layers]
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.asarray([name.encode() for name in names])
        for name, layer in zip(names, plan.layers):
            group = file.create_group(name)
            stored = [f"{name}_{KERAS1_WORDS[weight]}_1:0" for weight, _ in layer.weights]
            group.attrs["weight_names"] = np.asarray([s.encode() for s in stored], dtype="S")
            for key, (_, shape) in zip(stored, layer.weights):
                group.create_dataset(key, data=rng.standard_normal(shape, dtype=np.float32))
    return os.path.getsize(path)


def imported_modules(importtime_stderr: str) -> set[str]:
    """Top-level module names in ``python -X importtime`` output ("import time: self | cumulative | name")."""
    names = set()
    for line in importtime_stderr.splitlines():
        columns = line.removeprefix("import time:").split("|")
        if line.startswith("import time:") and len(columns) == 3 and columns[0].strip().isdigit():  # not the header
            names.add(columns[2].strip().split(".")[0])
    return names


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no output)"


def _convert_command(source: str, destination: str, spec: str, importtime: bool = False) -> list[str]:
    """``python -m vggspec convert SOURCE DESTINATION --spec SPEC``, reporting its own peak memory."""
    flags = ["-X", "importtime"] if importtime else []
    return measured_module("vggspec", "convert", source, destination, "--spec", spec, python_flags=flags)


def _hand_written_command(target: str, source: str, destination: str) -> list[str]:
    return [sys.executable, "-c", PEAK_RSS_PRELUDE + HAND_WRITTEN[target], source, destination]


def measure(case: Case) -> dict[str, Any]:
    import vggspec

    plan = vggspec.plan(case.spec())
    directory = tempfile.mkdtemp(prefix="vggspec-bench-")
    try:
        source = os.path.join(directory, "vgg16_weights_tf_dim_ordering_tf_kernels.h5")
        print(
            f"conversion: writing {plan.total_params:,} random float32 weights to {source}", file=sys.stderr, flush=True
        )
        size = write_keras1_h5(source, plan)
        spec = case.spec_argument(directory)
        outputs = {target: os.path.join(directory, f"converted{suffix}") for target, suffix in TARGETS.items()}
        copy = os.path.join(directory, "copy.h5")

        imports: dict[str, dict[str, bool]] = {}
        for target, destination in outputs.items():  # untimed: checks imports, warms the interpreter's files
            run = run_child(_convert_command(source, destination, spec, importtime=True))
            if run.returncode != 0:
                raise RuntimeError(f"vggspec convert to {target} failed ({run.returncode}): {_last_line(run.stderr)}")
            modules = imported_modules(run.stderr)
            imports[target] = {name: name in modules for name in ("tensorflow", "keras", "torch")}
            os.remove(destination)

        hand = {f"hand_written_{target}": target for target in TARGETS}
        for target in hand.values():  # untimed: checks the reference runs, warms its files
            run = run_child(_hand_written_command(target, source, outputs[target]))
            if run.returncode != 0:
                raise RuntimeError(f"the hand-written conversion to {target} failed: {_last_line(run.stderr)}")
            os.remove(outputs[target])

        times: dict[str, list[float]] = {"copy": [], **{name: [] for name in (*TARGETS, *hand)}}
        peaks: dict[str, list[int]] = {name: [] for name in (*TARGETS, *hand)}
        reported: dict[str, list[float]] = {target: [] for target in TARGETS}
        written: dict[str, int] = {}
        order = list(times)
        for round_index in range(case.conversion_repeats):
            print(f"conversion: round {round_index + 1}/{case.conversion_repeats}", file=sys.stderr, flush=True)
            shift = round_index % len(order)
            for what in order[shift:] + order[:shift]:
                if what == "copy":
                    started = time.perf_counter()
                    shutil.copyfile(source, copy)
                    times["copy"].append(time.perf_counter() - started)
                    os.remove(copy)
                    continue
                if what in hand:
                    run = run_child(_hand_written_command(hand[what], source, outputs[hand[what]]))
                    if run.returncode != 0:
                        raise RuntimeError(f"{what} failed ({run.returncode}): {_last_line(run.stderr)}")
                    times[what].append(run.wall_s)
                    peaks[what].append(run.max_rss_bytes)
                    os.remove(outputs[hand[what]])
                    continue
                run = run_child(_convert_command(source, outputs[what], spec))
                if run.returncode != 0:
                    raise RuntimeError(f"vggspec convert to {what} failed ({run.returncode}): {_last_line(run.stderr)}")
                times[what].append(run.wall_s)
                peaks[what].append(run.max_rss_bytes)
                said = REPORTED_SECONDS.search(run.stdout.strip())
                if said:
                    reported[what].append(float(said.group(1)))
                written[what] = os.path.getsize(outputs[what])
                os.remove(outputs[what])
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    copy_s = median(times["copy"])
    ratios: dict[str, Any] = {}
    per_target: dict[str, Any] = {}
    for target in TARGETS:
        convert_s, peak = median(times[target]), max(peaks[target])
        hand_s, hand_peak = median(times[f"hand_written_{target}"]), max(peaks[f"hand_written_{target}"])
        ratios[f"conversion/{target}/time_vs_copy"] = figure(
            ratio(convert_s, copy_s),
            goal=TIME_GOAL,
            note=f"{convert_s:.2f} s (process start to exit) vs copy {copy_s:.2f} s, warm page cache",
        )
        paired = [a / b for a, b in zip(times[target], times[f"hand_written_{target}"])]
        ratios[f"conversion/{target}/time_vs_hand_written"] = figure(
            ratio(convert_s, hand_s),
            goal=HAND_WRITTEN_GOAL,
            note=f"{convert_s:.2f} s vs {hand_s:.2f} s (h5py + numpy + "
            f"{'torch.save' if target == 'pt' else 'safetensors save_file'}, {hand_peak / 1e6:,.0f} MB peak), "
            f"per round {min(paired):.2f}-{max(paired):.2f}",
        )
        ratios[f"conversion/{target}/peak_rss_vs_file_size"] = figure(
            peak / size, goal=MEMORY_GOAL, note=f"{peak / 1e6:,.0f} MB peak resident vs {size / 1e6:,.0f} MB file"
        )
        ratios[f"conversion/{target}/tensorflow_imported"] = figure(
            imports[target]["tensorflow"],
            unit="bool",
            goal=("==", False),
            note="imported: "
            + (", ".join(name for name, done in imports[target].items() if done) or "none")
            + " (of tensorflow, keras, torch)",
        )
        per_target[target] = {
            "wall_s_median": round(convert_s, 3),
            "wall_s": [round(t, 3) for t in times[target]],
            "seconds_the_command_reported_median": round(median(reported[target]), 2) if reported[target] else None,
            "peak_rss_bytes": peak,
            "output_bytes": written[target],
            "imported": imports[target],
            "hand_written": {
                "wall_s_median": round(hand_s, 3),
                "wall_s": [round(t, 3) for t in times[f"hand_written_{target}"]],
                "peak_rss_bytes": hand_peak,
            },
        }
    return {
        "details": {
            "spec": case.name,
            "source": "Keras 1 .h5 (layout of vgg16_weights_tf_dim_ordering_tf_kernels.h5), random float32",
            "source_bytes": size,
            "parameters": plan.total_params,
            "page_cache": "warm: the source was just written; copy and conversions measured alike",
            "copy_s_median": round(copy_s, 3),
            "copy_s": [round(t, 3) for t in times["copy"]],
            "targets": per_target,
        },
        "ratios": ratios,
    }
