"""Image sets stored as class folders: DIR/<split>/<class>/... (``vggspec data cats-vs-dogs`` writes them).

Classes are the sub-folders of a split, sorted by name, and numbered in that
order: the labels torchvision's ``ImageFolder`` and Keras'
``image_dataset_from_directory`` give. Images are found in each class folder
and below it, by extension, in sorted path order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from vggspec.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ImageSet:
    """One split: ``paths[i]`` is an image of class ``labels[i]`` (an index into ``class_names``)."""

    root: Path
    class_names: tuple[str, ...]
    paths: tuple[Path, ...]
    labels: np.ndarray  # int64, (N,)

    def __len__(self) -> int:
        return len(self.paths)

    def class_counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(self.class_names)).tolist()


def class_folders(split_dir: Path) -> list[str]:
    """The class folder names of a split, sorted (hidden folders are ignored)."""
    return sorted(entry.name for entry in os.scandir(split_dir) if entry.is_dir() and not entry.name.startswith("."))


def _images_under(folder: Path) -> list[Path]:
    found = []
    for directory, subdirectories, files in os.walk(folder, followlinks=True):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        found.extend(Path(directory) / name for name in files
                     if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))
    return sorted(found)


def read_split(data_dir: Union[str, Path], split: str, class_names: Optional[Sequence[str]] = None) -> ImageSet:
    """The images of ``data_dir/split``; with ``class_names`` its folders must be exactly those.

    Raises :class:`DataError` (with the path) for a missing folder, a split
    without class folders, a class folder without images, or other classes.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: expected a data folder with train/<class>/ and val/<class>/ folders, "
                        "received a path that does not exist" if not root.exists() else
                        f"{root}: expected a data folder, received a file")
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: expected the {split!r} split as a folder of class folders, received none")
    names = class_folders(split_dir)
    if not names:
        raise DataError(f"{split_dir}: expected class folders (e.g. {split}/cat/, {split}/dog/), received none")
    if class_names is not None and tuple(names) != tuple(class_names):
        raise DataError(f"{split_dir}: expected the class folders {', '.join(class_names)}, "
                        f"received {', '.join(names)}")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(names):
        found = _images_under(split_dir / name)
        if not found:
            raise DataError(f"{split_dir / name}: expected image files ({', '.join(IMAGE_EXTENSIONS)}), "
                            "received none")
        paths.extend(found)
        labels.extend([label] * len(found))
    return ImageSet(root=split_dir, class_names=tuple(names), paths=tuple(paths),
                    labels=np.asarray(labels, dtype=np.int64))
