"""Build a spec with a backend and load weights into it, checking every shape first."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from vggspec.backends import Backend, get_backend
from vggspec.errors import VggspecError
from vggspec.fileio import check_destination
from vggspec.planner.lower import Plan, lower_to_plan
from vggspec.spec.model import Spec
from vggspec.weights.bundle import StoredBundle
from vggspec.weights.fit import FittedBundle


def read_checked_bundle(
    plan: Plan, weights: Union[str, Path], skip_mismatch: bool = False, whole: Optional[Plan] = None
) -> tuple[FittedBundle, list[str]]:
    """Read a weight file (any supported format) and check it against the plan before anything is set.

    Every array's shape and dtype is checked on the file's metadata before its data is
    read. Returns (the arrays that fit, a line per layer left out). Without ``skip_mismatch``
    a missing layer or wrong shape raises WeightsError; with it, it is left out (never read) and named.
    A file whose layer names are none of the plan's (saved from a hand-written Keras model) is
    read by order, as Keras' ``load_weights`` does: the pairs are the bundle's ``by_order``, and
    its ``matching_note()``, issued as a UserWarning (one line from the command line), says so.
    The file's arrays the plan does not use are named in one UserWarning too; ``whole`` is the plan
    that ``plan`` was cut from (a feature extractor's), whose layers past the cut are expected unused.
    """
    from vggspec.weights.fit import fit_bundle
    from vggspec.weights.formats import open_bundle
    from vggspec.weights.resolve import weights_path

    weights = weights_path(weights)  # a known name: its cached copy, fetched once

    # the file is read as the network it belongs to (``whole``: a feature extractor's is cut from it), so that
    # its keys, its Keras 3 groups and its size limits are those of the whole network's file
    with open_bundle(weights, whole or plan) as stored:
        fitted, skipped = fit_bundle(plan, stored, skip_mismatch)
        if whole is not None and not fitted.by_order:
            skipped += _past_the_cut_problems(whole, plan, stored)
    note = fitted.matching_note()
    if note:
        warnings.warn(note, UserWarning, stacklevel=2)
    _warn_unused(fitted.source, fitted.unused, plan, whole)
    return fitted, skipped


def _past_the_cut_problems(whole: Plan, plan: Plan, stored: StoredBundle) -> list[str]:
    """A line per layer of the file past ``plan``'s cut whose arrays do not fit ``whole`` (the network the
    file is read as), checked on their metadata: skipped, never read, but not in silence."""
    from vggspec.weights.fit import layer_problem

    kept = {layer.name for layer in plan.layers}
    problems = []
    for layer in whole.weighted_layers():
        arrays = stored.layers.get(layer.name)
        problem = None if layer.name in kept or arrays is None else layer_problem(layer, arrays)
        if problem:
            problems.append(f"{stored.source}: layer {layer.name} (past the layers asked for): {problem}")
    return problems


def _warn_unused(source: str, unused: tuple[str, ...], plan: Plan, whole: Optional[Plan]) -> None:
    """One UserWarning naming the file's arrays no layer of ``plan`` reads (those of ``whole``'s layers past
    the cut left out: a feature extractor does not want them); nothing when every array is used."""
    from vggspec.weights.unused import past_the_cut, unexpected, unused_note

    if whole is not None:
        unused = unexpected(unused, past_the_cut(whole, plan))
    note = unused_note(source, unused, plan.name)
    if note:
        warnings.warn(note, UserWarning, stacklevel=3)


@contextlib.contextmanager
def open_checked_bundle(plan: Plan, weights: Union[str, Path]) -> Iterator[tuple[StoredBundle, Optional[str]]]:
    """A weight file's arrays for the plan's weighted layers, every shape and dtype checked on the file's
    metadata (WeightsError naming the layer), none read: each is read, as float32, when asked while the
    block runs. For writers that stream (``vggspec convert``): one array in memory at a time. The second
    item is ``FittedBundle.matching_note()``: how a file read by order was paired (None: by name). The
    file's arrays the plan does not use are named in one UserWarning."""
    from vggspec.weights.formats import checked_stored, open_bundle

    with open_bundle(weights, plan) as stored:
        checked, note = checked_stored(plan, stored)
        _warn_unused(checked.source, checked.extra, plan, None)
        yield checked, note


# A model file a backend runs as it is (ReadsModelFile), by its suffix: what runs it when no backend is named
MODEL_FILE_BACKENDS = {".onnx": "onnx"}


def backend_for_file(name: Optional[str], weights: Optional[Union[str, Path]]) -> Optional[str]:
    """``name``, or, when none is given, the backend that runs the model file ``weights`` (``x.onnx``: onnx)."""
    if name is not None or weights is None:
        return name
    return MODEL_FILE_BACKENDS.get(Path(weights).suffix.lower())


def read_model_file(backend: Backend, plan: Plan, weights: Union[str, Path]) -> Optional[Any]:
    """The model in ``weights`` when it is a file the backend runs as it is (an ``.onnx`` file, perhaps quantized),
    checked against the plan; None when it is a weight file, read as weights."""
    from vggspec.backends import ReadsModelFile

    if isinstance(backend, ReadsModelFile) and str(weights).lower().endswith(backend.save_suffix):
        return backend.read_model(plan, str(weights))
    return None


def build_model(
    spec: Spec, backend: Union[str, Backend], weights: Optional[Union[str, Path]] = None, skip_mismatch: bool = False
) -> Any:
    """The native model of ``spec`` with a backend (or its name), ``weights`` loaded when given (see
    ``vggspec.build``); a model file the backend runs as it is (``.onnx``) is read whole. Every array is checked
    before the model is built: a refused file builds nothing."""
    plan = lower_to_plan(spec)
    backend = get_backend(backend) if isinstance(backend, str) else backend
    if weights is None:
        return backend.build(plan)
    model = read_model_file(backend, plan, weights)
    if model is not None:
        return model
    bundle, skipped = read_checked_bundle(plan, weights, skip_mismatch)
    for line in skipped:
        warnings.warn(f"skipped: {line}", UserWarning, stacklevel=3)
    model = backend.build(plan)
    backend.set_weights(model, plan, bundle)
    return model


def save_model(backend: Backend, model: Any, out: Union[str, Path]) -> Optional[str]:
    """``backend.save`` (returns its line for the user, or None), with a destination that cannot be
    written refused in one line naming the setting ``out``; nothing is left there."""
    check_destination(out, "out")
    try:
        return backend.save(model, str(out))
    except OSError as error:
        raise VggspecError(
            f"out {out}: expected a writable destination, received one where the file cannot be "
            f"written ({error.strerror or error})",
            setting="out",
        ) from None
