"""A :class:`~vggspec.parity.compare.ParityReport` as ``vggspec verify`` prints it: parameter counts, every
layer's difference, the checks of the paths users call, the verdict."""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

from vggspec.parity.compare import TOLERANCE, LayerDiff, ParityReport


def disagreement(layer: LayerDiff, backends: Sequence[str]) -> str:
    """Who disagrees at a diverging layer, in words: "naive_torch is the odd one out: keras and onnx agree"."""
    if layer.non_finite:
        return f"{_and(layer.non_finite)} gave NaN or infinite values"
    if layer.odd_one_out is not None:
        return f"{layer.odd_one_out} is the odd one out: {_and([b for b in backends if b != layer.odd_one_out])} agree"
    if len(layer.disagreeing) == len(list(combinations(backends, 2))):
        return "no two backends agree"
    return "; ".join(f"{a} and {b} differ" for a, b in layer.disagreeing)


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def format_report(report: ParityReport) -> str:
    """The whole report, one string of lines."""
    h, w, c = report.input_shape
    several = len(report.backends) > 2  # then every pair, its worst named per layer
    reference = (
        "every pair compared, the first of a pair its reference"
        if several
        else f"{report.backends[0]} is the reference"
    )
    lines = [
        f"vggspec verify {report.spec_name}: {' vs '.join(report.backends)} ({reference})",
        f"  weights: {report.weights}; {report.images} image(s) {h}×{w}×{c}",
        "",
        *_parameters(report),
        "",
        *_layers(report, several),
        "",
        *_checks(report),
        "",
    ]
    top5 = "" if report.top5_agreement is None else f"; top-5 agreement {report.top5_agreement:.0%}"
    lines.append(f"output (predict): max |Δ| {report.max_abs_diff:.2e}, relative {report.max_rel_diff:.2e}{top5}")
    lines.append(f"tolerance: max|Δ| ≤ {TOLERANCE:g} · max(1, max|reference|) per layer (fp32)")
    return "\n".join(lines + _verdict(report, several))


def _parameters(report: ParityReport) -> list[str]:
    width = max(8, *(len(name) for name in report.params))
    lines = ["parameters (trainable + non-trainable):"]
    for name, entry in report.params.items():
        mark = "" if name == "plan" else ("  equal to the plan" if entry["equal_to_plan"] else "  DIFFERENT")
        lines.append(
            f"  {name:<{width}} {entry['total_params']:>14,} = {entry['trainable_params']:,} + "
            f"{entry['non_trainable_params']:,}{mark}"
        )
    return lines


def _layers(report: ParityReport, several: bool) -> list[str]:
    width = max(len(layer.name) for layer in report.layers)
    pair_width = max(len("worst pair"), *(len(" / ".join(layer.pair)) for layer in report.layers))
    pair_header = "  worst pair" if several else ""
    lines = [f"{'layer':<{width}}  {'output shape':<18} {'max |Δ|':>10} {'relative':>10}{pair_header}"]
    for layer in report.layers:
        shape = "(" + ", ".join(map(str, layer.shape)) + ")"
        pair = f"  {' / '.join(layer.pair):<{pair_width}}" if several else ""
        verdict = "ok" if layer.ok else "DIVERGES"
        if layer.non_finite:
            verdict += f" (non-finite values from {_and(layer.non_finite)})"
        elif several and layer.odd_one_out is not None:
            verdict += f" ({layer.odd_one_out})"
        lines.append(
            f"{layer.name:<{width}}  {shape:<18} {layer.max_abs_diff:>10.2e} {layer.rel_diff:>10.2e}{pair}  {verdict}"
        )
    return lines


def _checks(report: ParityReport) -> list[str]:
    """A row per backend and check: ok, FAILED or skipped, and what was found."""
    width = max(len("backend"), *(len(check.backend) for check in report.checks))
    check_width = max(len("check"), *(len(check.check) for check in report.checks))
    lines = [f"{'backend':<{width}}  {'check':<{check_width}}  result"]
    for check in report.checks:
        result = "skipped" if check.skipped else ("ok" if check.ok else "FAILED")
        lines.append(f"{check.backend:<{width}}  {check.check:<{check_width}}  {result:<7}  {check.detail}")
    return lines


def _verdict(report: ParityReport, several: bool) -> list[str]:
    """ "OK: ...", or a "FAILED: ..." line per failure: the counts, each failed check, the first diverging layer."""
    if report.ok:
        return ["OK: the backends agree on every layer and on the parameter counts"]
    lines = [] if report.params_ok else ["FAILED: parameter counts differ from the plan"]
    lines += [f"FAILED: {check.backend}: {check.check}: {check.detail}" for check in report.failed_checks]
    first = next((layer for layer in report.layers if not layer.ok), None)
    if first is not None and (several or report.layers_non_finite):
        lines.append(f"FAILED: first diverging layer: {first.name} ({disagreement(first, report.backends)})")
    elif first is not None:
        lines.append(f"FAILED: first diverging layer: {first.name}")
    return lines
