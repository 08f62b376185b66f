"""Finding backends through the ``vggspec.backends`` entry-point group.

A backend is a package that registers, in its distribution's ``pyproject.toml``::

    [project.entry-points."vggspec.backends"]
    jax = "vggspec_jax:JaxBackend"

The object named there (a class, instantiated once, or an instance) must be importable
without its framework (import the framework inside the methods) and provide the
:class:`Backend` protocol (:mod:`vggspec.backend_contract`); one that lacks a member of it
is refused when it loads (warned, as a plugin that fails to import). The entry point's name
is the backend's name: a ``name`` that differs is warned. It may also provide the optional
capabilities of the contract; vggspec uses each where it is there. The built-in backends
(``backends/`` in the repository: keras, torch, onnx and numpy) are registered by vggspec's
own ``pyproject.toml`` the same way. The README's "Writing a backend" says what the smallest
backend implements; ``vggspec_numpy`` is one, the reference every other backend can be held to.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from importlib.metadata import EntryPoint, entry_points
from typing import Mapping, Optional, Sequence

# The contract's names, re-exported: plugins import them from here
from vggspec.backend_contract import Accelerates as Accelerates
from vggspec.backend_contract import Backend as Backend
from vggspec.backend_contract import ChecksFramework as ChecksFramework
from vggspec.backend_contract import ExtractsFeatures as ExtractsFeatures
from vggspec.backend_contract import LowersPrecision as LowersPrecision
from vggspec.backend_contract import ReadsModelFile as ReadsModelFile
from vggspec.backend_contract import SavesWeightFile as SavesWeightFile
from vggspec.errors import BackendError

GROUP = "vggspec.backends"
# The backends whose framework is one of vggspec's extras: named here so that an unknown one gets an install hint.
BUILTIN_EXTRAS = {"keras": "keras", "torch": "torch", "onnx": "onnx"}


def install_hint(extra: str) -> str:
    """What installs one of vggspec's extras: ``pip install "vggspec[torch]"`` (the built-in backends' ``install``)."""
    return f'pip install "vggspec[{extra}]"'


def not_installed(who: str, missing: Sequence[str], install: str) -> str:
    """The line for a framework that is not installed, as every command says it:
    ``WHO needs torch, which is not installed: pip install "vggspec[torch]"`` (``install``: the command)."""
    return f"{who} needs {', '.join(missing)}, which is not installed: {install}"


def set_environment_defaults(values: Mapping[str, str]) -> None:
    """Set each of ``values`` in ``os.environ`` unless it is set already (the user's word wins): how a backend
    gives its framework settings that the framework reads once, when it starts (so: before it is imported)."""
    for name, value in values.items():
        os.environ.setdefault(name, value)


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
    lacking = [member for member in BACKEND_MEMBERS if not hasattr(backend, member)]
    if lacking:
        warnings.warn(
            f"vggspec backend {name!r} ({entry.value}) failed to load: expected the members of "
            f"vggspec.backends.Backend, received an object without {', '.join(lacking)}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    if backend.name != name:
        warnings.warn(
            f"vggspec backend {name!r} ({entry.value}) calls itself {backend.name!r}: expected the name it is "
            f"registered under, which is the one vggspec uses",
            RuntimeWarning,
            stacklevel=3,
        )
    return backend


def _members(protocol: type) -> tuple[str, ...]:
    """The members a protocol class declares (its attributes, properties and methods), in order."""
    return tuple(name for name in vars(protocol) if not name.startswith("_"))


BACKEND_MEMBERS = _members(Backend)


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
        installed = ", ".join(other for other in sorted(entries) if _load(other) is not None) or "none"
        hint = f"; {install_hint(BUILTIN_EXTRAS[name])}" if name in BUILTIN_EXTRAS else ""
        raise BackendError(
            f"backend {name!r}: expected one of the installed backends ({installed}), received {name!r}{hint}"
        )
    backend = _load(name)
    if backend is None:
        raise BackendError(f"backend {name!r}: its plugin {entries[name].value} failed to load (see the warning)")
    missing = framework_missing(backend)
    if missing:
        raise BackendError(not_installed(f"backend {name!r}", missing, backend.install))
    problem = framework_problem(backend)
    if problem:
        raise BackendError(f"backend {name!r}: {problem}")
    return backend


# The backend a command uses when none is named: the first of these that can run here. numpy, which always can,
# comes last: it is the reference, plain and slower, not the fast path.
PREFERRED = ("keras", "torch", "onnx", "numpy")


def usable_backends(capability: Optional[type] = None) -> list[str]:
    """The installed backends whose framework can run here (and that have ``capability``, a runtime-checkable
    protocol, when given): the PREFERRED ones first, then the others by name."""
    usable = [name for name, state, _ in backend_status() if state == "ok"]
    if capability is not None:
        usable = [name for name in usable if isinstance(_load(name), capability)]
    return sorted(usable, key=lambda name: (PREFERRED.index(name) if name in PREFERRED else len(PREFERRED), name))


def default_backend(capability: Optional[type] = None) -> str:
    """keras, else torch, else onnx, else numpy (else any other plugin), whichever can run here and has
    ``capability`` (``TrainingBackend`` for ``finetune``); keras when none can, so that its error says what
    to install."""
    usable = usable_backends(capability)
    return usable[0] if usable else PREFERRED[0]


def default_backends(count: int = 2) -> list[str]:
    """The first ``count`` backends that can run here (for ``verify``); BackendError naming the setting ``backends``
    and what to install when fewer can."""
    usable = usable_backends()
    if len(usable) >= count:
        return usable[:count]
    others = [f'"vggspec[{extra}]"' for name, extra in BUILTIN_EXTRAS.items() if name not in usable]
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
            rows.append((name, "broken", f"{entry.value} failed to load (see the warning)"))
        elif framework_missing(backend):
            rows.append((name, "missing framework", backend.install))
        elif problem:
            rows.append((name, "cannot run", problem))
        else:
            rows.append((name, "ok", entry.value))
    return rows
