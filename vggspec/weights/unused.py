"""What a weight file holds that a plan does not use: found by the one check, said in one line.

The check of a file against a plan (:func:`vggspec.weights.fit.check_bundle`) names every array
of the file that no layer of the plan reads: the arrays of a layer the plan does not have
(``fc1/kernel`` of a whole VGG16 file read for a spec without top), a weight its layer does not
have (``block1_conv1/extra``), and what the reader found beside the layers (a torch key of no
module, ``extra.weight``; an HDF5 dataset no ``weight_names`` lists). Names are spelled as in the
file, so that the user can find them there.

A feature extractor is built from a plan cut after its deepest output (:meth:`Plan.up_to`): a
checkpoint of the whole network then holds the layers past the cut, which are expected to be
unused. :func:`past_the_cut` spells them as every format does, and :func:`unexpected` leaves them out.
"""

from __future__ import annotations

from typing import Collection, Optional, Sequence

from vggspec.frameworks.torch_modules import module_slots
from vggspec.planner.lower import Plan
from vggspec.weights.bundle import SEPARATOR, StoredBundle
from vggspec.weights.keras3_h5 import group_names

SHOWN = 5  # names a note lists; the others are counted


def unused_arrays(plan: Plan, bundle: StoredBundle, skipped: Collection[str] = ()) -> tuple[str, ...]:
    """The arrays of ``bundle`` (a file's, its layers already under the plan's names) that no layer of ``plan``
    reads, in the file's order: what the reader found beside the layers (``bundle.extra``), then each array
    of a layer the plan lacks, or of a weight its layer lacks, as ``layer/weight``. The ``skipped`` layers
    (left out for not fitting, and named where they are) are not repeated here."""
    weights = {layer.name: {name for name, _ in layer.weights} for layer in plan.weighted_layers()}
    unused = list(bundle.extra)
    for layer, arrays in bundle.layers.items():
        if layer not in skipped:
            unused += [f"{layer}{SEPARATOR}{name}" for name in arrays if name not in weights.get(layer, ())]
    return tuple(unused)


def past_the_cut(whole: Plan, cut: Plan) -> tuple[str, ...]:
    """The prefixes under which weight files keep the arrays of ``whole``'s layers past ``cut`` (what
    ``whole.up_to(...)`` gave): ``block5_conv1/`` (Keras 1/2 layer groups, safetensors keys), ``features.28.``
    (torch state-dict keys), ``layers/conv2d_12/`` (Keras 3 groups)."""
    slots = module_slots(whole)
    groups = {layer.name: group for layer, group in group_names(whole)}
    prefixes: list[str] = []
    for layer in whole.layers[len(cut.layers) :]:
        prefixes += [f"{layer.name}{SEPARATOR}", f"layers/{groups[layer.name]}/"]
        if layer.name in slots:
            prefixes.append(f"{slots[layer.name].path}.")
    return tuple(prefixes)


def unexpected(names: Sequence[str], expected_prefixes: Sequence[str] = ()) -> tuple[str, ...]:
    """``names`` less those under one of ``expected_prefixes`` (:func:`past_the_cut`)."""
    return tuple(name for name in names if not name.startswith(tuple(expected_prefixes)))


def unused_note(source: str, names: Sequence[str], plan_name: str) -> Optional[str]:
    """One line naming the file and its unused arrays (the first few, and how many more; a name that would break
    the line shown as Python writes it); None when there are none."""
    if not names:
        return None
    shown = [name if name.isprintable() and len(name) <= 100 else repr(name[:100]) for name in names[:SHOWN]]
    listed = ", ".join(shown) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
    count = f"{len(names)} array{'s' if len(names) != 1 else ''} in the file {'are' if len(names) != 1 else 'is'}"
    return f"{source}: {count} not used (no layer of {plan_name} reads {'them' if len(names) != 1 else 'it'}): {listed}"
