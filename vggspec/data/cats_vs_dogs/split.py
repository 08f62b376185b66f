"""The stratified, deterministic split of the kept images, copied as ``{train,val}/{cat,dog}/``.

Per class, the images sorted by number are shuffled with ``random.Random(seed)``
and the first ``round(val_fraction * n)`` go to ``val``, the rest to ``train``.
A split that would leave a class without images in train or in val is refused.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from vggspec.data.cats_vs_dogs.source import CLASSES, ImageSource, SourceImage
from vggspec.errors import DataError
from vggspec.fileio import atomic_path


def check_split_sizes(
    images: list[SourceImage], val_fraction: float, where: str, dropped: Sequence[dict[str, Any]] = ()
) -> None:
    """DataError naming the setting ``val_fraction`` when :func:`split_images` would leave a class without
    images in train or in val (``dropped``: the entries of the unreadable files left out of ``images``)."""
    for label in CLASSES:
        count = sum(1 for image in images if image.label == label)
        n_val = round(val_fraction * count)
        if 0 < n_val < count:
            continue
        lost = sum(1 for entry in dropped if entry["class"] == label)
        counted = f"{count} image{'s' if count != 1 else ''}" + (f" kept, {lost} dropped" if lost else "")
        raise DataError(
            f"{where}: expected a split with images of each class in train and in val, received "
            f"{label}: train {count - n_val}, val {n_val} (of {counted}, `val_fraction` {val_fraction}); "
            "use more images or a `val_fraction` nearer 0.5",
            setting="val_fraction",
        )


def split_images(images: list[SourceImage], val_fraction: float, seed: int) -> dict[str, list[SourceImage]]:
    """Stratified split: per class (sorted by number), shuffle with ``Random(seed)``, the first
    ``round(val_fraction * n)`` to ``val``, the rest to ``train`` (each list sorted again)."""
    rng = random.Random(seed)
    splits: dict[str, list[SourceImage]] = {"train": [], "val": []}
    for label in CLASSES:
        of_class = sorted((image for image in images if image.label == label), key=lambda image: image.number)
        rng.shuffle(of_class)
        n_val = round(val_fraction * len(of_class))
        splits["val"] += sorted(of_class[:n_val], key=lambda image: image.number)
        splits["train"] += sorted(of_class[n_val:], key=lambda image: image.number)
    return splits


def kept_images(source: ImageSource, checked: dict[str, Any]) -> list[SourceImage]:
    """The source's images less those :func:`~vggspec.data.cats_vs_dogs.checking.check_images` dropped."""
    dropped_names = {entry["file"] for entry in checked["dropped"]}
    return [image for image in source.images if image.name not in dropped_names]


def copy_split(source: ImageSource, splits: dict[str, list[SourceImage]], folder: Path, progress: bool) -> None:
    """Copy each image to ``folder/<split>/<class>/<file name>`` (each written whole or not at all); a file
    already there with the source's size is kept (written before an interruption)."""
    work = [(split, image) for split, images in splits.items() for image in images]
    for split, image in tqdm(work, desc="copying images", unit="file", disable=None if progress else True):
        target = folder / split / image.label / image.file_name
        if target.is_file() and target.stat().st_size == source.size(image.name):
            continue
        with atomic_path(target) as temporary:
            temporary.write_bytes(source.read(image.name))
    for split in splits:
        for label in CLASSES:
            (folder / split / label).mkdir(parents=True, exist_ok=True)


def split_manifest(
    source: ImageSource, checked: dict[str, Any], splits: dict[str, list[SourceImage]], arguments: dict[str, Any]
) -> dict[str, Any]:
    """What manifest.json says: the arguments, the layout, the images found and in each split, the files
    dropped (with the reason) and ignored."""
    return {
        "dataset": "cats_vs_dogs",
        **arguments,
        "layout": checked["layout"],
        "classes": list(CLASSES),
        "found": {label: sum(1 for image in source.images if image.label == label) for label in CLASSES},
        "counts": {
            split: {label: sum(1 for image in images if image.label == label) for label in CLASSES}
            for split, images in splits.items()
        },
        "dropped": checked["dropped"],
        "ignored": checked["ignored"],
    }
