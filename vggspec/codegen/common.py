"""What both generators share: the header, the blocks of a plan, loops, and code laid out as ruff formats it.

Generated code is written already formatted (ruff's style, line length 120), so that
``ruff format --check`` leaves it as it is: a call is written on one line when it fits, else
one argument a line with a trailing comma (which ruff keeps exploded). Layer names come from
the plan; a loop is written only for a run of at least :data:`LOOP_MIN` identical convolutions
(with their batch norm and activation), which no configuration of the paper has (at most four
a block), so that the paper's networks read as its table.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence, Union

from vggspec.frameworks.construct import Argument, Construct, Expression
from vggspec.planner.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    InputLayer,
    PlanLayer,
)
from vggspec.planner.lower import Plan
from vggspec.preprocessing import CAFFE_MEAN_BGR, TORCH_MEAN_RGB, TORCH_STD_RGB

LINE_LENGTH = 120  # the project's (pyproject.toml, [tool.ruff])
INDENT = "    "
LOOP_MIN = 5  # identical convolutions in a row written as a loop; the paper's blocks have at most 4


def literal(value: Argument) -> str:
    """A Python literal as ruff writes it: strings in double quotes, floats short (``1e-5``, ``0.75``),
    tuples ``(3, 3)``; an :class:`Expression` as its source text (``512 * 7 * 7``)."""
    if isinstance(value, Expression):
        return value.source
    if isinstance(value, tuple):
        items = ", ".join(literal(item) for item in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float):
        return re.sub(r"e([-+]?)0+(\d)", r"e\1\2", repr(value))
    return repr(value)


@dataclass(frozen=True)
class Call:
    """``function(arguments)``; an argument is source text (``"64"``, ``'name="fc1"'``) or a nested call."""

    function: str
    arguments: tuple[Union[str, Call], ...] = ()

    def flat(self) -> str:
        return f"{self.function}({', '.join(a if isinstance(a, str) else a.flat() for a in self.arguments)})"

    def lines(self, indent: str, before: str = "", after: str = "") -> list[str]:
        """``indent + before + call + after`` on one line when it fits in LINE_LENGTH, else exploded as ruff
        keeps it: one argument a line (nested calls likewise), each with a trailing comma."""
        flat = f"{indent}{before}{self.flat()}{after}"
        if len(flat) <= LINE_LENGTH or not self.arguments:
            return [flat]
        inner = indent + INDENT
        lines = [f"{indent}{before}{self.function}("]
        for argument in self.arguments:
            lines += [f"{inner}{argument},"] if isinstance(argument, str) else argument.lines(inner, after=",")
        return [*lines, f"{indent}){after}"]


def call(function: str, *arguments: Union[str, Call], **keywords: str) -> Call:
    """A Call from positional source texts and keyword source texts (``name='"fc1"'``), in that order."""
    return Call(function, (*arguments, *(f"{key}={value}" for key, value in keywords.items())))


def construct_call(entry: Construct, *first: str, **more: str) -> Call:
    """A framework table's entry as source: ``first`` (source texts) before its arguments, ``more``
    (keyword source texts, e.g. a layer's name) after them."""
    arguments = [literal(value) for value in entry.args]
    keywords = {key: literal(value) for key, value in entry.kwargs}
    return call(entry.type, *first, *arguments, **keywords, **more)


def docstring(paragraphs: Sequence[Sequence[str]]) -> list[str]:
    """A module docstring of paragraphs (blank lines between): each line wrapped at LINE_LENGTH on its
    own, except lines that start with INDENT (code), kept as they are."""
    lines: list[str] = []
    for paragraph in paragraphs:
        lines += [""] if lines else []
        for line in paragraph:
            if line.startswith(INDENT):
                lines.append(line)
            else:
                start = "" if lines else '"""'
                lines += textwrap.wrap(start + line, LINE_LENGTH, break_long_words=False, break_on_hyphens=False)
    return [*lines, '"""']


def _numbers(values: Iterable[float]) -> str:
    return ", ".join(f"{float(value):g}" for value in values)


def preprocessing_text(mode: str, channels: int) -> str:
    """What the spec's ``preprocessing`` does to 0..255 pixels, in words, with the numbers of
    :mod:`vggspec.preprocessing` (which computes it)."""
    if mode == "caffe":
        text = (
            f"caffe (RGB to BGR, then minus the mean pixel {_numbers(CAFFE_MEAN_BGR)} in BGR order, on 0..255 "
            "values, as keras.applications.vgg16.preprocess_input"
        )
    elif mode == "torch":
        text = (
            f"torch (values / 255, minus the mean {_numbers(TORCH_MEAN_RGB)}, divided by the std "
            f"{_numbers(TORCH_STD_RGB)}, in RGB order, as torchvision's ImageNet weights"
        )
    else:
        text = f"{mode} (values / 127.5 - 1, to -1..1"
    if channels == 1:
        text += "; one gray channel takes the mean of the three colours' statistics"
    elif channels == 4:
        text += "; RGBA: the colours as RGB, alpha as a gray channel"
    return text + ")"


def header(
    plan: Plan, what: str, framework: str, facts: Sequence[str], example: Sequence[str], command: str
) -> list[str]:
    """The file's docstring: the spec's name and what the file is; the parameter count and the input
    with the preprocessing the weights expect (``facts``, the input's last); an ``example`` (a line
    saying what it shows, then code lines); the command that regenerates the file."""
    preprocessing = preprocessing_text(plan.preprocessing, plan.input_shape[2])
    regenerate = ["Regenerate it with:", f"{INDENT}{command}"] if command else ["Written by vggspec codegen."]
    return docstring(
        [
            [f"{plan.name}: {what} (written by vggspec; it imports only {framework})."],
            [*facts[:-1], f"{facts[-1]}, preprocessed as the weights expect: {preprocessing}."],
            example[:1],
            [f"{INDENT}{line}" for line in example[1:]],
            regenerate,
        ]
    )


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


Unit = tuple[PlanLayer, ...]  # a convolution with the batch norm and activation after it, or one layer


@dataclass(frozen=True)
class Section:
    """Layers under one comment: ``Block 1`` (the layers up to and with a pool), or the head
    (``head``: flatten and dense layers, or a global pooling)."""

    comment: str
    units: tuple[Unit, ...]
    head: bool = False


def _units(layers: Sequence[PlanLayer]) -> list[Unit]:
    units: list[list[PlanLayer]] = []
    for layer in layers:
        follows_conv = units and isinstance(units[-1][0], Conv2D) and len(units[-1]) < 3
        if isinstance(layer, (BatchNormalization, Activation)) and follows_conv:
            units[-1].append(layer)
        else:
            units.append([layer])
    return [tuple(unit) for unit in units]


def sections(plan: Plan) -> list[Section]:
    """The plan's layers after the input, in blocks (each ended by a max pool), then the head
    (flatten and dense layers, or the global pooling of a network without a top)."""
    layers = [layer for layer in plan.layers if not isinstance(layer, InputLayer)]
    body = [layer for layer in layers if len(layer.output_shape) == 3]  # feature maps (H, W, C)
    head = [layer for layer in layers if len(layer.output_shape) == 1]  # (features,): flatten or pooling on
    blocks: list[list[PlanLayer]] = [[]]
    for layer in body:
        blocks[-1].append(layer)
        if layer.ends_block:
            blocks.append([])
    found = [Section(f"Block {n}", tuple(_units(block))) for n, block in enumerate(blocks, start=1) if block]
    if head:
        if isinstance(head[0], GlobalAveragePooling2D):
            comment = "Global average pooling (no top)"
        elif isinstance(head[0], GlobalMaxPooling2D):
            comment = "Global max pooling (no top)"
        else:
            comment = "Classification block"
        found.append(Section(comment, tuple(_units(head)), head=True))
    return found


@dataclass(frozen=True)
class Loop:
    """Units that differ only in their number (``block1_conv2`` ... ``block1_conv8``): one loop."""

    units: tuple[Unit, ...]
    first: int  # the number of the first unit's layer, e.g. 2 for block1_conv2

    @property
    def names(self) -> str:
        return f"{self.units[0][0].name} ... {self.units[-1][0].name}"


def name_template(unit: Unit) -> Optional[tuple[list[str], int]]:
    """The unit's names as f-string literals over ``i`` (``f"block1_conv{i}"``, ``f"block1_conv{i}_bn"``)
    and its number; None when its names do not follow one numbered pattern."""
    match = re.fullmatch(r"(.*?)(\d+)", unit[0].name)
    if match is None or not isinstance(unit[0], Conv2D):
        return None
    stem, number = match.group(0), int(match.group(2))
    if any(not layer.name.startswith(stem) for layer in unit):
        return None
    return [f'f"{match.group(1)}{{i}}{layer.name[len(stem) :]}"' for layer in unit], number


def with_loops(units: Sequence[Unit], form: Callable[[Unit], Optional[str]]) -> list[Union[Unit, Loop]]:
    """``units`` with every run of at least LOOP_MIN consecutively numbered units of the same ``form``
    (the unit's code with its number left out; None: never looped) as one Loop."""
    keys: list[Optional[tuple[str, int]]] = []
    for unit in units:
        shape, template = form(unit), name_template(unit)
        keys.append(None if shape is None or template is None else (shape, template[1]))
    found: list[Union[Unit, Loop]] = []
    index = 0
    while index < len(units):
        end, key = index + 1, keys[index]
        if key is not None:
            while end < len(units) and keys[end] == (key[0], key[1] + end - index):
                end += 1
        if key is not None and end - index >= LOOP_MIN:
            found.append(Loop(tuple(units[index:end]), key[1]))
        else:
            found += units[index:end]
        index = end
    return found
