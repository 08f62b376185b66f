"""GPU throughput and memory of vggspec's torch VGG16 beside torchvision's, on one CUDA device.

    python benchmarks/gpu.py [--quick] [--json-out FILE]      (or: python -m benchmarks.gpu)

Prints one JSON object, then a table. Without CUDA (or without torch) it says why and exits 0.

Candidates, both with the same weights (copied parameter by parameter, shapes checked):
- ``vggspec``: ``vggspec.build(spec, backend="torch")`` for vgg16 with torchvision's head
  (dropout 0.5, logits: ``classifier_activation: null``), so both do the same work;
- ``reference``: ``torchvision.models.vgg16(weights=None)``; where torchvision does not import,
  the hand-written ``nn.Sequential`` of ``benchmarks.forward_torch`` with the same head.

Modes (224x224x3 images, batches 128 and 256 for inference, 64 for training):
``fp32`` (TF32 off), ``tf32`` (TF32 for convolutions and matmuls), ``bf16`` (autocast),
``bf16_channels_last``, ``bf16_channels_last_compile`` (``torch.compile``, compiled during
the warm-up, one static graph per batch size), and ``train_bf16_channels_last`` (a whole SGD
step: forward, cross-entropy, backward, update). Timing: CUDA events around ``iterations``
consecutive calls, the two candidates' samples interleaved after the warm-up; images/s is the
median. The figures are ``vggspec / reference`` images/s (goal >= 0.98) and the memory one
call allocates at its peak beyond what was allocated before it (goal <= 1.02). About 3-5 minutes on an
H100, most of it compiling.

Reference numbers measured on an H100 for torchvision's VGG16 (images/s), for comparison:

    fp32                               1,595
    TF32                               4,020
    bf16 autocast                      5,787
    bf16 + channels_last               7,822
    bf16 + channels_last + compile    13,147
    bf16 + channels_last training      2,855
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

if __package__ in (None, ""):  # run as a script: make the repository's ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

H100_TORCHVISION_IMAGES_PER_S = {
    "fp32": 1595,
    "tf32": 4020,
    "bf16": 5787,
    "bf16_channels_last": 7822,
    "bf16_channels_last_compile": 13147,
    "train_bf16_channels_last": 2855,
}
# name -> (TF32, bf16 autocast, channels_last, torch.compile, training)
MODES = {
    "fp32": (False, False, False, False, False),
    "tf32": (True, False, False, False, False),
    "bf16": (True, True, False, False, False),
    "bf16_channels_last": (True, True, True, False, False),
    "bf16_channels_last_compile": (True, True, True, True, False),
    "train_bf16_channels_last": (True, True, True, False, True),
}
DEVICE = "cuda"
INFERENCE_BATCHES = (128, 256)
TRAINING_BATCH = 64
SPEED_GOAL = 0.98
MEMORY_GOAL = 1.02


def set_tf32(enabled: bool) -> None:
    """TF32 for cuDNN convolutions and cuBLAS matmuls.

    The ``allow_tf32`` switches, not the newer ``fp32_precision`` ones: torch (2.13) refuses to
    read ``cudnn.allow_tf32`` once ``fp32_precision`` was set to "ieee", and torch.compile's
    convolution lowering reads it.
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def make_models() -> tuple[dict[str, Any], str]:
    """{"vggspec": model, "reference": model} on the GPU with equal weights; and what the reference is."""
    import torch

    import vggspec

    from benchmarks.forward_torch import copy_parameters, hand_written_vgg16

    mapping = vggspec.spec_to_mapping(vggspec.load_spec("vgg16"))
    mapping.update(name="vgg16_torchvision_head", dropout=0.5, classifier_activation=None)
    torch.manual_seed(0)
    candidate = vggspec.build(vggspec.spec_from_mapping(mapping), backend="torch")
    try:
        from torchvision.models import vgg16

        reference, described = vgg16(weights=None), "torchvision.models.vgg16(weights=None)"
    except Exception as error:  # ImportError, or a torchvision built for another torch
        reference = hand_written_vgg16(dropout=0.5, softmax=False)
        described = f"hand-written nn.Sequential VGG16 (torchvision does not import: {type(error).__name__}: {error})"
    copy_parameters(candidate, reference)
    return {"vggspec": candidate.to(DEVICE), "reference": reference.to(DEVICE)}, described


def make_step(model: Any, batch: int, mode: str) -> Callable[[], Any]:
    """One call of ``mode`` at ``batch`` (inference, or a full training step) on fixed random data."""
    import torch
    import torch.nn.functional as F

    _, bf16, channels_last, compiled, training = MODES[mode]
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format)
    x = torch.randn(batch, 3, 224, 224, device=DEVICE).contiguous(memory_format=memory_format)
    run = torch.compile(model, dynamic=False) if compiled else model

    if not training:
        model.eval()

        def infer() -> Any:
            with torch.inference_mode(), torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=bf16):
                return run(x)

        return infer

    model.train()
    labels = torch.randint(0, 1000, (batch,), device=DEVICE)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train() -> Any:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(run(x).float(), labels)
        loss.backward()
        optimizer.step()
        return loss

    return train


def interleaved_cuda_rates(
    steps: dict[str, Callable[[], Any]], batch: int, warmup: int, rounds: int, iterations: int
) -> dict[str, dict[str, Any]]:
    """images/s of each step: ``warmup`` calls each, then ``rounds`` interleaved samples of
    ``iterations`` calls, each timed with CUDA events (start, calls, end, synchronize)."""
    import torch

    for step in steps.values():
        for _ in range(warmup):
            step()
    torch.cuda.synchronize()
    names = list(steps)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iterations):
                steps[name]()
            end.record()
            end.synchronize()
            samples[name].append(batch * iterations / (start.elapsed_time(end) / 1000.0))
    return {
        name: {"median": round(statistics.median(rates), 1), "samples": [round(r, 1) for r in rates]}
        for name, rates in samples.items()
    }


def step_memory(step: Callable[[], Any]) -> int:
    """Bytes one call adds at its peak over what was allocated before it (activations, workspaces,
    gradients), after warm-up; both models' weights and optimizer state are already there, so not counted."""
    import torch

    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def run_all(quick: bool) -> dict[str, Any]:
    import torch

    models, reference = make_models()
    warmup, rounds, iterations = (2, 2, 2) if quick else (3, 5, 5)
    torch.backends.cudnn.benchmark = True
    results = []
    for mode, (tf32, _, _, _, training) in MODES.items():
        set_tf32(tf32)
        for batch in (TRAINING_BATCH,) if training else INFERENCE_BATCHES:
            print(f"gpu: {mode}, batch {batch}", file=sys.stderr, flush=True)
            started = time.perf_counter()
            steps = {name: make_step(model, batch, mode) for name, model in models.items()}
            rates = interleaved_cuda_rates(steps, batch, warmup, rounds, iterations)
            memory = {name: step_memory(step) for name, step in steps.items()}
            results.append(
                {
                    "mode": mode,
                    "batch": batch,
                    "images_per_s": rates,
                    "speed_ratio": round(rates["vggspec"]["median"] / rates["reference"]["median"], 4),
                    "step_memory_bytes": memory,
                    "memory_ratio": round(memory["vggspec"] / memory["reference"], 4) if memory["reference"] else None,
                    "h100_torchvision_images_per_s": H100_TORCHVISION_IMAGES_PER_S[mode],
                    "wall_s": round(time.perf_counter() - started, 1),
                }
            )
            del steps
            torch.cuda.empty_cache()
    return {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "reference": reference,
        "timing": {"warmup": warmup, "rounds": rounds, "iterations_per_sample": iterations},
        "goals": {"speed_ratio": f">= {SPEED_GOAL}", "memory_ratio": f"<= {MEMORY_GOAL}"},
        "results": results,
        "goals_missed": [
            f"{r['mode']}/batch{r['batch']}/{what}"
            for r in results
            for what, bad in (
                ("speed_ratio", r["speed_ratio"] < SPEED_GOAL),
                ("memory_ratio", (r["memory_ratio"] or 0) > MEMORY_GOAL),
            )
            if bad
        ],
    }


def table(report: dict[str, Any]) -> str:
    rows = [("mode", "batch", "vggspec img/s", "reference img/s", "speed", "memory", "H100 torchvision")]
    for r in report["results"]:
        rows.append(
            (
                r["mode"],
                str(r["batch"]),
                f"{r['images_per_s']['vggspec']['median']:,.0f}",
                f"{r['images_per_s']['reference']['median']:,.0f}",
                f"{r['speed_ratio']:.3f}x",
                "-" if r["memory_ratio"] is None else f"{r['memory_ratio']:.3f}x",
                f"{r['h100_torchvision_images_per_s']:,}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def cuda_missing() -> Optional[str]:
    """Why this machine cannot run the GPU benchmark, or None."""
    try:
        import torch
    except ImportError as error:
        return f"torch does not import ({error})"
    if not torch.cuda.is_available():
        return f"no CUDA device (torch {torch.__version__}, built with CUDA {torch.version.cuda})"
    return None


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/gpu.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer timed iterations (checks that it runs)")
    parser.add_argument("--json-out", metavar="FILE", help="also write the JSON object to FILE")
    args = parser.parse_args(argv)
    missing = cuda_missing()
    if missing:
        print(json.dumps({"benchmark": "vggspec-gpu", "skipped": missing}))
        print(f"GPU benchmark skipped: {missing}", file=sys.stderr)
        return 0
    started = time.perf_counter()
    report = {"benchmark": "vggspec-gpu", **run_all(args.quick)}
    report["wall_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=2)
    if args.json_out:
        Path(args.json_out).write_text(text + "\n")
    print(text)
    print()
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
