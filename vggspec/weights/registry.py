"""The weight files vggspec knows by name: where they live, how they are checked, the spec they fit.

    >>> from vggspec.weights.registry import fetch, known_weights
    >>> fetch("vgg16_notop")   # downloads once into $VGGSPEC_HOME/weights (default ~/.cache/vggspec)
    PosixPath('/home/me/.cache/vggspec/weights/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5')
    >>> known_weights("hf-hub:timm/vgg16.tv_in1k@main")   # a Hub reference (timm's spelling)

Three origins:

- ``keras-applications``: the four Keras files (Keras 1 HDF5 layout, trained in Caffe by the
  paper's authors), checked by size and md5; they expect "caffe" preprocessing (RGB->BGR,
  0-255, minus the ImageNet mean 103.939, 116.779, 123.68).
- ``torchvision``: torchvision's eight VGG checkpoints (``vgg16-397923af.pth``), checked as
  torchvision checks them: the sha256 of the file starts with the hex digits in its name.
  They expect "torch" preprocessing (0..1, ImageNet mean and std).
- ``hub``: the Hugging Face Hub's copies of those (timm's ``vgg16.tv_in1k``, in timm's layout:
  :mod:`.timm_layout`), read through huggingface_hub (:mod:`.hub`), and any VGG checkpoint there
  by a reference ``hf-hub:OWNER/REPO[@REVISION]``.

Keras and torchvision files are kept in ``$VGGSPEC_HOME/weights``; Hub files in the Hub's cache.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from vggspec.download import cache_home, check_cache_folder, download
from vggspec.errors import WeightsError
from vggspec.weights import hub

KERAS_STORAGE = "https://storage.googleapis.com/tensorflow/keras-applications"
TORCHVISION_STORAGE = "https://download.pytorch.org/models"
KERAS, TORCHVISION, HUB = "keras-applications", "torchvision", "hub"
# a folder URL holding the Keras and torchvision files under their published names, asked instead of their URLs
MIRROR_VARIABLE = "VGGSPEC_WEIGHTS_MIRROR"


@dataclass(frozen=True)
class WeightFile:
    """One published weight file.

    ``size`` is in bytes (None where not known); ``md5`` is 32 lowercase hex digits and
    ``sha256_prefix`` the first hex digits of the sha256 (torchvision's file names), each None
    where the file is not checked that way. ``spec`` is the shipped spec the file fits ("" for a
    Hub checkpoint whose config names none), with ``include_top`` saying whether it holds the
    fc1/fc2/predictions head, and ``num_classes`` its classes where they may differ from the spec's
    (None: the spec's). ``origin`` is KERAS, TORCHVISION or HUB; a Hub file is ``file_name`` of
    ``hub_repo`` at ``hub_revision`` (None: the default branch), and has no ``url``.
    """

    name: str
    file_name: str
    url: str
    size: Optional[int]
    md5: Optional[str]
    spec: str
    include_top: bool
    preprocessing: str = "caffe"
    sha256_prefix: Optional[str] = None
    origin: str = KERAS
    hub_repo: Optional[str] = None
    hub_revision: Optional[str] = None
    num_classes: Optional[int] = None

    @property
    def fits(self) -> str:
        """The spec in words, e.g. ``vgg16`` or ``vgg16 include_top=false``."""
        words = [self.spec or "unknown spec"]
        if not self.include_top:
            words.append("include_top=false")
        if self.num_classes is not None:
            words.append(f"classes={self.num_classes}")
        return " ".join(words)

    @property
    def source(self) -> str:
        """Where the file comes from: its URL, or its Hub reference ``hf-hub:OWNER/REPO[@REVISION]``."""
        if self.origin != HUB:
            return self.url
        return f"{hub.HUB_PREFIX}{self.hub_repo}{f'@{self.hub_revision}' if self.hub_revision else ''}"

    @property
    def checksum(self) -> str:
        """The check a download passes, in words: ``md5 …``, ``sha256 397923af…`` or ``hub etag``."""
        if self.md5:
            return f"md5 {self.md5}"
        if self.sha256_prefix:
            return f"sha256 {self.sha256_prefix}…"
        return "hub etag" if self.origin == HUB else "none"


class WeightRegistry:
    """Weight files by name, in registration order; a name can be registered only once."""

    def __init__(self) -> None:
        self._files: dict[str, WeightFile] = {}

    def register(self, weight_file: WeightFile) -> WeightFile:
        if weight_file.name in self._files:
            raise ValueError(f"a weight file is already registered under the name {weight_file.name!r}")
        self._files[weight_file.name] = weight_file
        return weight_file

    def __getitem__(self, name: str) -> WeightFile:
        try:
            return self._files[name]
        except KeyError:
            raise WeightsError(f"unknown weight file {name!r}; expected one of: {', '.join(self._files)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._files

    def __iter__(self) -> Iterator[WeightFile]:
        return iter(self._files.values())

    def names(self) -> list[str]:
        return list(self._files)


REGISTRY = WeightRegistry()


def _keras_file(name: str, spec: str, include_top: bool, size: Optional[int], md5: str) -> WeightFile:
    file_name = f"{spec}_weights_tf_dim_ordering_tf_kernels{'' if include_top else '_notop'}.h5"
    return REGISTRY.register(
        WeightFile(
            name=name,
            file_name=file_name,
            url=f"{KERAS_STORAGE}/{spec}/{file_name}",
            size=size,
            md5=md5,
            spec=spec,
            include_top=include_top,
        )
    )


_keras_file("vgg16", "vgg16", True, 553_467_096, "64373286793e3c8b2b4e3219cbf3544b")
_keras_file("vgg16_notop", "vgg16", False, 58_889_256, "6d6bbae143d832006294945121d1f1fc")
_keras_file("vgg19", "vgg19", True, None, "cbe5617147190e668d6c5d5026f83318")
_keras_file("vgg19_notop", "vgg19", False, None, "253f8cb515780f3b799900260a226db6")

# torchvision's file names: the spec's name, then the first 8 hex digits of the file's sha256
TORCHVISION_FILES = {
    "vgg11": "vgg11-8a719046.pth",
    "vgg13": "vgg13-19584684.pth",
    "vgg16": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
    "vgg11_bn": "vgg11_bn-6002323d.pth",
    "vgg13_bn": "vgg13_bn-abd245e5.pth",
    "vgg16_bn": "vgg16_bn-6c64b313.pth",
    "vgg19_bn": "vgg19_bn-c79401a0.pth",
}
for _spec, _file_name in TORCHVISION_FILES.items():
    REGISTRY.register(
        WeightFile(
            name=f"{_spec}_torchvision",
            file_name=_file_name,
            url=f"{TORCHVISION_STORAGE}/{_file_name}",
            size=None,
            md5=None,
            spec=_spec,
            include_top=True,
            preprocessing="torch",
            sha256_prefix=_file_name.removesuffix(".pth").rpartition("-")[2],
            origin=TORCHVISION,
        )
    )
# timm's copies of torchvision's weights on the Hub (tag tv_in1k), in timm's layout, as safetensors
for _spec in TORCHVISION_FILES:
    REGISTRY.register(
        WeightFile(
            name=f"{_spec}_timm",
            file_name="model.safetensors",
            url="",
            size=None,
            md5=None,
            spec=_spec,
            include_top=True,
            preprocessing="torch",
            origin=HUB,
            hub_repo=f"timm/{_spec}.tv_in1k",
        )
    )


def known_weights(text: str, *, endpoint: Optional[str] = None) -> Optional[WeightFile]:
    """The weight file ``text`` names: a registered name or a Hub reference ``hf-hub:OWNER/REPO[@REVISION]``;
    None when it is neither (a file's path, for the caller).

    A reference to a registered Hub repository is that entry at the revision asked, with no request;
    any other is described by its ``config.json`` (downloaded through the Hub's cache: :mod:`.hub`, from
    ``endpoint`` when given, else ``HF_ENDPOINT``'s), and a config without a ``pretrained_cfg`` of a
    preprocessing vggspec has is refused in one line."""
    if text in REGISTRY:
        return REGISTRY[text]
    if not text.startswith(hub.HUB_PREFIX):
        return None
    repo, revision = hub.parse_reference(text)
    registered = next((entry for entry in REGISTRY if entry.origin == HUB and entry.hub_repo == repo), None)
    if registered is not None:
        return dataclasses.replace(registered, name=text, hub_revision=revision)
    config = hub.read_config(hub.hub_download(repo, hub.CONFIG_FILE, revision, endpoint=endpoint, progress=False), text)
    return WeightFile(
        name=text,
        file_name="model.safetensors",
        url="",
        size=None,
        md5=None,
        spec=config.spec,
        include_top=config.num_classes != 0,
        preprocessing=config.preprocessing,
        origin=HUB,
        hub_repo=repo,
        hub_revision=revision,
        num_classes=config.num_classes or None,
    )


def weights_dir() -> Path:
    """The folder downloaded Keras and torchvision files are kept in: ``$VGGSPEC_HOME/weights``."""
    return cache_home() / "weights"


def cached_path(weight_file: WeightFile) -> Optional[Path]:
    """The cached copy of a weight file, or None when it is absent (or its size is wrong); no request."""
    if weight_file.origin == HUB:
        assert weight_file.hub_repo is not None
        return hub.hub_cached(weight_file.hub_repo, weight_file.file_name, weight_file.hub_revision)
    path = weights_dir() / weight_file.file_name
    if not path.is_file():
        return None
    if weight_file.size is not None and path.stat().st_size != weight_file.size:
        return None
    return path


def fetch_file(weight_file: WeightFile, *, url: Optional[str] = None, progress: bool = True) -> Path:
    """The local path of ``weight_file``, downloading it first when absent.

    A Keras or torchvision file is checked against its size, md5 or sha256 prefix before it appears
    under its name in :func:`weights_dir` (so a cached file is one that passed those checks; a cache
    folder that cannot be written is refused before the download starts); ``url`` replaces its
    address, and without it ``$VGGSPEC_WEIGHTS_MIRROR/<file name>`` does when that variable is set
    (a mirror holding the files under their published names, for every command that fetches). A Hub
    file is the path in huggingface_hub's cache (checked by the Hub's ETag); ``url`` is then the
    endpoint to ask instead of ``HF_ENDPOINT``.
    """
    if weight_file.origin == HUB:
        assert weight_file.hub_repo is not None
        return hub.hub_download(
            weight_file.hub_repo, weight_file.file_name, weight_file.hub_revision, endpoint=url, progress=progress
        )
    path = cached_path(weight_file)
    if path is not None:
        return path
    check_cache_folder(weights_dir())
    mirror = os.environ.get(MIRROR_VARIABLE, "").rstrip("/")
    return download(
        url or (f"{mirror}/{weight_file.file_name}" if mirror else weight_file.url),
        weights_dir() / weight_file.file_name,
        size=weight_file.size,
        md5=weight_file.md5,
        sha256_prefix=weight_file.sha256_prefix,
        progress=progress,
    )


def fetch(name: str, *, url: Optional[str] = None, progress: bool = True) -> Path:
    """Download the weight file ``name`` (registered, or a Hub reference) once and return its local path."""
    weight_file = known_weights(name, endpoint=url)
    return fetch_file(weight_file if weight_file is not None else REGISTRY[name], url=url, progress=progress)
