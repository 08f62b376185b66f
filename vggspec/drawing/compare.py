"""Two plans side by side: their layers aligned, what differs, in words (``vggspec diff``) and for a drawing.

Layers are aligned by name, the plan's canonical names (``block3_conv3`` is the third convolution of
block 3 in any spec), keeping both plans' order: of the names both plans have, the chain in the same
order in both that weighs most, a layer with weights (a convolution, a dense layer, a batch norm)
weighing twice a layer without (so that an LRN numbered differently does not pull a convolution
out of line). Between two aligned names, a layer of one plan and a layer of the other of the same
type in the same group (a block, the top) are taken, in order, for one layer renamed (the LRN after
a block's second convolution: ``block1_lrn2`` in one spec, ``block1_lrn`` in another); the others
there are removed (only in the first plan) or added (only in the second). An aligned pair is the
same when every typed field and the output shape are equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from vggspec.drawing.groups import layer_groups
from vggspec.planner.layers import PlanLayer
from vggspec.planner.lower import Plan

SETTINGS = ("preprocessing", "initialisation")  # what a plan holds beyond its layers that changes a model's use


@dataclass(frozen=True)
class Slot:
    """One row of two aligned plans: each plan's layer (None where that plan has none) and its ``group``."""

    before: Optional[PlanLayer]
    after: Optional[PlanLayer]
    group: int

    @property
    def status(self) -> str:
        """One of "same", "changed", "added" (only in the second plan), "removed" (only in the first)."""
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "same" if self.before == self.after else "changed"


def align_plans(before: Plan, after: Plan) -> list[Slot]:
    """The layers of both plans in one sequence of slots, in order, each group's slots together."""
    groups_before, groups_after = layer_groups(before), layer_groups(after)
    slots: list[Slot] = []
    previous_before = previous_after = 0
    for index_before, index_after in [*_anchors(before, after), (len(before.layers), len(after.layers))]:
        removed = before.layers[previous_before:index_before]
        added = after.layers[previous_after:index_after]
        slots += _unmatched_slots(removed, added, groups_before, groups_after)
        if index_before < len(before.layers):
            layer = before.layers[index_before]
            slots.append(Slot(layer, after.layers[index_after], groups_before[layer.name]))
        previous_before, previous_after = index_before + 1, index_after + 1
    return slots


def _anchors(before: Plan, after: Plan) -> list[tuple[int, int]]:
    """(index in ``before``, index in ``after``) of the layers aligned by name: among the names both plans
    have, the heaviest chain in the same order in both (weight 2 for a layer with weights, else 1). A
    heaviest increasing subsequence, found with a Fenwick tree of prefix maxima: O(n log n)."""
    where = {layer.name: index for index, layer in enumerate(after.layers)}
    common = [
        (i, where[layer.name], 2 if layer.weights else 1)
        for i, layer in enumerate(before.layers)
        if layer.name in where
    ]
    size = len(after.layers)
    tree: list[tuple[int, int]] = [(0, -1)] * (size + 1)  # (weight of the best chain, its last entry of common)
    best: list[int] = []
    link: list[int] = []
    for entry, (_, position, weight) in enumerate(common):
        found, cursor = (0, -1), position  # the best chain ending before ``position`` in ``after``
        while cursor > 0:
            found, cursor = max(found, tree[cursor]), cursor - (cursor & -cursor)
        best.append(found[0] + weight)
        link.append(found[1])
        cursor = position + 1
        while cursor <= size:
            tree[cursor], cursor = max(tree[cursor], (best[entry], entry)), cursor + (cursor & -cursor)
    chain = []
    entry = max(range(len(common)), key=best.__getitem__, default=-1)
    while entry >= 0:
        chain.append(common[entry][:2])
        entry = link[entry]
    return chain[::-1]


def _unmatched_slots(
    removed: Sequence[PlanLayer],
    added: Sequence[PlanLayer],
    groups_before: dict[str, int],
    groups_after: dict[str, int],
) -> list[Slot]:
    """Slots of the layers between two aligned names: renamed pairs (same type and group, in order), the rest
    removed or added; sorted by group so that each group's slots stay together."""
    partners: dict[int, int] = {}
    start = 0
    for i, layer in enumerate(removed):
        for j in range(start, len(added)):
            if type(added[j]) is type(layer) and groups_after[added[j].name] == groups_before[layer.name]:
                partners[i], start = j, j + 1
                break
    slots: list[Slot] = []
    next_added = 0
    for i, layer in enumerate(removed):
        if i in partners:
            slots += [Slot(None, added[k], groups_after[added[k].name]) for k in range(next_added, partners[i])]
            slots.append(Slot(layer, added[partners[i]], groups_before[layer.name]))
            next_added = partners[i] + 1
        else:
            slots.append(Slot(layer, None, groups_before[layer.name]))
    slots += [Slot(None, added[k], groups_after[added[k].name]) for k in range(next_added, len(added))]
    return sorted(slots, key=lambda slot: slot.group)


def shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _value(value: Any) -> str:
    if isinstance(value, list):
        return shape_text(tuple(value))
    return "none" if value is None else str(value)


def change_words(before: PlanLayer, after: PlanLayer) -> list[str]:
    """What differs between two aligned layers: "kernel_size 1 → 3", "params 65,792 → 590,080 (+524,288)"."""
    words = ["renamed"] if before.name != after.name else []
    if type(before) is not type(after):
        words.append(f"type {before.type_name} → {after.type_name}")
    if before.output_shape != after.output_shape:
        words.append(f"output shape {shape_text(before.output_shape)} → {shape_text(after.output_shape)}")
    if type(before) is type(after):
        config_before, config_after = before.config(), after.config()
        words += [
            f"{key} {_value(value)} → {_value(config_after[key])}"
            for key, value in config_before.items()
            if value != config_after[key]
        ]
    if before.params != after.params:
        words.append(f"params {before.params:,} → {after.params:,} ({after.params - before.params:+,})")
    return words


def setting_changes(before: Plan, after: Plan) -> list[str]:
    """What differs in the plans beyond their layers: "preprocessing: caffe → torch"."""
    return [
        f"{name}: {getattr(before, name)} → {getattr(after, name)}"
        for name in SETTINGS
        if getattr(before, name) != getattr(after, name)
    ]


def plans_differ(before: Plan, after: Plan, slots: Sequence[Slot]) -> bool:
    return any(slot.status != "same" for slot in slots) or bool(setting_changes(before, after))


def _change(before: int, after: int) -> str:
    return f"{before:,} → {after:,}" + (f" ({after - before:+,})" if after != before else "")


def counts_line(slots: Sequence[Slot]) -> str:
    """How many layers changed, were added, removed, or are the same: "layers: 3 changed, 0 added, ..."."""
    count = {status: sum(slot.status == status for slot in slots) for status in ("changed", "added", "removed", "same")}
    return (
        f"layers: {count['changed']} changed, {count['added']} added, {count['removed']} removed, "
        f"{count['same']} the same"
    )


def totals_change_lines(before: Plan, after: Plan) -> list[str]:
    """The totals of both plans and their difference: "Total params: 133,638,952 → 138,357,544 (+4,718,592)"."""
    return [
        f"Total params: {_change(before.total_params, after.total_params)}",
        f"Trainable params: {_change(before.trainable_params, after.trainable_params)}",
        f"Non-trainable params: {_change(before.non_trainable_params, after.non_trainable_params)}",
        f"Multiply-accumulates per image: {_change(before.macs, after.macs)}",
    ]


def _plan_line(mark: str, plan: Plan) -> str:
    return (
        f"{mark} {plan.name}: {plan.depth} weight layers, {len(plan.layers)} layers, {plan.total_params:,} parameters"
    )


def _slot_line(slot: Slot) -> tuple[str, str, str, str]:
    """(mark, "name (Type)", output shape, what changed) of a slot that is not the same."""
    layer = slot.after if slot.before is None else slot.before
    assert layer is not None
    if slot.status == "added" or slot.status == "removed":
        mark = "+" if slot.status == "added" else "-"
        params = f"{layer.params:,} params" if layer.params else "no params"
        return mark, f"{layer.name} ({layer.type_name})", shape_text(layer.output_shape), params
    assert slot.before is not None and slot.after is not None
    name = slot.before.name if slot.before.name == slot.after.name else f"{slot.before.name} → {slot.after.name}"
    return (
        "~",
        f"{name} ({slot.after.type_name})",
        shape_text(slot.after.output_shape),
        "; ".join(change_words(slot.before, slot.after)),
    )


def diff_text(before: Plan, after: Plan, slots: Sequence[Slot]) -> str:
    """``vggspec diff``'s report: the layers that differ (~ changed, + added, - removed), then the totals."""
    if not plans_differ(before, after, slots):
        return (
            f"{before.name} and {after.name} are the same plan: {before.depth} weight layers, "
            f"{len(before.layers)} layers, {before.total_params:,} parameters"
        )
    rows = [_slot_line(slot) for slot in slots if slot.status != "same"]
    lines = [_plan_line("---", before), _plan_line("+++", after)]
    lines += [f"  {text}" for text in setting_changes(before, after)]
    if rows:
        widths = [max(len(row[column]) for row in rows) for column in (1, 2)]
        lines += [f"{mark} {name:<{widths[0]}}  {shape:<{widths[1]}}  {what}" for mark, name, shape, what in rows]
    lines += ["", counts_line(slots), *totals_change_lines(before, after)]
    return "\n".join(lines)
