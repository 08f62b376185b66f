"""A two-class image set made with Pillow, laid out as ``vggspec data`` lays out Cats vs Dogs.

ROOT/{train,val}/circles/*.jpg and ROOT/{train,val}/stripes/*.jpg: "circles"
are one to three filled discs, "stripes" a band of parallel stripes at a random
angle, both in random colours and positions on a random background, so the
classes differ in shape only. Deterministic for a seed; written as JPEGs.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

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


def make_image_set(
    root: Path, size: int = 64, train_per_class: int = 200, val_per_class: int = 60, seed: int = 0
) -> Path:
    """Write the set under ``root`` (created) and return ``root``."""
    rng = random.Random(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                DRAW[name](size, rng).save(folder / f"{name}.{index:04d}.jpg", quality=90)
    return root
