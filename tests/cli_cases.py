"""What the tests of bad input share: a tiny spec, the one line a refused command prints, a damaged JPEG.

torch runs get OMP_NUM_THREADS=1 (see tests/training/test_finetune.py for why).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

BACKENDS = ("keras", "torch")
ONE_THREAD = {"OMP_NUM_THREADS": "1"}
TINY_YAML = (
    "name: {name}\nlayers: [conv3-4, maxpool, conv3-8, maxpool]\ninput_shape: [32, 32, {channels}]\n"
    "fc: [16]\nclasses: 2\npreprocessing: {preprocessing}\n"
)


def tiny_spec(folder: Path, channels: int = 3, name: str = "tiny", preprocessing: str = "caffe") -> Path:
    path = folder / f"{name[:40]}-{channels}.yaml"
    path.write_text(TINY_YAML.format(name=name, channels=channels, preprocessing=preprocessing))
    return path


def one_line(result) -> str:
    """The single ``error:`` line of a refused command (exit 2, no traceback, nothing else on stderr)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def truncated_jpeg(size: int = 32) -> bytes:
    """A JPEG whose header parses but whose pixels stop half-way (Pillow: "image file is truncated")."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(9).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    return data[: len(data) // 2]
