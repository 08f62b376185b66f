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

import contextlib
import csv
import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any, Iterator, Union

from vggspec.errors import DataError
from vggspec.fileio import atomic_path

RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"
METRIC_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")
NAME_LENGTH = 64  # at most this much of a spec's name in a default run folder's name (file systems allow 255 bytes)

_NUMBER = (int, float)
# run.json: key (nested keys joined by ".") -> (what it must be, its types); bool is never taken for a number
RECORD_KEYS: dict[str, tuple[str, tuple[type, ...]]] = {
    "spec": ("a mapping", (dict,)),
    "backend": ("a string", (str,)),
    "classes": ("a list of class names", (list,)),
    "data": ("a string", (str,)),
    "weights": ("a string or null", (str, type(None))),
    "freeze": ("a string", (str,)),
    "config": ("a mapping", (dict,)),
    "config.epochs": ("an integer", (int,)),
    "config.batch_size": ("an integer", (int,)),
    "config.learning_rate": ("a number", _NUMBER),
    "config.optimizer": ("a string", (str,)),
    "config.workers": ("an integer", (int,)),
    "config.seed": ("an integer", (int,)),
    "config.device": ("a string or null", (str, type(None))),
    "config.compile": ("true or false", (bool,)),
    "config.channels_last": ("true or false", (bool,)),
    "config.autocast": ("true or false", (bool,)),
    "checkpoints": ("a mapping", (dict,)),
    "checkpoints.best": ("a file name", (str,)),
    "checkpoints.last": ("a file name", (str,)),
}
# written once the first epoch is committed (or at the end of a run)
OPTIONAL_RECORD_KEYS: dict[str, tuple[str, tuple[type, ...]]] = {
    "best": ("a mapping", (dict,)),
    "best.epoch": ("an integer", (int,)),
    "best.val_accuracy": ("a number", _NUMBER),
    "best.val_loss": ("a number", _NUMBER),
    "epochs_done": ("an integer", (int,)),
}


def default_run_dir(spec_name: str, backend: str) -> Path:
    """``runs/<spec>-<backend>-<YYYYmmdd-HHMMSS>`` under the current folder.

    A spec name longer than NAME_LENGTH is cut, and ends in 8 hex digits of its
    SHA-256 so that two long names with the same beginning still differ: the
    folder's name stays far below the 255 bytes file systems allow.
    """
    if len(spec_name) > NAME_LENGTH:
        digest = hashlib.sha256(spec_name.encode()).hexdigest()[:8]
        spec_name = f"{spec_name[: NAME_LENGTH - 9]}-{digest}"
    return Path("runs") / f"{spec_name}-{backend}-{time.strftime('%Y%m%d-%H%M%S')}"


def _kind(value: Any) -> str:
    """What a JSON value is, for a message: 'an integer (3)'."""
    kinds = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
        type(None): "null",
    }
    shown = json.dumps(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return kinds.get(type(value), type(value).__name__) + ("" if value is None else f" ({shown})")


def check_record(record: Any, where: Union[str, Path]) -> dict[str, Any]:
    """``record`` when it has every key of RECORD_KEYS (and OPTIONAL_RECORD_KEYS present) of its type;
    DataError naming the key otherwise."""
    what = f"{where}: not a vggspec run record (written by vggspec finetune)"
    if not isinstance(record, dict):
        raise DataError(f"{what}: expected a JSON object, received {_kind(record)}")
    for keys, required in ((RECORD_KEYS, True), (OPTIONAL_RECORD_KEYS, False)):
        for key, (expected, types) in keys.items():
            parent, _, name = key.rpartition(".")
            holder = record.get(parent) if parent else record
            if not isinstance(holder, dict) or name not in holder:
                if required:
                    raise DataError(f'{what}: expected the key "{key}", received a record without it')
                continue
            value = holder[name]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise DataError(f'{what}: expected "{key}" to be {expected}, received {_kind(value)}')
    if not all(isinstance(name, str) for name in record["classes"]):
        raise DataError(f'{what}: expected "classes" to be a list of class names, received {_kind(record["classes"])}')
    return record


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
        """run.json as a dict, checked (:func:`check_record`); DataError when the folder holds no run."""
        if not self.run_json.is_file():
            received = (
                "a folder without it"
                if self.path.is_dir()
                else "a file"
                if self.path.exists()
                else "a path that does not exist"
            )
            raise DataError(
                f"{self.path}: expected a run folder with {RUN_JSON} (written by vggspec finetune), received {received}"
            )
        try:
            record = json.loads(self.run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DataError(
                f"{self.run_json}: expected a JSON run record, received an unreadable file ({error})"
            ) from None
        return check_record(record, self.run_json)

    def check_creatable(self) -> None:
        """DataError when the folder cannot be made because a file stands where a folder must be (creates nothing)."""
        blocking = next((parent for parent in self.path.absolute().parents if parent.exists()), None)
        if blocking is not None and not blocking.is_dir():
            raise DataError(
                f"{self.path}: expected a run folder that can be created, received a path under the file {blocking}"
            )

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """A failed write into the folder (a place that cannot be written, a full disk) as one DataError."""
        try:
            yield
        except OSError as error:
            raise DataError(
                f"{self.path}: expected a run folder that can be created and written, received one "
                f"that cannot ({error.strerror or error})"
            ) from None

    def create(self) -> None:
        """Make the folder (and the folders above it)."""
        self.check_creatable()
        with self.writing():
            self.path.mkdir(parents=True, exist_ok=True)

    def write_record(self, record: dict[str, Any]) -> None:
        with self.writing(), atomic_path(self.run_json) as temporary:
            temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    def read_metrics(self) -> list[dict[str, float]]:
        """The rows of metrics.csv (epoch as int, the rest as float); [] when there is none yet."""
        if not self.metrics_csv.is_file():
            return []
        with open(self.metrics_csv, newline="", encoding="utf-8") as file:
            return [
                {column: (int(row[column]) if column == "epoch" else float(row[column])) for column in METRIC_COLUMNS}
                for row in csv.DictReader(file)
            ]

    def write_metrics(self, rows: list[dict[str, float]]) -> None:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row[column] for column in METRIC_COLUMNS})
        with self.writing(), atomic_path(self.metrics_csv) as temporary:
            temporary.write_text(text.getvalue(), encoding="utf-8")
