"""Weights as users name them: a file, or the name of a known file (fetched once, checked, used).

An existing file wins; otherwise a name the registry knows (``vgg16``, a torchvision checkpoint, a
Hub reference) is fetched into the cache. Either way the result says what the weights mean: the
file's own metadata (:mod:`.meta`), or, for a known file, what the registry says about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from vggspec.planner.lower import Plan
from vggspec.weights.meta import IMAGENET, WeightsMeta
from vggspec.weights.registry import HUB, WeightFile


@dataclass(frozen=True)
class ResolvedWeights:
    """A weight file on disk and what it says it is (None: a file that says nothing).

    ``name`` is how messages call the weights: the known name, or the path as given."""

    path: Path
    meta: Optional[WeightsMeta]
    name: str


def known_meta(name: str) -> Optional[WeightsMeta]:
    """The registry's description of the known weight file ``name`` (None: not a known name)."""
    from vggspec.weights.registry import known_weights

    known = known_weights(name)
    return None if known is None else meta_of_known(known)


def meta_of_known(known: WeightFile) -> WeightsMeta:
    """What the registry says about a known file: its spec, preprocessing and ImageNet's labels when it has
    ImageNet's 1000 classes (a Hub checkpoint's config may give another count: no labels then)."""
    imagenet = known.include_top and known.num_classes in (None, 1000)
    return WeightsMeta(
        spec=known.spec,
        preprocessing=known.preprocessing,
        labels=IMAGENET if imagenet else None,
        source=known.file_name if known.origin != HUB else f"{known.source}/{known.file_name}",
        origin=f"known weights {known.name}",
    )


def weights_path(text: Union[str, Path], progress: bool = True) -> Path:
    """The file ``text`` names: an existing path, else a known name's cached copy (fetched once), else the path
    as given (its reader then says it is missing). Nothing is read."""
    from vggspec.weights.registry import fetch_file, known_weights

    path = Path(text)
    known = None if path.exists() else known_weights(str(text))
    return path if known is None else fetch_file(known, progress=progress)


def resolve_weights(text: Union[str, Path], progress: bool = True) -> ResolvedWeights:
    """The weight file ``text`` names: an existing path (its metadata read), else a known name (fetched into
    the cache once; its metadata the registry's). A path that does not exist and no known name: the path,
    whose reader then says it is missing."""
    from vggspec.weights.file_meta import read_meta
    from vggspec.weights.registry import fetch_file, known_weights

    path = Path(text)
    known = None if path.exists() else known_weights(str(text))
    if known is not None:
        return ResolvedWeights(fetch_file(known, progress=progress), meta_of_known(known), str(text))
    return ResolvedWeights(path, read_meta(path) if path.is_file() and not _model_file(path) else None, str(text))


def _model_file(path: Path) -> bool:
    """A model file a backend runs as it is (an ``.onnx`` file): no weight file, its metadata not vggspec's to read
    here (the spec's preprocessing, or the one chosen, feeds it)."""
    from vggspec.building import MODEL_FILE_BACKENDS

    return path.suffix.lower() in MODEL_FILE_BACKENDS


def known_by_file_name(path: Path) -> Optional[WeightsMeta]:
    """The registry's description of a known file kept under its published name (a Keras or torchvision
    download), else None. Hub files are not known by name: every one is ``model.safetensors``."""
    from vggspec.weights.registry import REGISTRY

    match = next((known for known in REGISTRY if known.origin != HUB and known.file_name == path.name), None)
    return None if match is None else meta_of_known(match)


def copied_meta(
    plan: Plan, source: Path, preprocessing: Optional[str] = None, keep_preprocessing: bool = True
) -> WeightsMeta:
    """The metadata of a file written from ``source``'s arrays for ``plan`` (``vggspec convert``): what the
    source says (its own metadata, or the registry's for a known file's name) about preprocessing, labels
    and origin, the plan's name and digest, the source's name and sha256. ``preprocessing`` (the user's
    word) wins; ``keep_preprocessing=False`` drops the source's (its input channels were changed)."""
    from vggspec.fileio import file_digest
    from vggspec.weights.file_meta import read_meta

    said = read_meta(source) or known_by_file_name(source)
    if preprocessing is None and keep_preprocessing and said is not None:
        preprocessing = said.preprocessing
    labels = said.labels if said is not None else None
    if labels is not None and plan.classes is None:
        labels = None  # a file cut to its convolutions keeps no classifier
    return WeightsMeta.for_plan(
        plan,
        preprocessing=preprocessing,
        labels=labels,
        source=source.name,
        source_sha256=file_digest(source, "sha256"),
        origin=(said.origin if said is not None and said.origin else f"vggspec convert from {source.name}"),
    )
