"""Preprocessing, ImageNet class names and image loading, held to Keras' own functions."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vggspec.errors import DataError, VggspecError
from vggspec.imagenet import class_index, decode_predictions
from vggspec.images import load_image, load_images
from vggspec.preprocessing import deprocess, preprocess
from vggspec.resources import data_file

KERAS_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"  # the file_hash keras' decode_predictions checks
MODES = ("caffe", "torch", "tf")


@pytest.fixture(scope="module")
def keras_imagenet_utils():
    pytest.importorskip("keras")
    from keras.applications import imagenet_utils

    return imagenet_utils


def random_images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


# --- preprocessing -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(2, 17, 13, 3), (17, 13, 3)], ids=["NHWC", "HWC"])
def test_preprocess_equals_keras(keras_imagenet_utils, mode, shape):
    from keras.applications import vgg16

    images = random_images(shape)
    before = images.copy()
    ours = preprocess(images, mode)
    if mode == "caffe":
        theirs = vgg16.preprocess_input(images.copy(), data_format="channels_last")
    else:
        theirs = keras_imagenet_utils.preprocess_input(images.copy(), data_format="channels_last", mode=mode)
    assert ours.dtype == np.float32 and ours.shape == shape
    assert np.abs(ours - theirs).max() <= 1e-4
    np.testing.assert_array_equal(images, before)  # input untouched


@pytest.mark.parametrize("mode", MODES)
def test_preprocess_uint8_and_deprocess_roundtrip(keras_imagenet_utils, mode):
    images = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    before = images.copy()
    ours = preprocess(images, mode)
    theirs = keras_imagenet_utils.preprocess_input(images.copy(), data_format="channels_last", mode=mode)
    assert ours.dtype == np.float32 and np.abs(ours - theirs).max() <= 1e-4
    np.testing.assert_array_equal(images, before)
    restored = deprocess(ours, mode)
    assert restored.dtype == np.float32 and np.abs(restored - images).max() <= 1e-3
    np.testing.assert_array_equal(preprocess(images, mode), ours)  # deprocess left its input alone too


def test_preprocess_caffe_numbers():
    pixel = np.array([[[10.0, 20.0, 30.0]]], dtype=np.float32)  # RGB
    np.testing.assert_allclose(preprocess(pixel, "caffe")[0, 0], [30 - 103.939, 20 - 116.779, 10 - 123.68], atol=1e-5)
    np.testing.assert_allclose(preprocess(np.full((1, 1, 3), 255.0), "tf")[0, 0], [1, 1, 1])


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 2), (2, 8, 8, 5), (1, 2, 8, 8, 3)])
def test_preprocess_rejects_bad_layout(shape):
    with pytest.raises(
        DataError,
        match=r"expected images of shape .* with 1 \(gray\), 3 \(RGB\) or 4 \(RGBA\) "
        r"channels, received shape",
    ):
        preprocess(np.zeros(shape, np.float32), "caffe")


def test_preprocess_gray_takes_the_mean_of_the_colour_statistics():
    gray = np.array([[[0.0], [100.0], [255.0]]], dtype=np.float32)  # HWC, 1 channel
    np.testing.assert_allclose(preprocess(gray, "caffe")[0, :, 0], [-114.799333, -14.799333, 140.200667], atol=1e-4)
    np.testing.assert_allclose(
        preprocess(gray, "torch")[0, :, 0], [(v / 255 - 0.449) / 0.226 for v in (0.0, 100.0, 255.0)], atol=1e-5
    )
    np.testing.assert_allclose(preprocess(gray, "tf")[0, :, 0], [-1.0, 100 / 127.5 - 1, 1.0], atol=1e-6)
    # a gray image gives the mean of what its RGB copy gives, channel by channel, in every mode
    for mode in MODES:
        as_rgb = preprocess(np.repeat(gray, 3, axis=-1), mode)
        np.testing.assert_allclose(preprocess(gray, mode)[..., 0], as_rgb.mean(axis=-1), atol=2e-3, err_msg=mode)


@pytest.mark.parametrize("mode", MODES)
def test_preprocess_rgba_is_rgb_plus_alpha_as_gray(mode):
    rgba = random_images((2, 5, 4, 4), seed=7)
    ours = preprocess(rgba, mode)
    assert ours.shape == (2, 5, 4, 4) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours[..., :3], preprocess(rgba[..., :3], mode))  # B, G, R for caffe
    np.testing.assert_array_equal(ours[..., 3:], preprocess(rgba[..., 3:], mode))
    opaque = preprocess(np.full((1, 1, 4), 255.0), mode)[0, 0, 3]
    assert opaque == pytest.approx({"caffe": 140.200667, "torch": (1 - 0.449) / 0.226, "tf": 1.0}[mode], abs=1e-4)
    for channels in (1, 4):
        images = random_images((2, 6, 6, channels), seed=channels)
        assert np.abs(deprocess(preprocess(images, mode), mode) - images).max() <= 1e-3


def test_preprocess_rejects_unknown_mode():
    with pytest.raises(DataError, match=r"expected mode one of caffe, torch, tf, received 'bgr'"):
        preprocess(np.zeros((4, 4, 3)), "bgr")
    with pytest.raises(DataError, match="expected mode"):
        deprocess(np.zeros((4, 4, 3)), "bgr")


# --- ImageNet class index ----------------------------------------------------------------------


def test_class_index_entries():
    classes = class_index()
    assert len(classes) == 1000
    assert len({wnid for wnid, _ in classes}) == 1000
    assert all(wnid.startswith("n") and len(wnid) == 9 for wnid, _ in classes)
    expected = {
        0: ("n01440764", "tench"),
        1: ("n01443537", "goldfish"),
        207: ("n02099601", "golden_retriever"),
        281: ("n02123045", "tabby"),
        285: ("n02124075", "Egyptian_cat"),
        999: ("n15075141", "toilet_tissue"),
    }
    for index, entry in expected.items():
        assert classes[index] == entry
    # Keras' file keeps WordNet's duplicate first lemmas: two "crane"s and two "maillot"s
    names = [name for _, name in classes]
    assert names[134] == names[517] == "crane" and names[638] == names[639] == "maillot"
    assert len(set(names)) == 998


def test_class_index_file_is_keras_file():
    """Same bytes as Keras' imagenet_class_index.json: its MD5 is the hash Keras verifies downloads with."""
    raw = data_file("imagenet_class_index.json").read_bytes()
    assert hashlib.md5(raw).hexdigest() == KERAS_CLASS_INDEX_MD5
    assert json.loads(raw)["0"] == ["n01440764", "tench"]


def test_decode_predictions_hand_made():
    preds = np.zeros((2, 1000), np.float32)
    preds[0, [285, 281, 999, 0, 207, 1]] = [0.4, 0.3, 0.15, 0.1, 0.04, 0.01]
    preds[1, 207] = 1.0
    first, second = decode_predictions(preds, top=3)
    assert [(w, n) for w, n, _ in first] == [
        ("n02124075", "Egyptian_cat"),
        ("n02123045", "tabby"),
        ("n15075141", "toilet_tissue"),
    ]
    np.testing.assert_allclose([s for *_, s in first], [0.4, 0.3, 0.15])
    assert second[0] == ("n02099601", "golden_retriever", 1.0)
    assert len(second) == 3
    assert len(decode_predictions(preds)[0]) == 5
    assert [n for _, n, _ in decode_predictions(preds, top=6)[0]] == [
        "Egyptian_cat",
        "tabby",
        "toilet_tissue",
        "tench",
        "golden_retriever",
        "goldfish",
    ]


KERAS_DECODE = """
import json, sys
import numpy as np
from keras.applications.imagenet_utils import decode_predictions
preds = np.load(sys.argv[1])
out = [[[w, n, float(s)] for w, n, s in row] for row in decode_predictions(preds, top=int(sys.argv[2]))]
print(json.dumps(out))
"""


def test_decode_predictions_equals_keras(keras_imagenet_utils, tmp_path):
    """Keras' decode_predictions finds our file in its cache (its MD5 check passes), so it downloads nothing."""
    keras_home = tmp_path / "keras_home"
    (keras_home / "models").mkdir(parents=True)
    shutil.copy(data_file("imagenet_class_index.json"), keras_home / "models" / "imagenet_class_index.json")
    logits = np.random.default_rng(2).normal(0, 3, (4, 1000))
    preds = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    np.save(tmp_path / "preds.npy", preds)
    env = {**os.environ, "KERAS_HOME": str(keras_home)}
    proc = subprocess.run(
        [sys.executable, "-c", KERAS_DECODE, str(tmp_path / "preds.npy"), "7"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    ours = [[[w, n, float(s)] for w, n, s in row] for row in decode_predictions(preds, top=7)]
    assert ours == theirs


@pytest.mark.parametrize("shape", [(1000,), (2, 999), (1, 2, 1000)])
def test_decode_predictions_rejects_bad_shape(shape):
    with pytest.raises(VggspecError, match=r"expected predictions of shape \(batch, 1000\), received shape"):
        decode_predictions(np.zeros(shape))


def test_decode_predictions_rejects_bad_top():
    with pytest.raises(DataError, match="expected top an integer 1..1000, received 0"):
        decode_predictions(np.zeros((1, 1000)), top=0)


# --- image loading -----------------------------------------------------------------------------


def keras_load(path, size):
    from keras.utils import img_to_array, load_img

    return img_to_array(load_img(path, target_size=size), data_format="channels_last")


@pytest.fixture
def jpeg_path(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels, "RGB").save(path, quality=90)
    return path


@pytest.fixture
def rgba_png_path(tmp_path):
    pixels = np.random.default_rng(4).integers(0, 256, (41, 29, 4), dtype=np.uint8)
    path = tmp_path / "alpha.png"
    Image.fromarray(pixels, "RGBA").save(path)
    return path


@pytest.mark.parametrize("size", [(224, 224), (20, 30), (37, 50)])
def test_load_image_equals_keras_jpeg(keras_imagenet_utils, jpeg_path, size):
    ours = load_image(jpeg_path, size)
    assert ours.dtype == np.float32 and ours.shape == (*size, 3)
    assert np.abs(ours - keras_load(jpeg_path, size)).max() == 0


@pytest.mark.parametrize("size", [(224, 224), (16, 64)])
def test_load_image_equals_keras_png_with_alpha(keras_imagenet_utils, rgba_png_path, size):
    ours = load_image(rgba_png_path, size)
    assert ours.shape == (*size, 3)
    assert np.abs(ours - keras_load(rgba_png_path, size)).max() == 0
    assert ours.min() >= 0 and ours.max() <= 255


def test_load_image_keeps_size_and_drops_alpha(rgba_png_path):
    pixels = np.asarray(Image.open(rgba_png_path))
    np.testing.assert_array_equal(load_image(rgba_png_path, size=None), pixels[..., :3].astype(np.float32))


def test_load_image_grayscale_becomes_three_channels(keras_imagenet_utils, tmp_path):
    gray = np.random.default_rng(5).integers(0, 256, (12, 9), dtype=np.uint8)
    path = tmp_path / "gray.png"
    Image.fromarray(gray, "L").save(path)
    image = load_image(path, size=None)
    assert image.shape == (12, 9, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], gray)
    assert np.abs(load_image(path, (30, 30)) - keras_load(path, (30, 30))).max() == 0


@pytest.mark.parametrize("file_mode, suffix", [("L", "png"), ("L", "jpg"), ("RGB", "jpg"), ("RGBA", "png")])
def test_load_image_with_the_channels_a_spec_asks_for(tmp_path, file_mode, suffix):
    """1 channel: Pillow's "L" (luma of colour files), 3: RGB, 4: RGBA, whatever the file holds (Keras'
    color_mode grayscale / rgb / rgba)."""
    shape = (12, 9, 4 if file_mode == "RGBA" else 3) if file_mode != "L" else (12, 9)
    pixels = np.random.default_rng(6).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / f"image.{suffix}"
    Image.fromarray(pixels, file_mode).save(path)
    with Image.open(path) as image:
        for channels, mode in ((1, "L"), (3, "RGB"), (4, "RGBA")):
            expected = np.asarray(image.convert(mode), dtype=np.float32).reshape(12, 9, channels)
            ours = load_image(path, size=None, channels=channels)
            assert ours.shape == (12, 9, channels) and ours.dtype == np.float32
            np.testing.assert_array_equal(ours, expected)
            assert load_image(path, (20, 30), channels).shape == (20, 30, channels)
    if file_mode == "L":
        np.testing.assert_array_equal(load_image(path, None, 1)[..., 0], np.asarray(Image.open(path)))
    if file_mode == "RGBA":
        assert (load_image(path, None, 4)[..., 3] == pixels[..., 3]).all()  # alpha kept
    with pytest.raises(
        DataError,
        match=r"expected 1 \(grayscale\), 3 \(RGB\) or 4 \(RGBA\) channels, the counts "
        r"image files can provide, received 2",
    ):
        load_image(path, None, channels=2)


def test_load_images_batch(jpeg_path, rgba_png_path):
    batch = load_images([jpeg_path, rgba_png_path], size=(32, 48))
    assert batch.shape == (2, 32, 48, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], load_image(rgba_png_path, (32, 48)))
    with pytest.raises(DataError, match=r"alpha.png: expected an image of shape \(37, 50, 3\).*received \(41, 29, 3\)"):
        load_images([jpeg_path, rgba_png_path], size=None)


def test_load_image_corrupt_file(tmp_path, jpeg_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image" * 10)
    with pytest.raises(DataError, match=r"garbage.jpg: expected an image file Pillow can read.*received"):
        load_image(garbage)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg_path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"truncated.jpg: expected an image file"):
        load_image(truncated)
    with pytest.raises(DataError, match=r"missing.png: expected an image file, received a path that does not exist"):
        load_images([jpeg_path, tmp_path / "missing.png"])


def test_load_image_rejects_bad_size(jpeg_path):
    with pytest.raises(DataError, match=r"expected size \(height, width\) of positive integers, received \(0, 5\)"):
        load_image(jpeg_path, (0, 5))


def test_modules_import_no_framework():
    code = (
        "import sys, vggspec.preprocessing, vggspec.imagenet, vggspec.images; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'torch', 'h5py') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
