"""Weight files for the tests, written here with h5py in the layouts real files have.

The arrays come from ``keras.applications.VGG16(weights=None)`` (built once per test
session and cached) or from a small spec's plan, filled with random numbers.
The writers below do not use vggspec: they state each layout independently, so that
reading them tests vggspec's readers against the files Keras made.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

import vggspec
from vggspec.planner.lower import Plan

# [(layer name, {weight name: array})] in network order, weightless layers with {}
Layers = list[tuple[str, dict[str, np.ndarray]]]

KERAS1_WORDS = {
    "kernel": "W",
    "bias": "b",
    "gamma": "gamma",
    "beta": "beta",
    "moving_mean": "running_mean",
    "moving_variance": "running_std",
}

# A small VGG (32x32 input, few filters) for tests that are not about VGG16 itself.
SMALL = {
    "name": "small",
    "layers": ["conv3-4", "conv3-4", "maxpool", "conv3-8", "maxpool"],
    "input_shape": [32, 32, 3],
    "fc": [16, 12],
    "classes": 10,
}


def small_plan(**changes) -> Plan:
    return vggspec.plan(vggspec.spec_from_mapping({**SMALL, **changes}))


def small_spec_file(directory: Path, **changes) -> Path:
    """The small spec as a YAML file (for the command line)."""
    import yaml

    path = directory / f"{changes.get('name', SMALL['name'])}.yaml"
    path.write_text(yaml.safe_dump({**SMALL, **changes}))
    return path


def plan_layers(plan: Plan, seed: int = 0) -> Layers:
    """Random float32 arrays for every layer of ``plan``, canonical layout (distinct values everywhere)."""
    rng = np.random.default_rng(seed)
    return [
        (layer.name, {name: rng.standard_normal(shape).astype(np.float32) for name, shape in layer.weights})
        for layer in plan.layers
    ]


@functools.cache
def keras_vgg16(include_top: bool = True):
    """``(model, layers)``: ``keras.applications.VGG16(weights=None)`` and copies of its initial arrays.

    Built once per session. Tests may load other weights into the model; ``layers`` stay as built.
    """
    import keras

    model = keras.applications.VGG16(weights=None, include_top=include_top)
    # Keras numbers an unnamed input by the models built before it (input_layer_3): name it as a fresh
    # process would, whichever test builds this first
    layers = [
        ("input_layer" if index == 0 else name, weights) for index, (name, weights) in enumerate(model_arrays(model))
    ]
    return model, layers


def keras_vgg16_layers(include_top: bool = True) -> Layers:
    """The arrays ``keras.applications.VGG16(weights=None)`` was built with, by Keras layer, in Keras' order."""
    return keras_vgg16(include_top)[1]


def model_arrays(model) -> Layers:
    """A Keras model's arrays (copies), by layer in the model's order; weight names as Keras' variable paths end."""
    return [
        (
            layer.name,
            {variable.path.rsplit("/", 1)[-1]: np.array(variable.numpy(), copy=True) for variable in layer.weights},
        )
        for layer in model.layers
    ]


def load_with_keras(model, path: Path) -> dict[str, dict[str, np.ndarray]]:
    """Zero the model, load ``path`` with Keras' own ``load_weights`` and return the weighted layers' arrays."""
    model.set_weights([np.zeros(array.shape, array.dtype) for array in model.get_weights()])
    model.load_weights(str(path))
    return as_bundle_layers(model_arrays(model))


def write_keras1_h5(path: Path, layers: Layers) -> Path:
    """The layout of vgg16_weights_tf_dim_ordering_tf_kernels.h5 (Keras 1).

    Root: only the attribute ``layer_names`` (the first layer is ``input_1``). Each layer:
    a group with ``weight_names`` (empty for input, pools, flatten) and datasets of exactly
    those names directly in it, e.g. ``block1_conv1_W_1:0``, ``block1_conv1_b_1:0``.
    """
    import h5py

    names = ["input_1" if name == "input_layer" else name for name, _ in layers]
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = np.asarray([name.encode() for name in names])
        for name, (_, weights) in zip(names, layers):
            _write_layer_group(file, name, [f"{name}_{KERAS1_WORDS[weight]}_1:0" for weight in weights], weights)
    return path


def _write_layer_group(parent, name: str, stored: list[str], weights: dict[str, np.ndarray]) -> None:
    """A layer's group: attribute ``weight_names`` = ``stored``, and one dataset per name (Keras 1 and 2)."""
    group = parent.create_group(name)
    group.attrs["weight_names"] = np.asarray([s.encode() for s in stored])
    for key, array in zip(stored, weights.values()):
        group.create_dataset(key, data=array)


def write_keras2_h5(path: Path, layers: Layers, model_weights: bool = False) -> Path:
    """The Keras 2 layout: ``layer_names``, ``backend``, ``keras_version``; names ``block1_conv1/kernel:0``
    (nested groups). ``model_weights``: inside ``model_weights/`` as in a full-model ``model.save`` file."""
    import h5py

    with h5py.File(path, "w") as file:
        if model_weights:
            file.attrs["keras_version"] = b"2.15.0"
            file.attrs["backend"] = b"tensorflow"
            file.attrs["model_config"] = b'{"class_name": "Functional"}'
        root = file.create_group("model_weights") if model_weights else file
        root.attrs["layer_names"] = np.asarray([name.encode() for name, _ in layers])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.15.0"
        for name, weights in sorted(layers, key=lambda item: item[0]):  # Keras writes groups sorted
            _write_layer_group(root, name, [f"{name}/{weight}:0" for weight in weights], weights)
    return path


def as_bundle_layers(layers: Layers) -> dict[str, dict[str, np.ndarray]]:
    """Only the weighted layers, as ``WeightBundle.layers``."""
    return {name: weights for name, weights in layers if weights}


def assert_same_arrays(expected: dict[str, dict[str, np.ndarray]], received: dict[str, dict[str, np.ndarray]]):
    """Same layers in the same order, same weight names, bit-identical arrays (NaN equal to NaN)."""
    assert list(received) == list(expected)
    for layer, weights in expected.items():
        assert list(received[layer]) == list(weights), layer
        for name, array in weights.items():
            assert received[layer][name].dtype == array.dtype, (layer, name)
            np.testing.assert_array_equal(received[layer][name], array, err_msg=f"{layer}/{name}", strict=True)


def write_keras_archive(path: Path, weights_h5: Path) -> Path:
    """A Keras 3 ``.keras`` model archive around a ``.weights.h5`` file, as ``model.save`` writes it:
    a zip of stored (uncompressed) members ``metadata.json``, ``config.json``, ``model.weights.h5``."""
    import json
    import zipfile

    metadata = {"keras_version": "3.15.1", "date_saved": "2025-01-01@00:00:00"}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps({"class_name": "Functional", "config": {}}))
        archive.write(weights_h5, "model.weights.h5")
    return path


def random_weights(plan: Plan, seed: int = 0, scale: float = 0.3) -> dict[str, dict[str, np.ndarray]]:
    """Random float32 arrays for every weighted layer of ``plan``, canonical layout, as ``WeightBundle.layers``:
    normal(0, ``scale``), batch norm variances uniform in 0.5..2 (a model with them runs without NaNs)."""
    rng = np.random.default_rng(seed)
    return {
        layer.name: {
            name: (rng.uniform(0.5, 2.0, shape) if name == "moving_variance" else rng.normal(0, scale, shape)).astype(
                np.float32
            )
            for name, shape in layer.weights
        }
        for layer in plan.weighted_layers()
    }


# The names Keras gave layers a model's author did not name: per class, numbered from 1 in each model.
# Keras 2 (conv2d_1 ... dense_3) and Keras 1 (convolution2d_1, zeropadding2d_1), whose classes were
# Convolution2D and ZeroPadding2D.
AUTO_NAMES = {
    2: {
        "Conv2D": "conv2d",
        "ZeroPadding2D": "zero_padding2d",
        "MaxPooling2D": "max_pooling2d",
        "Flatten": "flatten",
        "Dense": "dense",
        "Dropout": "dropout",
        "BatchNormalization": "batch_normalization",
        "Activation": "activation",
    },
    1: {
        "Conv2D": "convolution2d",
        "ZeroPadding2D": "zeropadding2d",
        "MaxPooling2D": "maxpooling2d",
        "Flatten": "flatten",
        "Dense": "dense",
        "Dropout": "dropout",
        "BatchNormalization": "batchnormalization",
        "Activation": "activation",
    },
}


def auto_named_layers(model, keras_version: int) -> Layers:
    """A hand-written Keras model's arrays (copies) under the names Keras ``keras_version`` would have given
    its layers (``conv2d_1``, ``zero_padding2d_1``, ...), weightless layers included, in the model's order."""
    counts: dict[str, int] = {}
    layers = []
    for name, weights in model_arrays(model):
        base = AUTO_NAMES[keras_version][type(model.get_layer(name)).__name__]
        counts[base] = counts.get(base, 0) + 1
        layers.append((f"{base}_{counts[base]}", weights))
    return layers


def write_handwritten_h5(path: Path, model, keras_version: int = 2) -> Path:
    """What a hand-written ``Sequential()`` model's ``save_weights`` wrote in the legacy layout (Keras 1 or 2):
    its auto-generated layer names, every layer (``ZeroPadding2D``, pools, ``Flatten``) in ``layer_names``.
    Keras 3 writes only ``.weights.h5``; this states the legacy layout with h5py instead."""
    layers = auto_named_layers(model, keras_version)
    return write_keras1_h5(path, layers) if keras_version == 1 else write_keras2_h5(path, layers)
