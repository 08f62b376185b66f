"""Known weights by name: torchvision's checkpoints (sha256 prefix in the file name) from a real HTTP server,
the Hub's (timm's layout) from a Hub-compatible endpoint on 127.0.0.1 read through huggingface_hub, and timm's
layout read as torchvision's. Every file is a small VGG made here; nothing is downloaded from the internet."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hub_server import HubServer
from hypothesis import given
from hypothesis import strategies as st
from safetensors.numpy import save_file

import vggspec
from vggspec.backends import get_backend
from vggspec.codegen.keras_source import known_weight_file
from vggspec.errors import DownloadError, WeightsError
from vggspec.weights import hub as hub_module
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.registry import HUB, REGISTRY, TORCHVISION, WeightFile, fetch_file, known_weights, weights_dir
from vggspec.weights.torchvision import bundle_to_torch

from cli_cases import one_line
from http_server import FileServer
from weight_fixtures import SMALL, plan_layers, small_plan, small_spec_file

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
COMMIT_MAIN, COMMIT_V1 = "a" * 40, "b" * 40


def torchvision_state(seed: int = 0) -> dict[str, np.ndarray]:
    """The small spec's random arrays (scaled by 0.1: softmax scores short of 0 and 1) as a torchvision state
    dict (features.N, classifier.0/3/6)."""
    plan = small_plan()
    layers = {
        name: {weight: 0.1 * array for weight, array in arrays.items()} for name, arrays in plan_layers(plan, seed)
    }
    return bundle_to_torch(plan, WeightBundle({name: arrays for name, arrays in layers.items() if arrays}))


def timm_state(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """torchvision's layout in timm's, as timm's VGG stores it: fc1 a convolution over the 8x8x8 map
    (out, C, H, W), fc2 a 1x1 convolution, the classifier under head.fc."""
    renamed = {key: value for key, value in state.items() if key.startswith("features.")}
    renamed["pre_logits.fc1.weight"] = state["classifier.0.weight"].reshape(16, 8, 8, 8)
    renamed["pre_logits.fc1.bias"] = state["classifier.0.bias"]
    renamed["pre_logits.fc2.weight"] = state["classifier.3.weight"].reshape(12, 16, 1, 1)
    renamed["pre_logits.fc2.bias"] = state["classifier.3.bias"]
    renamed["head.fc.weight"], renamed["head.fc.bias"] = state["classifier.6.weight"], state["classifier.6.bias"]
    return renamed


def save_torch(state: dict[str, np.ndarray], path: Path) -> Path:
    torch.save({key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in state.items()}, path)
    return path


def outputs(weights: Path, backend_name: str = "numpy") -> np.ndarray:
    """The small spec's logits (numpy backend) for 3 fixed random images, with ``weights`` loaded."""
    spec = vggspec.spec_from_mapping({**SMALL, "classifier_activation": None})
    backend = get_backend(backend_name)
    model = vggspec.build(spec, backend=backend_name, weights=weights)
    images = np.random.default_rng(3).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
    return np.asarray(backend.predict(model, images))


# --- timm's layout ------------------------------------------------------------------------------


def test_timm_fc1_convolution_is_torchvision_fc1_over_the_flattened_map():
    """The fact the mapping rests on: a convolution as large as the map, with the (out, in) weight reshaped to
    (out, C, H, W), is the linear layer over torch's C,H,W flatten (and a 1x1 one over 1x1 maps likewise)."""
    state = torchvision_state()
    timm = timm_state(state)
    feature_map = torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    linear = torch.nn.functional.linear(feature_map.flatten(1), torch.from_numpy(state["classifier.0.weight"]))
    conv = torch.nn.functional.conv2d(feature_map, torch.from_numpy(timm["pre_logits.fc1.weight"]))
    assert conv.shape == (2, 16, 1, 1)
    assert float((conv.flatten(1) - linear).abs().max()) < 1e-4  # values about 50: float32 sums in another order


def test_timm_layout_gives_the_outputs_of_torchvision_layout(tmp_path):
    state = torchvision_state()
    assert sorted(key for key in state if key.startswith("classifier")) == [
        f"classifier.{i}.{w}" for i in (0, 3, 6) for w in ("bias", "weight")
    ]
    reference = outputs(save_torch(state, tmp_path / "small-torchvision.pth"))
    timm = timm_state(state)
    save_file(timm, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    for path in (tmp_path / "model.safetensors", save_torch(timm, tmp_path / "small-timm.pth")):
        assert float(np.abs(outputs(path) - reference).max()) == 0.0, path.name
    # the torch backend on timm's file: the numpy backend's numbers, within float32's other summation order
    assert float(np.abs(outputs(tmp_path / "model.safetensors", "torch") - reference).max()) < 1e-3 * float(
        np.abs(reference).max()
    )
    assert reference.shape == (3, 10) and float(np.abs(reference - reference.mean(axis=0)).max()) > 1e-3


def test_timm_convolution_of_another_shape_is_refused_naming_the_key(tmp_path):
    timm = timm_state(torchvision_state())
    timm["pre_logits.fc1.weight"] = timm["pre_logits.fc1.weight"].reshape(16, 32, 4, 4)  # 512 inputs, not 8x8x8
    path = tmp_path / "model.safetensors"
    save_file(timm, str(path))
    with pytest.raises(WeightsError) as refused:
        vggspec.build(vggspec.spec_from_mapping(SMALL), backend="numpy", weights=path)
    assert str(refused.value) == (
        f"{path}: layer fc1: expected kernel of shape (512, 16), received (16, 32, 4, 4) "
        f"(key 'pre_logits.fc1.weight', timm's convolution (16, 32, 4, 4) of shape (16, 32, 4, 4), torch's (out, in))"
    )


# --- torchvision's files: sha256 prefix ---------------------------------------------------------


def torchvision_entry(file_name: str) -> WeightFile:
    return WeightFile(
        name="small_torchvision",
        file_name=file_name,
        url="http://127.0.0.1:9/never-asked",
        size=None,
        md5=None,
        spec="small",
        include_top=True,
        preprocessing="torch",
        sha256_prefix=file_name.removesuffix(".pth").rpartition("-")[2],
        origin=TORCHVISION,
    )


def test_torchvision_file_is_fetched_once_checked_by_its_sha256_prefix_and_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("VGGSPEC_HOME", str(tmp_path / "home"))
    served = tmp_path / "served"
    served.mkdir()
    made = save_torch(torchvision_state(), served / "small.pth")
    prefix = hashlib.sha256(made.read_bytes()).hexdigest()[:8]
    good, bad = torchvision_entry(f"small-{prefix}.pth"), torchvision_entry("small-0badf00d.pth")
    with FileServer(served) as server:
        with pytest.raises(DownloadError) as refused:
            fetch_file(bad, url=server.url("small.pth"), progress=False)
        assert list(weights_dir().iterdir()) == []  # neither the file nor its .part
        first = fetch_file(good, url=server.url("small.pth"), progress=False)
        second = fetch_file(good, url=server.url("small.pth"), progress=False)
    assert str(refused.value) == (
        f"small-0badf00d.pth: sha256 expected starting with 0badf00d, received "
        f"{hashlib.sha256(made.read_bytes()).hexdigest()} (downloaded from {server.url('small.pth')}; "
        "the file was removed)"
    )
    assert first == second == tmp_path / "home" / "weights" / f"small-{prefix}.pth"
    assert [request.status for request in server.requests] == [200, 200]  # the second fetch found the cache
    assert float(np.abs(outputs(first) - outputs(made)).max()) == 0.0


def test_cli_fetch_of_a_torchvision_name_refuses_a_file_of_another_hash(tmp_path, cli):
    served = tmp_path / "served"
    served.mkdir()
    save_torch(torchvision_state(), served / "other.pth")
    home = tmp_path / "home"
    with FileServer(served) as server:
        result = cli(
            "weights",
            "fetch",
            "vgg16_bn_torchvision",
            "--url",
            server.url("other.pth"),
            env={"VGGSPEC_HOME": str(home)},
        )
    assert one_line(result).startswith("error: vgg16_bn-6c64b313.pth: sha256 expected starting with 6c64b313, received")
    assert result.returncode == 2 and list((home / "weights").iterdir()) == []


def test_registry_names_torchvision_and_hub_files_that_fit_shipped_specs():
    torchvision = [entry for entry in REGISTRY if entry.origin == TORCHVISION]
    hub = [entry for entry in REGISTRY if entry.origin == HUB]
    specs = ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert [entry.name for entry in torchvision] == [f"{spec}_torchvision" for spec in specs]
    assert [entry.name for entry in hub] == [f"{spec}_timm" for spec in specs]
    for entry in torchvision + hub:
        assert vggspec.load_spec(entry.spec).name == entry.spec
        assert (entry.include_top, entry.preprocessing, entry.md5) == (True, "torch", None)
    assert REGISTRY["vgg16_torchvision"].url == "https://download.pytorch.org/models/vgg16-397923af.pth"
    assert [len(entry.sha256_prefix or "") for entry in torchvision] == [8] * 8
    assert all(entry.url.endswith(f"-{entry.sha256_prefix}.pth") for entry in torchvision)
    assert [(entry.hub_repo, entry.file_name) for entry in hub][2] == ("timm/vgg16.tv_in1k", "model.safetensors")
    assert known_weights("vgg16_bn_torchvision") is REGISTRY["vgg16_bn_torchvision"]
    assert known_weights("weights/vgg16.h5") is None and known_weights("vgg16.tv_in1k") is None
    # the Keras code generator names Keras files only: torchvision's vgg11 file is no Keras weight file
    assert known_weight_file(vggspec.plan("vgg11")) is None
    assert known_weight_file(vggspec.plan("vgg16")) == "vgg16_weights_tf_dim_ordering_tf_kernels.h5"


@given(
    repo=st.from_regex(
        r"[A-Za-z0-9]([A-Za-z0-9_]{0,10}[A-Za-z0-9])?/[A-Za-z0-9]([A-Za-z0-9._]{0,10}[A-Za-z0-9])?", fullmatch=True
    ),
    revision=st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)),
)
def test_hub_references_parse_to_repo_and_revision(repo, revision):
    text = f"hf-hub:{repo}" + (f"@{revision}" if revision else "")
    if ".." in text or "--" in text:
        return
    assert hub_module.parse_reference(text) == (repo, revision)


@pytest.mark.parametrize(
    "text", ["hf-hub:", "hf-hub:timm", "hf-hub:a/b/c", "hf-hub:a/b@", "hf-hub:a b/c", "hf-hub:-a/b"]
)
def test_malformed_hub_references_are_one_line(text):
    with pytest.raises(WeightsError, match=r"expected a Hub reference hf-hub:OWNER/REPO or hf-hub:OWNER/REPO@REVISION"):
        known_weights(text)


@pytest.mark.parametrize(
    "mean, std, mode",
    [
        (IMAGENET["mean"], IMAGENET["std"], "torch"),
        ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], "tf"),
        ([0.4850, 0.4580, 0.4076], [1 / 255] * 3, None),  # caffe's numbers, but RGB: not vggspec's caffe
        ([0.485, 0.456], [0.229, 0.224], None),
        ("imagenet", None, None),
    ],
)
def test_preprocessing_of_a_pretrained_cfg(mean, std, mode):
    if mode is not None:
        assert hub_module.preprocessing_of(mean, std, "cfg") == mode
        return
    with pytest.raises(WeightsError, match=r"^cfg: pretrained_cfg: expected mean and std of a preprocessing vggspec"):
        hub_module.preprocessing_of(mean, std, "cfg")


# --- the Hub ------------------------------------------------------------------------------------


def small_hub_repos(tmp_path: Path) -> tuple[dict, dict[str, bytes]]:
    """Repositories of a Hub: test/small-vgg at main and v1 (different weights), test/tf-vgg (tf preprocessing),
    test/odd-vgg (a mean/std vggspec has no mode for) and timm/vgg11.tv_in1k; and the files' bytes by name."""
    files: dict[str, bytes] = {}
    for name, seed in (("main", 0), ("v1", 1)):
        path = tmp_path / f"{name}.safetensors"
        save_file(timm_state(torchvision_state(seed)), str(path), metadata={"format": "pt"})
        files[name] = path.read_bytes()

    def config(mean: list, std: list) -> bytes:
        cfg = {"tag": "test", "mean": mean, "std": std, "num_classes": 10, "classifier": "head.fc"}
        return json.dumps({"architecture": "small", "num_classes": 10, "pretrained_cfg": cfg}).encode()

    imagenet = config(**IMAGENET)
    repos = {
        "test/small-vgg": {
            "main": (COMMIT_MAIN, {"model.safetensors": files["main"], "config.json": imagenet}),
            "v1": (COMMIT_V1, {"model.safetensors": files["v1"], "config.json": imagenet}),
        },
        "test/tf-vgg": {"main": ("c" * 40, {"config.json": config([0.5] * 3, [0.5] * 3)})},
        "test/odd-vgg": {"main": ("d" * 40, {"config.json": config([0.1] * 3, [0.2] * 3)})},
        "timm/vgg11.tv_in1k": {"main": ("e" * 40, {"model.safetensors": files["main"]})},
    }
    return repos, files


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """huggingface_hub's cache in a temporary folder (its constants are read when it is imported: set here)."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hub_reference_pins_the_revision_and_reads_timm_layout(tmp_path, hub_cache):
    repos, files = small_hub_repos(tmp_path)
    with HubServer(repos) as hub:
        at_v1 = known_weights("hf-hub:test/small-vgg@v1", endpoint=hub.endpoint)
        assert at_v1 is not None
        v1 = fetch_file(at_v1, url=hub.endpoint, progress=False)
        main = fetch_file(known_weights("hf-hub:test/small-vgg", endpoint=hub.endpoint), url=hub.endpoint)
        by_commit = fetch_file(known_weights(f"hf-hub:test/small-vgg@{COMMIT_V1}", endpoint=hub.endpoint))
        tf = known_weights("hf-hub:test/tf-vgg", endpoint=hub.endpoint)
        with pytest.raises(WeightsError) as odd:
            known_weights("hf-hub:test/odd-vgg", endpoint=hub.endpoint)
    assert (at_v1.spec, at_v1.num_classes, at_v1.preprocessing, at_v1.hub_revision) == ("", 10, "torch", "v1")
    assert tf is not None and tf.preprocessing == "tf"
    assert str(odd.value).startswith("hf-hub:test/odd-vgg: config.json: pretrained_cfg: expected mean and std")
    assert v1 == hub_cache / "models--test--small-vgg" / "snapshots" / COMMIT_V1 / "model.safetensors"
    assert by_commit == v1  # the commit's snapshot was cached: no request for it
    assert (v1.read_bytes(), main.read_bytes()) == (files["v1"], files["main"])
    assert main.parent.name == COMMIT_MAIN
    reference = outputs(save_torch(torchvision_state(1), tmp_path / "v1-torchvision.pth"))
    assert float(np.abs(outputs(v1) - reference).max()) == 0.0
    assert ("GET", "/test/small-vgg/resolve/v1/model.safetensors") in hub.requests


def test_hub_errors_are_one_line(tmp_path, hub_cache):
    repos, _ = small_hub_repos(tmp_path)
    with HubServer(repos) as hub:
        problems = {}
        for text in ("hf-hub:nobody/nothing", "hf-hub:test/small-vgg@v9", "hf-hub:test/tf-vgg"):
            with pytest.raises(DownloadError) as refused:
                fetch_file(
                    WeightFile(
                        name=text,
                        file_name="model.safetensors",
                        url="",
                        size=None,
                        md5=None,
                        spec="",
                        include_top=True,
                        origin=HUB,
                        hub_repo=text[7:].partition("@")[0],
                        hub_revision=text.partition("@")[2] or None,
                    ),
                    url=hub.endpoint,
                    progress=False,
                )
            problems[text] = str(refused.value)
    assert problems == {
        "hf-hub:nobody/nothing": (
            "hf-hub:nobody/nothing: expected a repository on the Hub (a private or gated one: with HF_TOKEN), "
            "received a name it does not know"
        ),
        "hf-hub:test/small-vgg@v9": "hf-hub:test/small-vgg@v9: expected a revision of the repository, received 'v9'",
        "hf-hub:test/tf-vgg": "hf-hub:test/tf-vgg: expected a file model.safetensors in the repository, received none",
    }


def test_cli_fetch_honours_hf_endpoint_hf_home_and_offline_mode(tmp_path, cli):
    """HF_ENDPOINT and HF_HOME are read when huggingface_hub is imported: set for a vggspec process."""
    repos, files = small_hub_repos(tmp_path)
    cache = tmp_path / "hf-home" / "hub"
    env = {"HF_HOME": str(tmp_path / "hf-home")}
    with HubServer(repos) as hub:
        env["HF_ENDPOINT"] = hub.endpoint
        registered = cli("weights", "fetch", "vgg11_timm", env=env)
        pinned = cli("weights", "fetch", f"hf-hub:test/small-vgg@{COMMIT_V1}", env=env)
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    cached = cli("weights", "fetch", "vgg11_timm", env=offline)  # the server is gone: the cache answers
    missing = cli("weights", "fetch", "vgg13_timm", env=offline)
    snapshot = cache / "models--timm--vgg11.tv_in1k" / "snapshots" / ("e" * 40) / "model.safetensors"
    assert (registered.returncode, Path(registered.stdout.strip())) == (0, snapshot), registered.stderr
    assert (cached.returncode, Path(cached.stdout.strip())) == (0, snapshot), cached.stderr
    assert snapshot.read_bytes() == files["main"]
    assert pinned.returncode == 0, pinned.stderr
    assert Path(pinned.stdout.strip()).read_bytes() == files["v1"]
    assert Path(pinned.stdout.strip()).parent.name == COMMIT_V1
    assert ("GET", "/timm/vgg11.tv_in1k/resolve/main/model.safetensors") in hub.requests
    assert ("GET", f"/test/small-vgg/resolve/{COMMIT_V1}/config.json") in hub.requests
    assert one_line(missing) == (
        f"error: hf-hub:timm/vgg13.tv_in1k: cannot reach the Hub at {hub.endpoint} (or HF_HUB_OFFLINE is set), "
        f"and model.safetensors is not in its cache {cache}"
    )


def test_timm_file_read_without_a_top_names_its_head_as_unused(tmp_path):
    from vggspec.building import read_checked_bundle

    path = tmp_path / "model.safetensors"
    save_file(timm_state(torchvision_state()), str(path))
    with pytest.warns(
        UserWarning, match=r"6 arrays in the file are not used \(no layer of small reads them\): head\.fc"
    ):
        bundle, skipped = read_checked_bundle(small_plan(include_top=False), path)
    assert (list(bundle.layers), skipped) == (["block1_conv1", "block1_conv2", "block2_conv1"], [])
    assert sorted(bundle.unused) == sorted(
        f"{module}.{weight}"
        for module in ("pre_logits.fc1", "pre_logits.fc2", "head.fc")
        for weight in ("weight", "bias")
    )


# --- known names where a command takes --weights --------------------------------------------------


def predicted(result) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_predict_with_a_hub_reference_equals_predict_with_the_same_arrays_in_torchvision_layout(tmp_path, cli):
    from PIL import Image

    repos, _ = small_hub_repos(tmp_path)
    spec = small_spec_file(tmp_path, preprocessing="torch")
    image = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image)
    torchvision_file = save_torch(torchvision_state(1), tmp_path / "v1-torchvision.pth")
    env = {"HF_HOME": str(tmp_path / "hf-home")}
    with HubServer(repos) as hub:
        env["HF_ENDPOINT"] = hub.endpoint
        common = ("predict", spec, image, "--backend", "numpy", "--top", "10", "--json")
        from_hub = cli(*common, "--weights", "hf-hub:test/small-vgg@v1", env=env)
    from_file = predicted(cli(*common, "--weights", torchvision_file, "--preprocessing", "torch"))
    from_hub_json = predicted(from_hub)
    assert "small: preprocessing torch: from the weights hf-hub:test/small-vgg@v1" in from_hub.stderr
    ((rows,),) = [list(from_hub_json.values())]
    ((reference,),) = [list(from_file.values())]
    hub_scores = np.array([row["score"] for row in sorted(rows, key=lambda row: row["index"])])
    file_scores = np.array([row["score"] for row in sorted(reference, key=lambda row: row["index"])])
    assert hub_scores.shape == (10,) and 0.01 < hub_scores.max() < 0.99
    assert float(np.abs(hub_scores - file_scores).max()) == 0.0


def test_predict_with_a_torchvision_name_fetches_from_the_mirror_and_refuses_a_wrong_hash(tmp_path, cli):
    served = tmp_path / "served"
    served.mkdir()
    save_torch(torchvision_state(), served / "vgg16_bn-6c64b313.pth")  # the name, not the bytes
    home = tmp_path / "home"
    image = tmp_path / "noise.png"
    image.write_bytes(b"never read: the weights are refused first")
    with FileServer(served) as server:
        env = {"VGGSPEC_HOME": str(home), "VGGSPEC_WEIGHTS_MIRROR": server.url("")}
        result = cli("predict", "vgg16_bn", image, "--weights", "vgg16_bn_torchvision", env=env)
    assert one_line(result).startswith(
        "error: vgg16_bn-6c64b313.pth: sha256 expected starting with 6c64b313, received "
    )
    assert f"(downloaded from {server.url('vgg16_bn-6c64b313.pth')}; the file was removed)" in one_line(result)
    assert result.returncode == 2 and list((home / "weights").iterdir()) == []
    assert [request.path for request in server.requests] == ["/vgg16_bn-6c64b313.pth"]
