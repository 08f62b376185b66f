"""Two-process DistributedDataParallel (gloo, CPU) under torchrun: `vggspec finetune --backend torch`.

Each rank trains its shard of every epoch; gradients are averaged, so both ranks
must end with the same parameters, which rank 0 records as ``ranks_agree`` in
run.json after all-gathering a checksum of each rank's weights.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

from conftest import SPECS
from image_sets import make_image_set

SMALL = SPECS / "examples" / "small64.yaml"


def test_two_ranks_train_the_small_spec_and_agree(tmp_path):
    data = make_image_set(tmp_path / "data", size=64, train_per_class=40, val_per_class=10, seed=2)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "vggspec", "finetune", str(SMALL), "--data", str(data), "--backend", "torch",
               "--epochs", "2", "--batch-size", "8", "--workers", "0", "--out", str(run)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    record = json.loads((run / "run.json").read_text())
    assert record["world_size"] == 2
    assert record["ranks_agree"] is True
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert float(rows[-1]["train_loss"]) < 0.75
    assert result.stdout.count("run folder: ") == 1  # rank 0 alone reports and writes
    assert "2 ranks, parameters equal on all: true" in result.stdout
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "curves.png", "last.pt", "metrics.csv", "run.json"]
