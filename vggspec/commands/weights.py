"""Weight files: `weights info FILE` says what a file is (format, layout, parameters, and the spec,
preprocessing, labels and source its metadata records); known weight files: `weights list` shows them
(name, origin, file, size, check, the spec each fits, its preprocessing, cached or not); `weights fetch
NAME` downloads one once, checks it and prints its path.

Keras and torchvision files go to $VGGSPEC_HOME/weights (default ~/.cache/vggspec/weights), from their URLs
or $VGGSPEC_WEIGHTS_MIRROR/<file name> when that is set; Hub files
(a registered `*_timm` name, or any `hf-hub:OWNER/REPO[@REVISION]`) to the Hub's cache (HF_HOME,
HF_HUB_CACHE), from HF_ENDPOINT."""

from __future__ import annotations

import argparse

from vggspec.weights.registry import REGISTRY, cached_path, fetch, weights_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch_parser = actions.add_parser("fetch", help="download a known weight file once and print its path")
    fetch_parser.add_argument(
        "name", metavar="NAME", help="a name `weights list` shows, or a Hub reference hf-hub:OWNER/REPO[@REVISION]"
    )
    fetch_parser.add_argument(
        "--url", help="download from this address instead (a mirror; for a Hub file: the endpoint, as HF_ENDPOINT)"
    )
    actions.add_parser("list", help="list the known weight files and whether they are cached")
    info = actions.add_parser(
        "info", help="what a weight file is: format, layout, parameters and what it says it means"
    )
    info.add_argument("file", metavar="FILE", help="a weight file in any supported format, or a known name")
    info.add_argument("--spec", metavar="SPEC", help="the network to read it as (default: the one its metadata names)")
    info.add_argument("--json", action="store_true", help="print one JSON object")


def _info(args: argparse.Namespace) -> int:
    from vggspec.planner.lower import lower_to_plan
    from vggspec.spec.load import load_spec
    from vggspec.strict_json import dumps
    from vggspec.weights.info import weights_info

    info = weights_info(args.file, None if args.spec is None else lower_to_plan(load_spec(args.spec)))
    if args.json:
        print(dumps(info.to_json()))
        return 0
    unknown = "not known without a spec (give --spec)"
    rows = [
        ("file", f"{info.path} ({info.size_bytes:,} bytes)"),
        ("format", info.format),
        ("layout", info.layout),
        ("arrays", unknown if info.arrays is None else f"{info.arrays:,}"),
        ("parameters", unknown if info.parameters is None else f"{info.parameters:,}"),
    ]
    meta = info.meta
    if meta is None:
        rows.append(("metadata", "none: the file does not say what it expects (the spec's preprocessing is used)"))
    else:
        labels = meta.labels if meta.labels is None or isinstance(meta.labels, str) else ", ".join(meta.labels)
        fits = {None: "", True: f" (fits {info.spec})", False: f" (does not fit {info.spec})"}[info.fits]
        rows += [
            ("spec", f"{meta.spec}, plan digest {meta.plan_digest or 'not given'}{fits}"),
            ("input shape", "not given" if meta.input_shape is None else " x ".join(map(str, meta.input_shape))),
            ("preprocessing", meta.preprocessing or "not given"),
            ("labels", labels or "not given"),
            ("source", " ".join(filter(None, [meta.source, meta.source_sha256 and f"sha256 {meta.source_sha256}"]))),
            ("origin", meta.origin or "not given"),
            ("written by", f"vggspec {meta.vggspec_version}" if meta.vggspec_version else "not given"),
        ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value or 'not given'}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        print(fetch(args.name, url=args.url, progress=True))
        return 0
    if args.action == "info":
        return _info(args)
    rows = [
        (
            f.name,
            f.origin,
            f.file_name if f.origin != "hub" else f"{f.source}/{f.file_name}".removeprefix("hf-hub:"),
            "unknown" if f.size is None else f"{f.size:,}",
            f.checksum,
            f.fits,
            f.preprocessing,
            "yes" if cached_path(f) else "no",
        )
        for f in REGISTRY
    ]
    header = ("name", "origin", "file", "bytes", "check", "fits", "preprocessing", "cached")
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for row in [header] + rows:
        print(
            "  ".join(
                cell.rjust(w) if i == 3 else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))
            ).rstrip()
        )
    print(f"\ncache: {weights_dir()} (Keras and torchvision files); the Hub's cache for hub files")
    print("any VGG checkpoint on the Hub: hf-hub:OWNER/REPO[@REVISION] (its config.json names spec and preprocessing)")
    return 0
