"""Write vggspec's ImageNet class index from the two class lists in timm's wheel.

The 1000 ImageNet-1k class ids (WordNet ids, in the index order every
ImageNet model uses) and their WordNet lemmas ship as plain data files inside
timm's wheel; no dataset or network access is needed::

    pip download --no-deps timm -d /tmp/timm_wheel
    unzip -j /tmp/timm_wheel/timm-*.whl timm/data/_info/imagenet_synsets.txt \
        timm/data/_info/imagenet_synset_to_lemma.txt -d /tmp/timm_info
    python tools/make_imagenet_class_index.py /tmp/timm_info/imagenet_synsets.txt \
        /tmp/timm_info/imagenet_synset_to_lemma.txt

The output has Keras' format (``{"0": ["n01440764", "tench"], ...}``): the
display name is the first lemma with spaces replaced by underscores, written
with ``json.dumps``' default separators and no trailing newline. Written that
way the file is byte-identical to Keras' ``imagenet_class_index.json`` (its MD5
is the ``file_hash`` Keras checks, printed below).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vggspec.fileio import atomic_path  # noqa: E402

DEFAULT_OUTPUT = REPO / "vggspec" / "data_files" / "imagenet_class_index.json"
NUM_CLASSES = 1000
KERAS_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"  # file_hash in keras' imagenet_utils


def read_synsets(path: Path) -> list[str]:
    """The WordNet ids in class-index order, one per line."""
    wnids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(wnids) != NUM_CLASSES or len(set(wnids)) != NUM_CLASSES:
        raise SystemExit(
            f"{path}: expected {NUM_CLASSES} unique WordNet ids, received {len(wnids)} ({len(set(wnids))} unique)"
        )
    return wnids


def read_lemmas(path: Path) -> dict[str, str]:
    """``wnid -> "lemma, lemma, ..."`` from lines ``wnid<TAB>lemmas``."""
    lemmas = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        wnid, sep, names = line.partition("\t")
        if not sep:
            raise SystemExit(f"{path}:{number}: expected 'wnid<TAB>lemmas', received {line!r}")
        lemmas[wnid.strip()] = names.strip()
    return lemmas


def class_index(wnids: list[str], lemmas: dict[str, str]) -> dict[str, list[str]]:
    """``{"0": [wnid, display_name], ...}``; the display name is the first lemma, spaces -> underscores."""
    missing = [wnid for wnid in wnids if wnid not in lemmas]
    if missing:
        raise SystemExit(f"expected a lemma for every class id, received none for {missing[:5]}")
    return {str(i): [wnid, lemmas[wnid].split(",")[0].strip().replace(" ", "_")] for i, wnid in enumerate(wnids)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("synsets", type=Path, help="timm/data/_info/imagenet_synsets.txt")
    parser.add_argument("lemmas", type=Path, help="timm/data/_info/imagenet_synset_to_lemma.txt")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    args = parser.parse_args(argv)

    text = json.dumps(class_index(read_synsets(args.synsets), read_lemmas(args.lemmas)))
    with atomic_path(args.output) as temporary:
        temporary.write_text(text, encoding="utf-8")
    md5 = hashlib.md5(text.encode("utf-8")).hexdigest()
    same = "same as" if md5 == KERAS_CLASS_INDEX_MD5 else "DIFFERENT from"
    print(f"wrote {args.output}: {NUM_CLASSES} classes, md5 {md5} ({same} Keras' imagenet_class_index.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
