"""Run a Keras model in inference mode: outputs, and every plan layer's activations.

Images are NHWC float32 (already preprocessed). Batches go through
``predict_on_batch`` (inference mode, no gradient tape under any backend), a
fixed number of images at a time, and come back as numpy arrays.
"""

from __future__ import annotations

from typing import Any, Mapping

import keras
import numpy as np

from vggspec.errors import BackendError
from vggspec.planner.lower import Plan

BATCH_SIZE = 32


def checked_images(model: Any, images: np.ndarray) -> np.ndarray:
    """``images`` as float32 NHWC, refused unless each image has the model's input shape."""
    images = np.asarray(images)
    expected = tuple(model.inputs[0].shape[1:])
    if images.ndim != 4 or tuple(images.shape[1:]) != expected:
        raise BackendError(
            f"images for keras model {model.name}: expected an array of shape "
            f"(N, {', '.join(map(str, expected))}), received {tuple(images.shape)}"
        )
    return images.astype(np.float32, copy=False)


def _run_in_batches(model: Any, images: np.ndarray) -> Any:
    """``model.predict_on_batch`` over slices of BATCH_SIZE images; outputs concatenated on axis 0."""
    chunks = [model.predict_on_batch(images[start : start + BATCH_SIZE]) for start in range(0, len(images), BATCH_SIZE)]
    if isinstance(chunks[0], dict):
        return {name: np.concatenate([np.asarray(chunk[name]) for chunk in chunks]) for name in chunks[0]}
    return np.concatenate([np.asarray(chunk) for chunk in chunks])


def predict(model: Any, images: np.ndarray) -> np.ndarray:
    """The model's outputs for ``images`` (N, H, W, C): (N, *output_shape) float32."""
    images = checked_images(model, images)
    if len(images) == 0:
        return np.zeros((0, *model.outputs[0].shape[1:]), dtype=np.float32)
    return _run_in_batches(model, images)


def activations(model: Any, plan: Plan, images: np.ndarray) -> dict[str, np.ndarray]:
    """``{plan layer name: (N, *layer.output_shape) array}`` for every plan layer, input included."""
    images = checked_images(model, images)
    names = [layer.name for layer in plan.layers]
    try:
        outputs = {name: model.get_layer(name).output for name in names}
    except ValueError as error:
        raise BackendError(f"keras model {model.name}: expected every plan layer, received {error}") from None
    features = keras.Model(inputs=model.inputs, outputs=outputs, name=f"{model.name}_activations")
    if len(images) == 0:
        return {layer.name: np.zeros((0, *layer.output_shape), dtype=np.float32) for layer in plan.layers}
    return _run_in_batches(features, images)


def feature_model(model: Any, outputs: Mapping[str, str], trainable: bool) -> keras.Model:
    """``model``'s layers with ``{key: output of the plan layer}`` as outputs (see ``KerasBackend.extractor``)."""
    try:
        tensors = {key: model.get_layer(layer).output for key, layer in outputs.items()}
    except ValueError as error:
        raise BackendError(
            f"keras model {model.name}: expected the layers {sorted(set(outputs.values()))}, received {error}"
        ) from None
    extractor = keras.Model(inputs=model.inputs[0], outputs=tensors, name=f"{model.name}_features")
    if not trainable:
        extractor.trainable = False
    return extractor
