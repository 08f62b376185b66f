"""Read image files into arrays, the way ``keras.utils.load_img`` + ``img_to_array`` do.

An image becomes float32 HWC, values 0..255, with the channels a spec's
``input_shape`` asks for, as Keras' ``color_mode`` gives them:

- 3 channels (the default): RGB. Any Pillow mode is converted to RGB
  (grayscale is repeated into three channels, alpha is dropped, not composited).
- 1 channel: grayscale, Pillow's mode ``"L"`` (colour images become the
  ITU-R 601-2 luma ``L = 0.299 R + 0.587 G + 0.114 B``, alpha dropped).
- 4 channels: RGBA (an image without alpha gets alpha 255, opaque).

Files cannot provide any other channel count. The image is then resized with
nearest-neighbour sampling (Keras' default ``interpolation="nearest"``) when
its size differs from the target. Feed the result to
:func:`vggspec.preprocessing.preprocess`.

What the user sees is what the network gets, beyond what ``load_img`` does:

- the EXIF orientation is applied (a phone photo stored sideways is turned upright,
  as every viewer shows it);
- 16-bit grayscale (PNG, TIFF) is scaled to 0..255 (value / 257: 65535 is 255), where
  Pillow's own conversion would clip everything above 255;
- 32-bit float pixels (TIFF) in 0..1 are scaled to 0..255; other float ranges are
  refused in one line, as is anything that is not a regular file (a FIFO would hang).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageOps

from vggspec.errors import DataError
from vggspec.regular_files import NotRegularFile, not_regular, open_regular

PathLike = Union[str, Path]
DEFAULT_SIZE = (224, 224)
MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> the Pillow mode an image is converted to
WIDE_GRAY = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # Pillow's modes of 16-bit (and 32-bit integer) grayscale
SIXTEEN_BITS = 257.0  # 65535 / 255: a 16-bit value over this is its 8-bit value
# what Pillow raises for a file it cannot read or decode (DecompressionBombError is a subclass of none of them)
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def image_mode(channels: int, where: str = "load_image") -> str:
    """The Pillow mode that gives ``channels`` channels; DataError for a count images cannot provide."""
    if channels not in MODES:
        raise DataError(
            f"{where}: expected 1 (grayscale), 3 (RGB) or 4 (RGBA) channels, the counts image "
            f"files can provide, received {channels}"
        )
    return MODES[channels]


def _checked_size(size: Optional[Sequence[int]]) -> Optional[tuple[int, int]]:
    if size is None:
        return None
    if len(size) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in size):
        raise DataError(f"load_image: expected size (height, width) of positive integers, received {size!r}")
    return int(size[0]), int(size[1])


def unreadable(path: PathLike, error: BaseException) -> DataError:
    """The error of an image file Pillow cannot open or decode, naming the file."""
    if isinstance(error, FileNotFoundError):
        return DataError(f"{path}: expected an image file, received a path that does not exist")
    if isinstance(error, NotRegularFile):
        return DataError(f"{path}: expected an image file (a regular file), received {error.strerror}")
    if isinstance(error, UnsupportedPixels):
        return DataError(f"{path}: expected an image of 8 or 16 bits or float pixels in 0..1, received {error}")
    reason = re.sub(r" ?<_io\.[A-Za-z]+ name=\d+>", "", str(error))  # Pillow names the open handle, not the file
    return DataError(
        f"{path}: expected an image file Pillow can read (JPEG, PNG, ...), received an unreadable file ({reason})"
    )


class UnsupportedPixels(ValueError):
    """Pixels that have no 0..255 meaning (float values outside 0..1)."""


def _gray_values(image: Image.Image) -> Optional[Image.Image]:
    """A 16-bit or float grayscale image as a float ``F`` image of 0..255 values; None for any other mode (which
    Pillow converts as it is). UnsupportedPixels for float values outside 0..1."""
    if image.mode in WIDE_GRAY:
        return Image.fromarray(np.asarray(image, dtype=np.float32) / np.float32(SIXTEEN_BITS), mode="F")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float32)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if not (np.isfinite(values).all() and low >= 0.0 and high <= 1.0):
            raise UnsupportedPixels(f"32-bit float pixels from {low:g} to {high:g}")
        return Image.fromarray(values * np.float32(255.0), mode="F")
    return None


def _pixels(image: Image.Image, mode: str, target: Optional[tuple[int, int]]) -> np.ndarray:
    """An opened image as float32 (H, W, C) of 0..255 in ``mode``'s channels: upright (EXIF), resized."""
    image = ImageOps.exif_transpose(image)
    gray = _gray_values(image)
    if gray is None and image.mode != mode:
        image = image.convert(mode)
    picture = image if gray is None else gray
    if target is not None and picture.size != (target[1], target[0]):
        picture = picture.resize((target[1], target[0]), Image.Resampling.NEAREST)
    array = np.asarray(picture, dtype=np.float32)
    if gray is not None:  # one gray channel, as Pillow gives L, RGB and RGBA from L
        layers = {"L": [array], "RGB": [array] * 3, "RGBA": [array] * 3 + [np.full_like(array, 255.0)]}[mode]
        array = np.stack(layers, axis=-1)
    return array[..., None] if array.ndim == 2 else array


def load_image(path: PathLike, size: Optional[Sequence[int]] = DEFAULT_SIZE, channels: int = 3) -> np.ndarray:
    """One image file as float32 (height, width, channels), 0..255: grayscale, RGB or RGBA.

    ``size`` is (height, width), as Keras' ``target_size``; ``None`` keeps the
    file's own size (after its EXIF orientation). ``channels`` is 1, 3 or 4 (see the
    module). A missing, unreadable or corrupt file raises :class:`DataError` naming the file.
    """
    target = _checked_size(size)
    mode = image_mode(channels)
    try:
        with open_regular(path) as handle, Image.open(handle) as image:
            return _pixels(image, mode, target)
    except (*UNREADABLE, UnsupportedPixels) as error:
        raise unreadable(path, error) from None


def check_image_file(path: PathLike, channels: int = 3) -> Optional[DataError]:
    """None when ``path`` loads as :func:`load_image` loads it (a full decode: a truncated JPEG has a good
    header and fails half-way through its pixels), else the error it would raise."""
    try:
        load_image(path, None, channels)
    except DataError as error:
        return error
    return None


def check_image_paths(paths: Sequence[PathLike]) -> None:
    """DataError for the first path that is no regular file (missing, a folder, a FIFO): checked before
    anything costly (building a model), while the files themselves are read later, a batch at a time."""
    for path in paths:
        what = not_regular(path)
        if what == "a path that does not exist":
            raise DataError(f"{path}: expected an image file, received {what}")
        if what is not None:
            raise DataError(f"{path}: expected an image file (a regular file), received {what}")


def load_images(
    paths: Sequence[PathLike], size: Optional[Sequence[int]] = DEFAULT_SIZE, channels: int = 3
) -> np.ndarray:
    """Several image files as one float32 batch (N, height, width, channels), 0..255.

    With ``size=None`` every file must already have the same size.
    """
    paths = list(paths)
    if not paths:
        raise DataError("load_images: expected at least one image path, received none")
    images = [load_image(path, size, channels) for path in paths]
    for path, image in zip(paths, images):
        if image.shape != images[0].shape:
            raise DataError(
                f"{path}: expected an image of shape {images[0].shape} like {paths[0]}, "
                f"received {image.shape} (pass size=(height, width) to resize)"
            )
    return np.stack(images)
