"""Show a plan the way ``keras.Model.summary()`` does, or as JSON or Markdown."""

from __future__ import annotations

from typing import Any, Optional

from vggspec.planner.lower import Plan
from vggspec.strict_json import dumps

FLOAT32_BYTES = 4


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(["None"] + [str(d) for d in shape]) + ")"


def _size(params: int) -> str:
    size = float(params * FLOAT32_BYTES)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.2f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def summary_dict(plan: Plan, framework_params: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """One JSON-ready object: totals and every layer (output shapes with a leading null batch axis; ``type``
    is the plan type, which is Keras' class name; ``config`` the type's fields)."""
    result = {
        "name": plan.name,
        "input_shape": list(plan.input_shape),
        "preprocessing": plan.preprocessing,
        "total_params": plan.total_params,
        "trainable_params": plan.trainable_params,
        "non_trainable_params": plan.non_trainable_params,
        "macs": plan.macs,
        "layers": [
            {
                "name": layer.name,
                "type": layer.type_name,
                "output_shape": [None, *layer.output_shape],
                "params": layer.params,
                "trainable_params": layer.trainable_params,
                "non_trainable_params": layer.non_trainable_params,
                "config": layer.config(),
            }
            for layer in plan.layers
        ],
    }
    if framework_params is not None:
        result["backend"] = framework_params
    return result


def parameter_counts(plan: Plan, trainable: int, non_trainable: int) -> dict[str, Any]:
    """A framework's own parameter counts beside the plan's (JSON-ready)."""
    return {
        "total_params": trainable + non_trainable,
        "trainable_params": trainable,
        "non_trainable_params": non_trainable,
        "equal_to_plan": (trainable, non_trainable) == (plan.trainable_params, plan.non_trainable_params),
    }


def totals_lines(plan: Plan) -> list[str]:
    """The totals under a summary (and under a drawing): "Total params: 138,357,544 (527.79 MB)", ..."""
    return [
        f"Total params: {plan.total_params:,} ({_size(plan.total_params)})",
        f"Trainable params: {plan.trainable_params:,} ({_size(plan.trainable_params)})",
        f"Non-trainable params: {plan.non_trainable_params:,} ({_size(plan.non_trainable_params)})",
    ]


def summary_table(plan: Plan) -> str:
    """A box-drawn table like Keras 3's ``model.summary()``."""
    rows = [
        (f"{layer.name} ({layer.type_name})", _shape(layer.output_shape), f"{layer.params:,}") for layer in plan.layers
    ]
    head = ("Layer (type)", "Output Shape", "Param #")
    widths = [max(len(head[i]), *(len(row[i]) for row in rows)) + 2 for i in range(3)]

    def line(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * w for w in widths) + right

    def row(cells: tuple[str, str, str], bar: str) -> str:
        return (
            bar
            + f" {cells[0]:<{widths[0] - 2}} "
            + bar
            + f" {cells[1]:<{widths[1] - 2}} "
            + bar
            + f" {cells[2]:>{widths[2] - 2}} "
            + bar
        )

    out = [f'Model: "{plan.name}"', line("┏", "━", "┳", "┓"), row(head, "┃"), line("┡", "━", "╇", "┩")]
    out += [row(r, "│") for r in rows]
    out.append(line("└", "─", "┴", "┘"))
    out += [" " + text for text in totals_lines(plan)]
    out.append(f" Multiply-accumulates per image: {plan.macs:,}")
    return "\n".join(out)


def summary_markdown(plan: Plan) -> str:
    """A Markdown table of the layers, then the totals."""
    out = [f"### {plan.name}", "", "| Layer (type) | Output Shape | Param # |", "|---|---|---:|"]
    out += [
        f"| {layer.name} ({layer.type_name}) | {_shape(layer.output_shape)} | {layer.params:,} |"
        for layer in plan.layers
    ]
    out += [""] + [f"- {text}" for text in totals_lines(plan)]
    return "\n".join(out)


def summary_json(plan: Plan, framework_params: Optional[dict[str, Any]] = None) -> str:
    return dumps(summary_dict(plan, framework_params))
