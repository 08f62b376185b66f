"""Cats vs Dogs as class folders: DIR/{train,val}/{cat,dog}/*.jpg plus DIR/manifest.json.

That tree is what ``keras.utils.image_dataset_from_directory`` and
torchvision's ``ImageFolder`` read. The source is one of

- Microsoft's PetImages zip (the default, downloaded into ``$VGGSPEC_HOME/data``):
  ``PetImages/Cat/<n>.jpg`` and ``PetImages/Dog/<n>.jpg``, 12,500 each;
- Kaggle's ``train.zip``: ``train/cat.<n>.jpg`` and ``train/dog.<n>.jpg``;
- a URL of either zip, or a folder holding either layout already extracted.

Files that are not readable JPEGs are dropped and listed with the reason: empty,
not starting with FF D8, no ``JFIF``/``Exif`` in the first 10 bytes (the check
TensorFlow Datasets makes), or Pillow cannot decode them. The split is
stratified and deterministic: per class, the kept files sorted by number are
shuffled with ``random.Random(seed)`` and the first ``round(val_fraction * n)``
go to ``val``. A split that would leave a class without images in train or in
val is refused (before anything is written when the source itself is too
small; after checking the images, with the partial folder removed, when the
dropped files make it so). Files are copied, never moved.

The tree is built in ``.<DIR name>.partial`` beside DIR (each file written to a
temporary name and renamed, so a file that is there is whole) and renamed to
DIR at the end, so DIR is either absent or complete. An interrupted run resumes
there; a run whose arguments match DIR's manifest does nothing.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import urllib.parse
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from tqdm import tqdm

from vggspec.download import cache_home, download
from vggspec.errors import DataError
from vggspec.fileio import atomic_path

PETIMAGES_URL = (
    "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
)
PETIMAGES_SIZE = 824_887_076
CLASSES = ("cat", "dog")
MANIFEST = "manifest.json"

# layout name -> the pattern of one image's path (class, number); "/" separated, any folder above
LAYOUTS = {
    "microsoft-petimages": re.compile(r"(?:^|/)(Cat|Dog)/(\d+)\.jpg$"),
    "kaggle": re.compile(r"(?:^|/)(cat|dog)\.(\d+)\.jpg$"),
}
_EXPECTED_LAYOUTS = (
    "PetImages/Cat/<n>.jpg and PetImages/Dog/<n>.jpg (Microsoft) or train/cat.<n>.jpg and train/dog.<n>.jpg (Kaggle)"
)
_ARGUMENTS = "arguments.json"  # in the partial folder: what it is being built from
_CHECKED = "checked.json"  # in the partial folder: the result of checking every image


@dataclass(frozen=True)
class SourceImage:
    """One image of the source: its path there, class, number and file name in the output."""

    name: str
    label: str
    number: int
    file_name: str


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
    """Build DIR/{train,val}/{cat,dog} from ``source`` (a URL, a zip or a folder; default PetImages)."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"--val-fraction: expected a number between 0 and 1 (both excluded), received {val_fraction}")
    dest = Path(dest).expanduser().absolute()
    arguments: dict[str, Any] = {"source": _source_id(source), "seed": seed, "val_fraction": val_fraction}

    finished = _finished_manifest(dest, arguments)
    if finished is not None:
        return Prepared(dest, finished, already_complete=True)

    partial = dest.parent / f".{dest.name}.partial"
    manifest = _resumable_manifest(partial, arguments)
    if manifest is None:
        source_images = _open_source(arguments["source"], dest, progress)
        try:
            check_split_sizes(source_images.images, val_fraction, source_images.where)
            _start_partial(partial, arguments)
            checked = _check_images(source_images, partial, progress)
            try:
                check_split_sizes(_kept(source_images, checked), val_fraction, source_images.where, checked["dropped"])
            except DataError:
                shutil.rmtree(partial)  # holds only the record of this check, which would fail again
                raise
            manifest = _write_split(source_images, checked, partial, arguments, progress)
        finally:
            source_images.close()
    for name in (_ARGUMENTS, _CHECKED):
        (partial / name).unlink(missing_ok=True)
    if dest.exists():
        dest.rmdir()  # empty (checked above); the rename needs the name free
    os.rename(partial, dest)
    return Prepared(dest, manifest, already_complete=False)


def check_image(data: bytes) -> Optional[str]:
    """None when ``data`` is a JPEG that TensorFlow and Pillow both read, else the reason it is not."""
    if not data:
        return "empty file"
    if data[:2] != b"\xff\xd8":
        return f"not a JPEG: starts with {data[:4].hex(' ')}, expected ff d8"
    if b"JFIF" not in data[:10] and b"Exif" not in data[:10]:
        return "no JFIF or Exif header in the first 10 bytes"
    from PIL import Image as PillowImage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about odd EXIF blocks it still reads
        try:
            with PillowImage.open(io.BytesIO(data)) as image:
                image.load()
        except Exception as error:  # Pillow raises many kinds (OSError, SyntaxError, ValueError, ...)
            text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "", " ".join(str(error).split()))
            return f"Pillow cannot decode it: {text or type(error).__name__}"
    return None


# --- where the images come from ------------------------------------------------------------------


def _source_id(source: Optional[str]) -> str:
    """The source as the manifest records it: a URL, or an absolute path."""
    if source is None:
        return PETIMAGES_URL
    if _is_url(source):
        return source
    return str(Path(source).expanduser().resolve())


def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https")


class _ImageSource:
    """The images of a zip file or a folder, found by one of the two layouts."""

    def __init__(
        self,
        where: str,
        names: list[str],
        read: Callable[[str], bytes],
        size: Callable[[str], int],
        close: Callable[[], None] = lambda: None,
    ):
        self.where = where
        self.read = read  # name -> bytes
        self.size = size  # name -> bytes on disk once extracted
        self.close = close
        self.layout, self.images, self.ignored = _find_images(where, names)


def _open_source(source_id: str, dest: Path, progress: bool) -> _ImageSource:
    if _is_url(source_id):
        file_name = Path(urllib.parse.urlparse(source_id).path).name or "cats_vs_dogs.zip"
        local = cache_home() / "data" / file_name
        if not local.is_file():
            download(source_id, local, size=PETIMAGES_SIZE if source_id == PETIMAGES_URL else None, progress=progress)
        path = local
    else:
        path = Path(source_id)
    if path.is_dir():
        if dest.resolve() == path or path in dest.resolve().parents:
            raise DataError(f"--dest {dest}: expected a folder outside the source folder {path}")
        names = sorted(str(p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file())
        return _ImageSource(
            str(path), names, lambda name: (path / name).read_bytes(), lambda name: (path / name).stat().st_size
        )
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder; expected a URL, a .zip file or a folder of {_EXPECTED_LAYOUTS}"
        )
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(
            f"{path}: expected a zip file or a folder, received a file that is not a zip ({error})"
        ) from None
    members = {info.filename: info for info in archive.infolist() if not info.is_dir()}

    def read(name: str) -> bytes:
        try:
            return archive.read(members[name])
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise DataError(f"{path}: cannot read {name}: {error}") from None

    try:
        return _ImageSource(str(path), sorted(members), read, lambda name: members[name].file_size, archive.close)
    except DataError:
        archive.close()
        raise


def _find_images(where: str, names: list[str]) -> tuple[str, list[SourceImage], list[str]]:
    """The layout, the images it names, sorted by (class, number), and the other files."""
    found: dict[str, list[tuple[str, re.Match[str]]]] = {layout: [] for layout in LAYOUTS}
    for layout, pattern in LAYOUTS.items():
        for name in names:
            match = pattern.search(name.replace("\\", "/"))
            if match:
                found[layout].append((name, match))
    layouts = [layout for layout, pairs in found.items() if pairs]
    if len(layouts) != 1:
        sample = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "") if names else "no files"
        what = "both layouts" if len(layouts) == 2 else f"{len(names)} files ({sample})"
        raise DataError(f"{where}: expected {_EXPECTED_LAYOUTS}, received {what}")
    layout = layouts[0]
    images: list[SourceImage] = []
    seen: dict[tuple[str, str], str] = {}
    for name, match in found[layout]:
        label = match.group(1).lower()
        image = SourceImage(name, label, int(match.group(2)), Path(name).name)
        key = (label, image.file_name)
        if key in seen:
            raise DataError(f"{where}: {name} and {seen[key]} are both {label} {image.file_name}; expected one of each")
        seen[key] = name
        images.append(image)
    missing = [label for label in CLASSES if not any(image.label == label for image in images)]
    if missing:
        raise DataError(f"{where}: expected images of both classes, received none of {', '.join(missing)}")
    used = {image.name for image in images}
    images.sort(key=lambda image: (image.label, image.number))
    return layout, images, [name for name in names if name not in used]


# --- DIR and its partial twin --------------------------------------------------------------------


def _finished_manifest(dest: Path, arguments: dict[str, Any]) -> Optional[dict[str, Any]]:
    """DIR's manifest when DIR is complete for these arguments; None when DIR is absent or empty."""
    if dest.exists() and not dest.is_dir():
        raise DataError(f"--dest {dest}: expected a folder, received a file")
    manifest_path = dest / MANIFEST
    if not manifest_path.is_file():
        if dest.is_dir() and any(dest.iterdir()):
            raise DataError(f"--dest {dest}: expected a new or empty folder, received one with files and no {MANIFEST}")
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{manifest_path}: not a vggspec manifest ({error}); delete {dest} and run again") from None
    made_with = {key: manifest.get(key) for key in arguments}
    if made_with != arguments:
        raise DataError(
            f"--dest {dest}: already holds a split made with {_describe(made_with)}; expected "
            f"{_describe(arguments)} (choose another --dest, or delete it)"
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


def _resumable_manifest(partial: Path, arguments: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The manifest of a partial folder finished but not yet renamed; clears a partial of other arguments."""
    if not partial.is_dir():
        return None
    for name in (MANIFEST, _ARGUMENTS):
        path = partial / name
        if path.is_file():
            recorded = json.loads(path.read_text())
            if {key: recorded.get(key) for key in arguments} == arguments:
                return recorded if name == MANIFEST else None
            break
    shutil.rmtree(partial)  # made by an earlier run with other arguments (or stopped before it said which)
    return None


def _start_partial(partial: Path, arguments: dict[str, Any]) -> None:
    """Create the partial folder (or keep the one being resumed) and drop half-written temporary files."""
    partial.mkdir(parents=True, exist_ok=True)
    for temporary in partial.rglob(".*.part"):
        temporary.unlink()
    if not (partial / _ARGUMENTS).is_file():
        _write_json(partial / _ARGUMENTS, arguments)


def _write_json(path: Path, value: Any) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(value, indent=2) + "\n")


# --- checking, splitting, copying ----------------------------------------------------------------


def _check_images(source: _ImageSource, partial: Path, progress: bool) -> dict[str, Any]:
    """Check every image once (the result is kept in the partial folder for a resumed run)."""
    checked_path = partial / _CHECKED
    if checked_path.is_file():
        return json.loads(checked_path.read_text())
    dropped = []
    for image in tqdm(source.images, desc="checking images", unit="file", disable=None if progress else True):
        reason = check_image(source.read(image.name))
        if reason is not None:
            dropped.append({"file": image.name, "class": image.label, "reason": reason})
    checked = {"layout": source.layout, "dropped": dropped, "ignored": source.ignored}
    _write_json(checked_path, checked)
    return checked


def check_split_sizes(
    images: list[SourceImage], val_fraction: float, where: str, dropped: Sequence[dict[str, Any]] = ()
) -> None:
    """DataError when :func:`split_images` would leave a class without images in train or in val
    (``dropped``: the entries of the unreadable files left out of ``images``, for the message)."""
    for label in CLASSES:
        count = sum(1 for image in images if image.label == label)
        n_val = round(val_fraction * count)
        if 0 < n_val < count:
            continue
        lost = sum(1 for entry in dropped if entry["class"] == label)
        counted = f"{count} image{'s' if count != 1 else ''}" + (f" kept, {lost} dropped" if lost else "")
        raise DataError(
            f"{where}: expected a split with images of each class in train and in val, received "
            f"{label}: train {count - n_val}, val {n_val} (of {counted}, --val-fraction {val_fraction}); "
            "use more images or a --val-fraction nearer 0.5"
        )


def split_images(images: list[SourceImage], val_fraction: float, seed: int) -> dict[str, list[SourceImage]]:
    """Stratified split: per class (sorted by number), shuffle with ``Random(seed)``, the first
    ``round(val_fraction * n)`` to ``val``, the rest to ``train`` (each list sorted again)."""
    rng = random.Random(seed)
    splits: dict[str, list[SourceImage]] = {"train": [], "val": []}
    for label in CLASSES:
        of_class = sorted((image for image in images if image.label == label), key=lambda image: image.number)
        rng.shuffle(of_class)
        n_val = round(val_fraction * len(of_class))
        splits["val"] += sorted(of_class[:n_val], key=lambda image: image.number)
        splits["train"] += sorted(of_class[n_val:], key=lambda image: image.number)
    return splits


def _kept(source: _ImageSource, checked: dict[str, Any]) -> list[SourceImage]:
    """The source's images less the dropped ones."""
    dropped_names = {entry["file"] for entry in checked["dropped"]}
    return [image for image in source.images if image.name not in dropped_names]


def _write_split(
    source: _ImageSource, checked: dict[str, Any], partial: Path, arguments: dict[str, Any], progress: bool
) -> dict[str, Any]:
    splits = split_images(_kept(source, checked), arguments["val_fraction"], arguments["seed"])
    work = [(split, image) for split, images in splits.items() for image in images]
    for split, image in tqdm(work, desc="copying images", unit="file", disable=None if progress else True):
        target = partial / split / image.label / image.file_name
        if target.is_file() and target.stat().st_size == source.size(image.name):
            continue  # written by the run that was interrupted
        with atomic_path(target) as temporary:
            temporary.write_bytes(source.read(image.name))
    for split in splits:
        for label in CLASSES:
            (partial / split / label).mkdir(parents=True, exist_ok=True)
    manifest = {
        "dataset": "cats_vs_dogs",
        **arguments,
        "layout": checked["layout"],
        "classes": list(CLASSES),
        "found": {label: sum(1 for image in source.images if image.label == label) for label in CLASSES},
        "counts": {
            split: {label: sum(1 for image in images if image.label == label) for label in CLASSES}
            for split, images in splits.items()
        },
        "dropped": checked["dropped"],
        "ignored": checked["ignored"],
    }
    _write_json(partial / MANIFEST, manifest)
    return manifest
