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
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from vggspec.errors import DataError

PathLike = Union[str, Path]
DEFAULT_SIZE = (224, 224)
MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # channels -> the Pillow mode an image is converted to
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
    return DataError(
        f"{path}: expected an image file Pillow can read (JPEG, PNG, ...), received an unreadable file ({error})"
    )


def load_image(path: PathLike, size: Optional[Sequence[int]] = DEFAULT_SIZE, channels: int = 3) -> np.ndarray:
    """One image file as float32 (height, width, channels), 0..255: grayscale, RGB or RGBA.

    ``size`` is (height, width), as Keras' ``target_size``; ``None`` keeps the
    file's own size. ``channels`` is 1, 3 or 4 (see the module). A missing,
    unreadable or corrupt file raises :class:`DataError` naming the file.
    """
    target = _checked_size(size)
    mode = image_mode(channels)
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.mode != mode:
                image = image.convert(mode)
            if target is not None and image.size != (target[1], target[0]):
                image = image.resize((target[1], target[0]), Image.Resampling.NEAREST)
            array = np.asarray(image, dtype=np.float32)
    except UNREADABLE as error:
        raise unreadable(path, error) from None
    return array[..., None] if array.ndim == 2 else array


def check_image_file(path: PathLike, channels: int = 3) -> Optional[DataError]:
    """None when Pillow opens, fully decodes and converts ``path`` to ``channels``, else the error
    :func:`load_image` would raise.

    A full decode, not only the header: a truncated JPEG has a good header and
    fails half-way through its pixels.
    """
    mode = image_mode(channels)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode != mode:
                image.convert(mode)
    except UNREADABLE as error:
        return unreadable(path, error)
    return None


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
