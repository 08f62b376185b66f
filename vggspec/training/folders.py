"""Image sets stored as class folders: DIR/<split>/<class>/... (``vggspec data cats-vs-dogs`` writes them).

Classes are the sub-folders of a split, sorted by name, and numbered in that
order: the labels torchvision's ``ImageFolder`` and Keras'
``image_dataset_from_directory`` give. Images are found in each class folder
and below it, by extension, in sorted path order.

Symbolic links to files and folders are followed, but a split never reads one
real folder twice nor counts one real image twice: a link back to a folder
above a class folder (a loop), to another class folder or to a folder already
read is not followed (with a warning), and a second link to an image already
counted is left out. So every image has one class, and a loop cannot multiply
images.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from vggspec.errors import DataError
from vggspec.images import check_image_file

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp")
# Unreadable images named one a line by :func:`check_images` before its count of the rest: enough to fix a
# handful of broken files in one go, few enough that a folder of non-images does not flood the terminal.
SHOWN_UNREADABLE = 20


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


def _images_under(folder: Path, read: set[str], counted: set[str]) -> list[Path]:
    """The images in ``folder`` and below, sorted, following links to folders not in ``read`` (real paths,
    updated) and leaving out images whose real path is in ``counted`` (updated)."""
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(d for d in subdirectories if not d.startswith(".")):
            real = os.path.realpath(os.path.join(directory, name))
            if real in read:
                warnings.warn(
                    f"{os.path.join(directory, name)}: not followed, it leads to {real}, a folder "
                    "this split already reads (or one above it)",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            read.add(real)
            kept.append(name)
        subdirectories[:] = kept
        found.extend(
            Path(directory) / name
            for name in files
            if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")
        )
    images = []
    for path in sorted(found):
        real = os.path.realpath(path)
        if real not in counted:
            counted.add(real)
            images.append(path)
    return images


def read_split(data_dir: Union[str, Path], split: str, class_names: Optional[Sequence[str]] = None) -> ImageSet:
    """The images of ``data_dir/split``; with ``class_names`` its folders must be exactly those.

    Raises :class:`DataError` (with the path) for a missing folder, a split
    without class folders, a class folder without images, or other classes.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(
            f"{root}: expected a data folder with train/<class>/ and val/<class>/ folders, "
            "received a path that does not exist"
            if not root.exists()
            else f"{root}: expected a data folder, received a file"
        )
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: expected the {split!r} split as a folder of class folders, received none")
    names = class_folders(split_dir)
    if not names:
        raise DataError(f"{split_dir}: expected class folders (e.g. {split}/cat/, {split}/dog/), received none")
    if class_names is not None and tuple(names) != tuple(class_names):
        raise DataError(
            f"{split_dir}: expected the class folders {', '.join(class_names)}, received {', '.join(names)}"
        )
    paths: list[Path] = []
    labels: list[int] = []
    # the split's folder, its class folders and the folders above them (where a link makes a loop) are
    # never entered through a link
    read: set[str] = set()
    for folder in (split_dir, *(split_dir / name for name in names)):
        real = Path(os.path.realpath(folder))
        read.update(map(str, (real, *real.parents)))
    counted: set[str] = set()
    for label, name in enumerate(names):
        found = _images_under(split_dir / name, read, counted)
        if not found:
            raise DataError(f"{split_dir / name}: expected image files ({', '.join(IMAGE_EXTENSIONS)}), received none")
        paths.extend(found)
        labels.extend([label] * len(found))
    return ImageSet(
        root=split_dir, class_names=tuple(names), paths=tuple(paths), labels=np.asarray(labels, dtype=np.int64)
    )


def check_images(images: Union[ImageSet, Sequence[ImageSet]], channels: int = 3, threads: int = 0) -> None:
    """Open, fully decode and convert to ``channels`` every image of ``images`` (one split, or several: train and
    val are checked together), in threads (Pillow decodes without the GIL); DataError naming the unreadable
    files, so that one run shows what to fix rather than the first of them: one alone is one line; several are
    a line each in path order (the first :data:`SHOWN_UNREADABLE` of them), then a line per split counting them.

    Decoding every image costs far less than the epoch a broken file would stop half-way.
    """
    splits = [images] if isinstance(images, ImageSet) else list(images)
    threads = threads or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(threads) as pool:
        found = [
            [error for error in pool.map(check_image_file, split.paths, [channels] * len(split)) if error is not None]
            for split in splits
        ]
    errors = [error for split_errors in found for error in split_errors]
    if len(errors) == 1:
        raise DataError(str(errors[0]))
    if errors:
        shown = "above" if len(errors) <= SHOWN_UNREADABLE else f"the first {SHOWN_UNREADABLE} above"
        counts = [
            f"{split.root}: expected images Pillow can read, received {len(split_errors)} of {len(split)} that "
            f"it cannot ({shown})"
            for split, split_errors in zip(splits, found)
            if split_errors
        ]
        raise DataError("\n".join([*map(str, errors[:SHOWN_UNREADABLE]), *counts]))
