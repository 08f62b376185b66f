"""The two-class image set of the tests: vggspec's own generated shapes (:mod:`vggspec.data.shapes`), written
where a test wants them."""

from __future__ import annotations

from pathlib import Path

from vggspec.data.shapes import CLASSES, write_images

__all__ = ["CLASSES", "make_image_set"]


def make_image_set(
    root: Path, size: int = 64, train_per_class: int = 200, val_per_class: int = 60, seed: int = 0
) -> Path:
    """Write the set under ``root`` (created) and return ``root``."""
    write_images(root, size, train_per_class, val_per_class, seed)
    return root
