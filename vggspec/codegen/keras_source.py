"""A plan as a standalone Keras 3 file: a ``Sequential`` model, one ``model.add`` a layer, or a functional
model written as ``keras.applications.vgg16`` writes it.

Every layer is its entry of Keras' layer table (:mod:`vggspec.frameworks.keras_layers`, from which the
Keras backend builds its models) written as source, named as the plan names it: ``layers.Conv2D(64,
(3, 3), activation="relu", padding="same", name="block1_conv1")``, so Keras weight files load by name
and by order. LRN, which Keras lacks, is vggspec's own layer class, whose source the file carries:
copied from the Keras backend's :mod:`vggspec_keras.lrn`, its one definition (read as text: nothing
here imports Keras).
"""

from __future__ import annotations

import ast
import importlib.util
from functools import cache
from pathlib import Path
from typing import Optional

from vggspec.codegen.common import (
    INDENT,
    Call,
    Loop,
    Unit,
    call,
    construct_call,
    header,
    literal,
    name_template,
    sections,
    with_loops,
)
from vggspec.errors import VggspecError
from vggspec.frameworks.keras_layers import LRN, keras_layer
from vggspec.planner.layers import PlanLayer
from vggspec.planner.lower import Plan, lower_to_plan

STYLES = ("sequential", "functional")


@cache
def lrn_class_source() -> str:
    """The source of the Keras backend's LRN layer class, its decorator included (``vggspec_keras/lrn.py``)."""
    package = importlib.util.find_spec("vggspec_keras")  # a top-level name: found without importing it
    if package is None or package.origin is None:
        raise VggspecError("codegen: expected the keras backend's package vggspec_keras (for LRN), received none")
    text = (Path(package.origin).parent / "lrn.py").read_text(encoding="utf-8")
    found = next(node for node in ast.parse(text).body if isinstance(node, ast.ClassDef) and node.name == LRN)
    first = min([found.lineno, *(decorator.lineno for decorator in found.decorator_list)])
    return "\n".join(text.splitlines()[first - 1 : found.end_lineno])


def layer_call(layer: PlanLayer, name: str) -> Call:
    """The Keras layer of one plan layer as source; ``name`` is the name's source text (a literal or an f-string)."""
    try:
        return construct_call(keras_layer(layer), name=name)
    except VggspecError as error:
        raise VggspecError(f"codegen: {error}") from None


class _Writer:
    """The body of ``build()`` for one style: a statement per layer, adding to ``model`` or calling on ``x``."""

    def __init__(self, style: str):
        self.style = style
        self.current = "inputs"  # the functional style's tensor so far

    def statement(self, layer_call: Call, indent: str) -> list[str]:
        if self.style == "sequential":
            return Call("model.add", (layer_call,)).lines(indent)
        lines = layer_call.lines(indent, "x = ", f"({self.current})")
        self.current = "x"
        return lines

    def unit(self, unit: Unit, names: list[str], indent: str) -> list[str]:
        lines: list[str] = []
        for layer, name in zip(unit, names):
            lines += self.statement(layer_call(layer, name), indent)
        return lines

    def loop(self, loop: Loop) -> list[str]:
        template = name_template(loop.units[0])
        assert template is not None  # a Loop is made only of numbered units
        lines = [] if self.current == "x" or self.style == "sequential" else [f"{INDENT}x = {self.current}"]
        self.current = "x"
        lines.append(f"{INDENT}for i in range({loop.first}, {loop.first + len(loop.units)}):")
        return lines + self.unit(loop.units[0], template[0], INDENT * 2)


def _loop_form(unit: Unit) -> Optional[str]:
    """The unit's code with its names as f-strings over ``i`` (equal for the units of a loop)."""
    template = name_template(unit)
    if template is None:
        return None
    return "\n".join(layer_call(layer, name).flat() for layer, name in zip(unit, template[0]))


def _body(plan: Plan, style: str) -> list[str]:
    writer = _Writer(style)
    lines: list[str] = []
    for section in sections(plan):
        lines += ["", f"{INDENT}# {section.comment}"]
        for item in with_loops(section.units, _loop_form):
            if isinstance(item, Loop):
                lines += writer.loop(item)
            else:
                lines += writer.unit(item, [literal(layer.name) for layer in item], INDENT)
    return lines


def known_weight_file(plan: Plan) -> Optional[str]:
    """The name of a published Keras weight file (vggspec's registry) whose layers are the plan's, if any."""
    from vggspec.spec.load import load_spec, spec_from_mapping, spec_to_mapping
    from vggspec.weights.registry import KERAS, REGISTRY

    ours = [(layer.name, layer.weights) for layer in plan.weighted_layers()]
    for weight_file in (entry for entry in REGISTRY if entry.origin == KERAS):  # Keras' load_weights reads these only
        mapping = {**spec_to_mapping(load_spec(weight_file.spec)), "include_top": weight_file.include_top}
        theirs = lower_to_plan(spec_from_mapping(mapping)).weighted_layers()
        if ours == [(layer.name, layer.weights) for layer in theirs]:
            return weight_file.file_name
    return None


def keras_source(plan: Plan, style: str, command: str) -> str:
    """The Keras file of ``plan`` in ``style`` ("sequential" or "functional"); ``command`` regenerates it."""
    if style not in STYLES:
        raise VggspecError(f"style: expected one of {', '.join(STYLES)} for keras, received {style!r}", setting="style")
    uses_lrn = any(keras_layer(layer).type == LRN for layer in plan.layers)
    shape = f"({', '.join(map(str, plan.input_shape))})"
    what = (
        "VGG as a Keras Sequential model, one model.add per layer"
        if style == "sequential"
        else "VGG as a Keras functional model, written as keras.applications.vgg16 writes it"
    )
    facts = [
        f"Parameters: {plan.total_params:,} ({plan.trainable_params:,} trainable, {plan.non_trainable_params:,} "
        "non-trainable), as model.summary() counts them.",
        f"Input: {shape} images, channels last",
    ]
    example = [
        f"Layers are named as keras.applications names them ({plan.layers[1].name} ... {plan.layers[-1].name}), so "
        "Keras .h5 weight files of this network load by order (or with by_name=True):",
        "model = build()",
        f"model.load_weights({literal(known_weight_file(plan) or 'weights.h5')})",
    ]
    lines = header(plan, what, "keras", facts, example, command)
    lines += ["", "import keras", "from keras import layers, ops" if uses_lrn else "from keras import layers", ""]
    if uses_lrn:
        lines += ["", *lrn_class_source().splitlines(), ""]
    model_type = "keras.Sequential" if style == "sequential" else "keras.Model"
    lines += [
        "",
        f"def build() -> {model_type}:",
        f'{INDENT}"""The model with fresh weights (Keras\' default initialisers) for {shape} inputs, channels last."""',
    ]
    if style == "sequential":
        lines += call("keras.Sequential", name=literal(plan.name)).lines(INDENT, "model = ")
        lines += call("model.add", construct_call(keras_layer(plan.layers[0]))).lines(INDENT)
        lines += _body(plan, style)
        lines.append(f"{INDENT}return model")
    else:
        first = plan.layers[0]
        lines += construct_call(keras_layer(first), name=literal(first.name)).lines(INDENT, "inputs = ")
        lines += _body(plan, style)
        lines += call("keras.Model", "inputs", "x", name=literal(plan.name)).lines(INDENT, "return ")
    lines += ["", "", 'if __name__ == "__main__":', f"{INDENT}build().summary()"]
    return "\n".join(lines) + "\n"
