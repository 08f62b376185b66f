"""The network drawn from its plan: boxes left to right, grouped by block, labelled, totals underneath.

A plan is drawn as a band: its title, then each group (the input, every block of convolutions, the
top) as a column with the group's boxes (:mod:`vggspec.drawing.style` says their sizes) and under
them a label for each layer (name; output shape and parameters), then a strip that divides the
length of the picture between the layers holding parameters, then the totals. Two plans are two
bands whose slots are aligned (:func:`vggspec.drawing.compare.align_plans`): the same column and
the same row for a layer of both, what differs outlined and shaded, and a summary of the changes.
Labels never overlap: each column is as wide as its widest label, each label row as high as its lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from vggspec.drawing.compare import Slot, align_plans, counts_line, totals_change_lines
from vggspec.drawing.groups import group_title, layer_groups
from vggspec.drawing.network_parts import legend, parameter_strip
from vggspec.drawing.scene import Rect, Scene, Text, text_box, text_width
from vggspec.drawing.style import (
    FONT,
    LARGEST,
    LINE,
    MARGIN,
    STATUS_STYLE,
    box_size,
    is_thin,
    kind_colour,
    label_lines,
)
from vggspec.planner.layers import PlanLayer
from vggspec.planner.lower import Plan
from vggspec.planner.summary import totals_lines

GROUP_FONT, TITLE_FONT = 12.0, 14.0
PAD, COLUMN_GAP, ROW_GAP = 8.0, 10.0, 4.0
SWATCH = 12.0  # the colour square before a label's name, and its room
BOX_GAP, THIN_GAP = 5.0, 1.0
COLUMN_FILL = "#f3f5f7"


@dataclass
class _Column:
    """A group's slots (indices of the layout's slots) and its place."""

    group: int
    slots: list[int]
    x: float = 0.0
    width: float = 0.0


@dataclass
class _Layout:
    """The plans, their aligned slots (each plan's layer, or None), and the sizes the bands share."""

    plans: Sequence[Plan]
    slots: list[tuple[Optional[PlanLayer], ...]]
    statuses: list[str]
    largest: list[Optional[str]]  # per plan: the name of the layer holding the most parameters
    columns: list[_Column] = field(default_factory=list)
    slot_widths: list[float] = field(default_factory=list)
    row_heights: list[float] = field(default_factory=list)
    box_area: float = 0.0  # the height of the boxes' part of a band
    table_height: float = 0.0  # the height of the labels' part

    def layers(self, column: _Column, band: int) -> list[PlanLayer]:
        return [layer for row in column.slots if (layer := self.slots[row][band]) is not None]


def draw_plan(plan: Plan) -> Scene:
    """The picture of one plan."""
    groups = layer_groups(plan)
    slots = [Slot(layer, layer, groups[layer.name]) for layer in plan.layers]
    return _draw([plan], slots, [])


def draw_comparison(before: Plan, after: Plan) -> Scene:
    """Two plans one above the other, aligned layer by layer, what differs marked, the changes summed up."""
    slots = align_plans(before, after)
    footer = [f"{before.name} → {after.name}: {counts_line(slots)}", totals_change_lines(before, after)[0]]
    return _draw([before, after], slots, footer)


def _largest(plan: Plan) -> Optional[str]:
    weighted = [layer for layer in plan.layers if layer.params]
    return max(weighted, key=lambda layer: layer.params).name if weighted else None


def _labels(layout: _Layout, row: int, band: int) -> list[str]:
    layer = layout.slots[row][band]
    if layer is None:
        return []
    plan = layout.plans[band]
    share = layer.params / plan.total_params if layer.name == layout.largest[band] else None
    return label_lines(layer, share)


def _layout(plans: Sequence[Plan], slots: Sequence[Slot]) -> _Layout:
    layout = _Layout(
        plans,
        [(slot.before, slot.after)[: len(plans)] for slot in slots],
        [slot.status for slot in slots],
        [_largest(plan) for plan in plans],
    )
    for index, slot in enumerate(slots):
        if not layout.columns or layout.columns[-1].group != slot.group:
            layout.columns.append(_Column(slot.group, []))
        layout.columns[-1].slots.append(index)
    present = [[layer for layer in row if layer is not None] for row in layout.slots]
    layout.slot_widths = [max(box_size(layer)[0] for layer in layers) for layers in present]
    layout.box_area = max(box_size(layer)[1] for layers in present for layer in layers) + 2 * PAD
    bands = range(len(plans))
    layout.row_heights = [
        max(len(_labels(layout, row, band)) for band in bands) * LINE + ROW_GAP for row in range(len(slots))
    ]
    x = MARGIN
    for column in layout.columns:
        labels = [line for row in column.slots for band in bands for line in _labels(layout, row, band)]
        titles = [group_title(column.group, layers) for band in bands if (layers := layout.layers(column, band))]
        column.width = 2 * PAD + max(
            _boxes_width(layout, column),
            SWATCH + max(text_width(line, FONT) for line in labels),
            max(text_width(title, GROUP_FONT) for title in titles),
        )
        column.x, x = x, x + column.width + COLUMN_GAP
    layout.table_height = max(sum(layout.row_heights[row] for row in column.slots) for column in layout.columns)
    return layout


def _gap(layout: _Layout, row: int) -> float:
    thin = all(layer is None or is_thin(layer) for layer in layout.slots[row])
    return THIN_GAP if thin else BOX_GAP


def _boxes_width(layout: _Layout, column: _Column) -> float:
    return sum(layout.slot_widths[row] for row in column.slots) + sum(_gap(layout, row) for row in column.slots[1:])


def _draw(plans: Sequence[Plan], slots: Sequence[Slot], footer: list[str]) -> Scene:
    layout = _layout(plans, slots)
    names = " and ".join(plan.name for plan in plans)
    scene = Scene(width=0.0, height=0.0, title=f"vggspec draw {names}")
    y = MARGIN
    for band in range(len(plans)):
        y = _band(scene, layout, band, y)
    for line in footer:
        scene.add(Text(MARGIN, y + TITLE_FONT, line, size=TITLE_FONT * 0.9, bold=True))
        y += LINE * 1.3
    content = layout.columns[-1].x + layout.columns[-1].width - MARGIN
    y = legend(scene, [layer for row in layout.slots for layer in row if layer], set(layout.statuses), y, content)
    scene.add(
        Text(
            MARGIN,
            y + FONT,
            "Boxes: height √(map height), width √(channels); under each name: output shape, parameters",
            size=FONT * 0.9,
            fill="#555555",
        )
    )
    scene.width = max(MARGIN + content, *(text_box(text)[2] for text in scene.texts())) + MARGIN
    scene.height = y + LINE + MARGIN
    return scene


def _band(scene: Scene, layout: _Layout, band: int, y: float) -> float:
    """One plan's band from ``y`` down; returns the y below it."""
    plan = layout.plans[band]
    height, width, channels = plan.input_shape
    title = (
        f"{plan.name}: {plan.depth} weight layers, input {height}×{width}×{channels}, {plan.total_params:,} parameters"
    )
    scene.add(Text(MARGIN, y + TITLE_FONT, title, size=TITLE_FONT, bold=True))
    y += TITLE_FONT + LINE
    for column in layout.columns:
        layers = layout.layers(column, band)
        if layers:
            scene.add(Text(column.x + PAD, y + GROUP_FONT, group_title(column.group, layers), GROUP_FONT, bold=True))
        filled = layout.box_area + layout.table_height
        scene.add(Rect(column.x, y + LINE * 1.4, column.width, filled, COLUMN_FILL, rounded=6))
    y += LINE * 1.4
    for column in layout.columns:
        _boxes(scene, layout, column, band, y)
        _labels_table(scene, layout, column, band, y + layout.box_area)
    y += layout.box_area + layout.table_height + LINE
    content = layout.columns[-1].x + layout.columns[-1].width - MARGIN
    most = max(other.total_params for other in layout.plans)
    y = parameter_strip(scene, plan, MARGIN, y, content * plan.total_params / most if most else content)
    for line in [*totals_lines(plan), f"Multiply-accumulates per image: {plan.macs:,}"]:
        scene.add(Text(MARGIN, y + FONT, line, FONT))
        y += LINE
    return y + LINE


def _box_outline(layout: _Layout, row: int, band: int) -> tuple[Optional[str], float, bool]:
    """(stroke colour, width, dashed) of a slot's box in a band."""
    status = layout.statuses[row]
    if status != "same":
        return STATUS_STYLE[status][0], 2.5, status == "removed"
    layer = layout.slots[row][band]
    if len(layout.plans) == 1 and layer is not None and layer.name == layout.largest[band]:
        return LARGEST, 2.5, False  # in a comparison, red outlines are the changes
    return "#333333", 0.5, False


def _boxes(scene: Scene, layout: _Layout, column: _Column, band: int, top: float) -> None:
    x = column.x + (column.width - _boxes_width(layout, column)) / 2
    middle = top + layout.box_area / 2
    for position, row in enumerate(column.slots):
        if position:
            x += _gap(layout, row)
        layer = layout.slots[row][band]
        other = next((found for found in layout.slots[row] if found is not None), None)
        stroke, stroke_width, dashed = _box_outline(layout, row, band)
        if layer is not None:
            width, height = box_size(layer)
            tooltip = f"{layer.name} ({layer.type_name}): {layer.output_shape}, {layer.params:,} parameters"
            left = x + (layout.slot_widths[row] - width) / 2
            scene.add(Rect(left, middle - height / 2, width, height, kind_colour(layer), stroke, stroke_width, dashed,
                           tooltip=tooltip))  # fmt: skip
        elif other is not None:  # where the other plan has a layer: its outline, empty
            width, height = box_size(other)
            left = x + (layout.slot_widths[row] - width) / 2
            scene.add(Rect(left, middle - height / 2, width, height, "none", stroke, 1.0, True))
        x += layout.slot_widths[row]


def _labels_table(scene: Scene, layout: _Layout, column: _Column, band: int, top: float) -> None:
    y = top
    for row in column.slots:
        status, layer = layout.statuses[row], layout.slots[row][band]
        if status != "same":
            shade = STATUS_STYLE[status][1]
            scene.add(Rect(column.x + 2, y, column.width - 4, layout.row_heights[row] - 2, shade, rounded=3))
        if layer is not None:
            left = column.x + PAD
            scene.add(Rect(left, y + 3, SWATCH - 4, SWATCH - 4, kind_colour(layer), "#333333", 0.5))
            for number, line in enumerate(_labels(layout, row, band)):
                share = number == 2  # only the layer holding the most parameters has a third line: its share
                colour = LARGEST if share else ("#222222" if number == 0 else "#555555")
                scene.add(Text(left + SWATCH, y + FONT + number * LINE, line, FONT, bold=share, fill=colour))
        y += layout.row_heights[row]
