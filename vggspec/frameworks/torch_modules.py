"""What each plan layer becomes in PyTorch: torchvision's VGG module tree, as data.

torchvision's VGG has ``features`` and ``classifier`` (two ``nn.Sequential``) and, between
them, ``avgpool``; vggspec adds ``pool`` for a network without a top (the global pooling of
``keras.applications``' ``pooling``). A plan layer becomes :class:`Modules`: the modules it
appends to one of them, in torchvision's order:

- a convolution: ``nn.Conv2d``, then its activation as a module of its own (with batch
  norm the convolution, then the ``BatchNorm2d`` and the activation, which are plan layers
  of their own); LRN and max pooling: one module each;
- a hidden dense layer: ``nn.Linear``, its activation and an ``nn.Dropout`` (there even at
  rate 0, so that fc2 is ``classifier.3`` in every VGG: the plan's dropout layer has no module
  of its own); the classifier: ``nn.Linear``, then its activation when it has one;
- flatten: ``avgpool``, adaptive average pooling to the map it flattens (torchvision's
  ``(7, 7)``); global pooling: ``pool``; the input and dropout: no module.

A module's index in its sequence counts every module before it, the parameter-free ones
included, so VGG16's convolutions are ``features.0, 2, 5, ...`` and its dense layers
``classifier.0/3/6``: :func:`module_slots` counts them from this table, which is therefore
where torchvision's state-dict keys come from. The torch backend instantiates these modules
and the code generator prints them; :data:`INITIALISATION` is torchvision's VGG
initialisation, which both apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from vggspec.errors import VggspecError
from vggspec.frameworks.construct import Construct, Expression, construct
from vggspec.planner import layers as plan_layers
from vggspec.planner.layers import PlanLayer
from vggspec.planner.lower import Plan

FEATURES, CLASSIFIER, AVGPOOL, POOL = "features", "classifier", "avgpool", "pool"
SEQUENCES = (FEATURES, CLASSIFIER)  # the two nn.Sequential; a module's index counts within one of them

# The plan's activations (vggspec.planner.activations) as torch modules, each equal to Keras' function
ACTIVATIONS: dict[str, Construct] = {
    "relu": construct("nn.ReLU", inplace=True),  # in place, as torchvision
    "relu6": construct("nn.ReLU6", inplace=True),
    "elu": construct("nn.ELU"),  # alpha 1, as Keras
    "selu": construct("nn.SELU"),
    "gelu": construct("nn.GELU"),  # exact (erf), as Keras' default
    "silu": construct("nn.SiLU"),
    "tanh": construct("nn.Tanh"),
    "sigmoid": construct("nn.Sigmoid"),
}
CLASSIFIER_ACTIVATIONS: dict[str, Construct] = {
    "softmax": construct("nn.Softmax", dim=1),
    "sigmoid": construct("nn.Sigmoid"),
}
# torch's own defaults of BatchNorm2d: arguments equal to them are not given
BATCH_NORM_DEFAULTS = {"eps": 1e-5, "momentum": 0.1}
UNUSED_DROPOUT = "dropout 0 in the spec, kept for torchvision's indices"

# torchvision's VGG initialisation: per module class, (parameter, the nn.init function that fills it, called with
# the parameter first): convolutions He-normal (fan_out), batch norm 1 and 0, linear N(0, 0.01), biases 0
INITIALISATION: dict[str, tuple[tuple[str, Construct], ...]] = {
    "nn.Conv2d": (
        ("weight", construct("nn.init.kaiming_normal_", mode="fan_out", nonlinearity="relu")),
        ("bias", construct("nn.init.zeros_")),
    ),
    "nn.BatchNorm2d": (("weight", construct("nn.init.ones_")), ("bias", construct("nn.init.zeros_"))),
    "nn.Linear": (("weight", construct("nn.init.normal_", 0.0, 0.01)), ("bias", construct("nn.init.zeros_"))),
}


@dataclass(frozen=True)
class Modules:
    """What one plan layer becomes: ``modules`` appended to the network's ``attribute`` (``features``,
    ``classifier``), or set as it (``avgpool``, ``pool``); "" for a layer with no module.

    ``output`` says where the layer's output is read, as the plan means it: "" for the output of its
    last module (a convolution's after its fused activation); ``input`` (the images), ``previous``
    (a dropout: the identity at inference), ``flatten`` (after ``avgpool``, flattened) or ``pool``.
    """

    attribute: str
    modules: tuple[Construct, ...] = ()
    output: str = ""


def _activation(name: str, table: dict[str, Construct], layer: PlanLayer) -> Construct:
    if name not in table:
        raise VggspecError(f"layer {layer.name}: expected an activation torch has a module for, received {name!r}")
    return table[name]


def _conv(layer: plan_layers.Conv2D, plan: Plan) -> Modules:
    padding = {"padding": layer.kernel_size // 2} if layer.kernel_size // 2 else {}  # 'same' for an odd kernel
    conv = construct("nn.Conv2d", layer.input_channels, layer.filters, kernel_size=layer.kernel_size, **padding)
    fused = (_activation(layer.activation, ACTIVATIONS, layer),) if layer.activation else ()
    return Modules(FEATURES, (conv, *fused))


def _batch_norm(layer: plan_layers.BatchNormalization, plan: Plan) -> Modules:
    # torch's momentum weighs the new batch, Keras' (the plan's) the running average (rounded: 1 - 0.9 != 0.1)
    values = {"eps": layer.epsilon, "momentum": round(1.0 - layer.momentum, 12)}
    options = {key: value for key, value in values.items() if value != BATCH_NORM_DEFAULTS[key]}
    return Modules(FEATURES, (construct("nn.BatchNorm2d", layer.channels, **options),))


def _dense(layer: plan_layers.Dense, plan: Plan) -> Modules:
    features: Any = layer.input_features
    if layer.reads_flattened:  # as torchvision writes it: 512 * 7 * 7 (channels first, as torch flattens)
        height, width, channels = layer.reads_flattened
        features = Expression(layer.input_features, f"{channels} * {height} * {width}")
    linear = construct("nn.Linear", features, layer.units)
    if layer.classifier:
        fused = (_activation(layer.activation, CLASSIFIER_ACTIVATIONS, layer),) if layer.activation else ()
        return Modules(CLASSIFIER, (linear, *fused))
    rate = next((d.rate for d in plan.layers if isinstance(d, plan_layers.Dropout) and d.follows == layer.name), 0.0)
    dropout = Construct("nn.Dropout", kwargs=(("p", float(rate)),), comment="" if rate else UNUSED_DROPOUT)
    return Modules(CLASSIFIER, (linear, _activation(str(layer.activation), ACTIVATIONS, layer), dropout))


def _flatten(layer: plan_layers.Flatten, plan: Plan) -> Modules:
    height, width, _ = layer.input_shape
    return Modules(AVGPOOL, (construct("nn.AdaptiveAvgPool2d", (height, width)),), output="flatten")


def _pool(module: str) -> Modules:
    """Global pooling without a top: ``pool``, to one value a channel (flattened by the network)."""
    return Modules(POOL, (construct(module, 1),), output="pool")


TABLE: dict[type, Callable[[Any, Plan], Modules]] = {
    plan_layers.InputLayer: lambda layer, plan: Modules("", output="input"),
    plan_layers.Conv2D: _conv,
    plan_layers.BatchNormalization: _batch_norm,
    plan_layers.Activation: lambda layer, plan: Modules(FEATURES, (_activation(layer.activation, ACTIVATIONS, layer),)),
    plan_layers.LocalResponseNormalization: lambda layer, plan: Modules(
        FEATURES,
        (construct("nn.LocalResponseNorm", layer.size, alpha=layer.alpha, beta=layer.beta, k=layer.k),),
    ),
    plan_layers.MaxPooling2D: lambda layer, plan: Modules(
        FEATURES, (construct("nn.MaxPool2d", kernel_size=layer.pool_size, stride=layer.strides),)
    ),
    plan_layers.Flatten: _flatten,
    plan_layers.Dense: _dense,
    plan_layers.Dropout: lambda layer, plan: Modules("", output="previous"),  # its nn.Dropout is its dense layer's
    plan_layers.GlobalAveragePooling2D: lambda layer, plan: _pool("nn.AdaptiveAvgPool2d"),
    plan_layers.GlobalMaxPooling2D: lambda layer, plan: _pool("nn.AdaptiveMaxPool2d"),
}
"""Plan layer type -> its modules (a function of the layer and its plan: a dense layer's dropout rate)."""


def torch_modules(layer: PlanLayer, plan: Plan) -> Modules:
    """The torch modules of one plan layer; VggspecError for a layer type or activation with no entry here."""
    make = TABLE.get(type(layer))
    if make is None:
        raise VggspecError(
            f"plan {plan.name}: layer {layer.name}: expected a layer type torch has modules for, "
            f"received a {layer.type_name}"
        )
    return make(layer, plan)


@dataclass(frozen=True)
class ModuleSlots:
    """Where a plan layer sits in torchvision's VGG: ``count`` modules from ``sequence[first]``.

    The layer's own module is the first (the convolution, the Linear); its output, as the plan
    means it (after a fused activation), is that of the last.
    """

    sequence: str  # "features" or "classifier"
    first: int
    count: int

    @property
    def path(self) -> str:
        """The layer's own module: ``features.0``, ``classifier.3``."""
        return f"{self.sequence}.{self.first}"

    @property
    def output_path(self) -> str:
        return f"{self.sequence}.{self.first + self.count - 1}"


def module_slots(plan: Plan) -> dict[str, ModuleSlots]:
    """The module slots of every plan layer in ``features`` or ``classifier``, by layer name, in order."""
    counters = dict.fromkeys(SEQUENCES, 0)
    slots: dict[str, ModuleSlots] = {}
    for layer in plan.layers:
        placed = torch_modules(layer, plan)
        if placed.attribute in SEQUENCES:
            slots[layer.name] = ModuleSlots(placed.attribute, counters[placed.attribute], len(placed.modules))
            counters[placed.attribute] += len(placed.modules)
    return slots
