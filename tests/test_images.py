"""Images load as the user sees them: EXIF orientation applied, 16-bit and float pixels scaled to 0..255 (or
refused in one line), and nothing but a regular file opened (a FIFO named *.jpg would hang a command)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vggspec
from vggspec.errors import DataError
from vggspec.images import check_image_file, load_image, load_images
from vggspec.parity.inputs import random_bundle
from vggspec.weights.formats import write_bundle

from cli_cases import BACKENDS, ONE_THREAD, one_line, tiny_spec
from conftest import SMALL_SPEC
from image_sets import make_image_set


def gradient16(height: int = 24, width: int = 40) -> np.ndarray:
    """A 16-bit grayscale ramp over the whole range: 0 ... 65535."""
    return np.linspace(0, 65535, height * width).round().astype(np.uint16).reshape(height, width)


def test_a_16_bit_grayscale_png_is_scaled_to_0_255(tmp_path):
    pixels = gradient16()
    path = tmp_path / "scan.png"
    Image.fromarray(pixels).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I")  # Pillow keeps the 16 bits (its own convert("L") clips at 255)
    expected = pixels.astype(np.float32) / 257.0
    for channels in (1, 3, 4):
        image = load_image(path, None, channels)
        assert image.shape == (24, 40, channels)
        for channel in range(min(channels, 3)):
            np.testing.assert_allclose(image[..., channel], expected, rtol=0, atol=1e-4)
        if channels == 4:
            assert (image[..., 3] == 255).all()
    assert np.mean(load_image(path, None, 1) >= 254.5) < 0.01  # was 99.6 % at 255
    assert load_image(path, (12, 20), 1).shape == (12, 20, 1)


def test_float_pixels_in_0_1_are_scaled_and_others_refused(tmp_path):
    values = np.linspace(0.0, 1.0, 24 * 40, dtype=np.float32).reshape(24, 40)
    path = tmp_path / "float.tif"
    Image.fromarray(values, mode="F").save(path)
    np.testing.assert_allclose(load_image(path, None, 3)[..., 1], values * 255, atol=1e-3)
    wide = tmp_path / "wide.tif"
    Image.fromarray(values * 3, mode="F").save(wide)
    message = r"wide.tif: expected an image of 8 or 16 bits or float pixels in 0..1, received 32-bit float pixels"
    with pytest.raises(DataError, match=message):
        load_image(wide)
    assert "from 0 to 3" in str(check_image_file(wide))


@pytest.mark.parametrize("orientation, turn", [(3, Image.Transpose.ROTATE_180), (6, Image.Transpose.ROTATE_270)])
def test_the_exif_orientation_is_applied(tmp_path, orientation, turn):
    """A photo stored sideways with its orientation tag: viewers show it turned, and so does load_image."""
    stored = np.random.default_rng(orientation).integers(0, 256, (20, 36, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"  # PNG: lossless, so the turned pixels can be compared exactly
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(path, exif=exif.tobytes())
    upright = np.asarray(Image.fromarray(stored).transpose(turn), dtype=np.float32)
    np.testing.assert_array_equal(load_image(path, None), upright)
    assert load_image(path, (10, 10)).shape == (10, 10, 3)


def _with_timeout(function, seconds: float = 10.0):
    """``function()``'s result, or the exception it raised; fails if it does not return within ``seconds``."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(_outcome(function)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"{function} hung"
    return result[0]


def _outcome(function):
    try:
        return function()
    except Exception as error:  # returned to the test, which checks it
        return error


def test_a_fifo_or_a_folder_named_as_an_image_is_refused_at_once(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    folder = tmp_path / "album.png"
    folder.mkdir()
    error = _with_timeout(lambda: load_image(fifo))
    assert isinstance(error, DataError)
    assert str(error) == f"{fifo}: expected an image file (a regular file), received a FIFO (named pipe)"
    assert str(_with_timeout(lambda: check_image_file(fifo))) == str(error)
    assert str(_with_timeout(lambda: load_images([folder]))).endswith("received a folder")


def test_the_commands_refuse_a_fifo_image_in_one_line(cli, tmp_path):
    fifo = tmp_path / "cat.jpg"
    os.mkfifo(fifo)
    spec = tmp_path / "small.yaml"
    spec.write_text(repr(SMALL_SPEC).replace("'", '"'))
    for args in (
        ("predict", spec, fifo, "--weights", tmp_path / "none.h5"),
        ("verify", spec, "--image", fifo, "--backends", "torch,onnx"),
        ("features", spec, fifo, "--layers", "block1_conv1", "--backend", "torch"),
    ):
        result = cli(*args, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().splitlines() == [
            f"error: {fifo}: expected an image file (a regular file), received a FIFO (named pipe)"
        ], args


def gray_image_set(root: Path, train_per_class: int, val_per_class: int) -> Path:
    """The shapes of tests/image_sets.py saved as real grayscale ("L") files, PNG and JPEG in turn."""
    make_image_set(root, size=32, train_per_class=train_per_class, val_per_class=val_per_class, seed=2)
    for index, path in enumerate(sorted(root.rglob("*.jpg"))):
        with Image.open(path) as image:
            gray = image.convert("L")
        path.unlink()
        gray.save(path.with_suffix(".png" if index % 2 else ".jpg"))
    return root


@pytest.fixture(scope="module")
def gray_set(module_tmp) -> Path:
    return gray_image_set(module_tmp.mktemp("gray"), train_per_class=8, val_per_class=2)


def test_gray_files_are_gray(gray_set):
    files = sorted(gray_set.rglob("*.*"))
    assert {p.suffix for p in files} == {".png", ".jpg"} and len(files) == 20
    for path in files:
        with Image.open(path) as image:
            assert image.mode == "L"


def test_predict_and_verify_on_a_one_channel_spec(cli, tmp_path, gray_set):
    spec = tiny_spec(tmp_path, channels=1)
    plan = vggspec.plan(str(spec))
    assert plan.input_shape == (32, 32, 1)
    weights = tmp_path / "gray.safetensors"
    write_bundle(weights, random_bundle(plan, seed=2))
    images = [gray_set / "val" / "circles" / "circles.0000.jpg", gray_set / "val" / "stripes" / "stripes.0001.png"]
    colour = tmp_path / "colour.jpg"  # a colour file is read as its luma
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(colour)
    scores = {}
    for backend in BACKENDS:
        result = cli(
            "predict", spec, *images, colour, "--weights", weights, "--backend", backend, "--json", env=ONE_THREAD
        )
        assert result.returncode == 0, result.stderr
        scores[backend] = json.loads(result.stdout)
    for path in map(str, [*images, colour]):
        keras_rows, torch_rows = scores["keras"][path], scores["torch"][path]
        assert [row["index"] for row in keras_rows] == [row["index"] for row in torch_rows]
        assert abs(keras_rows[0]["score"] - torch_rows[0]["score"]) < 1e-5
        assert sum(row["score"] for row in keras_rows) == pytest.approx(1.0, abs=1e-5)
    result = cli("verify", spec, "--weights", weights, "--image", *images, colour, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["images"] == 3 and report["input_shape"] == [32, 32, 1]


def test_predict_on_a_four_channel_spec_reads_rgba(cli, tmp_path):
    spec = tiny_spec(tmp_path, channels=4, preprocessing="torch")
    weights = tmp_path / "rgba.safetensors"
    write_bundle(weights, random_bundle(vggspec.plan(str(spec)), seed=4))
    image = tmp_path / "alpha.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (32, 32, 4), dtype=np.uint8), "RGBA").save(image)
    scores = []
    for backend in BACKENDS:
        result = cli("predict", spec, image, "--weights", weights, "--backend", backend, "--json", env=ONE_THREAD)
        assert result.returncode == 0, result.stderr
        scores.append([row["score"] for row in json.loads(result.stdout)[str(image)]])
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-5)


def test_a_channel_count_images_cannot_provide_is_one_line(cli, tmp_path, gray_set):
    spec = tiny_spec(tmp_path, channels=2)
    weights = tmp_path / "two.safetensors"
    write_bundle(weights, random_bundle(vggspec.plan(str(spec))))
    image = gray_set / "val" / "circles" / "circles.0000.jpg"
    expected = (
        f"error: {spec}: input_shape [32, 32, 2]: expected 1 (grayscale), 3 (RGB) or 4 (RGBA) channels, "
        "the counts image files can provide, received 2"
    )
    assert one_line(cli("predict", spec, image, "--weights", weights)) == expected
    assert one_line(cli("verify", spec, "--image", image)) == expected
    result = cli("finetune", spec, "--data", gray_set, "--backend", "torch", "--out", tmp_path / "run")
    assert one_line(result) == expected
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("backend", BACKENDS)
def test_finetune_and_evaluate_a_one_channel_spec(backend, cli, tmp_path, gray_set):
    spec = tiny_spec(tmp_path, channels=1, preprocessing="torch")
    run = tmp_path / "run"
    result = cli(
        "finetune",
        spec,
        "--data",
        gray_set,
        "--backend",
        backend,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--out",
        run,
        env=ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["spec"]["input_shape"] == [32, 32, 1] and record["epochs_done"] == 1
    assert record["train_images"] == 16 and record["val_images"] == 4
    evaluated = cli("evaluate", run, "--json", env=ONE_THREAD)
    assert evaluated.returncode == 0, evaluated.stderr
    scored = json.loads(evaluated.stdout)
    assert scored["images"] == 4 and scored["accuracy"] == pytest.approx(record["best"]["val_accuracy"])
