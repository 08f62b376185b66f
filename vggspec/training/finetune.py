"""Fine-tune (or train from scratch) a spec on class folders, with any backend that can train.

The flow: read the train/val class folders (two classes at least); give the
spec a head for their classes (:mod:`vggspec.training.head`); decode every image once, so that a broken file
is named before anything is written rather than half-way through an epoch
(:func:`vggspec.training.folders.check_images`); build the model; load the weights that fit (every layer but a head of
another size); freeze the layers up to the ``freeze`` setting; then, epoch after epoch,
train, validate on the whole val split and commit the epoch to the run folder
(:mod:`vggspec.training.run_folder`). With ``cache_features`` the frozen layers' outputs are
computed once (or found in the cache) before the first epoch, and the epochs train the rest
on them (:mod:`vggspec.training.feature_cache`).

The epochs themselves run in :mod:`vggspec.training.loop`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from vggspec.backends import Backend, get_backend
from vggspec.errors import BackendError, DataError, VggspecError
from vggspec.planner.lower import Plan, lower_to_plan
from vggspec.spec.load import spec_to_mapping
from vggspec.spec.model import Spec
from vggspec.training.backend_settings import backend_settings, check_recorded, recorded_settings
from vggspec.training.batches import ImageBatches
from vggspec.training.distributed import process_rank
from vggspec.training.feature_cache import check_cacheable, check_trainer, plan_feature_cache
from vggspec.training.folders import ImageSet, check_images, read_split
from vggspec.training.head import default_freeze, head_spec, load_pretrained
from vggspec.training.interrupt import StopOnInterrupt
from vggspec.training.loop import Session, ranks_agree, run_epochs
from vggspec.training.plot import plot_available
from vggspec.training.protocol import TrainConfig, Trainer, TrainingBackend, freeze_names
from vggspec.training.run_folder import Checkpoints, RunFolder, RunRecord
from vggspec.training.run_lock import check_empty, check_free, check_new_run_folder, owned
from vggspec.training.settings import RunSettings, check_class_folders, recorded_run, resumed_settings


def training_backend(backend: Backend) -> TrainingBackend:
    """``backend`` when it can train (methods seed and trainer); BackendError naming what it lacks."""
    if isinstance(backend, TrainingBackend):
        return backend
    missing = [name for name in ("seed", "trainer") if not callable(getattr(backend, name, None))]
    raise BackendError(
        f"backend {backend.name!r}: expected a backend that can train (methods seed and "
        f"trainer), received one without {' and '.join(missing)}"
    )


def prepare_data(
    data_dir: Union[str, Path], classes: Optional[int], resumed: Optional[RunRecord] = None
) -> tuple[ImageSet, ImageSet]:
    """The train and val splits (the same class folders, at least two, those of the ``resumed`` run),
    checked against ``classes``."""
    train = read_split(data_dir, "train")
    if len(train.class_names) < 2:
        raise DataError(
            f"{train.root}: expected at least 2 class folders (a classifier tells classes apart), "
            f"received 1: {train.class_names[0]}"
        )
    if resumed is not None:
        check_class_folders(resumed, train.root, train.class_names)
    val = read_split(data_dir, "val", train.class_names)
    if classes is not None and classes != len(train.class_names):
        raise DataError(
            f"classes: expected the number of class folders in {train.root} "
            f"({len(train.class_names)}: {', '.join(train.class_names)}), received {classes}",
            setting="classes",
        )
    return train, val


def finetune(
    spec: Spec,
    data_dir: Union[str, Path],
    run_dir: Union[str, Path],
    settings: Optional[RunSettings] = None,
) -> RunRecord:
    """Train ``spec`` on ``data_dir``/{train,val} in a new run folder ``run_dir`` (new or empty);
    returns the final run record. ``settings``: None takes every default (:class:`RunSettings`)."""
    run = RunFolder(run_dir)
    if process_rank()[0] == 0:
        check_new_run_folder(run)
    return _train(spec, data_dir, run, settings or RunSettings(), None)


def resume_finetune(
    run_dir: Union[str, Path],
    data_dir: Union[str, Path],
    spec: Optional[Spec] = None,
    settings: Optional[Mapping[str, Any]] = None,
) -> RunRecord:
    """Continue the run in ``run_dir`` after its last finished epoch, on ``data_dir`` (the same class folders).

    The run keeps its recorded settings; ``settings`` (names of :data:`~vggspec.training.settings.SETTINGS` or
    of the backend's own settings, a value of None is not given) may change those of ``CHANGEABLE_ON_RESUME``
    (e.g. ``{"epochs": 20}`` goes on to epoch 20) and the backend's own (``{"device": "cpu"}``), and any other
    must equal the recorded one. ``spec`` (None: the recorded one) must be the
    run's spec; the number of classes aside. Refusals are :class:`~vggspec.errors.ResumeError`.
    """
    run = RunFolder(run_dir)
    record = recorded_run(run)
    if process_rank()[0] == 0:
        check_free(run)
    spec, resumed = resumed_settings(record, run.run_json, settings or {}, spec)
    return _train(spec, data_dir, run, resumed, record)


@dataclass(frozen=True)
class _Run:
    """A run being started or resumed: everything decided before a model is built or a file written."""

    folder: RunFolder
    data_dir: Union[str, Path]
    settings: RunSettings
    resumed: Optional[RunRecord]  # None: a new run
    backend: Backend
    trains: TrainingBackend  # the backend, as one that can train
    own_settings: Any  # an instance of the backend's own settings; None when it has none
    spec: Spec  # with the head for the data's classes
    plan: Plan
    freeze: str  # the freeze setting, resolved
    config: TrainConfig  # with config.freeze filled in
    train_set: ImageSet
    val_set: ImageSet
    rank: int
    world_size: int

    def batches(self, images: ImageSet, train: bool) -> ImageBatches:
        """This process' batches of ``images``, for training (shuffled, augmented) or in order."""
        height, width, channels = self.plan.input_shape
        return ImageBatches(
            images,
            (height, width),
            self.spec.preprocessing,
            self.config.batch_size,
            train=train,
            channels=channels,
            seed=self.config.seed,
            rank=self.rank,
            world_size=self.world_size,
            augment=self.config.augment,
        )


def _plan_run(
    spec: Spec, data_dir: Union[str, Path], folder: RunFolder, settings: RunSettings, resumed: Optional[RunRecord]
) -> _Run:
    """The backend and its own settings (one it does not have is refused first), the data (every image
    decoded once), the spec with its head, the plan and the frozen layers, all checked.

    ``settings.freeze`` is a layer name (frozen with every layer before it) or ``"none"``;
    None picks :func:`default_freeze`. ``config.freeze`` is filled in from it.
    """
    backend = get_backend(settings.backend)
    trains = training_backend(backend)
    if resumed is not None:
        check_recorded(backend, resumed.backend_settings, folder.run_json)
    own_settings = backend_settings(backend, settings.backend_settings)
    rank, world_size = process_rank()
    train_set, val_set = prepare_data(data_dir, settings.classes, resumed)
    spec = head_spec(spec, len(train_set.class_names))
    plan = lower_to_plan(spec)
    freeze = settings.freeze or default_freeze(plan, settings.weights is not None)
    config = dataclasses.replace(settings.config, freeze=freeze_names([layer.name for layer in plan.layers], freeze))
    if all(layer.name in config.freeze for layer in plan.weighted_layers()):
        raise VggspecError(
            f"freeze: expected at least one trainable layer after {freeze!r}, received every layer frozen "
            f"(the last is {plan.weighted_layers()[-1].name})",
            setting="freeze",
        )
    if config.cache_features:
        check_cacheable(plan, config, world_size)
    check_images((train_set, val_set), plan.input_shape[2])  # before anything is written, both splits at once
    return _Run(
        folder, data_dir, settings, resumed, backend, trains, own_settings, spec, plan, freeze, config,
        train_set, val_set, rank, world_size,
    )  # fmt: skip


def _record(run: _Run, trainer: Trainer) -> RunRecord:
    """run.json's record: a new run's, or the resumed one's going on to ``config.epochs``."""
    if run.resumed is not None:
        return dataclasses.replace(
            run.resumed, config=dataclasses.replace(run.resumed.config, epochs=run.config.epochs)
        )
    suffix = trainer.weights_file_suffix()
    return RunRecord(
        spec=spec_to_mapping(run.spec),
        backend=run.backend.name,
        classes=run.train_set.class_names,
        data=str(Path(run.data_dir).resolve()),
        weights=run.settings.weights,
        freeze=run.freeze,
        config=run.config,
        backend_settings=recorded_settings(run.own_settings),
        train_images=len(run.train_set),
        val_images=len(run.val_set),
        world_size=run.world_size,
        checkpoints=Checkpoints(
            best=run.folder.checkpoint("best", suffix).name, last=run.folder.checkpoint("last", suffix).name
        ),
    )


def _session(run: _Run, model: Any, trainer: Trainer) -> Session:
    """The epochs' session: the weights to start from loaded, the feature cache ready, run.json's record made."""
    weights, config = run.settings.weights, run.config
    resuming = run.resumed is not None and run.folder.checkpoint("last", trainer.weights_file_suffix()).is_file()
    # a resumed run starts from its checkpoint, not from the weights it started with
    skipped = load_pretrained(run.backend, model, run.plan, weights) if weights is not None and not resuming else []
    features = None
    if config.cache_features:
        check_trainer(trainer, run.backend.name)
        in_order = {"train": run.batches(run.train_set, train=False), "val": run.batches(run.val_set, train=False)}
        features = plan_feature_cache(run.plan, config, run.backend.name, weights, run.data_dir, in_order)
    session = Session(
        run=run.folder,
        record=_record(run, trainer),
        backend=run.backend,
        model=model,
        plan=run.plan,
        trainer=trainer,
        train=run.batches(run.train_set, train=True),
        val=run.batches(run.val_set, train=False),
        config=config,
        rank=run.rank,
        world_size=run.world_size,
        features=features,
    )
    for line in skipped:
        session.warn(line)
    if not plot_available():
        session.warn('matplotlib is not installed: no curves.png (pip install "vggspec[plot]")')
    return session


def _run_epochs(session: Session, run: _Run) -> RunRecord:
    """A new run's folder written, then the epochs; returns the final record (rank 0 writes it)."""
    folder, world_size, config = run.folder, run.world_size, run.config
    if run.resumed is None and session.writer:
        folder.create()
        folder.write_record(session.record)
    session.say(
        f"{folder.path}: {run.plan.name} on {len(run.train_set)} training and {len(run.val_set)} validation images "
        f"({', '.join(run.train_set.class_names)}), {run.backend.name}, frozen up to {run.freeze}"
        + (f", {world_size} processes" if world_size > 1 else "")
        + (f", features cached ({config.cache_dtype})" if config.cache_features else "")
    )
    with StopOnInterrupt() as stop:
        rows, best = run_epochs(session, run.resumed is not None, stop)
    agree = ranks_agree(session) if world_size > 1 else None
    session.record = dataclasses.replace(
        session.record, best=best, epochs_done=len(rows), world_size=world_size, ranks_agree=agree
    )
    if session.writer:
        folder.write_record(session.record)
    return session.record


def _train(
    spec: Spec, data_dir: Union[str, Path], folder: RunFolder, settings: RunSettings, resumed: Optional[RunRecord]
) -> RunRecord:
    """A new run (``resumed`` None) or the rest of the ``resumed`` one."""
    run = _plan_run(spec, data_dir, folder, settings, resumed)
    with owned(folder) if run.rank == 0 else contextlib.nullcontext():  # the writer holds the folder
        if run.rank == 0 and resumed is None:
            check_empty(folder)  # again, now that no other run can write it
        random.seed(run.config.seed)
        np.random.seed(run.config.seed)
        run.trains.seed(run.config.seed)
        model = run.backend.build(run.plan)
        trainer = run.trains.trainer(model, run.plan, run.config, run.own_settings)
        try:
            return _run_epochs(_session(run, model, trainer), run)
        finally:
            trainer.close()  # from here, also on an error: a failing rank must not wait for the others
