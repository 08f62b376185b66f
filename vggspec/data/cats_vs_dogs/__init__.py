"""Cats vs Dogs as class folders: DIR/{train,val}/{cat,dog}/*.jpg plus DIR/manifest.json.

That tree is what ``keras.utils.image_dataset_from_directory`` and
torchvision's ``ImageFolder`` read. The source is one of

- Microsoft's PetImages zip (the default, downloaded into ``$VGGSPEC_HOME/data``):
  ``PetImages/Cat/<n>.jpg`` and ``PetImages/Dog/<n>.jpg``, 12,500 each;
- Kaggle's ``train.zip``: ``train/cat.<n>.jpg`` and ``train/dog.<n>.jpg``;
- a URL of either zip, or a folder holding either layout already extracted.

One module a step: the source's images are found (:mod:`.source`), each is checked and the
files that are not readable JPEGs are dropped and listed with the reason (:mod:`.checking`),
and the kept ones are split, stratified and deterministic, and copied, never moved
(:mod:`.split`). This module ties the steps together around DIR. A split that would leave a
class without images in train or in val is refused (before anything is written when the
source itself is too small; after checking the images, with the partial folder removed, when
the dropped files make it so).

The tree is built in ``.<DIR name>.partial`` beside DIR (a resumable
:func:`~vggspec.fileio.atomic_folder`; each file written to a temporary name and renamed, so
a file that is there is whole) and renamed to DIR at the end, so DIR is either absent or
complete. The partial folder records what it is built from and the result of checking the
images: an interrupted run resumes there, a partial folder of other arguments is cleared, and
a run whose arguments match DIR's manifest does nothing.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from vggspec.data.cats_vs_dogs.checking import check_images
from vggspec.data.cats_vs_dogs.source import ImageSource, open_source, source_id
from vggspec.data.cats_vs_dogs.split import check_split_sizes, copy_split, kept_images, split_images, split_manifest
from vggspec.errors import DataError
from vggspec.fileio import atomic_folder, atomic_path, check_destination

MANIFEST = "manifest.json"
_ARGUMENTS = "arguments.json"  # in the partial folder: what it is being built from
_CHECKED = "checked.json"  # in the partial folder: the result of checking every image


@dataclass(frozen=True)
class Prepared:
    """What ``prepare_cats_vs_dogs`` did: the manifest, and whether DIR was already complete."""

    dest: Path
    manifest: dict[str, Any]
    already_complete: bool


def prepare_cats_vs_dogs(
    dest: Union[str, Path],
    source: Optional[str] = None,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = True,
) -> Prepared:
    """Build DIR/{train,val}/{cat,dog} from ``source`` (a URL, a zip or a folder; default PetImages).
    A problem with ``dest`` or ``val_fraction`` is a DataError naming that setting."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(
            f"val_fraction: expected a number between 0 and 1 (both excluded), received {val_fraction}",
            setting="val_fraction",
        )
    dest = Path(dest).expanduser().absolute()
    arguments: dict[str, Any] = {"source": source_id(source), "seed": seed, "val_fraction": val_fraction}

    finished = _finished_manifest(dest, arguments)
    if finished is not None:
        return Prepared(dest, finished, already_complete=True)
    check_destination(
        dest, "dest", folder=True, error=DataError, beside=True
    )  # before a download, or any image is read

    images = open_source(arguments["source"], dest, progress)
    try:
        check_split_sizes(images.images, val_fraction, images.where)
        with atomic_folder(dest, resume=functools.partial(_made_from, arguments=arguments)) as partial:
            if (partial / MANIFEST).is_file():  # finished, but not renamed yet
                manifest = json.loads((partial / MANIFEST).read_text())
            else:
                manifest = _build(images, partial, arguments, progress)
            for name in (_ARGUMENTS, _CHECKED):
                (partial / name).unlink(missing_ok=True)
    finally:
        images.close()
    return Prepared(dest, manifest, already_complete=False)


def _build(source: ImageSource, partial: Path, arguments: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Check, split and copy the images into ``partial`` (continuing what it holds); the manifest."""
    if not (partial / _ARGUMENTS).is_file():
        _write_json(partial / _ARGUMENTS, arguments)
    checked_path = partial / _CHECKED
    if checked_path.is_file():  # checked before an interruption
        checked = json.loads(checked_path.read_text())
    else:
        try:
            checked = check_images(source, progress)
        except DataError:  # a member that cannot be read: nothing to resume, the check stops there again
            shutil.rmtree(partial)
            raise
        _write_json(checked_path, checked)
    kept = kept_images(source, checked)
    try:
        check_split_sizes(kept, arguments["val_fraction"], source.where, checked["dropped"])
    except DataError:
        shutil.rmtree(partial)  # holds only the record of this check, which would fail again
        raise
    splits = split_images(kept, arguments["val_fraction"], arguments["seed"])
    copy_split(source, splits, partial, progress)
    manifest = split_manifest(source, checked, splits, arguments)
    _write_json(partial / MANIFEST, manifest)
    return manifest


def _made_from(partial: Path, arguments: dict[str, Any]) -> bool:
    """Whether a partial folder left by an earlier run is being built from ``arguments`` (as its manifest,
    or before that its arguments.json, records); one that does not say is not."""
    for name in (MANIFEST, _ARGUMENTS):
        path = partial / name
        if path.is_file():
            try:
                recorded = json.loads(path.read_text())
            except (OSError, ValueError):
                return False
            return isinstance(recorded, dict) and {key: recorded.get(key) for key in arguments} == arguments
    return False


def _finished_manifest(dest: Path, arguments: dict[str, Any]) -> Optional[dict[str, Any]]:
    """DIR's manifest when DIR is complete for these arguments; None when DIR is absent or empty."""
    if dest.exists() and not dest.is_dir():
        raise DataError(f"dest {dest}: expected a folder, received a file", setting="dest")
    manifest_path = dest / MANIFEST
    if not manifest_path.is_file():
        if dest.is_dir() and any(dest.iterdir()):
            raise DataError(
                f"dest {dest}: expected a new or empty folder, received one with files and no {MANIFEST}",
                setting="dest",
            )
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{manifest_path}: not a vggspec manifest ({error}); delete {dest} and run again") from None
    made_with = {key: manifest.get(key) for key in arguments}
    if made_with != arguments:
        raise DataError(
            f"dest {dest}: already holds a split made with {_describe(made_with)}; expected "
            f"{_describe(arguments)} (choose another `dest`, or delete it)",
            setting="dest",
        )
    for split, per_class in manifest["counts"].items():
        for label, count in per_class.items():
            folder = dest / split / label
            on_disk = sum(1 for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0
            if on_disk != count:
                raise DataError(
                    f"{folder}: expected {count} files as {MANIFEST} says, received {on_disk} "
                    f"(delete {dest} and run again)"
                )
    return manifest


def _describe(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in arguments.items())


def _write_json(path: Path, value: Any) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(value, indent=2) + "\n")
