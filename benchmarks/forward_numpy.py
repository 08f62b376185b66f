"""Forward throughput (images/s, fp32, CPU) of the numpy backend's VGG16 (the reference) against the torch backend's.

Candidates, with the same weights (one random bundle set into each through ``set_weights``):
- ``numpy``: ``vggspec.build(spec, backend="numpy")``, every layer in plain NumPy, each convolution one
  matrix product (im2col: ``sliding_window_view`` and ``tensordot``, NumPy's BLAS and its threads);
- ``torch``: the torch backend's VGG16 (eval mode, no autograd), the reference;
- ``torch_again``: a second copy of the reference: the A/A ratio it gives is the noise floor.

Each is called as a user calls a backend, ``backend.predict(model, images)``: NHWC float32 numpy in,
numpy out. Batch 1 and 8. The figures are ``numpy / torch`` images/s; the goal, at batch 8, is within
3x of torch (>= 0.333): the reference is written for clarity, not speed, and need not be faster.
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.common import Case, interleaved_rates, set_torch_threads, speed_figure

BATCHES = (1, 8)
GOALS = {1: None, 8: (">=", 0.333)}  # within 3x of torch at batch 8


def ratio_names() -> list[str]:
    return [
        f"forward_numpy/batch{batch}/{versus}" for batch in BATCHES for versus in ("vs_torch_backend", "control_a_vs_a")
    ]


def measure(case: Case) -> dict[str, Any]:
    import numpy as np

    import vggspec
    from vggspec.backends import get_backend
    from vggspec.parity.inputs import random_bundle

    threads = set_torch_threads()
    plan = vggspec.plan(case.spec())
    bundle = random_bundle(plan, seed=0)
    backends = {"numpy": get_backend("numpy"), "torch": get_backend("torch"), "torch_again": get_backend("torch")}
    models = {}
    for name, backend in backends.items():
        models[name] = backend.build(plan)
        backend.set_weights(models[name], plan, bundle)

    rng = np.random.default_rng(0)
    check = rng.standard_normal((2, case.input_size, case.input_size, 3), dtype=np.float32) * 64
    expected = backends["torch"].predict(models["torch"], check)
    difference = {
        name: float(np.abs(backends[name].predict(models[name], check) - expected).max())
        for name in ("numpy", "torch_again")
    }

    rows = []
    ratios: dict[str, Any] = {}
    for batch in BATCHES:
        x = rng.standard_normal((batch, case.input_size, case.input_size, 3), dtype=np.float32) * 64
        print(f"forward_numpy: batch {batch}", file=sys.stderr, flush=True)
        rates = interleaved_rates(
            {name: (lambda b=backends[name], m=model, x=x: b.predict(m, x)) for name, model in models.items()},
            items_per_call=batch,
            repeats=case.forward_repeats,
            warmup=case.warmup + 1,
            min_sample_s=case.forward_min_sample_s,
        )
        rows.append({"batch": batch, "images_per_s": rates})
        ratios[f"forward_numpy/batch{batch}/vs_torch_backend"] = speed_figure(
            rates, "numpy", "torch", goal=GOALS[batch]
        )
        ratios[f"forward_numpy/batch{batch}/control_a_vs_a"] = speed_figure(
            rates, "torch_again", "torch", about="two identical torch backend models: the noise floor; "
        )
    return {
        "details": {
            "spec": case.name,
            "input": [case.input_size, case.input_size, 3],
            "dtype": "float32",
            "numpy": np.__version__,
            "torch_threads": threads,
            "call": "backend.predict(model, images), NHWC float32 numpy",
            "max_abs_output_difference_vs_torch": difference,
            "results": rows,
        },
        "ratios": ratios,
    }
