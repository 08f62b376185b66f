"""``vggspec build`` in int8 or float16: a float32 model made smaller by its backend, checked, then saved.

The float32 model is built (weights loaded) as for any build; the backend's ``lower_precision`` makes the copy,
an int8 one calibrated on the images of ``calibrate`` (preprocessed as the model expects, with a progress bar).
Both models then run on the images held out of the calibration (or those of ``images``), and a copy whose
top-1 agreement with float32 is under ``min_agreement`` is refused in one line saying what was measured:
nothing is written. An unrepresentative calibration (constant images, noise) gives activation ranges that
clip or waste the 256 levels of int8, and this is where it shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from vggspec.backends import Backend, LowersPrecision, ReadsModelFile
from vggspec.building import build_model
from vggspec.errors import BackendError, VggspecError
from vggspec.fileio import check_destination
from vggspec.planner.lower import Plan, lower_to_plan
from vggspec.precision import PRECISIONS
from vggspec.precision.agreement import MIN_AGREEMENT, Agreement, agreement, check_minimum, refuse_below
from vggspec.precision.folder import HELD_OUT_EVERY, ImageFolder, read_image_folder
from vggspec.spec.model import Spec

BATCH_SIZE = 8  # images per run: what the onnx backend runs at a time


@dataclass(frozen=True)
class LoweredModel:
    """What a build in a lower precision made: the model (saved to ``out``), its calibration and its check."""

    model: Any
    out: Path
    calibration_images: int
    checked: Optional[Agreement]  # None: float16 with no images to check on


def scores(backend: Backend, model: Any, plan: Plan, images: ImageFolder, desc: str, progress: bool) -> np.ndarray:
    """The model's outputs (N, classes) for the folder's images, preprocessed as the plan says."""
    from tqdm import tqdm

    with tqdm(total=len(images), desc=desc, unit="image", disable=None if progress else True, leave=False) as bar:
        batches = images.batches(plan, plan.preprocessing, BATCH_SIZE, bar)
        return np.concatenate([np.asarray(backend.predict(model, batch), np.float32) for batch in batches])


def compare_models(
    backend: Backend, reference: Any, lowered: Any, plan: Plan, images: ImageFolder, progress: bool = True
) -> Agreement:
    """``lowered`` (a ReadsModelFile model) against ``reference`` (float32) on ``images``."""
    precision = backend.model_precision(lowered) if isinstance(backend, ReadsModelFile) else "lowered"
    expected = scores(backend, reference, plan, images, "float32", progress)
    found = scores(backend, lowered, plan, images, precision, progress)
    labelled = images.labels is not None and len(images.class_names) == expected.shape[1]  # the model's classes
    return agreement(precision, expected, found, images.labels if labelled else None)


def verify_lower_precision(
    spec: Spec,
    backend: Backend,
    lowered: Union[str, Path],
    images: Union[str, Path],
    weights: Optional[Union[str, Path]] = None,
    progress: bool = True,
) -> Agreement:
    """The model file ``lowered`` (in a lower precision) against ``spec`` in float32 with ``weights`` (its source),
    on the images of the folder ``images`` (class folders give both accuracies)."""
    from vggspec.building import read_model_file

    plan = lower_to_plan(spec)
    folder = read_image_folder(images, "images")
    model = read_model_file(backend, plan, lowered)
    if model is None:
        raise VggspecError(
            f"quantized {lowered}: expected a model file backend {backend.name!r} runs as it is, received another",
            setting="quantized",
        )
    return compare_models(backend, build_model(spec, backend, weights), model, plan, folder, progress)


def _backend_lowering(backend: Backend, precision: str) -> LowersPrecision:
    if precision not in PRECISIONS:
        raise VggspecError(
            f"precision: expected one of {', '.join(PRECISIONS)}, received {precision!r}", setting="precision"
        )
    makes = tuple(backend.precisions) if isinstance(backend, LowersPrecision) else ()
    if precision not in makes:
        raise BackendError(
            f"precision: expected float32 with backend {backend.name!r}, the only one it writes (the onnx backend "
            f"writes int8 and float16), received {precision}",
            setting="precision",
        )
    return backend  # type: ignore[return-value]


def build_lower_precision(
    spec: Spec,
    backend: Backend,
    precision: str,
    out: Union[str, Path],
    calibrate: Optional[Union[str, Path]] = None,
    images: Optional[Union[str, Path]] = None,
    weights: Optional[Union[str, Path]] = None,
    min_agreement: float = MIN_AGREEMENT,
    skip_mismatch: bool = False,
    progress: bool = True,
) -> LoweredModel:
    """Build ``spec`` in float32 (``weights`` loaded), lower it to ``precision`` (int8: calibrated on ``calibrate``),
    check it on the images held out of ``calibrate`` (or on ``images``) and save it to ``out``: refused below
    ``min_agreement`` (top-1), nothing written. float16 is checked when there are images to check on."""
    lowering = _backend_lowering(backend, precision)
    minimum = check_minimum(min_agreement)
    if precision == "int8" and calibrate is None:
        raise VggspecError(
            "calibrate: expected a folder of images to measure an int8 model's activations on (class folders or "
            "image files, as the model will see them), received none",
            setting="calibrate",
        )
    check_destination(out, "out")
    plan = lower_to_plan(spec)
    calibration = read_image_folder(calibrate, "calibrate") if calibrate is not None else None
    if calibration is not None and images is None and len(calibration) < 2:
        raise VggspecError(
            f"calibrate {calibrate}: expected at least 2 images (one in {HELD_OUT_EVERY} is held out to check "
            f"the model on), received {len(calibration)}",
            setting="calibrate",
        )
    held_out = None
    if calibration is not None and images is None:
        calibration, held_out = calibration.split_held_out()
    check = read_image_folder(images, "images") if images is not None else held_out
    model = build_model(spec, backend, weights, skip_mismatch)
    about = {"vggspec.calibration_folder": str(calibrate)} if calibrate is not None else {}
    lowered = _lowered(lowering, model, plan, precision, calibration, about, progress)
    checked = None
    if check is not None:
        checked = compare_models(backend, model, lowered, plan, check, progress)
        where = f"{len(check)} images of {images}" if images is not None else f"{len(check)} held-out images"
        refuse_below(checked, minimum, where)
    from vggspec.building import save_model

    save_model(backend, lowered, out)
    return LoweredModel(lowered, Path(out), len(calibration) if calibration is not None else 0, checked)


def _lowered(
    lowering: LowersPrecision,
    model: Any,
    plan: Plan,
    precision: str,
    calibration: Optional[ImageFolder],
    about: dict[str, str],
    progress: bool,
) -> Any:
    """The backend's lower-precision copy, calibration batches read as it asks for them (with a bar)."""
    from tqdm import tqdm

    if calibration is None or precision != "int8":
        return lowering.lower_precision(model, plan, precision, iter(()), about)
    shown = None if progress else True  # None: on a terminal only
    with tqdm(total=len(calibration), desc="calibrate", unit="image", disable=shown, leave=False) as bar:
        batches = calibration.batches(plan, plan.preprocessing, BATCH_SIZE, bar)
        return lowering.lower_precision(model, plan, precision, batches, about)
