"""Forward throughput (images/s, fp32, CPU) of the Keras backend's VGG16 against keras.applications.

Candidates, with the same weights (``set_weights`` of one into the other, shapes checked):
- ``vggspec``: ``vggspec.build(spec, backend="keras")``, the functional model compiled from the plan;
- ``keras_applications``: ``keras.applications.VGG16(weights=None)`` (for ``--quick``, with the
  case's input shape and class count).

Both are called the same way, ``model.predict_on_batch(x)`` (Keras' compiled predict step,
traced during the warm-up), on NHWC float32 batches of 1 and 8. The figures are
``vggspec / keras_applications`` images/s (goal >= 0.98).
"""

from __future__ import annotations

import sys
from typing import Any

from benchmarks.common import Case, interleaved_rates, speed_figure

BATCHES = (1, 8)
GOAL = (">=", 0.98)


def ratio_names() -> list[str]:
    return [
        f"forward_keras/batch{batch}/{versus}"
        for batch in BATCHES
        for versus in ("vs_keras_applications", "control_a_vs_a")
    ]


def measure(case: Case) -> dict[str, Any]:
    import keras
    import numpy as np

    import vggspec

    keras.utils.set_random_seed(0)
    candidate = vggspec.build(case.spec(), backend="keras")
    reference = keras.applications.VGG16(
        weights=None, input_shape=(case.input_size, case.input_size, 3), classes=case.classes
    )
    weights = candidate.get_weights()
    expected_shapes = [w.shape for w in reference.get_weights()]
    if [w.shape for w in weights] != expected_shapes:
        raise ValueError(
            f"vggspec's Keras VGG16 weights: expected shapes {expected_shapes}, received {[w.shape for w in weights]}"
        )
    reference.set_weights(weights)
    # a second copy of the reference: the A/A ratio it gives is the noise floor of this machine
    again = keras.applications.VGG16(
        weights=None, input_shape=(case.input_size, case.input_size, 3), classes=case.classes
    )
    again.set_weights(weights)
    models = {"vggspec": candidate, "keras_applications": reference, "keras_applications_again": again}

    rng = np.random.default_rng(0)
    check = rng.standard_normal((2, case.input_size, case.input_size, 3), dtype=np.float32)
    difference = float(np.abs(candidate.predict_on_batch(check) - reference.predict_on_batch(check)).max())

    rows = []
    ratios: dict[str, Any] = {}
    for batch in BATCHES:
        x = rng.standard_normal((batch, case.input_size, case.input_size, 3), dtype=np.float32)
        print(f"forward_keras: batch {batch}", file=sys.stderr, flush=True)
        rates = interleaved_rates(
            {name: (lambda m=model, x=x: m.predict_on_batch(x)) for name, model in models.items()},
            items_per_call=batch,
            repeats=case.forward_repeats,
            warmup=case.warmup + 1,
            min_sample_s=case.forward_min_sample_s,
        )
        rows.append({"batch": batch, "images_per_s": rates})
        ratios[f"forward_keras/batch{batch}/vs_keras_applications"] = speed_figure(
            rates, "vggspec", "keras_applications", goal=GOAL
        )
        ratios[f"forward_keras/batch{batch}/control_a_vs_a"] = speed_figure(
            rates,
            "keras_applications_again",
            "keras_applications",
            about="two identical keras.applications models: the noise floor; ",
        )
    return {
        "details": {
            "spec": case.name,
            "input": [case.input_size, case.input_size, 3],
            "dtype": "float32",
            "keras": keras.__version__,
            "keras_backend": keras.backend.backend(),
            "call": "model.predict_on_batch(x)",
            "max_abs_output_difference": difference,
            "results": rows,
        },
        "ratios": ratios,
    }
