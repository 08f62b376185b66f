"""Memory of ``vggspec predict`` on many images: it reads and runs them a batch at a time, so its peak should
follow the batch, not the number of files.

For each backend (torch, Keras, onnx), ``vggspec predict`` runs in a fresh process reporting its own peak
resident set, on 512 images of 224×224 (``--quick``: 64 of 32×32) and, as the reference in the same run, on
one batch of them (32). The figures: the peak on all the images over the peak on one batch (goal ≤ 1.2: the
images add what one batch of pixels holds, not 40 MB each) and the peak on all the images in GB (goal < 3).
The weights are random (seed 0), written as ``.safetensors``; the images are JPEGs of random pixels.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import Case, figure, measured_module, run_child

BACKENDS = ("torch", "keras", "onnx")
BATCH = 32  # vggspec predict's default batch: the reference run is one batch
MEMORY_RATIO_GOAL = ("<=", 1.2)
PEAK_GOAL_GB = ("<", 3.0)


def ratio_names() -> list[str]:
    return [f"predict/{backend}/{what}" for backend in BACKENDS for what in ("peak_all_vs_one_batch", "peak_gb")]


def _inputs(case: Case, folder: Path) -> tuple[str, Path, list[Path]]:
    """(the case's spec, a name or a file, random weights for it, the images)."""
    import numpy as np
    from PIL import Image

    import vggspec
    from vggspec.parity.inputs import random_bundle
    from vggspec.weights.formats import write_bundle

    spec_file = case.spec_argument(str(folder))
    plan = vggspec.plan(case.spec())
    weights = folder / "weights.safetensors"
    write_bundle(weights, random_bundle(plan, seed=0), plan)
    count = 512 if case.input_size >= 224 else 64
    rng = np.random.default_rng(0)
    images = []
    for index in range(count):
        path = folder / f"image{index:04d}.jpg"
        pixels = rng.integers(0, 256, (case.input_size, case.input_size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
        images.append(path)
    return spec_file, weights, images


def measure(case: Case) -> dict[str, Any]:
    details: dict[str, Any] = {"spec": case.name, "batch": BATCH, "backends": {}}
    ratios: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="vggspec-bench-predict-") as temporary:
        spec, weights, images = _inputs(case, Path(temporary))
        details["images"] = len(images)
        for backend in BACKENDS:
            peaks, seconds = {}, {}
            for label, chosen in (("all", images), ("one_batch", images[:BATCH])):
                print(f"predict: {backend}, {len(chosen)} images", file=sys.stderr, flush=True)
                run = run_child(
                    measured_module(
                        "vggspec",
                        "predict",
                        str(spec),
                        *map(str, chosen),
                        "--weights",
                        str(weights),
                        "--backend",
                        backend,
                        "--json",
                    )  # fmt: skip
                )
                if run.returncode != 0:
                    raise RuntimeError(f"vggspec predict with {backend} failed: {run.stderr[-2000:]}")
                peaks[label], seconds[label] = run.max_rss_bytes, round(run.wall_s, 2)
            details["backends"][backend] = {"peak_rss_bytes": peaks, "wall_s": seconds}
            note = (
                f"{peaks['all'] / 1e9:.2f} GB on {len(images)} images vs {peaks['one_batch'] / 1e9:.2f} GB on "
                f"{BATCH} ({seconds['all']} s vs {seconds['one_batch']} s)"
            )
            ratios[f"predict/{backend}/peak_all_vs_one_batch"] = figure(
                peaks["all"] / peaks["one_batch"], goal=MEMORY_RATIO_GOAL, note=note
            )
            ratios[f"predict/{backend}/peak_gb"] = figure(peaks["all"] / 1e9, unit="GB", goal=PEAK_GOAL_GB, note=note)
    return {"details": details, "ratios": ratios}
