"""Fine-tune (or train from scratch) a spec on class folders, with any backend that can train.

The flow: read the train/val class folders (two classes at least); give the
spec a head for their classes; decode every image once, so that a broken file
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

import dataclasses
import random
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from vggspec.backends import Backend, get_backend
from vggspec.errors import BackendError, DataError, VggspecError, WeightsError
from vggspec.images import image_mode
from vggspec.planner.layers import Dense, Dropout, Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, MaxPooling2D
from vggspec.planner.lower import Plan, lower_to_plan
from vggspec.spec.load import spec_from_mapping, spec_to_mapping
from vggspec.spec.model import Spec
from vggspec.training.batches import ImageBatches
from vggspec.training.distributed import process_rank
from vggspec.training.feature_cache import check_cacheable, check_trainer, plan_feature_cache
from vggspec.training.folders import ImageSet, check_images, read_split
from vggspec.training.interrupt import StopOnInterrupt
from vggspec.training.loop import Session, ranks_agree, run_epochs
from vggspec.training.plot import plot_available
from vggspec.training.protocol import TrainingBackend, freeze_names
from vggspec.training.run_folder import Checkpoints, RunFolder, RunRecord
from vggspec.training.settings import RunSettings, check_class_folders, recorded_run, resumed_settings

# the layers after the convolutional part: what fine-tuning may replace
HEAD_TYPES = (Flatten, Dense, Dropout, GlobalAveragePooling2D, GlobalMaxPooling2D)


def head_spec(spec: Spec, classes: int) -> Spec:
    """``spec`` with a predictions layer of ``classes`` outputs (everything else unchanged)."""
    where = spec.source or spec.name
    if not spec.include_top:
        raise VggspecError(
            f"{where}: expected a spec with include_top: true (a classifier head to train), received include_top: false"
        )
    if spec.classifier_activation not in ("softmax", None):
        raise VggspecError(
            f"{where}: expected classifier_activation softmax or null (training uses "
            f"categorical cross-entropy), received {spec.classifier_activation!r}"
        )
    image_mode(spec.input_shape[2], f"{where}: input_shape {list(spec.input_shape)}")
    return spec_from_mapping({**spec_to_mapping(spec), "classes": classes}, source=f"{where} (classes {classes})")


def default_freeze(plan: Plan, pretrained: bool) -> str:
    """The classic recipe with pretrained weights: freeze the convolutional base (up to the last
    pool). From scratch nothing is frozen (random features are not worth keeping)."""
    pools = [layer.name for layer in plan.layers if isinstance(layer, MaxPooling2D)]
    return pools[-1] if pretrained and pools else "none"


def load_pretrained(backend: Backend, model: Any, plan: Plan, weights: Union[str, Path]) -> list[str]:
    """Load the layers of ``weights`` that fit; return a line per skipped head layer.

    Only head layers (fc1, fc2, predictions) may be skipped: a convolutional layer
    that does not fit means the wrong file, and is refused with its shapes.
    """
    from vggspec.building import read_checked_bundle

    bundle, skipped = read_checked_bundle(plan, weights, skip_mismatch=True)
    head = {layer.name for layer in plan.layers if isinstance(layer, HEAD_TYPES)}
    for layer in plan.weighted_layers():
        if layer.name not in bundle.layers and layer.name not in head:
            line = next((s for s in skipped if f"layer {layer.name}:" in s), f"layer {layer.name}")
            raise WeightsError(line + " (only head layers may differ when fine-tuning)")
    backend.set_weights(model, plan, bundle)
    return [f"skipped: {line}" for line in skipped]


def training_backend(backend: Backend) -> TrainingBackend:
    """``backend`` when it can train (methods seed and trainer); BackendError naming what it lacks."""
    if isinstance(backend, TrainingBackend):
        return backend
    missing = [name for name in ("seed", "trainer") if not callable(getattr(backend, name, None))]
    raise BackendError(
        f"backend {backend.name!r}: expected a backend that can train (methods seed and "
        f"trainer), received one without {' and '.join(missing)}"
    )


def _check_new_run_folder(run: RunFolder) -> None:
    """A new run needs a new or empty folder (checked by rank 0, which writes it)."""
    if run.path.exists() and not run.path.is_dir():
        raise DataError(f"run_dir {run.path}: expected a new or empty folder, received a file", setting="run_dir")
    if run.path.is_dir() and any(run.path.iterdir()):
        raise DataError(
            f"run_dir {run.path}: expected a new or empty folder, received one with files "
            "(resume that run to continue it, or choose another folder)",
            setting="run_dir",
        )
    run.check_creatable()


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
        _check_new_run_folder(run)
    return _train(spec, data_dir, run, settings or RunSettings(), None)


def resume_finetune(
    run_dir: Union[str, Path],
    data_dir: Union[str, Path],
    spec: Optional[Spec] = None,
    settings: Optional[Mapping[str, Any]] = None,
) -> RunRecord:
    """Continue the run in ``run_dir`` after its last finished epoch, on ``data_dir`` (the same class folders).

    The run keeps its recorded settings; ``settings`` (names of :data:`~vggspec.training.settings.SETTINGS`,
    a value of None is not given) may change those of ``CHANGEABLE_ON_RESUME`` (e.g. ``{"epochs": 20}`` goes
    on to epoch 20), and any other must equal the recorded one. ``spec`` (None: the recorded one) must be the
    run's spec; the number of classes aside. Refusals are :class:`~vggspec.errors.ResumeError`.
    """
    run = RunFolder(run_dir)
    record = recorded_run(run)
    spec, resumed = resumed_settings(record, run.run_json, settings or {}, spec)
    return _train(spec, data_dir, run, resumed, record)


def _train(
    spec: Spec, data_dir: Union[str, Path], run: RunFolder, settings: RunSettings, resumed: Optional[RunRecord]
) -> RunRecord:
    """A new run (``resumed`` None) or the rest of the ``resumed`` one.

    ``settings.freeze`` is a layer name (frozen with every layer before it) or ``"none"``;
    None picks :func:`default_freeze`. ``config.freeze`` is filled in from it.
    """
    rank, world_size = process_rank()
    train_set, val_set = prepare_data(data_dir, settings.classes, resumed)
    spec = head_spec(spec, len(train_set.class_names))
    plan = lower_to_plan(spec)
    weights = settings.weights
    freeze = settings.freeze or default_freeze(plan, weights is not None)
    config = dataclasses.replace(settings.config, freeze=freeze_names([layer.name for layer in plan.layers], freeze))
    if all(layer.name in config.freeze for layer in plan.weighted_layers()):
        raise VggspecError(
            f"freeze: expected at least one trainable layer after {freeze!r}, received every layer frozen "
            f"(the last is {plan.weighted_layers()[-1].name})",
            setting="freeze",
        )
    if config.cache_features:
        check_cacheable(plan, config, world_size)
    backend = get_backend(settings.backend)
    trains = training_backend(backend)
    for images in (train_set, val_set):  # before anything is written: not half-way through an epoch
        check_images(images, plan.input_shape[2])

    random.seed(config.seed)
    np.random.seed(config.seed)
    trains.seed(config.seed)
    model = backend.build(plan)
    trainer = trains.trainer(model, plan, config)
    try:
        suffix = trainer.weights_file_suffix()
        resuming = resumed is not None and run.checkpoint("last", suffix).is_file()
        # a resumed run starts from its checkpoint, not from the weights it started with
        skipped = load_pretrained(backend, model, plan, weights) if weights is not None and not resuming else []
        height, width, channels = plan.input_shape

        def batches(images: ImageSet, train: bool) -> ImageBatches:
            return ImageBatches(
                images,
                (height, width),
                spec.preprocessing,
                config.batch_size,
                train=train,
                channels=channels,
                seed=config.seed,
                rank=rank,
                world_size=world_size,
                augment=config.augment,
            )

        features = None
        if config.cache_features:
            check_trainer(trainer, backend.name)
            in_order = {"train": batches(train_set, train=False), "val": batches(val_set, train=False)}
            features = plan_feature_cache(plan, config, backend.name, weights, data_dir, in_order)

        if resumed is not None:
            record = dataclasses.replace(resumed, config=dataclasses.replace(resumed.config, epochs=config.epochs))
        else:
            record = RunRecord(
                spec=spec_to_mapping(spec),
                backend=backend.name,
                classes=train_set.class_names,
                data=str(Path(data_dir).resolve()),
                weights=weights,
                freeze=freeze,
                config=config,
                train_images=len(train_set),
                val_images=len(val_set),
                world_size=world_size,
                checkpoints=Checkpoints(
                    best=run.checkpoint("best", suffix).name, last=run.checkpoint("last", suffix).name
                ),
            )
        session = Session(
            run=run,
            record=record,
            backend=backend,
            model=model,
            plan=plan,
            trainer=trainer,
            train=batches(train_set, train=True),
            val=batches(val_set, train=False),
            config=config,
            rank=rank,
            world_size=world_size,
            features=features,
        )
        for line in skipped:
            session.warn(line)
        if not plot_available():
            session.warn('matplotlib is not installed: no curves.png (pip install "vggspec[plot]")')
        if resumed is None and session.writer:
            run.create()
            run.write_record(session.record)
        session.say(
            f"{run.path}: {plan.name} on {len(train_set)} training and {len(val_set)} validation images "
            f"({', '.join(train_set.class_names)}), {backend.name}, frozen up to {freeze}"
            + (f", {world_size} processes" if world_size > 1 else "")
            + (f", features cached ({config.cache_dtype})" if config.cache_features else "")
        )
        with StopOnInterrupt() as stop:
            rows, best = run_epochs(session, resumed is not None, stop)
        agree = ranks_agree(session) if world_size > 1 else None
        session.record = dataclasses.replace(
            session.record, best=best, epochs_done=len(rows), world_size=world_size, ranks_agree=agree
        )
        if session.writer:
            run.write_record(session.record)
        return session.record
    finally:
        trainer.close()  # from here, also on an error: a failing rank must not wait for the others
