"""Forward throughput (images/s, fp32, CPU) of the onnx backend's VGG16 (onnxruntime) against the torch backend's.

Candidates, with the same weights (one random bundle set into each through ``set_weights``):
- ``onnx``: ``vggspec.build(spec, backend="onnx")``, the ONNX graph emitted from the plan, run by
  onnxruntime as the backend ships it (CPUExecutionProvider here, its default threads and optimisations);
- ``torch``: the torch backend's VGG16 (eval mode, no autograd), the reference;
- ``torch_again``: a second copy of the reference: the A/A ratio it gives is the noise floor.

Each is called as a user calls a backend, ``backend.predict(model, images)``: NHWC float32 numpy
in, numpy out (the torch backend transposes to NCHW and back inside it). Batch 1 and 8. The
figures are ``onnx / torch`` images/s (goal >= 1.0).
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import Case
from benchmarks.versus_torch import measure_against_torch
from benchmarks.versus_torch import ratio_names as _ratio_names

GOALS = {1: (">=", 1.0), 8: (">=", 1.0)}


def ratio_names() -> list[str]:
    return _ratio_names("forward_onnx")


def measure(case: Case) -> dict[str, Any]:
    import onnx
    import onnxruntime

    details, ratios, model = measure_against_torch(case, "onnx", "forward_onnx", GOALS)
    versions = {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    return {"details": {**details, **versions, "providers": model.session().get_providers()}, "ratios": ratios}
