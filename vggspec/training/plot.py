"""The run's learning curves as a PNG: loss and accuracy per epoch, training and validation.

matplotlib is imported here only, with its Agg canvas (no display, no pyplot
state); it is the optional extra ``vggspec[plot]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

from vggspec.fileio import atomic_path


def plot_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def write_curves(path: Union[str, Path], rows: Sequence[dict[str, float]], title: str = "") -> None:
    """Two panels (loss, accuracy) against the epoch, written atomically to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [row["epoch"] for row in rows]
    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    for position, metric in enumerate(("loss", "accuracy"), start=1):
        axes = figure.add_subplot(1, 2, position)
        for split, style in (("train", "o-"), ("val", "s--")):
            axes.plot(epochs, [row[f"{split}_{metric}"] for row in rows], style, label=split)
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.grid(True, alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png")
