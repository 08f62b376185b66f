"""Run a built model on image files, a batch at a time: what ``vggspec predict`` classifies with.

Images are read, preprocessed and run ``batch_size`` at a time (with a progress bar), so memory
follows the batch, not the number of files: a 224×224 image is about 40 MB of activations in a
forward pass, and a user may give thousands. Scores that are not finite (weights that overflow
float32 on an image) are refused naming the image, never printed as ``nan``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from vggspec.backends import Backend
from vggspec.errors import VggspecError
from vggspec.images import load_images
from vggspec.planner.lower import Plan
from vggspec.preprocessing import preprocess

BATCH_SIZE = 32  # images per forward pass


def predict_files(
    backend: Backend,
    model: Any,
    plan: Plan,
    paths: Sequence[Union[str, Path]],
    preprocessing: str,
    batch_size: int = BATCH_SIZE,
    progress: bool = True,
) -> np.ndarray:
    """The model's outputs for the image files ``paths`` (N, *plan.output_shape), float32, in order: each file
    read at the plan's input size and channels, ``preprocessing`` applied, ``batch_size`` files a pass."""
    from tqdm import tqdm

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise VggspecError(f"batch_size: expected a positive integer, received {batch_size!r}", setting="batch_size")
    height, width, channels = plan.input_shape
    outputs = []
    shown = progress and len(paths) > batch_size  # one batch needs no bar
    with tqdm(total=len(paths), desc="predict", unit="image", disable=not shown, leave=False) as bar:
        for start in range(0, len(paths), batch_size):
            batch = list(paths[start : start + batch_size])
            images = preprocess(load_images(batch, (height, width), channels), preprocessing)
            scores = np.asarray(backend.predict(model, images), dtype=np.float32)
            _check_finite(scores, batch)
            outputs.append(scores)
            bar.update(len(batch))
    return np.concatenate(outputs) if outputs else np.zeros((0, *plan.output_shape), dtype=np.float32)


def _check_finite(scores: np.ndarray, paths: Sequence[Union[str, Path]]) -> None:
    for path, row in zip(paths, scores):
        if not np.isfinite(row).all():
            count = int(row.size - np.count_nonzero(np.isfinite(row)))
            raise VggspecError(
                f"{path}: expected finite scores, received {count:,} of {row.size:,} NaN or infinite "
                "(the weights overflow float32 on this image)"
            )
