"""Shared test helpers: run the command line in a fresh process, quiet TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"


@dataclass
class Completed:
    returncode: int
    stdout: str
    stderr: str


def run_vggspec(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600) -> Completed:
    """Run ``python -m vggspec ARGS`` in a fresh process and capture its output."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "vggspec", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)
    return Completed(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():
    """``cli("summary", "vgg16")`` -> Completed(returncode, stdout, stderr)."""
    return run_vggspec
