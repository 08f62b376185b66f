"""How far a lower-precision model is from its float32 source, on the same images: the gate of ``vggspec build``
in int8, and what ``verify`` and ``evaluate`` print of a quantized file."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

import numpy as np

from vggspec.errors import VggspecError

MIN_AGREEMENT = 0.99  # top-1: the share of images whose class is the float32 model's


@dataclass(frozen=True)
class Agreement:
    """``top1``: the share of images whose highest score is the float32 model's class; ``top5``: whose five
    highest scores hold that class (None with five classes or fewer: always so); ``max_abs_diff``: the largest
    output difference; the accuracies, of float32 (``reference_accuracy``) and of the lower precision, on
    labelled images (None otherwise)."""

    precision: str
    images: int
    top1: float
    top5: Optional[float]
    max_abs_diff: float
    reference_accuracy: Optional[float] = None
    accuracy: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """``int8 vs float32 on 360 images: top-1 agreement 0.9972, top-5 ..., max |Δ| 1.2e-02; accuracy ...``."""
        top5 = "" if self.top5 is None else f", top-5 {self.top5:.4f}"
        text = (
            f"{self.precision} vs float32 on {self.images} images: top-1 agreement {self.top1:.4f}{top5}, "
            f"max |Δ| {self.max_abs_diff:.2e}"
        )
        if self.accuracy is not None and self.reference_accuracy is not None:
            text += f"; accuracy float32 {self.reference_accuracy:.4f}, {self.precision} {self.accuracy:.4f}"
        return text


def agreement(
    precision: str, reference: np.ndarray, scores: np.ndarray, labels: Optional[np.ndarray] = None
) -> Agreement:
    """Compare ``scores`` (N, classes) of the ``precision`` model with ``reference``'s, float32's."""
    reference, scores = np.asarray(reference, np.float64), np.asarray(scores, np.float64)
    if reference.shape != scores.shape or reference.ndim != 2 or not len(reference):
        raise VggspecError(
            f"agreement: expected two (N, classes) score arrays of one shape, received {reference.shape} and "
            f"{scores.shape}"
        )
    expected = reference.argmax(1)
    top1 = float(np.mean(expected == scores.argmax(1)))
    top5 = None
    if scores.shape[1] > 5:  # the five highest: an order of the saturated scores below them would be noise
        top5 = float(np.mean((np.argsort(-scores, axis=1)[:, :5] == expected[:, None]).any(axis=1)))
    accuracies: tuple[Optional[float], Optional[float]] = (None, None)
    if labels is not None:
        accuracies = (float(np.mean(reference.argmax(1) == labels)), float(np.mean(scores.argmax(1) == labels)))
    return Agreement(
        precision,
        len(reference),
        top1,
        top5,
        float(np.max(np.abs(reference - scores))),
        *accuracies,
    )


def check_minimum(minimum: float) -> float:
    """``minimum`` when it is a share, 0 to 1."""
    if isinstance(minimum, bool) or not isinstance(minimum, (int, float)) or not 0.0 <= minimum <= 1.0:
        raise VggspecError(
            f"min_agreement: expected a number from 0 to 1, received {minimum!r}", setting="min_agreement"
        )
    return float(minimum)


def refuse_below(found: Agreement, minimum: float, where: str) -> None:
    """VggspecError (one line, exit 2) when the top-1 agreement is under ``minimum``; ``where``: the images."""
    if found.top1 < minimum:
        top5 = "" if found.top5 is None else f", top-5 {found.top5:.4f}"
        raise VggspecError(
            f"min_agreement: expected the {found.precision} model to agree with float32 on at least {minimum:.4f} "
            f"of {where} (top-1), received {found.top1:.4f} ({round(found.top1 * found.images)} of {found.images}"
            f"{top5}, max |Δ| {found.max_abs_diff:.2e}); nothing written",
            setting="min_agreement",
        )
