"""Read an untrusted HDF5 file: hard links only, metadata before data, every h5py error one line.

Both Keras readers (:mod:`.keras_h5`, :mod:`.keras3_h5`) walk a file only through the
functions here, so that

- a name is followed only through hard links inside the file: a soft link (which may
  loop or dangle) and an external link (which would open another file) are refused,
  never resolved, and so are datasets whose data lives in other files (external
  storage, virtual datasets);
- a group where a dataset belongs, or a dataset where a group belongs, is named;
- an attribute's size and type are checked before it is read (names are strings);
- an array is described by its metadata (:class:`StoredArray`) and read only later,
  once its shape has been checked against the plan;
- h5py's many answers to a damaged file (OSError, KeyError, ValueError, RuntimeError,
  TypeError, SystemError) become one WeightsError naming the file and the object,
  caught around the h5py calls alone so that no bug of ours is hidden.

h5py is imported only inside the functions that open a file.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

import numpy as np

from vggspec.errors import WeightsError
from vggspec.weights.bundle import StoredArray
from vggspec.weights.hdf5_strings import MAX_ATTRIBUTE_BYTES, isolated_strings

# What h5py raises for a damaged file, depending on where the damage is.
H5_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, SystemError)
# Name lists longer than this are not Keras weight files (VGG19 with batch norm has under 100 layers).
MAX_NAMES = 100_000

_TRUNCATED = re.compile(r"truncated file: eof = (\d+).*stored_eof = (\d+)")


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return (text[:200] + "...") if len(text) > 200 else (text or type(error).__name__)


@contextlib.contextmanager
def h5_errors(where: str) -> Iterator[None]:
    """Turn h5py's errors inside the block (h5py calls only) into one WeightsError at ``where``."""
    try:
        yield
    except H5_ERRORS as error:
        raise WeightsError(
            f"{where}: expected a readable HDF5 object, received a damaged one "
            f"({type(error).__name__}: {_reason(error)})"
        ) from None


def open_h5(path: Union[str, Path], name: Optional[str] = None) -> Any:
    """Open an HDF5 file for reading; a missing, foreign or truncated file raises WeightsError.

    ``name`` is what messages call the file (default: its path), e.g. ``m.keras (model.weights.h5)``.
    """
    import h5py

    path = Path(path)
    name = name or str(path)
    try:
        return h5py.File(path, "r")
    except H5_ERRORS as error:
        truncated = _TRUNCATED.search(str(error))
        if truncated:
            raise WeightsError(
                f"{name}: expected a complete HDF5 file of {int(truncated.group(2)):,} bytes, "
                f"received {int(truncated.group(1)):,} bytes (truncated)"
            ) from None
        if not h5py.is_hdf5(path):
            raise WeightsError(
                f"{name}: expected an HDF5 file, received {path.stat().st_size:,} bytes without the HDF5 signature"
            ) from None
        raise WeightsError(f"{name}: expected a readable HDF5 file, received an error: {_reason(error)}") from None


def _child(parent: Any, name: str, where: str) -> Any:
    """The object at ``name`` (a path relative to ``parent``) through hard links only; None if absent."""
    import h5py

    node = parent
    parts = name.split("/")
    if any(part in ("", ".") for part in parts):
        raise WeightsError(f"{where}: expected a relative name without empty or '.' parts, received {name!r}")
    for depth, part in enumerate(parts):
        if not isinstance(node, h5py.Group):
            raise WeightsError(
                f"{where}: expected {'/'.join(parts[:depth])!r} to be a group (on the way to "
                f"{name!r}), received a dataset"
            )
        with h5_errors(f"{where}: {name!r}"):
            link = node.get(part, getlink=True)
        if link is None:
            return None
        if isinstance(link, h5py.SoftLink):
            raise WeightsError(
                f"{where}: expected {name!r} stored in the file (a hard link), received a soft "
                f"link to {link.path!r}, which is not followed"
            )
        if isinstance(link, h5py.ExternalLink):
            raise WeightsError(
                f"{where}: expected {name!r} stored in the file (a hard link), received an external "
                f"link to {link.path!r} in {link.filename!r}, which is not opened"
            )
        with h5_errors(f"{where}: {name!r}"):
            node = node.get(part)
        if not isinstance(node, (h5py.Group, h5py.Dataset)):  # a committed datatype, or a damaged link
            found = "a link to nothing (a damaged file)" if node is None else f"a {type(node).__name__}"
            raise WeightsError(f"{where}: expected {name!r} to be a group or a dataset, received {found}")
    return node


def group(parent: Any, name: str, where: str) -> Optional[Any]:
    """The group at ``name`` under ``parent`` (hard links only); None if absent; a dataset is refused."""
    import h5py

    node = _child(parent, name, where)
    if node is not None and not isinstance(node, h5py.Group):
        raise WeightsError(f"{where}: expected {name!r} to be a group, received a dataset")
    return node


def dataset(parent: Any, name: str, where: str) -> Optional[Any]:
    """The dataset at ``name`` under ``parent`` (hard links only); None if absent; a group is refused."""
    import h5py

    node = _child(parent, name, where)
    if node is not None and not isinstance(node, h5py.Dataset):
        raise WeightsError(f"{where}: expected {name!r} to be a dataset, received a group")
    return node


def keys(parent: Any, where: str) -> list[str]:
    """The link names in a group, in the file's order (nothing is resolved; a name that is not
    UTF-8, which h5py gives as bytes, is decoded with replacement characters)."""
    with h5_errors(where):
        names = [name.decode("utf8", "replace") if isinstance(name, bytes) else name for name in parent]
    if len(names) > MAX_NAMES:
        raise WeightsError(f"{where}: expected at most {MAX_NAMES:,} members, received {len(names):,}")
    return names


def other_datasets(parent: Any, used: Iterable[Any], where: str) -> list[str]:
    """The paths, relative to the group ``parent``, of the datasets in and below it that are not ``used`` (h5py
    datasets a reader took; the same object under another name is the same), in HDF5's visiting order: each
    object once, reached through hard links only (soft and external links are not followed), at most
    MAX_NAMES of them. Nothing is read: for naming what a file holds beside what a reader used."""
    import h5py

    with h5_errors(where):
        taken = {data.id for data in used}
    found: list[str] = []

    def visit(name: Any, node: Any) -> Optional[bool]:
        if isinstance(node, h5py.Dataset) and node.id not in taken:
            found.append(name.decode("utf8", "replace") if isinstance(name, bytes) else str(name))
        return True if len(found) >= MAX_NAMES else None  # a value that is not None ends the visit

    with h5_errors(where):
        parent.visititems(visit)
    return found


def has_attribute(obj: Any, name: str, where: str) -> bool:
    with h5_errors(where):
        return name in obj.attrs


def string_list(obj: Any, name: str, where: str) -> Optional[list[str]]:
    """A list-of-strings attribute as Keras stores it (bytes, maybe split as name0, name1, ...); None if absent.

    Each chunk's shape and type are checked before it is read: strings only, at most MAX_NAMES names and
    MAX_ATTRIBUTE_BYTES in all; each name UTF-8 and printable. A variable-length string's data is a
    reference into the file's global heap, and a damaged one sends the HDF5 library into a loop it never
    leaves (the fuzz tests found a flipped bit that turned a fixed-length attribute into one): those, as
    Keras writes ``backend``, ``model_config`` and Keras 3 a model file's names, are read in a forked child
    with a time limit (:func:`vggspec.weights.hdf5_strings.isolated_strings`).
    An empty attribute (of any type: Keras writes ``np.asarray([])``) is an empty list.
    """
    import h5py

    if has_attribute(obj, name, where):
        chunk_names = [name]
    elif has_attribute(obj, f"{name}0", where):
        chunk_names = []
        while has_attribute(obj, f"{name}{len(chunk_names)}", where) and len(chunk_names) <= MAX_NAMES:
            chunk_names.append(f"{name}{len(chunk_names)}")
    else:
        return None
    items: list[str] = []
    for chunk_name in chunk_names:
        at = f"{where}: attribute {chunk_name}"
        with h5_errors(at):
            attribute = obj.attrs.get_id(chunk_name)
            shape, dtype = attribute.shape, attribute.dtype
            is_string = h5py.check_string_dtype(dtype) is not None or dtype.kind == "S"
            stored_type = attribute.get_type()
            variable = isinstance(stored_type, h5py.h5t.TypeStringID) and stored_type.is_variable_str()
        count = 0 if shape is None else math.prod(shape)  # None: a null dataspace (h5py's Empty)
        if count == 0:  # also Keras' np.asarray([]) (float64) for a layer without weights
            continue
        if not is_string:
            raise WeightsError(f"{at}: expected strings, received {_dtype_words(dtype)} of shape {shape}")
        if len(items) + count > MAX_NAMES or count * dtype.itemsize > MAX_ATTRIBUTE_BYTES:
            raise WeightsError(
                f"{at}: expected at most {MAX_NAMES:,} names and {MAX_ATTRIBUTE_BYTES:,} bytes in all, "
                f"received {count:,} of {dtype.itemsize:,} bytes each"
            )
        if variable:
            values = np.asarray(isolated_strings(obj, chunk_name, at), dtype=object)
        else:
            with h5_errors(at):
                values = np.asarray(obj.attrs[chunk_name]).ravel()
        for value in values:
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf8")
                except UnicodeDecodeError:
                    raise WeightsError(f"{at}: expected UTF-8 names, received {value[:40]!r}") from None
            value = str(value)
            if not value.isprintable():  # a newline in a name would break the one-line messages
                raise WeightsError(f"{at}: expected printable names, received {value[:40]!r}")
            items.append(value)
    return items


def _dtype_words(dtype: np.dtype) -> str:
    """numpy's name for a number type; a word for strings, compounds and other HDF5 types."""
    import h5py

    if h5py.check_string_dtype(dtype) is not None or dtype.kind in "SU":
        return "strings"
    if dtype.names is not None:
        return "a compound type"
    if h5py.check_vlen_dtype(dtype) is not None:
        return "variable-length sequences"
    if h5py.check_enum_dtype(dtype) is not None:
        return "an enum"
    if dtype.kind == "O":
        return "references"
    return dtype.name


def stored_array(data: Any, where: str) -> StoredArray:
    """Describe a dataset by its metadata (shape, dtype); its data is read by ``.read()``, later.

    Data kept outside the file (external storage, a virtual dataset) is refused here.
    """
    with h5_errors(where):
        shape, dtype = data.shape, data.dtype
        external, virtual = data.external, data.is_virtual
        name = data.name
        dtype_name = _dtype_words(dtype)
    if external or virtual:
        elsewhere = f"external storage in {external[0][0]!r}" if external else "a virtual dataset (data in other files)"
        raise WeightsError(
            f"{where}: expected the dataset {name!r} to keep its data in the file, received "
            f"{elsewhere}, which is not opened"
        )
    if shape is None:
        raise WeightsError(f"{where}: expected an array in the dataset {name!r}, received an empty (null) dataset")

    def load() -> np.ndarray:
        with h5_errors(f"{where}: dataset {name!r}"):
            return np.asarray(data[()])

    return StoredArray(tuple(int(n) for n in shape), dtype_name, f"dataset {name!r}", load)
