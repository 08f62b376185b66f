"""The torch backend against the plan, torchvision's state dict keys and Keras' outputs.

What every backend must do (weights in and out, no-top models, LRN, every layer type against the NumPy
reference, save) is tests/backends/test_contract.py; here is what is torch's own.

Counts are checked at full size on the ``meta`` device (the real module tree,
nothing allocated); shapes on small variants (32x32 input, FC 16-16) so every
shipped name runs in a fraction of a second. Parity with Keras runs a 64x64
VGG16 by default (flatten map 2x2x512, so fc1's row reorder matters) and the
full 224x224 VGG16 under ``-m slow``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vggspec
from vggspec.backends import get_backend
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.fit import fit_bundle

from conftest import SHIPPED_SPECS as SHIPPED

torch = pytest.importorskip("torch")


# torchvision's vgg16(): conv at features.0, 2, 5, ...; ReLU after each, MaxPool2d ending each block.
VGG16_STATE = {
    "features.0.weight": (64, 3, 3, 3),
    "features.0.bias": (64,),
    "features.2.weight": (64, 64, 3, 3),
    "features.2.bias": (64,),
    "features.5.weight": (128, 64, 3, 3),
    "features.5.bias": (128,),
    "features.7.weight": (128, 128, 3, 3),
    "features.7.bias": (128,),
    "features.10.weight": (256, 128, 3, 3),
    "features.10.bias": (256,),
    "features.12.weight": (256, 256, 3, 3),
    "features.12.bias": (256,),
    "features.14.weight": (256, 256, 3, 3),
    "features.14.bias": (256,),
    "features.17.weight": (512, 256, 3, 3),
    "features.17.bias": (512,),
    "features.19.weight": (512, 512, 3, 3),
    "features.19.bias": (512,),
    "features.21.weight": (512, 512, 3, 3),
    "features.21.bias": (512,),
    "features.24.weight": (512, 512, 3, 3),
    "features.24.bias": (512,),
    "features.26.weight": (512, 512, 3, 3),
    "features.26.bias": (512,),
    "features.28.weight": (512, 512, 3, 3),
    "features.28.bias": (512,),
    "classifier.0.weight": (4096, 25088),
    "classifier.0.bias": (4096,),
    "classifier.3.weight": (4096, 4096),
    "classifier.3.bias": (4096,),
    "classifier.6.weight": (1000, 4096),
    "classifier.6.bias": (1000,),
}

# torchvision's vgg16_bn(): (conv index, out, in); BatchNorm2d at conv + 1, ReLU at conv + 2.
VGG16_BN_CONVS = [
    (0, 64, 3),
    (3, 64, 64),
    (7, 128, 64),
    (10, 128, 128),
    (14, 256, 128),
    (17, 256, 256),
    (20, 256, 256),
    (24, 512, 256),
    (27, 512, 512),
    (30, 512, 512),
    (34, 512, 512),
    (37, 512, 512),
    (40, 512, 512),
]
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def vgg16_bn_state() -> dict[str, tuple[int, ...]]:
    state: dict[str, tuple[int, ...]] = {}
    for index, out, inputs in VGG16_BN_CONVS:
        state[f"features.{index}.weight"] = (out, inputs, 3, 3)
        state[f"features.{index}.bias"] = (out,)
        for name in BN_KEYS:
            state[f"features.{index + 1}.{name}"] = () if name == "num_batches_tracked" else (out,)
    classifier = {key: shape for key, shape in VGG16_STATE.items() if key.startswith("classifier.")}
    return {**state, **classifier}


@pytest.fixture(scope="module")
def backend():
    return get_backend("torch")


def small_spec(name: str, **changes) -> vggspec.Spec:
    """A shipped spec on a 32x32 input with FC 16-16 and 10 classes (same layers, same names)."""
    mapping = vggspec.spec_to_mapping(vggspec.load_spec(name))
    return vggspec.spec_from_mapping({**mapping, "input_shape": [32, 32, 3], "fc": [16, 16], "classes": 10, **changes})


def images(shape: tuple[int, ...], seed: int = 0, scale: float = 50.0) -> np.ndarray:
    """NHWC float32 with roughly the spread of caffe-preprocessed pixels."""
    return np.random.default_rng(seed).normal(0.0, scale, shape).astype(np.float32)


def meta_build(backend, plan):
    """The real module tree without allocating its arrays."""
    with torch.device("meta"):
        return backend.build(plan)


def shapes(model) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


@pytest.mark.parametrize("name", SHIPPED)
def test_counts_equal_the_plan(backend, name):
    plan = vggspec.plan(name)
    assert backend.count_params(meta_build(backend, plan)) == (plan.trainable_params, plan.non_trainable_params)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_layer_shape_equals_the_plan(backend, name):
    plan = vggspec.plan(small_spec(name))
    model = backend.build(plan)
    assert backend.count_params(model) == (plan.trainable_params, plan.non_trainable_params)
    outputs = backend.activations(model, plan, images((1, 32, 32, 3)))
    assert list(outputs) == [layer.name for layer in plan.layers]
    assert {name: out.shape[1:] for name, out in outputs.items()} == {
        layer.name: layer.output_shape for layer in plan.layers
    }
    assert backend.predict(model, images((1, 32, 32, 3))).shape == (1, 10)


def test_vgg16_state_dict_is_torchvisions(backend):
    model = meta_build(backend, vggspec.plan("vgg16"))
    assert list(shapes(model).items()) == list(VGG16_STATE.items())
    assert [type(m).__name__ for m in model.classifier] == [
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
        "ReLU",
        "Dropout",
        "Linear",
        "Softmax",
    ]
    assert model.avgpool.output_size == (7, 7)


def test_vgg16_bn_state_dict_is_torchvisions(backend):
    model = meta_build(backend, vggspec.plan("vgg16_bn"))
    assert list(shapes(model).items()) == list(vgg16_bn_state().items())
    assert len(model.features) == 44
    batch_norm = model.features[1]
    assert (batch_norm.eps, batch_norm.momentum) == (1e-5, 0.1)
    assert model.features[2].inplace


@pytest.mark.parametrize("name", ["vgg16", "vgg16_bn"])
def test_torchvision_checkpoints_load_strictly(backend, name):
    torchvision = pytest.importorskip("torchvision")
    reference = getattr(torchvision.models, name)(weights=None)
    model = backend.build(vggspec.plan(name))
    assert shapes(model) == shapes(reference)
    model.load_state_dict(reference.state_dict(), strict=True)
    reference.load_state_dict(model.state_dict(), strict=True)


def test_configuration_c_has_unpadded_1x1_convolutions(backend):
    model = meta_build(backend, vggspec.plan("C"))
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.kernel_size[0], c.padding[0]) for c in convs if c.kernel_size[0] == 1] == [(1, 0)] * 3
    assert all(c.padding[0] == 1 for c in convs if c.kernel_size[0] == 3)


def test_activation_modules_equal_keras_activations():
    keras = pytest.importorskip("keras")
    from vggspec.frameworks import keras_layers, torch_modules
    from vggspec_torch.network import NAMESPACES

    x = np.linspace(-6, 6, 241, dtype=np.float32).reshape(1, -1)
    for tables in (
        (torch_modules.ACTIVATIONS, keras_layers.ACTIVATIONS),
        (torch_modules.CLASSIFIER_ACTIVATIONS, keras_layers.CLASSIFIER_ACTIVATIONS),
    ):
        for name, module in tables[0].items():
            ours = module.make(NAMESPACES)(torch.from_numpy(x.copy())).numpy()
            theirs = keras.ops.convert_to_numpy(keras.activations.get(tables[1][name])(x))
            assert np.abs(ours - theirs).max() < 1e-6, name


def test_dropout_only_in_training(backend):
    plan = vggspec.plan(small_spec("A"))  # the paper's dropout 0.5
    model = backend.build(plan)
    dropouts = [m for m in model.classifier if isinstance(m, torch.nn.Dropout)]
    assert [d.p for d in dropouts] == [0.5, 0.5]
    ones = torch.ones(200, 16)
    model.train()
    dropped = dropouts[0](ones)
    assert 0.35 < (dropped == 0).float().mean().item() < 0.65
    assert set(dropped.unique().tolist()) == {0.0, 2.0}
    model.eval()
    assert torch.equal(dropouts[0](ones), ones)
    x = images((2, 32, 32, 3))
    nchw = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(nchw), model(nchw))
    assert model.training  # predict restores the mode it found
    first = backend.predict(model, x)
    assert model.training
    np.testing.assert_array_equal(first, backend.predict(model, x))
    outputs = backend.activations(model, plan, x)
    np.testing.assert_array_equal(outputs["fc1_dropout"], outputs["fc1"])
    assert [
        m.p for m in backend.build(vggspec.plan(small_spec("vgg16"))).classifier if isinstance(m, torch.nn.Dropout)
    ] == [0.0, 0.0]


def test_predict_equals_the_module_on_nchw(backend):
    plan = vggspec.plan(small_spec("vgg16_bn"))
    model = backend.build(plan)
    x = images((3, 32, 32, 3), seed=1)
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    predicted = backend.predict(model, x)
    assert predicted.dtype == np.float32 and predicted.shape == (3, 10)
    np.testing.assert_array_equal(predicted, expected)
    np.testing.assert_array_equal(backend.activations(model, plan, x)["predictions"], expected)
    np.testing.assert_allclose(predicted.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("cut", ["input_layer", "block1_pool"])
def test_a_network_without_parameters_predicts_and_gives_activations_and_features(backend, cut):
    """Cut at its input, or an input and a pool: nothing holds a device, and the network runs on the CPU."""
    spec = vggspec.spec_from_mapping(
        {"name": "pool_first", "layers": ["maxpool", "conv3-4", "maxpool"], "input_shape": [32, 32, 3], "fc": [8]}
    )
    plan = vggspec.plan(spec).up_to(cut)
    model = backend.build(plan)
    assert list(model.parameters()) == [] and list(model.buffers()) == []
    x = images((2, 32, 32, 3), seed=3)
    expected = x if cut == "input_layer" else x.reshape(2, 16, 2, 16, 2, 3).max(axis=(2, 4))
    np.testing.assert_array_equal(backend.predict(model, x), expected)
    np.testing.assert_array_equal(backend.activations(model, plan, x)[cut], expected)
    extractor = vggspec.build(spec, backend="torch", outputs=[cut], trainable=False)
    assert sum(p.numel() for p in extractor.parameters()) == 0
    features = extractor(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))[cut]
    np.testing.assert_array_equal(features.numpy().transpose(0, 2, 3, 1), expected)


def test_accelerate_keeps_fp32_on_a_cpu(backend):
    plan = vggspec.plan(small_spec("vgg16"))
    model = backend.build(plan)
    x = images((2, 32, 32, 3), seed=2)
    expected = backend.predict(model, x)
    if torch.cuda.is_available():
        fast = backend.accelerate(model)
        assert next(fast.parameters()).is_cuda and fast.vggspec_autocast
        np.testing.assert_allclose(backend.predict(fast, x), expected, atol=2e-2)  # bf16
    else:
        assert backend.accelerate(model) is model and not hasattr(model, "vggspec_autocast")
        np.testing.assert_array_equal(backend.predict(model, x), expected)


def test_save_writes_a_state_dict(backend, tmp_path):
    plan = vggspec.plan(small_spec("vgg11_bn"))
    model = backend.build(plan)
    path = tmp_path / "model.pt"
    path.write_bytes(b"old")
    backend.save(model, str(path))
    loaded = torch.load(path, weights_only=True)
    assert list(loaded) == list(model.state_dict())
    assert all(torch.equal(loaded[key], value) for key, value in model.state_dict().items())
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


# --- the training process' memory ---------------------------------------------------------------------

HUGE_PAGES_SCRIPT = """
import re, sys
from vggspec_torch import TorchBackend
if sys.argv[1] == "train":
    TorchBackend().seed(0)
import torch
tensor = torch.ones(50_000_000)  # 200 MB, every page touched
with open("/proc/self/smaps_rollup") as file:
    print(int(re.search(r"AnonHugePages:\\s+(\\d+) kB", file.read()).group(1)) * 1024)
"""
TRANSPARENT_HUGE_PAGES = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def kernel_huge_pages() -> str:
    """The kernel's transparent huge page mode (always, madvise, never), or "" where it has none."""
    try:
        return re.search(r"\[(\w+)\]", TRANSPARENT_HUGE_PAGES.read_text()).group(1)
    except (OSError, AttributeError):
        return ""


@pytest.mark.skipif(kernel_huge_pages() != "madvise", reason="the kernel gives huge pages only on madvise here")
@pytest.mark.parametrize(
    "purpose, user_setting, huge",
    [("train", None, True), ("build", None, False), ("train", "0", False)],
)
def test_training_processes_put_large_tensors_on_huge_pages(purpose, user_setting, huge):
    env = {name: value for name, value in os.environ.items() if name != "THP_MEM_ALLOC_ENABLE"}
    if user_setting is not None:
        env["THP_MEM_ALLOC_ENABLE"] = user_setting  # the user's word wins
    out = subprocess.run(
        [sys.executable, "-c", HUGE_PAGES_SCRIPT, purpose], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    huge_bytes = int(out.stdout.split()[-1])
    assert (huge_bytes >= 100_000_000) if huge else (huge_bytes == 0), huge_bytes


def test_training_makes_each_optimizer_of_the_core_with_its_options():
    from vggspec.training.protocol import OPTIMIZERS, TrainConfig
    from vggspec_torch.training import OPTIMIZERS as TORCH_OPTIMIZERS
    from vggspec_torch.training import make_optimizer

    assert tuple(TORCH_OPTIMIZERS) == OPTIMIZERS
    parameters = [torch.nn.Parameter(torch.zeros(3))]
    sgd = make_optimizer(parameters, TrainConfig(optimizer="sgd", learning_rate=0.25, momentum=0.5))
    assert type(sgd) is torch.optim.SGD and (sgd.defaults["lr"], sgd.defaults["momentum"]) == (0.25, 0.5)
    adam = make_optimizer(parameters, TrainConfig(optimizer="adam", learning_rate=0.125))
    assert type(adam) is torch.optim.Adam and adam.defaults["lr"] == 0.125


# --- parity with keras.applications.VGG16 ---------------------------------------------------------


def keras_bundle(model) -> WeightBundle:
    """A Keras model's arrays by layer name (kernel HWIO / (in, out), bias)."""
    layers = {
        layer.name: {"kernel": np.asarray(layer.kernel), "bias": np.asarray(layer.bias)}
        for layer in model.layers
        if layer.weights
    }
    return WeightBundle(layers=layers, source="keras")


def keras_and_torch_vgg16(backend, size: int, classes: int, x: np.ndarray):
    """Outputs of keras.applications.VGG16(weights=None) and of the torch VGG16 with its weights:
    (softmax pair, logits pair, per-layer pair for the logits models)."""
    keras = pytest.importorskip("keras")
    softmax = keras.applications.VGG16(weights=None, input_shape=(size, size, 3), classes=classes)
    logits = keras.applications.VGG16(
        weights=None, input_shape=(size, size, 3), classes=classes, classifier_activation=None
    )
    logits.set_weights(softmax.get_weights())
    mapping = {
        **vggspec.spec_to_mapping(vggspec.load_spec("vgg16")),
        "input_shape": [size, size, 3],
        "classes": classes,
    }
    results = []
    for keras_model, activation in ((softmax, "softmax"), (logits, None)):
        plan = vggspec.plan(vggspec.spec_from_mapping({**mapping, "classifier_activation": activation}))
        bundle, skipped = fit_bundle(plan, keras_bundle(keras_model))
        assert skipped == []
        model = backend.build(plan)
        backend.set_weights(model, plan, bundle)
        results.append((keras_model.predict(x, verbose=0), backend.predict(model, x)))
    layers = keras.Model(logits.inputs, [layer.output for layer in logits.layers[1:]])
    theirs = dict(zip([layer.name for layer in logits.layers[1:]], layers.predict(x, verbose=0)))
    ours = backend.activations(model, plan, x)
    return results[0], results[1], (theirs, ours)


def assert_vgg16_parity(backend, size: int, classes: int):
    x = images((2, size, size, 3), seed=3)
    (k_soft, t_soft), (k_logits, t_logits), (k_layers, t_layers) = keras_and_torch_vgg16(backend, size, classes, x)
    assert np.abs(k_logits).max() > 0.05  # the comparison is not of near-zero numbers
    assert np.abs(t_logits - k_logits).max() < 1e-4
    assert np.abs(t_soft - k_soft).max() < 1e-4
    np.testing.assert_allclose(t_soft, k_soft, rtol=1e-3, atol=1e-6)
    assert (t_logits.argmax(axis=1) == k_logits.argmax(axis=1)).all()
    for name, theirs in k_layers.items():
        scale = max(1.0, float(np.abs(theirs).max()))
        assert np.abs(t_layers[name] - theirs).max() <= 1e-5 * scale, name


def test_vgg16_64px_matches_keras(backend):
    """fc1 sees a 2x2x512 map, so a missing H,W,C -> C,H,W column reorder would show."""
    assert_vgg16_parity(backend, size=64, classes=10)


@pytest.mark.slow
def test_vgg16_matches_keras(backend):
    assert_vgg16_parity(backend, size=224, classes=1000)
