"""Which source files are JPEGs that both TensorFlow and Pillow read.

A file is dropped, with the reason, when it is empty, does not start with FF D8,
has no ``JFIF``/``Exif`` in its first 10 bytes (the check TensorFlow Datasets
makes), or Pillow cannot decode it.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any, Optional

from tqdm import tqdm

from vggspec.data.cats_vs_dogs.source import ImageSource


def check_image(data: bytes) -> Optional[str]:
    """None when ``data`` is a JPEG that TensorFlow and Pillow both read, else the reason it is not."""
    if not data:
        return "empty file"
    if data[:2] != b"\xff\xd8":
        return f"not a JPEG: starts with {data[:4].hex(' ')}, expected ff d8"
    if b"JFIF" not in data[:10] and b"Exif" not in data[:10]:
        return "no JFIF or Exif header in the first 10 bytes"
    from PIL import Image as PillowImage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about odd EXIF blocks it still reads
        try:
            with PillowImage.open(io.BytesIO(data)) as image:
                image.load()
        except Exception as error:  # Pillow raises many kinds (OSError, SyntaxError, ValueError, ...)
            text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", " ".join(str(error).split()))
            return f"Pillow cannot decode it: {text or type(error).__name__}"
    return None


def check_images(source: ImageSource, progress: bool) -> dict[str, Any]:
    """Every image of ``source`` read and checked: ``{"layout", "dropped": [{"file", "class", "reason"}],
    "ignored": [the source's other files]}`` (JSON-ready: a resumed run reads it back)."""
    dropped = []
    for image in tqdm(source.images, desc="checking images", unit="file", disable=None if progress else True):
        reason = check_image(source.read(image.name))
        if reason is not None:
            dropped.append({"file": image.name, "class": image.label, "reason": reason})
    return {"layout": source.layout, "dropped": dropped, "ignored": source.ignored}
