"""int8 against float32 on real data: a small VGG-style network trained by ``vggspec finetune`` on scikit-learn's
digits, then quantized by ``vggspec build --precision int8`` and scored by ``vggspec evaluate``.

The data: scikit-learn's copy of the UCI handwritten digits (1,797 scans of 8x8 pixels, 17 grey levels, ten
classes; it ships inside scikit-learn's wheel, no download), written as 32x32 grey PNGs (each pixel a 4x4
block, levels 0..16 scaled to 0..255) into class folders, one image in five of each class in ``val``
(:func:`write_digits`). The network: :data:`DIGITS_YAML` (three VGG blocks of 3x3 convolutions, 16/32/64
filters, one hidden FC layer of 64 units), trained from scratch with the torch backend (``--augment none``:
flips are wrong for digits). The int8 model is calibrated on the training images and checked by the build's
gate on the one in five held out of them; ``evaluate`` then scores it on ``val`` beside the run's best
checkpoint in float32. Every step is the command line a user would type (shown in ``details.commands``).

Figures: the int8 accuracy minus the float32 accuracy (goal: within 0.5 points), the top-1 agreement on
``val`` (goal >= 0.99) and the int8 file's size against the float32 .onnx file's (goal <= 0.3).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Case, figure

DIGITS_YAML = """\
name: digits
layers: [conv3-16, conv3-16, maxpool,
         conv3-32, conv3-32, maxpool,
         conv3-64, conv3-64, maxpool]
input_shape: [32, 32, 1]
fc: [64]
dropout: 0.25
classes: 10
preprocessing: tf
"""
VAL_EVERY = 5  # one image in five of each class is a validation image
SCALE = 4  # 8x8 scans drawn 32x32


def ratio_names() -> list[str]:
    return [
        "digits/int8_minus_float32_accuracy_points",
        "digits/int8_top1_agreement",
        "digits/int8_file_vs_float32_file",
    ]


def write_digits(dest: Path, every: int = 1) -> dict[str, int]:
    """scikit-learn's digits (``every``-th of them) as DIR/{train,val}/<digit>/<n>.png, 32x32 grey; the image count
    of each split."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    counts = {"train": 0, "val": 0}
    seen: dict[int, int] = {}
    for index, (pixels, label) in enumerate(zip(digits.images[::every], digits.target[::every])):
        order = seen.get(int(label), 0)
        seen[int(label)] = order + 1
        split = "val" if order % VAL_EVERY == VAL_EVERY - 1 else "train"
        folder = dest / split / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        grey = np.clip(np.kron(pixels, np.ones((SCALE, SCALE))) * 16, 0, 255).astype(np.uint8)
        Image.fromarray(grey, mode="L").save(folder / f"{index:04d}.png")
        counts[split] += 1
    return counts


def _vggspec(*args: Any) -> tuple[str, float]:
    """Run ``python -m vggspec ARGS``; (its stdout, seconds). Its errors end the measure."""
    command = [sys.executable, "-m", "vggspec", *map(str, args)]
    print("$ vggspec " + " ".join(map(str, args)), file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"vggspec {' '.join(map(str, args))}: exit status {done.returncode}")
    print(done.stdout, file=sys.stderr, end="", flush=True)
    return done.stdout, round(time.perf_counter() - started, 1)


def measure(case: Case) -> dict[str, Any]:
    quick = not case.is_vgg16
    epochs = 1 if quick else 8
    with tempfile.TemporaryDirectory(prefix="vggspec-digits-") as folder:
        root = Path(folder)
        counts = write_digits(root / "digits", every=4 if quick else 1)
        spec = root / "digits.yaml"
        spec.write_text(DIGITS_YAML)
        run = root / "run"
        outputs, seconds = {}, {}
        steps = {
            "finetune": (
                "finetune",
                spec,
                "--data",
                root / "digits",
                "--backend",
                "torch",
                "--epochs",
                epochs,
                "--augment",
                "none",
                "--out",
                run,
            ),
            "build_float32": (
                "build",
                spec,
                "--backend",
                "onnx",
                "--weights",
                run / "best.pt",
                "--out",
                root / "digits.onnx",
            ),
            "build_int8": (
                "build",
                spec,
                "--backend",
                "onnx",
                "--weights",
                run / "best.pt",
                "--precision",
                "int8",
                "--calibrate",
                root / "digits" / "train",
                "--min-agreement",
                "0",
                "--out",
                root / "digits-int8.onnx",
            ),
            "evaluate_int8": ("evaluate", run, "--weights", root / "digits-int8.onnx", "--json"),
        }
        for name, args in steps.items():
            outputs[name], seconds[name] = _vggspec(*args)
        scored = json.loads(outputs["evaluate_int8"])
        sizes = {name: (root / f"{name}.onnx").stat().st_size for name in ("digits", "digits-int8")}
    versus = scored["versus_float32"]
    points = (versus["accuracy"] - versus["reference_accuracy"]) * 100
    ratios = {
        "digits/int8_minus_float32_accuracy_points": figure(
            points,
            unit="points",
            goal=(">=", -0.5),
            note=f"float32 {versus['reference_accuracy']:.4f}, "
            f"int8 {versus['accuracy']:.4f} on {versus['images']} val images",
        ),
        "digits/int8_top1_agreement": figure(versus["top1"], unit="share", goal=(">=", 0.99)),
        "digits/int8_file_vs_float32_file": figure(
            sizes["digits-int8"] / sizes["digits"],
            goal=("<=", 0.3),
            note=f"{sizes['digits-int8']:,} vs {sizes['digits']:,} bytes",
        ),
    }
    details = {
        "images": counts,
        "epochs": epochs,
        "seconds": seconds,
        "build_int8": outputs["build_int8"].strip().splitlines(),
        "evaluate_int8": scored,
        "file_bytes": sizes,
    }
    return {"details": details, "ratios": ratios}
