"""A plan as a standalone PyTorch file: torchvision's VGG module tree written out, and ``build()``.

Each plan layer's modules are its entry of the torch table (:mod:`vggspec.frameworks.torch_modules`,
from which the torch backend builds its network) written as source, torch's own classes with the
arguments torchvision writes (``nn.Conv2d(3, 64, kernel_size=3, padding=1)``). The class keeps
torchvision's attributes (``features``, ``avgpool``, ``classifier``; ``pool`` for a network without a
top) and its module order, so the ``state_dict`` keys are torchvision's and the torch backend's:
``features.0.weight`` ... ``classifier.6.bias``. ``build()`` applies the table's initialisation.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

from vggspec.codegen.common import (
    INDENT,
    LINE_LENGTH,
    Call,
    Loop,
    Unit,
    construct_call,
    header,
    plural,
    sections,
    with_loops,
)
from vggspec.errors import VggspecError
from vggspec.frameworks.torch_modules import (
    AVGPOOL,
    CLASSIFIER,
    FEATURES,
    INITIALISATION,
    POOL,
    Modules,
    module_slots,
    torch_modules,
)
from vggspec.planner.layers import Conv2D, GlobalAveragePooling2D, GlobalMaxPooling2D, PlanLayer
from vggspec.planner.lower import Plan
from vggspec.weights.torchvision import torch_key

Module = tuple[Call, str]  # a module's source and its trailing comment ("" for none)


def _placed(layer: PlanLayer, plan: Plan) -> Modules:
    try:
        return torch_modules(layer, plan)
    except VggspecError as error:
        raise VggspecError(f"codegen: {error}") from None


def layer_modules(layer: PlanLayer, plan: Plan, attribute: str = FEATURES) -> list[Module]:
    """The modules one plan layer adds to the sequence ``attribute`` as source, the layer's own module
    commented with its name; none for a layer of another attribute (or none)."""
    placed = _placed(layer, plan)
    if placed.attribute != attribute:
        return []
    return [
        (construct_call(entry), layer.name if index == 0 else entry.comment)
        for index, entry in enumerate(placed.modules)
    ]


def _initialisation() -> list[str]:
    """``build()``'s loop over the modules: the table's initialisation, a branch per module class."""
    lines = ["for module in model.modules():"]
    for index, (module_class, steps) in enumerate(INITIALISATION.items()):
        lines.append(f"{INDENT}{'if' if index == 0 else 'elif'} isinstance(module, {module_class}):")
        lines += [f"{INDENT * 2}{construct_call(entry, f'module.{parameter}').flat()}" for parameter, entry in steps]
    return lines


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


def _attribute(plan: Plan, attribute: str) -> Optional[Call]:
    """The module a plan layer sets as ``attribute`` (``avgpool``, ``pool``) as source; None when none does."""
    for layer in plan.layers:
        placed = _placed(layer, plan)
        if placed.attribute == attribute:
            return construct_call(placed.modules[0])
    return None


def _head(plan: Plan) -> tuple[list[str], list[str], str]:
    """What follows ``features``: ``__init__``'s lines, ``forward``'s statements, and the class in words."""
    indent = INDENT * 2
    avgpool, pool = _attribute(plan, AVGPOOL), _attribute(plan, POOL)
    if avgpool is not None:
        modules = [module for layer in plan.layers for module in layer_modules(layer, plan, CLASSIFIER)]
        attributes = [
            *avgpool.lines(indent, "self.avgpool = "),
            f"{indent}self.classifier = nn.Sequential(",
            *_items(modules, indent + INDENT),
            f"{indent})",
        ]
        forward = ["x = self.features(x)", "x = self.avgpool(x)", "x = torch.flatten(x, 1)"]
        return attributes, [*forward, "return self.classifier(x)"], "features, then avgpool and classifier"
    if pool is not None:
        forward = ["x = self.features(x)", "return torch.flatten(self.pool(x), 1)"]
        return pool.lines(indent, "self.pool = "), forward, "features, then global pooling (no top)"
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
        "and the .pt files that vggspec build and vggspec convert write load strictly:",
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
        *(f"{INDENT}{line}" for line in _initialisation()),
        f"{INDENT}return model",
        "",
        "",
        'if __name__ == "__main__":',
        f"{INDENT}model = build()",
        f"{INDENT}print(model)",
        f'{INDENT}print(f"{{sum(p.numel() for p in model.parameters()):,}} parameters")',
    ]
    return "\n".join(lines) + "\n"
