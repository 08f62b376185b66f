"""Read the metadata a weight file carries (:mod:`.meta`), without reading its arrays.

Each format keeps it where it can (see :mod:`.meta`); a file that carries none (one vggspec did not
write, a Keras ``.keras`` archive, an ONNX export) gives None. Damaged metadata is a WeightsError naming
the file and the field: a file cannot claim a preprocessing vggspec does not know.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from vggspec.errors import WeightsError
from vggspec.weights.meta import KEY, WeightsMeta


def read_meta(path: Union[str, Path]) -> Optional[WeightsMeta]:
    """The :class:`WeightsMeta` of a weight file of any supported format, or None when it carries none."""
    from vggspec.weights.formats import KERAS_ARCHIVE, SAFETENSORS, TORCH, detect_format

    path = Path(path)
    kind = detect_format(path)
    if kind == KERAS_ARCHIVE:
        return None
    if kind == SAFETENSORS:
        text = _safetensors_text(path)
    elif kind == TORCH:
        text = _torch_text(path)
    else:
        text = _hdf5_text(path)
    return None if text is None else WeightsMeta.from_json(text, str(path))


def _safetensors_text(path: Path) -> Optional[str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as file:
            metadata = file.metadata() or {}
    except Exception as error:  # the library raises its own SafetensorError for a damaged header
        raise WeightsError(f"{path}: expected a safetensors file, received one it cannot open ({error})") from None
    return metadata.get(KEY)


def _hdf5_text(path: Path) -> Optional[str]:
    from vggspec.weights.hdf5 import open_h5, string_list

    with open_h5(path) as file:
        values = string_list(file, KEY, f"{path}: attribute {KEY!r}")
    if values is None:
        return None
    if len(values) != 1:
        raise WeightsError(f"{path}: attribute {KEY!r}: expected one JSON string, received {len(values)} strings")
    return values[0]


def _torch_text(path: Path) -> Optional[str]:
    """``_metadata["vggspec"]`` of a state dict saved with torch.save (memory-mapped: the arrays are not
    read); a checkpoint that wraps its state dict (``{"state_dict": ...}``) is looked into too."""
    from vggspec.weights.torch_file import load_torch_mapped

    loaded = load_torch_mapped(path)
    for candidate in (loaded, *(loaded.values() if isinstance(loaded, dict) else ())):
        metadata = getattr(candidate, "_metadata", None)
        if isinstance(metadata, dict) and KEY in metadata:
            text = metadata[KEY]
            if not isinstance(text, str):
                kind = type(text).__name__
                raise WeightsError(f"{path}: _metadata[{KEY!r}]: expected a JSON string, received {kind}")
            return text
    return None
