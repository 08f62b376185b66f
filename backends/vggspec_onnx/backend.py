"""The ``onnx`` backend: the plan emitted as an ONNX graph (``onnx.helper``), run by onnxruntime.

Importing this module imports neither onnx nor onnxruntime; the methods import them when
called. The graph's layout and names are in :mod:`vggspec_onnx.graph`, the initializers'
layouts in :mod:`vggspec_onnx.layout`, the session in :mod:`vggspec_onnx.model`.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from vggspec.backends import install_hint
from vggspec.errors import BackendError
from vggspec.fileio import atomic_path
from vggspec.frameworks.initial_weights import initial_arrays
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle
from vggspec_onnx.layout import from_onnx, initializer_name, onnx_shape, to_onnx

ONNX_SUFFIX = ".onnx"
# The oldest releases the backend is tested against (both read opset 17 and run under numpy 2);
# pyproject.toml's [onnx] extra asks for the same.
MINIMUM_VERSIONS = {"onnx": (1, 17), "onnxruntime": (1, 19)}
# ONNX BatchNormalization's inputs that hold running statistics (input_mean, input_var): not trained
STATISTICS_INPUTS = slice(3, 5)


def _version_tuple(version: str) -> tuple[int, ...]:
    """(1, 19) from "1.19.2", "1.20.0.dev20240101" or "1.19.0+cu121"."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else ()


def _installed_version(module: str) -> Optional[str]:
    """The version of the distribution that provides the top-level ``module`` (onnxruntime comes as
    ``onnxruntime``, ``onnxruntime-gpu``, ...), read from its metadata without importing it."""
    from importlib import metadata

    for distribution in metadata.packages_distributions().get(module, []):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return None


class OnnxBackend:
    """vggspec's ``onnx`` backend (see :class:`vggspec.backends.Backend`); models are
    :class:`vggspec_onnx.model.OnnxModel` s."""

    name = "onnx"
    requires = ("onnx", "onnxruntime")
    install = install_hint("onnx")  # pip install "vggspec[onnx]"
    save_suffix = ONNX_SUFFIX  # not a weight file vggspec reads: verify does not read it back
    initial_seed = 0  # fresh weights are the same on every build: an inference format has no training to vary
    precisions = ("int8", "float16")  # what lower_precision makes (vggspec_onnx.precision)

    def framework_problem(self) -> Optional[str]:
        """Why onnx or onnxruntime cannot run the graphs (a release older than MINIMUM_VERSIONS), told
        from the installed metadata without importing them; None when they can."""
        for module, minimum in MINIMUM_VERSIONS.items():
            version = _installed_version(module)
            if version is not None and _version_tuple(version) < minimum:
                wanted = ".".join(map(str, minimum))
                return (
                    f"{module} {version} is installed, expected {wanted} or newer (opset 17 under numpy 2): "
                    f'pip install --upgrade "vggspec[onnx]"'
                )
        return None

    def build(self, plan: Plan) -> Any:
        """An :class:`~vggspec_onnx.model.OnnxModel` of the plan with fresh weights; its output is the last layer's."""
        from vggspec_onnx.graph import model_proto, tensor
        from vggspec_onnx.model import OnnxModel

        initializers = (
            tensor(initializer_name(layer.name, weight), to_onnx(layer, weight, array))
            for layer, weight, array in initial_arrays(plan, self.initial_seed)
        )
        last = plan.layers[-1].name
        return OnnxModel(plan, model_proto(plan, initializers, {last: last}), [last])

    def count_params(self, model: Any) -> tuple[int, int]:
        """(trainable, non-trainable) from the graph: the initializers' sizes; those that feed a
        BatchNormalization's running mean and variance are the non-trainable ones."""
        graph = model.proto.graph
        statistics = {
            name
            for node in graph.node
            if node.op_type == "BatchNormalization"
            for name in node.input[STATISTICS_INPUTS]
        }
        sizes = {tensor.name: math.prod(tensor.dims) for tensor in graph.initializer}
        non_trainable = sum(size for name, size in sizes.items() if name in statistics)
        return sum(sizes.values()) - non_trainable, non_trainable

    def get_weights(self, model: Any, plan: Plan) -> WeightBundle:
        """The initializers, copied, in the canonical layout."""
        from onnx import numpy_helper

        initializers = {tensor.name: tensor for tensor in model.proto.graph.initializer}
        bundle = WeightBundle(source="onnx model")
        for layer in plan.weighted_layers():
            bundle.layers[layer.name] = {
                weight: from_onnx(
                    layer, weight, numpy_helper.to_array(initializers[initializer_name(layer.name, weight)])
                )
                for weight, _ in layer.weights
            }
        return bundle

    def set_weights(self, model: Any, plan: Plan, bundle: WeightBundle) -> None:
        """Write a checked (possibly partial) bundle into the initializers; the others are left alone."""
        initializers = {tensor.name: tensor for tensor in model.proto.graph.initializer}
        for layer_name, weights in bundle.layers.items():
            layer = plan.layer(layer_name)
            for weight, array in weights.items():
                target = initializers[initializer_name(layer_name, weight)]
                expected = onnx_shape(layer, weight, tuple(np.shape(array)))
                if tuple(target.dims) != expected:
                    raise BackendError(
                        f"layer {layer_name}: expected {weight} of ONNX shape {tuple(target.dims)}, received {expected}"
                    )
                target.ClearField("float_data")
                target.raw_data = to_onnx(layer, weight, array).astype("<f4", copy=False).tobytes()
        model.weights_changed()

    def predict(self, model: Any, images: np.ndarray) -> np.ndarray:
        """The model's output for NHWC float32 ``images`` (channels last for a map)."""
        return model(images)[model.outputs[-1]]

    def read_model(self, plan: Plan, path: str) -> Any:
        """The OnnxModel in an ``.onnx`` file ``save`` wrote (float32, float16 or int8), run as it is; its input
        and output checked against the plan (:mod:`vggspec_onnx.files`)."""
        from vggspec_onnx.files import read_model

        return read_model(plan, path)

    def model_precision(self, model: Any) -> str:
        """``float32``, ``float16`` or ``int8``: what ``vggspec build`` recorded in the file."""
        from vggspec_onnx.precision import precision_of

        return precision_of(model.proto)

    def lower_precision(
        self, model: Any, plan: Plan, precision: str, calibration: Iterable[np.ndarray], about: Mapping[str, str]
    ) -> Any:
        """An OnnxModel of ``model`` (float32) in int8 (onnxruntime's static quantizer, calibrated on the batches
        of ``calibration``) or float16 (:mod:`vggspec_onnx.precision`)."""
        from vggspec_onnx.model import OnnxModel
        from vggspec_onnx.precision import lower_precision

        return OnnxModel(plan, lower_precision(model.proto, precision, calibration, about), model.outputs)

    def activations(self, model: Any, plan: Plan, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every plan layer's output (channels last, batch first), from a second graph that has every
        layer as an output (the model itself keeps one output, so onnxruntime fuses freely)."""
        probe = self._with_outputs(model, plan, {layer.name: layer.name for layer in plan.layers})
        return probe(images)

    def extractor(
        self, model: Any, plan: Plan, outputs: Union[Mapping[str, str], Sequence[str]], trainable: bool
    ) -> Any:
        """An OnnxModel whose call gives ``{name: output}`` (NHWC maps, as this backend takes its input)
        for ``outputs`` (names, or ``{name: plan layer}``). ``trainable`` is accepted and changes nothing:
        onnxruntime runs inference only, so there are no gradients and batch norm always uses its
        moving statistics."""
        chosen = dict(outputs) if isinstance(outputs, Mapping) else {name: name for name in outputs}
        return self._with_outputs(model, plan, chosen)

    def save(self, model: Any, path: str) -> Optional[str]:
        """Write the ``.onnx`` file (one protobuf, under 2 GiB), checked by ``onnx.checker.check_model``
        with ``full_check`` before it takes the name; nothing is written on failure."""
        import onnx

        from vggspec_onnx.model import serialized

        if not str(path).endswith(ONNX_SUFFIX):
            raise BackendError(f"{path}: expected a file name ending in {ONNX_SUFFIX}, received {_suffix(path)!r}")
        data = serialized(model.proto)
        with atomic_path(path, suffix=ONNX_SUFFIX) as temporary:
            temporary.write_bytes(data)
            del data
            try:
                onnx.checker.check_model(str(temporary), full_check=True)
            except onnx.checker.ValidationError as error:
                raise BackendError(f"{path}: the ONNX checker refused the graph vggspec wrote: {error}") from None
        return None

    def _with_outputs(self, model: Any, plan: Plan, outputs: Mapping[str, str]) -> Any:
        """A second OnnxModel of ``plan`` on ``model``'s weights with the graph outputs ``{name: plan layer}``
        (of a model read from a file, perhaps quantized: its own graph with those outputs)."""
        from vggspec_onnx.graph import model_proto
        from vggspec_onnx.model import OnnxModel

        if model.from_file is not None:
            from vggspec_onnx.files import with_layer_outputs

            return with_layer_outputs(model, plan, outputs)

        needed = {initializer_name(layer.name, weight) for layer in plan.layers for weight, _ in layer.weights}
        initializers = (tensor for tensor in model.proto.graph.initializer if tensor.name in needed)
        return OnnxModel(plan, model_proto(plan, initializers, outputs), list(outputs))


def _suffix(path: str) -> str:
    from pathlib import Path

    return Path(path).suffix or "no extension"
