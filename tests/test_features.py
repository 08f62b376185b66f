"""Named intermediate outputs (vggspec.build(..., outputs=[...]) and vggspec features), real Keras and torch.

The same names give the same values in both frameworks (layout transposed), equal to the full
model's activations; the torch extractor equals torchvision's ``features[:k]`` slicing; nothing
past the deepest output is built; gradients with respect to the input agree.
"""

from __future__ import annotations

import numpy as np
import pytest

import vggspec
from vggspec.errors import VggspecError
from vggspec.parity.compare import TOLERANCE
from vggspec.parity.inputs import random_bundle, synthetic_images
from vggspec.preprocessing import preprocess
from vggspec.weights.formats import write_bundle
from vggspec.weights.torchvision import module_slots

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

LAYERS = ["block1_conv1", "block2_conv2", "block3_conv1", "block4_conv2", "block5_pool", "fc1"]


def small_version(letter: str, **changes: object) -> vggspec.Spec:
    """A column of the paper's table at 64x64 with a small head (fast to build in Keras)."""
    fields = {
        "name": f"vgg_{letter.lower()}_64",
        "configuration": letter,
        "input_shape": [64, 64, 3],
        "fc": [64, 32],
        "classes": 10,
        "dropout": 0.0,
    }
    return vggspec.spec_from_mapping({**fields, **changes})


def relative(reference: np.ndarray, other: np.ndarray) -> float:
    return float(np.max(np.abs(reference - other)) / max(1.0, float(np.max(np.abs(reference)))))


def nchw(array: np.ndarray) -> np.ndarray:
    return array.transpose(0, 3, 1, 2) if array.ndim == 4 else array


@pytest.fixture
def weights_of(tmp_path):
    def write(spec: vggspec.Spec) -> str:
        path = tmp_path / f"{spec.name}.safetensors"
        write_bundle(path, random_bundle(vggspec.plan(spec), seed=3))
        return str(path)

    return write


@pytest.mark.parametrize("letter", ["D", "E"])
def test_the_same_names_give_the_same_outputs_in_keras_and_torch(letter, weights_of):
    spec = small_version(letter)
    plan = vggspec.plan(spec)
    weights = weights_of(spec)
    images = preprocess(synthetic_images(2, 64, 64, seed=1), plan.preprocessing)
    in_keras = vggspec.build(spec, backend="keras", weights=weights, outputs=LAYERS, trainable=False)
    in_torch = vggspec.build(spec, backend="torch", weights=weights, outputs=LAYERS, trainable=False)
    from_keras = {name: np.asarray(value) for name, value in in_keras(images).items()}
    with torch.no_grad():
        from_torch = {name: value.numpy() for name, value in in_torch(torch.from_numpy(nchw(images).copy())).items()}
    assert list(from_keras) == list(from_torch) == LAYERS
    backend = vggspec.backends.get_backend("keras")
    full = backend.build(plan)
    backend.set_weights(full, plan, vggspec.building.read_checked_bundle(plan, weights)[0])
    activations = backend.activations(full, plan, images)
    for name in LAYERS:
        assert from_keras[name].shape == (2, *plan.layer(name).output_shape), name
        assert relative(activations[name], from_keras[name]) == 0.0, name  # the same Keras layers
        assert relative(nchw(from_keras[name]), from_torch[name]) <= TOLERANCE, name


def test_torch_block4_conv2_of_vgg19_is_torchvisions_features_up_to_23(weights_of):
    """relu4_2 of the style-transfer papers: torchvision's features[:23] (index 22 is its ReLU)."""
    from torch import nn

    spec = small_version("E")
    plan = vggspec.plan(spec)
    assert module_slots(plan)["block4_conv2"].output_path == "features.22"  # the mapping, from the plan
    full = vggspec.build(spec, backend="torch", weights=weights_of(spec))
    # torchvision's vgg19 `features`, written out from its configuration "E"
    widths = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    modules: list[nn.Module] = []
    channels = 3
    for width in widths:
        if width == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules += [nn.Conv2d(channels, int(width), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(width)
    features = nn.Sequential(*modules)
    state = {
        key.removeprefix("features."): value for key, value in full.state_dict().items() if key.startswith("features.")
    }
    features.load_state_dict(state, strict=True)
    extractor = vggspec.build(
        spec, backend="torch", weights=weights_of(spec), outputs=["block4_conv2"], trainable=False
    )
    x = torch.from_numpy(nchw(preprocess(synthetic_images(2, 64, 64, seed=2), plan.preprocessing)).copy())
    with torch.no_grad():
        expected = features.eval()[:23](x)
        received = extractor(x)["block4_conv2"]
    assert relative(expected.numpy(), received.numpy()) <= 1e-6


@pytest.mark.parametrize("backend", ["keras", "torch"])
def test_nothing_past_the_deepest_output_is_built(backend):
    spec = small_version("D")
    extractor = vggspec.build(spec, backend=backend, outputs=["block1_conv1", "block2_conv2"])
    expected = 1_792 + 36_928 + 73_856 + 147_584  # block1_conv1 .. block2_conv2 (FACTS: VGG16's convolutions)
    if backend == "keras":
        assert extractor.count_params() == expected
        assert [layer.name for layer in extractor.layers][-1] == "block2_conv2"
    else:
        assert sum(p.numel() for p in extractor.parameters()) == expected
        assert len(extractor.net.features) == 9 and not extractor.net.has_top  # conv, relu x2, pool, conv, relu x2


def test_input_gradients_are_finite_and_equal_in_both_frameworks(weights_of):
    import tensorflow as tf

    spec = small_version("D", input_shape=[32, 32, 3])
    plan = vggspec.plan(spec)
    weights = weights_of(spec)
    images = preprocess(synthetic_images(2, 32, 32, seed=4), plan.preprocessing)
    in_keras = vggspec.build(spec, backend="keras", weights=weights, outputs=["block3_conv1"], trainable=False)
    in_torch = vggspec.build(spec, backend="torch", weights=weights, outputs=["block3_conv1"], trainable=False)
    x = tf.Variable(images)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(in_keras(x)["block3_conv1"]))
    keras_gradient = tape.gradient(loss, x).numpy()
    y = torch.from_numpy(nchw(images).copy()).requires_grad_(True)
    torch.mean(in_torch(y)["block3_conv1"] ** 2).backward()
    torch_gradient = y.grad.numpy()
    assert np.isfinite(keras_gradient).all() and np.abs(keras_gradient).max() > 0
    assert relative(nchw(keras_gradient), torch_gradient) <= 1e-4
    assert all(not p.requires_grad for p in in_torch.parameters()) and not in_keras.trainable_weights


def test_a_frozen_torch_extractor_stays_in_inference_mode():
    spec = small_version("D", batch_norm=True)
    extractor = vggspec.build(spec, backend="torch", outputs=["block2_conv1"], trainable=False)
    extractor.train()
    assert not extractor.training and not any(module.training for module in extractor.modules())
    trainable = vggspec.build(spec, backend="torch", outputs=["block2_conv1"])
    assert all(p.requires_grad for p in trainable.parameters())


@pytest.mark.parametrize("backend", ["keras", "torch"])
def test_with_batch_norm_a_convolution_means_the_activation_after_it(backend, weights_of):
    spec = small_version("D", batch_norm=True)
    plan = vggspec.plan(spec)
    weights = weights_of(spec)
    images = preprocess(synthetic_images(1, 64, 64, seed=5), plan.preprocessing)
    names = ["block3_conv2", "block3_conv2_bn", "block3_conv2_act"]
    extractor = vggspec.build(spec, backend=backend, weights=weights, outputs=names, trainable=False)
    if backend == "keras":
        out = {name: np.asarray(value) for name, value in extractor(images).items()}
    else:
        with torch.no_grad():
            out = {name: value.numpy() for name, value in extractor(torch.from_numpy(nchw(images).copy())).items()}
    assert np.array_equal(out["block3_conv2"], out["block3_conv2_act"])
    assert out["block3_conv2_bn"].min() < 0 <= out["block3_conv2"].min()  # before and after the ReLU


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(
        VggspecError,
        match=r"outputs: expected layer names of vgg16 \(input_layer, block1_conv1, .*"
        r"predictions\), received 'relu4_2'",
    ):
        vggspec.build("vgg16", backend="torch", outputs=["block1_conv1", "relu4_2"])


def test_one_name_as_a_string_is_a_list_of_that_one_name():
    """As a Keras model's ``outputs`` takes one output or a list: never the string's characters."""
    spec = small_version("D")
    x = torch.from_numpy(nchw(synthetic_images(1, 64, 64, seed=4)).copy())
    torch.manual_seed(0)
    from_string = vggspec.build(spec, backend="torch", outputs="block1_conv2", trainable=False)
    torch.manual_seed(0)
    from_list = vggspec.build(spec, backend="torch", outputs=["block1_conv2"], trainable=False)
    with torch.no_grad():
        received, expected = from_string(x), from_list(x)
    assert list(received) == ["block1_conv2"] and received["block1_conv2"].shape == (1, 64, 64, 64)
    np.testing.assert_array_equal(received["block1_conv2"].numpy(), expected["block1_conv2"].numpy())
    with pytest.raises(VggspecError, match=r"received 'block1_conv1,block2_conv1'$"):
        vggspec.build(spec, backend="torch", outputs="block1_conv1,block2_conv1")


def test_the_features_command_runs_layers_without_parameters_in_torch(cli, tmp_path):
    """An input, or a pool before any convolution, has no weights: nothing in the torch network says where to
    compute, and a whole network's weight file has nothing for it (its layers past the cut go unnamed)."""
    from PIL import Image

    spec = tmp_path / "pool_first.yaml"
    spec.write_text("name: pool_first\nlayers: [maxpool, conv3-8, maxpool]\ninput_shape: [32, 32, 3]\nfc: [16]\n")
    weights = tmp_path / "pool_first.h5"
    plan = vggspec.plan(vggspec.load_spec(spec))
    write_bundle(weights, random_bundle(plan, seed=5), plan)
    image = tmp_path / "picture.png"
    Image.fromarray((synthetic_images(1, 32, 32, seed=6)[0]).astype(np.uint8)).save(image)
    for layer, shape in (("input_layer", "(1, 32, 32, 3)"), ("block1_pool", "(1, 16, 16, 3)")):
        result = cli("features", spec, image, "--layers", layer, "--backend", "torch", "--weights", weights)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        (row,) = [line for line in result.stdout.splitlines() if line.startswith(layer)]
        assert row.split("  ")[1].strip() == shape


def test_the_features_command_prints_and_saves(cli, tmp_path, weights_of):
    from PIL import Image

    spec = tmp_path / "small.yaml"
    spec.write_text("name: small\nconfiguration: D\ninput_shape: [64, 64, 3]\nfc: [16]\nclasses: 3\n")
    image = tmp_path / "picture.png"
    Image.fromarray((synthetic_images(1, 80, 70, seed=6)[0]).astype(np.uint8)).save(image)
    out = tmp_path / "features.npz"
    result = cli(
        "features", spec, image, "--layers", "block1_conv1,block5_pool,fc1", "--backend", "torch", "--out", out
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "small (torch), 1 image(s), weights: random weights (seed 0)"
    assert lines[1] == "preprocessing caffe: the spec's (no weights)"
    assert [(line.split()[0], line[line.index("(") : line.index(")") + 1]) for line in lines[3:6]] == [
        ("block1_conv1", "(1, 64, 64, 64)"),
        ("block5_pool", "(1, 2, 2, 512)"),
        ("fc1", "(1, 16)"),
    ]
    with np.load(out) as saved:
        assert {name: saved[name].shape for name in saved.files} == {
            "block1_conv1": (1, 64, 64, 64),
            "block5_pool": (1, 2, 2, 512),
            "fc1": (1, 16),
        }
    bad = cli("features", spec, image, "--layers", "conv4_2", "--out", tmp_path / "none.npz")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --layers: expected layer names of small (")
    assert not (tmp_path / "none.npz").exists()
    not_npz = cli("features", spec, image, "--layers", "fc1", "--out", tmp_path / "features.txt")
    assert not_npz.returncode == 2 and "expected a file name ending in .npz" in not_npz.stderr


@pytest.mark.slow
def test_full_vgg16_fc2_and_style_layers_agree_at_224(weights_of):
    spec = vggspec.load_spec("vgg16")
    plan = vggspec.plan(spec)
    weights = weights_of(spec)
    names = ["block1_conv1", "block4_conv2", "block5_conv3", "fc2"]
    images = preprocess(synthetic_images(1, 224, 224, seed=7), plan.preprocessing)
    from_keras = vggspec.build(spec, backend="keras", weights=weights, outputs=names, trainable=False)(images)
    extractor = vggspec.build(spec, backend="torch", weights=weights, outputs=names, trainable=False)
    with torch.no_grad():
        from_torch = extractor(torch.from_numpy(nchw(images).copy()))
    for name in names:
        assert relative(nchw(np.asarray(from_keras[name])), from_torch[name].numpy()) <= TOLERANCE, name


def test_a_notop_weight_file_serves_any_layer_up_to_the_last_pool(tmp_path):
    """As the README's example: the full spec with the notop file, asked for convolutional layers only."""
    spec = small_version("E")
    notop = vggspec.spec_from_mapping({**vggspec.spec_to_mapping(spec), "include_top": False})
    weights = tmp_path / "notop.h5"
    write_bundle(weights, random_bundle(vggspec.plan(notop), seed=8), vggspec.plan(notop))
    extractor = vggspec.build(spec, backend="torch", weights=weights, outputs=["block5_conv1", "block5_pool"])
    assert sum(p.numel() for p in extractor.parameters()) == 20_024_384  # FACTS: VGG19 without top
    with pytest.raises(vggspec.WeightsError, match="layer fc1: expected weights for this layer, received a file"):
        vggspec.build(spec, backend="torch", weights=weights, outputs=["fc1"])
