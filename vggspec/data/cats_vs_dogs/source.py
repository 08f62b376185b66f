"""Where the Cats vs Dogs images come from: a URL (downloaded once), a zip file or a folder.

Either layout is found in any of them, under any folder: Microsoft's PetImages
(``PetImages/Cat/<n>.jpg``, ``PetImages/Dog/<n>.jpg``) or Kaggle's ``train.zip``
(``train/cat.<n>.jpg``, ``train/dog.<n>.jpg``). Other files are listed as ignored.

A source is untrusted: before any image is read, each must be at most :data:`MAX_IMAGE_BYTES` (a
zip's members by their declared sizes), and a zip's images may together declare at most
:data:`MAX_INFLATION` times the zip's own size; a member is then read at most to its declared size.
"""

from __future__ import annotations

import re
import urllib.parse
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from vggspec.download import cache_home, check_cache_folder, download
from vggspec.errors import DataError
from vggspec.untrusted_zip import ZIP_ERRORS, check_total_size, member_chunks

PETIMAGES_URL = (
    "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip"
)
PETIMAGES_SIZE = 824_887_076
CLASSES = ("cat", "dog")
# The largest image file read. Cats vs Dogs' photos are tens to hundreds of KB; a camera's 50-megapixel
# JPEG is about 20-30 MB, and Pillow refuses to decode more than 179 megapixels (its decompression-bomb
# limit). A larger file is no photo of a cat, and reading it would cost that much memory.
MAX_IMAGE_BYTES = 64 << 20
# How many times its own size a zip's images may inflate to (with MAX_IMAGE_BYTES as the least limit, for
# tiny zips). JPEG data is compressed already: deflate saves a few percent of it, so a zip of JPEGs whose
# members declare several times its size holds something else (a zip bomb's zeros).
MAX_INFLATION = 4

# layout name -> the pattern of one image's path (class, number); "/" separated, any folder above
LAYOUTS = {
    "microsoft-petimages": re.compile(r"(?:^|/)(Cat|Dog)/(\d+)\.jpg$"),
    "kaggle": re.compile(r"(?:^|/)(cat|dog)\.(\d+)\.jpg$"),
}
_EXPECTED_LAYOUTS = (
    "PetImages/Cat/<n>.jpg and PetImages/Dog/<n>.jpg (Microsoft) or train/cat.<n>.jpg and train/dog.<n>.jpg (Kaggle)"
)


@dataclass(frozen=True)
class SourceImage:
    """One image of the source: its path there, class, number and file name in the output."""

    name: str
    label: str
    number: int
    file_name: str


class ImageSource:
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
        for image in self.images:
            if self.size(image.name) > MAX_IMAGE_BYTES:
                raise DataError(
                    f"{where}: expected image files of at most {MAX_IMAGE_BYTES:,} bytes each, received "
                    f"{image.name} of {self.size(image.name):,} bytes"
                )


def source_id(source: Optional[str]) -> str:
    """The source as the manifest records it: a URL, or an absolute path."""
    if source is None:
        return PETIMAGES_URL
    if _is_url(source):
        return source
    return str(Path(source).expanduser().resolve())


def _is_url(source: str) -> bool:
    return urllib.parse.urlparse(source).scheme in ("http", "https")


def open_source(source: str, dest: Path, progress: bool) -> ImageSource:
    """The images of ``source`` (a :func:`source_id`), downloading a URL into ``$VGGSPEC_HOME/data`` once.
    ``dest`` is where they will be copied: refused inside a source folder (setting ``dest``)."""
    path = _downloaded(source, progress) if _is_url(source) else Path(source)
    if path.is_dir():
        if dest.resolve() == path or path in dest.resolve().parents:
            raise DataError(f"dest {dest}: expected a folder outside the source folder {path}", setting="dest")
        names = sorted(str(p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file())
        return ImageSource(
            str(path), names, lambda name: (path / name).read_bytes(), lambda name: (path / name).stat().st_size
        )
    if not path.exists():
        raise DataError(
            f"{path}: no such file or folder; expected a URL, a .zip file or a folder of {_EXPECTED_LAYOUTS}"
        )
    return _zip_source(path)


def _downloaded(url: str, progress: bool) -> Path:
    file_name = Path(urllib.parse.urlparse(url).path).name or "cats_vs_dogs.zip"
    local = cache_home() / "data" / file_name
    if not local.is_file():
        check_cache_folder(local.parent)
        download(url, local, size=PETIMAGES_SIZE if url == PETIMAGES_URL else None, progress=progress)
    return local


def _zip_source(path: Path) -> ImageSource:
    try:
        archive = zipfile.ZipFile(path)
    except ZIP_ERRORS as error:
        raise DataError(
            f"{path}: expected a zip file or a folder, received a file that is not a zip ({error})"
        ) from None
    members = {info.filename: info for info in archive.infolist() if not info.is_dir()}

    def read(name: str) -> bytes:
        where, info = f"{path} ({name})", members[name]
        return b"".join(member_chunks(archive, info, MAX_IMAGE_BYTES, where, "a readable zip member", DataError))

    try:
        source = ImageSource(str(path), sorted(members), read, lambda name: members[name].file_size, archive.close)
        archive_bytes = path.stat().st_size
        check_total_size(
            path,
            {image.name: members[image.name].file_size for image in source.images},
            max(MAX_INFLATION * archive_bytes, MAX_IMAGE_BYTES),
            "a zip of images",
            f"{MAX_INFLATION} times its {archive_bytes:,} bytes, or {MAX_IMAGE_BYTES:,} if more: JPEGs barely compress",
            DataError,
        )
        return source
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
