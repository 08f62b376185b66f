"""A backend's forward throughput against the torch backend's, as users call both: shared by the onnx and numpy
benchmarks.

The candidate and the reference (and a second copy of it, ``torch_again``: the A/A ratio is the noise floor) get the
same weights, one random bundle set through ``set_weights``, and are called as ``backend.predict(model, images)``:
NHWC float32 numpy in, numpy out (the torch backend transposes to NCHW and back inside it). Batch 1 and 8.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from benchmarks.common import Case, interleaved_rates, set_torch_threads, speed_figure

BATCHES = (1, 8)


def ratio_names(prefix: str) -> list[str]:
    return [f"{prefix}/batch{batch}/{versus}" for batch in BATCHES for versus in ("vs_torch_backend", "control_a_vs_a")]


def rates_at_batch(
    backends: dict[str, Any], models: dict[str, Any], case: Case, rng: Any, batch: int, prefix: str
) -> dict[str, float]:
    """Images/s of every model's ``backend.predict`` on one batch of random images (NHWC, scale 64), the models
    called in turn (``interleaved_rates``: load on the machine falls on all of them alike)."""
    import numpy as np

    x = rng.standard_normal((batch, case.input_size, case.input_size, 3), dtype=np.float32) * 64
    print(f"{prefix}: batch {batch}", file=sys.stderr, flush=True)
    return interleaved_rates(
        {name: (lambda b=backends[name], m=model, x=x: b.predict(m, x)) for name, model in models.items()},
        items_per_call=batch,
        repeats=case.forward_repeats,
        warmup=case.warmup + 1,
        min_sample_s=case.forward_min_sample_s,
    )


def measure_against_torch(
    case: Case, candidate: str, prefix: str, goals: dict[int, Optional[tuple[str, float]]]
) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(details, ratios, the candidate's model): ``candidate / torch`` images/s at each batch, with its goal."""
    import numpy as np

    import vggspec
    from vggspec.backends import get_backend
    from vggspec.parity.inputs import random_bundle

    threads = set_torch_threads()
    plan = vggspec.plan(case.spec())
    bundle = random_bundle(plan, seed=0)
    backends = {candidate: get_backend(candidate), "torch": get_backend("torch"), "torch_again": get_backend("torch")}
    models = {}
    for name, backend in backends.items():
        models[name] = backend.build(plan)
        backend.set_weights(models[name], plan, bundle)

    rng = np.random.default_rng(0)
    check = rng.standard_normal((2, case.input_size, case.input_size, 3), dtype=np.float32) * 64
    expected = backends["torch"].predict(models["torch"], check)
    difference = {
        name: float(np.abs(backends[name].predict(models[name], check) - expected).max())
        for name in (candidate, "torch_again")
    }

    rows = []
    ratios: dict[str, Any] = {}
    for batch in BATCHES:
        rates = rates_at_batch(backends, models, case, rng, batch, prefix)
        rows.append({"batch": batch, "images_per_s": rates})
        ratios[f"{prefix}/batch{batch}/vs_torch_backend"] = speed_figure(rates, candidate, "torch", goal=goals[batch])
        ratios[f"{prefix}/batch{batch}/control_a_vs_a"] = speed_figure(
            rates, "torch_again", "torch", about="two identical torch backend models: the noise floor; "
        )
    details = {
        "spec": case.name,
        "input": [case.input_size, case.input_size, 3],
        "dtype": "float32",
        "torch_threads": threads,
        "call": "backend.predict(model, images), NHWC float32 numpy",
        "max_abs_output_difference_vs_torch": difference,
        "results": rows,
    }
    return details, ratios, models[candidate]
