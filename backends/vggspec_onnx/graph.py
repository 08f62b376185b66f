"""The plan as an ONNX graph, written with ``onnx.helper``: one node (or a few) per plan layer.

Layout. The graph takes what every backend takes: NHWC float32 images, already preprocessed
(input ``input_layer``, shape ``(batch, H, W, C)``, the batch dynamic). ONNX's Conv, MaxPool,
BatchNormalization and LRN are NCHW, so the feature maps are computed NCHW between two
Transposes: one after the input (node ``input_layer/nchw``) and one before Flatten
(``block5_pool/nhwc``), which gives Flatten the map in Keras' H,W,C order, the order of the
canonical fc1 rows. onnxruntime runs the NCHW convolutions without a transpose of its own;
a graph in NHWC would need a Transpose pair around every Conv instead of two in all.

Names. A plan layer's main node is named as the layer (the Conv ``block1_conv1``, the Gemm
``fc1``); its other nodes ``<layer>/<what>`` (``block1_conv1/relu``, ``input_layer/nchw``).
A layer's output tensor is named as the layer when channels last or flat (``flatten``, ``fc1``,
``predictions``) and ``<layer>/nchw`` when an NCHW map. Initializers are exactly the plan's
arrays, ``<layer>/<weight>`` (:mod:`vggspec_onnx.layout`); constants of activations are
Constant nodes, so that the initializers' sizes add up to the plan's parameter count.

Outputs. A graph's outputs are plan layers, named as asked and channels last, batch first:
the model ``build`` gives has the last layer's; ``activations`` and ``extractor`` ask for more,
and each map asked for adds a Transpose ``<layer>/nhwc``. Dropout adds no node (the identity
at inference); asked for, it is an Identity of the layer before it.

LRN (configuration A-LRN). The plan's ``(size, alpha, beta, k)`` are ``torch.nn.LocalResponseNorm``'s:
``y_c = x_c / (k + alpha/size · Σ x_i²)^beta`` for ``i`` in ``c − size//2 … c + (size−1)//2``.
ONNX's LRN divides by ``(bias + alpha/size · Σ x_i²)^beta`` for ``i`` in
``c − floor((size−1)/2) … c + ceil((size−1)/2)``. So the attributes are the same numbers:
``size = size``, ``alpha = alpha`` (not ``alpha/size``: ONNX divides by size itself, as torch does;
TensorFlow's alpha is ``alpha/size``), ``beta = beta``, ``bias = k``. For an odd size, the only
kind a spec allows, the two windows are the same: ``c − (size−1)/2 … c + (size−1)/2``. An even
size (a plan made by hand) is refused: ONNX's window would be torch's mirrored, and onnxruntime's
LRN runs odd sizes only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import vggspec
from vggspec.errors import BackendError
from vggspec.planner.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    InputLayer,
    LocalResponseNormalization,
    MaxPooling2D,
    PlanLayer,
)
from vggspec.planner.lower import Plan
from vggspec_onnx.layout import initializer_name

# Opset 17 (onnx 1.12, onnxruntime 1.12 and later read it): no Gelu operator yet,
# so gelu is written with Erf, the pattern onnxruntime fuses into its own Gelu kernel.
OPSET = 17
IR_VERSION = 8  # the IR version of opset 17: runtimes of that age read the file
BATCH = "batch"  # the name of the dynamic batch axis
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)
# float32 of torch's and Keras' SELU constants (ONNX's own defaults)
SELU_ALPHA, SELU_GAMMA = 1.6732632423543772, 1.0507009873554805


@dataclass(frozen=True)
class _Tensor:
    """A layer's output in the graph: its tensor's name, and whether it is an NCHW map."""

    name: str
    nchw: bool


class _GraphWriter:
    """Nodes for a plan's layers, in order; each layer reads the output of the layer before it."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.outputs: dict[str, _Tensor] = {}  # plan layer -> its output
        self._nchw: dict[str, str] = {}  # plan layer -> its output as an NCHW map
        self._channels_last: dict[str, str] = {}  # plan layer -> its output channels last (or flat)
        self._constants: dict[str, str] = {}

    def node(self, op: str, inputs: list[str], output: str, name: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attributes))
        return output

    def constant(self, key: str, value: np.ndarray) -> str:
        """A Constant node's output (one per ``key``): not an initializer, so not a parameter."""
        if key not in self._constants:
            name = f"constants/{key}"
            self.node("Constant", [], name, name, value=numpy_helper.from_array(value, name))
            self._constants[key] = name
        return self._constants[key]

    def scalar(self, value: float) -> str:
        return self.constant(repr(float(value)), np.array(value, dtype=np.float32))

    def nchw(self, layer: str) -> str:
        """``layer``'s output as an NCHW map (a Transpose ``<layer>/nchw`` when it is channels last)."""
        tensor = self.outputs[layer]
        if tensor.nchw:
            return tensor.name
        if layer not in self._nchw:
            self._nchw[layer] = self.node("Transpose", [tensor.name], f"{layer}/nchw", f"{layer}/nchw", perm=TO_NCHW)
        return self._nchw[layer]

    def channels_last(self, layer: str) -> str:
        """``layer``'s output channels last or flat, as the plan has it (a Transpose ``<layer>/nhwc``, whose
        output is named as the layer, when it is an NCHW map)."""
        tensor = self.outputs[layer]
        if not tensor.nchw:
            return tensor.name
        if layer not in self._channels_last:
            self._channels_last[layer] = self.node("Transpose", [tensor.name], layer, f"{layer}/nhwc", perm=TO_NHWC)
        return self._channels_last[layer]

    def activation(self, kind: str, x: str, output: str, layer: str) -> str:
        """``kind`` (a spec activation, or a classifier's softmax or sigmoid) of ``x``, named ``<layer>/<kind>``."""
        write = ACTIVATIONS.get(kind)
        if write is None:
            raise BackendError(f"layer {layer}: expected an activation the onnx backend writes, received {kind!r}")
        return write(self, x, output, f"{layer}/{kind}")

    def _gelu(self, x: str, output: str, name: str) -> str:
        """Exact gelu, x · (1 + erf(x / √2)) / 2: the pattern onnxruntime fuses into its Gelu kernel."""
        scaled = self.node("Div", [x, self.scalar(math.sqrt(2.0))], f"{name}/scaled", f"{name}/scaled")
        erf = self.node("Erf", [scaled], f"{name}/erf", f"{name}/erf")
        shifted = self.node("Add", [erf, self.scalar(1.0)], f"{name}/shifted", f"{name}/shifted")
        product = self.node("Mul", [x, shifted], f"{name}/product", f"{name}/product")
        return self.node("Mul", [product, self.scalar(0.5)], output, name)

    def _silu(self, x: str, output: str, name: str) -> str:
        """x · sigmoid(x)."""
        gate = self.node("Sigmoid", [x], f"{name}/gate", f"{name}/gate")
        return self.node("Mul", [x, gate], output, name)

    def add(self, layer: PlanLayer, previous: Optional[str]) -> None:
        """The nodes of ``layer``, reading the output of the plan layer ``previous``."""
        write = LAYERS.get(type(layer))
        if write is None:  # a layer type the plan gained and this writer does not know: never leave it out silently
            raise BackendError(f"layer {layer.name}: the onnx backend has no operator for a {layer.type_name}")
        if previous is None and not isinstance(layer, InputLayer):
            raise BackendError(f"layer {layer.name}: expected a layer before it, received none")
        self.outputs[layer.name] = write(self, layer, previous or "")

    def _input(self, layer: InputLayer, previous: str) -> _Tensor:
        return _Tensor(layer.name, nchw=False)  # the graph's input

    def _conv(self, layer: Conv2D, previous: str) -> _Tensor:
        name, pad = layer.name, layer.kernel_size // 2  # 'same' padding of an odd kernel, stride 1
        conv = f"{name}/conv" if layer.activation is not None else f"{name}/nchw"
        weights = [initializer_name(name, "kernel"), initializer_name(name, "bias")]
        self.node(
            "Conv", [self.nchw(previous), *weights], conv, name, kernel_shape=[layer.kernel_size] * 2, pads=[pad] * 4
        )
        if layer.activation is not None:
            self.activation(layer.activation, conv, f"{name}/nchw", name)
        return _Tensor(f"{name}/nchw", nchw=True)

    def _batch_norm(self, layer: BatchNormalization, previous: str) -> _Tensor:
        weights = [initializer_name(layer.name, w) for w in ("gamma", "beta", "moving_mean", "moving_variance")]
        inputs = [self.nchw(previous), *weights]
        output = self.node("BatchNormalization", inputs, f"{layer.name}/nchw", layer.name, epsilon=float(layer.epsilon))
        return _Tensor(output, nchw=True)

    def _activation_layer(self, layer: Activation, previous: str) -> _Tensor:
        before = self.outputs[previous]  # elementwise: keeps the layout of its input
        output = f"{layer.name}/nchw" if before.nchw else layer.name
        return _Tensor(self.activation(layer.activation, before.name, output, layer.name), nchw=before.nchw)

    def _max_pool(self, layer: MaxPooling2D, previous: str) -> _Tensor:
        kernel, strides = [layer.pool_size] * 2, [layer.strides] * 2
        output = self.node(
            "MaxPool", [self.nchw(previous)], f"{layer.name}/nchw", layer.name, kernel_shape=kernel, strides=strides
        )
        return _Tensor(output, nchw=True)

    def _flatten(self, layer: Flatten, previous: str) -> _Tensor:
        return _Tensor(self.node("Flatten", [self.channels_last(previous)], layer.name, layer.name, axis=1), False)

    def _dense(self, layer: Dense, previous: str) -> _Tensor:
        gemm = f"{layer.name}/gemm" if layer.activation is not None else layer.name
        weights = [initializer_name(layer.name, "kernel"), initializer_name(layer.name, "bias")]
        self.node("Gemm", [self.channels_last(previous), *weights], gemm, layer.name)
        if layer.activation is not None:
            self.activation(layer.activation, gemm, layer.name, layer.name)
        return _Tensor(layer.name, nchw=False)

    def _dropout(self, layer: Dropout, previous: str) -> _Tensor:
        return self.outputs[previous]  # the identity at inference: no node

    def _global_pool(self, layer: Union[GlobalAveragePooling2D, GlobalMaxPooling2D], previous: str) -> _Tensor:
        op = "GlobalAveragePool" if isinstance(layer, GlobalAveragePooling2D) else "GlobalMaxPool"
        pooled = self.node(op, [self.nchw(previous)], f"{layer.name}/pooled", layer.name)  # (N, C, 1, 1)
        return _Tensor(self.node("Flatten", [pooled], layer.name, f"{layer.name}/flatten", axis=1), nchw=False)

    def _lrn(self, layer: LocalResponseNormalization, previous: str) -> _Tensor:
        """ONNX's LRN with the plan's numbers (see the module)."""
        if layer.size % 2 == 0:
            raise BackendError(
                f"layer {layer.name}: expected an odd LRN size (ONNX's window is centred only then, and "
                f"onnxruntime runs odd sizes only), received {layer.size}"
            )
        attributes = {
            "size": layer.size,
            "alpha": float(layer.alpha),
            "beta": float(layer.beta),
            "bias": float(layer.k),
        }
        return _Tensor(self.node("LRN", [self.nchw(previous)], f"{layer.name}/nchw", layer.name, **attributes), True)

    def graph_output(self, key: str, layer: str) -> str:
        """A tensor named ``key`` holding ``layer``'s output channels last (an Identity when named otherwise)."""
        tensor = self.channels_last(layer)
        if tensor != key:
            self.node("Identity", [tensor], key, f"{key}/output")
        return key


Writer = Callable[[_GraphWriter, Any, str], _Tensor]

# Plan layer type -> the writer of its nodes (reading the previous layer's output), giving the layer's output
LAYERS: dict[type, Writer] = {
    InputLayer: _GraphWriter._input,
    Conv2D: _GraphWriter._conv,
    BatchNormalization: _GraphWriter._batch_norm,
    Activation: _GraphWriter._activation_layer,
    LocalResponseNormalization: _GraphWriter._lrn,
    MaxPooling2D: _GraphWriter._max_pool,
    Flatten: _GraphWriter._flatten,
    Dense: _GraphWriter._dense,
    Dropout: _GraphWriter._dropout,
    GlobalAveragePooling2D: _GraphWriter._global_pool,
    GlobalMaxPooling2D: _GraphWriter._global_pool,
}

# The plan's activations (vggspec.planner.activations) and the classifier's, as nodes: (writer, x, output, name)
ACTIVATIONS: dict[str, Callable[[_GraphWriter, str, str, str], str]] = {
    "relu": lambda g, x, out, name: g.node("Relu", [x], out, name),
    "relu6": lambda g, x, out, name: g.node("Clip", [x, g.scalar(0.0), g.scalar(6.0)], out, name),
    "elu": lambda g, x, out, name: g.node("Elu", [x], out, name, alpha=1.0),
    "selu": lambda g, x, out, name: g.node("Selu", [x], out, name, alpha=SELU_ALPHA, gamma=SELU_GAMMA),
    "gelu": _GraphWriter._gelu,
    "silu": _GraphWriter._silu,
    "tanh": lambda g, x, out, name: g.node("Tanh", [x], out, name),
    "sigmoid": lambda g, x, out, name: g.node("Sigmoid", [x], out, name),
    "softmax": lambda g, x, out, name: g.node("Softmax", [x], out, name, axis=-1),
}


def model_proto(plan: Plan, initializers: Iterable[TensorProto], outputs: Mapping[str, str]) -> onnx.ModelProto:
    """The ONNX model of ``plan`` with ``initializers`` (``<layer>/<weight>``, ONNX layout) and the graph
    outputs ``{output name: plan layer}``, channels last. Nothing is checked here; see ``save``."""
    writer = _GraphWriter()
    previous: Optional[str] = None
    for layer in plan.layers:
        writer.add(layer, previous)
        previous = layer.name
    graph_outputs = []
    for key, layer_name in outputs.items():
        writer.graph_output(key, layer_name)
        graph_outputs.append(helper.make_tensor_value_info(key, TensorProto.FLOAT, _batched(plan.layer(layer_name))))
    first = plan.layers[0]
    graph_input = helper.make_tensor_value_info(first.name, TensorProto.FLOAT, _batched(first))
    graph = helper.make_graph(writer.nodes, plan.name, [graph_input], graph_outputs)
    for initializer in initializers:  # one at a time: a generator's arrays are never all held twice
        graph.initializer.append(initializer)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="vggspec",
        producer_version=vggspec.__version__,
        doc_string=f"{plan.name}: input {first.name} NHWC float32, preprocessed ({plan.preprocessing})",
    )
    helper.set_model_props(model, {"vggspec.input_layout": "NHWC", "vggspec.preprocessing": plan.preprocessing})
    return model


def _batched(layer: PlanLayer) -> list[Union[str, int]]:
    """The layer's output shape with the dynamic batch axis first."""
    return [BATCH, *layer.output_shape]


def tensor(name: str, array: np.ndarray) -> TensorProto:
    """An initializer holding ``array`` (float32, raw little-endian data)."""
    return numpy_helper.from_array(np.ascontiguousarray(array, dtype="<f4"), name)
