"""Keras 1 and Keras 2 HDF5 weight files (the legacy layout), read and written with h5py.

The layout, as Keras' legacy ``save_weights`` writes it and its ``load_weights`` reads it:

- the root (``model_weights/`` in a full-model file) has the attribute ``layer_names``:
  every layer in network order, weightless ones (input, pools, flatten) included. Keras 2
  adds ``backend`` and ``keras_version``; Keras reads a file without ``keras_version`` as Keras 1.
- each layer is a group whose attribute ``weight_names`` lists its arrays in order
  (trainable first); each name is also the dataset's path inside the group:
  Keras 1 ``block1_conv1_W_1:0`` (directly in the group), Keras 2 ``block1_conv1/kernel:0``
  (a nested group), Keras 3's legacy writer ``block1_conv1/kernel``.

Arrays are in the canonical layout (conv kernel HWIO, dense kernel (in, out)), so
reading needs no transform. The reader follows those attributes and never guesses paths.
h5py is imported only inside the functions that open a file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np

from vggspec.errors import WeightsError
from vggspec.weights.bundle import WeightBundle

# The last word of a stored weight name -> the canonical weight name.
# Keras 1 called the batch norm variance "running_std" (it always held the variance).
STORED_WORDS = {"kernel": "kernel", "W": "kernel", "bias": "bias", "b": "bias", "gamma": "gamma",
                "beta": "beta", "moving_mean": "moving_mean", "running_mean": "moving_mean",
                "moving_variance": "moving_variance", "running_std": "moving_variance"}
KERAS1_WORDS = {"kernel": "W", "bias": "b", "gamma": "gamma", "beta": "beta",
                "moving_mean": "running_mean", "moving_variance": "running_std"}
# What files in the Keras 2 layout say about themselves (the last Keras 2 release).
KERAS2_ATTRS = {"backend": b"tensorflow", "keras_version": b"2.15.0"}

_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


def open_h5(path: Union[str, Path]) -> Any:
    """Open an HDF5 file for reading; a missing, foreign or truncated file raises WeightsError."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: expected a weight file, received a path that does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        truncated = _TRUNCATED.search(str(error))
        if truncated:
            raise WeightsError(f"{path}: expected a complete HDF5 file of {int(truncated.group(2)):,} bytes, "
                               f"received {int(truncated.group(1)):,} bytes (truncated)") from None
        if not h5py.is_hdf5(path):
            raise WeightsError(f"{path}: expected an HDF5 file, received {path.stat().st_size:,} bytes "
                               "without the HDF5 signature") from None
        raise WeightsError(f"{path}: expected a readable HDF5 file, received an error: {error}") from None


def string_list(attrs: Any, name: str) -> Optional[list[str]]:
    """A list-of-strings attribute as Keras stores it (bytes, maybe split as name0, name1, ...); None if absent."""
    if name in attrs:
        chunks = [attrs[name]]
    elif f"{name}0" in attrs:
        chunks, index = [], 0
        while f"{name}{index}" in attrs:
            chunks.append(attrs[f"{name}{index}"])
            index += 1
    else:
        return None
    # h5py gives an attribute with a null dataspace as an Empty (no shape): an empty list
    return [item.decode("utf8") if isinstance(item, bytes) else str(item)
            for chunk in chunks if getattr(chunk, "shape", ()) is not None for item in np.asarray(chunk).ravel()]


def legacy_root(file: Any) -> Any:
    """The group holding ``layer_names``: the root, or ``model_weights/`` of a full-model file; else None."""
    if string_list(file.attrs, "layer_names") is not None:
        return file
    if "model_weights" in file and string_list(file["model_weights"].attrs, "layer_names") is not None:
        return file["model_weights"]
    return None


def canonical_weight_name(stored: str) -> Optional[str]:
    """``block1_conv1_W_1:0``, ``block1_conv1/kernel:0`` or ``block1_conv1/kernel`` -> ``kernel``; None if unknown."""
    base = stored.rsplit("/", 1)[-1].split(":", 1)[0]  # drop the layer's group and TensorFlow's ":0"
    for candidate in (base, re.sub(r"_[0-9]+$", "", base)):  # Keras 1 adds TensorFlow's "_1"
        for word in sorted(STORED_WORDS, key=len, reverse=True):
            if candidate == word or candidate.endswith("_" + word):
                return STORED_WORDS[word]
    return None


def read_keras_h5(path: Union[str, Path]) -> WeightBundle:
    """Read a Keras 1 or Keras 2 weight file (or a full-model file's ``model_weights/``) into a bundle.

    Layers come in the order of ``layer_names``; weightless layers are left out.
    """
    with open_h5(path) as file:
        root = legacy_root(file)
        if root is None:
            raise WeightsError(f"{path}: expected Keras weights (the attribute layer_names, at the root or in "
                               "model_weights/), received an HDF5 file without it")
        bundle = WeightBundle(source=str(path))
        for layer in string_list(root.attrs, "layer_names"):
            if layer not in root:
                raise WeightsError(f"{path}: layer {layer}: expected a group (layer_names lists it), "
                                   "received a file without it")
            group = root[layer]
            weights: dict[str, np.ndarray] = {}
            for stored in string_list(group.attrs, "weight_names") or []:
                name = canonical_weight_name(stored)
                if name is None:
                    raise WeightsError(f"{path}: layer {layer}: expected weight names ending in "
                                       f"{', '.join(STORED_WORDS)}, received {stored!r}")
                if name in weights:
                    raise WeightsError(f"{path}: layer {layer}: expected one {name}, received a second ({stored!r})")
                if stored not in group:
                    raise WeightsError(f"{path}: layer {layer}: expected the dataset {stored!r} "
                                       "(weight_names lists it), received a group without it")
                try:
                    weights[name] = group[stored][()]
                except OSError as error:
                    raise WeightsError(f"{path}: layer {layer}: expected a readable dataset {stored!r}, "
                                       f"received a damaged one ({error})") from None
            if weights:
                bundle.layers[layer] = weights
    return bundle


def _stored_name(layer: str, name: str, keras_version: int) -> str:
    if keras_version == 1:
        return f"{layer}_{KERAS1_WORDS[name]}_1:0"
    return f"{layer}/{name}:0"


def write_keras_h5(path: Union[str, Path], bundle: WeightBundle, layer_names: list[str], keras_version: int = 2,
                   progress: Callable[[Iterable[str]], Iterable[str]] = lambda items: items) -> None:
    """Write ``bundle`` in the Keras 1 or Keras 2 layout; ``layer_names`` lists every layer, weightless ones too.

    ``progress`` wraps the iteration over layers (e.g. a tqdm bar).
    """
    import h5py

    if keras_version not in (1, 2):
        raise WeightsError(f"{path}: expected keras_version 1 or 2 for an .h5 weight file, received {keras_version}")
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.asarray([name.encode("utf8") for name in layer_names])
        if keras_version == 2:
            file.attrs.update(KERAS2_ATTRS)
        for layer in progress(layer_names):
            group = file.create_group(layer)
            weights = bundle.layers.get(layer, {})
            stored = [_stored_name(layer, name, keras_version) for name in weights]
            group.attrs["weight_names"] = np.asarray([name.encode("utf8") for name in stored])
            for stored_name, array in zip(stored, weights.values()):
                group.create_dataset(stored_name, data=array)
