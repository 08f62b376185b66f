"""Forward throughput (images/s, CPU) of VGG16 in int8 (the onnx backend's ``build --precision int8``) against the
references in float32, all in one run.

Candidates, with the same weights (one random bundle set into each through ``set_weights``):
- ``torch``: the torch backend's VGG16 in float32 (torchvision's module layout), the reference;
- ``torch_again``: a second copy of it: the A/A ratio is the noise floor;
- ``keras``: the Keras backend's VGG16 in float32 (``keras.applications``' layers);
- ``onnx``: the onnx backend's graph in float32 (onnxruntime);
- ``onnx_int8``: that graph quantized by the onnx backend's ``lower_precision`` (onnxruntime's static
  quantizer: QDQ, int8 weights per channel, uint8 activations, min-max calibration on 8 images of noise;
  the speed does not depend on what the calibration saw).

Each is called as a user calls a backend, ``backend.predict(model, images)``: NHWC float32 numpy in, numpy
out. Batch 1 and 8. The figures are each candidate's images/s over the torch backend's (goal for int8 at
batch 8: >= 4), and the int8 file's size over the float32 file's (goal <= 0.3).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import Case, figure, set_torch_threads, speed_figure
from benchmarks.versus_torch import BATCHES, rates_at_batch

CANDIDATES = ("onnx_int8", "onnx", "keras")
GOALS = {("onnx_int8", 8): (">=", 4.0)}
CALIBRATION_IMAGES = 8


def ratio_names() -> list[str]:
    names = [f"forward_int8/batch{batch}/{name}_vs_torch_backend" for batch in BATCHES for name in CANDIDATES]
    names += [f"forward_int8/batch{batch}/control_a_vs_a" for batch in BATCHES]
    return [*names, "forward_int8/int8_file_vs_float32_file"]


def _models(case: Case) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(backend by candidate, model by candidate, the plan)."""
    import numpy as np

    import vggspec
    from vggspec.backends import get_backend
    from vggspec.parity.inputs import random_bundle
    from vggspec.preprocessing import preprocess

    plan = vggspec.plan(case.spec())
    bundle = random_bundle(plan, seed=0)
    names = {"torch": "torch", "torch_again": "torch", "keras": "keras", "onnx": "onnx"}
    backends = {name: get_backend(backend) for name, backend in names.items()}
    models = {}
    for name, backend in backends.items():
        models[name] = backend.build(plan)
        backend.set_weights(models[name], plan, bundle)
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (CALIBRATION_IMAGES, case.input_size, case.input_size, 3)).astype(np.float32)
    batches = (preprocess(noise[i : i + 4], plan.preprocessing) for i in range(0, CALIBRATION_IMAGES, 4))
    print("forward_int8: quantizing", file=sys.stderr, flush=True)
    backends["onnx_int8"] = backends["onnx"]
    models["onnx_int8"] = backends["onnx"].lower_precision(models["onnx"], plan, "int8", batches, {})
    return backends, models, plan


def measure(case: Case) -> dict[str, Any]:
    import numpy as np
    import onnxruntime

    threads = set_torch_threads()
    backends, models, plan = _models(case)
    with tempfile.TemporaryDirectory(prefix="vggspec-int8-") as folder:
        sizes = {}
        for name in ("onnx", "onnx_int8"):
            path = Path(folder) / f"{name}.onnx"
            backends[name].save(models[name], str(path))
            sizes[name] = path.stat().st_size
    rng = np.random.default_rng(0)
    check = rng.standard_normal((2, case.input_size, case.input_size, 3), dtype=np.float32) * 64
    expected = backends["torch"].predict(models["torch"], check)
    difference = {
        name: float(np.abs(backends[name].predict(models[name], check) - expected).max())
        for name in ("torch_again", *CANDIDATES)
    }
    rows, ratios = [], {}
    for batch in BATCHES:
        rates = rates_at_batch(backends, models, case, rng, batch, "forward_int8")
        rows.append({"batch": batch, "images_per_s": rates})
        for name in CANDIDATES:
            ratios[f"forward_int8/batch{batch}/{name}_vs_torch_backend"] = speed_figure(
                rates, name, "torch", goal=GOALS.get((name, batch))
            )
        ratios[f"forward_int8/batch{batch}/control_a_vs_a"] = speed_figure(
            rates, "torch_again", "torch", about="two identical torch backend models: the noise floor; "
        )
    ratios["forward_int8/int8_file_vs_float32_file"] = figure(
        sizes["onnx_int8"] / sizes["onnx"], goal=("<=", 0.3), note=f"{sizes['onnx_int8']:,} vs {sizes['onnx']:,} bytes"
    )
    details = {
        "spec": case.name,
        "input": [case.input_size, case.input_size, 3],
        "torch_threads": threads,
        "onnxruntime": onnxruntime.__version__,
        "call": "backend.predict(model, images), NHWC float32 numpy",
        "max_abs_output_difference_vs_torch": difference,
        "file_bytes": sizes,
        "results": rows,
    }
    return {"details": details, "ratios": ratios}
