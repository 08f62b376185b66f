"""Fine-tune a spec on class folders (or train it from scratch), with Keras or PyTorch.

DIR holds DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg (what `vggspec data
cats-vs-dogs` writes); classes are the folder names, sorted. The spec's head is
replaced by one for that many classes, --weights are loaded where they fit (a
1000-way predictions layer is skipped and named), the layers up to --freeze are
frozen, and each epoch is trained, validated and written to RUN_DIR: run.json,
metrics.csv, curves.png and the checkpoints best and last (.weights.h5 for
keras, .pt for torch). --resume continues an interrupted run from its last
finished epoch (the other options are taken from RUN_DIR/run.json; --epochs may
raise the total).

The classic two-stage recipe on VGG16 (Cats vs Dogs):

  1. new head on the frozen convolutional base (the default --freeze with --weights):
       vggspec finetune vgg16 --data DIR --weights vgg16_weights_tf_dim_ordering_tf_kernels.h5 \\
           --epochs 5 --out runs/stage1
  2. unfreeze block5 and train it with the head, SGD lr 1e-4 momentum 0.9, from the first
     stage's best checkpoint:
       vggspec finetune vgg16 --data DIR --weights runs/stage1/best.weights.h5 \\
           --freeze block4_pool --optimizer sgd --lr 1e-4 --epochs 5 --out runs/stage2

Without --weights the model trains from scratch and nothing is frozen. Under
torchrun (python -m torch.distributed.run --nproc_per_node N -m vggspec finetune
... --backend torch) every process trains a shard of each epoch with
DistributedDataParallel; rank 0 writes the run and records ranks_agree (whether
all ranks ended with identical parameters) in run.json.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from vggspec.errors import VggspecError

# option -> (TrainConfig field, default); None in the parsed arguments means "not given"
CONFIG_OPTIONS: dict[str, tuple[str, Any]] = {
    "epochs": ("epochs", 10),
    "batch_size": ("batch_size", 32),
    "lr": ("learning_rate", 1e-3),
    "optimizer": ("optimizer", "adam"),
    "workers": ("workers", 2),
    "seed": ("seed", 0),
    "device": ("device", None),
}
# what a resumed run may change; any other option given must equal the recorded one
CHANGEABLE_ON_RESUME = ("epochs", "workers", "device", "compile", "channels_last", "autocast")
# each data worker is a process (torch) or a thread (keras) holding batches ahead; more than this only costs memory
MAX_WORKERS = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "spec", metavar="SPEC", help="a spec file or a shipped name (e.g. vgg16, specs/examples/small64.yaml)"
    )
    parser.add_argument(
        "--data", required=True, metavar="DIR", help="class folders DIR/train/<class>/, DIR/val/<class>/"
    )
    parser.add_argument("--backend", help="keras (default) or torch")
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
    parser.add_argument("--epochs", type=int, help="epochs in all (default 10)")
    parser.add_argument("--batch-size", type=int, help="images per batch and process (default 32)")
    parser.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), help="adam (default) or sgd (momentum 0.9)")
    parser.add_argument("--out", metavar="RUN_DIR", help="the run folder (default runs/<spec>-<backend>-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out after its last epoch")
    parser.add_argument(
        "--workers",
        type=int,
        help=f"data loading workers, 0 to {MAX_WORKERS} (default 2; each is "
        "a process with torch, a thread with keras, holding batches ahead)",
    )
    parser.add_argument(
        "--seed", type=int, help="seed of shuffling, augmentation and dropout, 0 to 4294967295 (default 0)"
    )
    torch = parser.add_argument_group("torch backend")
    torch.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    torch.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    torch.add_argument(
        "--no-channels-last",
        dest="channels_last",
        action="store_false",
        default=None,
        help="on CUDA, keep the NCHW memory format (default: channels last)",
    )
    torch.add_argument(
        "--no-autocast",
        dest="autocast",
        action="store_false",
        default=None,
        help="on CUDA, train in float32 (default: bfloat16 autocast)",
    )


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (argparse leaves the others None)."""
    names = [*CONFIG_OPTIONS, "backend", "weights", "freeze", "classes", "compile", "channels_last", "autocast"]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _recorded(record: dict[str, Any]) -> dict[str, Any]:
    """A run record's options, named as the command-line options."""
    config = record["config"]
    values = {option: config[field] for option, (field, _) in CONFIG_OPTIONS.items()}
    values.update(
        backend=record["backend"],
        weights=record["weights"],
        freeze=record["freeze"],
        classes=len(record["classes"]),
        compile=config["compile"],
        channels_last=config["channels_last"],
        autocast=config["autocast"],
    )
    return values


def _check(given: dict[str, Any]) -> None:
    for name in ("epochs", "batch_size"):
        if name in given and given[name] < 1:
            raise VggspecError(f"--{name.replace('_', '-')}: expected a positive integer, received {given[name]}")
    if "workers" in given and not 0 <= given["workers"] <= MAX_WORKERS:
        raise VggspecError(f"--workers: expected 0 to {MAX_WORKERS}, received {given['workers']}")
    if "seed" in given:
        from vggspec.parity.inputs import checked_seed

        checked_seed(given["seed"], "--seed")
    if "lr" in given and not (math.isfinite(given["lr"]) and given["lr"] > 0):
        raise VggspecError(f"--lr: expected a positive learning rate, received {given['lr']}")


def _resumed_options(args: argparse.Namespace, given: dict[str, Any], spec: Any) -> tuple[dict[str, Any], Any]:
    """The recorded options of the run in --out, with what may change taken from the command line."""
    from vggspec.spec.load import spec_from_mapping, spec_to_mapping
    from vggspec.training.run_folder import RunFolder

    run = RunFolder(args.out)
    if not run.exists():
        raise VggspecError(
            f"--resume: expected a run folder with run.json, received {run.path} "
            + ("without it" if run.path.exists() else "(does not exist)")
        )
    record = run.read_record()
    recorded = _recorded(record)
    for name, value in given.items():
        if name not in CHANGEABLE_ON_RESUME and value != recorded[name]:
            flag = "--" + name.replace("_", "-")
            raise VggspecError(
                f"--resume: {run.run_json} records {flag} {recorded[name]}, received {value} "
                "(leave it out to keep the run's value)"
            )
    trained = spec_from_mapping(record["spec"], source=str(run.run_json))
    if {**spec_to_mapping(spec), "classes": trained.classes} != spec_to_mapping(trained):
        raise VggspecError(f"--resume: {run.run_json} records another spec than {args.spec} ({trained.name})")
    return {**recorded, **{name: given[name] for name in CHANGEABLE_ON_RESUME if name in given}}, trained


def run(args: argparse.Namespace) -> int:
    from vggspec.spec.load import load_spec
    from vggspec.training.distributed import process_rank
    from vggspec.training.finetune import finetune
    from vggspec.training.protocol import TrainConfig
    from vggspec.training.run_folder import default_run_dir

    given = _given(args)
    _check(given)
    spec = load_spec(args.spec)
    if args.resume:
        if args.out is None:
            raise VggspecError("--resume: expected --out RUN_DIR, the run folder to continue, received none")
        options, spec = _resumed_options(args, given, spec)
    else:
        options = {
            "backend": "keras",
            "compile": False,
            "channels_last": True,
            "autocast": True,
            **{option: default for option, (_, default) in CONFIG_OPTIONS.items()},
            **given,
        }
    config = TrainConfig(
        **{field: options[option] for option, (field, _) in CONFIG_OPTIONS.items()},
        compile=bool(options["compile"]),
        channels_last=bool(options["channels_last"]),
        autocast=bool(options["autocast"]),
    )
    out = args.out or default_run_dir(spec.name, options["backend"])
    record = finetune(
        spec,
        args.data,
        options["backend"],
        config,
        out,
        weights=options.get("weights"),
        freeze=options.get("freeze"),
        classes=options.get("classes"),
        resume=args.resume,
    )
    if process_rank()[0] == 0:
        best = record["best"]
        print(f"run folder: {out}")
        print(
            f"best epoch {best['epoch']} of {record['epochs_done']}: val_accuracy {best['val_accuracy']:.4f} "
            f"val_loss {best['val_loss']:.4f} ({record['checkpoints']['best']})"
        )
        if record.get("ranks_agree") is not None:
            print(f"{record['world_size']} ranks, parameters equal on all: {str(record['ranks_agree']).lower()}")
    return 0
