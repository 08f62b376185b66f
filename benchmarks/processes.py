"""Fine-tuning in one process vs two, per framework: torch (torchrun), Keras on TensorFlow (two TF_CONFIG
workers) and Keras on JAX (two processes that keras.distribution joins).

``specs/examples/small64.yaml`` from scratch on the drawn two-class image set (as ``finetune``: 64x64,
200 training and 60 validation images per class), the same global batch of 16 in both: one process with
``--batch-size 16``, two with ``--global-batch-size 16`` (8 each), every process with ``OMP_NUM_THREADS=1``.
The figures are images per second (training and validation images of an epoch over the median seconds
of the epochs after the first, from metrics.csv) and the two / one ratio.

On a machine of 2 cores the second process only takes the second core, which one process' framework
mostly leaves idle: the ratio measures the overhead of joining the processes and of averaging the
gradients each step, not the speed-up a second machine would bring.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Case, figure, machine, median, ratio
from benchmarks.finetune import SPEC, make_image_set

FRAMEWORKS = ("torch", "keras-tensorflow", "keras-jax")
GLOBAL_BATCH = 16
RUN_TIMEOUT_S = 900


def ratio_names() -> list[str]:
    return [
        f"processes/{framework}/{what}"
        for framework in FRAMEWORKS
        for what in ("one_images_per_s", "two_images_per_s", "two_vs_one")
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _commands(framework: str, processes: int, args: list[str]) -> list[tuple[list[str], dict[str, str]]]:
    """(command, environment) of each process to start for one run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finetune = ["-m", "vggspec", "finetune", *args, "--backend", framework.split("-")[0]]
    if framework == "torch":
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        return [([sys.executable, *(launcher if processes > 1 else []), *finetune], env)]
    env["KERAS_BACKEND"] = framework.split("-")[1]
    if processes == 1:
        return [([sys.executable, *finetune], env)]
    from vggspec.training.distributed import KERAS_DISTRIBUTION, TF_CONFIG, launch_environment

    source = TF_CONFIG if framework == "keras-tensorflow" else KERAS_DISTRIBUTION
    addresses = [f"127.0.0.1:{_free_port()}" for _ in range(processes)]
    return [
        ([sys.executable, *finetune], {**env, **launch_environment(source, addresses, i)}) for i in range(processes)
    ]


def _train(framework: str, processes: int, data: Path, out: Path, epochs: int) -> dict[str, Any]:
    """One run (its processes started together): seconds per epoch and images/s."""
    batch = ["--batch-size", str(GLOBAL_BATCH)] if processes == 1 else ["--global-batch-size", str(GLOBAL_BATCH)]
    args = [str(SPEC), "--data", str(data), "--epochs", str(epochs), *batch, "--workers", "1", "--out", str(out)]
    print(f"processes: {framework}, {processes} process(es), {epochs} epochs", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as logs:
        started = []
        for index, (command, env) in enumerate(_commands(framework, processes, args)):
            log = open(Path(logs, f"{index}.log"), "w+")  # noqa: SIM115 (closed below)
            started.append((subprocess.Popen(command, env=env, stdout=log, stderr=log), log))
        deadline = time.monotonic() + RUN_TIMEOUT_S
        failed = []
        for process, log in started:
            try:
                status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                status = process.wait()
            log.seek(0)
            if status != 0:
                failed.append(f"status {status}: {(log.read().strip().splitlines() or ['(no output)'])[-1]}")
            log.close()
    if failed:
        raise RuntimeError(f"{framework} in {processes} process(es): {'; '.join(failed)}")
    with open(out / "metrics.csv", newline="") as file:
        seconds = [float(row["seconds"]) for row in csv.DictReader(file)]
    record = json.loads((out / "run.json").read_text())
    images = record["train_images"] + record["val_images"]
    steady = median(seconds[1:] or seconds)
    return {"epoch_seconds": seconds, "images_per_s": images / steady, "ranks_agree": record.get("ranks_agree")}


def measure(case: Case) -> dict[str, Any]:
    about = machine()
    where = f"{about['cpu']}, {about['usable_cpus']} usable CPUs, OMP_NUM_THREADS=1"
    ratios: dict[str, Any] = {}
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vggspec-bench-processes-") as folder:
        root = Path(folder)
        data = make_image_set(root / "data", case.finetune_train_per_class, case.finetune_val_per_class)
        epochs = case.finetune_epochs
        for framework in FRAMEWORKS:
            runs: dict[str, Any] = {}  # "one", "two": the run in that many processes
            for processes, name in ((1, "one"), (2, "two")):
                try:
                    runs[name] = _train(framework, processes, data, root / f"{framework}-{name}", epochs)
                except Exception as error:  # the other frameworks are still measured
                    runs[name] = {"error": f"{type(error).__name__}: {error}"}
            details[framework] = runs
            prefix = f"processes/{framework}"
            note = f"global batch {GLOBAL_BATCH}, median of epochs 2-{epochs}; {where}"
            for name, run in runs.items():
                ratios[f"{prefix}/{name}_images_per_s"] = (
                    figure(None, reason=run["error"])
                    if "error" in run
                    else figure(round(run["images_per_s"], 1), unit="images/s", note=note)
                )
            rates = [runs[name].get("images_per_s") for name in ("one", "two")]
            ratios[f"{prefix}/two_vs_one"] = (
                figure(ratio(rates[1], rates[0]), note=f"{rates[1]:.1f} vs {rates[0]:.1f} images/s; {where}")
                if None not in rates
                else figure(None, reason="a run failed")
            )
    return {"ratios": ratios, "details": details}
