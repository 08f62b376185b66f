"""Named intermediate outputs: the same layer names in every backend (perceptual losses, style transfer).

A feature extractor is a native model whose call gives ``{name: output}`` for the plan
layers asked for, built from the plan cut after the deepest of them (:meth:`Plan.up_to`):
nothing past it is computed, and no parameter past it is held. Outputs are in the
framework's own layout: NHWC in Keras, NCHW in torch (a dense layer's (N, units) in both;
``flatten`` in each framework's own flatten order, H,W,C in Keras, C,H,W in torch).

Names are the plan's (``block4_conv2``, ``block5_pool``, ``fc1``, ...), and a convolution's
output is taken after its activation, as ``relu4_2`` in the style-transfer papers: with
batch norm the convolution's name stands for the activation that follows its batch norm
(``block4_conv2_act``). The value before the activation is ``<conv>_bn`` in a batch-norm
spec; without batch norm no backend gives it, because the Keras layer fuses the activation
(as ``keras.applications`` does, and as its weight files need), and a name should mean the
same output in every framework.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

from vggspec.backends import Backend, ExtractsFeatures, get_backend
from vggspec.errors import BackendError, VggspecError
from vggspec.planner.layers import Activation, BatchNormalization, Conv2D
from vggspec.planner.lower import Plan, lower_to_plan
from vggspec.spec.model import Spec

# What ``outputs`` may be: layer names, or one name (a string is one name, never its characters)
Outputs = Union[str, Sequence[str]]


def output_layers(plan: Plan, names: Outputs) -> dict[str, str]:
    """``{name asked for: the plan layer whose output it is}``: a convolution followed by batch norm and
    an activation stands for that activation (post-activation). An unknown name lists the valid ones.
    One name given as a string is taken as a list of that one name (as a Keras model's ``outputs`` takes
    one output or a list): ``"block1_conv1"`` gives what ``["block1_conv1"]`` gives, ``{name: output}``."""
    names = [names] if isinstance(names, str) else list(names)
    layers = list(plan.layers)
    index = {layer.name: position for position, layer in enumerate(layers)}
    if not names:
        raise VggspecError("outputs: expected at least one layer name, received none", setting="outputs")
    unknown = [name for name in names if name not in index]
    if unknown:
        raise VggspecError(
            f"outputs: expected layer names of {plan.name} ({', '.join(index)}), received {unknown[0]!r}",
            setting="outputs",
        )
    chosen: dict[str, str] = {}
    for name in names:
        position = index[name]
        layer = layers[position]
        after = layers[position + 1 : position + 3]
        if (
            isinstance(layer, Conv2D)
            and layer.activation is None
            and len(after) == 2
            and isinstance(after[0], BatchNormalization)
            and isinstance(after[1], Activation)
        ):
            chosen[name] = after[1].name
        else:
            chosen[name] = name
    return chosen


def feature_plan(plan: Plan, names: Outputs) -> tuple[Plan, dict[str, str]]:
    """(the plan cut after the deepest output, ``{name asked for: plan layer}``)."""
    chosen = output_layers(plan, names)
    order = [layer.name for layer in plan.layers]
    deepest = max(chosen.values(), key=order.index)
    return plan.up_to(deepest), chosen


def build_extractor(
    spec: Spec,
    backend: Union[str, Backend],
    outputs: Outputs,
    weights: Optional[Union[str, Path]] = None,
    trainable: bool = True,
    skip_mismatch: bool = False,
) -> Any:
    """A native model giving ``{name: output}`` for ``outputs`` (layer names, or one name as a string: see
    :func:`output_layers` and the module); ``weights`` as ``vggspec.build``: only the layers up to the deepest
    output are read and checked (a whole network's file has the layers past it too, and they go unnamed)."""
    from vggspec.building import read_checked_bundle

    backend = get_backend(backend) if isinstance(backend, str) else backend
    if not isinstance(backend, ExtractsFeatures):
        raise BackendError(
            f"backend {backend.name!r}: expected a backend that gives named outputs (a method "
            "extractor), received one without it"
        )
    whole = lower_to_plan(spec)
    plan, chosen = feature_plan(whole, outputs)
    model = backend.build(plan)
    if weights is not None:
        bundle, skipped = read_checked_bundle(plan, weights, skip_mismatch, whole)
        if skipped:
            import warnings

            for line in skipped:
                warnings.warn(f"skipped: {line}", UserWarning, stacklevel=2)
        backend.set_weights(model, plan, bundle)
    return backend.extractor(model, plan, chosen, trainable)
