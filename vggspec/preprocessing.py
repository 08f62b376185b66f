"""Image preprocessing for VGG weights, equal to Keras' ``preprocess_input`` (numpy only).

Each set of ImageNet weights was trained on inputs scaled one particular way;
the spec's ``preprocessing`` field names it:

- ``"caffe"``: RGB -> BGR, then subtract the ImageNet mean pixel
  ``[103.939, 116.779, 123.68]`` (BGR order), no scaling. The Keras VGG
  weights (converted from the authors' Caffe models) expect this.
- ``"torch"``: divide by 255, then subtract the ImageNet mean
  ``[0.485, 0.456, 0.406]`` and divide by the std ``[0.229, 0.224, 0.225]``
  (RGB order). torchvision's VGG weights expect this.
- ``"tf"``: scale to -1..1 (``x / 127.5 - 1``).

Images are channels last: one image HWC or a batch NHWC, float in 0..255 (any
integer or float dtype is accepted), with 3 channels (RGB), 1 (gray) or 4
(RGBA), as :mod:`vggspec.images` reads them. The ImageNet statistics are per
colour; a channel that is no colour (gray, alpha) takes the mean of the three:

- 1 channel (gray): ``"caffe"`` subtracts 114.799 (the mean of the three
  means); ``"torch"`` divides by 255, subtracts 0.449 and divides by 0.226
  (the means of the three means and of the three stds); ``"tf"`` as for RGB.
- 4 channels (RGBA): R, G, B exactly as RGB (``"caffe"`` gives B, G, R, A);
  alpha as a gray channel, so that it has the colours' scale in every mode
  (opaque 255 becomes 140.201 in ``"caffe"``, 2.438 in ``"torch"``, 1 in ``"tf"``).

Results are new float32 arrays; the input is never modified.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from vggspec.errors import DataError
from vggspec.spec.model import PREPROCESSING_MODES

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
TORCH_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# a gray or alpha channel: the mean of the three colours' statistics
CAFFE_MEAN_GRAY = np.float32(CAFFE_MEAN_BGR.mean())
TORCH_MEAN_GRAY = np.float32(TORCH_MEAN_RGB.mean())
TORCH_STD_GRAY = np.float32(TORCH_STD_RGB.mean())
CHANNELS = (1, 3, 4)  # gray, RGB, RGBA


def _checked(images: np.ndarray, mode: str, what: str) -> np.ndarray:
    """``images`` as float32 (a copy only where the dtype changes); checks the mode and the layout."""
    if mode not in PREPROCESSING_MODES:
        raise DataError(f"{what}: expected mode one of {', '.join(PREPROCESSING_MODES)}, received {mode!r}")
    array = np.asarray(images, dtype=np.float32)
    if array.ndim not in (3, 4) or array.shape[-1] not in CHANNELS:
        raise DataError(
            f"{what}: expected images of shape (height, width, channels) or (batch, height, width, "
            f"channels) with 1 (gray), 3 (RGB) or 4 (RGBA) channels, received shape {array.shape}"
        )
    return array


def _rgb(x: np.ndarray, mode: str) -> np.ndarray:
    if mode == "caffe":
        return x[..., ::-1] - CAFFE_MEAN_BGR
    if mode == "torch":
        return (x / np.float32(255.0) - TORCH_MEAN_RGB) / TORCH_STD_RGB
    return x / np.float32(127.5) - np.float32(1.0)


def _gray(x: np.ndarray, mode: str) -> np.ndarray:
    if mode == "caffe":
        return x - CAFFE_MEAN_GRAY
    if mode == "torch":
        return (x / np.float32(255.0) - TORCH_MEAN_GRAY) / TORCH_STD_GRAY
    return x / np.float32(127.5) - np.float32(1.0)


def _rgb_inverse(x: np.ndarray, mode: str) -> np.ndarray:
    if mode == "caffe":
        return (x + CAFFE_MEAN_BGR)[..., ::-1].copy()
    if mode == "torch":
        return (x * TORCH_STD_RGB + TORCH_MEAN_RGB) * np.float32(255.0)
    return (x + np.float32(1.0)) * np.float32(127.5)


def _gray_inverse(x: np.ndarray, mode: str) -> np.ndarray:
    if mode == "caffe":
        return x + CAFFE_MEAN_GRAY
    if mode == "torch":
        return (x * TORCH_STD_GRAY + TORCH_MEAN_GRAY) * np.float32(255.0)
    return (x + np.float32(1.0)) * np.float32(127.5)


PerMode = Callable[[np.ndarray, str], np.ndarray]  # (images, mode) -> images


def _per_channel(x: np.ndarray, mode: str, rgb: PerMode, gray: PerMode) -> np.ndarray:
    """``rgb`` on 3 channels, ``gray`` on 1, both on RGBA (colours, then alpha as gray)."""
    if x.shape[-1] == 3:
        return rgb(x, mode)
    if x.shape[-1] == 1:
        return gray(x, mode)
    return np.concatenate([rgb(x[..., :3], mode), gray(x[..., 3:], mode)], axis=-1)


def preprocess(images: np.ndarray, mode: str = "caffe") -> np.ndarray:
    """Scale images in 0..255 the way weights trained with ``mode`` expect.

    ``images``: HWC or NHWC, RGB (or gray, or RGBA: see the module), values
    0..255. Returns float32 of the same shape: BGR mean-subtracted for
    ``"caffe"``, RGB normalised for ``"torch"`` and ``"tf"``. On RGB, the same
    numbers as ``keras.applications.imagenet_utils.preprocess_input``.
    """
    return _per_channel(_checked(images, mode, "preprocess"), mode, _rgb, _gray)


def deprocess(images: np.ndarray, mode: str = "caffe") -> np.ndarray:
    """The inverse of :func:`preprocess`: back to 0..255 in the channel order read (float32, HWC or NHWC).

    Values are not clipped; for display use ``np.clip(x, 0, 255).astype(np.uint8)``.
    """
    return _per_channel(_checked(images, mode, "deprocess"), mode, _rgb_inverse, _gray_inverse)
