"""Find backends through the ``vggspec.backends`` entry-point group.

A backend is a package that registers, in its own ``pyproject.toml``::

    [project.entry-points."vggspec.backends"]
    jax = "vggspec_jax:JaxBackend"

The object named there must be importable without its framework (import the
framework inside the methods) and provide the :class:`Backend` protocol. The
built-in ``keras`` and ``torch`` backends (``backends/`` in the repository)
register exactly this way.
"""

from __future__ import annotations

import importlib.util
import warnings
from importlib.metadata import entry_points
from typing import Any, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from vggspec.errors import BackendError
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import WeightBundle

GROUP = "vggspec.backends"
# The backends vggspec ships as extras: named here so that a missing one gets an install hint.
BUILTIN_EXTRAS = {"keras": "keras", "torch": "torch"}


@runtime_checkable
class Backend(Protocol):
    """What a backend provides. Images are NHWC float32, already preprocessed."""

    name: str
    requires: Sequence[str]  # top-level modules the framework needs, checked without importing them
    extra: str  # the pip extra that installs them: pip install "vggspec[<extra>]"

    def build(self, plan: Plan) -> Any:
        """A native model for the plan, with freshly initialised weights."""

    def count_params(self, model: Any) -> tuple[int, int]:
        """(trainable, non-trainable) as the framework counts them."""

    def get_weights(self, model: Any, plan: Plan) -> WeightBundle:
        """The model's arrays in the canonical layout."""

    def set_weights(self, model: Any, plan: Plan, bundle: WeightBundle) -> None:
        """Load a bundle already checked by ``vggspec.weights.layout.fit_bundle`` (may be partial)."""

    def predict(self, model: Any, images: np.ndarray) -> np.ndarray:
        """Model outputs for a batch (inference mode)."""

    def activations(self, model: Any, plan: Plan, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every plan layer's output, channels last (inference mode)."""

    def save(self, model: Any, path: str) -> None:
        """Write the model in the framework's own format."""

    # Optional: ``framework_problem() -> str | None`` says in one line why the framework cannot run although
    # its modules are installed (e.g. Keras set to run on a framework that is missing), without importing it;
    # ``accelerate(model) -> model`` moves a model to the fastest device and settings for
    # inference (``vggspec predict`` calls it when present); ``seed(n)`` and ``trainer(model, plan,
    # config)`` serve ``vggspec finetune`` (see vggspec.training.protocol).


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available_backends() -> list[str]:
    """Names of the installed backends (whether or not their framework is installed)."""
    return sorted(_entry_points())


def _load(name: str, entry: Any) -> Optional[Backend]:
    try:
        loaded = entry.load()
        backend = loaded() if isinstance(loaded, type) else loaded
    except Exception as error:  # a broken plugin must not break the others
        warnings.warn(f"vggspec backend {name!r} ({entry.value}) failed to load: {error}", RuntimeWarning, stacklevel=3)
        return None
    return backend


def framework_missing(backend: Backend) -> list[str]:
    """The modules of the backend's framework that are not installed (checked without importing)."""
    return [module for module in backend.requires if importlib.util.find_spec(module) is None]


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``; BackendError with a hint when it cannot be used."""
    entries = _entry_points()
    if name not in entries:
        installed = ", ".join(sorted(entries)) or "none"
        hint = f'; pip install "vggspec[{BUILTIN_EXTRAS[name]}]"' if name in BUILTIN_EXTRAS else ""
        raise BackendError(
            f"backend {name!r}: expected one of the installed backends ({installed}), received {name!r}{hint}"
        )
    backend = _load(name, entries[name])
    if backend is None:
        raise BackendError(f"backend {name!r}: its plugin {entries[name].value} failed to import (see the warning)")
    missing = framework_missing(backend)
    if missing:
        raise BackendError(
            f"backend {name!r} needs {', '.join(missing)}, which is not installed: "
            f'pip install "vggspec[{backend.extra}]"'
        )
    problem = framework_problem(backend)
    if problem:
        raise BackendError(f"backend {name!r}: {problem}")
    return backend


def framework_problem(backend: Backend) -> Optional[str]:
    """The backend's own word on why its framework cannot run (optional method), or None."""
    check = getattr(backend, "framework_problem", None)
    return check() if callable(check) else None


def backend_status() -> list[tuple[str, str, str]]:
    """(name, "ok" | "missing framework" | "broken", detail) for every installed backend; broken ones warn."""
    rows = []
    for name, entry in sorted(_entry_points().items()):
        backend = _load(name, entry)
        if backend is None:
            rows.append((name, "broken", f"{entry.value} failed to import"))
        elif framework_missing(backend):
            rows.append((name, "missing framework", f'pip install "vggspec[{backend.extra}]"'))
        elif framework_problem(backend):
            rows.append((name, "cannot run", str(framework_problem(backend))))
        else:
            rows.append((name, "ok", entry.value))
    return rows
