"""Fine-tune a spec on class folders (or train it from scratch), with Keras or PyTorch.

DIR holds DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg (what `vggspec data
cats-vs-dogs` writes); classes are the folder names, sorted. The spec's head is
replaced by one for that many classes, --weights are loaded where they fit (a
1000-way predictions layer is skipped and named), the layers up to --freeze are
frozen, and each epoch is trained, validated and written to RUN_DIR: run.json,
metrics.csv, curves.png and the checkpoints best and last (.weights.h5 for
keras, .pt for torch). --resume continues an interrupted run from its last
finished epoch: the options are those RUN_DIR/run.json records; --epochs may
raise the total, and --workers, --device and the torch options may change.

The classic two-stage recipe on VGG16 (Cats vs Dogs):

  1. new head on the frozen convolutional base (the default --freeze with --weights):
       vggspec finetune vgg16 --data DIR --weights vgg16_weights_tf_dim_ordering_tf_kernels.h5 \\
           --epochs 5 --out runs/stage1
  2. unfreeze block5 and train it with the head, SGD lr 1e-4 momentum 0.9, from the first
     stage's best checkpoint:
       vggspec finetune vgg16 --data DIR --weights runs/stage1/best.weights.h5 \\
           --freeze block4_pool --optimizer sgd --lr 1e-4 --epochs 5 --out runs/stage2

On a CPU, cache the frozen base's outputs: --cache-features --augment none computes
them once per image (into --cache-dir, default $VGGSPEC_HOME/features; reused
by later runs on the same data, weights, spec and --freeze, and by --resume), and the
epochs train only the layers after --freeze on them: on VGG16 frozen up to block5_pool an
epoch takes a small fraction of its uncached time (the README's Performance section has the
figures measured on a CPU).
--augment chooses the training augmentation: flip,crop (the default), flip, crop
or none (flips are wrong for digits and text).

Without --weights the model trains from scratch and nothing is frozen. The run folder gets
run.json, metrics.csv, the checkpoints and, with matplotlib (pip install "vggspec[plot]"),
curves.png.

Several processes (and machines) train data-parallel when their framework's launcher starts them:
torchrun for --backend torch (DistributedDataParallel), TF_CONFIG for Keras on TensorFlow
(MultiWorkerMirroredStrategy), the KERAS_DISTRIBUTION_* variables for Keras on JAX
(keras.distribution.DataParallel). Every process trains a shard of each epoch; --global-batch-size N
shares N images per step among them. Rank 0 writes the run and records ranks_agree (whether all ranks
ended with identical parameters) in run.json. Keras on TensorFlow in one process with several GPUs
splits each batch among them (MirroredStrategy).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

from vggspec.commands.predict import add_preprocessing_argument
from vggspec.errors import VggspecError


def _on(value: bool) -> str:
    return "on" if value else "off"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "spec", metavar="SPEC", help="a spec file or a shipped name (e.g. vgg16, specs/examples/small64.yaml)"
    )
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="class folders DIR/train/<class>/, DIR/val/<class>/"
    )
    parser.add_argument(
        "--out", dest="run_dir", metavar="RUN_DIR", help="the run folder (default runs/<spec>-<backend>-<time>)"
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out after its last epoch")
    add_preprocessing_argument(parser)
    _add_run_settings(parser)
    _add_cache_settings(parser)
    _add_backend_settings(parser)


def _add_run_settings(parser: argparse.ArgumentParser) -> None:
    """The options of the settings every backend has, showing the library's defaults (an option left out is
    None, which leaves the library's value)."""
    from vggspec.parity.inputs import SEED_MAX
    from vggspec.training.protocol import AUGMENTATIONS, MAX_WORKERS, OPTIMIZERS
    from vggspec.training.settings import RunSettings

    defaults = RunSettings()
    config = defaults.config
    parser.add_argument("--backend", help="keras or torch (default: keras, else torch, whichever can run here)")
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="weights to start from, any supported format (layers of another shape in the head are skipped)",
    )
    parser.add_argument(
        "--classes",
        type=int,
        metavar="N",
        help="the number of classes (default: the number of class folders, which it must equal)",
    )
    parser.add_argument(
        "--freeze",
        metavar="UP_TO",
        help="freeze the layers up to and including this one, or none "
        "(default: the last pool with --weights, none without)",
    )
    parser.add_argument("--epochs", type=int, help=f"epochs in all (default {config.epochs})")
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument("--batch-size", type=int, help=f"images per batch and process (default {config.batch_size})")
    batch.add_argument(
        "--global-batch-size",
        type=int,
        metavar="N",
        help="images per batch of all the run's processes together, shared equally (N/processes each)",
    )
    parser.add_argument(
        "--lr", dest="learning_rate", metavar="LR", type=float, help=f"learning rate (default {config.learning_rate:g})"
    )
    parser.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        help=f"{' or '.join(OPTIMIZERS)}, sgd with momentum {config.momentum} (default {config.optimizer})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help=f"data loading workers, 0 to {MAX_WORKERS} (default {config.workers}; each is "
        "a process with torch, a thread with keras, holding batches ahead)",
    )
    parser.add_argument(
        "--seed", type=int, help=f"seed of shuffling, augmentation and dropout, 0 to {SEED_MAX} (default {config.seed})"
    )
    parser.add_argument(
        "--augment",
        choices=AUGMENTATIONS,
        metavar="HOW",
        help=f"training augmentation: {', '.join(AUGMENTATIONS[:-1])} or {AUGMENTATIONS[-1]} (flip: left-right, "
        f"crop: pad and crop back; default {config.augment})",
    )


def _add_cache_settings(parser: argparse.ArgumentParser) -> None:
    from vggspec.training.protocol import CACHE_DTYPES, TrainConfig

    config = TrainConfig()
    group = parser.add_argument_group("cached features (a frozen base computed once)")
    group.add_argument(
        "--cache-features",
        action=argparse.BooleanOptionalAction,
        help="compute the frozen layers' outputs once per image and train the rest on them; needs --augment none "
        f"(default {_on(config.cache_features)})",
    )
    group.add_argument(
        "--cache-dtype",
        choices=CACHE_DTYPES,
        help=f"how cached features are stored, float16 takes half the disk (default {config.cache_dtype})",
    )
    group.add_argument("--cache-dir", metavar="DIR", help="where cached features live (default $VGGSPEC_HOME/features)")


def _add_backend_settings(parser: argparse.ArgumentParser) -> None:
    """A group of options per installed backend with settings of its own (torch's --device, ...), made from
    its declaration: a bool setting is --name / --no-name, another takes a value; the help shows the default."""
    from vggspec.training.backend_settings import installed_settings

    added: set[str] = set()
    for backend, declared in installed_settings().items():
        group = parser.add_argument_group(f"{backend} backend")
        hints, defaults = typing.get_type_hints(declared), declared()
        for item in dataclasses.fields(declared):
            if item.name in added:  # two backends with one setting: one option sets it for either
                continue
            added.add(item.name)
            flag, default = "--" + item.name.replace("_", "-"), getattr(defaults, item.name)
            text = item.metadata.get("help", f"a setting of the {backend} backend")
            if hints[item.name] is bool:
                group.add_argument(flag, action=argparse.BooleanOptionalAction, help=f"{text} (default {_on(default)})")
                continue
            value_type = next(
                (arg for arg in typing.get_args(hints[item.name]) if arg is not type(None)), hints[item.name]
            )
            shown = f": {item.metadata['default']}" if "default" in item.metadata else f" {default}"
            group.add_argument(flag, type=value_type, help=f"{text} (default{shown})")


def run(args: argparse.Namespace) -> int:
    from vggspec.backends import default_backend
    from vggspec.model_source import model_source
    from vggspec.training.backend_settings import backend_setting_names
    from vggspec.training.distributed import per_process_batch, process_rank
    from vggspec.training.finetune import finetune, resume_finetune
    from vggspec.training.protocol import TrainingBackend
    from vggspec.training.run_folder import default_run_dir
    from vggspec.training.settings import SETTINGS, RunSettings

    names = (*SETTINGS, *backend_setting_names())
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if args.global_batch_size is not None:
        given["batch_size"] = per_process_batch(args.global_batch_size)
    # the weights (a file or a known name) decide the preprocessing the run trains with (run.json's spec keeps it)
    source = model_source(args.spec, given.get("weights"), args.preprocessing)
    if source.weights is not None:
        given["weights"] = str(source.weights.path)
    if args.resume:
        if args.run_dir is None:
            raise VggspecError("--resume: expected --out RUN_DIR, the run folder to continue, received none")
        out = Path(args.run_dir)
        record = resume_finetune(out, args.data, source.spec, given)
    else:
        settings = RunSettings.given(given)
        spec = source.spec
        backend = settings.backend or default_backend(TrainingBackend)  # one that can train
        out = Path(args.run_dir) if args.run_dir is not None else default_run_dir(spec.name, backend)
        record = finetune(spec, args.data, out, settings)
    if process_rank()[0] == 0:
        print(f"run folder: {out}")
        print(f"{source.spec.name}: {source.note}")
        if record.best is not None:
            print(
                f"best epoch {record.best.epoch} of {record.epochs_done}: val_accuracy "
                f"{record.best.val_accuracy:.4f} val_loss {record.best.val_loss:.4f} ({record.checkpoints.best})"
            )
        if record.ranks_agree is not None:
            print(f"{record.world_size} ranks, parameters equal on all: {str(record.ranks_agree).lower()}")
    return 0
