"""The checked spec: frozen dataclasses, and the paper's layer notation.

A spec describes the convolutional part as tokens of Simonyan & Zisserman's
Table 1 (``conv3-64``, ``LRN``, ``maxpool``) and the rest as plain fields that
mirror ``keras.applications.VGG16``'s arguments (``include_top``, ``pooling``,
``classes``, ``classifier_activation``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional, Union

PREPROCESSING_MODES = ("caffe", "torch", "tf")


@dataclass(frozen=True)
class Conv:
    """``conv<kernel>-<filters>``: a K×K convolution, stride 1, 'same' padding, with bias."""

    kernel: int
    filters: int

    def __str__(self) -> str:
        return f"conv{self.kernel}-{self.filters}"


@dataclass(frozen=True)
class MaxPool:
    """``maxpool``: 2×2 max pooling with stride 2; it ends a block."""

    def __str__(self) -> str:
        return "maxpool"


@dataclass(frozen=True)
class LRN:
    """``LRN``: local response normalization across channels (configuration A-LRN)."""

    def __str__(self) -> str:
        return "LRN"


LayerToken = Union[Conv, MaxPool, LRN]


def halves_the_map(token: object) -> bool:
    """True for a token that halves the feature map's height and width and ends a block (a pool)."""
    return isinstance(token, MaxPool)


_CONV = re.compile(r"^conv([0-9]+)-([0-9]+)$")
_FC = re.compile(r"^FC-([0-9]+)$")


def parse_token(token: str) -> Union[LayerToken, int, str]:
    """Parse one token of the paper's notation.

    Returns a :class:`Conv`, :class:`MaxPool` or :class:`LRN`; for the head
    tokens of the table, ``FC-4096`` gives the int 4096 and ``soft-max`` the
    string ``"softmax"``. Raises ``ValueError`` for anything else.
    """
    if token == "maxpool":
        return MaxPool()
    if token == "LRN":
        return LRN()
    if token == "soft-max":
        return "softmax"
    match = _CONV.fullmatch(token)
    if match:
        return Conv(kernel=int(match.group(1)), filters=int(match.group(2)))
    match = _FC.fullmatch(token)
    if match:
        return int(match.group(1))
    raise ValueError(f"not a layer token: {token!r}")


@dataclass(frozen=True)
class LRNParams:
    """As ``torch.nn.LocalResponseNorm(size, alpha, beta, k)``: x / (k + alpha/size · Σ x²)^beta
    over ``size`` neighbouring channels. TensorFlow's ``depth_radius`` is (size-1)/2 and its
    ``alpha`` is alpha/size."""

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0


@dataclass(frozen=True)
class Spec:
    """A checked model spec. ``input_shape`` is (height, width, channels)."""

    name: str
    layers: tuple[LayerToken, ...]
    input_shape: tuple[int, int, int] = (224, 224, 3)
    batch_norm: bool = False
    activation: str = "relu"
    include_top: bool = True
    fc: tuple[int, ...] = (4096, 4096)
    dropout: float = 0.0
    classes: int = 1000
    classifier_activation: Optional[str] = "softmax"
    pooling: Optional[str] = None
    preprocessing: str = "caffe"
    lrn: LRNParams = field(default_factory=LRNParams)
    configuration: Optional[str] = None
    description: str = ""
    source: str = ""
