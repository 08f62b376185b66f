"""The onnx backend held to the plan, to ONNX's checker and shape inference, to the torch and Keras backends and
to keras.applications.

Full-size shipped specs are checked in the fast run without any weight data: a graph whose
initializers declare their dims only, every layer an output, run through ONNX's strict shape
inference (every output shape must be the plan's) and counted. Their outputs against torch
and Keras run under ``-m slow``. What every backend must do (weights in and out, every layer
type and activation against the NumPy reference, LRN, no-top models, save) is
tests/backends/test_contract.py; here is what is ONNX's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vggspec
from vggspec.backends import get_backend
from vggspec.errors import BackendError
from vggspec.parity.compare import TOLERANCE, compare_backends
from vggspec.parity.inputs import random_bundle, synthetic_images
from vggspec.planner.layers import InputLayer, LocalResponseNormalization
from vggspec.planner.lower import Plan
from vggspec.preprocessing import preprocess
from vggspec.weights.formats import write_bundle

from conftest import SHIPPED_SPECS as SHIPPED

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")


# A small VGG: the last map is 8x8x16, so fc1's flatten order matters.
SMALL = {
    "name": "small",
    "layers": ["conv3-8", "conv3-8", "maxpool", "conv3-16", "maxpool"],
    "input_shape": [32, 32, 3],
    "fc": [16, 12],
    "classes": 10,
}
# Edited specs, every one a graph the ONNX checker passes (their numbers: tests/backends/test_contract.py)
EDITED = {
    "small": {},
    "input_48x40": {"input_shape": [48, 40, 3]},
    "two_classes": {"classes": 2},
    "notop_avg": {"include_top": False, "pooling": "avg"},
    "notop_max": {"include_top": False, "pooling": "max"},
    "notop_map": {"include_top": False},
    "gelu": {"activation": "gelu"},
    "batch_norm": {"batch_norm": True},
    "lrn_kernels": {
        "layers": ["conv3-8", "LRN", "maxpool", "conv5-8", "conv1-8", "conv7-16", "maxpool"],
        "lrn": {"size": 3, "alpha": 1.0, "beta": 0.75, "k": 1.0},  # the sum matters
    },
    "dropout_logits": {"dropout": 0.5, "classifier_activation": None, "batch_norm": True, "activation": "silu"},
}
# The other activations (and heads)
ACTIVATIONS = {
    "relu6": {"activation": "relu6"},
    "elu": {"activation": "elu"},
    "selu": {"activation": "selu"},
    "silu": {"activation": "silu"},
    "tanh": {"activation": "tanh"},
    "sigmoid": {"activation": "sigmoid", "classifier_activation": "sigmoid"},
}


@pytest.fixture(scope="module")
def backend():
    return get_backend("onnx")


def small_plan(**changes) -> Plan:
    return vggspec.plan(vggspec.spec_from_mapping({**SMALL, **changes}))


def images(plan: Plan, count: int = 2, seed: int = 0) -> np.ndarray:
    """Preprocessed synthetic images (NHWC float32), as verify feeds them."""
    height, width, channels = plan.input_shape
    return preprocess(synthetic_images(count, height, width, channels, seed=seed), plan.preprocessing)


def shape_only_model(plan: Plan):
    """The onnx backend's graph of ``plan`` with every layer an output, its initializers declaring their dims
    and holding no data: cheap at full size (a few KB), enough for shape inference and for counting."""
    from onnx import TensorProto

    from vggspec_onnx.graph import model_proto
    from vggspec_onnx.layout import initializer_name, onnx_shape
    from vggspec_onnx.model import OnnxModel

    declared = (
        TensorProto(
            name=initializer_name(layer.name, weight),
            data_type=TensorProto.FLOAT,
            dims=onnx_shape(layer, weight, shape),
        )
        for layer in plan.layers
        for weight, shape in layer.weights
    )
    outputs = {layer.name: layer.name for layer in plan.layers}
    return OnnxModel(plan, model_proto(plan, declared, outputs), list(outputs))


# --- the plugin and the graph --------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_full_size_graph_infers_the_plans_shapes_and_counts_its_parameters(backend, name):
    plan = vggspec.plan(name)
    model = shape_only_model(plan)
    inferred = onnx.shape_inference.infer_shapes(model.proto, strict_mode=True)
    shapes = {
        output.name: tuple(dim.dim_value or dim.dim_param for dim in output.type.tensor_type.shape.dim)
        for output in inferred.graph.output
    }
    assert shapes == {layer.name: ("batch", *layer.output_shape) for layer in plan.layers}
    assert backend.count_params(model) == (plan.trainable_params, plan.non_trainable_params)
    assert model.proto.ByteSize() < 100_000  # no data: nothing was allocated


def test_full_size_counts_of_a_real_build(backend):
    plan = vggspec.plan("vgg16_bn")
    model = backend.build(plan)
    trainable, non_trainable = backend.count_params(model)
    assert (trainable, non_trainable) == (138_365_992, 8_448)  # torchvision's count; BN running mean and var
    assert trainable + non_trainable == plan.total_params
    sizes = {tensor.name: tensor.dims for tensor in model.proto.graph.initializer}
    assert tuple(sizes["fc1/kernel"]) == (25088, 4096) and tuple(sizes["block1_conv1/kernel"]) == (64, 3, 3, 3)
    assert model.proto.ByteSize() < 2**31 - 1


def test_graph_layout_names_and_opset(backend):
    plan = small_plan()
    proto = backend.build(plan).proto
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)] and proto.ir_version == 8
    (graph_input,) = proto.graph.input
    dims = [d.dim_value or d.dim_param for d in graph_input.type.tensor_type.shape.dim]
    assert (graph_input.name, dims) == ("input_layer", ["batch", 32, 32, 3])
    assert [output.name for output in proto.graph.output] == ["predictions"]
    nodes = {node.name: node for node in proto.graph.node}
    # NCHW between one Transpose after the input and one before Flatten
    transposes = [(node.name, list(node.attribute[0].ints)) for node in proto.graph.node if node.op_type == "Transpose"]
    assert transposes == [("input_layer/nchw", [0, 3, 1, 2]), ("block2_pool/nhwc", [0, 2, 3, 1])]
    assert nodes["block1_conv1"].op_type == "Conv" and nodes["block1_conv1/relu"].op_type == "Relu"
    assert nodes["flatten"].op_type == "Flatten" and nodes["fc1"].op_type == "Gemm"
    assert nodes["predictions/softmax"].op_type == "Softmax"
    expected = [f"{layer.name}/{weight}" for layer in plan.layers for weight, _ in layer.weights]
    assert [tensor.name for tensor in proto.graph.initializer] == expected
    assert dict((p.key, p.value) for p in proto.metadata_props)["vggspec.input_layout"] == "NHWC"


# --- numbers against torch and Keras -------------------------------------------------------------------


def assert_backends_agree(plan: Plan, backends: list[str], count: int = 2, seed: int = 0):
    """compare_backends as ``vggspec verify`` runs it: every layer within verify's tolerance, counts equal."""
    report = compare_backends(plan, random_bundle(plan, seed), images(plan, count, seed), backends, progress=False)
    assert report.params_ok, report.params
    worst = max(report.layers, key=lambda layer: layer.rel_diff)
    assert report.ok, (worst.name, worst.pair, worst.rel_diff)
    assert worst.rel_diff <= TOLERANCE
    return report


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_specs_equal_torch_and_keras_at_full_size(name):
    pytest.importorskip("keras")
    plan = vggspec.plan(name)
    report = assert_backends_agree(plan, ["keras", "torch", "onnx"], count=1)
    assert report.params["onnx"]["equal_to_plan"] and report.top5_agreement == 1.0


# --- LRN -----------------------------------------------------------------------------------------------

LRN_CASES = [  # (size, alpha, beta, k): the paper's, and ones where the sum dominates
    (5, 1e-4, 0.75, 2.0),
    (3, 1.0, 0.75, 1.0),
    (5, 2.0, 0.5, 0.5),
    (1, 0.5, 1.0, 1.0),
    (7, 1.0, 0.75, 1.0),
]


def lrn_plan(size: int, alpha: float, beta: float, k: float, shape=(5, 6, 6)) -> Plan:
    """A plan of the input and one LRN, made by hand (a spec also needs a convolution)."""
    layers = (
        InputLayer(name="input_layer", output_shape=shape),
        LocalResponseNormalization(name="block1_lrn", output_shape=shape, size=size, alpha=alpha, beta=beta, k=k),
    )
    return Plan(name="lrn", input_shape=shape, layers=layers, preprocessing="caffe", classes=None)


@pytest.mark.parametrize("size, alpha, beta, k", LRN_CASES)
def test_lrn_node_takes_the_plans_numbers_unchanged(backend, size, alpha, beta, k):
    """The plan's (size, alpha, beta, k) mean torch's, and ONNX's LRN the same (see vggspec_onnx.graph)."""
    lrn_node = next(
        node for node in backend.build(lrn_plan(size, alpha, beta, k)).proto.graph.node if node.op_type == "LRN"
    )
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in lrn_node.attribute}
    assert attributes == pytest.approx({"size": size, "alpha": alpha, "beta": beta, "bias": k}, rel=1e-7)


def test_an_even_lrn_size_is_refused(backend):
    with pytest.raises(BackendError, match="layer block1_lrn: expected an odd LRN size .*, received 4"):
        backend.build(lrn_plan(4, 1.0, 0.75, 1.0))


# --- weights, predict, extractor ------------------------------------------------------------------------


def test_conv_kernels_are_initializers_in_oihw(backend):
    plan = small_plan(batch_norm=True)
    bundle = random_bundle(plan, seed=4)
    model = backend.build(plan)
    backend.set_weights(model, plan, bundle)
    conv = next(t for t in model.proto.graph.initializer if t.name == "block1_conv1/kernel")
    np.testing.assert_array_equal(
        onnx.numpy_helper.to_array(conv), bundle.layers["block1_conv1"]["kernel"].transpose(3, 2, 0, 1)
    )


def test_fresh_weights_are_glorot_uniform_with_zero_biases(backend):
    plan = small_plan(batch_norm=True)
    weights = backend.get_weights(backend.build(plan), plan).layers
    kernel = weights["fc1"]["kernel"]
    limit = np.sqrt(6 / sum(kernel.shape))
    assert 0.9 * limit < np.abs(kernel).max() <= limit and abs(kernel.mean()) < 0.05 * limit
    assert not weights["fc1"]["bias"].any()
    assert (weights["block1_conv1_bn"]["gamma"] == 1).all() and (
        weights["block1_conv1_bn"]["moving_variance"] == 1
    ).all()


def test_predict_takes_any_batch_and_refuses_wrong_shapes(backend):
    plan = small_plan()
    model = backend.build(plan)
    backend.set_weights(model, plan, random_bundle(plan, seed=1))
    x = images(plan, 5)
    whole = backend.predict(model, x)
    assert whole.shape == (5, 10) and whole.dtype == np.float32
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(backend.predict(model, x[3:4]), whole[3:4], rtol=1e-5, atol=1e-7)
    with pytest.raises(BackendError, match=r"expected an array of shape \(N, 32, 32, 3\), received \(2, 64, 64, 3\)"):
        backend.predict(model, np.zeros((2, 64, 64, 3), np.float32))


def test_extractor_gives_named_channels_last_outputs(backend):
    plan = small_plan(batch_norm=True)
    model = backend.build(plan)
    backend.set_weights(model, plan, random_bundle(plan, seed=2))
    x = images(plan)
    every = backend.activations(model, plan, x)
    cut = plan.up_to("block2_conv1_act")
    for trainable in (True, False):  # accepted; onnxruntime only infers
        extractor = backend.extractor(
            model, cut, {"block1_conv1": "block1_conv1_act", "block2_conv1_bn": "block2_conv1_bn"}, trainable
        )
        outputs = extractor(x)
        assert list(outputs) == ["block1_conv1", "block2_conv1_bn"]
        # other graph outputs, other fusions (batch norm into the convolution): equal to fp32 rounding
        np.testing.assert_allclose(outputs["block1_conv1"], every["block1_conv1_act"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(outputs["block2_conv1_bn"], every["block2_conv1_bn"], rtol=1e-5, atol=1e-5)
    names = backend.extractor(model, plan, ["flatten", "fc1"], False)(x)
    assert names["flatten"].shape == (2, 8 * 8 * 16)
    np.testing.assert_allclose(names["flatten"], every["block2_pool"].reshape(2, -1), rtol=1e-5, atol=1e-5)  # H,W,C


def test_library_features_through_vggspec_build():
    extractor = vggspec.build(vggspec.spec_from_mapping(SMALL), backend="onnx", outputs=["block1_conv2", "block2_pool"])
    outputs = extractor(images(small_plan()))
    assert {name: array.shape for name, array in outputs.items()} == {
        "block1_conv2": (2, 32, 32, 8),
        "block2_pool": (2, 8, 8, 16),
    }


# --- save, and bad input --------------------------------------------------------------------------------


def test_save_writes_a_checked_file_that_onnxruntime_runs(backend, tmp_path):
    import onnxruntime

    plan = small_plan(batch_norm=True, layers=["conv3-8", "LRN", "maxpool", "conv3-16", "maxpool"])
    model = backend.build(plan)
    backend.set_weights(model, plan, random_bundle(plan, seed=3))
    path = tmp_path / "small.onnx"
    assert backend.save(model, str(path)) is None
    onnx.checker.check_model(str(path), full_check=True)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = images(plan)
    (loaded,) = session.run(None, {"input_layer": x})
    np.testing.assert_array_equal(loaded, backend.predict(model, x))
    assert [p.name for p in tmp_path.iterdir()] == ["small.onnx"]


@pytest.mark.parametrize("changes", [*EDITED.values(), *ACTIVATIONS.values()], ids=[*EDITED, *ACTIVATIONS])
def test_every_layer_kind_passes_the_full_check(backend, changes):
    plan = small_plan(**changes)
    model = backend.build(plan)
    onnx.checker.check_model(model.proto, full_check=True)
    onnx.checker.check_model(backend.extractor(model, plan, [layer.name for layer in plan.layers], False).proto, True)


def test_save_failures_leave_the_destination_as_it_was(backend, tmp_path, monkeypatch):
    import vggspec_onnx.model

    plan = small_plan()
    model = backend.build(plan)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"the previous model")

    def refuse(*args, **kwargs):
        raise onnx.checker.ValidationError("a refused graph")

    monkeypatch.setattr(onnx.checker, "check_model", refuse)
    with pytest.raises(BackendError, match="the ONNX checker refused the graph vggspec wrote: a refused graph"):
        backend.save(model, str(path))
    monkeypatch.undo()
    monkeypatch.setattr(vggspec_onnx.model, "PROTOBUF_LIMIT", 1000)
    with pytest.raises(BackendError, match=r"onnx model small: expected at most 1,000 bytes \(protobuf's limit"):
        backend.save(model, str(path))
    with pytest.raises(BackendError, match=r"model\.keras: expected a file name ending in \.onnx, received '\.keras'"):
        backend.save(model, str(tmp_path / "model.keras"))
    assert path.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def spec_file(directory: Path, **changes) -> Path:
    import yaml

    path = directory / f"{changes.get('name', 'small')}.yaml"
    path.write_text(yaml.safe_dump({**SMALL, **changes}))
    return path


def test_build_command_writes_the_model_and_creates_folders_like_the_others(cli, tmp_path):
    spec = spec_file(tmp_path)
    plan = vggspec.plan(str(spec))
    weights = tmp_path / "w.safetensors"
    write_bundle(weights, random_bundle(plan, seed=7))
    out = tmp_path / "new" / "folder" / "small.onnx"
    result = cli("build", spec, "--backend", "onnx", "--weights", weights, "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"{out}: small (onnx), {plan.total_params:,} parameters ({plan.total_params:,} trainable; the plan: "
        f"{plan.total_params:,})"
    )
    onnx.checker.check_model(str(out), full_check=True)
    proto = onnx.load(str(out))
    stored = {tensor.name: onnx.numpy_helper.to_array(tensor) for tensor in proto.graph.initializer}
    np.testing.assert_array_equal(stored["fc1/kernel"], random_bundle(plan, seed=7).layers["fc1"]["kernel"])
    torch_out = tmp_path / "other" / "folder" / "small.pt"  # the torch backend makes folders the same way
    assert cli("build", spec, "--backend", "torch", "--out", torch_out).returncode == 0 and torch_out.is_file()


def test_build_command_refuses_bad_input_in_one_line_and_writes_nothing(cli, tmp_path):
    spec, two = spec_file(tmp_path), spec_file(tmp_path, name="two", classes=2)
    weights = tmp_path / "ten.safetensors"
    write_bundle(weights, random_bundle(vggspec.plan(str(spec))))
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous model")
    (tmp_path / "folder.onnx").mkdir()
    (tmp_path / "a_file").write_text("")
    cases = [
        (
            ["--weights", weights, "--out", out],
            f"error: {weights}: layer predictions: expected kernel of shape (12, 2), received (12, 10)",
        ),
        (
            ["--out", tmp_path / "model.txt"],
            f"error: {tmp_path / 'model.txt'}: expected a file name ending in .onnx, received '.txt'",
        ),
        (
            ["--out", tmp_path / "folder.onnx"],
            f"error: --out {tmp_path / 'folder.onnx'}: expected a file to write, received an existing folder",
        ),
        (["--out", tmp_path / "a_file" / "m.onnx"], None),
    ]
    for arguments, expected in cases:
        result = cli("build", two, "--backend", "onnx", *arguments)
        assert result.returncode == 2, (arguments, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
        if expected is not None:
            assert lines[0] == expected
    assert out.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["small.yaml", "two.yaml", "ten.safetensors", "model.onnx", "folder.onnx", "a_file"]
    )


def test_verify_three_ways_and_predict_on_the_command_line(cli, tmp_path):
    pytest.importorskip("keras")
    from PIL import Image

    spec = spec_file(tmp_path, classes=3)
    result = cli("verify", spec, "--backends", "keras,torch,onnx", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["odd_one_out"] is None and report["backends"] == ["keras", "torch", "onnx"]
    assert report["params"]["onnx"] == report["params"]["keras"]
    assert all(layer["disagreeing_pairs"] == [] for layer in report["layers"])
    assert {tuple(layer["pair"]) for layer in report["layers"]} <= {
        ("keras", "torch"),
        ("keras", "onnx"),
        ("torch", "onnx"),
    }
    text = cli("verify", spec, "--backends", "keras,torch,onnx")
    assert text.returncode == 0
    assert "keras vs torch vs onnx (every pair compared, the first of a pair its reference)" in text.stdout
    assert "worst pair" in text.stdout and text.stdout.rstrip().endswith(
        "OK: the backends agree on every layer and on the parameter counts"
    )

    weights = tmp_path / "w.pt"
    plan = vggspec.plan(str(spec))
    write_bundle(weights, random_bundle(plan, seed=2), plan)
    image = tmp_path / "picture.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(image)
    scores = {}
    for name in ("torch", "onnx"):
        done = cli("predict", spec, image, "--weights", weights, "--backend", name, "--labels", "a,b,c", "--json")
        assert done.returncode == 0, done.stderr
        scores[name] = json.loads(done.stdout)[str(image)]
    assert [row["label"] for row in scores["onnx"]] == [row["label"] for row in scores["torch"]]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(scores["onnx"], scores["torch"])) < 1e-5


def test_framework_problem_names_an_old_release(backend, monkeypatch):
    import vggspec_onnx.backend

    assert backend.framework_problem() is None
    monkeypatch.setattr(
        vggspec_onnx.backend, "_installed_version", lambda module: "1.15.1" if module == "onnxruntime" else "1.23.0"
    )
    assert backend.framework_problem() == (
        "onnxruntime 1.15.1 is installed, expected 1.19 or newer (opset 17 under numpy 2): "
        'pip install --upgrade "vggspec[onnx]"'
    )


# --- the real VGG16 file ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_keras1_vgg16_h5_in_onnxruntime_equals_keras_applications(cli, tmp_path):
    """The layout of vgg16_weights_tf_dim_ordering_tf_kernels.h5 (Keras 1), built into a 553 MB .onnx by the
    command line, run by onnxruntime from the file: the outputs of keras.applications.VGG16 with that file."""
    pytest.importorskip("keras")
    import onnxruntime

    from weight_fixtures import keras_vgg16, keras_vgg16_layers, write_keras1_h5

    weights = write_keras1_h5(tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5", keras_vgg16_layers())
    out = tmp_path / "vgg16.onnx"
    result = cli("build", "vgg16", "--backend", "onnx", "--weights", weights, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "vgg16.onnx: vgg16 (onnx), 138,357,544 parameters" in result.stdout
    assert 4 * 138_357_544 < out.stat().st_size < 4 * 138_357_544 + 1_000_000 < 2**31 - 1
    keras_model, _ = keras_vgg16()
    keras_model.load_weights(str(weights))  # Keras' own reader of the legacy layout
    plan = vggspec.plan("vgg16")
    x = images(plan, 2, seed=1)
    expected = keras_model.predict(x, verbose=0)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (ours,) = session.run(["predictions"], {"input_layer": x})
    assert ours.shape == (2, 1000)
    assert np.abs(ours - expected).max() <= TOLERANCE
    assert (np.argsort(-ours, axis=1)[:, :5] == np.argsort(-expected, axis=1)[:, :5]).all()
    (single,) = session.run(["predictions"], {"input_layer": x[1:]})  # the batch axis is dynamic
    np.testing.assert_allclose(single, ours[1:], rtol=1e-5, atol=1e-7)
