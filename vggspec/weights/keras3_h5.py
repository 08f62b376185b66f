"""Keras 3 ``.weights.h5`` files, read and written with h5py.

Keras 3's ``save_weights`` does not store layer names as keys. It walks the model's
layers in order and names each group after the layer's class in snake case, numbered
per class: ``layers/conv2d/vars/0`` (kernel, HWIO), ``layers/conv2d/vars/1`` (bias),
then ``layers/conv2d_1/...``; likewise ``dense``, ``batch_normalization`` (vars 0..3:
gamma, beta, moving_mean, moving_variance), and empty ``vars`` groups for the weightless
``input_layer``, ``max_pooling2d``, ``flatten``. Keras 3.15 also puts the layer's name in
the ``name`` attribute of ``vars``; older files lack it, so layers are matched to the
plan by order (the n-th Conv2D of the plan is ``conv2d_<n>``), as Keras itself does.
A ``.keras`` model archive holds such a file as its member ``model.weights.h5``.
Datasets under ``layers/`` that no plan layer takes (a layer the plan lacks) are the bundle's
``extra``; the ``optimizer/`` group of a compiled model's file is its training state, not looked at.
The file is walked through :mod:`.hdf5` (hard links only, metadata before data).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from vggspec.errors import WeightsError
from vggspec.planner.lower import Plan, PlanLayer
from vggspec.weights.bundle import StoredBundle, WeightBundle
from vggspec.weights.hdf5 import dataset, group, keys, other_datasets, stored_array


def snake_case(class_name: str) -> str:
    """Keras' group name for a class: ``Conv2D`` -> ``conv2d``, ``MaxPooling2D`` -> ``max_pooling2d``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", class_name))
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def group_names(plan: Plan) -> list[tuple[PlanLayer, str]]:
    """Each plan layer with the group Keras 3 gives it: ``conv2d``, ``conv2d_1``, ..., ``dense_2``."""
    counts: dict[str, int] = {}
    names = []
    for layer in plan.layers:
        base = snake_case(layer.type_name)
        count = counts.get(base, 0)
        counts[base] = count + 1
        names.append((layer, base if count == 0 else f"{base}_{count}"))
    return names


def stored_keras3_h5(file: Any, name: str, plan: Plan) -> StoredBundle:
    """Describe a Keras 3 ``.weights.h5`` file open as ``file``, matching its groups to the plan's
    weighted layers by order. Returns StoredArrays (metadata only); ``name`` is what messages call the file."""
    layers = group(file, "layers", name)
    if layers is None:
        raise WeightsError(
            f"{name}: expected the Keras 3 group layers/, received a file with "
            f"{sorted(keys(file, name)) or 'no groups'}"
        )
    bundle = StoredBundle(source=name)
    used: list[Any] = []
    for layer, group_name in group_names(plan):
        if not layer.weights:
            continue
        where = f"{name}: layer {layer.name} (layers/{group_name})"
        layer_group = group(layers, group_name, where)
        variables = group(layer_group, "vars", where) if layer_group is not None else None
        if variables is None:
            base = snake_case(layer.type_name)
            found = sum(1 for member in keys(layers, f"{name}: layers") if re.fullmatch(rf"{base}(_[0-9]+)?", member))
            raise WeightsError(
                f"{where}: expected the group layers/{group_name}/vars, received a file with {found} {base} group(s)"
            )
        names = [weight for weight, _ in layer.weights]
        members = keys(variables, where)
        if sorted(members) != sorted(str(i) for i in range(len(names))):
            raise WeightsError(
                f"{where}: expected {len(names)} arrays ({', '.join(names)}) named "
                f"0..{len(names) - 1}, received {sorted(members)[:10]}"
            )
        arrays = {}
        for index, weight in enumerate(names):
            data = _variable(variables, index, where)
            arrays[weight] = stored_array(data, where)
            used.append(data)
        bundle.layers[layer.name] = arrays
    bundle.extra = tuple(f"layers/{other}" for other in other_datasets(layers, used, f"{name}: layers"))
    return bundle


def _variable(variables: Any, index: int, where: str) -> Any:
    data = dataset(variables, str(index), where)
    if data is None:
        raise WeightsError(f"{where}: expected the dataset vars/{index}, received a group without it")
    return data


def write_keras3_h5(
    path: Union[str, Path],
    bundle: WeightBundle,
    plan: Plan,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
    meta_json: Optional[str] = None,
) -> None:
    """Write ``bundle`` (checked against ``plan``) as Keras 3's ``save_weights`` would for the plan's model;
    ``meta_json`` (:mod:`vggspec.weights.meta`) becomes the root attribute ``vggspec``."""
    import h5py

    with h5py.File(path, "w") as file:
        if meta_json is not None:
            file.attrs["vggspec"] = meta_json
        layers = file.create_group("layers")
        for layer, group in progress(group_names(plan)):
            variables = layers.create_group(group).create_group("vars")
            variables.attrs["name"] = layer.name
            for index, (name, _) in enumerate(layer.weights):
                variables.create_dataset(str(index), data=bundle.layers[layer.name][name])
        file.create_group("vars").attrs["name"] = plan.name
