"""vggspec: one description of a VGG network, a correct model in any framework.

    >>> import vggspec
    >>> spec = vggspec.load_spec("vgg16")
    >>> vggspec.plan(spec).total_params
    138357544

This package never imports a deep-learning framework; backends do, when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

from vggspec.errors import BackendError, SpecError, VggspecError, WeightsError
from vggspec.planner.lower import Plan, PlanLayer, lower_to_plan
from vggspec.spec.load import load_spec, spec_from_mapping, spec_to_mapping
from vggspec.spec.model import Spec

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "Plan",
    "PlanLayer",
    "Spec",
    "SpecError",
    "VggspecError",
    "WeightsError",
    "build",
    "load_spec",
    "plan",
    "spec_from_mapping",
    "spec_to_mapping",
]


def plan(spec: Union[Spec, str, Path]) -> Plan:
    """The framework-free plan of a spec (a :class:`Spec`, a path or a shipped name)."""
    return lower_to_plan(spec if isinstance(spec, Spec) else load_spec(spec))


def build(
    spec: Union[Spec, str, Path],
    backend: str = "keras",
    weights: Optional[Union[str, Path]] = None,
    skip_mismatch: bool = False,
    outputs: Optional[Union[str, Sequence[str]]] = None,
    trainable: bool = True,
) -> Any:
    """Build the spec with a backend ("keras", "torch" or any installed plugin) and return the native model.

    ``weights`` is a weight file in any supported format (``.h5``, ``.weights.h5``,
    ``.safetensors``, ``.pt``/``.pth``) or the name of a known file (``vggspec weights list``), fetched once.
    Feed it images preprocessed as the weights expect (``vggspec weights info`` says it). A file that
    does not fit is refused with the layer's name and both shapes; ``skip_mismatch=True`` loads what fits
    (e.g. everything but a 1000-class head) and warns about the rest.

    ``outputs`` (plan layer names, e.g. ``["block1_conv1", "block4_conv2"]``, or one name as a
    string: ``"block1_conv1"`` is ``["block1_conv1"]``) gives a feature
    extractor instead: a model whose call returns ``{name: output}``, NHWC in Keras and NCHW
    in torch, each convolution's output after its activation, built only up to the deepest
    name (see :mod:`vggspec.features`). ``trainable=False`` freezes its parameters and puts it
    in inference mode, as a loss network wants; gradients still flow to the input.
    """
    checked = spec if isinstance(spec, Spec) else load_spec(spec)
    if outputs is not None:
        from vggspec.features import build_extractor

        return build_extractor(checked, backend, outputs, weights, trainable, skip_mismatch)
    from vggspec.building import build_model

    if not trainable:
        raise VggspecError(
            "trainable: expected trainable=False together with outputs (a frozen feature "
            "extractor), received it without outputs",
            setting="trainable",
        )
    return build_model(checked, backend, weights, skip_mismatch)
