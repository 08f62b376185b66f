"""Class folders as training reads them: every image decoded before anything is written, an image broken
mid-run stops with one line and the run resumes, symlink loops read once. Real images, the real command
line, real Keras and torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from vggspec.errors import DataError
from vggspec.training.folders import read_split

from cli_cases import BACKENDS, ONE_THREAD, one_line, tiny_spec, truncated_jpeg
from conftest import run_in_own_session, slow_for, started_in_own_session
from image_sets import CLASSES, make_image_set


@pytest.mark.parametrize(
    "where, bytes_",
    [("val/stripes/stripes.0001.jpg", truncated_jpeg()), ("train/circles/circles.0003.jpg", b"not an image at all")],
    ids=["truncated in val", "not an image in train"],
)
def test_unreadable_image_is_named_before_anything_is_written(where, bytes_, cli, tmp_path, tiny_image_set):
    data = tmp_path / "data"
    for path in tiny_image_set.rglob("*.jpg"):
        target = data / path.relative_to(tiny_image_set)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (data / where).write_bytes(bytes_)
    result = cli("finetune", tiny_spec(tmp_path), "--data", data, "--backend", "torch", "--out", tmp_path / "run")
    line = one_line(result)
    assert line.startswith(
        f"error: {data / where}: expected an image file Pillow can read (JPEG, PNG, ...), received an unreadable file ("
    )
    assert ("truncated" if "val" in where else "cannot identify image file") in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("broken", [3, 23], ids=["three", "more than are shown"])
def test_every_unreadable_image_is_counted_and_the_first_are_named_a_line_each(broken, cli, tmp_path):
    """Several broken files: a line each (the first SHOWN_UNREADABLE in path order), then one counting them all,
    so that one run shows what to fix. The CLI prints the lines as they are (no ``error:``), exit 2."""
    from vggspec.training.folders import SHOWN_UNREADABLE

    data = make_image_set(tmp_path / "data", size=32, train_per_class=12, val_per_class=2, seed=6)
    paths = sorted((data / "train").rglob("*.jpg"))[:broken]
    for path in paths:
        path.write_bytes(b"not an image at all")
    result = cli("finetune", tiny_spec(tmp_path), "--data", data, "--backend", "torch", "--out", tmp_path / "run")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    *named, count = result.stderr.strip().splitlines()
    shown = min(broken, SHOWN_UNREADABLE)
    assert [line.split(": expected ")[0] for line in named] == [str(path) for path in paths[:shown]]
    assert all("received an unreadable file (cannot identify image file" in line for line in named)
    assert count == (
        f"{data / 'train'}: expected images Pillow can read, received {broken} of 24 that it cannot "
        f"({'above' if broken <= SHOWN_UNREADABLE else f'the first {SHOWN_UNREADABLE} above'})"
    )
    assert not (tmp_path / "run").exists()


def test_unreadable_images_of_both_splits_are_named_in_one_run(cli, tmp_path):
    data = make_image_set(tmp_path / "data", size=32, train_per_class=4, val_per_class=2, seed=6)
    broken = [sorted((data / split).rglob("*.jpg"))[0] for split in ("train", "val")]
    for path in broken:
        path.write_bytes(b"not an image at all")
    result = cli("finetune", tiny_spec(tmp_path), "--data", data, "--backend", "torch", "--out", tmp_path / "run")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"{broken[0]}: expected an image file Pillow can read (JPEG, PNG, ...), received an unreadable file "
        "(cannot identify image file)",
        f"{broken[1]}: expected an image file Pillow can read (JPEG, PNG, ...), received an unreadable file "
        "(cannot identify image file)",
        f"{data / 'train'}: expected images Pillow can read, received 1 of 8 that it cannot (above)",
        f"{data / 'val'}: expected images Pillow can read, received 1 of 4 that it cannot (above)",
    ]


@pytest.mark.parametrize("backend", slow_for(BACKENDS, "keras"))  # keras: 22 s
def test_image_broken_mid_run_stops_with_one_line_and_resumes(backend, tmp_path):
    """Files that break after the check (here: every training image, once epoch 1 is committed) stop the run
    in a DataLoader worker process (torch) or a PyDataset thread (keras) with one line naming a file;
    the finished epochs stay for --resume."""
    data = make_image_set(tmp_path / "data", size=32, train_per_class=16, val_per_class=2, seed=5)
    spec, run = tiny_spec(tmp_path), tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "vggspec",
        "finetune",
        str(spec),
        "--data",
        str(data),
        "--backend",
        backend,
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--workers",
        "2",
        "--out",
        str(run),
    ]
    with started_in_own_session(
        args, env={**os.environ, **ONE_THREAD}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        deadline = time.monotonic() + 300
        while not ((run / "metrics.csv").is_file() and len((run / "metrics.csv").read_text().splitlines()) >= 2):
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        originals = {path: path.read_bytes() for path in sorted((data / "train").rglob("*.jpg"))}
        for path in originals:
            path.write_bytes(truncated_jpeg())
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0] == stderr.strip().splitlines()[-1], stderr[-3000:]
    assert errors[0].startswith(f"error: {data / 'train'}/")
    assert (
        ": expected an image file Pillow can read (JPEG, PNG, ...), received an unreadable file "
        "(image file is truncated"
    ) in errors[0]
    finished = (run / "metrics.csv").read_text().splitlines()[1:]
    assert 1 <= len(finished) < 3
    for path, content in originals.items():
        path.write_bytes(content)
    resumed = run_in_own_session([*args, "--resume"], 300, env={**os.environ, **ONE_THREAD})
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} after epoch {len(finished)} of 3" in resumed.stdout
    rows = (run / "metrics.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["1", "2", "3"] and rows[: len(finished)] == finished


def test_symlink_loops_are_read_once(tmp_path, cli):
    """Links to files and folders are followed, but no real folder is read twice and no real image is
    counted twice in a split: loops, links to the split or to another class add nothing."""
    data = make_image_set(tmp_path / "data", size=32, train_per_class=6, val_per_class=2, seed=6)
    extra = make_image_set(tmp_path / "extra", size=32, train_per_class=3, val_per_class=0, seed=7)
    circles, stripes = data / "train" / "circles", data / "train" / "stripes"
    os.symlink(".", circles / "again")  # a loop: circles/again/again/...
    os.symlink("..", circles / "up")  # the split itself: both classes
    os.symlink("../stripes", circles / "sibling")  # another class
    os.symlink("circles.0000.jpg", circles / "twice.jpg")  # an image counted already
    os.symlink("../../../data", stripes / "root")  # the data folder: train and val
    os.symlink(extra / "train" / "stripes", stripes / "more")  # a real folder outside: followed once
    os.symlink(extra / "train" / "stripes", stripes / "more_again")  # ... and not twice
    with pytest.warns(UserWarning, match="not followed, it leads to") as caught:
        images = read_split(data, "train")
    assert images.class_counts() == [6, 9]
    assert len({os.path.realpath(path) for path in images.paths}) == 15
    assert all(str(path).startswith(str(circles)) for path, label in zip(images.paths, images.labels) if label == 0)
    assert sorted(str(w.message).split(":")[0] for w in caught) == sorted(
        str(p)
        for p in (circles / "again", circles / "sibling", circles / "up", stripes / "more_again", stripes / "root")
    )
    # a class folder that is itself a link: a link above where it really is makes a loop too
    # (elsewhere/circles/up leads to elsewhere, whose other/ is no class of this split)
    elsewhere = tmp_path / "elsewhere"
    for name, count in (("circles", 3), ("other", 4)):
        (elsewhere / name).mkdir(parents=True)
        for path in sorted((data / "val").rglob("*.jpg"))[:count]:
            (elsewhere / name / path.name).write_bytes(path.read_bytes())
    os.symlink("..", elsewhere / "circles" / "up")
    linked = tmp_path / "linked" / "train"
    (linked / "stripes").mkdir(parents=True)
    os.symlink(elsewhere / "circles", linked / "circles")
    for path in sorted(extra.rglob("*.jpg"))[:2]:
        (linked / "stripes" / path.name).write_bytes(path.read_bytes())
    with pytest.warns(UserWarning, match="not followed, it leads to") as caught:
        again = read_split(linked.parent, "train")
    assert again.class_counts() == [3, 2]
    assert [str(w.message).split(":")[0] for w in caught] == [str(linked / "circles" / "up")]
    result = cli(
        "finetune",
        tiny_spec(tmp_path),
        "--data",
        data,
        "--backend",
        "torch",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--out",
        tmp_path / "run",
        env=ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "run.json").read_text())["train_images"] == 15
    assert result.stderr.count(": not followed, it leads to ") == 5


def test_read_split_without_links_is_unchanged(tiny_image_set):
    images = read_split(tiny_image_set, "train")
    assert images.class_names == CLASSES and images.class_counts() == [8, 8]
    with pytest.raises(DataError, match="expected class folders"):
        read_split(tiny_image_set / "train", "circles")
