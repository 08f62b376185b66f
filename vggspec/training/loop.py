"""The epoch loop of a training run, the same for every backend and every process.

An epoch is committed by writing ``last<suffix>``, which holds the weights, the
optimizer state and the loop's state (the epoch, its metrics row, the best
epoch so far); ``best``, ``metrics.csv``, the plot and run.json follow it.
Resuming restores ``last`` and rebuilds metrics.csv from it, so a run stopped
at any moment (Ctrl-C, a killed process) neither loses nor repeats a finished
epoch. In a distributed run every rank trains and validates its share, the
metrics are summed over the ranks, and rank 0 alone writes (the others save their
checkpoint aside when saving is a collective of the framework's: the trainer's ``saves_on_every_rank``).

With cached features (``Session.features``) the frozen layers' outputs are read from
the cache, or computed into it, after the checkpoint is restored (its frozen layers are
the ones that count) and before the first epoch; the epochs then run on them.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from vggspec.backends import Backend
from vggspec.errors import DataError, ResumeError, VggspecError
from vggspec.planner.lower import Plan
from vggspec.training.distributed import parameters_checksum
from vggspec.training.feature_cache import FeatureCache, cached_batches, check_trainer
from vggspec.training.interrupt import StopOnInterrupt
from vggspec.training.metrics import loss_and_correct, output_activation
from vggspec.training.plot import plot_available
from vggspec.training.progress import EpochBar
from vggspec.training.protocol import BatchSource, TrainConfig, Trainer
from vggspec.training.run_folder import Best, RunFolder, RunRecord
from vggspec.training.settings import check_finished_epochs


def _gathered_sum(trainer: Trainer, values: list[float]) -> np.ndarray:
    return np.asarray(trainer.all_gather(np.asarray(values, dtype=np.float64)), dtype=np.float64).sum(axis=0)


def validate(trainer: Trainer, data: BatchSource, activation: Optional[str]) -> tuple[float, float]:
    """(mean loss, accuracy) over the whole split, summed over the ranks' shares."""
    scores = trainer.predict(data)
    loss, correct = loss_and_correct(scores, data.labels, activation)
    total_loss, total_correct, count = _gathered_sum(trainer, [loss, correct, len(data.labels)])
    return total_loss / max(count, 1), total_correct / max(count, 1)


@dataclass
class Session:
    """Everything one process needs to run the epochs."""

    run: RunFolder
    record: RunRecord  # what run.json holds (rank 0 writes it)
    backend: Backend
    model: Any
    plan: Plan
    trainer: Trainer
    train: BatchSource  # images; after the cache is opened, their features
    val: BatchSource
    config: TrainConfig
    rank: int
    world_size: int
    features: Optional[FeatureCache] = None  # with cache_features: the cache the epochs train on

    @property
    def writer(self) -> bool:
        return self.rank == 0

    def checkpoint(self, which: str) -> Path:
        return self.run.checkpoint(which, self.trainer.weights_file_suffix())

    def say(self, line: str) -> None:
        """A result line (rank 0 only), on stdout; progress bars and warnings go to stderr."""
        if self.writer:
            print(line, flush=True)

    def warn(self, line: str) -> None:
        if self.writer:
            print(f"warning: {line}", file=sys.stderr, flush=True)

    def save_aside(self, state: dict[str, Any]) -> None:
        """What a rank other than the writer does when the trainer's saving is a collective (its
        ``saves_on_every_rank``, e.g. Keras under a tf.distribute strategy): save the checkpoint the writer
        saves, in a temporary folder deleted at once."""
        with tempfile.TemporaryDirectory(prefix=f"vggspec-rank{self.rank}-") as folder:
            self.trainer.save_checkpoint(str(Path(folder, self.checkpoint("last").name)), state)

    def write_best(self) -> None:
        """The best epoch's weights, saying what they are: the plan, the preprocessing they were trained with,
        the class names in label order, the run that made them (:mod:`vggspec.weights.meta`)."""
        from vggspec.weights.formats import write_bundle
        from vggspec.weights.meta import WeightsMeta

        meta = WeightsMeta.for_plan(
            self.plan,
            preprocessing=self.plan.preprocessing,
            labels=tuple(self.record.classes),
            source=Path(self.record.weights).name if self.record.weights else "",
            origin=f"vggspec finetune, run folder {self.run.path.resolve()}",
        )
        write_bundle(self.checkpoint("best"), self.backend.get_weights(self.model, self.plan), self.plan, meta=meta)

    def write_progress(self, rows: list[dict[str, float]], best: Best) -> None:
        """metrics.csv, the plot and run.json's ``best`` after a committed epoch."""
        from vggspec.training.plot import write_curves

        self.run.write_metrics(rows)
        if plot_available():
            write_curves(self.run.curves_png, rows, title=f"{self.plan.name} ({self.backend.name})")
        self.record = dataclasses.replace(self.record, best=best, epochs_done=len(rows))
        self.run.write_record(self.record)


def _checkpoint_state(session: Session, last: Path) -> dict[str, Any]:
    """The loop's state in the run's last checkpoint, restored into the trainer; ResumeError naming the file
    when it cannot be read (empty, truncated, written by something else, a pickle that is not data)."""
    try:
        state = session.trainer.load_checkpoint(str(last))
        if not isinstance(state, dict) or not {"epoch", "row", "best"} <= set(state):
            raise ValueError("it holds no state of vggspec's epoch loop")
        int(state["epoch"])
        Best(**state["best"])
    except (VggspecError, KeyboardInterrupt):
        raise
    except Exception as error:  # each framework has its own errors for a damaged file
        reason = " ".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", str(error)).split())[:200] or type(error).__name__
        raise ResumeError(
            f"{last}: expected the checkpoint of the run's last finished epoch (written by vggspec finetune), "
            f"received a file that cannot be read ({reason}); the run cannot resume from it: start a new run "
            f"from {session.checkpoint('best').name} with it as the weights",
            setting="resume",
        ) from None
    return state


def _restore(session: Session) -> tuple[list[dict[str, float]], Best]:
    """Rows and best epoch after ``last`` (its state is the truth; metrics.csv may lag one epoch)."""
    last = session.checkpoint("last")
    if not last.is_file():
        return [], Best()
    state = _checkpoint_state(session, last)
    epoch = int(state["epoch"])
    rows = [row for row in session.run.read_metrics() if row["epoch"] < epoch] + [state["row"]]
    if [row["epoch"] for row in rows] != list(range(1, epoch + 1)):
        raise DataError(
            f"{session.run.metrics_csv}: expected one row per epoch 1..{epoch - 1} before the "
            f"checkpoint's epoch {epoch}, received epochs {[row['epoch'] for row in rows[:-1]]}"
        )
    check_finished_epochs(session.config.epochs, epoch, session.run.path)
    best = Best(**state["best"])
    if session.writer:
        if best.epoch == epoch:  # the process may have stopped before it wrote best
            session.write_best()
        session.write_progress(rows, best)
    session.say(f"resuming {session.run.path} after epoch {epoch} of {session.config.epochs}")
    return rows, best


def run_epochs(session: Session, resume: bool, stop: StopOnInterrupt) -> tuple[list[dict[str, float]], Best]:
    """Train from the first unfinished epoch to ``config.epochs``, committing each one."""
    rows, best = _restore(session) if resume else ([], Best())
    if session.features is not None and len(rows) < session.config.epochs:
        trainer = check_trainer(session.trainer, session.backend.name)
        session.train, session.val = cached_batches(
            session.features, trainer, session.config.batch_size, session.config.seed, session.say, stop.check
        )
    activation = output_activation(session.plan)
    epochs = session.config.epochs
    for epoch in range(len(rows) + 1, epochs + 1):
        stop.check()
        started = time.monotonic()
        session.train.set_epoch(epoch)
        with EpochBar(len(session.train), epoch, epochs, enabled=session.writer, check=stop.check) as bar:
            result = session.trainer.train_epoch(session.train, epoch, bar)
        count = result["count"]
        loss_sum, accuracy_sum, total = _gathered_sum(
            session.trainer, [result["loss"] * count, result["accuracy"] * count, count]
        )
        val_loss, val_accuracy = validate(session.trainer, session.val, activation)
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / total,
            "train_accuracy": accuracy_sum / total,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "seconds": round(time.monotonic() - started, 3),
        }
        rows.append(row)
        improved = best.improved_by(row)
        if improved:
            best = Best(epoch, val_accuracy, val_loss)
        state = {"epoch": epoch, "row": row, "best": dataclasses.asdict(best)}
        if session.writer:
            with session.run.writing():
                session.trainer.save_checkpoint(str(session.checkpoint("last")), state)
                if improved:
                    session.write_best()
                session.write_progress(rows, best)
        elif getattr(session.trainer, "saves_on_every_rank", False):
            session.save_aside(state)
        session.say(
            f"epoch {epoch}/{epochs}: loss {row['train_loss']:.4f} accuracy {row['train_accuracy']:.4f} "
            f"val_loss {val_loss:.4f} val_accuracy {val_accuracy:.4f} ({row['seconds']:.1f} s)"
            + ("  best" if improved else "")
        )
    return rows, best


def ranks_agree(session: Session) -> bool:
    """All ranks hold the same parameters (an all-gathered checksum of each rank's weights)."""
    checksum = parameters_checksum(session.backend.get_weights(session.model, session.plan))
    gathered = np.asarray(session.trainer.all_gather(checksum))
    return bool((gathered == gathered[0]).all())
