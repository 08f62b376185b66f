"""Keras 3 ``.weights.h5`` files, read and written with h5py.

Keras 3's ``save_weights`` does not store layer names as keys. It walks the model's
layers in order and names each group after the layer's class in snake case, numbered
per class: ``layers/conv2d/vars/0`` (kernel, HWIO), ``layers/conv2d/vars/1`` (bias),
then ``layers/conv2d_1/...``; likewise ``dense``, ``batch_normalization`` (vars 0..3:
gamma, beta, moving_mean, moving_variance), and empty ``vars`` groups for the weightless
``input_layer``, ``max_pooling2d``, ``flatten``. Keras 3.15 also puts the layer's name in
the ``name`` attribute of ``vars``; older files lack it, so layers are matched to the
plan by order (the n-th Conv2D of the plan is ``conv2d_<n>``), as Keras itself does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable, Union

from vggspec.errors import WeightsError
from vggspec.planner.lower import Plan, PlanLayer
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.keras_h5 import open_h5


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


def read_keras3_h5(path: Union[str, Path], plan: Plan) -> WeightBundle:
    """Read a Keras 3 ``.weights.h5`` file, matching its groups to the plan's weighted layers by order."""
    with open_h5(path) as file:
        if "layers" not in file:
            raise WeightsError(f"{path}: expected the Keras 3 group layers/, received a file with "
                               f"{sorted(file.keys()) or 'no groups'}")
        groups = file["layers"]
        bundle = WeightBundle(source=str(path))
        for layer, group in group_names(plan):
            if not layer.weights:
                continue
            where = f"{path}: layer {layer.name} (layers/{group})"
            if group not in groups or "vars" not in groups[group]:
                base = snake_case(layer.type_name)
                found = sum(1 for name in groups if re.fullmatch(rf"{base}(_[0-9]+)?", name))
                raise WeightsError(f"{where}: expected the group layers/{group}/vars, received a file with "
                                   f"{found} {base} group(s)")
            variables = groups[group]["vars"]
            names = [name for name, _ in layer.weights]
            if sorted(variables.keys()) != sorted(str(i) for i in range(len(names))):
                raise WeightsError(f"{where}: expected {len(names)} arrays ({', '.join(names)}) named "
                                   f"0..{len(names) - 1}, received {sorted(variables.keys())}")
            try:
                bundle.layers[layer.name] = {name: variables[str(i)][()] for i, name in enumerate(names)}
            except OSError as error:
                raise WeightsError(f"{where}: expected readable arrays, received a damaged file ({error})") from None
    return bundle


def write_keras3_h5(path: Union[str, Path], bundle: WeightBundle, plan: Plan,
                    progress: Callable[[Iterable], Iterable] = lambda items: items) -> None:
    """Write ``bundle`` (checked against ``plan``) as Keras 3's ``save_weights`` would for the plan's model."""
    import h5py

    with h5py.File(path, "w") as file:
        layers = file.create_group("layers")
        for layer, group in progress(group_names(plan)):
            variables = layers.create_group(group).create_group("vars")
            variables.attrs["name"] = layer.name
            for index, (name, _) in enumerate(layer.weights):
                variables.create_dataset(str(index), data=bundle.layers[layer.name][name])
        file.create_group("vars").attrs["name"] = plan.name
