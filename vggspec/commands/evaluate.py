"""Score a fine-tuning run (vggspec finetune) on class folders: accuracy and the confusion matrix.

The run's best checkpoint (or --checkpoint last) is loaded into the spec the
run trained (from RUN_DIR/run.json) and run on DIR/<split>/<class>/ images,
which must have the run's class folders. The confusion matrix has one row per
true class and one column per predicted class. The accuracy on the val split
equals the best epoch's val_accuracy in metrics.csv.
"""

from __future__ import annotations

import argparse
import json

from vggspec.errors import VggspecError
from vggspec.training.metrics import format_confusion


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by vggspec finetune")
    parser.add_argument("--data", metavar="DIR", help="class folders DIR/<split>/<class>/ (default: the run's data)")
    parser.add_argument("--split", default="val", help="the split to score (default val)")
    parser.add_argument(
        "--checkpoint", choices=("best", "last"), default="best", help="which weights of the run (default best)"
    )
    parser.add_argument("--backend", help="the backend to run (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from vggspec.training.evaluate import evaluate_run

    if args.batch_size < 1:
        raise VggspecError(f"--batch-size: expected a positive integer, received {args.batch_size}")
    result = evaluate_run(args.run_dir, args.data, args.split, args.backend, args.batch_size, args.checkpoint)
    if args.json:
        print(
            json.dumps(
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
                },
                indent=2,
            )
        )
        return 0
    epoch = f" (epoch {result.best_epoch})" if result.best_epoch else ""
    print(f"{result.checkpoint}{epoch} on {result.split_dir}: {result.count} images")
    print(f"accuracy {result.accuracy:.6f} ({result.correct}/{result.count})  loss {result.loss:.6f}")
    print("confusion matrix (rows: true class, columns: predicted class)")
    print(format_confusion(result.matrix, result.class_names))
    return 0
