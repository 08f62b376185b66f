"""A backend's own training settings: what one framework has besides the settings every backend shares.

The settings every backend means the same way are the fields of
:class:`~vggspec.training.protocol.TrainConfig`. A backend whose framework has more (the torch
backend: ``device``, ``compile``, ``channels_last``, ``autocast``) declares them as its
``training_settings``: a frozen dataclass whose fields are the settings with their defaults, each
field's metadata giving its ``help`` (what the command line says of its option) and, optionally,
``default`` (how the help tells a default that is not a plain value, e.g. "CUDA when available").
A backend without any (keras) declares none. They say how the framework computes a run, not what
it trains: a resumed run may change any of them.

A run is given settings by name; :func:`backend_settings` makes the backend's dataclass of those,
with its defaults for the rest, and refuses in one line, naming the setting, one the backend does
not have or a value not of the setting's type. run.json records what the run used.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Mapping, Optional

from vggspec.backends import available_backends, installed_backend
from vggspec.errors import BackendError, DataError, VggspecError
from vggspec.training.record_json import described, fits, from_json_fields
from vggspec.training.run_folder import not_a_record


def declared_settings(backend: Any) -> Optional[type]:
    """The dataclass of ``backend``'s own training settings; None when it declares none."""
    declared = getattr(backend, "training_settings", None)
    if declared is None:
        return None
    if not (isinstance(declared, type) and dataclasses.is_dataclass(declared)):
        raise BackendError(
            f"backend {backend.name!r}: expected training_settings to be a dataclass, received {declared!r}"
        )
    return declared


def installed_settings() -> dict[str, type]:
    """The installed backends that declare settings of their own -> the dataclass of those settings."""
    found = {}
    for name in available_backends():
        backend = installed_backend(name)
        declared = declared_settings(backend) if backend is not None else None
        if declared is not None:
            found[name] = declared
    return found


def backend_setting_names() -> tuple[str, ...]:
    """The names of every installed backend's own settings, each once."""
    names = (item.name for declared in installed_settings().values() for item in dataclasses.fields(declared))
    return tuple(dict.fromkeys(names))


def _names(declared: Optional[type]) -> list[str]:
    return [item.name for item in dataclasses.fields(declared)] if declared is not None else []


def _owners(name: str) -> str:
    """Which installed backends have the setting ``name``, for a message."""
    owners = [backend for backend, declared in installed_settings().items() if name in _names(declared)]
    if not owners:
        return "a setting no installed backend has"
    return f"a setting of the {' and '.join(owners)} backend{'s' if len(owners) > 1 else ''}"


def backend_settings(backend: Any, given: Mapping[str, Any]) -> Any:
    """An instance of ``backend``'s declared settings with the ``given`` values (by name), its defaults for the
    rest; None when it declares none (and none is given). VggspecError naming the setting when the backend
    does not have it or its value is not of the setting's type."""
    declared = declared_settings(backend)
    names = _names(declared)
    for name, value in given.items():
        if name not in names:
            has = ", ".join(names) if names else "it has none of its own"
            raise VggspecError(
                f"{name}: expected a setting of the {backend.name} backend ({has}), received {_owners(name)}",
                setting=name,
            )
        hint = typing.get_type_hints(declared)[name]
        if not fits(hint, value):
            raise VggspecError(f"{name}: expected {described(hint, {})}, received {value!r}", setting=name)
    return declared(**given) if declared is not None else None


def check_recorded(backend: Any, recorded: Mapping[str, Any], where: Path) -> None:
    """Refuse the backend settings run.json (``where``) records when they are not ``backend``'s: DataError
    naming the file and the key."""
    declared = declared_settings(backend)
    names = _names(declared)
    unknown = [name for name in recorded if name not in names]
    if unknown:
        has = ", ".join(names) if names else "none"
        raise DataError(
            f'{not_a_record(where)}: expected "backend_settings" to hold settings of the {backend.name} backend '
            f"({has}), received {', '.join(unknown)}"
        )
    if declared is not None:
        from_json_fields(declared, recorded, "backend_settings.", not_a_record(where))


def recorded_settings(settings: Any) -> dict[str, Any]:
    """What run.json records of a run's backend settings (an instance of the declared dataclass, or None)."""
    return dataclasses.asdict(settings) if settings is not None else {}
