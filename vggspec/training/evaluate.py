"""Score a run's best checkpoint on a split of class folders: accuracy, loss and the confusion matrix.

The model is rebuilt from run.json (the spec with its fine-tuned head) with
the run's backend, its ``best`` weights are loaded like any weight file, and
the split's images go through the same pipeline as validation during training
(:class:`vggspec.training.batches.ImageBatches`, no augmentation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from vggspec.errors import DataError, VggspecError
from vggspec.precision.agreement import Agreement, agreement
from vggspec.spec.load import spec_from_mapping
from vggspec.training.batches import ImageBatches
from vggspec.training.folders import read_split
from vggspec.training.metrics import confusion_matrix, loss_and_correct
from vggspec.training.run_folder import CHECKPOINTS, RunFolder


@dataclass(frozen=True)
class Evaluation:
    """What ``vggspec evaluate`` reports. ``matrix``: rows true class, columns predicted class."""

    checkpoint: Path
    best_epoch: Optional[int]
    split_dir: Path
    class_names: tuple[str, ...]
    labels: np.ndarray
    predictions: np.ndarray
    matrix: np.ndarray
    loss: float
    precision: str = "float32"
    versus_float32: Optional[Agreement] = None  # a lower-precision file scored: against the run's checkpoint

    @property
    def correct(self) -> int:
        return int(np.trace(self.matrix))

    @property
    def count(self) -> int:
        return int(self.matrix.sum())

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else 0.0


def evaluate_run(
    run_dir: Union[str, Path],
    data_dir: Optional[Union[str, Path]] = None,
    split: str = "val",
    backend_name: Optional[str] = None,
    batch_size: int = 32,
    checkpoint: str = "best",
    weights: Optional[Union[str, Path]] = None,
) -> Evaluation:
    """Score ``checkpoint`` (best or last) of the run in ``run_dir`` on ``data_dir/split``
    (default: the data the run was trained on) with ``backend_name`` (default: the run's, or the one that runs
    ``weights``), ``batch_size`` images at a time. ``weights``: another file to score instead, e.g. the run's
    model in int8 (``vggspec build`` in int8), which is then also compared with the checkpoint in float32."""
    from vggspec.backends import ReadsModelFile, get_backend
    from vggspec.building import backend_for_file, build_model

    _check_settings(batch_size, checkpoint)
    run = RunFolder(run_dir)
    record = run.read_record()
    spec = spec_from_mapping(dict(record.spec), source=str(run.run_json))
    images = read_split(data_dir if data_dir is not None else record.data, split, record.classes)
    saved = run.path / getattr(record.checkpoints, checkpoint)
    if not saved.is_file():
        raise DataError(
            f"{saved}: expected the run's {checkpoint} checkpoint, received a path that does not "
            "exist (has an epoch finished?)"
        )
    backend = get_backend(backend_for_file(backend_name, weights) or record.backend)
    model = build_model(spec, backend, weights or saved)
    precision = backend.model_precision(model) if isinstance(backend, ReadsModelFile) else "float32"
    data = ImageBatches(
        images,
        size=spec.input_shape[:2],
        channels=spec.input_shape[2],
        preprocessing=spec.preprocessing,
        batch_size=batch_size,
        train=False,
    )
    scores = _scores(backend, model, data)
    loss_sum, _ = loss_and_correct(scores, data.labels, spec.classifier_activation)
    predictions = np.argmax(scores, axis=1)
    versus = None
    if precision != "float32":  # the same images through the checkpoint, float32, with the same backend
        reference = _scores(backend, build_model(spec, backend, saved), data)
        versus = agreement(precision, reference, scores, data.labels)
    return Evaluation(
        checkpoint=Path(weights) if weights is not None else saved,
        best_epoch=record.best.epoch if checkpoint == "best" and record.best is not None and not weights else None,
        split_dir=images.root,
        class_names=images.class_names,
        labels=data.labels,
        predictions=predictions,
        matrix=confusion_matrix(data.labels, predictions, len(images.class_names)),
        loss=loss_sum / len(data.labels),
        precision=precision,
        versus_float32=versus,
    )


def _check_settings(batch_size: int, checkpoint: str) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise VggspecError(f"batch_size: expected a positive integer, received {batch_size!r}", setting="batch_size")
    if checkpoint not in CHECKPOINTS:
        raise VggspecError(
            f"checkpoint: expected {' or '.join(CHECKPOINTS)}, received {checkpoint!r}", setting="checkpoint"
        )


def _scores(backend: Any, model: Any, data: ImageBatches) -> np.ndarray:
    return np.concatenate([np.asarray(backend.predict(model, data.batch(i)[0])) for i in range(len(data))])
