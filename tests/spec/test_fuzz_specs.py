"""Property-based tests of what users type: specs, valid and mutated (Hypothesis).

(a) Random valid specs give the same parameter counts and output shapes in the
plan, the Keras model and the torch model, and the two backends agree layer by
layer on random weights. (b) Random mutations of valid specs, random YAML values
in every field and random bytes never give anything but a checked Spec or a
SpecError (exit status 0 or 2 from the command, no traceback).

The default run uses a fixed seed and few examples; ``-m slow`` runs many more.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vggspec
from vggspec.errors import SpecError
from vggspec.planner.budget import MAX_ACTIVATIONS, MAX_PARAMS
from vggspec.spec.load import load_spec

SPECS = Path(__file__).resolve().parents[2] / "specs"
SHIPPED = sorted(p for p in SPECS.glob("*.yaml")) + sorted((SPECS / "examples").glob("*.yaml"))
ACTIVATIONS = ["relu", "relu6", "elu", "selu", "gelu", "silu", "tanh", "sigmoid"]
FAST = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MANY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# ---------------------------------------------------------------- (a) valid specs


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A small valid spec mapping: 1-4 blocks of 1-3 convolutions (odd kernels), LRN anywhere, any head."""
    blocks = draw(st.integers(1, 4))
    layers: list[str] = []
    for _ in range(blocks):
        for _ in range(draw(st.integers(1, 3))):
            layers.append(f"conv{draw(st.sampled_from([1, 3, 5]))}-{draw(st.integers(1, 12))}")
            if draw(st.integers(0, 5)) == 0:
                layers.append("LRN")
        layers.append("maxpool")
    if draw(st.booleans()):
        layers.pop()  # the last block may end without a pool
    side = 2**blocks * draw(st.integers(2, 4))  # room for every pool
    spec: dict[str, Any] = {
        "name": "fuzz",
        "layers": layers,
        "input_shape": [max(32, side), max(32, draw(st.integers(side, side + 9))), draw(st.integers(1, 4))],
        "batch_norm": draw(st.booleans()),
        "activation": draw(st.sampled_from(ACTIVATIONS)),
        "preprocessing": draw(st.sampled_from(["caffe", "torch", "tf"])),
        "lrn": {
            "size": draw(st.sampled_from([1, 3, 5])),
            "alpha": draw(st.sampled_from([1e-4, 1e-3, 0.5])),
            "beta": draw(st.sampled_from([0.5, 0.75])),
            "k": draw(st.sampled_from([1.0, 2.0])),
        },
    }
    if draw(st.booleans()):
        head = draw(st.sampled_from(["softmax", "sigmoid", None]))
        spec.update(
            include_top=True,
            fc=draw(st.lists(st.integers(1, 16), max_size=2)),
            dropout=draw(st.sampled_from([0.0, 0.25])),
            classifier_activation=head,
            classes=draw(st.integers(2 if head == "softmax" else 1, 6)),
        )
    else:
        spec.update(include_top=False, pooling=draw(st.sampled_from([None, "avg", "max"])))
    return spec


def _agree_in_both_backends(mapping: dict[str, Any]) -> None:
    from vggspec.parity.compare import compare_backends
    from vggspec.parity.inputs import random_bundle

    spec = vggspec.spec_from_mapping(mapping)
    plan = vggspec.plan(spec)
    assert plan.total_params == sum(layer.params for layer in plan.layers) <= MAX_PARAMS
    images = np.random.default_rng(0).normal(0.0, 1.0, size=(1, *plan.input_shape)).astype(np.float32)
    report = compare_backends(plan, random_bundle(plan, seed=1), images, ["keras", "torch"], progress=False)
    for backend in ("keras", "torch"):
        counts = report.params[backend]
        assert (counts["trainable_params"], counts["non_trainable_params"]) == (
            plan.trainable_params,
            plan.non_trainable_params,
        ), (backend, mapping)
    assert [(layer.name, layer.shape) for layer in report.layers] == [
        (layer.name, layer.output_shape) for layer in plan.layers
    ]
    assert report.ok, (report.first_divergent_layer, mapping)


@FAST
@given(valid_specs())
def test_random_valid_specs_agree_in_plan_keras_and_torch(mapping):
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    _agree_in_both_backends(mapping)


@pytest.mark.slow
@MANY
@given(valid_specs())
def test_many_random_valid_specs_agree_in_plan_keras_and_torch(mapping):
    pytest.importorskip("keras")
    pytest.importorskip("torch")
    _agree_in_both_backends(mapping)


# ---------------------------------------------------------------- (b) mutated specs and random bytes

YAML_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "conv3-64",
            "maxpool",
            "LRN",
            "FC-10",
            "soft-max",
            "yes",
            "1e-4",
            "relu",
            "avg",
            "caffe",
            "vgg16",
            "D",
            "E",
            "0x10",
            "010",
        ]
    ),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12,
)
FIELDS = [
    "name",
    "configuration",
    "layers",
    "input_shape",
    "batch_norm",
    "activation",
    "include_top",
    "fc",
    "dropout",
    "classes",
    "classifier_activation",
    "pooling",
    "preprocessing",
    "lrn",
    "description",
    "unknown_field",
]


def _load_or_refuse(path: Path) -> None:
    """load_spec gives a checked spec within the budgets, or a SpecError with a position and a JSON path."""
    try:
        spec = load_spec(path)
    except SpecError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.path.startswith("$") and problem.message.startswith("expected "), problem
            assert "\n" not in str(problem)
        return
    plan = vggspec.plan(spec)
    assert plan.total_params <= MAX_PARAMS and plan.activations_per_image <= MAX_ACTIVATIONS
    assert all(isinstance(n, int) and n >= 1 for n in spec.input_shape + spec.fc + (spec.classes,))
    assert math.isfinite(spec.dropout) and all(math.isfinite(v) for v in vars(spec.lrn).values())


@st.composite
def mutated_texts(draw: st.DrawFn) -> bytes:
    """A shipped spec's text with random edits: cut, inserted or repeated pieces, or a field set to a random value."""
    text = draw(st.sampled_from(SHIPPED)).read_text()
    kind = draw(st.sampled_from(["field", "cut", "insert", "repeat_line"]))
    if kind == "field":
        data = yaml.safe_load(text)
        data[draw(st.sampled_from(FIELDS))] = draw(YAML_VALUES)
        return yaml.safe_dump(data, allow_unicode=True).encode()
    start = draw(st.integers(0, len(text)))
    if kind == "cut":
        return (text[:start] + text[draw(st.integers(start, len(text))) :]).encode()
    if kind == "insert":
        piece = draw(
            st.text(alphabet=st.sampled_from(list("[]{}:,-&*!|>'\"#%@` \n\t0123456789.eE+abcxyz<")), max_size=8)
        )
        return (text[:start] + piece + text[start:]).encode()
    lines = text.splitlines(keepends=True)
    line = draw(st.sampled_from(lines))
    return (text + line).encode()


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutated_texts())
def test_mutated_specs_load_or_are_refused(tmp_path, text):
    path = tmp_path / "mutated.yaml"
    path.write_bytes(text)
    _load_or_refuse(path)


@settings(
    max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=300))
def test_random_bytes_are_refused(tmp_path, data):
    path = tmp_path / "bytes.yaml"
    path.write_bytes(data)
    _load_or_refuse(path)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(FIELDS), YAML_VALUES, max_size=6))
def test_random_mappings_are_refused_or_checked(mapping):
    try:
        spec = vggspec.spec_from_mapping(mapping)
    except SpecError as error:
        assert all(problem.message.startswith("expected ") for problem in error.problems)
        return
    assert vggspec.plan(spec).total_params <= MAX_PARAMS


@pytest.mark.slow
@settings(
    max_examples=20000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mutated_texts() | st.binary(max_size=500))
def test_many_mutated_specs_load_or_are_refused(tmp_path, text):
    path = tmp_path / "mutated.yaml"
    path.write_bytes(text)
    _load_or_refuse(path)


@pytest.mark.parametrize("seed", range(4))
def test_the_command_exits_0_or_2_without_a_traceback(cli, tmp_path, seed):
    """The same mutations through `vggspec validate` and `vggspec summary` in a fresh process."""
    path = tmp_path / "mutated.yaml"
    path.write_bytes(_fixed_mutation(seed))
    for command in ("validate", "summary"):
        result = cli(command, path)
        assert result.returncode in (0, 2), result.stderr
        assert "Traceback" not in result.stderr
        if result.returncode == 2:
            assert result.stdout == "" and result.stderr.strip()


def _fixed_mutation(seed: int) -> bytes:
    """Four hand-picked hostile edits of the default spec (a stable set for the command-line test)."""
    text = (SPECS / "vgg16.yaml").read_text()
    return [
        text.replace("classes: 1000", "classes: 1000.0"),
        text.replace("dropout: 0.0", "dropout: .nan\ndropout: 1e-1"),
        text + "extra: &x [*x]\n",
        text.replace("input_shape: [224, 224, 3]", "input_shape: [100000, 100000, 3]").replace(
            "include_top: true", "include_top: false"
        ),
    ][seed].encode()
