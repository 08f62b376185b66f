"""A plan as a standalone PyTorch file: torchvision's VGG module tree written out, and ``build()``.

The class keeps torchvision's attributes (``features``, ``avgpool``, ``classifier``; ``pool`` for a
network without a top) and its module order, which :mod:`vggspec.weights.torchvision` writes down
and this generator checks every layer against, so the ``state_dict`` keys are torchvision's and the
torch backend's: ``features.0.weight`` ... ``classifier.6.bias``. Each module is torch's own class
with the arguments torchvision writes (``nn.Conv2d(3, 64, kernel_size=3, padding=1)``).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

from vggspec.codegen.common import (
    INDENT,
    LINE_LENGTH,
    Call,
    Loop,
    Unit,
    call,
    header,
    literal,
    plural,
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
    InputLayer,
    LocalResponseNormalization,
    MaxPooling2D,
    PlanLayer,
)
from vggspec.planner.lower import Plan
from vggspec.weights.torchvision import CLASSIFIER, FEATURES, module_slots, torch_key

# The plan's activations as torch modules (in place where torchvision has them so), each equal to Keras'
ACTIVATIONS = {
    "relu": call("nn.ReLU", inplace="True"),
    "relu6": call("nn.ReLU6", inplace="True"),
    "elu": call("nn.ELU"),  # alpha 1, as Keras
    "selu": call("nn.SELU"),
    "gelu": call("nn.GELU"),  # exact (erf), as Keras' default
    "silu": call("nn.SiLU"),
    "tanh": call("nn.Tanh"),
    "sigmoid": call("nn.Sigmoid"),
}
CLASSIFIER_ACTIVATIONS = {"softmax": call("nn.Softmax", dim="1"), "sigmoid": call("nn.Sigmoid")}
TORCH_BATCH_NORM_DEFAULTS = {"eps": 1e-5, "momentum": 0.1}

Module = tuple[Call, str]  # a module's source and its trailing comment ("" for none)

INITIALISATION = [
    "for module in model.modules():",
    "    if isinstance(module, nn.Conv2d):",
    '        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")',
    "        nn.init.zeros_(module.bias)",
    "    elif isinstance(module, nn.BatchNorm2d):",
    "        nn.init.ones_(module.weight)",
    "        nn.init.zeros_(module.bias)",
    "    elif isinstance(module, nn.Linear):",
    "        nn.init.normal_(module.weight, 0.0, 0.01)",
    "        nn.init.zeros_(module.bias)",
]


def _activation(name: Optional[str], table: dict[str, Call], layer: PlanLayer) -> Call:
    if name is None or name not in table:
        raise VggspecError(f"codegen: layer {layer.name}: no torch module for the activation {name!r}")
    return table[name]


def layer_modules(layer: PlanLayer, plan: Plan) -> list[Module]:
    """The torch modules of one plan layer as source, in torchvision's order, the layer's own module
    commented with its name; none for the input, flatten, dropout (Dense's) and global pooling (``pool``)."""
    if isinstance(layer, Conv2D):
        options = {"stride": str(layer.strides)} if layer.strides != 1 else {}
        if layer.kernel_size // 2:
            options["padding"] = str(layer.kernel_size // 2)
        conv = call(
            "nn.Conv2d", str(layer.input_channels), str(layer.filters), kernel_size=str(layer.kernel_size), **options
        )
        fused = [(_activation(layer.activation, ACTIVATIONS, layer), "")] if layer.activation else []
        return [(conv, layer.name), *fused]
    if isinstance(layer, BatchNormalization):
        # torch's momentum weighs the new batch, Keras' (the plan's) the running average
        values = {"eps": layer.epsilon, "momentum": round(1.0 - layer.momentum, 12)}
        options = {key: literal(value) for key, value in values.items() if value != TORCH_BATCH_NORM_DEFAULTS[key]}
        return [(call("nn.BatchNorm2d", str(layer.channels), **options), layer.name)]
    if isinstance(layer, Activation):
        return [(_activation(layer.activation, ACTIVATIONS, layer), layer.name)]
    if isinstance(layer, LocalResponseNormalization):
        options = {"alpha": literal(layer.alpha), "beta": literal(layer.beta), "k": literal(layer.k)}
        return [(call("nn.LocalResponseNorm", str(layer.size), **options), layer.name)]
    if isinstance(layer, MaxPooling2D):
        return [(call("nn.MaxPool2d", kernel_size=str(layer.pool_size), stride=str(layer.strides)), layer.name)]
    if isinstance(layer, Dense):
        if layer.reads_flattened:  # as torchvision writes it: 512 * 7 * 7 (channels first, as torch flattens)
            height, width, channels = layer.reads_flattened
            features = f"{channels} * {height} * {width}"
        else:
            features = str(layer.input_features)
        linear = (call("nn.Linear", features, str(layer.units)), layer.name)
        if layer.classifier:
            if layer.activation is None:
                return [linear]
            return [linear, (_activation(layer.activation, CLASSIFIER_ACTIVATIONS, layer), "")]
        rate = next((d.rate for d in plan.layers if isinstance(d, Dropout) and d.follows == layer.name), 0.0)
        unused = "dropout 0 in the spec, kept for torchvision's indices"
        dropout = (call("nn.Dropout", p=literal(float(rate))), "" if rate else unused)
        return [linear, (_activation(layer.activation, ACTIVATIONS, layer), ""), dropout]
    if isinstance(layer, (InputLayer, Flatten, Dropout, GlobalAveragePooling2D, GlobalMaxPooling2D)):
        return []
    raise VggspecError(f"codegen: layer {layer.name}: no torch code for a {layer.type_name}")


def _check_layout(plan: Plan) -> None:
    """Refuse to write modules anywhere but where torchvision's layout puts them (its state_dict keys)."""
    slots = module_slots(plan)
    counts = {FEATURES: 0, CLASSIFIER: 0}
    for layer in plan.layers:
        modules = layer_modules(layer, plan)
        if not modules:
            continue
        sequence = CLASSIFIER if isinstance(layer, Dense) else FEATURES
        slot = slots.get(layer.name)
        if slot is None or (slot.sequence, slot.first, slot.count) != (sequence, counts[sequence], len(modules)):
            raise VggspecError(f"codegen: layer {layer.name}: its modules would not sit at torchvision's {slot}")
        counts[sequence] += len(modules)


def _items(modules: Sequence[Module], indent: str) -> list[str]:
    """Modules as the items of a call or a list: one a line, a trailing comma and the comment after each."""
    lines: list[str] = []
    for module, comment in modules:
        lines += module.lines(indent, after=f",  # {comment}" if comment else ",")
    return lines


def _list(indent: str, before: str, modules: Sequence[Call]) -> list[str]:
    """``before[a, b, c]`` on one line when it fits, else one module a line."""
    flat = f"{indent}{before}[{', '.join(module.flat() for module in modules)}]"
    if len(flat) <= LINE_LENGTH:
        return [flat]
    return [f"{indent}{before}[", *_items([(module, "") for module in modules], indent + INDENT), f"{indent}]"]


def _features(plan: Plan) -> list[str]:
    """``self.features = nn.Sequential(...)`` with a comment a block; where a block repeats one
    convolution LOOP_MIN times or more, a list built up with loops, then ``nn.Sequential(*features)``."""
    indent, inner = INDENT * 2, INDENT * 3
    entries: list[Union[str, list[Module], Loop]] = []  # a block's comment, a unit's modules, a loop
    for section in sections(plan):
        if not section.head:
            entries.append(section.comment)
            for unit in with_loops(section.units, lambda unit: _loop_form(unit, plan)):
                entries.append(unit if isinstance(unit, Loop) else _unit_modules(unit, plan))
    if not any(isinstance(entry, Loop) for entry in entries):
        lines = [f"{indent}self.features = nn.Sequential("]
        for entry in entries:
            if isinstance(entry, str):
                lines.append(f"{inner}# {entry}")
            elif isinstance(entry, list):
                lines += _items(entry, inner)
        return [*lines, f"{indent})"]
    # with loops: lists of items (their lines) and loops (with the comment of the block they start)
    segments: list[Union[list[str], tuple[Optional[str], Loop]]] = []
    pending: Optional[str] = None
    items: Optional[list[str]] = None  # the list being written
    for entry in entries:
        if isinstance(entry, str):
            pending = entry
        elif isinstance(entry, Loop):
            segments.append((pending, entry))
            pending, items = None, None
        else:
            if items is None:
                items = []
                segments.append(items)
            items += [f"{inner}# {pending}"] * (pending is not None) + _items(entry, inner)
            pending = None
    lines, declared = [], False
    for segment in segments:
        if isinstance(segment, list):
            start = "features += [" if declared else "features: list[nn.Module] = ["
            lines += [f"{indent}{start}", *segment, f"{indent}]"]
        else:
            comment, loop = segment
            lines += [] if declared else [f"{indent}features: list[nn.Module] = []"]
            lines += [f"{indent}# {comment}"] if comment else []
            lines.append(f"{indent}for _ in range({len(loop.units)}):  # {loop.names}")
            modules = [module for module, _ in _unit_modules(loop.units[0], plan)]
            lines += _list(indent + INDENT, "features += ", modules)
        declared = True
    return [*lines, f"{indent}self.features = nn.Sequential(*features)"]


def _unit_modules(unit: Unit, plan: Plan) -> list[Module]:
    return [module for layer in unit for module in layer_modules(layer, plan)]


def _loop_form(unit: Unit, plan: Plan) -> Optional[str]:
    """A convolution unit's modules without comments (equal for the units of a loop); None for other units."""
    if not isinstance(unit[0], Conv2D):
        return None
    return ", ".join(module.flat() for module, _ in _unit_modules(unit, plan))


def _outputs(plan: Plan) -> str:
    last = plan.layers[-1]
    classifier = plan.classifier
    if classifier is not None:
        kind = {"softmax": "class probabilities (softmax)", "sigmoid": "sigmoid scores", None: "logits"}
        return f"(batch, {classifier.units}) {kind.get(classifier.activation, classifier.activation)}"
    if isinstance(last, (GlobalAveragePooling2D, GlobalMaxPooling2D)):
        return f"(batch, {last.output_shape[0]}) pooled features"
    height, width, channels = last.output_shape
    return f"(batch, {channels}, {height}, {width}) feature maps"


def _head(plan: Plan) -> tuple[list[str], list[str], str]:
    """What follows ``features``: ``__init__``'s lines, ``forward``'s statements, and the class in words."""
    indent = INDENT * 2
    flatten = next((layer for layer in plan.layers if isinstance(layer, Flatten)), None)
    last = plan.layers[-1]
    if flatten is not None:
        height, width, _ = flatten.input_shape
        modules = [module for layer in plan.layers if isinstance(layer, Dense) for module in layer_modules(layer, plan)]
        attributes = [
            f"{indent}self.avgpool = nn.AdaptiveAvgPool2d(({height}, {width}))",
            f"{indent}self.classifier = nn.Sequential(",
            *_items(modules, indent + INDENT),
            f"{indent})",
        ]
        forward = ["x = self.features(x)", "x = self.avgpool(x)", "x = torch.flatten(x, 1)"]
        return attributes, [*forward, "return self.classifier(x)"], "features, then avgpool and classifier"
    if isinstance(last, (GlobalAveragePooling2D, GlobalMaxPooling2D)):
        pool = "AdaptiveAvgPool2d" if isinstance(last, GlobalAveragePooling2D) else "AdaptiveMaxPool2d"
        forward = ["x = self.features(x)", "return torch.flatten(self.pool(x), 1)"]
        return [f"{indent}self.pool = nn.{pool}(1)"], forward, "features, then global pooling (no top)"
    return [], ["return self.features(x)"], "features only (no top)"


def _key_range(plan: Plan) -> str:
    """The first and the last state_dict key: ``features.0.weight ... classifier.6.bias``."""
    slots = module_slots(plan)
    layers = plan.weighted_layers()
    first, last = layers[0], layers[-1]
    return f"{torch_key(slots[first.name], first, first.weights[0][0])} ... " + torch_key(
        slots[last.name], last, last.weights[-1][0]
    )


def torch_source(plan: Plan, command: str) -> str:
    """The PyTorch file of ``plan``; ``command`` regenerates it."""
    _check_layout(plan)
    height, width, channels = plan.input_shape
    buffers = plan.non_trainable_params
    facts = [
        f"Parameters: {plan.trainable_params:,}"
        + (f", and {plural(buffers, 'value')} in buffers (batch norm's running means and variances)" if buffers else "")
        + ", as sum(p.numel() for p in model.parameters()) counts them.",
        f"Input: (batch, {channels}, {height}, {width}) float32 images, channels first (NCHW)",
    ]
    example = [
        f"The state_dict keys are torchvision's ({_key_range(plan)}), so torchvision's checkpoints of this network "
        "and the .pt files of vggspec build --backend torch and vggspec convert load strictly:",
        "model = build()",
        f'model.load_state_dict(torch.load("{plan.name if len(plan.name) <= 60 else "weights"}.pt"), strict=True)',
    ]
    attributes, forward, parts = _head(plan)
    lines = header(plan, "torchvision's VGG as a PyTorch nn.Module", "torch", facts, example, command)
    lines += ["", "import torch", "from torch import nn", "", ""]
    lines += [
        "class VGG(nn.Module):",
        f'{INDENT}"""torchvision\'s VGG module tree: {parts}."""',
        "",
        f"{INDENT}def __init__(self) -> None:",
        f"{INDENT * 2}super().__init__()",
        *_features(plan),
        *attributes,
        "",
        f"{INDENT}def forward(self, x: torch.Tensor) -> torch.Tensor:",
        f'{INDENT * 2}"""(batch, {channels}, {height}, {width}) images -> {_outputs(plan)}."""',
        *(f"{INDENT * 2}{line}" for line in forward),
        "",
        "",
        "def build() -> VGG:",
        f'{INDENT}"""The network, initialised as torchvision initialises VGG (conv He-normal, linear N(0, 0.01))."""',
        f"{INDENT}model = VGG()",
        *(f"{INDENT}{line}" for line in INITIALISATION),
        f"{INDENT}return model",
        "",
        "",
        'if __name__ == "__main__":',
        f"{INDENT}model = build()",
        f"{INDENT}print(model)",
        f'{INDENT}print(f"{{sum(p.numel() for p in model.parameters()):,}} parameters")',
    ]
    return "\n".join(lines) + "\n"
