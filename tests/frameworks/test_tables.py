"""Every framework's table covers every plan layer type and every activation, and the backends and the
code generators read the same tables (vggspec.frameworks; the ONNX backend's node writers; the NumPy
backend's functions, the README's layer table as code)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import vggspec
from vggspec.codegen import generate_source
from vggspec.frameworks import keras_layers, torch_modules
from vggspec.planner import layers as plan_layers
from vggspec.planner.activations import ACTIVATIONS, CLASSIFIER_ACTIVATIONS
from vggspec.spec.schema import SPEC_SCHEMA, load_schema
from vggspec_numpy import layers as numpy_layers

from conftest import SMALL_SPEC

# Between them, every layer type: batch norm (Conv2D without its activation, BatchNormalization,
# Activation), LRN, pools, flatten, dense, dropout; then each global pooling without a top.
EVERY_LAYER = {**SMALL_SPEC, "batch_norm": True, "layers": ["conv3-8", "LRN", "maxpool", "conv1-16", "maxpool"]}
NO_TOP = [{**SMALL_SPEC, "include_top": False, "pooling": pooling} for pooling in ("avg", "max", None)]


def every_plan(activation: str) -> list[vggspec.Plan]:
    """Plans holding every layer type between them, with ``activation`` everywhere, fused and not."""
    specs = [
        {**EVERY_LAYER, "activation": activation},
        {**SMALL_SPEC, "activation": activation},  # activations fused into convolutions and dense layers
        *({**spec, "activation": activation} for spec in NO_TOP),
        {**SMALL_SPEC, "classes": 1, "classifier_activation": "sigmoid"},
        {**SMALL_SPEC, "classifier_activation": None},
    ]
    return [vggspec.plan(vggspec.spec_from_mapping(spec)) for spec in specs]


def test_the_plan_lists_every_layer_type_it_has():
    assert set(plan_layers.LAYER_TYPES) == set(plan_layers.PlanLayer.__subclasses__())
    found = {type(layer) for plan in every_plan("relu") for layer in plan.layers}
    assert found == set(plan_layers.LAYER_TYPES)


def test_every_table_has_every_layer_type():
    onnx_graph = pytest.importorskip("vggspec_onnx.graph")
    types = set(plan_layers.LAYER_TYPES)
    assert set(torch_modules.TABLE) == types
    assert set(keras_layers.TABLE) == types
    assert set(onnx_graph.LAYERS) == types
    assert set(numpy_layers.LAYERS) == types


def test_every_table_has_every_activation_and_the_schema_lists_them():
    onnx_graph = pytest.importorskip("vggspec_onnx.graph")
    assert list(torch_modules.ACTIVATIONS) == list(keras_layers.ACTIVATIONS) == list(ACTIVATIONS)
    assert list(torch_modules.CLASSIFIER_ACTIVATIONS) == list(keras_layers.CLASSIFIER_ACTIVATIONS)
    assert list(keras_layers.CLASSIFIER_ACTIVATIONS) == list(CLASSIFIER_ACTIVATIONS)
    assert set(onnx_graph.ACTIVATIONS) == set(ACTIVATIONS) | set(CLASSIFIER_ACTIVATIONS)
    assert list(numpy_layers.ACTIVATIONS) == list(ACTIVATIONS)
    assert list(numpy_layers.CLASSIFIER_ACTIVATIONS) == list(CLASSIFIER_ACTIVATIONS)
    properties = load_schema(SPEC_SCHEMA)["properties"]
    assert properties["activation"]["enum"] == list(ACTIVATIONS)
    assert properties["classifier_activation"]["enum"] == [*CLASSIFIER_ACTIVATIONS, None]


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_every_layer_and_activation_compiles_in_every_table_and_code_generator(activation):
    onnx_graph = pytest.importorskip("vggspec_onnx.graph")
    for plan in every_plan(activation):
        for layer in plan.layers:
            torch_modules.torch_modules(layer, plan)
            keras_layers.keras_layer(layer)
        onnx_graph.model_proto(plan, [], {plan.layers[-1].name: plan.layers[-1].name})
        numpy_backend = vggspec.backends.get_backend("numpy")
        outputs = numpy_backend.activations(
            numpy_backend.build(plan), plan, np.ones((1, *plan.input_shape), np.float32)
        )
        assert [array.shape[1:] for array in outputs.values()] == [layer.output_shape for layer in plan.layers]
        for framework, style in (("keras", "sequential"), ("keras", "functional"), ("torch", None)):
            source = generate_source(plan, framework, style)
            compile(source, f"{plan.name}-{framework}.py", "exec")


def test_a_layer_type_no_table_knows_is_refused_by_every_table():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class AveragePooling2D(plan_layers.PlanLayer):
        pass

    plan = vggspec.plan("vgg11")
    unknown = AveragePooling2D(name="block1_avg", output_shape=(112, 112, 64))
    with pytest.raises(vggspec.VggspecError, match="block1_avg: expected a layer type torch has modules for"):
        torch_modules.torch_modules(unknown, plan)
    with pytest.raises(vggspec.VggspecError, match="block1_avg: expected a layer type Keras has a layer for"):
        keras_layers.keras_layer(unknown)


def test_the_network_keeps_the_slots_the_table_gives():
    pytest.importorskip("torch")
    from vggspec_torch.network import build_network

    for plan in every_plan("gelu"):
        network = build_network(plan)
        assert network.slots == torch_modules.module_slots(plan)
        for name, slot in network.slots.items():  # each slot holds the modules the table gives, in order
            modules = [type(module).__name__ for module in network.get_submodule(slot.sequence)]
            expected = [entry.name for entry in torch_modules.torch_modules(plan.layer(name), plan).modules]
            assert modules[slot.first : slot.first + slot.count] == expected, name
