"""The images a lower-precision model is calibrated and checked on: class folders, or a flat folder.

``DIR/<class>/...`` (as ``vggspec data`` writes a split, and ``finetune`` reads one) gives labels, so both
models' accuracies can be told; a folder of image files alone gives none. Every fifth image (the fifth, the
tenth, ...) in path order is held out of the calibration to check the model on: in class folders the paths
are grouped by class, so each class gives its share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np

from vggspec.errors import DataError
from vggspec.images import load_images
from vggspec.planner.lower import Plan
from vggspec.preprocessing import preprocess
from vggspec.training.folders import IMAGE_EXTENSIONS, class_folders, read_split

HELD_OUT_EVERY = 5  # one image in five is held out of the calibration, to check the model on


@dataclass(frozen=True)
class ImageFolder:
    """Images, with their class labels (indices into ``class_names``) when the folder had class folders."""

    root: Path
    paths: tuple[Path, ...]
    labels: Optional[np.ndarray]  # int64 (N,), or None for a flat folder
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, chosen: np.ndarray) -> ImageFolder:
        """The images at the indices ``chosen``, in that order."""
        labels = None if self.labels is None else self.labels[chosen]
        return ImageFolder(self.root, tuple(self.paths[i] for i in chosen), labels, self.class_names)

    def split_held_out(self) -> tuple[ImageFolder, ImageFolder]:
        """(the images to calibrate on, those held out to check on: every HELD_OUT_EVERY-th)."""
        index = np.arange(len(self))
        held_out = index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
        return self.take(index[~held_out]), self.take(index[held_out])

    def batches(self, plan: Plan, preprocessing: str, batch_size: int, bar: object = None) -> Iterator[np.ndarray]:
        """The images read at the plan's input size, ``preprocessing`` applied, ``batch_size`` at a time; a tqdm
        ``bar`` is advanced by each batch's images."""
        height, width, channels = plan.input_shape
        for start in range(0, len(self), batch_size):
            chunk = self.paths[start : start + batch_size]
            yield preprocess(load_images(chunk, (height, width), channels), preprocessing)
            if bar is not None:
                bar.update(len(chunk))  # type: ignore[attr-defined]


def read_image_folder(folder: Union[str, Path], setting: str) -> ImageFolder:
    """The images of ``folder``: its class folders' (sorted by class, then path) or, with none, its own image
    files (sorted). DataError naming ``setting`` when there are none."""
    root = Path(folder)
    if not root.is_dir():
        what = "a path that does not exist" if not root.exists() else "a file"
        raise DataError(
            f"{setting} {root}: expected a folder of images or of class folders, received {what}", setting=setting
        )
    if class_folders(root):
        split = read_split(root.parent, root.name)
        return ImageFolder(split.root, split.paths, split.labels, split.class_names)
    paths = sorted(
        root / entry.name
        for entry in os.scandir(root)
        if entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS) and not entry.name.startswith(".")
    )
    if not paths:
        raise DataError(
            f"{setting} {root}: expected image files ({', '.join(IMAGE_EXTENSIONS)}) or class folders, received none",
            setting=setting,
        )
    return ImageFolder(root, tuple(paths), None)
