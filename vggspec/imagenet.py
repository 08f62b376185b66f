"""The 1000 ImageNet classes and the decoding of a classifier's output.

The class index ships with vggspec (``vggspec/data_files/imagenet_class_index.json``,
made by ``tools/make_imagenet_class_index.py``; byte-identical to Keras' file),
so decoding predictions never downloads anything.
"""

from __future__ import annotations

import functools
import json
from typing import Optional, Sequence

import numpy as np

from vggspec.errors import DataError
from vggspec.resources import data_file

NUM_CLASSES = 1000
CLASS_INDEX_FILE = "imagenet_class_index.json"


@functools.lru_cache(maxsize=1)
def _class_index() -> tuple[tuple[str, str], ...]:
    path = data_file(CLASS_INDEX_FILE)
    mapping = json.loads(path.read_text(encoding="utf-8"))
    if sorted(mapping, key=int) != [str(i) for i in range(NUM_CLASSES)]:
        raise DataError(f"{path}: expected keys '0'..'{NUM_CLASSES - 1}', received {len(mapping)} keys")
    return tuple((mapping[str(i)][0], mapping[str(i)][1]) for i in range(NUM_CLASSES))


def class_index() -> list[tuple[str, str]]:
    """``[(wnid, name), ...]`` for the 1000 ImageNet classes in index order, e.g. ``("n01440764", "tench")``."""
    return list(_class_index())


def decode_predictions(preds: np.ndarray, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """The ``top`` classes of each row of ``preds``, best first.

    ``preds``: (N, 1000) scores (e.g. softmax probabilities). Returns one list
    per image of ``(wnid, name, score)`` sorted by score, highest first; the
    same output as ``keras.applications.imagenet_utils.decode_predictions``.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise DataError(
            f"decode_predictions: expected predictions of shape (batch, {NUM_CLASSES}), received shape {preds.shape}"
        )
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or not 1 <= top <= NUM_CLASSES:
        raise DataError(f"decode_predictions: expected top an integer 1..{NUM_CLASSES}, received {top!r}")
    classes = _class_index()
    return [[classes[i] + (row[i],) for i in best] for row, best in zip(preds, top_indices(preds, top))]


def top_indices(scores: np.ndarray, top: int) -> list[list[int]]:
    """For each row of ``scores`` (N, classes), the indices of its ``top`` highest scores, best first,
    ties in the order Keras' ``decode_predictions`` gives them."""
    results = []
    for row in np.asarray(scores):
        # Keras' order exactly: argsort, the last `top` reversed, then a stable sort by score.
        best = [int(i) for i in row.argsort()[-top:][::-1]]
        best.sort(key=lambda i: row[i], reverse=True)
        results.append(best)
    return results


def top_classes(
    scores: np.ndarray, top: int, labels: Optional[Sequence[str]] = None
) -> list[list[tuple[int, str, float]]]:
    """Per row of ``scores`` (N, classes), the ``top`` (index, name, score), best first: names from
    ``labels``, else ImageNet's ("n01440764 tench") for 1000 classes, else "class i"."""
    names = (
        list(labels)
        if labels
        else ([f"{wnid} {name}" for wnid, name in _class_index()] if np.shape(scores)[1] == NUM_CLASSES else None)
    )
    return [
        [(i, names[i] if names else f"class {i}", float(row[i])) for i in best]
        for row, best in zip(np.asarray(scores), top_indices(scores, top))
    ]
