"""An ``.onnx`` file that ``save`` wrote, run as it is: float32, float16 or int8 (:mod:`vggspec_onnx.precision`).

A quantized file holds no float32 arrays to read as weights, so it is run, not read: ``read_model`` checks
that its input and output are the plan's (name, shape) and gives an OnnxModel of it. Its layers' outputs
are found by the tensor names the graph writer gave (:mod:`vggspec_onnx.graph`), which the quantizer and
the float16 converter keep: a layer's output is the tensor named as the layer (channels last or flat) or
``<layer>/nchw`` (an NCHW map, transposed back). In an int8 graph the value the next layer reads is the
DequantizeLinear's output that follows that tensor (the quantizer drops a Relu before a quantization, whose
zero point clamps instead); every output is cast to float32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Union

import onnx
from onnx import TensorProto, helper

from vggspec.errors import BackendError
from vggspec.planner.layers import Dropout, InputLayer
from vggspec.planner.lower import Plan
from vggspec_onnx.graph import TO_NHWC
from vggspec_onnx.model import OnnxModel


def _dims(value: onnx.ValueInfoProto) -> list[object]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def read_model(plan: Plan, path: str) -> OnnxModel:
    """The model in the ``.onnx`` file ``path``, which must take the plan's input and give its last layer's output."""
    if not Path(path).is_file():
        raise BackendError(f"{path}: expected an .onnx file, received a path that does not exist")
    try:
        proto = onnx.load(path)
    except Exception as error:  # protobuf's DecodeError and friends: a file that is not a model
        raise BackendError(f"{path}: expected an ONNX model, received a file onnx cannot read ({error})") from None
    graph, first, last = proto.graph, plan.layers[0], plan.layers[-1]
    expected = [(first.name, list(first.output_shape)), (last.name, list(last.output_shape))]
    found = [(value.name, _dims(value)[1:]) for value in (*graph.input[:1], *graph.output[:1])]
    if len(graph.input) != 1 or len(graph.output) != 1 or found != expected:
        raise BackendError(
            f"{path}: expected the input {first.name} {list(first.output_shape)} and the output {last.name} "
            f"{list(last.output_shape)} of {plan.name} (each batch first), received the inputs "
            f"{[(v.name, _dims(v)) for v in graph.input]} and outputs {[(v.name, _dims(v)) for v in graph.output]}"
        )
    return OnnxModel(plan, proto, [last.name], from_file=path)


def _dequantized(graph: onnx.GraphProto, tensor: str) -> str:
    """The DequantizeLinear output of ``tensor``'s QuantizeLinear, when it is quantized; else ``tensor``."""
    quantized = next((n.output[0] for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == tensor), None)
    if quantized is None:
        return tensor
    return next(
        (n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] == quantized), tensor
    )


def _layer_tensor(graph: onnx.GraphProto, plan: Plan, layer: str, produced: set[str]) -> tuple[str, bool]:
    """(the tensor holding ``layer``'s output, whether it is an NCHW map)."""
    index = [item.name for item in plan.layers].index(layer)
    while isinstance(plan.layers[index], Dropout):  # no node of its own: the layer before it
        index -= 1
    name = plan.layers[index].name
    if isinstance(plan.layers[index], InputLayer):
        return graph.input[0].name, False
    for candidate, nchw in ((name, False), (f"{name}/nchw", True)):
        if candidate in produced:
            return _dequantized(graph, candidate), nchw
    raise BackendError(f"layer {layer}: expected a tensor {name} or {name}/nchw in the ONNX graph, received neither")


def with_layer_outputs(model: OnnxModel, plan: Plan, outputs: Mapping[str, str]) -> OnnxModel:
    """A copy of the file model ``model`` whose graph outputs are ``{name: plan layer}``, channels last, float32."""
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph = proto.graph
    produced = {output for node in graph.node for output in node.output}
    del graph.output[:]
    names = []
    for key, layer in outputs.items():
        tensor, nchw = _layer_tensor(graph, plan, layer, produced)
        if nchw:
            tensor = _node(graph, "Transpose", tensor, f"probe/{key}/nhwc", perm=list(TO_NHWC))
        names.append(_node(graph, "Cast", tensor, f"probe/{key}", to=TensorProto.FLOAT))
        shape: list[Union[str, int]] = ["batch", *plan.layer(layer).output_shape]
        graph.output.append(helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, shape))
    return OnnxModel(plan, proto, list(outputs), from_file=model.from_file, graph_outputs=names)


def _node(graph: onnx.GraphProto, op: str, source: str, output: str, **attributes: Any) -> str:
    graph.node.append(helper.make_node(op, [source], [output], name=f"{output}/{op.lower()}", **attributes))
    return output
