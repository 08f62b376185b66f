"""Forward throughput (images/s, fp32, CPU) of the torch backend's VGG16 against two references.

Candidates, all with the same weights (copied parameter by parameter, shapes checked):
- ``vggspec``: ``vggspec.build(spec, backend="torch")``, the module tree compiled from the plan;
- ``hand_written``: a plain ``nn.Sequential`` written below (conv3x3 + ReLU ..., max pooling,
  flatten, Linear + ReLU, Linear + ReLU, Linear, softmax), the least a VGG16 can do;
- ``torchvision``: ``torchvision.models.vgg16(weights=None)`` where it imports (null otherwise).

Batch 1 and 8, NCHW contiguous and channels_last, in inference mode. The figures are
``vggspec / reference`` images/s (goal >= 0.98). ``channels_last_speedup`` says, for each
candidate, how channels_last compares with contiguous on this machine.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from benchmarks.common import (
    VGG16_CONVS,
    VGG16_FC,
    Case,
    figure,
    interleaved_rates,
    set_torch_threads,
    speed_figure,
)

BATCHES = (1, 8)
GOAL = (">=", 0.98)
REFERENCES = ("hand_written", "torchvision")


def ratio_names() -> list[str]:
    return [
        f"forward_torch/batch{batch}/{layout}/{versus}"
        for layout in ("contiguous", "channels_last")
        for batch in BATCHES
        for versus in [f"vs_{reference}" for reference in REFERENCES] + ["control_a_vs_a"]
    ]


def hand_written_vgg16(input_size: int = 224, classes: int = 1000, dropout: float = 0.0, softmax: bool = True) -> Any:
    """VGG16 as one ``nn.Sequential``, written out without vggspec. Takes NCHW float32.

    ``dropout`` after fc1 and fc2 and ``softmax=False`` give torchvision's head (0.5, logits);
    the defaults give vggspec's ``vgg16`` (keras.applications: no dropout, softmax).
    """
    from torch import nn

    layers: list[nn.Module] = []
    channels = 3
    for width in VGG16_CONVS:
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    side = input_size // 32  # five 2x2 poolings
    features = channels * side * side
    layers.append(nn.Flatten())
    for units in VGG16_FC:
        layers += [nn.Linear(features, units), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        features = units
    layers.append(nn.Linear(features, classes))
    if softmax:
        layers.append(nn.Softmax(dim=1))
    return nn.Sequential(*layers)


def torchvision_vgg16(input_size: int = 224, classes: int = 1000) -> Any:
    """torchvision's VGG16; for an input other than 224x224 its adaptive pooling keeps the last
    map's size (as vggspec's does) instead of stretching it to 7x7, so the work is the same."""
    from torch import nn
    from torchvision.models import vgg16

    model = vgg16(weights=None, num_classes=classes)
    if input_size != 224:
        side = input_size // 32
        model.avgpool = nn.AdaptiveAvgPool2d((side, side))
        model.classifier[0] = nn.Linear(512 * side * side, VGG16_FC[0])
    return model


def copy_parameters(source: Any, target: Any) -> None:
    """Copy every parameter of ``source`` into ``target`` in order; the shapes must match one to one."""
    import torch

    pairs = list(zip(source.parameters(), target.parameters(), strict=True))
    for index, (a, b) in enumerate(pairs):
        if a.shape != b.shape:
            raise ValueError(f"parameter {index}: expected shape {tuple(b.shape)}, received {tuple(a.shape)}")
    with torch.no_grad():
        for a, b in pairs:
            b.copy_(a)


def torchvision_or_reason(case: Case) -> tuple[Optional[Any], Optional[str]]:
    try:
        return torchvision_vgg16(case.input_size, case.classes), None
    except Exception as error:  # ImportError, or torchvision built for another torch
        return None, f"torchvision does not import here ({type(error).__name__}: {error})"


def measure(case: Case) -> dict[str, Any]:
    import torch

    import vggspec

    threads = set_torch_threads()
    torch.manual_seed(0)
    candidate = vggspec.build(case.spec(), backend="torch")
    # hand_written_again: a second copy of the reference, timed like the others; the A/A ratio it gives
    # is the noise floor of this machine (two identical models should measure 1.0).
    models = {
        "vggspec": candidate,
        "hand_written": hand_written_vgg16(case.input_size, case.classes),
        "hand_written_again": hand_written_vgg16(case.input_size, case.classes),
    }
    tv_model, missing = torchvision_or_reason(case)
    if tv_model is not None:
        models["torchvision"] = tv_model
    unavailable = {} if tv_model is not None else {"torchvision": missing}

    same_outputs: dict[str, float] = {}
    check = torch.randn(2, 3, case.input_size, case.input_size)
    with torch.inference_mode():
        for model in models.values():
            model.eval()
        expected = candidate(check)
        for name, model in models.items():
            if name == "vggspec":
                continue
            copy_parameters(candidate, model)
            output = model(check)
            if name == "torchvision":
                output = torch.softmax(output, dim=1)  # torchvision gives logits
            same_outputs[name] = float((output - expected).abs().max())

    rows = []
    ratios: dict[str, Any] = {}
    with torch.inference_mode():
        for channels_last in (False, True):
            layout = "channels_last" if channels_last else "contiguous"
            if channels_last:
                for model in models.values():
                    model.to(memory_format=torch.channels_last)
            for batch in BATCHES:
                x = torch.randn(batch, 3, case.input_size, case.input_size)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                print(f"forward_torch: batch {batch}, {layout}", file=sys.stderr, flush=True)
                rates = interleaved_rates(
                    {name: (lambda m=model, x=x: m(x)) for name, model in models.items()},
                    items_per_call=batch,
                    repeats=case.forward_repeats,
                    warmup=case.warmup,
                    min_sample_s=case.forward_min_sample_s,
                )
                rows.append({"batch": batch, "layout": layout, "images_per_s": rates})
                for reference in REFERENCES:
                    name = f"forward_torch/batch{batch}/{layout}/vs_{reference}"
                    if reference in rates:
                        ratios[name] = speed_figure(rates, "vggspec", reference, goal=GOAL)
                    else:
                        ratios[name] = figure(None, goal=GOAL, reason=unavailable[reference])
                ratios[f"forward_torch/batch{batch}/{layout}/control_a_vs_a"] = speed_figure(
                    rates,
                    "hand_written_again",
                    "hand_written",
                    about="two identical hand-written models: the noise floor; ",
                )

    speedup = {}
    for batch in BATCHES:
        by_layout = {row["layout"]: row["images_per_s"] for row in rows if row["batch"] == batch}
        speedup[f"batch{batch}"] = {
            name: round(by_layout["channels_last"][name]["median"] / by_layout["contiguous"][name]["median"], 3)
            for name in models
        }
    return {
        "details": {
            "spec": case.name,
            "input": [case.input_size, case.input_size, 3],
            "dtype": "float32",
            "torch": torch.__version__,
            "threads": threads,
            "mode": "eval, torch.inference_mode()",
            "max_abs_output_difference_vs_vggspec": same_outputs,
            "unavailable": unavailable,
            "results": rows,
            "channels_last_speedup": speedup,
        },
        "ratios": ratios,
    }
