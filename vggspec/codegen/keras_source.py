"""A plan as a standalone Keras 3 file: a ``Sequential`` model, one ``model.add`` a layer, or a functional
model written as ``keras.applications.vgg16`` writes it.

Every layer is Keras' own class with the arguments a person writes (``layers.Conv2D(64, (3, 3),
activation="relu", padding="same", name="block1_conv1")``), named as the plan names it (the Keras
backend's and ``keras.applications``' names), so Keras weight files load by name and by order.
LRN, which Keras lacks, is a small layer class in the file that computes what
:mod:`vggspec_keras.lrn` computes, in the same order of operations.
"""

from __future__ import annotations

from typing import Optional

from vggspec.codegen.common import (
    INDENT,
    Call,
    Loop,
    Unit,
    call,
    header,
    literal,
    name_template,
    sections,
    with_loops,
)
from vggspec.errors import VggspecError
from vggspec.planner.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    LocalResponseNormalization,
    MaxPooling2D,
    PlanLayer,
)
from vggspec.planner.lower import Plan, lower_to_plan

STYLES = ("sequential", "functional")
# Keras' defaults for BatchNormalization: arguments equal to them are not written
KERAS_BATCH_NORM_DEFAULTS = {"epsilon": 1e-3, "momentum": 0.99}

LRN_CLASS = '''\
@keras.saving.register_keras_serializable()
class LocalResponseNormalization(layers.Layer):
    """Local response normalization across channels, as torch.nn.LocalResponseNorm(size, alpha, beta, k).

    On channels-last maps: out[..., c] = x[..., c] / (k + alpha / size * s) ** beta, where s sums x ** 2
    over the channels c - size // 2 ... c + (size - 1) // 2 (those outside the map count as 0).
    """

    def __init__(self, size=5, alpha=1e-4, beta=0.75, k=2.0, **kwargs):
        super().__init__(**kwargs)
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def call(self, inputs):
        channels = inputs.shape[-1]
        # zero padding on the channel axis only: size // 2 before, (size - 1) // 2 after
        padded = ops.pad(ops.square(inputs), [[0, 0], [0, 0], [0, 0], [self.size // 2, (self.size - 1) // 2]])
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset : offset + channels]
        return inputs / ops.power(self.k + (self.alpha / self.size) * window_sum, self.beta)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta, "k": self.k}
'''


def _pair(value: int) -> str:
    return f"({value}, {value})"


def layer_call(layer: PlanLayer, name: str) -> Call:
    """The Keras layer of one plan layer as source; ``name`` is the name's source text (a literal or an f-string)."""
    if isinstance(layer, Conv2D):
        options = {"strides": _pair(layer.strides)} if layer.strides != 1 else {}
        if layer.activation is not None:
            options["activation"] = literal(layer.activation)
        return call(
            "layers.Conv2D",
            str(layer.filters),
            _pair(layer.kernel_size),
            **options,
            padding=literal(layer.padding),
            name=name,
        )
    if isinstance(layer, BatchNormalization):
        values = {"epsilon": layer.epsilon, "momentum": layer.momentum}
        options = {key: literal(value) for key, value in values.items() if value != KERAS_BATCH_NORM_DEFAULTS[key]}
        return call("layers.BatchNormalization", **options, name=name)
    if isinstance(layer, Activation):
        return call("layers.Activation", literal(layer.activation), name=name)
    if isinstance(layer, LocalResponseNormalization):
        values = {"size": layer.size, "alpha": layer.alpha, "beta": layer.beta, "k": layer.k}
        return call("LocalResponseNormalization", **{key: literal(value) for key, value in values.items()}, name=name)
    if isinstance(layer, MaxPooling2D):
        return call("layers.MaxPooling2D", _pair(layer.pool_size), strides=_pair(layer.strides), name=name)
    if isinstance(layer, Flatten):
        return call("layers.Flatten", name=name)
    if isinstance(layer, Dense):
        options = {"activation": literal(layer.activation)} if layer.activation is not None else {}
        return call("layers.Dense", str(layer.units), **options, name=name)
    if isinstance(layer, Dropout):
        return call("layers.Dropout", literal(layer.rate), name=name)
    if isinstance(layer, GlobalAveragePooling2D):
        return call("layers.GlobalAveragePooling2D", name=name)
    if isinstance(layer, GlobalMaxPooling2D):
        return call("layers.GlobalMaxPooling2D", name=name)
    raise VggspecError(f"codegen: layer {layer.name}: no Keras code for a {layer.type_name}")


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
    from vggspec.weights.registry import REGISTRY

    ours = [(layer.name, layer.weights) for layer in plan.weighted_layers()]
    for weight_file in REGISTRY:
        mapping = {**spec_to_mapping(load_spec(weight_file.spec)), "include_top": weight_file.include_top}
        theirs = lower_to_plan(spec_from_mapping(mapping)).weighted_layers()
        if ours == [(layer.name, layer.weights) for layer in theirs]:
            return weight_file.file_name
    return None


def keras_source(plan: Plan, style: str, command: str) -> str:
    """The Keras file of ``plan`` in ``style`` ("sequential" or "functional"); ``command`` regenerates it."""
    if style not in STYLES:
        raise VggspecError(f"style: expected one of {', '.join(STYLES)} for keras, received {style!r}", setting="style")
    uses_lrn = any(isinstance(layer, LocalResponseNormalization) for layer in plan.layers)
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
        lines += ["", *LRN_CLASS.splitlines(), ""]
    model_type = "keras.Sequential" if style == "sequential" else "keras.Model"
    lines += [
        "",
        f"def build() -> {model_type}:",
        f'{INDENT}"""The model with fresh weights (Keras\' default initialisers) for {shape} inputs, channels last."""',
    ]
    if style == "sequential":
        lines += call("keras.Sequential", name=literal(plan.name)).lines(INDENT, "model = ")
        lines += call("model.add", call("keras.Input", shape=shape)).lines(INDENT)
        lines += _body(plan, style)
        lines.append(f"{INDENT}return model")
    else:
        first = plan.layers[0]
        lines += call("keras.Input", shape=shape, name=literal(first.name)).lines(INDENT, "inputs = ")
        lines += _body(plan, style)
        lines += call("keras.Model", "inputs", "x", name=literal(plan.name)).lines(INDENT, "return ")
    lines += ["", "", 'if __name__ == "__main__":', f"{INDENT}build().summary()"]
    return "\n".join(lines) + "\n"
