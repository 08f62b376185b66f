"""``.safetensors`` weight files: the bundle's flat keys, canonical layout.

Keys are ``<layer>/<weight>`` (``block1_conv1/kernel``, ``fc1/bias``,
``block1_conv1_bn/moving_variance``), arrays in the canonical layout (conv HWIO,
dense (in, out), fc1 rows in H,W,C order), so ``.h5 -> .safetensors`` is a plain copy.
The metadata says so (``layout``) and names the file the arrays came from (``source``).

A file with torchvision's keys (``features.0.weight``, ``classifier.0.weight``, as the
PyTorch hubs publish) is read too: it is a torch state dict, mapped with the plan.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import numpy as np

from vggspec.errors import WeightsError
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import SEPARATOR, WeightBundle
from vggspec.weights.layout import torch_to_bundle

LAYOUT = "vggspec canonical (keras): conv kernel HWIO, dense kernel (in, out), fc1 rows in H,W,C order"
WEIGHT_ORDER = {name: index for index, name in
                enumerate(("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance"))}
TORCH_KEY = re.compile(r"^(features|classifier)\.[0-9]+\.[a-z_]+$")


def read_safetensors(path: Union[str, Path], plan: Optional[Plan] = None) -> WeightBundle:
    """Read a ``.safetensors`` file; layers in the plan's order when a plan is given."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: expected a weight file, received a path that does not exist")
    try:
        arrays = load_file(path)
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"{path}: expected a safetensors file, received one it cannot read ({error})") from None
    if arrays and all(TORCH_KEY.match(key) for key in arrays):
        if plan is None:
            raise WeightsError(f"{path}: expected a spec to map torchvision keys (features.N, classifier.N) "
                               "to layers, received none")
        return torch_to_bundle(plan, arrays, source=str(path))
    for key in arrays:
        layer, _, name = key.rpartition(SEPARATOR)
        if not layer or not name:
            raise WeightsError(f"{path}: expected keys LAYER/WEIGHT (e.g. block1_conv1/kernel), received {key!r}")
    # the file keeps no order: layers in the plan's order, weights in Keras' order
    layer_order = {layer.name: index for index, layer in enumerate(plan.layers)} if plan is not None else {}
    bundle = WeightBundle.from_flat(arrays, source=str(path))
    bundle.layers = {layer: dict(sorted(weights.items(), key=lambda item: _position(WEIGHT_ORDER, item[0])))
                     for layer, weights in sorted(bundle.layers.items(),
                                                  key=lambda item: _position(layer_order, item[0]))}
    return bundle


def _position(order: dict[str, int], name: str) -> tuple[int, str]:
    return order.get(name, len(order)), name


def write_safetensors(path: Union[str, Path], bundle: WeightBundle,
                      progress: Callable[[Iterable[str]], Iterable[str]] = lambda items: items) -> None:
    """Write ``bundle`` with keys ``<layer>/<weight>``; metadata: format, layout, source."""
    from safetensors.numpy import save_file

    arrays: dict[str, np.ndarray] = {}
    for layer in progress(list(bundle.layers)):
        for name, array in bundle.layers[layer].items():
            arrays[f"{layer}{SEPARATOR}{name}"] = np.ascontiguousarray(array)
    save_file(arrays, path, metadata={"format": "np", "layout": LAYOUT, "source": Path(bundle.source).name})
