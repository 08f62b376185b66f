"""Weight file readers and writers, held to the files Keras and torch write and read themselves."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

import vggspec
from vggspec.errors import WeightsError
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.fit import fit_bundle
from vggspec.weights.formats import (
    KERAS1,
    KERAS2,
    KERAS3,
    KERAS_ARCHIVE,
    KERAS_MODEL,
    SAFETENSORS,
    TORCH,
    detect_format,
    read_bundle,
    write_bundle,
)

from weight_fixtures import (
    as_bundle_layers,
    assert_same_arrays,
    keras_vgg16,
    keras_vgg16_layers,
    load_with_keras,
    model_arrays,
    plan_layers,
    small_plan,
    small_spec_file,
    write_keras1_h5,
    write_keras2_h5,
)

VGG16_PARAMS = 138_357_544  # FACTS.md
VGG16_CONV_PARAMS = 14_714_688
VGG16_TORCH_CONVS = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def vgg16_plan(**changes):
    return vggspec.plan(vggspec.spec_from_mapping({"name": "vgg16", "configuration": "D", **changes}))


@pytest.fixture(scope="module")
def vgg16_h5(module_tmp):
    """VGG16 in the layout of vgg16_weights_tf_dim_ordering_tf_kernels.h5 (Keras 1)."""
    path = module_tmp.mktemp("keras1") / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    return write_keras1_h5(path, keras_vgg16_layers(include_top=True))


@pytest.mark.slow  # full size: the 553 MB file and Keras' VGG16
def test_keras1_fixture_has_the_real_layout_and_keras_loads_it(vgg16_h5):
    with h5py.File(vgg16_h5, "r") as file:
        assert set(file.attrs) == {"layer_names"}  # no backend, no keras_version: Keras 1
        names = [name.decode() for name in file.attrs["layer_names"]]
        assert names[:4] == ["input_1", "block1_conv1", "block1_conv2", "block1_pool"]
        assert names[-4:] == ["flatten", "fc1", "fc2", "predictions"] and len(names) == 23
        assert list(file["block1_conv1"].attrs["weight_names"]) == [b"block1_conv1_W_1:0", b"block1_conv1_b_1:0"]
        assert sorted(file["block1_conv1"]) == ["block1_conv1_W_1:0", "block1_conv1_b_1:0"]
        assert file["block1_conv1/block1_conv1_W_1:0"].shape == (3, 3, 3, 64)  # HWIO
        assert file["fc1/fc1_W_1:0"].shape == (25088, 4096)  # (in, out)
        assert len(file["flatten"].attrs["weight_names"]) == 0 and len(file["block5_pool"]) == 0
    expected = as_bundle_layers(keras_vgg16_layers(include_top=True))
    # Keras 3's own legacy loader accepts the fixture and gives back the very same arrays
    assert_same_arrays(expected, load_with_keras(keras_vgg16()[0], vgg16_h5))
    # and so does ours, under Keras' layer names and canonical weight names
    assert detect_format(vgg16_h5) == KERAS1
    bundle = read_bundle(vgg16_h5)
    assert_same_arrays(expected, bundle.layers)
    assert bundle.total_params == VGG16_PARAMS
    fitted, skipped = fit_bundle(vgg16_plan(), bundle)
    assert skipped == [] and fitted.total_params == VGG16_PARAMS


def test_notop_file_reads_for_a_notop_plan_and_keras_loads_it(tmp_path):
    path = write_keras1_h5(
        tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", keras_vgg16_layers(include_top=False)
    )
    expected = as_bundle_layers(keras_vgg16_layers(include_top=False))
    assert_same_arrays(expected, load_with_keras(keras_vgg16(include_top=False)[0], path))
    fitted, _ = fit_bundle(vgg16_plan(include_top=False), read_bundle(path))
    assert_same_arrays(expected, fitted.layers)
    assert fitted.total_params == VGG16_CONV_PARAMS
    with pytest.raises(WeightsError, match=r"notop\.h5: layer fc1: expected weights for this layer, received a file"):
        fit_bundle(vgg16_plan(), read_bundle(path))


@pytest.mark.slow  # full size: the 553 MB file, converted twice
def test_h5_to_pt_to_h5_is_bit_identical_and_pt_has_torchvision_keys(vgg16_h5, tmp_path):
    import torch

    plan = vgg16_plan()
    expected = as_bundle_layers(keras_vgg16_layers(include_top=True))
    write_bundle(tmp_path / "vgg16.pt", read_bundle(vgg16_h5), plan)
    state = torch.load(tmp_path / "vgg16.pt", weights_only=True)
    assert list(state) == [f"features.{i}.{w}" for i in VGG16_TORCH_CONVS for w in ("weight", "bias")] + [
        f"classifier.{i}.{w}" for i in (0, 3, 6) for w in ("weight", "bias")
    ]
    assert tuple(state["features.0.weight"].shape) == (64, 3, 3, 3)  # OIHW
    assert tuple(state["classifier.0.weight"].shape) == (4096, 25088)  # (out, in)
    # fc1: torch column c·49 + h·7 + w is Keras row (h·7 + w)·512 + c
    fc1 = expected["fc1"]["kernel"]
    for out, h, w, c in [(0, 0, 0, 0), (5, 0, 1, 0), (7, 6, 2, 300), (4095, 6, 6, 511)]:
        assert state["classifier.0.weight"][out, c * 49 + h * 7 + w].item() == fc1[(h * 7 + w) * 512 + c, out]

    from_pt = read_bundle(tmp_path / "vgg16.pt", plan)
    assert_same_arrays(expected, from_pt.layers)
    write_bundle(tmp_path / "vgg16.h5", from_pt, plan)
    assert detect_format(tmp_path / "vgg16.h5") == KERAS2
    assert_same_arrays(expected, read_bundle(tmp_path / "vgg16.h5").layers)


def test_h5_to_safetensors_to_keras3_is_bit_identical_and_keras_loads_it(vgg16_h5, tmp_path):
    from safetensors import safe_open

    plan = vgg16_plan()
    expected = as_bundle_layers(keras_vgg16_layers(include_top=True))
    write_bundle(tmp_path / "vgg16.safetensors", read_bundle(vgg16_h5), plan)
    with safe_open(tmp_path / "vgg16.safetensors", framework="np") as file:
        metadata = file.metadata()
        assert sorted(file.keys())[:2] == ["block1_conv1/bias", "block1_conv1/kernel"]
        assert len(file.keys()) == 32
    assert metadata["format"] == "np" and "HWIO" in metadata["layout"]
    assert metadata["source"] == "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    from_safetensors = read_bundle(tmp_path / "vgg16.safetensors", plan)
    assert detect_format(tmp_path / "vgg16.safetensors") == SAFETENSORS
    assert_same_arrays(expected, from_safetensors.layers)

    write_bundle(tmp_path / "vgg16.weights.h5", from_safetensors, plan)
    assert detect_format(tmp_path / "vgg16.weights.h5") == KERAS3
    assert_same_arrays(expected, read_bundle(tmp_path / "vgg16.weights.h5", plan).layers)
    # Keras 3's own .weights.h5 loader reads what we wrote into keras.applications.VGG16
    assert_same_arrays(expected, load_with_keras(keras_vgg16()[0], tmp_path / "vgg16.weights.h5"))


def test_files_keras_writes_read_back_and_keras_loads_ours(tmp_path):
    """A 32x32 notop VGG16: Keras' save_weights and model.save (.h5, model_weights/) files read with
    vggspec, and Keras' load_weights reads vggspec's Keras 1, Keras 2 and Keras 3 files."""
    import keras

    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    expected = as_bundle_layers(model_arrays(model))
    model.save_weights(str(tmp_path / "keras.weights.h5"))
    model.save(str(tmp_path / "model.h5"))
    plan = vgg16_plan(include_top=False, input_shape=[32, 32, 3])
    with h5py.File(tmp_path / "keras.weights.h5", "r") as file:
        assert file["layers/conv2d_12/vars"].attrs["name"] == "block5_conv3"
        assert file["layers/conv2d_12/vars/0"].shape == (3, 3, 512, 512)
    assert_same_arrays(expected, read_bundle(tmp_path / "keras.weights.h5", plan).layers)
    assert detect_format(tmp_path / "model.h5") == KERAS_MODEL
    assert_same_arrays(expected, read_bundle(tmp_path / "model.h5").layers)

    bundle = WeightBundle(expected)
    write_bundle(tmp_path / "keras1.h5", bundle, plan, keras_version=1)
    write_bundle(tmp_path / "keras2.h5", bundle, plan)
    write_bundle(tmp_path / "ours.weights.h5", bundle, plan)
    assert [detect_format(tmp_path / name) for name in ("keras1.h5", "keras2.h5", "ours.weights.h5")] == [
        KERAS1,
        KERAS2,
        KERAS3,
    ]
    with h5py.File(tmp_path / "keras1.h5", "r") as file:
        assert set(file.attrs) == {"layer_names"}
        assert list(file["block1_conv1"].attrs["weight_names"]) == [b"block1_conv1_W_1:0", b"block1_conv1_b_1:0"]
    for name in ("keras1.h5", "keras2.h5", "ours.weights.h5"):
        assert_same_arrays(expected, load_with_keras(model, tmp_path / name))


def test_keras2_layout_and_model_weights_variant_read(tmp_path):
    layers = plan_layers(small_plan())
    write_keras2_h5(tmp_path / "keras2.h5", layers)
    write_keras2_h5(tmp_path / "model.hdf5", layers, model_weights=True)
    with h5py.File(tmp_path / "keras2.h5", "r") as file:
        assert file["block1_conv1"].attrs["weight_names"][0] == b"block1_conv1/kernel:0"
        assert file["block1_conv1/block1_conv1/kernel:0"].shape == (3, 3, 3, 4)
    assert detect_format(tmp_path / "keras2.h5") == KERAS2
    assert detect_format(tmp_path / "model.hdf5") == KERAS_MODEL
    assert_same_arrays(as_bundle_layers(layers), read_bundle(tmp_path / "keras2.h5").layers)
    assert_same_arrays(as_bundle_layers(layers), read_bundle(tmp_path / "model.hdf5").layers)


def test_batch_norm_names_in_every_format(tmp_path):
    """Keras 1 gamma/beta/running_mean/running_std; Keras 3 vars 0..3; torch weight/bias/running_mean/var."""
    plan = small_plan(batch_norm=True)
    layers = plan_layers(plan)
    expected = as_bundle_layers(layers)
    write_keras1_h5(tmp_path / "keras1.h5", layers)
    with h5py.File(tmp_path / "keras1.h5", "r") as file:
        assert [n.decode() for n in file["block1_conv1_bn"].attrs["weight_names"]] == [
            "block1_conv1_bn_gamma_1:0",
            "block1_conv1_bn_beta_1:0",
            "block1_conv1_bn_running_mean_1:0",
            "block1_conv1_bn_running_std_1:0",
        ]
    bundle = read_bundle(tmp_path / "keras1.h5")
    assert_same_arrays(expected, bundle.layers)
    for name in ("bn.pt", "bn.weights.h5", "bn.safetensors", "bn.h5"):
        write_bundle(tmp_path / name, bundle, plan)
        assert_same_arrays(expected, read_bundle(tmp_path / name, plan).layers)
    with h5py.File(tmp_path / "bn.weights.h5", "r") as file:
        assert file["layers/batch_normalization_2/vars"].attrs["name"] == "block2_conv1_bn"
        np.testing.assert_array_equal(
            file["layers/batch_normalization_2/vars/3"][()], expected["block2_conv1_bn"]["moving_variance"]
        )
    import torch

    state = torch.load(tmp_path / "bn.pt", weights_only=True)
    np.testing.assert_array_equal(
        state["features.1.running_var"].numpy(), expected["block1_conv1_bn"]["moving_variance"]
    )
    assert state["features.1.num_batches_tracked"].item() == 0


def test_keras_backend_model_loads_our_keras3_file_with_batch_norm(tmp_path):
    spec = vggspec.spec_from_mapping(
        {
            "name": "small_bn",
            "layers": ["conv3-4", "maxpool", "conv3-8", "maxpool"],
            "input_shape": [32, 32, 3],
            "fc": [16],
            "classes": 3,
            "batch_norm": True,
        }
    )
    plan = vggspec.plan(spec)
    bundle = WeightBundle(as_bundle_layers(plan_layers(plan, seed=3)))
    write_bundle(tmp_path / "bn.weights.h5", bundle, plan)
    model = vggspec.build(spec, "keras")
    model.load_weights(str(tmp_path / "bn.weights.h5"))
    for layer in plan.weighted_layers():
        for array, (name, _) in zip(model.get_layer(layer.name).get_weights(), layer.weights):
            np.testing.assert_array_equal(array, bundle.layers[layer.name][name], err_msg=f"{layer.name}/{name}")


def test_torchvision_keyed_safetensors_read_with_the_plan(tmp_path):
    from safetensors.numpy import save_file

    from vggspec.weights.torchvision import bundle_to_torch

    plan = small_plan()
    expected = as_bundle_layers(plan_layers(plan))
    save_file(bundle_to_torch(plan, WeightBundle(expected)), tmp_path / "hub.safetensors")
    assert_same_arrays(expected, read_bundle(tmp_path / "hub.safetensors", plan).layers)
    with pytest.raises(WeightsError, match="expected a spec to map torchvision keys"):
        read_bundle(tmp_path / "hub.safetensors")


def test_non_finite_arrays_are_refused_when_written_and_nothing_is_left(tmp_path):
    plan = small_plan()
    layers = plan_layers(plan)
    layers[1][1]["kernel"][0, 0, 0, :2] = [np.nan, np.inf]
    expected = as_bundle_layers(layers)
    for name in ("n.h5", "n.weights.h5", "n.safetensors", "n.pt"):
        with pytest.raises(
            WeightsError, match=r"layer block1_conv1: kernel: expected finite values, received 1 NaN, 1"
        ):
            write_bundle(tmp_path / name, WeightBundle(expected), plan)
    assert list(tmp_path.iterdir()) == []


def test_reading_h5_and_writing_safetensors_imports_no_framework(tmp_path):
    write_keras1_h5(tmp_path / "small.h5", plan_layers(small_plan()))
    code = f"""
import sys
from weight_fixtures import small_plan
from vggspec.weights.formats import read_bundle, write_bundle
assert "h5py" not in sys.modules  # until a weight file is touched
plan = small_plan()
bundle = read_bundle({str(tmp_path / "small.h5")!r})
for name in ("out.safetensors", "out.weights.h5", "out.h5"):
    write_bundle({str(tmp_path)!r} + "/" + name, bundle, plan)
    read_bundle({str(tmp_path)!r} + "/" + name, plan)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "torch")))
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=str(__import__("pathlib").Path(__file__).parents[1]),  # tests/, where weight_fixtures is
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "name, kind",
    [
        ("w.h5", KERAS1),
        ("w.hdf5", KERAS1),
        ("w.weights.h5", KERAS3),
        ("W.SAFETENSORS", SAFETENSORS),
        ("w.pt", TORCH),
        ("w.pth", TORCH),
    ],
)
def test_detect_format_by_name_and_content(tmp_path, name, kind):
    plan = small_plan()
    if kind == KERAS1:
        write_keras1_h5(tmp_path / name, plan_layers(plan))
    else:
        write_bundle(tmp_path / name, WeightBundle(as_bundle_layers(plan_layers(plan))), plan)
    assert detect_format(tmp_path / name) == kind


def test_unknown_extension_lists_the_supported_ones(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"\0" * 16)
    for call in (
        lambda: detect_format(tmp_path / "w.bin"),
        lambda: read_bundle(tmp_path / "w.bin"),
        lambda: write_bundle(tmp_path / "w.onnx", WeightBundle()),
    ):
        with pytest.raises(WeightsError) as error:
            call()
        assert (
            ".h5 or .hdf5 (Keras 1/2), .weights.h5 (Keras 3), .keras (Keras 3 model, read only), .safetensors, "
            ".pt or .pth"
        ) in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.bin"]


def test_bad_files_give_one_line_errors(tmp_path):
    plan = small_plan()
    good = write_keras1_h5(tmp_path / "good.h5", plan_layers(plan))
    data = good.read_bytes()
    (tmp_path / "truncated.h5").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.h5").write_text("not weights\n")
    (tmp_path / "text.weights.h5").write_text("not weights\n")
    (tmp_path / "text.safetensors").write_text("not weights\n")
    (tmp_path / "text.pt").write_text("not weights\n")
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file.create_dataset("x", data=np.zeros(3))
    with h5py.File(tmp_path / "lost.h5", "w") as file:
        file.attrs["layer_names"] = np.asarray([b"block1_conv1"])
        file.create_group("block1_conv1").attrs["weight_names"] = np.asarray([b"block1_conv1_W_1:0"])
    cases = {
        "truncated.h5": f"expected a complete HDF5 file of {len(data):,} bytes, received {len(data) // 2:,} bytes",
        "text.h5": "expected an HDF5 file, received 12 bytes without the HDF5 signature",
        "text.weights.h5": "expected an HDF5 file",
        "text.safetensors": "expected a safetensors file",
        "text.pt": "expected a PyTorch state dict saved with torch.save",
        "other.h5": "expected Keras weights",
        "lost.h5": "layer block1_conv1: expected the dataset 'block1_conv1_W_1:0'",
        "missing.h5": "received a path that does not exist",
        "fifo.pt": "expected a weight file, received a FIFO (named pipe)",  # reading it would wait for a writer
        "folder.safetensors": "expected a weight file, received a folder",
    }
    os.mkfifo(tmp_path / "fifo.pt")
    (tmp_path / "folder.safetensors").mkdir()
    for name, message in cases.items():
        with pytest.raises(WeightsError) as error:
            read_bundle(tmp_path / name, plan)
        assert message in str(error.value) and "\n" not in str(error.value), (name, str(error.value))
        assert str(error.value).startswith(str(tmp_path / name))


def test_plan_is_required_for_keras3_and_torch_files(tmp_path):
    plan = small_plan()
    bundle = WeightBundle(as_bundle_layers(plan_layers(plan)))
    for name in ("w.weights.h5", "w.pt"):
        with pytest.raises(WeightsError, match="expected a spec"):
            write_bundle(tmp_path / name, bundle)
        write_bundle(tmp_path / name, bundle, plan)
        with pytest.raises(WeightsError, match="expected a spec"):
            read_bundle(tmp_path / name)


def test_keras3_file_of_another_network_names_the_missing_group(tmp_path):
    small = small_plan()
    write_bundle(tmp_path / "small.weights.h5", WeightBundle(as_bundle_layers(plan_layers(small))), small)
    bigger = small_plan(layers=["conv3-4", "conv3-4", "maxpool", "conv3-8", "conv3-8", "maxpool"])
    with pytest.raises(
        WeightsError,
        match=r"layer block2_conv2 \(layers/conv2d_3\): expected the group "
        r"layers/conv2d_3/vars, received a file with 3 conv2d group",
    ):
        read_bundle(tmp_path / "small.weights.h5", bigger)


def test_a_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    plan = small_plan()
    bundle = WeightBundle(as_bundle_layers(plan_layers(plan)))
    for name in ("w.h5", "w.weights.h5", "w.safetensors", "w.pt"):
        destination = tmp_path / name
        destination.write_bytes(b"previous")

        def failing(items):
            for number, item in enumerate(items):
                if number == 2:
                    raise RuntimeError("disk full")
                yield item

        with pytest.raises(RuntimeError, match="disk full"):
            write_bundle(destination, bundle, plan, progress=failing)
        wrong = WeightBundle(
            {**bundle.layers, "fc1": {"kernel": np.zeros((5, 16), np.float32), "bias": np.zeros(16, np.float32)}}
        )
        with pytest.raises(WeightsError, match=r"layer fc1: expected kernel of shape \(512, 16\), received \(5, 16\)"):
            write_bundle(destination, wrong, plan)
        assert destination.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.h5", "w.pt", "w.safetensors", "w.weights.h5"]


def _relative_difference(expected: np.ndarray, received: np.ndarray) -> float:
    return float(np.abs(expected - received).max() / max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize(
    "include_top",
    [pytest.param(True, marks=pytest.mark.slow), False],  # the whole VGG16 is slow; its convolutions are not
    ids=["full", "notop-avg-pooling"],
)
def test_keras1_file_in_the_torch_model_gives_the_outputs_of_keras_applications(tmp_path, include_top):
    """The famous file's layout, loaded by vggspec into torch, computes what keras.applications computes."""
    import keras

    from vggspec.backends import get_backend
    from vggspec.parity.inputs import synthetic_images
    from vggspec.preprocessing import preprocess

    model, layers = keras_vgg16(include_top=include_top)
    model.set_weights([array for _, arrays in layers for array in arrays.values()])  # the arrays it was built with
    name = "vgg16_weights_tf_dim_ordering_tf_kernels" + ("" if include_top else "_notop") + ".h5"
    path = write_keras1_h5(tmp_path / name, layers)
    images = preprocess(synthetic_images(2, 224, 224, seed=5), "caffe")

    changes = {} if include_top else {"include_top": False, "pooling": "avg"}
    spec = vggspec.spec_from_mapping({"name": "vgg16", "configuration": "D", **changes})
    torch_backend = get_backend("torch")
    torch_model = vggspec.build(spec, backend="torch", weights=path)
    received = torch_backend.activations(torch_model, vggspec.plan(spec), images)

    if include_top:  # fc2 before the head (a softmax of near-uniform logits would hide any error)
        fc2 = keras.Model(model.inputs, model.get_layer("fc2").output).predict_on_batch(images)
        assert _relative_difference(fc2, received["fc2"]) < 1e-4
        assert np.abs(model.predict_on_batch(images) - received["predictions"]).max() < 1e-6
    else:  # keras.applications' pooling="avg" is the mean of block5_pool over H and W
        pooled = np.asarray(model.predict_on_batch(images)).mean(axis=(1, 2))
        assert pooled.shape == (2, 512)
        assert _relative_difference(pooled, received["avg_pool"]) < 1e-4


SMALL_LRN = {
    "name": "small_lrn",
    "layers": ["conv3-4", "LRN", "maxpool", "conv3-8", "maxpool"],
    "input_shape": [32, 32, 3],
    "fc": [16],
    "classes": 5,
}
LOAD_KERAS_FILE = """
import sys
import numpy as np
import vggspec_keras
assert "keras" not in sys.modules  # importing the package leaves Keras out
import keras
try:
    keras.models.load_model(sys.argv[1])
    print("plain load_model: loaded")
except Exception as error:
    print("plain load_model:", type(error).__name__, "LocalResponseNormalization" in str(error))
import vggspec
loaded = vggspec_keras.load_model(sys.argv[1])
spec = vggspec.load_spec(sys.argv[2])
rebuilt = vggspec.build(spec, "keras", weights=sys.argv[1])  # vggspec's own reader of the archive
images = np.random.default_rng(0).normal(0, 50, (3, 32, 32, 3)).astype(np.float32)
print("layers:", [layer.__class__.__name__ for layer in loaded.layers][2])
print("max difference:", float(np.abs(loaded.predict_on_batch(images) - rebuilt.predict_on_batch(images)).max()))
print("outputs differ from zero:", float(np.abs(loaded.predict_on_batch(images)).max()) > 0)
"""


def test_keras_archive_with_lrn_says_how_to_load_and_its_weights_read_everywhere(tmp_path, cli):
    """`vggspec build` of an LRN spec writes a .keras that plain keras.models.load_model cannot read
    (so it prints a note); vggspec_keras.load_model reads it, and vggspec reads its weights as a weight file."""
    spec = small_spec_file(tmp_path, **SMALL_LRN)
    archive = tmp_path / "m.keras"
    done = cli("build", spec, "--backend", "keras", "--out", archive)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == (
        f"note: {archive} has a vggspec LocalResponseNormalization layer: load it with "
        "vggspec_keras.load_model(path), or import vggspec_keras.lrn before keras.models.load_model"
    )
    with zipfile.ZipFile(archive) as members:  # Keras' own archive layout
        assert sorted(members.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]

    plan = vggspec.plan(vggspec.spec_from_mapping(SMALL_LRN))
    assert detect_format(archive) == KERAS_ARCHIVE
    from_archive = read_bundle(archive, plan)
    assert from_archive.total_params == plan.total_params == 3 * 3 * 3 * 4 + 4 + 3 * 3 * 4 * 8 + 8 + 512 * 16 + 16 + 85
    done = cli("convert", archive, tmp_path / "m.safetensors", "--spec", spec)
    assert done.returncode == 0, done.stderr
    assert "(Keras 3 model archive (.keras)), 4 layers, " in done.stdout
    assert_same_arrays(from_archive.layers, read_bundle(tmp_path / "m.safetensors", plan).layers)

    done = subprocess.run(
        [sys.executable, "-c", LOAD_KERAS_FILE, str(archive), str(spec)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "plain load_model: TypeError True",
        "layers: LocalResponseNormalization",
        "max difference: 0.0",
        "outputs differ from zero: True",
    ]


@pytest.mark.slow
def test_configuration_a_lrn_keras_file_loads_with_vggspec_keras(tmp_path, cli):
    """The full A-LRN (224x224, 132,863,336 parameters) as `vggspec build A-LRN --backend keras` writes it."""
    archive = tmp_path / "a_lrn.keras"
    done = cli("build", "A-LRN", "--backend", "keras", "--out", archive)
    assert done.returncode == 0, done.stderr
    assert "132,863,336 parameters" in done.stdout and "note: " in done.stdout
    code = (
        "import sys, vggspec_keras; m = vggspec_keras.load_model(sys.argv[1]); "
        "print(m.count_params(), m.layers[2].__class__.__name__)"
    )
    loaded = subprocess.run([sys.executable, "-c", code, str(archive)], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["132863336", "LocalResponseNormalization"]
    assert read_bundle(archive, vggspec.plan("A-LRN")).total_params == 132_863_336
