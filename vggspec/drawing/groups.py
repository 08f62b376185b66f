"""The plan's layers in the groups a picture shows: the input, each block of convolutions, the top.

A block is what the plan's names number (``block3_conv1`` ... ``block3_pool``): the layers up to and
including a pool (a layer whose type ``ends_block``). The top is what follows the feature maps:
flatten and the dense layers with their dropouts, or the global pooling of a spec without a top.
Groups follow from the layers' types, never from their names.
"""

from __future__ import annotations

from vggspec.planner.layers import (
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    InputLayer,
    PlanLayer,
)
from vggspec.planner.lower import Plan

INPUT_GROUP = 0
TOP_GROUP = 1_000_000  # after every block
TOP_TYPES = (Flatten, Dense, Dropout, GlobalAveragePooling2D, GlobalMaxPooling2D)


def layer_groups(plan: Plan) -> dict[str, int]:
    """Each layer's name -> its group: 0 for the input, k for block k, :data:`TOP_GROUP` for the top."""
    groups: dict[str, int] = {}
    block = 1
    for layer in plan.layers:
        if isinstance(layer, InputLayer):
            groups[layer.name] = INPUT_GROUP
        elif isinstance(layer, TOP_TYPES):
            groups[layer.name] = TOP_GROUP
        else:
            groups[layer.name] = block
            block += layer.ends_block
    return groups


def group_title(group: int, layers: list[PlanLayer]) -> str:
    """What a group is called in the picture: "input", "block3", "top" (or "pooling" without dense layers)."""
    if group == INPUT_GROUP:
        return "input"
    if group == TOP_GROUP:
        return "top" if any(isinstance(layer, Dense) for layer in layers) else "pooling"
    return f"block{group}"
