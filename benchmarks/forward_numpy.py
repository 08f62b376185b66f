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

from typing import Any

from benchmarks.common import Case
from benchmarks.versus_torch import measure_against_torch
from benchmarks.versus_torch import ratio_names as _ratio_names

GOALS = {1: None, 8: (">=", 0.333)}  # within 3x of torch at batch 8


def ratio_names() -> list[str]:
    return _ratio_names("forward_numpy")


def measure(case: Case) -> dict[str, Any]:
    import numpy as np

    details, ratios, _ = measure_against_torch(case, "numpy", "forward_numpy", GOALS)
    return {"details": {**details, "numpy": np.__version__}, "ratios": ratios}
