"""Loss, accuracy and the confusion matrix, from a model's outputs (numpy, every backend alike), and the
running means of a training epoch that every backend's trainer feeds.

``scores`` are the outputs of the predictions layer, (N, classes): probabilities
when the spec's ``classifier_activation`` is ``softmax``, logits when it is null
(:func:`output_activation`). The loss is the mean sparse categorical cross-entropy
in natural log units, computed as Keras does (probabilities clipped to [1e-7, 1 - 1e-7]).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from vggspec.planner.lower import Plan

EPSILON = 1e-7  # keras.backend.epsilon()


def output_activation(plan: Plan) -> Optional[str]:
    """The activation of the scores ``plan``'s model outputs: its classifier's ("softmax"), None for logits.
    A trained plan always has a classifier (:func:`vggspec.training.head.head_spec` gives it one)."""
    classifier = plan.classifier
    return classifier.activation if classifier is not None else None


class RunningMeans:
    """A training epoch's means over the batches so far, as Keras' ``fit`` logs them: the loss weighted by
    batch size, the accuracy over all images. A trainer adds each batch, shows ``loss`` and ``accuracy``
    on the progress bar, and returns :meth:`result` at the epoch's end."""

    def __init__(self) -> None:
        self.loss_sum = 0.0  # nats, summed over the images
        self.correct = 0.0  # images whose highest score is their label
        self.count = 0

    def add(self, loss: float, correct: float, count: int) -> None:
        """One batch of ``count`` images: its mean ``loss`` and how many of them were classified right."""
        self.loss_sum += loss * count
        self.correct += correct
        self.count += count

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.count, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.count, 1)

    def result(self) -> dict[str, float]:
        """What ``Trainer.train_epoch`` returns: {"loss": mean, "accuracy": fraction, "count": images}."""
        return {"loss": self.loss, "accuracy": self.accuracy, "count": self.count}


def cross_entropy(scores: np.ndarray, labels: np.ndarray, activation: Optional[str]) -> np.ndarray:
    """Per-image cross-entropy (N,) float64 of ``scores`` (probabilities or logits) against int labels."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    if activation is None:  # logits: log-softmax, shifted for stability
        shifted = scores - scores.max(axis=1, keepdims=True)
        return np.log(np.exp(shifted).sum(axis=1)) - shifted[rows, labels]
    probabilities = scores / scores.sum(axis=1, keepdims=True)
    return -np.log(np.clip(probabilities[rows, labels], EPSILON, 1 - EPSILON))


def loss_and_correct(scores: np.ndarray, labels: np.ndarray, activation: Optional[str]) -> tuple[float, int]:
    """(sum of per-image losses, number of images whose highest score is their label)."""
    if len(labels) == 0:
        return 0.0, 0
    correct = int((np.argmax(scores, axis=1) == np.asarray(labels)).sum())
    return float(cross_entropy(scores, labels, activation).sum()), correct


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) int64 counts: rows are true classes, columns predicted classes."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1)
    return matrix


def format_confusion(matrix: np.ndarray, class_names: Sequence[str]) -> str:
    """The matrix as a table with class names on both axes (rows true, columns predicted)."""
    names = [str(name) for name in class_names]
    width = max(max(len(name) for name in names), len(str(int(matrix.max(initial=0)))), 4)
    header = " " * width + "".join(f"  {name:>{width}}" for name in names)
    rows = [
        f"{name:<{width}}" + "".join(f"  {int(count):>{width}}" for count in row) for name, row in zip(names, matrix)
    ]
    return "\n".join([header, *rows])
