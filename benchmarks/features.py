"""Feature extraction: the torch extractor for ``block2_conv2`` alone against the whole VGG16.

``vggspec.build(spec, backend="torch", outputs=["block2_conv2"], trainable=False)`` builds
only the layers up to ``block2_conv2`` (four convolutions, one pool); the reference is the
whole network (``vggspec.build(spec, backend="torch")``), both with the same weights, batch 8,
fp32, in inference mode, timed in interleaved rounds. The figure is extractor / full model in
images/s: how much of a forward pass a perceptual loss on an early layer saves. The
extractor's output is checked equal to the full model's ``block2_conv2`` activation.
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.common import Case, interleaved_rates, set_torch_threads, speed_figure

BATCH = 8
LAYER = "block2_conv2"


def ratio_names() -> list[str]:
    return [f"features/{LAYER}_vs_full_model"]


def measure(case: Case) -> dict[str, Any]:
    import numpy as np
    import torch

    import vggspec
    from vggspec.backends import get_backend
    from vggspec.parity.inputs import random_bundle

    threads = set_torch_threads()
    spec = case.spec()
    plan = vggspec.plan(spec)
    backend = get_backend("torch")
    full = backend.build(plan)
    backend.set_weights(full, plan, random_bundle(plan, seed=0))
    extractor_plan = plan.up_to(LAYER)
    part = backend.build(extractor_plan)
    backend.set_weights(part, extractor_plan, random_bundle(plan, seed=0))  # the same arrays, where they exist
    extractor = backend.extractor(part, extractor_plan, {LAYER: LAYER}, trainable=False)
    full.eval()
    x = torch.randn(BATCH, 3, case.input_size, case.input_size)
    with torch.inference_mode():
        expected = backend.activations(full, plan, x.permute(0, 2, 3, 1).numpy())[LAYER]
        received = extractor(x)[LAYER].permute(0, 2, 3, 1).numpy()
        difference = float(np.max(np.abs(expected - received)))
        print(f"features: {LAYER} vs the whole network, batch {BATCH}", file=sys.stderr, flush=True)
        rates = interleaved_rates(
            {"extractor": lambda: extractor(x), "full_model": lambda: full(x)},
            items_per_call=BATCH,
            repeats=case.forward_repeats,
            warmup=case.warmup,
            min_sample_s=case.forward_min_sample_s,
        )
    params = {"extractor": sum(p.numel() for p in extractor.parameters()), "full_model": plan.total_params}
    return {
        "details": {
            "spec": case.name,
            "input": [case.input_size, case.input_size, 3],
            "batch": BATCH,
            "threads": threads,
            "layer": LAYER,
            "parameters": params,
            "max_abs_difference_vs_full_model_activation": difference,
            "images_per_s": rates,
        },
        "ratios": {
            f"features/{LAYER}_vs_full_model": speed_figure(
                rates,
                "extractor",
                "full_model",
                about=f"{params['extractor']:,} of {params['full_model']:,} parameters; ",
            )
        },
    }
