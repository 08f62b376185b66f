"""What a command that feeds images runs: the spec, the weights, their preprocessing and class names.

The weights decide the preprocessing (as torchvision's ``WeightsEnum.transforms`` and timm's
``pretrained_cfg`` do): weights that say what they expect (a known file, a file vggspec wrote) are
fed that way; a spec that says otherwise is refused naming both, unless the user chooses with the
setting ``preprocessing``; weights that say nothing are fed as the spec says. ``note`` says which
was used and why: commands print it in their header.

A fine-tuning run's folder is a model too: its spec (the head for its classes, the preprocessing it
trained with), its best checkpoint and its class names (``run.json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from vggspec.errors import VggspecError
from vggspec.spec.model import PREPROCESSING_MODES, Spec
from vggspec.weights.resolve import ResolvedWeights, resolve_weights


@dataclass(frozen=True)
class ModelSource:
    """``spec`` with the chosen preprocessing; ``weights`` (None: none given); ``labels``, the class names
    when the weights or the run know them (None: ImageNet's for 1000 classes, else indices); ``note``:
    which preprocessing and why, one line."""

    spec: Spec
    weights: Optional[ResolvedWeights]
    labels: Optional[tuple[str, ...]]
    note: str


def is_run_folder(text: Union[str, Path]) -> bool:
    """Whether ``text`` names a folder holding a fine-tuning run's ``run.json``."""
    from vggspec.training.run_folder import RUN_JSON

    return Path(text).is_dir() and (Path(text) / RUN_JSON).is_file()


def model_source(
    spec: Union[str, Path],
    weights: Optional[Union[str, Path]] = None,
    preprocessing: Optional[str] = None,
    progress: bool = True,
) -> ModelSource:
    """The model ``spec`` (a spec file, a shipped name or a run folder) with ``weights`` (a file or a known
    name; a run folder's best checkpoint when not given), fed with ``preprocessing`` when given, else as the
    weights say (see the module). VggspecError naming the setting ``preprocessing`` when the weights and the
    spec disagree and no choice was made."""
    from vggspec.spec.load import load_spec, spec_from_mapping

    labels: Optional[tuple[str, ...]] = None
    if is_run_folder(spec):
        from vggspec.training.run_folder import RunFolder

        folder = RunFolder(spec)
        record = folder.read_record()
        checked = spec_from_mapping(dict(record.spec), source=str(folder.run_json))
        labels = tuple(record.classes)
        if weights is None:
            weights = folder.path / record.checkpoints.best
            if not Path(weights).is_file():
                raise VggspecError(f"{folder.path}: expected its best checkpoint {weights}, received a run without it")
    else:
        checked = load_spec(spec)
    resolved = None if weights is None else resolve_weights(weights, progress)
    mode, note = choose_preprocessing(checked, resolved, preprocessing)
    if labels is not None and resolved is not None and resolved.meta is None and preprocessing is None:
        note = f"preprocessing {mode}: the run's ({spec}/run.json)"  # a checkpoint of an older run says nothing
    if labels is None and resolved is not None and resolved.meta is not None:
        named = resolved.meta.labels
        labels = named if isinstance(named, tuple) and len(named) == checked.classes else None
    return ModelSource(dataclasses.replace(checked, preprocessing=mode), resolved, labels, note)


def choose_preprocessing(spec: Spec, weights: Optional[ResolvedWeights], chosen: Optional[str]) -> tuple[str, str]:
    """(the preprocessing mode to feed ``spec`` with ``weights``, the reason in words): see the module."""
    said = None if weights is None or weights.meta is None else weights.meta.preprocessing
    if chosen is not None:
        if chosen not in PREPROCESSING_MODES:
            raise VggspecError(
                f"preprocessing: expected one of {', '.join(PREPROCESSING_MODES)}, received {chosen!r}",
                setting="preprocessing",
            )
        return chosen, f"preprocessing {chosen}: as asked"
    if weights is None:
        return spec.preprocessing, f"preprocessing {spec.preprocessing}: the spec's (no weights)"
    if said is None:
        return spec.preprocessing, f"preprocessing {spec.preprocessing}: the spec's ({weights.name} does not say)"
    if said != spec.preprocessing:
        raise VggspecError(
            f"the weights {weights.name} expect {said!r} preprocessing, the spec {spec.name} says "
            f"{spec.preprocessing!r}: choose one with `preprocessing`",
            setting="preprocessing",
        )
    return said, f"preprocessing {said}: from the weights {weights.name}"
