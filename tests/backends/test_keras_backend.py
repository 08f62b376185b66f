"""The Keras 3 backend held to the plan, to keras.applications, and to itself under KERAS_BACKEND=torch.

Full-size models are only built (counts, names, shapes); forward passes use a
32x32 spec, except the comparison with keras.applications.VGG16/VGG19. What every
backend must do (weights in and out, LRN, every layer type against the NumPy reference,
save's refusals) is tests/backends/test_contract.py; here is what is Keras' own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import vggspec
from vggspec.backends import Backend, get_backend
from vggspec.errors import BackendError
from vggspec.planner.layers import BatchNormalization, Conv2D
from vggspec.spec.shipped import shipped_names
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.fit import fit_bundle

from conftest import REPO
from conftest import SHIPPED_SPECS as SHIPPED
from conftest import SMALL_SPEC as SMALL

keras = pytest.importorskip("keras")

VGG16_CONV_PARAMS = 14_714_688  # include_top=False (FACTS.md)

# The same with LRN after the first convolution; parameters that make the LRN sum matter.
SMALL_LRN = {
    **SMALL,
    "name": "small_lrn",
    "layers": ["conv3-8", "LRN", "maxpool", "conv3-16", "maxpool"],
    "lrn": {"size": 3, "alpha": 1.0, "beta": 0.75, "k": 1.0},
}
SMALL_BN = {**SMALL, "name": "small_bn", "batch_norm": True}


@pytest.fixture(scope="module")
def backend() -> Backend:
    return get_backend("keras")


def small_plan(mapping: dict, **changes) -> vggspec.Plan:
    return vggspec.plan(vggspec.spec_from_mapping({**mapping, **changes}))


def random_bundle(plan: vggspec.Plan, seed: int) -> WeightBundle:
    """Random arrays of the plan's shapes (variances positive), checked by fit_bundle."""
    rng = np.random.default_rng(seed)
    bundle = WeightBundle(source="random")
    for layer in plan.weighted_layers():
        bundle.layers[layer.name] = {
            name: (rng.uniform(0.5, 2.0, shape) if name == "moving_variance" else rng.normal(0, 0.3, shape))
            for name, shape in layer.weights
        }
    return fit_bundle(plan, bundle)[0]


def images(plan: vggspec.Plan, count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (count, *plan.input_shape)).astype(np.float32)


# --- training ---------------------------------------------------------------------------------------


ALLOCATOR_SCRIPT = """
import sys
from vggspec_keras import KerasBackend
if sys.argv[1] == "train":
    KerasBackend().seed(0)
import tensorflow as tf
try:
    tf.zeros((50_000_000,))  # 200 MB: over the 64 MB the test gives TensorFlow's pool, nothing for the system
    print("system")
except tf.errors.ResourceExhaustedError as error:
    print("pool" if "bfc_cpu_allocator" in str(error) else f"other: {error}")
"""


@pytest.mark.parametrize(
    "purpose, user_setting, expected",
    [("train", None, "pool"), ("build", None, "system"), ("train", "false", "system")],
)
def test_training_processes_take_cpu_memory_from_tensorflows_pool(purpose, user_setting, expected):
    env = {name: value for name, value in os.environ.items() if name != "TF_CPU_ALLOCATOR_USE_BFC"}
    env["TF_CPU_BFC_MEM_LIMIT_IN_MB"] = "64"
    if user_setting is not None:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = user_setting  # the user's word wins
    out = subprocess.run(
        [sys.executable, "-c", ALLOCATOR_SCRIPT, purpose], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == expected


def test_training_makes_each_optimizer_of_the_core_with_its_options():
    from vggspec.training.protocol import OPTIMIZERS, TrainConfig
    from vggspec_keras.training import OPTIMIZERS as KERAS_OPTIMIZERS
    from vggspec_keras.training import make_optimizer

    assert tuple(KERAS_OPTIMIZERS) == OPTIMIZERS
    sgd = make_optimizer(TrainConfig(optimizer="sgd", learning_rate=0.25, momentum=0.5))
    assert type(sgd) is keras.optimizers.SGD and (float(sgd.learning_rate), sgd.momentum) == (0.25, 0.5)
    adam = make_optimizer(TrainConfig(optimizer="adam", learning_rate=0.125))
    assert type(adam) is keras.optimizers.Adam and float(adam.learning_rate) == 0.125


# --- every shipped name against its plan -----------------------------------------------------------


def test_the_parametrised_names_are_the_shipped_ones():
    assert set(SHIPPED) <= set(shipped_names())


@pytest.mark.parametrize("name", SHIPPED)
def test_model_equals_plan(backend, name):
    plan = vggspec.plan(name)
    model = backend.build(plan)
    assert model.name == plan.name
    assert backend.count_params(model) == (plan.trainable_params, plan.non_trainable_params)
    assert [layer.name for layer in model.layers] == [layer.name for layer in plan.layers]
    for layer in plan.layers:
        keras_layer = model.get_layer(layer.name)
        assert type(keras_layer).__name__ == layer.type_name, layer.name
        assert tuple(keras_layer.output.shape) == (None, *layer.output_shape), layer.name
        assert [tuple(weight.shape) for weight in keras_layer.weights] == [shape for _, shape in layer.weights]
        if isinstance(layer, Conv2D):
            assert keras_layer.padding == "same"
            assert keras_layer.activation.__name__ == (layer.activation or "linear")
        if isinstance(layer, BatchNormalization):
            assert (keras_layer.epsilon, keras_layer.momentum) == (layer.epsilon, layer.momentum)
    keras.backend.clear_session()


@pytest.mark.parametrize(
    "pooling, last, last_type, shape",
    [
        (None, "block5_pool", "MaxPooling2D", (None, 7, 7, 512)),
        ("avg", "avg_pool", "GlobalAveragePooling2D", (None, 512)),
        ("max", "max_pool", "GlobalMaxPooling2D", (None, 512)),
    ],
)
def test_vgg16_without_top(backend, pooling, last, last_type, shape):
    spec = vggspec.spec_to_mapping(vggspec.load_spec("vgg16"))
    plan = vggspec.plan(vggspec.spec_from_mapping({**spec, "include_top": False, "pooling": pooling}))
    model = backend.build(plan)
    assert backend.count_params(model) == (VGG16_CONV_PARAMS, 0)
    assert model.layers[-1].name == last and type(model.layers[-1]).__name__ == last_type
    assert tuple(model.output.shape) == shape
    assert "flatten" not in [layer.name for layer in model.layers]


# --- keras.applications ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, application", [("vgg16", "VGG16"), pytest.param("vgg19", "VGG19", marks=pytest.mark.slow)]
)
def test_same_as_keras_applications(backend, name, application):
    plan = vggspec.plan(name)
    ours = backend.build(plan)
    theirs = getattr(keras.applications, application)(weights=None)
    ours_layers, their_layers = ours.layers[1:], theirs.layers[1:]  # the input layers may be numbered
    assert [layer.name for layer in ours_layers] == [layer.name for layer in their_layers]
    assert [type(layer) for layer in ours_layers] == [type(layer) for layer in their_layers]
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]

    ours.set_weights(theirs.get_weights())  # by order, as Keras loads a weight file without names
    image = np.random.default_rng(1).uniform(-120, 130, (1, 224, 224, 3)).astype(np.float32)  # caffe range
    expected = theirs.predict_on_batch(image)
    received = backend.predict(ours, image)
    assert received.shape == (1, 1000)
    np.testing.assert_array_equal(received, expected)
    # By order is also by name: the first conv and the last dense hold the application's arrays.
    for name in ("block1_conv1", "predictions"):
        for array, their_array in zip(ours.get_layer(name).get_weights(), theirs.get_layer(name).get_weights()):
            np.testing.assert_array_equal(array, their_array)
    keras.backend.clear_session()


def _write_keras1_h5(path, model) -> None:
    """A weight file in the layout of vgg16_weights_tf_dim_ordering_tf_kernels.h5 (Keras 1, FACTS.md)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}_{'W' if i == 0 else 'b'}_1:0".encode() for i in range(len(layer.weights))]
            group.attrs["weight_names"] = names
            for weight_name, array in zip(names, layer.get_weights()):
                group.create_dataset(weight_name.decode(), data=array)


@pytest.mark.parametrize("by_name", [True, False])
def test_keras_weight_files_load_by_name_and_by_order(backend, tmp_path, by_name):
    plan = small_plan(SMALL)
    source = backend.build(plan)
    backend.set_weights(source, plan, random_bundle(plan, seed=3))
    path = tmp_path / "small_weights.h5"
    _write_keras1_h5(path, source)
    model = backend.build(plan)
    if by_name:
        model.load_weights(str(path), by_name=True)
    else:
        model.load_weights(str(path))
    for ours, theirs in zip(model.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


# --- LRN -------------------------------------------------------------------------------------------


def test_lrn_is_serializable():
    from vggspec_keras.lrn import LocalResponseNormalization

    layer = LocalResponseNormalization(3, 0.5, 0.6, 1.5, name="block1_lrn")
    assert keras.saving.get_registered_name(LocalResponseNormalization) == "vggspec>LocalResponseNormalization"
    copy = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(copy) is LocalResponseNormalization
    assert (copy.size, copy.alpha, copy.beta, copy.k, copy.name) == (3, 0.5, 0.6, 1.5, "block1_lrn")


# --- forward passes on small specs ------------------------------------------------------------------


def test_more_images_than_one_keras_batch_give_the_numbers_of_one_at_a_time(backend):
    plan = small_plan(SMALL)
    model = backend.build(plan)
    backend.set_weights(model, plan, random_bundle(plan, seed=11))
    many = images(plan, 40, seed=2)  # predict_on_batch takes 32 at a time
    np.testing.assert_allclose(
        backend.predict(model, many)[37:], backend.predict(model, many[37:]), rtol=1e-6, atol=1e-7
    )


def test_predict_refuses_images_of_the_wrong_shape(backend):
    plan = small_plan(SMALL)
    model = backend.build(plan)
    with pytest.raises(BackendError, match=r"expected an array of shape \(N, 32, 32, 3\), received \(2, 64, 64, 3\)"):
        backend.predict(model, np.zeros((2, 64, 64, 3), np.float32))


# --- saving ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mapping", [SMALL, SMALL_LRN], ids=["small", "small_lrn"])
def test_save_writes_a_keras_file_that_loads_back(backend, tmp_path, mapping):
    plan = small_plan(mapping)
    model = backend.build(plan)
    backend.set_weights(model, plan, random_bundle(plan, seed=17))
    path = tmp_path / "model.keras"
    backend.save(model, str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]  # no temporary left
    loaded = keras.models.load_model(path)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in plan.layers]
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    batch = images(plan, 2)
    np.testing.assert_array_equal(backend.predict(loaded, batch), backend.predict(model, batch))


# --- KERAS_BACKEND=torch ---------------------------------------------------------------------------

TORCH_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras, torch
    import vggspec
    from vggspec.backends import get_backend
    from vggspec.weights.bundle import WeightBundle
    from vggspec_keras.lrn import LocalResponseNormalization

    work = sys.argv[1]
    result = {"keras_backend": keras.backend.backend(), "counts": {}}
    backend = get_backend("keras")
    small_bn, small_lrn = (vggspec.plan(vggspec.spec_from_mapping(json.loads(sys.argv[i]))) for i in (2, 3))
    for plan in (vggspec.plan("A-LRN"), small_bn, small_lrn):
        result["counts"][plan.name] = [list(backend.count_params(backend.build(plan))),
                                       [plan.trainable_params, plan.non_trainable_params]]
    # LRN against torch's own, under the torch backend.
    x = np.random.default_rng(0).normal(0, 3, (2, 5, 6, 16)).astype(np.float32)
    ours = keras.ops.convert_to_numpy(LocalResponseNormalization(5, 1.0, 0.75, 1.0)(x))
    reference = torch.nn.LocalResponseNorm(5, alpha=1.0, beta=0.75, k=1.0)(
        torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    result["lrn_max_difference"] = float(np.abs(ours - reference).max())
    # The small LRN spec with the weights the TensorFlow run made: outputs and activations.
    plan = small_lrn
    model = backend.build(plan)
    arrays = dict(np.load(work + "/weights.npz"))
    backend.set_weights(model, plan, WeightBundle.from_flat(arrays))
    images = np.load(work + "/images.npy")
    acts = backend.activations(model, plan, images)
    result["shapes_match"] = all(acts[layer.name].shape == (len(images), *layer.output_shape)
                                 for layer in plan.layers)
    np.save(work + "/torch_predictions.npy", backend.predict(model, images))
    np.save(work + "/torch_lrn.npy", acts["block1_lrn"])
    print(json.dumps(result))
""")


def test_works_under_keras_backend_torch(backend, tmp_path):
    plan = small_plan(SMALL_LRN)
    model = backend.build(plan)
    bundle = random_bundle(plan, seed=19)
    backend.set_weights(model, plan, bundle)
    batch = images(plan, 2)
    np.savez(tmp_path / "weights.npz", **bundle.flat())
    np.save(tmp_path / "images.npy", batch)
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    proc = subprocess.run(
        [sys.executable, "-c", TORCH_SCRIPT, str(tmp_path), json.dumps(SMALL_BN), json.dumps(SMALL_LRN)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["keras_backend"] == "torch"
    assert sorted(result["counts"]) == ["small_bn", "small_lrn", "vgg_a_lrn"]
    for name, (counted, planned) in result["counts"].items():
        assert counted == planned, name
    assert result["counts"]["small_bn"][0][1] == 2 * (8 + 16)  # moving mean and variance
    assert result["lrn_max_difference"] < 1e-5
    assert result["shapes_match"]
    acts = backend.activations(model, plan, batch)
    np.testing.assert_allclose(np.load(tmp_path / "torch_lrn.npy"), acts["block1_lrn"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.load(tmp_path / "torch_predictions.npy"), backend.predict(model, batch), rtol=1e-4, atol=1e-6
    )
