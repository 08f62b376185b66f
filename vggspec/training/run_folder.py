"""A run folder: what a finetune run writes, and what evaluating or resuming the run reads.

RUN_DIR/
    run.json          a :class:`RunRecord`: the spec mapping (head for the data's classes), backend, config,
                      the backend's own settings, class names, data, weights, the best epoch and, after a
                      distributed run, ``ranks_agree``; headed by "format": "vggspec-run" and its "version"
    metrics.csv       one row per finished epoch: epoch, train_loss, train_accuracy, val_loss,
                      val_accuracy, seconds (losses: mean cross-entropy in nats; accuracies: fractions)
    curves.png        loss and accuracy per epoch, training and validation
    last<suffix>      the backend's checkpoint after the latest epoch: weights, optimizer state and the
                      loop's state (epoch, that epoch's metrics row, the best epoch so far)
    best<suffix>      the weights of the epoch with the best validation accuracy, in the backend's
                      weight format (read as the ``weights`` of predict or of another finetune run)
    .lock             locked by the one run that uses the folder (:mod:`vggspec.training.run_lock`)

Every file is written atomically (:func:`vggspec.fileio.atomic_path`). One run at a time: a second run
(new or resumed) given the folder of a running one is refused, not mixed in with it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, Optional, Union

from vggspec.errors import DataError
from vggspec.fileio import atomic_path
from vggspec.training.protocol import TrainConfig
from vggspec.training.record_json import from_json_fields, json_kind

RUN_JSON = "run.json"
METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"
METRIC_COLUMNS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")
NAME_LENGTH = 64  # at most this much of a spec's name in a default run folder's name (file systems allow 255 bytes)
RECORD_FORMAT = "vggspec-run"  # run.json's "format"


@dataclass(frozen=True)
class Best:
    """The epoch with the highest validation accuracy (ties: the lower validation loss); epoch 0: none yet."""

    epoch: int = 0
    val_accuracy: float = -1.0  # fraction
    val_loss: float = float("inf")  # mean cross-entropy, nats

    def improved_by(self, row: Mapping[str, float]) -> bool:
        return row["val_accuracy"] > self.val_accuracy or (
            row["val_accuracy"] == self.val_accuracy and row["val_loss"] < self.val_loss
        )


@dataclass(frozen=True)
class Checkpoints:
    """The file names, in the run folder, of the checkpoints (with the backend's suffix)."""

    best: str = field(metadata={"json": "a file name"})
    last: str = field(metadata={"json": "a file name"})


CHECKPOINTS = tuple(item.name for item in dataclasses.fields(Checkpoints))  # ("best", "last")


@dataclass(frozen=True)
class RunRecord:
    """run.json: what a run was asked for and how far it got; read by a resumed run and by evaluate.

    Written as a JSON object headed by ``"format": "vggspec-run"`` and ``"version":
    format_version``, then these fields (nested dataclasses as objects, tuples as lists).
    A reader takes its own version only: a change of the fields is a new version.
    """

    format_version: ClassVar[int] = 2  # 2: the backend's own settings (torch's device, ...) left config

    spec: Mapping[str, Any]  # the trained spec as spec_to_mapping writes it (its head for the data's classes)
    backend: str
    classes: tuple[str, ...] = field(metadata={"json": "a list of class names"})  # label order
    data: str  # the data folder the run started with, absolute
    weights: Optional[str]  # the weight file it started from; None: from scratch
    freeze: str  # the layer frozen with every layer before it, or "none"
    config: TrainConfig
    backend_settings: Mapping[str, Any]  # every setting of the backend's own the run used (none for keras)
    train_images: int
    val_images: int
    world_size: int  # processes of the latest session
    checkpoints: Checkpoints
    best: Optional[Best] = None  # None until an epoch is finished
    epochs_done: int = 0
    ranks_agree: Optional[bool] = None  # after a distributed run: all ranks ended with equal parameters

    def to_json(self) -> dict[str, Any]:
        """The JSON object of run.json."""
        return {"format": RECORD_FORMAT, "version": self.format_version, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, value: Any, where: Union[str, Path]) -> RunRecord:
        """The record in ``value`` (run.json's JSON); DataError naming ``where`` and the key when it is not one
        of this version, or was written by an older or newer vggspec."""
        what = not_a_record(where)
        if not isinstance(value, dict):
            raise DataError(f"{what}: expected a JSON object, received {json_kind(value)}")
        if "format" not in value and "version" not in value:
            raise DataError(
                f"{where}: written by an older vggspec (no version); this vggspec reads version "
                f"{cls.format_version}: the run must be started again (in a new run folder)"
            )
        for key in ("format", "version"):
            if key not in value:
                raise DataError(f'{what}: expected the key "{key}", received a record without it')
        if value["format"] != RECORD_FORMAT:
            raise DataError(f'{what}: expected "format" to be "{RECORD_FORMAT}", received {json_kind(value["format"])}')
        if type(value["version"]) is not int:
            raise DataError(f'{what}: expected "version" to be an integer, received {json_kind(value["version"])}')
        version = value["version"]
        if version > cls.format_version:
            raise DataError(
                f"{where}: written by a newer vggspec (version {version}); this vggspec reads version "
                f"{cls.format_version}"
            )
        if version < cls.format_version:
            raise DataError(
                f"{where}: written by an older vggspec (version {version}); this vggspec reads version "
                f"{cls.format_version}: the run must be started again (in a new run folder)"
            )
        record = from_json_fields(cls, value, "", what)
        assert isinstance(record, cls)
        return record


def not_a_record(where: Union[str, Path]) -> str:
    """How a refusal of run.json's content begins."""
    return f"{where}: not a vggspec run record (written by vggspec finetune)"


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

    def read_record(self) -> RunRecord:
        """run.json's :class:`RunRecord`; DataError when the folder holds no run, or one this vggspec cannot read."""
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
        return RunRecord.from_json(record, self.run_json)

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

    def write_record(self, record: RunRecord) -> None:
        with self.writing(), atomic_path(self.run_json) as temporary:
            temporary.write_text(json.dumps(record.to_json(), indent=2) + "\n", encoding="utf-8")

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
