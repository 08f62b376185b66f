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

Images are channels last: one image HWC or a batch NHWC, RGB, float in
0..255 (any integer or float dtype is accepted). Results are new float32
arrays; the input is never modified.
"""

from __future__ import annotations

import numpy as np

from vggspec.errors import DataError
from vggspec.spec.model import PREPROCESSING_MODES

CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
TORCH_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
TORCH_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _checked(images: np.ndarray, mode: str, what: str) -> np.ndarray:
    """``images`` as float32 (a copy only where the dtype changes); checks the mode and the layout."""
    if mode not in PREPROCESSING_MODES:
        raise DataError(f"{what}: expected mode one of {', '.join(PREPROCESSING_MODES)}, received {mode!r}")
    array = np.asarray(images, dtype=np.float32)
    if array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise DataError(f"{what}: expected images of shape (height, width, 3) or (batch, height, width, 3), "
                        f"received shape {array.shape}")
    return array


def preprocess(images: np.ndarray, mode: str = "caffe") -> np.ndarray:
    """Scale RGB images in 0..255 the way weights trained with ``mode`` expect.

    ``images``: HWC or NHWC, RGB, values 0..255. Returns float32 of the same
    shape: BGR mean-subtracted for ``"caffe"``, RGB normalised for ``"torch"``
    and ``"tf"``. Same numbers as ``keras.applications.imagenet_utils.preprocess_input``.
    """
    x = _checked(images, mode, "preprocess")
    if mode == "caffe":
        return x[..., ::-1] - CAFFE_MEAN_BGR
    if mode == "torch":
        return (x / np.float32(255.0) - TORCH_MEAN_RGB) / TORCH_STD_RGB
    return x / np.float32(127.5) - np.float32(1.0)


def deprocess(images: np.ndarray, mode: str = "caffe") -> np.ndarray:
    """The inverse of :func:`preprocess`: back to RGB in 0..255 (float32, HWC or NHWC).

    Values are not clipped; for display use ``np.clip(x, 0, 255).astype(np.uint8)``.
    """
    x = _checked(images, mode, "deprocess")
    if mode == "caffe":
        return (x + CAFFE_MEAN_BGR)[..., ::-1].copy()
    if mode == "torch":
        return (x * TORCH_STD_RGB + TORCH_MEAN_RGB) * np.float32(255.0)
    return (x + np.float32(1.0)) * np.float32(127.5)
