"""The checks a spec's JSON Schema cannot make, each problem located in the document.

Semantic checks: widths from 1 to ``MAX_WIDTH``, odd kernels, at least one convolution,
a map of at least 2×2 before every pool, no pooling beside the FC head, no softmax over one
class, an odd LRN size. Budget checks run on the plan (:mod:`vggspec.planner.budget`) and are
located here at the spec field that asks for too much.

Both model specs and the columns of the paper's table are checked this way: the fields are
merged (defaults, column, file) first, and a ``Locate`` function maps a field's path to where
the document writes it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from vggspec.errors import Problem
from vggspec.planner.budget import over_budget
from vggspec.planner.lower import lower_to_plan
from vggspec.spec.model import Conv, Spec, halves_the_map, parse_token
from vggspec.spec.yaml_source import Path as DocPath
from vggspec.spec.yaml_source import YamlDocument

# Wider than any published VGG by far; a typo such as conv3-640000 is refused at once.
MAX_WIDTH = 65_536

Locate = Callable[[DocPath], DocPath]  # a spec field's path -> where it is written in the document
Report = Callable[[DocPath, str], Problem]  # (a spec field's path, message) -> a located Problem


def semantic_problems(doc: YamlDocument, fields: dict[str, Any], locate: Locate, invalid: set[str]) -> list[Problem]:
    """Problems the schema cannot see. ``fields`` is the merged mapping (defaults, column, file);
    fields named in ``invalid`` failed the schema and are not looked at again; ``locate`` maps a
    field's path to where the document writes it."""

    def problem(path: DocPath, message: str) -> Problem:
        return doc.problem(locate(path), message)

    if "layers" in invalid:
        return []
    tokens = [parse_token(token) for token in fields["layers"]]
    problems = _convolution_problems(fields["layers"], tokens, problem)
    if "input_shape" not in invalid:
        problems += _pool_problems(fields["input_shape"], tokens, problem)
    problems += _head_problems(fields, invalid, problem)
    lrn = fields["lrn"]
    if "lrn" not in invalid and lrn.get("size", 1) % 2 == 0:
        problems.append(
            problem(
                ("lrn", "size"),
                f"expected an odd LRN size (TensorFlow needs size = 2·depth_radius + 1), received {lrn['size']}",
            )
        )
    return problems


def _convolution_problems(texts: list[str], tokens: Sequence[object], problem: Report) -> list[Problem]:
    """Widths from 1 to MAX_WIDTH, odd kernels (symmetric 'same' padding), and at least one convolution."""
    problems: list[Problem] = []
    convs = 0
    for i, (token, layer) in enumerate(zip(texts, tokens)):
        if isinstance(layer, Conv):
            convs += 1
            if not 1 <= layer.filters <= MAX_WIDTH:
                problems.append(problem(("layers", i), f"expected a width from 1 to {MAX_WIDTH:,}, received {token!r}"))
            if layer.kernel < 1 or layer.kernel % 2 == 0:
                problems.append(
                    problem(
                        ("layers", i),
                        "expected an odd kernel size (1, 3, 5, ...) so that "
                        f"'same' padding is symmetric, received {token!r}",
                    )
                )
    if convs == 0:
        problems.append(problem(("layers",), "expected at least one convolution (convK-N), received none"))
    return problems


def _pool_problems(input_shape: list[int], tokens: Sequence[object], problem: Report) -> list[Problem]:
    """The first pool that would halve a map smaller than 2×2, if any."""
    height, width = input_shape[0], input_shape[1]
    pools = sum(1 for layer in tokens if halves_the_map(layer))
    for i, layer in enumerate(tokens):
        if not halves_the_map(layer):
            continue
        if height // 2 < 1 or width // 2 < 1:
            return [
                problem(
                    ("layers", i),
                    f"expected a feature map of at least 2×2 before each "
                    f"maxpool, received {height}×{width} (an input of {input_shape[0]}×"
                    f"{input_shape[1]} has room for fewer than the {pools} pools given)",
                )
            ]
        height, width = height // 2, width // 2
    return []


def _head_problems(fields: dict[str, Any], invalid: set[str], problem: Report) -> list[Problem]:
    """No pooling beside the FC head; no softmax over a single class."""
    problems: list[Problem] = []
    if not {"include_top", "pooling"} & invalid and fields["include_top"] and fields["pooling"] is not None:
        problems.append(
            problem(
                ("pooling",),
                "expected pooling: null with include_top: true (the pooling "
                f"replaces the FC head), received {fields['pooling']!r}",
            )
        )
    if (
        not {"include_top", "classes", "classifier_activation"} & invalid
        and fields["include_top"]
        and fields["classes"] == 1
        and fields["classifier_activation"] == "softmax"
    ):
        problems.append(
            problem(
                ("classes",),
                "expected at least 2 classes with classifier_activation: softmax "
                "(a softmax over one class is always 1), received 1 (for one yes/no output use "
                "classifier_activation: sigmoid)",
            )
        )
    return problems


def budget_problems(doc: YamlDocument, spec: Spec, locate: Locate) -> list[Problem]:
    """The budgets ``spec``'s plan exceeds (parameters, then activations), each at the field to blame:
    the one its largest layer comes from where the document writes it, else the excess's fallback."""
    problems = []
    for excess in over_budget(lower_to_plan(spec)):
        written = bool(excess.origin) and excess.origin[0] in doc.data
        problems.append(doc.problem(locate(excess.origin if written else excess.fallback), excess.message))
    return problems
