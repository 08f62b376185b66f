"""A two-class set of generated pictures, laid out as ``vggspec data cats-vs-dogs`` lays out Cats vs Dogs.

DIR/{train,val}/circles/*.jpg and DIR/{train,val}/stripes/*.jpg: "circles" are one to three filled discs,
"stripes" a band of parallel stripes at a random angle, both in random colours and positions on a random
background, so the classes differ in shape only. Deterministic for a seed; written as JPEGs (quality 90)
into a folder made atomically. It needs no download: a task small networks learn from scratch on a CPU
(``small64`` fine-tuned on it from scratch is the README's example), and the tests' data.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from PIL import Image, ImageDraw

from vggspec.errors import DataError
from vggspec.fileio import atomic_folder, check_destination

CLASSES = ("circles", "stripes")


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def _distinct_colours(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """A background and a foreground colour at least 120 apart (sum of channel differences)."""
    while True:
        background, foreground = _colour(rng), _colour(rng)
        if sum(abs(a - b) for a, b in zip(background, foreground)) >= 120:
            return background, foreground


def circles(size: int, rng: random.Random) -> Image.Image:
    background, foreground = _distinct_colours(rng)
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 3)):
        radius = rng.uniform(0.12, 0.3) * size
        x, y = rng.uniform(radius, size - radius), rng.uniform(radius, size - radius)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=foreground)
    return image


def stripes(size: int, rng: random.Random) -> Image.Image:
    background, foreground = _distinct_colours(rng)
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(0.12, 0.25) * size
    width = period * rng.uniform(0.35, 0.6)
    direction, normal = (math.cos(angle), math.sin(angle)), (-math.sin(angle), math.cos(angle))
    centre, reach = size / 2, size
    offset = rng.uniform(0, period)
    for k in range(-int(reach / period) - 1, int(reach / period) + 2):
        d = k * period + offset
        corners = []
        for along, across in ((-reach, d), (reach, d), (reach, d + width), (-reach, d + width)):
            corners.append(
                (centre + along * direction[0] + across * normal[0], centre + along * direction[1] + across * normal[1])
            )
        draw.polygon(corners, fill=foreground)
    return image


DRAW = {"circles": circles, "stripes": stripes}


@dataclass(frozen=True)
class ShapesSet:
    """What :func:`make_shapes` wrote: where, and the images per class in each split."""

    dest: Path
    size: int
    train_per_class: int
    val_per_class: int


def write_images(root: Path, size: int, train_per_class: int, val_per_class: int, seed: int) -> None:
    """The images under ``root`` (folders made as needed): deterministic for ``seed``."""
    rng = random.Random(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                DRAW[name](size, rng).save(folder / f"{name}.{index:04d}.jpg", quality=90)


def make_shapes(
    dest: Union[str, Path], size: int = 64, train_per_class: int = 200, val_per_class: int = 60, seed: int = 0
) -> ShapesSet:
    """Write the set into the new or empty folder ``dest``, whole or not at all (DataError naming the setting
    of a bad value or an unwritable ``dest``)."""
    for setting, value, least in (("size", size, 8), ("train", train_per_class, 1), ("val", val_per_class, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= 100_000:
            raise DataError(
                f"{setting}: expected an integer from {least} to 100,000, received {value!r}", setting=setting
            )
    dest = Path(dest)
    check_destination(dest, "dest", folder=True, error=DataError, beside=True)
    if dest.is_dir() and any(dest.iterdir()):
        raise DataError(f"dest {dest}: expected a new or empty folder, received one with files", setting="dest")
    with atomic_folder(dest) as partial:
        write_images(partial, size, train_per_class, val_per_class, seed)
    return ShapesSet(dest, size, train_per_class, val_per_class)
