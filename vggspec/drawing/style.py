"""How each kind of plan layer looks in a drawing: its colour, the size of its box, its label.

A feature map's box is as high as the square root of the map's height and as wide as the square
root of its channels: VGG's maps shrink from 224 to 7 and its channels grow from 64 to 512, and
square roots keep both ends readable in one picture (224 rows: 180 px, 7 rows: 32 px; 64 channels:
16 px, 512: 45 px). A vector (after flatten) is as high as the fourth root of its length. Batch
norm, activations, LRN and dropout are thin bars beside the layer they follow, in their own colours.
"""

from __future__ import annotations

import math
from typing import Optional

from vggspec.planner.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    InputLayer,
    LocalResponseNormalization,
    MaxPooling2D,
    PlanLayer,
)

FONT, LINE = 11.0, 14.0  # labels: font size and line height (px)
MARGIN = 16.0
LARGEST = "#b22222"  # the outline and share line of the layer holding the most parameters
# what differs between two plans: outline colour, row shading, words of the legend
STATUS_STYLE = {
    "changed": ("#d62728", "#fde2e2", "changed"),
    "added": ("#2ca02c", "#e3f4e1", "only in the second"),
    "removed": ("#d62728", "#fde2e2", "only in the first"),
}

# colour, and the words of the legend, of each kind; a kind not listed is drawn grey, named by its type
KINDS: dict[type[PlanLayer], tuple[str, str]] = {
    InputLayer: ("#bab0ac", "input"),
    Conv2D: ("#4e79a7", "convolution"),
    BatchNormalization: ("#f28e2b", "batch norm"),
    Activation: ("#76b7b2", "activation"),
    LocalResponseNormalization: ("#edc948", "LRN"),
    MaxPooling2D: ("#b07aa1", "max pool"),
    Flatten: ("#9c755f", "flatten"),
    Dense: ("#d37295", "dense"),
    Dropout: ("#d4a6c8", "dropout"),
    GlobalAveragePooling2D: ("#b07aa1", "global average pool"),
    GlobalMaxPooling2D: ("#b07aa1", "global max pool"),
}
OTHER_COLOUR = "#cccccc"
THIN_KINDS = (BatchNormalization, Activation, LocalResponseNormalization, Dropout)

MAP_SCALE = 12.0  # box height: this times √(map height), at most MAX_HEIGHT
MAX_HEIGHT = 300.0
CHANNEL_SCALE = 2.0  # box width: this times √channels, MIN_WIDTH to MAX_WIDTH
MIN_WIDTH, MAX_WIDTH = 4.0, 80.0
THIN_WIDTH = 4.0
VECTOR_WIDTH: dict[type[PlanLayer], float] = {Dense: 14.0, Flatten: 8.0}  # other vectors (global pooling): 8
DEFAULT_KERNEL = 3  # the paper's; any other is written beside the name ("block3_conv3 1×1")


def kind_colour(layer: PlanLayer) -> str:
    return KINDS.get(type(layer), (OTHER_COLOUR, ""))[0]


def kind_word(layer: PlanLayer) -> str:
    return KINDS.get(type(layer), ("", layer.type_name))[1]


def is_thin(layer: PlanLayer) -> bool:
    return isinstance(layer, THIN_KINDS)


def box_size(layer: PlanLayer) -> tuple[float, float]:
    """(width, height) of the layer's box in pixels."""
    shape = layer.output_shape
    if len(shape) == 3:
        height = min(MAX_HEIGHT, MAP_SCALE * math.sqrt(shape[0]))
        width = min(MAX_WIDTH, max(MIN_WIDTH, CHANNEL_SCALE * math.sqrt(shape[2])))
    else:
        height = min(MAX_HEIGHT, MAP_SCALE * math.prod(shape) ** 0.25)
        width = VECTOR_WIDTH.get(type(layer), 8.0)
    return (THIN_WIDTH if is_thin(layer) else width), max(6.0, height)


def dimensions(shape: tuple[int, ...]) -> str:
    """An output shape as a picture labels it: "224×224×64", "4096"."""
    return "×".join(map(str, shape))


def label_lines(layer: PlanLayer, share: Optional[float] = None) -> list[str]:
    """The layer's label, one string a line: its name (with a kernel that is not 3×3), its output shape and
    parameters, and for the layer holding the most parameters, its ``share`` of them."""
    name = layer.name
    if isinstance(layer, Conv2D) and layer.kernel_size != DEFAULT_KERNEL:
        name += f" {layer.kernel_size}×{layer.kernel_size}"
    second = dimensions(layer.output_shape)
    if layer.params:
        second += f" {layer.params:,}"
    if isinstance(layer, Dropout):
        second += f" rate {layer.rate:g}"
    lines = [name, second]
    if share is not None:
        lines.append(f"{share:.0%} of all parameters")
    return lines
