"""int8 and float16 through the onnx backend: ``build --precision``, its gate, and the files run as they are.

The networks are small (32x32 and 64x64 inputs, random weights of seed 0), the images vggspec's generated
shapes. The gate's refusal is shown with calibration images that are all one grey (128 in every pixel): the
activation ranges measured on them are those of one image, so that shapes images are clipped.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import vggspec
from vggspec.backends import get_backend
from vggspec.cli import main
from vggspec.errors import VggspecError
from vggspec.precision.agreement import agreement, check_minimum
from vggspec.precision.build import build_lower_precision
from vggspec.precision.folder import read_image_folder

from cli_cases import one_line
from image_sets import make_image_set

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

TEN_CLASSES = (
    "name: ten\nlayers: [conv3-4, maxpool, conv3-8, maxpool]\ninput_shape: [32, 32, 3]\nfc: [16]\nclasses: 10\n"
    "preprocessing: caffe\n"
)


@pytest.fixture(scope="module")
def shapes(module_tmp) -> Path:
    """Shapes at 64x64: 40 training and 20 validation images per class."""
    return make_image_set(module_tmp.mktemp("shapes"), size=64, train_per_class=40, val_per_class=20, seed=3)


@pytest.fixture(scope="module")
def grey(module_tmp) -> Path:
    """Ten images of one grey, 32x32: calibration images that represent nothing."""
    folder = module_tmp.mktemp("grey")
    for index in range(10):
        Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(folder / f"{index}.png")
    return folder


def ten_classes(folder: Path) -> Path:
    path = folder / "ten.yaml"
    path.write_text(TEN_CLASSES)
    return path


def test_int8_below_the_minimum_is_refused_in_one_line_and_nothing_is_written(cli, tmp_path, grey, shapes):
    spec, out = ten_classes(tmp_path), tmp_path / "ten-int8.onnx"
    arguments = ("build", spec, "--backend", "onnx", "--precision", "int8", "--out", out)
    refused = cli(*arguments, "--calibrate", grey, "--images", shapes / "val")
    line = one_line(refused)
    measured = float(re.search(r"received (\d\.\d+) \((\d+) of 40", line).group(1))
    assert line.startswith("error: --min-agreement: expected the int8 model to agree with float32 on at least 0.99")
    assert measured < 0.9 and line.endswith("nothing written")
    assert list(tmp_path.iterdir()) == [spec]
    # the same network calibrated on shapes agrees far more with float32 on the same images
    representative = build_lower_precision(
        vggspec.load_spec(str(spec)),
        get_backend("onnx"),
        "int8",
        out,
        calibrate=shapes / "train",
        images=shapes / "val",
        min_agreement=0.0,
        progress=False,
    )
    assert representative.checked.top1 >= measured + 0.2, (representative.checked, measured)


def test_int8_file_is_a_quarter_passes_the_checker_and_says_how_it_was_calibrated(tmp_path, shapes, capsys):
    assert main(["build", "small64", "--backend", "onnx", "--out", str(tmp_path / "f.onnx")]) == 0
    capsys.readouterr()
    out = tmp_path / "q.onnx"
    arguments = ["--precision", "int8", "--calibrate", str(shapes / "train"), "--min-agreement", "0"]
    assert main(["build", "small64", "--backend", "onnx", "--out", str(out), *arguments]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "small64: preprocessing tf: the spec's (no weights)"  # how the images were fed
    assert printed[1] == (
        f"{out}: small64 (onnx, int8, calibrated on 64 images of {shapes / 'train'}), {out.stat().st_size:,} bytes"
    )
    assert printed[2].startswith("int8 vs float32 on 16 images: top-1 agreement ")  # every fifth of 80
    assert out.stat().st_size <= 0.3 * (tmp_path / "f.onnx").stat().st_size
    onnx.checker.check_model(str(out), full_check=True)
    model = onnx.load(str(out))
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert metadata["vggspec.precision"] == "int8" and metadata["vggspec.calibration_images"] == "64"
    assert metadata["vggspec.calibration_method"].startswith("minmax (onnxruntime static quantization, QDQ")
    assert metadata["vggspec.calibration_folder"] == str(shapes / "train")
    int8 = {t.name: math.prod(t.dims) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    kernels = {name: size for name, size in int8.items() if name.endswith("/kernel_quantized")}
    assert len(kernels) == 6  # 4 convolutions and 2 dense layers, each kernel int8 (zero points too: per channel)
    assert sum(kernels.values()) == 322_850 - (16 + 32 + 64 + 64 + 64 + 2)  # every parameter but the biases


def test_quantized_and_float16_files_run_in_predict_features_and_verify(tmp_path, shapes, capsys):
    backend = get_backend("onnx")
    spec = vggspec.load_spec("small64")
    files = {"float32": tmp_path / "f.onnx", "int8": tmp_path / "q.onnx", "float16": tmp_path / "h.onnx"}
    backend.save(vggspec.build(spec, backend="onnx"), str(files["float32"]))
    for precision in ("int8", "float16"):
        build_lower_precision(
            spec, backend, precision, files[precision], calibrate=shapes / "train", min_agreement=0, progress=False
        )
    image = str(next((shapes / "val" / "circles").iterdir()))
    scores = {}
    for precision, path in files.items():  # no --backend: an .onnx file is the onnx backend's
        assert main(["predict", "small64", image, "--weights", str(path), "--json"]) == 0
        scores[precision] = np.array([row["score"] for row in json.loads(capsys.readouterr().out)[image]])
        layers = ["--layers", "block1_conv1,fc1_dropout", "--out", str(tmp_path / f"{precision}.npz")]
        assert main(["features", "small64", image, "--weights", str(path), *layers]) == 0
        capsys.readouterr()
    assert np.abs(scores["int8"] - scores["float32"]).max() < 0.02
    assert np.abs(scores["float16"] - scores["float32"]).max() < 1e-3
    arrays = {precision: np.load(tmp_path / f"{precision}.npz") for precision in files}
    assert arrays["int8"]["block1_conv1"].shape == (1, 64, 64, 16) and arrays["int8"]["block1_conv1"].min() == 0
    for precision in ("int8", "float16"):
        for layer, tolerance in (("block1_conv1", 0.05), ("fc1_dropout", 0.05)):
            assert np.abs(arrays[precision][layer] - arrays["float32"][layer]).max() < tolerance
    capsys.readouterr()
    status = main(["verify", "small64", "--quantized", str(files["int8"]), "--images", str(shapes / "val")])
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(
        r"int8 vs float32 on 40 images: top-1 agreement (\S+), max \|Δ\| \S+; accuracy float32 "
        r"0\.\d+, int8 0\.\d+",
        line,
    ), line
    assert status == (0 if float(line.split("agreement ")[1].split(",")[0]) >= 0.99 else 1)


def test_a_file_of_another_network_is_refused_naming_what_it_holds(tmp_path, capsys):
    spec = ten_classes(tmp_path)
    get_backend("onnx").save(vggspec.build("small64", backend="onnx"), str(tmp_path / "small64.onnx"))
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "x.png")
    assert main(["predict", str(spec), str(tmp_path / "x.png"), "--weights", str(tmp_path / "small64.onnx")]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'small64.onnx'}: expected the input input_layer [32, 32, 3] and the output predictions "
        "[10] of ten (each batch first), received the inputs [('input_layer', ['batch', 64, 64, 3])] and outputs "
        "[('predictions', ['batch', 2])]\n"
    )


def test_int8_needs_calibration_images_float32_none_and_the_torch_backend_writes_float32_only(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert main(["build", "small64", "--backend", "onnx", "--precision", "int8", "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: --calibrate: expected a folder of images to measure an int8")
    assert main(["build", "small64", "--backend", "torch", "--precision", "float16", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "error: --precision: expected float32 with backend 'torch', the only one it writes (the onnx backend "
        "writes int8 and float16), received float16\n"
    )
    assert main(["build", "small64", "--backend", "onnx", "--calibrate", str(tmp_path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "error: --calibrate: expected with --precision int8 or float16, received it with float32\n"
    )
    assert not out.exists()


def test_calibration_folders_flat_or_of_classes_hold_out_every_fifth_image(tmp_path, shapes):
    classes = read_image_folder(shapes / "train", "calibrate")
    assert classes.class_names == ("circles", "stripes") and len(classes) == 80
    calibrate, held_out = classes.split_held_out()
    assert (len(calibrate), len(held_out)) == (64, 16)
    assert np.bincount(held_out.labels).tolist() == [8, 8]
    assert set(calibrate.paths).isdisjoint(held_out.paths)
    flat = read_image_folder(shapes / "val" / "stripes", "images")
    assert flat.labels is None and len(flat) == 20
    with pytest.raises(VggspecError, match=r"^calibrate .*: expected image files \(\.jpg.*\) or class folders"):
        read_image_folder(tmp_path, "calibrate")


def test_agreement_counts_classes_and_accuracies():
    reference = np.eye(8)[[0, 1, 2, 3]] + 0.01
    scores = reference.copy()
    scores[3] = np.eye(8)[4] + np.eye(8)[3] * 0.5  # the last image's class is second
    found = agreement("int8", reference, scores, labels=np.array([0, 1, 2, 4]))
    assert (found.top1, found.top5, found.images) == (0.75, 1.0, 4)
    assert (found.reference_accuracy, found.accuracy) == (0.75, 1.0)
    assert found.max_abs_diff == pytest.approx(0.99)


@given(st.one_of(st.floats(), st.integers(-5, 5), st.booleans(), st.text(max_size=3)))
def test_min_agreement_is_a_share(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        assert check_minimum(value) == value
    else:
        with pytest.raises(VggspecError, match=r"^min_agreement: expected a number from 0 to 1, received "):
            check_minimum(value)


@pytest.mark.slow
def test_evaluate_scores_a_trained_run_in_int8_beside_its_float32_checkpoint(cli, tmp_path):
    """small64 trained on shapes (torch, 8 epochs), quantized from its best checkpoint, scored by evaluate."""
    data = make_image_set(tmp_path / "shapes", size=64, train_per_class=100, val_per_class=50, seed=5)
    run, out = tmp_path / "run", tmp_path / "int8.onnx"
    options = ["--backend", "torch", "--epochs", 8, "--batch-size", 16, "--augment", "none", "--out", run]
    trained = cli("finetune", "small64", "--data", data, *options, env={"OMP_NUM_THREADS": "1"})
    assert trained.returncode == 0, trained.stderr
    built = cli(
        "build",
        "small64",
        "--backend",
        "onnx",
        "--weights",
        run / "best.pt",
        "--precision",
        "int8",
        "--calibrate",
        data / "train",
        "--out",
        out,
    )
    assert built.returncode == 0, built.stderr
    scored = cli("evaluate", run, "--weights", out)
    assert scored.returncode == 0, scored.stderr
    lines = scored.stdout.splitlines()
    assert lines[0] == f"{out} on {data / 'val'}: 100 images"
    found = re.fullmatch(
        r"int8 vs float32 on 100 images: top-1 agreement (\S+), max \|Δ\| \S+; accuracy float32 (\S+), int8 (\S+)",
        lines[2],
    )
    assert found, scored.stdout
    agreement_found, float32, int8 = map(float, found.groups())
    assert float32 >= 0.85 and agreement_found >= 0.99 and round(abs(int8 - float32) * 100) <= 1, scored.stdout
    assert lines[1].startswith(f"accuracy {int8:.6f} ")


def test_verify_takes_a_folder_of_images_only_with_a_quantized_file(tmp_path, capsys):
    assert main(["verify", "small64", "--images", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: --images: expected a number of synthetic images (a folder goes with --quantized), "
        f"received {str(tmp_path)!r}\n"
    )
    assert main(["verify", "small64", "--quantized", str(tmp_path / "x.onnx"), "--images", "3"]) == 2
    assert capsys.readouterr().err == "error: --images: expected a folder of images to compare on, received a count\n"
