"""A run folder: what ``vggspec finetune`` writes and ``vggspec evaluate`` / ``--resume`` read.

RUN_DIR/
    run.json          the spec mapping (head for the data's classes), backend, config, class names, data,
                      weights, the best epoch and, after a distributed run, ``ranks_agree``
    metrics.csv       one row per finished epoch: epoch, train_loss, train_accuracy, val_loss,
                      val_accuracy, seconds (losses: mean cross-entropy in nats; accuracies: fractions)
    curves.png        loss and accuracy per epoch, training and validation
    last<suffix>      the backend's checkpoint after the latest epoch: weights, optimizer state and the
                      loop's state (epoch, that epoch's metrics row, the best epoch so far)
    best<suffix>      the weights of the epoch with the best validation accuracy, in the backend's
                      weight format (``vggspec predict --weights``, ``finetune --weights`` read it)

Every file is written atomically (:func:`vggspec.fileio.atomic_path`).
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any, Union

from vggspec.errors import DataError
from vggspec.fileio import atomic_path

RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"
METRIC_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")


def default_run_dir(spec_name: str, backend: str) -> Path:
    """``runs/<spec>-<backend>-<YYYYmmdd-HHMMSS>`` under the current folder."""
    return Path("runs") / f"{spec_name}-{backend}-{time.strftime('%Y%m%d-%H%M%S')}"


class RunFolder:
    """The files of one run under ``path``."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)

    @property
    def run_json(self) -> Path:
        return self.path / RUN_JSON

    @property
    def metrics_csv(self) -> Path:
        return self.path / METRICS_CSV

    @property
    def curves_png(self) -> Path:
        return self.path / CURVES_PNG

    def checkpoint(self, which: str, suffix: str) -> Path:
        """``best`` or ``last`` with the backend's suffix."""
        return self.path / f"{which}{suffix}"

    def exists(self) -> bool:
        return self.run_json.is_file()

    def read_record(self) -> dict[str, Any]:
        """run.json as a dict; DataError when the folder holds no run."""
        if not self.run_json.is_file():
            raise DataError(f"{self.path}: expected a run folder with {RUN_JSON} (written by vggspec finetune), "
                            "received " + ("a folder without it" if self.path.is_dir() else "a path that does not exist"))
        try:
            return json.loads(self.run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DataError(f"{self.run_json}: expected a JSON run record, received an unreadable file ({error})") from None

    def write_record(self, record: dict[str, Any]) -> None:
        with atomic_path(self.run_json) as temporary:
            temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    def read_metrics(self) -> list[dict[str, float]]:
        """The rows of metrics.csv (epoch as int, the rest as float); [] when there is none yet."""
        if not self.metrics_csv.is_file():
            return []
        with open(self.metrics_csv, newline="", encoding="utf-8") as file:
            return [{column: (int(row[column]) if column == "epoch" else float(row[column]))
                     for column in METRIC_COLUMNS} for row in csv.DictReader(file)]

    def write_metrics(self, rows: list[dict[str, float]]) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row[column] for column in METRIC_COLUMNS})
        with atomic_path(self.metrics_csv) as temporary:
            temporary.write_text(text.getvalue(), encoding="utf-8")
