"""Training with Keras: the optimisation step and the checkpoint of vggspec's Trainer protocol.

The core's image batches reach ``model.fit`` / ``model.predict`` through a
``keras.utils.PyDataset`` (``workers`` threads prepare batches ahead). Cached
features are slices of a memory-mapped array, ready at once: they go to
``train_on_batch`` / ``predict_on_batch`` a batch at a time, without the data
pipeline and threads that ``fit`` and ``predict`` set up on every call (a large
part of an epoch on cached features, whose steps are short). The
model is compiled with Adam or SGD (momentum), sparse categorical
cross-entropy (on the softmax outputs, or ``from_logits`` when the spec has no
classifier activation) and sparse categorical accuracy; frozen layers have
``trainable = False`` (a frozen BatchNormalization then runs in inference mode).

A checkpoint is Keras 3's ``save_weights`` file (``.weights.h5``: the layers
and the optimizer's variables) with the loop's state as the JSON root
attribute ``vggspec_state`` (CHECKPOINT_STATE); vggspec reads its weights like any ``.weights.h5``.

In a run of several processes (:mod:`vggspec_keras.distributed`: ``TF_CONFIG`` on TensorFlow, the
``KERAS_DISTRIBUTION_*`` variables on JAX) each process trains its shard of every batch with
``train_on_batch`` (its images read ahead by ``workers`` threads) and validates its share with the model
called directly: both stay in the process, where ``fit`` and ``predict`` would shard the data again and
gather the outputs of all.

With ``config.cache_features`` two more functional models share the model's layers:
the frozen part (the input to the last frozen layer: ``frozen_features``) and the
trained part (an input of that layer's output shape, then the layers after it), which
``train_on_batch`` and ``predict_on_batch`` run on the cached features. The trained
part is compiled with the model's own optimizer, whose variables are then those of the
model's trainable weights, in the same order: checkpoints are the whole model's, as
without the cache.
It is compiled as the model is (XLA left to Keras' "auto"): under XLA the dropout layers
draw other masks, and the cached run would no longer train as the uncached one does.
"""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np

from vggspec.fileio import atomic_path
from vggspec.planner.lower import Plan
from vggspec.training.batches import prefetched
from vggspec.training.metrics import RunningMeans, output_activation
from vggspec.training.protocol import CHECKPOINT_STATE, BatchSource, Progress, TrainConfig
from vggspec.training.seeds import dropout_seed
from vggspec_keras import distributed

SUFFIX = ".weights.h5"
# the optimizer of each of vggspec's names (TrainConfig.optimizer); they take TrainConfig.optimizer_options()
OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}


def loading_threads(workers: int) -> int:
    """The threads that read a PyDataset: ``workers`` on TensorFlow, at most one on Keras' other frameworks.

    On JAX and torch, Keras 3.15's ``fit`` given a PyDataset read by two threads or more trains its batches
    rotated (1, 2, ..., 0: the first comes last), so the same seed no longer gives the same run as on
    TensorFlow or with one thread (tests/backends/test_keras_on_jax.py compares cached and uncached runs)."""
    return workers if keras.backend.backend() == "tensorflow" else min(workers, 1)


class Batches(keras.utils.PyDataset):
    """The core's batches as a PyDataset: item ``i`` is (images NHWC float32, labels int64)."""

    def __init__(self, source: BatchSource, workers: int):
        super().__init__(workers=max(1, loading_threads(workers)), use_multiprocessing=False)
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
    return OPTIMIZERS[config.optimizer](learning_rate=config.learning_rate, **config.optimizer_options())


def compile_updates(optimizer: keras.optimizers.Optimizer, variables: list[Any]) -> None:
    """On TensorFlow, make ``optimizer``'s update of ``variables`` one XLA-compiled function, called from the
    train step that Keras traces without XLA (the forward pass, dropout masks included, stays as it was).

    Keras' TensorFlow optimizers update op by op: Adam reads and writes VGG16's 119M head parameters and
    their moments about ten times a step, where XLA fuses it into one pass, which on a CPU is most of a step
    on cached features. Other Keras frameworks keep their own update."""
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    optimizer.build(variables)
    update = tf.function(lambda gradients: optimizer.apply(gradients, variables), jit_compile=True)

    def apply_gradients(pairs: Any) -> Any:
        gradients = [gradient for gradient, _ in pairs]
        update(gradients)
        return optimizer.iterations

    optimizer.apply_gradients = apply_gradients  # what Keras' train step calls


class KerasTrainer:
    """vggspec's :class:`~vggspec.training.protocol.Trainer` for a functional ``keras.Model`` (and
    :class:`~vggspec.training.protocol.TrainsOnFeatures`)."""

    def __init__(self, model: keras.Model, plan: Plan, config: TrainConfig):
        """``config``: the settings every backend shares; the keras backend declares none of its own."""
        self.distributed = distributed.joined()[1] > 1
        # Keras' save_weights runs a collective in a distributed run: every process saves (vggspec.training.loop)
        self.saves_on_every_rank = self.distributed
        self.model = model
        self.config = config
        for layer in model.layers:
            if layer.name in config.freeze:
                layer.trainable = False
        from_logits = output_activation(plan) is None
        optimizer = make_optimizer(config)

        def compile_model(trained: keras.Model) -> None:
            trained.compile(
                optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            )

        compile_model(model)
        self.trained = model  # what the epochs train and predict: the model, or its part after the frozen layers
        self.frozen = model
        if config.cache_features:
            last = config.freeze[-1]
            self.frozen = keras.Model(model.inputs, model.get_layer(last).output, name=f"{plan.name}_to_{last}")
            names = [layer.name for layer in plan.layers]
            inputs = keras.Input(shape=plan.layer(last).output_shape, name=f"{last}_output")
            outputs = inputs
            for name in names[names.index(last) + 1 :]:
                outputs = model.get_layer(name)(outputs)
            self.trained = keras.Model(inputs, outputs, name=f"{plan.name}_after_{last}")
            compile_model(self.trained)
        if self.distributed:
            distributed.vector_logs(self.trained)
        elif not distributed.mirrored():  # a strategy's optimizer sums the devices' gradients in its own update
            compile_updates(optimizer, list(self.trained.trainable_variables))

    def _seed_dropout(self, epoch: int) -> None:
        """Restart each dropout layer's seed generator from (seed, epoch): a resumed run draws the same masks."""
        for index, layer in enumerate(self.model.layers):
            generator = getattr(layer, "seed_generator", None)
            if isinstance(generator, keras.random.SeedGenerator):
                value = dropout_seed(self.config.seed, epoch, index, bits=31)
                generator.state.assign(np.array([value, 0], dtype=generator.state.dtype))

    def train_epoch(self, data: BatchSource, epoch: int, progress: Progress) -> dict[str, float]:
        self._seed_dropout(epoch)
        if self.config.cache_features:  # the batches are cached features, ready at once
            return self._train_on_batches(data, progress, ahead=0)
        if self.distributed:
            with distributed.peers_lost():
                return self._train_on_batches(data, progress, ahead=loading_threads(self.config.workers))
        # shuffle=False: the core has shuffled the images; Keras would also reorder the batches of a PyDataset
        history = self.trained.fit(
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
        if self.config.cache_features:  # the batches are cached features
            scores = [self.trained.predict_on_batch(data.batch(index)[0]) for index in range(len(data))]
            return np.concatenate(scores).astype(np.float32, copy=False)
        if self.distributed:  # this process' share, in this process
            ahead = loading_threads(self.config.workers)
            scores = [np.asarray(self.trained(images, training=False)) for images, _ in prefetched(data, ahead)]
            return np.concatenate(scores).astype(np.float32, copy=False)
        return np.asarray(self.trained.predict(Batches(data, self.config.workers), verbose=0), dtype=np.float32)

    def _train_on_batches(self, data: BatchSource, progress: Progress, ahead: int) -> dict[str, float]:
        """One epoch of ``train_on_batch`` (the next ``ahead`` batches read in threads), with the means ``fit``
        would log: the loss weighted by batch size, the accuracy over all images."""
        means = RunningMeans()
        for features, labels in prefetched(data, ahead):
            logs = self.trained.train_on_batch(features, labels, return_dict=True)
            means.add(float(logs["loss"]), float(logs["accuracy"]) * len(labels), len(labels))
            progress.step(means.loss, means.accuracy)
        return means.result()

    def frozen_features(self, images: np.ndarray) -> np.ndarray:
        """The last frozen layer's outputs for NHWC ``images`` (inference mode), float32, the plan's layout."""
        return np.asarray(self.frozen.predict_on_batch(np.asarray(images, dtype=np.float32)), dtype=np.float32)

    def save_checkpoint(self, path: str, state: dict[str, Any]) -> None:
        import h5py

        with distributed.peers_lost(), atomic_path(path, suffix=SUFFIX) as temporary:
            self.model.save_weights(str(temporary))
            with h5py.File(temporary, "a") as file:
                file.attrs[CHECKPOINT_STATE] = json.dumps(state)

    def load_checkpoint(self, path: str) -> dict[str, Any]:
        import h5py

        optimizer = self.model.optimizer
        if not optimizer.built:  # so that load_weights restores its variables too
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(path)
        with h5py.File(path, "r") as file:
            return json.loads(file.attrs[CHECKPOINT_STATE])

    def weights_file_suffix(self) -> str:
        return SUFFIX

    def all_gather(self, values: np.ndarray) -> np.ndarray:
        return distributed.all_gather(values) if self.distributed else np.asarray(values)[None]

    def close(self) -> None:
        """Nothing to release: PyDataset workers stop with each fit/predict."""


def make_trainer(model: keras.Model, plan: Plan, config: TrainConfig) -> KerasTrainer:
    return KerasTrainer(model, plan, config)
