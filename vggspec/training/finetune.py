"""Fine-tune (or train from scratch) a spec on class folders, with any backend that can train.

The flow: read the train/val class folders (two classes at least); give the
spec a head for their classes; decode every image once, so that a broken file
is named before anything is written rather than half-way through an epoch
(:func:`vggspec.training.folders.check_images`); build the model; load the weights that fit (every layer but a head of
another size); freeze the layers up to ``--freeze``; then, epoch after epoch,
train, validate on the whole val split and commit the epoch to the run folder
(:mod:`vggspec.training.run_folder`).

The epochs themselves run in :mod:`vggspec.training.loop`.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from vggspec.backends import Backend, get_backend
from vggspec.errors import BackendError, DataError, VggspecError, WeightsError
from vggspec.images import image_mode
from vggspec.parity.inputs import checked_seed
from vggspec.planner.lower import Plan, lower_to_plan
from vggspec.spec.load import spec_from_mapping, spec_to_mapping
from vggspec.spec.model import Spec
from vggspec.training.batches import ImageBatches
from vggspec.training.distributed import process_rank
from vggspec.training.folders import ImageSet, check_images, read_split
from vggspec.training.interrupt import StopOnInterrupt
from vggspec.training.loop import Session, ranks_agree, run_epochs
from vggspec.training.plot import plot_available
from vggspec.training.protocol import TrainConfig, TrainingBackend, freeze_names
from vggspec.training.run_folder import RunFolder

HEAD_KINDS = ("flatten", "dense", "dropout", "global_avg_pool", "global_max_pool")


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
    pools = [layer.name for layer in plan.layers if layer.kind == "max_pool"]
    return pools[-1] if pretrained and pools else "none"


def load_pretrained(backend: Backend, model: Any, plan: Plan, weights: Union[str, Path]) -> list[str]:
    """Load the layers of ``weights`` that fit; return a line per skipped head layer.

    Only head layers (fc1, fc2, predictions) may be skipped: a convolutional layer
    that does not fit means the wrong file, and is refused with its shapes.
    """
    from vggspec.building import read_checked_bundle

    bundle, skipped = read_checked_bundle(plan, weights, skip_mismatch=True)
    head = {layer.name for layer in plan.layers if layer.kind in HEAD_KINDS}
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


def _check_run_folder(run: RunFolder, resume: bool, rank: int) -> None:
    """A resumed run must be there; a new one needs a new or empty folder (checked by rank 0, which writes it)."""
    if resume and not run.exists():
        raise DataError(
            f"--resume: expected a run folder with run.json, received {run.path} "
            + ("without it" if run.path.exists() else "(does not exist)")
        )
    if resume or rank != 0:
        return
    if run.path.exists() and not run.path.is_dir():
        raise DataError(f"--out {run.path}: expected a new or empty folder, received a file")
    if run.path.is_dir() and any(run.path.iterdir()):
        raise DataError(
            f"--out {run.path}: expected a new or empty folder, received one with files "
            "(pass --resume to continue that run, or choose another --out)"
        )
    run.check_creatable()


def prepare_data(data_dir: Union[str, Path], classes: Optional[int]) -> tuple[ImageSet, ImageSet]:
    """The train and val splits (the same class folders, at least two), checked against ``classes``."""
    train = read_split(data_dir, "train")
    if len(train.class_names) < 2:
        raise DataError(
            f"{train.root}: expected at least 2 class folders (a classifier tells classes apart), "
            f"received 1: {train.class_names[0]}"
        )
    val = read_split(data_dir, "val", train.class_names)
    if classes is not None and classes != len(train.class_names):
        raise DataError(
            f"--classes: expected the number of class folders in {train.root} "
            f"({len(train.class_names)}: {', '.join(train.class_names)}), received {classes}"
        )
    return train, val


def finetune(
    spec: Spec,
    data_dir: Union[str, Path],
    backend_name: str,
    config: TrainConfig,
    run_dir: Union[str, Path],
    *,
    weights: Optional[Union[str, Path]] = None,
    freeze: Optional[str] = None,
    classes: Optional[int] = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Train ``spec`` on ``data_dir``/{train,val} and write the run folder; returns the final run record.

    ``freeze`` is a layer name (frozen with every layer before it) or ``"none"``;
    None picks :func:`default_freeze`. ``config.freeze`` is filled in from it.
    """
    rank, world_size = process_rank()
    checked_seed(config.seed)
    run = RunFolder(run_dir)
    _check_run_folder(run, resume, rank)
    train_set, val_set = prepare_data(data_dir, classes)
    spec = head_spec(spec, len(train_set.class_names))
    plan = lower_to_plan(spec)
    freeze = freeze or default_freeze(plan, weights is not None)
    config = dataclasses.replace(config, freeze=freeze_names([layer.name for layer in plan.layers], freeze))
    if all(layer.name in config.freeze for layer in plan.weighted_layers()):
        raise VggspecError(
            f"--freeze {freeze}: expected at least one trainable layer after it, received "
            f"every layer frozen (the last is {plan.weighted_layers()[-1].name})"
        )
    backend = get_backend(backend_name)
    trains = training_backend(backend)
    for images in (train_set, val_set):  # before anything is written: not half-way through an epoch
        check_images(images, plan.input_shape[2])

    random.seed(config.seed)
    np.random.seed(config.seed)
    trains.seed(config.seed)
    model = backend.build(plan)
    trainer = trains.trainer(model, plan, config)
    try:
        resuming = resume and run.checkpoint("last", trainer.weights_file_suffix()).is_file()
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
            )

        session = Session(
            run=run,
            record={},
            backend=backend,
            model=model,
            plan=plan,
            trainer=trainer,
            train=batches(train_set, train=True),
            val=batches(val_set, train=False),
            config=config,
            rank=rank,
            world_size=world_size,
        )
        for line in skipped:
            session.warn(line)
        if not plot_available():
            session.warn('matplotlib is not installed: no curves.png (pip install "vggspec[plot]")')
        if resume:
            session.record = run.read_record()
            if session.record["classes"] != list(train_set.class_names):
                raise DataError(
                    f"{train_set.root}: expected the run's class folders "
                    f"{', '.join(session.record['classes'])}, received {', '.join(train_set.class_names)}"
                )
            session.record["config"]["epochs"] = config.epochs
        else:
            session.record = {
                "spec": spec_to_mapping(spec),
                "backend": backend.name,
                "classes": list(train_set.class_names),
                "data": str(Path(data_dir).resolve()),
                "weights": str(weights) if weights is not None else None,
                "freeze": freeze,
                "config": {**dataclasses.asdict(config), "freeze": list(config.freeze)},
                "train_images": len(train_set),
                "val_images": len(val_set),
                "world_size": world_size,
                "checkpoints": {"best": session.checkpoint("best").name, "last": session.checkpoint("last").name},
            }
            if session.writer:
                run.create()
                run.write_record(session.record)
        session.say(
            f"{run.path}: {plan.name} on {len(train_set)} training and {len(val_set)} validation images "
            f"({', '.join(train_set.class_names)}), {backend.name}, frozen up to {freeze}"
            + (f", {world_size} processes" if world_size > 1 else "")
        )
        with StopOnInterrupt() as stop:
            rows, best = run_epochs(session, resume, stop)
        agree = ranks_agree(session) if world_size > 1 else None
        if session.writer:
            session.record.update(
                best=dataclasses.asdict(best), epochs_done=len(rows), world_size=world_size, ranks_agree=agree
            )
            run.write_record(session.record)
        return session.record
    finally:
        trainer.close()  # from here, also on an error: a failing rank must not wait for the others
