"""What a finetune run uses: its settings and their defaults, and the rules of a resumed run.

A *setting* is a value the caller chooses, named as the library names it: the fields of
:class:`RunSettings` but ``config`` (backend, weights, freeze, classes) and the fields of
:class:`~vggspec.training.protocol.TrainConfig` but ``freeze`` (epochs, batch_size, ...;
the run fills ``TrainConfig.freeze`` in from the ``freeze`` setting). The dataclasses'
defaults are the only defaults: the command line passes the settings it was given and
shows these defaults in its help.

A resumed run is the run its run.json records. A setting given again must equal the
recorded one, except those in CHANGEABLE_ON_RESUME, which say how long the run goes on
and how it is computed, not what it trains; the spec must be the recorded one (its
number of classes aside: the run's head is kept). The training augmentation (``augment``)
and the feature cache's settings (``cache_features``, ``cache_dtype``, ``cache_dir``) are
kept too: a resumed run of a cached run reads the same cache. Every refusal is a
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
from vggspec.training.protocol import TrainConfig
from vggspec.training.run_folder import RunFolder, RunRecord

CHANGEABLE_ON_RESUME = ("epochs", "workers", "device", "compile", "channels_last", "autocast")


@dataclass(frozen=True)
class RunSettings:
    """What a run is asked for besides its spec, its data and its folder."""

    backend: str = "keras"
    weights: Optional[str] = None  # a weight file to start from, any supported format; None: from scratch
    freeze: Optional[str] = None  # freeze up to and including this layer, or "none"; None: the default recipe
    classes: Optional[int] = None  # must equal the number of class folders; None: that number
    config: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def given(cls, settings: Mapping[str, Any]) -> RunSettings:
        """The settings named in ``settings`` (SETTINGS; a value of None is not given), the defaults for the
        rest; each value is checked (VggspecError naming the setting)."""
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise TypeError(f"unknown settings {', '.join(unknown)}: expected some of {', '.join(SETTINGS)}")
        chosen = {name: value for name, value in settings.items() if value is not None}
        if "weights" in chosen:
            chosen["weights"] = str(chosen["weights"])  # a Path
        config = TrainConfig(**{name: value for name, value in chosen.items() if name in CONFIG_SETTINGS})
        return cls(**{name: value for name, value in chosen.items() if name not in CONFIG_SETTINGS}, config=config)

    def value(self, setting: str) -> Any:
        """The value of one setting (a field of this or of its config)."""
        return getattr(self.config if setting in CONFIG_SETTINGS else self, setting)


CONFIG_SETTINGS = tuple(item.name for item in dataclasses.fields(TrainConfig) if item.name != "freeze")
SETTINGS = (*(item.name for item in dataclasses.fields(RunSettings) if item.name != "config"), *CONFIG_SETTINGS)


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
    ``settings`` (a value of None is not given) of CHANGEABLE_ON_RESUME. A given setting of another name must
    equal the recorded one, and ``spec`` (None: the recorded one) be the recorded spec but for its classes."""
    asked = RunSettings.given(settings)
    recorded = RunSettings(
        backend=record.backend,
        weights=record.weights,
        freeze=record.freeze,
        classes=len(record.classes),
        config=record.config,
    )
    for name, value in settings.items():
        if value is not None and name not in CHANGEABLE_ON_RESUME and asked.value(name) != recorded.value(name):
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
    return trained, dataclasses.replace(recorded, config=config)


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
