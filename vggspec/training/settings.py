"""What a finetune run uses: its settings and their defaults, and the rules of a resumed run.

A *setting* is a value the caller chooses, named as the library names it: the fields of
:class:`RunSettings` but ``config`` and ``backend_settings`` (backend, weights, freeze, classes),
the fields of :class:`~vggspec.training.protocol.TrainConfig` but ``freeze`` (epochs,
batch_size, ...; the run fills ``TrainConfig.freeze`` in from the ``freeze`` setting), and the
backend's own settings (:mod:`vggspec.training.backend_settings`: torch's device, for one),
which the chosen backend must have. The dataclasses' defaults are the only defaults: the
command line passes the settings it was given and shows these defaults in its help.

A resumed run is the run its run.json records. A setting given again must equal the
recorded one, except those in CHANGEABLE_ON_RESUME and the backend's own settings, which
say how long the run goes on and how it is computed, not what it trains; the spec must be
the recorded one (its number of classes aside: the run's head is kept). The training
augmentation (``augment``) and the feature cache's settings (``cache_features``,
``cache_dtype``, ``cache_dir``) are kept too: a resumed run of a cached run reads the same cache. Every refusal is a
:class:`~vggspec.errors.ResumeError` naming the setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from vggspec.errors import ResumeError
from vggspec.spec.load import spec_from_mapping, spec_to_mapping
from vggspec.spec.model import Spec
from vggspec.training.backend_settings import backend_setting_names
from vggspec.training.protocol import TrainConfig
from vggspec.training.run_folder import RunFolder, RunRecord

CHANGEABLE_ON_RESUME = ("epochs", "workers")  # and every setting of the backend's own


@dataclass(frozen=True)
class RunSettings:
    """What a run is asked for besides its spec, its data and its folder."""

    backend: Optional[str] = None  # None: keras, else torch, whichever can run here (vggspec.backends.default_backend)
    weights: Optional[str] = None  # a weight file to start from, any supported format; None: from scratch
    freeze: Optional[str] = None  # freeze up to and including this layer, or "none"; None: the default recipe
    classes: Optional[int] = None  # must equal the number of class folders; None: that number
    config: TrainConfig = field(default_factory=TrainConfig)
    # the backend's own settings given, by name (checked against the backend when the run starts)
    backend_settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def given(cls, settings: Mapping[str, Any]) -> RunSettings:
        """The settings named in ``settings`` (SETTINGS or a setting of an installed backend; a value of None is
        not given), the defaults for the rest; each value of SETTINGS is checked (VggspecError naming it)."""
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            known = backend_setting_names()
            unknown = [name for name in unknown if name not in known]
            if unknown:
                raise TypeError(
                    f"unknown settings {', '.join(unknown)}: expected some of {', '.join((*SETTINGS, *known))}"
                )
        chosen = {name: value for name, value in settings.items() if value is not None}
        if "weights" in chosen:
            chosen["weights"] = str(chosen["weights"])  # a Path
        config = TrainConfig(**{name: value for name, value in chosen.items() if name in CONFIG_SETTINGS})
        fields = {name: value for name, value in chosen.items() if name in RUN_SETTINGS}
        backend_given = {name: value for name, value in chosen.items() if name not in SETTINGS}
        return cls(**fields, config=config, backend_settings=backend_given)

    def value(self, setting: str) -> Any:
        """The value of one of SETTINGS (a field of this or of its config)."""
        return getattr(self.config if setting in CONFIG_SETTINGS else self, setting)


CONFIG_SETTINGS = tuple(item.name for item in dataclasses.fields(TrainConfig) if item.name != "freeze")
RUN_SETTINGS = tuple(
    item.name for item in dataclasses.fields(RunSettings) if item.name not in ("config", "backend_settings")
)
SETTINGS = (*RUN_SETTINGS, *CONFIG_SETTINGS)  # the settings every backend has


def recorded_run(run: RunFolder) -> RunRecord:
    """The record of the run to resume in ``run``; ResumeError when there is none, DataError when
    run.json is not a record this vggspec reads."""
    if not run.exists():
        raise ResumeError(
            f"resume: expected a run folder with run.json, received {run.path} "
            + ("without it" if run.path.exists() else "(does not exist)"),
            setting="resume",
        )
    return run.read_record()


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


def resumed_settings(
    record: RunRecord, where: Path, settings: Mapping[str, Any], spec: Optional[Spec] = None
) -> tuple[Spec, RunSettings]:
    """The spec and settings a resumed run uses: those ``record`` (read from ``where``) holds, with the given
    ``settings`` (a value of None is not given) of CHANGEABLE_ON_RESUME and of the backend's own. A given setting
    of another name must equal the recorded one, and ``spec`` (None: the recorded one) be the recorded spec but
    for its classes."""
    asked = RunSettings.given(settings)
    recorded = RunSettings(
        backend=record.backend,
        weights=record.weights,
        freeze=record.freeze,
        classes=len(record.classes),
        config=record.config,
        backend_settings=record.backend_settings,
    )
    for name, value in settings.items():
        fixed = name in SETTINGS and name not in CHANGEABLE_ON_RESUME
        if value is not None and fixed and asked.value(name) != recorded.value(name):
            raise ResumeError(
                f"{name}: expected {_shown(recorded.value(name))}, as {where} records (a resumed run keeps it; "
                f"leave it out), received {_shown(asked.value(name))}",
                setting=name,
            )
    trained = spec_from_mapping(dict(record.spec), source=str(where))
    if spec is not None and {**spec_to_mapping(spec), "classes": trained.classes} != spec_to_mapping(trained):
        raise ResumeError(
            f"spec: expected the spec {where} records ({trained.name}, with any number of classes), "
            f"received another ({spec.source or spec.name})",
            setting="spec",
        )
    changes = {name: asked.value(name) for name in CHANGEABLE_ON_RESUME if settings.get(name) is not None}
    config = dataclasses.replace(record.config, **changes)
    # refused here, before a model is built, as far as run.json knows (the last checkpoint may be one epoch ahead)
    check_finished_epochs(config.epochs, record.epochs_done, where.parent)
    backend_given = {**record.backend_settings, **asked.backend_settings}
    return trained, dataclasses.replace(recorded, config=config, backend_settings=backend_given)


def check_class_folders(record: RunRecord, root: Path, class_names: Sequence[str]) -> None:
    """A resumed run trains on the class folders it started with (the labels are their indices)."""
    if tuple(class_names) != record.classes:
        raise ResumeError(
            f"{root}: expected the run's class folders {', '.join(record.classes)}, received {', '.join(class_names)}"
        )


def check_finished_epochs(epochs: int, finished: int, run_path: Path) -> None:
    """A resumed run cannot end before the epochs it has finished (``epochs`` counts them)."""
    if epochs < finished:
        raise ResumeError(
            f"epochs: expected at least the {finished} epochs {run_path} has finished, received {epochs}",
            setting="epochs",
        )
