"""Training with Keras: the optimisation step and the checkpoint of vggspec's Trainer protocol.

The core's batches reach ``model.fit`` / ``model.predict`` through a
``keras.utils.PyDataset`` (``workers`` threads prepare batches ahead). The
model is compiled with Adam or SGD (momentum), sparse categorical
cross-entropy (on the softmax outputs, or ``from_logits`` when the spec has no
classifier activation) and sparse categorical accuracy; frozen layers have
``trainable = False`` (a frozen BatchNormalization then runs in inference mode).

A checkpoint is Keras 3's ``save_weights`` file (``.weights.h5``: the layers
and the optimizer's variables) with the loop's state as the JSON root
attribute ``vggspec_state``; vggspec reads its weights like any ``.weights.h5``.
Single process only: a distributed run needs the torch backend.
"""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np

from vggspec.errors import BackendError
from vggspec.fileio import atomic_path
from vggspec.planner.lower import Plan
from vggspec.training.distributed import process_rank
from vggspec.training.protocol import BatchSource, Progress, TrainConfig

SUFFIX = ".weights.h5"
STATE_ATTRIBUTE = "vggspec_state"


class Batches(keras.utils.PyDataset):
    """The core's batches as a PyDataset: item ``i`` is (images NHWC float32, labels int64)."""

    def __init__(self, source: BatchSource, workers: int):
        super().__init__(workers=max(1, workers), use_multiprocessing=False)
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.source.batch(index)


class ProgressCallback(keras.callbacks.Callback):
    """Feeds the core's progress bar; Keras' logs hold the epoch's running means."""

    def __init__(self, progress: Progress):
        super().__init__()
        self.progress = progress

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        logs = logs or {}
        self.progress.step(float(logs.get("loss", np.nan)), float(logs.get("accuracy", np.nan)))


def make_optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=config.learning_rate)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=config.learning_rate, momentum=config.momentum)
    raise BackendError(f"optimizer: expected adam or sgd, received {config.optimizer!r}", setting="optimizer")


class KerasTrainer:
    """vggspec's :class:`~vggspec.training.protocol.Trainer` for a functional ``keras.Model``."""

    def __init__(self, model: keras.Model, plan: Plan, config: TrainConfig):
        _, world_size = process_rank()
        if world_size > 1:
            raise BackendError(
                f"backend: expected torch for distributed training (WORLD_SIZE={world_size}), "
                "received keras (the keras backend trains in one process)",
                setting="backend",
            )
        self.model = model
        self.config = config
        for layer in model.layers:
            if layer.name in config.freeze:
                layer.trainable = False
        classifier = plan.classifier
        if classifier is None:
            raise BackendError(f"plan {plan.name}: expected a classifier (include_top: true) to train, received none")
        from_logits = classifier.activation is None
        model.compile(
            optimizer=make_optimizer(config),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )

    def _seed_dropout(self, epoch: int) -> None:
        """Restart each dropout layer's seed generator from (seed, epoch): a resumed run draws the same masks."""
        for index, layer in enumerate(self.model.layers):
            generator = getattr(layer, "seed_generator", None)
            if isinstance(generator, keras.random.SeedGenerator):
                value = hash((self.config.seed, epoch, index)) % 2**31
                generator.state.assign(np.array([value, 0], dtype=generator.state.dtype))

    def train_epoch(self, data: BatchSource, epoch: int, progress: Progress) -> dict[str, float]:
        self._seed_dropout(epoch)
        # shuffle=False: the core has shuffled the images; Keras would also reorder the batches of a PyDataset
        history = self.model.fit(
            Batches(data, self.config.workers),
            initial_epoch=epoch - 1,
            epochs=epoch,
            shuffle=False,
            verbose=0,
            callbacks=[ProgressCallback(progress)],
        )
        return {
            "loss": float(history.history["loss"][-1]),
            "accuracy": float(history.history["accuracy"][-1]),
            "count": len(data.labels),
        }

    def predict(self, data: BatchSource) -> np.ndarray:
        if len(data) == 0:
            return np.zeros((0, *self.model.outputs[0].shape[1:]), dtype=np.float32)
        return np.asarray(self.model.predict(Batches(data, self.config.workers), verbose=0), dtype=np.float32)

    def save_checkpoint(self, path: str, state: dict[str, Any]) -> None:
        import h5py

        with atomic_path(path, suffix=SUFFIX) as temporary:
            self.model.save_weights(str(temporary))
            with h5py.File(temporary, "a") as file:
                file.attrs[STATE_ATTRIBUTE] = json.dumps(state)

    def load_checkpoint(self, path: str) -> dict[str, Any]:
        import h5py

        optimizer = self.model.optimizer
        if not optimizer.built:  # so that load_weights restores its variables too
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(path)
        with h5py.File(path, "r") as file:
            return json.loads(file.attrs[STATE_ATTRIBUTE])

    def weights_file_suffix(self) -> str:
        return SUFFIX

    def all_gather(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values)[None]

    def close(self) -> None:
        """Nothing to release: PyDataset workers stop with each fit/predict."""


def make_trainer(model: keras.Model, plan: Plan, config: TrainConfig) -> KerasTrainer:
    return KerasTrainer(model, plan, config)
