"""WeightBundle: a network's arrays by canonical layer name, in the canonical layout.

File readers produce bundles and file writers consume them; backends map a
bundle to and from their own layout through :mod:`vggspec.weights.layout`.
The canonical layout is the one of the Keras weight files (see that module).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SEPARATOR = "/"


@dataclass
class WeightBundle:
    """``layers[layer_name][weight_name]`` -> array, layers in network order.

    Weight names: conv and dense ``kernel``, ``bias``; batch norm ``gamma``,
    ``beta``, ``moving_mean``, ``moving_variance``. ``source`` says where it came from.
    """

    layers: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    source: str = ""

    def flat(self) -> dict[str, np.ndarray]:
        """``{"block1_conv1/kernel": array, ...}`` (the safetensors keys)."""
        return {f"{layer}{SEPARATOR}{name}": array
                for layer, weights in self.layers.items() for name, array in weights.items()}

    @classmethod
    def from_flat(cls, arrays: dict[str, np.ndarray], source: str = "") -> "WeightBundle":
        bundle = cls(source=source)
        for key, array in arrays.items():
            layer, _, name = key.rpartition(SEPARATOR)
            bundle.layers.setdefault(layer, {})[name] = array
        return bundle

    @property
    def total_params(self) -> int:
        return sum(int(array.size) for weights in self.layers.values() for array in weights.values())
