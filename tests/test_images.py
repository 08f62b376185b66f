"""Images load as the user sees them: EXIF orientation applied, 16-bit and float pixels scaled to 0..255 (or
refused in one line), and nothing but a regular file opened (a FIFO named *.jpg would hang a command)."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from PIL import Image

from vggspec.errors import DataError
from vggspec.images import check_image_file, load_image, load_images

from conftest import SMALL_SPEC


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
