"""Keras 1 and Keras 2 HDF5 weight files (the legacy layout), read and written with h5py.

The layout, as Keras' legacy ``save_weights`` writes it and its ``load_weights`` reads it:

- the root (``model_weights/`` in a full-model file) has the attribute ``layer_names``:
  every layer in network order, weightless ones (input, pools, flatten) included. Keras 2
  adds ``backend`` and ``keras_version``; Keras reads a file without ``keras_version`` as Keras 1.
- each layer is a group whose attribute ``weight_names`` lists its arrays in order
  (trainable first); each name is also the dataset's path inside the group:
  Keras 1 ``block1_conv1_W_1:0`` (directly in the group), Keras 2 ``block1_conv1/kernel:0``
  (a nested group), Keras 3's legacy writer ``block1_conv1/kernel``.

A hand-written model's file names its layers as Keras named them (``conv2d_1`` ... ``dense_3``;
Keras 1: ``convolution2d_1``, with weightless ``zeropadding2d_1`` layers listed between): they are
read under those names, weightless ones left out, and ``fit_bundle`` pairs them with the plan's
layers by order (:func:`vggspec.weights.fit.match_layers`).

Arrays are in the canonical layout (conv kernel HWIO, dense kernel (in, out)), so
reading needs no transform. What a file says that contradicts this is not ignored
(:func:`check_layout_attributes`): kernels of the ``theano`` backend (flipped: Theano convolves,
the others correlate) and a channels-first model that flattens in C,H,W order are refused; a
backend vggspec does not know is read as TensorFlow's, with a warning. Datasets that no
``weight_names`` lists are the bundle's ``extra`` (named, never read). The reader follows those
attributes and never guesses paths; it walks the file through :mod:`.hdf5` (hard links only,
metadata before data).
h5py is imported only inside the functions that open a file.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import numpy as np

from vggspec.errors import WeightsError
from vggspec.weights.bundle import StoredArray, StoredBundle, WeightBundle
from vggspec.weights.hdf5 import dataset, group, other_datasets, stored_array, string_list

# The last word of a stored weight name -> the canonical weight name.
# Keras 1 called the batch norm variance "running_std" (it always held the variance).
STORED_WORDS = {
    "kernel": "kernel",
    "W": "kernel",
    "bias": "bias",
    "b": "bias",
    "gamma": "gamma",
    "beta": "beta",
    "moving_mean": "moving_mean",
    "running_mean": "moving_mean",
    "moving_variance": "moving_variance",
    "running_std": "moving_variance",
}
KERAS1_WORDS = {
    "kernel": "W",
    "bias": "b",
    "gamma": "gamma",
    "beta": "beta",
    "moving_mean": "running_mean",
    "moving_variance": "running_std",
}
# What files in the Keras 2 layout say about themselves (the last Keras 2 release).
KERAS2_ATTRS = {"backend": b"tensorflow", "keras_version": b"2.15.0"}
# Backends whose kernels are TensorFlow's (cross-correlation, HWIO): Keras 2's, and Keras 3's legacy writer's
CORRELATING_BACKENDS = ("tensorflow", "cntk", "jax", "torch", "numpy", "openvino")


def legacy_root(file: Any, name: str) -> Optional[tuple[Any, list[str]]]:
    """(the group holding ``layer_names``: the root, or ``model_weights/`` of a full-model file; its
    layer names), or None when neither has them. ``name`` is what messages call the file."""
    names = string_list(file, "layer_names", name)
    if names is not None:
        return file, names
    model_weights = group(file, "model_weights", name)
    if model_weights is not None:
        names = string_list(model_weights, "layer_names", f"{name}: model_weights")
        if names is not None:
            return model_weights, names
    return None


def canonical_weight_name(stored: str) -> Optional[str]:
    """``block1_conv1_W_1:0``, ``block1_conv1/kernel:0`` or ``block1_conv1/kernel`` -> ``kernel``; None if unknown."""
    base = stored.rsplit("/", 1)[-1].split(":", 1)[0]  # drop the layer's group and TensorFlow's ":0"
    for candidate in (base, re.sub(r"_[0-9]+$", "", base)):  # Keras 1 adds TensorFlow's "_1"
        for word in sorted(STORED_WORDS, key=len, reverse=True):
            if candidate == word or candidate.endswith("_" + word):
                return STORED_WORDS[word]
    return None


def stored_keras_h5(file: Any, name: str) -> StoredBundle:
    """Describe a Keras 1 or Keras 2 weight file (or a full-model file's ``model_weights/``), open as ``file``.

    Returns a bundle of StoredArrays (metadata only: nothing is read until ``fit_bundle``
    or ``read_stored`` asks), layers in the order of ``layer_names``, weightless layers
    left out. ``name`` is what messages call the file.
    """
    found = legacy_root(file, name)
    if found is None:
        raise WeightsError(
            f"{name}: expected Keras weights (the attribute layer_names, at the root or in "
            "model_weights/), received an HDF5 file without it"
        )
    root, layer_names = found
    check_layout_attributes(file, root, name)
    bundle = StoredBundle(source=name)
    used = []
    for layer in layer_names:
        where = f"{name}: layer {layer}"
        if layer in bundle.layers:
            raise WeightsError(f"{where}: expected each layer once in layer_names, received it twice")
        layer_group = group(root, layer, where)
        if layer_group is None:
            raise WeightsError(f"{where}: expected a group (layer_names lists it), received a file without it")
        weights: dict[str, StoredArray] = {}
        for stored in string_list(layer_group, "weight_names", where) or []:
            weight = canonical_weight_name(stored)
            if weight is None:
                raise WeightsError(
                    f"{where}: expected weight names ending in {', '.join(STORED_WORDS)}, received {stored!r}"
                )
            if weight in weights:
                raise WeightsError(f"{where}: expected one {weight}, received a second ({stored!r})")
            data = dataset(layer_group, stored, where)
            if data is None:
                raise WeightsError(
                    f"{where}: expected the dataset {stored!r} (weight_names lists it), received a group without it"
                )
            weights[weight] = stored_array(data, where)
            used.append(data)
        if weights:
            bundle.layers[layer] = weights
    bundle.extra = tuple(other_datasets(root, used, name))
    return bundle


def check_layout_attributes(file: Any, root: Any, name: str) -> None:
    """Refuse a file whose attributes say its arrays are not in the layout vggspec reads (see the module);
    warn about a backend it does not know. ``root`` holds ``layer_names`` (``file`` or its ``model_weights/``)."""
    for holder in (file, root) if root is not file else (file,):
        backend = _text_attribute(holder, "backend", name)
        if backend == "theano":
            raise WeightsError(
                f"{name}: expected kernels of a correlating backend ({', '.join(CORRELATING_BACKENDS)}), received "
                "backend 'theano', whose convolution kernels are flipped; load the file with Keras 2 on TensorFlow "
                "(its load_weights flips them) and save the weights again"
            )
        if backend and backend not in CORRELATING_BACKENDS:
            warnings.warn(
                f"{name}: backend {backend!r} is not a Keras backend vggspec knows; its kernels are read as "
                "TensorFlow's (HWIO, cross-correlation)",
                UserWarning,
                stacklevel=2,
            )
            break
    layer = _channels_first_flattened(_text_attribute(file, "model_config", name))
    if layer is not None:
        raise WeightsError(
            f"{name}: expected a channels-last model (vggspec reads the dense layer after the flatten in H,W,C "
            f"order), received a model_config whose layer {layer!r} is channels-first and whose Flatten keeps "
            "C,H,W order; save the weights of a channels-last copy of the model instead"
        )


def _th(config: dict) -> Optional[str]:
    """Keras 1's ``dim_ordering: th`` in Keras 2's words."""
    return "channels_first" if config.get("dim_ordering") == "th" else None


def _text_attribute(holder: Any, attribute: str, name: str) -> str:
    """A string attribute that describes the file ("" when absent, or not one string vggspec can read: it only
    describes, and the arrays are checked on their own)."""
    try:
        values = string_list(holder, attribute, name) or [""]
    except WeightsError:
        return ""
    return values[0] if len(values) == 1 else ""


def _channels_first_flattened(model_config: str) -> Optional[str]:
    """The name of a channels-first layer of the model, when a Flatten of it flattens the map in C,H,W order (one
    that does not say ``data_format: channels_first``, as Keras 1's and Keras 2's before 2.1.5 did not); else None
    (also for a config that is not JSON: it is the model's description, not its weights)."""
    try:
        stack = [json.loads(model_config)] if model_config else []
    except (ValueError, RecursionError):
        return None
    channels_first, flattens = None, False
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack += item
        elif isinstance(item, dict):
            config = item.get("config")
            if isinstance(config, dict):
                if channels_first is None and "channels_first" in (config.get("data_format"), _th(config)):
                    channels_first = str(config.get("name", "?"))[:100]
                if item.get("class_name") == "Flatten":
                    flattens = flattens or config.get("data_format") != "channels_first"
            stack += item.values()
    return channels_first if channels_first is not None and flattens else None


def _stored_name(layer: str, name: str, keras_version: int) -> str:
    if keras_version == 1:
        return f"{layer}_{KERAS1_WORDS[name]}_1:0"
    return f"{layer}/{name}:0"


def write_keras_h5(
    path: Union[str, Path],
    bundle: WeightBundle,
    layer_names: list[str],
    keras_version: int = 2,
    progress: Callable[[Iterable[str]], Iterable[str]] = lambda items: items,
    meta_json: Optional[str] = None,
) -> None:
    """Write ``bundle`` in the Keras 1 or Keras 2 layout; ``layer_names`` lists every layer, weightless ones too.
    ``meta_json`` (:mod:`vggspec.weights.meta`) becomes the root attribute ``vggspec``.

    ``progress`` wraps the iteration over layers (e.g. a tqdm bar).
    """
    import h5py

    if keras_version not in (1, 2):
        raise WeightsError(f"{path}: expected keras_version 1 or 2 for an .h5 weight file, received {keras_version}")
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.asarray([name.encode("utf8") for name in layer_names])
        if keras_version == 2:
            file.attrs.update(KERAS2_ATTRS)
        if meta_json is not None:
            file.attrs["vggspec"] = meta_json
        for layer in progress(layer_names):
            group = file.create_group(layer)
            weights = bundle.layers.get(layer, {})
            stored = [_stored_name(layer, name, keras_version) for name in weights]
            group.attrs["weight_names"] = np.asarray([name.encode("utf8") for name in stored])
            for stored_name, array in zip(stored, weights.values()):
                group.create_dataset(stored_name, data=array)
