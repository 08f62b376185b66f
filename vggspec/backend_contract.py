"""The backend contract: what every backend provides (:class:`Backend`) and the optional capabilities
vggspec uses where a backend has them. :mod:`vggspec.backends` finds backends and re-exports these
names, so a plugin may import them from either module.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle


@runtime_checkable
class Backend(Protocol):
    """What every backend provides. Images are NHWC float32, batch first, already preprocessed; weights are
    :class:`~vggspec.weights.bundle.WeightBundle` s in the canonical layout (:mod:`vggspec.weights.canonical`),
    float32. ``name``, ``requires`` and ``install`` may be plain class attributes."""

    @property
    def name(self) -> str:
        """The name it is registered under (the entry point's name)."""

    @property
    def requires(self) -> Sequence[str]:
        """The top-level modules its framework needs, checked with ``find_spec`` (never imported) before use."""

    @property
    def install(self) -> str:
        """The command that installs what ``requires`` names, shown when some is missing: ``pip install
        "vggspec[torch]"`` for a built-in backend, ``pip install vggspec-jax`` for a plugin of its own."""

    def build(self, plan: Plan) -> Any:
        """A native model for the plan (a piece per plan layer), freshly initialised."""

    def count_params(self, model: Any) -> tuple[int, int]:
        """(trainable, non-trainable) parameters of the model: the split the plan defines, batch norm's
        ``moving_mean`` and ``moving_variance`` non-trainable and every other array trainable
        (:data:`vggspec.planner.layers.NON_TRAINABLE_WEIGHTS`). ``verify`` holds it to the plan's counts."""

    def get_weights(self, model: Any, plan: Plan) -> WeightBundle:
        """Copies of every weighted plan layer's arrays, canonical layout, float32: bit for bit what
        ``set_weights`` set (``verify`` checks)."""

    def set_weights(self, model: Any, plan: Plan, bundle: WeightBundle) -> None:
        """Load a bundle already checked by ``vggspec.weights.fit.fit_bundle``; it may hold only some layers,
        and the others keep their arrays."""

    def predict(self, model: Any, images: np.ndarray) -> np.ndarray:
        """The last plan layer's output for a batch (inference mode), channels last, float32: what
        ``vggspec predict`` prints (``verify`` holds it to the backend's own last activation)."""

    def activations(self, model: Any, plan: Plan, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every plan layer's output by layer name, in the plan's order, the input and dropout layers included:
        each of shape ``(N, *layer.output_shape)`` (channels last), float32, in inference mode."""

    def save(self, model: Any, path: str) -> Optional[str]:
        """Write the model in the framework's own format to ``path``, whole or not at all (write a temporary
        file beside it and rename it: :func:`vggspec.fileio.atomic_path`); refuse a name it cannot write
        (BackendError). Return a line for the user, or None. The core has already refused a folder, a path
        under a file and an unwritable place."""


@runtime_checkable
class ChecksFramework(Protocol):
    """Optional: why the framework cannot run although its modules are installed (e.g. Keras set to
    run on a framework that is missing), told in one line without importing it; None when it can.
    Every command asks before it uses the backend, and ``vggspec backends`` shows it."""

    def framework_problem(self) -> Optional[str]: ...


@runtime_checkable
class Accelerates(Protocol):
    """Optional: the model moved to the fastest device and settings for inference (``vggspec predict``, unless
    asked for float32 as built)."""

    def accelerate(self, model: Any) -> Any: ...


@runtime_checkable
class ExtractsFeatures(Protocol):
    """Optional: named intermediate outputs (``vggspec.build(..., outputs=[...])``, perceptual losses).
    ``vggspec features`` does not need it: it reads ``activations``.

    ``model`` was built from ``plan``, which the core has already cut after the deepest layer
    asked for (:meth:`Plan.up_to`), so nothing past it is computed or held. ``outputs`` maps
    each key of the result to the plan layer whose output it is (:mod:`vggspec.features`
    resolves names). The result is a native model whose call gives ``{key: output}`` in the
    framework's own layout (NHWC in Keras, NCHW in torch); with ``trainable=False`` its
    parameters are frozen and it runs in inference mode, gradients still flowing to the input.
    """

    def extractor(self, model: Any, plan: Plan, outputs: Mapping[str, str], trainable: bool) -> Any: ...


@runtime_checkable
class SavesWeightFile(Protocol):
    """Optional: the file name suffix ``save`` writes (``".keras"``, ``".pt"``). ``verify`` saves each such
    backend's model to a temporary file of that name and, where vggspec reads the format as weights
    (:data:`vggspec.weights.formats.SUPPORTED_NAMES`), reads it back: the arrays must be the ones set."""

    @property
    def save_suffix(self) -> str: ...


@runtime_checkable
class ReadsModelFile(Protocol):
    """Optional: run a file that ``save`` wrote (a ``.onnx`` graph, float32 or quantized) without reading it as
    weights: ``vggspec predict``, ``evaluate`` and ``features`` take it as their weights. ``read_model`` checks
    that the file's input and output fit ``plan`` (BackendError naming the file when not); ``model_precision``
    says what the model computes in (``"float32"``, ``"float16"``, ``"int8"``)."""

    @property
    def save_suffix(self) -> str: ...

    def read_model(self, plan: Plan, path: str) -> Any: ...

    def model_precision(self, model: Any) -> str: ...


@runtime_checkable
class LowersPrecision(Protocol):
    """Optional: a copy of a float32 model in a lower precision (``vggspec build``'s ``precision``), saved by
    ``save``. ``precisions`` lists those it makes. ``calibration`` yields batches of preprocessed NHWC float32
    images (an int8 model's activation ranges are measured on them; unused for float16); ``about`` is
    recorded in the file (the calibration method and image count, set by the backend, come with it)."""

    @property
    def precisions(self) -> Sequence[str]: ...

    def lower_precision(
        self, model: Any, plan: Plan, precision: str, calibration: Iterable[np.ndarray], about: Mapping[str, str]
    ) -> Any: ...


# Training is the optional capability of vggspec.training.protocol.TrainingBackend (seed, trainer).
