"""The canonical weight layout: the one layout every file format and backend maps to and from.

It is the layout of the Keras weight files, so that reading
``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` needs no transform and
``.h5 -> .safetensors`` is a copy:

- conv ``kernel``: HWIO ``(kh, kw, in, out)``; ``bias``: ``(out,)``;
- dense ``kernel``: ``(in, out)``; ``bias``: ``(out,)``;
- the dense layer that reads the flattened map (fc1, :attr:`Dense.reads_flattened`) has
  its rows in Keras' flatten order of the (H, W, C) map: row = (h·W + w)·C + c;
- batch norm: ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``, each ``(C,)``;
- float32 once read (a file may store float16, bfloat16 or float64).

Each plan layer type lists its weights in this layout (``PlanLayer.weights``); other
layouts live in modules of their own (:mod:`vggspec.weights.torchvision`).
"""

from __future__ import annotations

import numpy as np

from vggspec.errors import WeightsError
from vggspec.planner.layers import Conv2D
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle


def swap_input_channels(bundle: WeightBundle, plan: Plan) -> WeightBundle:
    """Reverse the input channels of the first convolution (BGR <-> RGB); other layers are shared."""
    first = next((layer for layer in plan.layers if isinstance(layer, Conv2D)), None)
    if first is None or first.name not in bundle.layers:
        raise WeightsError(
            f"{bundle.source or 'weights'}: expected a first convolution to swap the channels of, received none"
        )
    layers = dict(bundle.layers)
    weights = dict(layers[first.name])
    weights["kernel"] = np.ascontiguousarray(weights["kernel"][:, :, ::-1, :])  # HWIO: the I axis
    layers[first.name] = weights
    return WeightBundle(layers=layers, source=bundle.source)
