"""Generated source (``vggspec codegen``) held to the plan and to the backends, run in fresh processes.

Every case's files (Keras Sequential, Keras functional, torch) are written, then imported and built
by a runner in a process of its own (one per run of cases: the files must stand alone), which loads
weights the way a user would (``model.load_weights`` of a legacy ``.h5`` file; ``load_state_dict(...,
strict=True)`` of the torch backend's ``.pt``) and saves the outputs. The backends, given the same
arrays here, must give the same outputs (fp32, max|Δ| ≤ 1e-5 · max(1, max|output|)) and parameter counts.
Small variants of every shipped spec and edited specs run by default; the full-size shipped specs
are counted by default and run under ``-m slow``.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import vggspec
from vggspec.backends import get_backend
from vggspec.codegen import generate_source
from vggspec.commands.codegen import codegen_command
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.fit import fit_bundle
from vggspec.weights.formats import write_bundle

from conftest import REPO, run_in_own_session
from conftest import SHIPPED_SPECS as SHIPPED
from conftest import SMALL_SPEC as SMALL
from weight_fixtures import keras_vgg16, random_weights, write_keras1_h5

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

FORMS = [("keras", "sequential"), ("keras", "functional"), ("torch", None)]

# The edited specs of the backend tests (tests/backends/test_keras_backend.py and test_torch_backend.py), and more:
EDITED = {
    "small": SMALL,
    "small_lrn": {
        **SMALL,
        "layers": ["conv3-8", "LRN", "maxpool", "conv3-16", "maxpool"],
        "lrn": {"size": 3, "alpha": 1.0, "beta": 0.75, "k": 1.0},
    },
    "small_bn": {**SMALL, "batch_norm": True},
    "gelu_bn": {**SMALL, "batch_norm": True, "activation": "gelu"},
    **{f"small_{name}": {**SMALL, "activation": name} for name in ("relu6", "elu", "selu", "silu", "tanh", "sigmoid")},
    "notop_avg": {**SMALL, "include_top": False, "pooling": "avg"},
    "notop_max": {**SMALL, "include_top": False, "pooling": "max"},
    "notop_map": {**SMALL, "include_top": False, "pooling": None},
    "gray": {**SMALL, "input_shape": [32, 32, 1], "preprocessing": "torch"},
    "rgba_40x48": {**SMALL, "input_shape": [40, 48, 4], "preprocessing": "tf"},
    "logits": {**SMALL, "classifier_activation": None},
    "sigmoid_head": {**SMALL, "classes": 1, "classifier_activation": "sigmoid", "fc": []},
    "loops": {  # eight and six convolutions a block: written as loops
        **SMALL,
        "layers": ["conv3-8"] * 8 + ["maxpool"] + ["conv3-16"] * 6 + ["maxpool"],
        "batch_norm": True,
    },
}

RUNNER = r'''
"""Import each generated file, build its model, load weights as a user would, save the outputs and counts."""
import functools, importlib.util, json, math, sys
import numpy as np


@functools.cache
def seeded(mapping, seed):
    """(plan, random arrays by plan layer) as the test makes them (for full-size cases: no weight files)."""
    sys.path.insert(0, manifest["tests"])
    import vggspec
    from weight_fixtures import random_weights

    plan = vggspec.plan(vggspec.spec_from_mapping(json.loads(mapping)))
    return plan, random_weights(plan, seed)


manifest = json.load(open(sys.argv[1]))
results = {}
for index, case in enumerate(manifest["cases"]):
    found = importlib.util.spec_from_file_location(f"generated_{index}", case["file"])
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    result = {"modules": sorted(name for name in sys.modules if name.split(".")[0] in ("vggspec", "vggspec_keras"))}
    if case["framework"] == "keras":
        import keras

        model = module.build()
        result["params"] = [
            sum(math.prod(w.shape) for w in model.trainable_weights),
            sum(math.prod(w.shape) for w in model.non_trainable_weights),
        ]
        result["names"] = [layer.name for layer in model.layers]
        if "h5" in case:
            model.load_weights(case["h5"])  # by order, as Keras loads a legacy .h5 file
        if "seed" in case:  # by name
            plan, arrays = seeded(case["spec"], case["seed"])
            for layer in plan.weighted_layers():
                model.get_layer(layer.name).set_weights([arrays[layer.name][name] for name, _ in layer.weights])
        if "images" in case:
            np.save(case["out"], keras.ops.convert_to_numpy(model(np.load(case["images"]), training=False)))
        else:
            keras.backend.clear_session()  # a full-size model, counted only: free it now
        del model
    else:
        import torch

        if "images" in case:
            model = module.build()
        else:
            with torch.device("meta"):  # counts only: the real module tree, nothing allocated
                model = module.build()
        result["params"] = [
            sum(p.numel() for p in model.parameters()),
            sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked")),
        ]
        result["state"] = [[key, list(value.shape)] for key, value in model.state_dict().items()]
        if "pt" in case:
            model.load_state_dict(torch.load(case["pt"], weights_only=True), strict=True)
        if "seed" in case:
            from vggspec.weights.bundle import WeightBundle
            from vggspec.weights.torchvision import bundle_to_torch

            plan, arrays = seeded(case["spec"], case["seed"])
            state = bundle_to_torch(plan, WeightBundle(arrays))
            state = {key: torch.from_numpy(np.asarray(value)) for key, value in state.items()}
            model.load_state_dict(state, strict=True)
        if "images" in case:
            model.eval()
            with torch.no_grad():
                images = torch.from_numpy(np.load(case["images"]).transpose(0, 3, 1, 2).copy())
                np.save(case["out"], model(images).numpy())
        del model
    results[case["id"]] = result
json.dump(results, open(sys.argv[2], "w"))
'''


def spec_of(name: str) -> vggspec.Spec:
    return vggspec.spec_from_mapping({**EDITED[name], "name": name}) if name in EDITED else vggspec.load_spec(name)


def small_shipped(name: str) -> vggspec.Spec:
    """A shipped spec on a 32x32 input with FC 16-16 and 10 classes (the torch backend tests' variant)."""
    mapping = vggspec.spec_to_mapping(vggspec.load_spec(name))
    return vggspec.spec_from_mapping({**mapping, "input_shape": [32, 32, 3], "fc": [16, 16], "classes": 10})


def file_name(case: str, framework: str, style) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_]', '_', case)}_{framework}{'_' + style if style else ''}.py"


def run_cases(folder: Path, cases: list[dict]) -> dict:
    """The runner on ``cases`` in a fresh process; {case id: its result}."""
    (folder / "runner.py").write_text(RUNNER)
    (folder / "manifest.json").write_text(json.dumps({"cases": cases, "tests": str(REPO / "tests")}))
    done = run_in_own_session(
        [sys.executable, folder / "runner.py", folder / "manifest.json", folder / "results.json"], timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((folder / "results.json").read_text())


def images(plan: vggspec.Plan, count: int = 2, seed: int = 0) -> np.ndarray:
    scale = {"caffe": 50.0, "torch": 1.0, "tf": 0.5}[plan.preprocessing]
    return np.random.default_rng(seed).normal(0, scale, (count, *plan.input_shape)).astype(np.float32)


def checked_bundle(plan: vggspec.Plan, seed: int) -> WeightBundle:
    return fit_bundle(plan, WeightBundle(random_weights(plan, seed)))[0]


def backend_outputs(plan: vggspec.Plan, bundle: WeightBundle, x: np.ndarray, folder: Path, case: str) -> dict:
    """The backends' outputs for ``x`` with ``bundle``, and their weight files for the runner: a legacy .h5
    (Keras 2 layout) and the torch backend's own .pt (a torchvision-keyed state dict)."""
    keras_backend, torch_backend = get_backend("keras"), get_backend("torch")
    keras_model = keras_backend.build(plan)
    keras_backend.set_weights(keras_model, plan, bundle)
    torch_model = torch_backend.build(plan)
    torch_backend.set_weights(torch_model, plan, bundle)
    write_bundle(folder / f"{case}.h5", bundle, plan)
    torch_backend.save(torch_model, str(folder / f"{case}.pt"))
    torch_model.eval()
    with torch.no_grad():
        torch_out = torch_model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    outputs = {"keras": keras_backend.predict(keras_model, x), "torch": torch_out}
    outputs["state"] = [[key, list(value.shape)] for key, value in torch_model.state_dict().items()]
    return outputs


def write_files(folder: Path, case: str, plan: vggspec.Plan) -> dict:
    """The three files of ``plan``: {(framework, style): path}."""
    paths = {}
    for framework, style in FORMS:
        path = folder / file_name(case, framework, style)
        path.write_text(generate_source(plan, framework, style, codegen_command(case, framework, style, path.name)))
        paths[(framework, style)] = path
    return paths


def assert_close(received: np.ndarray, expected: np.ndarray, tolerance: float = 1e-5) -> None:
    assert received.shape == expected.shape, (received.shape, expected.shape)
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(received - expected).max() <= tolerance * scale, np.abs(received - expected).max()


# --- small networks, run (and full-size shipped ones, counted) in fresh processes -------------------

SMALL_CASES = [f"small_{name}" for name in SHIPPED] + list(EDITED)


def small_case_spec(case: str) -> vggspec.Spec:
    return small_shipped(case[len("small_") :]) if case[len("small_") :] in SHIPPED else spec_of(case)


@pytest.fixture(scope="module")
def generated(module_tmp):
    """Every case written, run by the runner and by the backends: {case: (plan, paths, expected, results)}."""
    folder = module_tmp.mktemp("codegen")
    cases, found = [], {}
    for seed, case in enumerate(SMALL_CASES):
        plan = vggspec.plan(small_case_spec(case))
        x = images(plan, seed=seed)
        np.save(folder / f"{case}_images.npy", x)
        expected = backend_outputs(plan, checked_bundle(plan, seed), x, folder, case)
        paths = write_files(folder, case, plan)
        for (framework, _), path in paths.items():
            weights = {"h5": str(folder / f"{case}.h5")} if framework == "keras" else {"pt": str(folder / f"{case}.pt")}
            images_file, out = str(folder / f"{case}_images.npy"), str(path.with_suffix(".npy"))
            cases.append(
                {
                    "id": path.name,
                    "file": str(path),
                    "framework": framework,
                    **weights,
                    "images": images_file,
                    "out": out,
                }
            )
        found[case] = (plan, paths, expected)
    for name in SHIPPED:  # full size, counted only (Keras' Sequential and torch on the meta device)
        plan = vggspec.plan(name)
        paths = write_files(folder, name, plan)
        found[name] = (plan, paths, None)
        for form in (("keras", "sequential"), ("torch", None)):
            cases.append({"id": paths[form].name, "file": str(paths[form]), "framework": form[0]})
    # the real Keras 1 layout of vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5, into a 32x32 notop VGG16
    notop = vggspec.plan(
        vggspec.spec_from_mapping(
            {**vggspec.spec_to_mapping(vggspec.load_spec("vgg16")), "include_top": False, "input_shape": [32, 32, 3]}
        )
    )
    h5 = write_keras1_h5(folder / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", keras_vgg16(False)[1])
    path = write_files(folder, "vgg16_notop_32", notop)[("keras", "sequential")]
    np.save(folder / "notop_images.npy", images(notop, count=2, seed=7))
    cases.append(
        {
            "id": "keras1_notop",
            "file": str(path),
            "framework": "keras",
            "h5": str(h5),
            "images": str(folder / "notop_images.npy"),
            "out": str(folder / "keras1_notop.npy"),
        }
    )
    keras.backend.clear_session()
    results = run_cases(folder, cases)
    return {"folder": folder, "cases": found, "results": results}


@pytest.mark.parametrize("case", SMALL_CASES)
def test_generated_small_networks_equal_the_backends(generated, case):
    plan, paths, expected = generated["cases"][case]
    for (framework, style), path in paths.items():
        result = generated["results"][path.name]
        assert result["modules"] == [], "the generated file imported vggspec"
        if framework == "keras":
            assert result["params"] == [plan.trainable_params, plan.non_trainable_params]
            names = [layer.name for layer in plan.layers]
            assert result["names"] == (names[1:] if style == "sequential" else names)
        else:
            assert result["params"] == [plan.trainable_params, plan.non_trainable_params]
            assert result["state"] == expected["state"]  # the torch backend's keys and shapes: torchvision's
        assert np.abs(expected[framework]).max() > 1e-3  # not a comparison of zeros
        assert_close(np.load(path.with_suffix(".npy")), expected[framework])


@pytest.mark.parametrize("name", SHIPPED)
def test_full_size_shipped_specs_count_as_the_plan(generated, name):
    plan, paths, _ = generated["cases"][name]
    keras_result = generated["results"][paths[("keras", "sequential")].name]
    torch_result = generated["results"][paths[("torch", None)].name]
    assert keras_result["params"] == [plan.trainable_params, plan.non_trainable_params]
    assert keras_result["names"] == [layer.name for layer in plan.layers[1:]]
    assert torch_result["params"] == [plan.trainable_params, plan.non_trainable_params]
    with torch.device("meta"):
        reference = get_backend("torch").build(plan)
    assert torch_result["state"] == [[key, list(value.shape)] for key, value in reference.state_dict().items()]


def test_keras_sequential_vgg16_loads_the_keras1_notop_file_by_order(generated):
    """keras.applications.VGG16's own loader and the generated model read the same file: same outputs."""
    folder = generated["folder"]
    theirs = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    theirs.load_weights(str(folder / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"))
    expected = theirs.predict_on_batch(np.load(folder / "notop_images.npy"))
    received = np.load(folder / "keras1_notop.npy")
    assert np.abs(expected).max() > 1e-3
    assert_close(received, expected)


# --- what the files look like ---------------------------------------------------------------------


def test_generated_files_pass_the_projects_ruff_rules(generated):
    """ruff check and ruff format --check with the project's settings (pyproject.toml), on every file;
    a 128-character spec name and long LRN constants included."""
    folder = generated["folder"]
    extreme = vggspec.spec_from_mapping(
        {
            "name": "v" * 128,
            "layers": ["conv3-8", "LRN", "maxpool"],
            "input_shape": [32, 32, 1],
            "lrn": {"size": 3, "alpha": 0.00012345678901234567, "beta": 0.7512345678901234, "k": 2.0123456789012346},
            "fc": [8],
            "classes": 3,
        }
    )
    write_files(folder, "extreme", vggspec.plan(extreme))
    files = sorted(str(path) for path in folder.glob("*.py") if path.name != "runner.py")
    assert len(files) > 3 * len(SMALL_CASES)
    for command in (["check"], ["format", "--check"]):
        done = run_in_own_session(
            [sys.executable, "-m", "ruff", *command, "--config", REPO / "pyproject.toml", *files], timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_generated_files_import_only_their_framework(generated):
    for _, paths, _ in generated["cases"].values():
        for (framework, _), path in paths.items():
            tree = ast.parse(path.read_text())
            imported = {
                alias.name.split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.Import)
                for alias in node.names
            }
            imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
            assert imported == {framework}, path.name


def test_the_papers_configurations_read_as_the_table(generated):
    """One line a layer, no loop, a comment a block; a loop only for a run of five or more convolutions."""
    plan, paths, _ = generated["cases"]["vgg16"]
    source = paths[("keras", "sequential")].read_text()
    assert source.count("    model.add(") == len(plan.layers)  # the Input and one a layer
    assert '    model.add(layers.Conv2D(64, (3, 3), activation="relu", padding="same", name="block1_conv1"))' in source
    assert '    model.add(layers.Dense(1000, activation="softmax", name="predictions"))' in source
    assert [line.strip() for line in source.splitlines() if line.strip().startswith("# ")] == [
        *(f"# Block {n}" for n in range(1, 6)),
        "# Classification block",
    ]
    for name in SHIPPED:
        for (framework, _), path in generated["cases"][name][1].items():
            assert ("for i in range" if framework == "keras" else "for _ in range") not in path.read_text()
    torch_source = paths[("torch", None)].read_text()
    assert "nn.Conv2d(3, 64, kernel_size=3, padding=1),  # block1_conv1" in torch_source
    assert "nn.Linear(512 * 7 * 7, 4096),  # fc1" in torch_source
    loops = generated["cases"]["loops"][1]
    assert (
        'for i in range(1, 9):\n        model.add(layers.Conv2D(8, (3, 3), padding="same", name=f"block1_conv{i}"))'
        in (loops[("keras", "sequential")].read_text())
    )
    assert "for _ in range(7):  # block1_conv2 ... block1_conv8" in loops[("torch", None)].read_text()


# --- the command ------------------------------------------------------------------------------------


def test_command_prints_or_writes_the_file(cli, tmp_path):
    result = cli("codegen", "vgg16", "--framework", "keras")
    plan = vggspec.plan("vgg16")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == generate_source(
        plan, "keras", None, "vggspec codegen vgg16 --framework keras --style sequential"
    )
    assert "    vggspec codegen vgg16 --framework keras --style sequential\n" in result.stdout
    out = tmp_path / "vgg16_bn_torch.py"
    result = cli("codegen", "vgg16_bn", "--framework", "torch", "--out", out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    assert result.stdout == f"{out}: vgg16_bn for torch, {text.count(chr(10))} lines, 138,374,440 parameters\n"
    assert text.startswith('"""vgg16_bn: torchvision\'s VGG as a PyTorch nn.Module')
    assert f"vggspec codegen vgg16_bn --framework torch --out {out}\n" in text
    assert [p.name for p in tmp_path.iterdir()] == ["vgg16_bn_torch.py"]


def test_command_refuses_bad_input_and_writes_nothing(cli, tmp_path):
    out = tmp_path / "model.py"
    bad = REPO / "tests" / "spec" / "bad_specs" / "token_typo.yaml"
    result = cli("codegen", bad, "--framework", "keras", "--out", out)
    assert result.returncode == 2 and result.stdout == ""
    assert "token_typo.yaml:5:5 $.layers[2]: expected a layer token in the paper's notation" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli("codegen", "vgg16", "--framework", "torch", "--style", "functional", "--out", out)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --style: expected no style for torch")
    result = cli("codegen", "vgg16", "--framework", "keras", "--out", tmp_path)
    assert result.returncode == 2 and result.stderr.startswith(f"error: --out {tmp_path}: expected a file to write")
    assert list(tmp_path.iterdir()) == []


def test_the_files_run_as_scripts(generated):
    """``python FILE.py``: a Keras file prints model.summary(), a torch file the module and its count."""
    plan, paths, _ = generated["cases"]["small_bn"]
    done = run_in_own_session([sys.executable, paths[("keras", "functional")]], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Total params: {plan.total_params:,}" in done.stdout
    done = run_in_own_session([sys.executable, paths[("torch", None)]], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.endswith(f"{plan.trainable_params:,} parameters\n")


def test_a_keras_model_vggspec_saved_with_lrn_loads_with_the_generated_file(generated, tmp_path):
    """The file's LRN class is the backend's (copied from vggspec_keras/lrn.py), registered under the same
    name: keras.models.load_model reads a .keras file of ``vggspec build`` once the file is imported."""
    plan, paths, expected = generated["cases"]["small_lrn"]
    backend = get_backend("keras")
    model = backend.build(plan)
    backend.set_weights(model, plan, checked_bundle(plan, 3))
    backend.save(model, str(tmp_path / "lrn.keras"))
    x = images(plan, seed=3)
    np.save(tmp_path / "x.npy", x)
    script = (
        f"import sys, numpy as np; sys.path.insert(0, {str(paths[('keras', 'sequential')].parent)!r}); "
        f"import {paths[('keras', 'sequential')].stem} as generated, keras; "
        f"model = keras.models.load_model({str(tmp_path / 'lrn.keras')!r}); "
        f"assert type(model.get_layer('block1_lrn')) is generated.LocalResponseNormalization; "
        f"np.save({str(tmp_path / 'out.npy')!r}, model.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)); "
        "print(sorted(m for m in sys.modules if m.startswith('vggspec')))"
    )
    done = run_in_own_session([sys.executable, "-c", script], timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"  # vggspec itself was not imported
    assert_close(np.load(tmp_path / "out.npy"), backend.predict(model, x))


# --- full size (slow) ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated_full(module_tmp):
    """Every shipped spec at full size with random weights (made from a seed in both processes: no weight
    files), the Keras 1 layout of vgg16_weights_tf_dim_ordering_tf_kernels.h5 into the Sequential VGG16, and
    the files of ``vggspec build vgg16|vgg16_bn --backend torch`` into the torch VGG16 and VGG16-BN."""
    folder = module_tmp.mktemp("codegen_full")
    cases, found = [], {}
    for seed, name in enumerate(SHIPPED):
        plan = vggspec.plan(name)
        x = images(plan, count=1, seed=seed)
        np.save(folder / f"{name}_images.npy", x)
        paths = write_files(folder, name, plan)
        spec = json.dumps(vggspec.spec_to_mapping(vggspec.load_spec(name)))
        for (framework, _), path in paths.items():
            out = str(path.with_suffix(".npy"))
            cases.append(
                {
                    "id": path.name,
                    "file": str(path),
                    "framework": framework,
                    "spec": spec,
                    "seed": seed,
                    "images": str(folder / f"{name}_images.npy"),
                    "out": out,
                }
            )
        found[name] = (plan, paths, seed)
    h5 = write_keras1_h5(folder / "vgg16_weights_tf_dim_ordering_tf_kernels.h5", keras_vgg16(True)[1])
    cases.append(
        {
            "id": "keras1_vgg16",
            "file": str(found["vgg16"][1][("keras", "sequential")]),
            "framework": "keras",
            "h5": str(h5),
            "images": str(folder / "vgg16_images.npy"),
            "out": str(folder / "keras1_vgg16.npy"),
        }
    )
    for name in ("vgg16", "vgg16_bn"):
        pt = folder / f"{name}_built.pt"
        done = run_in_own_session(
            [sys.executable, "-m", "vggspec", "build", name, "--backend", "torch", "--out", pt], 600
        )
        assert done.returncode == 0, done.stderr
        cases.append(
            {
                "id": f"built_{name}",
                "file": str(found[name][1][("torch", None)]),
                "framework": "torch",
                "pt": str(pt),
                "images": str(folder / f"{name}_images.npy"),
                "out": str(folder / f"built_{name}.npy"),
            }
        )
    results = run_cases(folder, cases)
    return {"folder": folder, "cases": found, "results": results}


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_generated_full_size_networks_equal_the_backends(generated_full, name):
    plan, paths, seed = generated_full["cases"][name]
    x = np.load(generated_full["folder"] / f"{name}_images.npy")
    bundle = checked_bundle(plan, seed)
    expected = backend_outputs(plan, bundle, x, generated_full["folder"], name)
    keras.backend.clear_session()  # the full-size models: 0.5 GB each
    for (framework, _), path in paths.items():
        result = generated_full["results"][path.name]
        assert result["params"] == [plan.trainable_params, plan.non_trainable_params]
        if framework == "torch":
            assert result["state"] == expected["state"]
        assert np.abs(expected[framework]).max() > 1e-3
        assert_close(np.load(path.with_suffix(".npy")), expected[framework])
    for suffix in (".h5", ".pt"):  # backend_outputs' files: 0.5 GB each
        (generated_full["folder"] / f"{name}{suffix}").unlink()


@pytest.mark.slow
def test_keras_sequential_vgg16_loads_the_keras1_file_as_keras_applications_does(generated_full):
    folder = generated_full["folder"]
    theirs = keras.applications.VGG16(weights=None)
    theirs.load_weights(str(folder / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"))
    expected = theirs.predict_on_batch(np.load(folder / "vgg16_images.npy"))
    assert_close(np.load(folder / "keras1_vgg16.npy"), expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vgg16", "vgg16_bn"])
def test_torch_files_load_vggspec_build_state_dicts_strictly(generated_full, name):
    folder = generated_full["folder"]
    model = get_backend("torch").build(vggspec.plan(name))
    model.load_state_dict(torch.load(folder / f"{name}_built.pt", weights_only=True), strict=True)
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(np.load(folder / f"{name}_images.npy").transpose(0, 3, 1, 2).copy())).numpy()
    assert_close(np.load(folder / f"built_{name}.npy"), expected)
