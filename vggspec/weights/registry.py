"""The weight files vggspec knows by name: where they live, their size and md5, the spec they fit.

    >>> from vggspec.weights.registry import fetch
    >>> fetch("vgg16_notop")   # downloads once into $VGGSPEC_HOME/weights (default ~/.cache/vggspec)
    PosixPath('/home/me/.cache/vggspec/weights/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5')

These are the Keras applications files (Keras 1 HDF5 layout, trained in Caffe
by the paper's authors): they expect "caffe" preprocessing (RGB->BGR, 0-255,
minus the ImageNet mean 103.939, 116.779, 123.68).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from vggspec.download import cache_home, check_cache_folder, download
from vggspec.errors import WeightsError

KERAS_STORAGE = "https://storage.googleapis.com/tensorflow/keras-applications"


@dataclass(frozen=True)
class WeightFile:
    """One published weight file.

    ``size`` is in bytes (None where not known); ``md5`` is 32 lowercase hex
    digits. ``spec`` is the shipped spec the file fits, with ``include_top``
    saying whether it holds the fc1/fc2/predictions head.
    """

    name: str
    file_name: str
    url: str
    size: Optional[int]
    md5: str
    spec: str
    include_top: bool
    preprocessing: str = "caffe"

    @property
    def fits(self) -> str:
        """The spec in words, e.g. ``vgg16`` or ``vgg16 include_top=false``."""
        return self.spec if self.include_top else f"{self.spec} include_top=false"


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


def known_weights(text: str) -> Optional[WeightFile]:
    """The registered weight file named ``text``; None when no file is registered under that name."""
    return next((known for known in REGISTRY if known.name == text), None)


def weights_dir() -> Path:
    """The folder downloaded weight files are kept in: ``$VGGSPEC_HOME/weights``."""
    return cache_home() / "weights"


def cached_path(weight_file: WeightFile) -> Optional[Path]:
    """The cached copy of a weight file, or None when it is absent (or its size is wrong)."""
    path = weights_dir() / weight_file.file_name
    if not path.is_file():
        return None
    if weight_file.size is not None and path.stat().st_size != weight_file.size:
        return None
    return path


def fetch_file(weight_file: WeightFile, *, url: Optional[str] = None, progress: bool = True) -> Path:
    """The cached path of ``weight_file``, downloading it first (from ``url`` if given) when absent.

    A download is checked against the file's size and md5 before it appears
    under its name, so a cached file is one that passed those checks; a cache
    folder that cannot be written is refused before the download starts.
    """
    path = cached_path(weight_file)
    if path is not None:
        return path
    check_cache_folder(weights_dir())
    return download(
        url or weight_file.url,
        weights_dir() / weight_file.file_name,
        size=weight_file.size,
        md5=weight_file.md5,
        progress=progress,
    )


def fetch(name: str, *, url: Optional[str] = None, progress: bool = True) -> Path:
    """Download the registered weight file ``name`` once and return its cached path."""
    return fetch_file(REGISTRY[name], url=url, progress=progress)
