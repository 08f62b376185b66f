"""The backend contract, and finding backends through the ``vggspec.backends`` entry-point group.

A backend is a package that registers, in its distribution's ``pyproject.toml``::

    [project.entry-points."vggspec.backends"]
    jax = "vggspec_jax:JaxBackend"

The object named there (a class, instantiated once, or an instance) must be importable
without its framework (import the framework inside the methods) and provide the
:class:`Backend` protocol. It may also provide the optional capabilities below; vggspec
uses each where it is there. The built-in ``keras`` and ``torch`` backends (``backends/``
in the repository) are registered by vggspec's own ``pyproject.toml`` the same way. The
README's "Writing a backend" says what the smallest backend implements.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from vggspec.errors import BackendError
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle

GROUP = "vggspec.backends"
# The backends vggspec ships as extras: named here so that a missing one gets an install hint.
BUILTIN_EXTRAS = {"keras": "keras", "torch": "torch", "onnx": "onnx"}


def install_hint(extra: str) -> str:
    """What installs one of vggspec's extras: ``pip install "vggspec[torch]"``."""
    return f'pip install "vggspec[{extra}]"'


def not_installed(who: str, missing: Sequence[str], extra: str) -> str:
    """The line for a framework that is not installed, as every command says it:
    ``WHO needs torch, which is not installed: pip install "vggspec[torch]"``."""
    return f"{who} needs {', '.join(missing)}, which is not installed: {install_hint(extra)}"


def set_environment_defaults(values: Mapping[str, str]) -> None:
    """Set each of ``values`` in ``os.environ`` unless it is set already (the user's word wins): how a backend
    gives its framework settings that the framework reads once, when it starts (so: before it is imported)."""
    for name, value in values.items():
        os.environ.setdefault(name, value)


@runtime_checkable
class Backend(Protocol):
    """What every backend provides. Images are NHWC float32, already preprocessed; weights are
    :class:`~vggspec.weights.bundle.WeightBundle` s in the canonical layout (:mod:`vggspec.weights.canonical`)."""

    name: str
    requires: Sequence[str]  # top-level modules the framework needs, checked without importing them
    extra: str  # the pip extra that installs them: pip install "vggspec[<extra>]"

    def build(self, plan: Plan) -> Any:
        """A native model for the plan (one compiled layer per plan layer type), freshly initialised."""

    def count_params(self, model: Any) -> tuple[int, int]:
        """(trainable, non-trainable) as the framework counts them."""

    def get_weights(self, model: Any, plan: Plan) -> WeightBundle:
        """The model's arrays in the canonical layout."""

    def set_weights(self, model: Any, plan: Plan, bundle: WeightBundle) -> None:
        """Load a bundle already checked by ``vggspec.weights.fit.fit_bundle`` (it may hold only some layers)."""

    def predict(self, model: Any, images: np.ndarray) -> np.ndarray:
        """Model outputs for a batch (inference mode)."""

    def activations(self, model: Any, plan: Plan, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every plan layer's output by layer name, channels last, batch first (inference mode)."""

    def save(self, model: Any, path: str) -> Optional[str]:
        """Write the model in the framework's own format; return a line for the user, or None."""


@runtime_checkable
class ChecksFramework(Protocol):
    """Optional: why the framework cannot run although its modules are installed (e.g. Keras set to
    run on a framework that is missing), told in one line without importing it; None when it can."""

    def framework_problem(self) -> Optional[str]: ...


@runtime_checkable
class Accelerates(Protocol):
    """Optional: the model moved to the fastest device and settings for inference (``vggspec predict``)."""

    def accelerate(self, model: Any) -> Any: ...


@runtime_checkable
class ExtractsFeatures(Protocol):
    """Optional: named intermediate outputs (``vggspec.build(..., outputs=[...])``, perceptual losses).

    ``model`` was built from ``plan``, which the core has already cut after the deepest layer
    asked for (:meth:`Plan.up_to`), so nothing past it is computed or held. ``outputs`` maps
    each key of the result to the plan layer whose output it is (:mod:`vggspec.features`
    resolves names). The result is a native model whose call gives ``{key: output}`` in the
    framework's own layout (NHWC in Keras, NCHW in torch); with ``trainable=False`` its
    parameters are frozen and it runs in inference mode, gradients still flowing to the input.
    """

    def extractor(self, model: Any, plan: Plan, outputs: Mapping[str, str], trainable: bool) -> Any: ...


# Training is the optional capability of vggspec.training.protocol.TrainingBackend (seed, trainer).


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    """The registered backends by name, scanned once (:func:`refresh_backends` scans again).

    Two plugins that register one name warn, and the first found is used.
    """
    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=GROUP):
        first = found.setdefault(entry.name, entry)
        if first is not entry and first.value != entry.value:
            warnings.warn(
                f"two plugins register the vggspec backend {entry.name!r}: {first.value} and {entry.value}; "
                f"using {first.value}",
                RuntimeWarning,
                stacklevel=2,
            )
    return found


@functools.cache
def _load(name: str) -> Optional[Backend]:
    entry = _entry_points()[name]
    try:
        loaded = entry.load()
        backend = loaded() if isinstance(loaded, type) else loaded
    except Exception as error:  # a broken plugin must not break the others
        warnings.warn(f"vggspec backend {name!r} ({entry.value}) failed to load: {error}", RuntimeWarning, stacklevel=3)
        return None
    return backend


def refresh_backends() -> None:
    """Forget the backends found so far (after installing a plugin in a running process)."""
    _entry_points.cache_clear()
    _load.cache_clear()


def available_backends() -> list[str]:
    """Names of the installed backends (whether or not their framework is installed)."""
    return sorted(_entry_points())


def installed_backend(name: str) -> Optional[Backend]:
    """The object registered as ``name`` (one of :func:`available_backends`), whether or not its framework is
    installed: what it declares can be read without the framework. None when its plugin fails to import (warned)."""
    return _load(name)


def framework_missing(backend: Backend) -> list[str]:
    """The modules of the backend's framework that are not installed (checked without importing)."""
    return [module for module in backend.requires if importlib.util.find_spec(module) is None]


def framework_problem(backend: Backend) -> Optional[str]:
    """The backend's own word on why its framework cannot run (:class:`ChecksFramework`), or None."""
    return backend.framework_problem() if isinstance(backend, ChecksFramework) else None


def get_backend(name: Optional[str]) -> Backend:
    """The backend registered as ``name`` (None: :func:`default_backend`); BackendError with a hint when it cannot
    be used."""
    name = default_backend() if name is None else name
    entries = _entry_points()
    if name not in entries:
        installed = ", ".join(sorted(entries)) or "none"
        hint = f"; {install_hint(BUILTIN_EXTRAS[name])}" if name in BUILTIN_EXTRAS else ""
        raise BackendError(
            f"backend {name!r}: expected one of the installed backends ({installed}), received {name!r}{hint}"
        )
    backend = _load(name)
    if backend is None:
        raise BackendError(f"backend {name!r}: its plugin {entries[name].value} failed to import (see the warning)")
    missing = framework_missing(backend)
    if missing:
        raise BackendError(not_installed(f"backend {name!r}", missing, backend.extra))
    problem = framework_problem(backend)
    if problem:
        raise BackendError(f"backend {name!r}: {problem}")
    return backend


# The backend a command uses when none is named: the first of these that can run here
PREFERRED = ("keras", "torch", "onnx")


def usable_backends() -> list[str]:
    """The installed backends whose framework can run here: the PREFERRED ones first, then the others by name."""
    usable = [name for name, state, _ in backend_status() if state == "ok"]
    return sorted(usable, key=lambda name: (PREFERRED.index(name) if name in PREFERRED else len(PREFERRED), name))


def default_backend() -> str:
    """keras, else torch, else onnx (else any other plugin), whichever can run here; keras when none can, so
    that its error says what to install."""
    usable = usable_backends()
    return usable[0] if usable else PREFERRED[0]


def default_backends(count: int = 2) -> list[str]:
    """The first ``count`` backends that can run here (for ``verify``); BackendError naming the setting ``backends``
    and what to install when fewer can."""
    usable = usable_backends()
    if len(usable) >= count:
        return usable[:count]
    others = [f'"vggspec[{BUILTIN_EXTRAS[name]}]"' for name in PREFERRED if name not in usable]
    raise BackendError(
        f"backends: expected {count} backends that can run here to compare, received "
        + (f"only {', '.join(usable)}" if usable else "none")
        + (f" (install another: pip install {' or '.join(others)})" if others else ""),
        setting="backends",
    )


def backend_status() -> list[tuple[str, str, str]]:
    """(name, "ok" | "missing framework" | "cannot run" | "broken", detail) for every installed backend."""
    rows = []
    for name, entry in sorted(_entry_points().items()):
        backend = _load(name)
        problem = None if backend is None or framework_missing(backend) else framework_problem(backend)
        if backend is None:
            rows.append((name, "broken", f"{entry.value} failed to import"))
        elif framework_missing(backend):
            rows.append((name, "missing framework", install_hint(backend.extra)))
        elif problem:
            rows.append((name, "cannot run", problem))
        else:
            rows.append((name, "ok", entry.value))
    return rows
