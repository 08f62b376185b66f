"""Read image files into arrays, the way ``keras.utils.load_img`` + ``img_to_array`` do.

An image becomes float32 HWC, RGB, values 0..255: any Pillow mode is
converted to RGB (grayscale is repeated into three channels, alpha is
dropped, not composited), then resized with nearest-neighbour sampling (Keras'
default ``interpolation="nearest"``) when its size differs from the target.
Feed the result to :func:`vggspec.preprocessing.preprocess`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

from vggspec.errors import DataError

PathLike = Union[str, Path]
DEFAULT_SIZE = (224, 224)


def _checked_size(size: Optional[Sequence[int]]) -> Optional[tuple[int, int]]:
    if size is None:
        return None
    if (len(size) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0
                                  for n in size)):
        raise DataError(f"load_image: expected size (height, width) of positive integers, received {size!r}")
    return int(size[0]), int(size[1])


def load_image(path: PathLike, size: Optional[Sequence[int]] = DEFAULT_SIZE) -> np.ndarray:
    """One image file as float32 (height, width, 3), RGB, 0..255.

    ``size`` is (height, width), as Keras' ``target_size``; ``None`` keeps the
    file's own size. A missing, unreadable or corrupt file raises
    :class:`DataError` naming the file.
    """
    target = _checked_size(size)
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.mode != "RGB":
                image = image.convert("RGB")
            if target is not None and image.size != (target[1], target[0]):
                image = image.resize((target[1], target[0]), Image.Resampling.NEAREST)
            return np.asarray(image, dtype=np.float32)
    except FileNotFoundError:
        raise DataError(f"{path}: expected an image file, received a path that does not exist") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"{path}: expected an image file Pillow can read (JPEG, PNG, ...), "
                        f"received an unreadable file ({error})") from None


def load_images(paths: Sequence[PathLike], size: Optional[Sequence[int]] = DEFAULT_SIZE) -> np.ndarray:
    """Several image files as one float32 batch (N, height, width, 3), RGB, 0..255.

    With ``size=None`` every file must already have the same size.
    """
    paths = list(paths)
    if not paths:
        raise DataError("load_images: expected at least one image path, received none")
    images = [load_image(path, size) for path in paths]
    for path, image in zip(paths, images):
        if image.shape != images[0].shape:
            raise DataError(f"{path}: expected an image of shape {images[0].shape} like {paths[0]}, "
                            f"received {image.shape} (pass size=(height, width) to resize)")
    return np.stack(images)
