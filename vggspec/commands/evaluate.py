"""Score a fine-tuning run (vggspec finetune) on class folders: accuracy and the confusion matrix.

The run's best checkpoint (or --checkpoint last) is loaded into the spec the
run trained (from RUN_DIR/run.json) and run on DIR/<split>/<class>/ images,
which must have the run's class folders. The confusion matrix has one row per
true class and one column per predicted class. The accuracy on the val split
equals the best epoch's val_accuracy in metrics.csv.
"""

from __future__ import annotations

import argparse
import inspect

from vggspec.strict_json import dumps
from vggspec.training.metrics import format_confusion


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from vggspec.training.evaluate import evaluate_run
    from vggspec.training.run_folder import CHECKPOINTS

    # the library's defaults, shown here; every option left out is None, which leaves the library's value
    defaults = {name: parameter.default for name, parameter in inspect.signature(evaluate_run).parameters.items()}
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by vggspec finetune")
    parser.add_argument(
        "--data", dest="data_dir", metavar="DIR", help="class folders DIR/<split>/<class>/ (default: the run's data)"
    )
    parser.add_argument("--split", help=f"the split to score (default {defaults['split']})")
    parser.add_argument(
        "--checkpoint",
        choices=CHECKPOINTS,
        help=f"which weights of the run (default {defaults['checkpoint']})",
    )
    parser.add_argument(
        "--backend", dest="backend_name", metavar="BACKEND", help="the backend to run (default: the run's)"
    )
    parser.add_argument("--batch-size", type=int, help=f"images per batch (default {defaults['batch_size']})")
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help="score this file instead of the checkpoint: the run's model in int8 or float16 (build --precision), "
        "also compared with the checkpoint in float32",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from vggspec.training.evaluate import evaluate_run

    names = ("data_dir", "split", "backend_name", "batch_size", "checkpoint", "weights")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    result = evaluate_run(args.run_dir, **given)
    if args.json:
        print(
            dumps(
                {
                    "checkpoint": str(result.checkpoint),
                    "best_epoch": result.best_epoch,
                    "split": str(result.split_dir),
                    "classes": list(result.class_names),
                    "images": result.count,
                    "correct": result.correct,
                    "accuracy": result.accuracy,
                    "loss": result.loss,
                    "confusion_matrix": result.matrix.tolist(),
                    "precision": result.precision,
                    "versus_float32": result.versus_float32.to_dict() if result.versus_float32 else None,
                }
            )
        )
        return 0
    epoch = f" (epoch {result.best_epoch})" if result.best_epoch else ""
    print(f"{result.checkpoint}{epoch} on {result.split_dir}: {result.count} images")
    print(f"accuracy {result.accuracy:.6f} ({result.correct}/{result.count})  loss {result.loss:.6f}")
    if result.versus_float32 is not None:  # a lower-precision file: the checkpoint's float32 beside it
        print(result.versus_float32.line())
    print("confusion matrix (rows: true class, columns: predicted class)")
    print(format_confusion(result.matrix, result.class_names))
    return 0
