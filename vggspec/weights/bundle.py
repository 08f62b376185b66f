"""WeightBundle: a network's arrays by canonical layer name, in the canonical layout.

File readers produce bundles and file writers consume them; backends map a
bundle to and from their own layout (:mod:`vggspec.weights.torchvision` for torch's).
The canonical layout is the one of the Keras weight files (see that module).

A reader describes each array of a file by its metadata first (a :class:`StoredArray`:
shape, element type, where it is) and reads its data only when asked, so that
:func:`vggspec.weights.fit.fit_bundle` checks every shape and dtype against the plan
before a byte is read: a small file cannot make vggspec allocate what it merely declares.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, TypeVar

import numpy as np

from vggspec.planner.budget import MAX_PARAMS

SEPARATOR = "/"
# The largest array a file may make vggspec read without a plan to check it against:
# a whole network at the spec budget (MAX_PARAMS parameters) in float32.
MAX_STORED_BYTES = MAX_PARAMS * 4


def archive_bytes_limit(params: int) -> int:
    """The most bytes the members of an archive (.keras, a zip-format .pt) may expand to for a
    network of ``params`` parameters: float64 copies twice over (a checkpoint's optimizer state)
    and 64 MiB for everything else. Checked on the declared sizes, before anything is read."""
    return 16 * params + (64 << 20)


@dataclass(frozen=True)
class StoredArray:
    """One array of a weight file, known by its metadata until ``read()`` reads its data.

    ``shape`` is in the canonical layout (for a file in torch's layout, the shape the
    transform gives when the stored rank allows one, else the stored shape);
    ``dtype`` names the stored element type (``float32``, ``bfloat16``, ``int64``, ``bool``,
    ``strings``, ...); ``stored`` says where it is and, where it differs from ``shape``, its
    stored shape (``dataset '/fc1/fc1_W_1:0'``, ``key 'classifier.0.weight' of shape (16, 500),
    torch's (out, in)``). ``read()`` returns the data as a numpy array in the canonical
    layout, or raises WeightsError naming the file.
    """

    shape: tuple[int, ...]
    dtype: str
    stored: str
    read: Callable[[], np.ndarray]
    transposed: bool = False  # the file's layout differs from the canonical one (torch)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @classmethod
    def of(cls, array: np.ndarray, stored: str = "") -> StoredArray:
        """An array already in memory, described as a file's array is."""
        array = np.asarray(array)
        return cls(tuple(array.shape), array.dtype.name, stored, lambda: array)


T = TypeVar("T")


def group_flat(arrays: Mapping[str, T]) -> dict[str, dict[str, T]]:
    """``{"block1_conv1/kernel": a}`` -> ``{"block1_conv1": {"kernel": a}}`` (keys in their order)."""
    layers: dict[str, dict[str, T]] = {}
    for key, array in arrays.items():
        layer, _, name = key.rpartition(SEPARATOR)
        layers.setdefault(layer, {})[name] = array
    return layers


@dataclass
class WeightBundle:
    """``layers[layer_name][weight_name]`` -> numpy array, layers in network order, canonical layout.

    Weight names: conv and dense ``kernel``, ``bias``; batch norm ``gamma``,
    ``beta``, ``moving_mean``, ``moving_variance``. ``source`` says where it came from.
    """

    layers: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    source: str = ""

    def flat(self) -> dict[str, np.ndarray]:
        """``{"block1_conv1/kernel": array, ...}`` (the safetensors keys)."""
        return {
            f"{layer}{SEPARATOR}{name}": array
            for layer, weights in self.layers.items()
            for name, array in weights.items()
        }

    @classmethod
    def from_flat(cls, arrays: Mapping[str, np.ndarray], source: str = "") -> WeightBundle:
        return cls(group_flat(arrays), source)

    def described(self) -> StoredBundle:
        """The same arrays as a :class:`StoredBundle` (for the one check, ``fit_bundle``)."""
        return StoredBundle(
            {
                layer: {name: StoredArray.of(array) for name, array in weights.items()}
                for layer, weights in self.layers.items()
            },
            self.source,
        )

    @property
    def total_params(self) -> int:
        return sum(int(array.size) for weights in self.layers.values() for array in weights.values())


@dataclass
class StoredBundle:
    """A weight file's arrays by canonical layer name, described but not read (what readers give):
    :func:`vggspec.weights.fit.fit_bundle` checks them against a plan and reads what fits.

    ``extra`` names, as the file spells them, what it holds beside ``layers``: arrays a reader
    placed under no layer (a key of no module of the plan, a dataset no ``weight_names`` lists);
    in what :func:`~vggspec.weights.fit.check_bundle` returns, every array of the file the plan
    does not use (layers skipped for not fitting apart: those are named where they are skipped).
    """

    layers: dict[str, dict[str, StoredArray]] = field(default_factory=dict)
    source: str = ""
    extra: tuple[str, ...] = ()
