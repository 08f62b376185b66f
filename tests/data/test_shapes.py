"""vggspec data shapes: the generated two-class set the README trains small64 on, with no download."""

from __future__ import annotations

import hashlib

from vggspec.data.shapes import CLASSES, make_shapes

from cli_cases import one_line
from image_sets import make_image_set


def digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.jpg"))}


def test_the_command_writes_the_set_the_tests_use(cli, tmp_path):
    done = cli("data", "shapes", "--dest", tmp_path / "shapes", "--train", 5, "--val", 2, "--size", 32, "--seed", 3)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"wrote {tmp_path / 'shapes'}: train 10 (circles 5, stripes 5), val 4 (circles 2, stripes 2), 32×32 JPEGs"
    )
    expected = make_image_set(tmp_path / "expected", size=32, train_per_class=5, val_per_class=2, seed=3)
    assert digests(tmp_path / "shapes") == digests(expected) and len(digests(expected)) == 14
    assert sorted(p.name for p in (tmp_path / "shapes" / "train").iterdir()) == list(CLASSES)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # written whole, nothing beside


def test_bad_settings_and_a_used_folder_are_one_line_and_nothing_is_written(cli, tmp_path):
    assert one_line(cli("data", "shapes", "--dest", tmp_path / "a", "--size", 4)) == (
        "error: --size: expected an integer from 8 to 100,000, received 4"
    )
    assert one_line(cli("data", "shapes", "--dest", tmp_path / "a", "--train", 0)) == (
        "error: --train: expected an integer from 1 to 100,000, received 0"
    )
    make_shapes(tmp_path / "used", size=8, train_per_class=1, val_per_class=1)
    assert one_line(cli("data", "shapes", "--dest", tmp_path / "used")) == (
        f"error: --dest {tmp_path / 'used'}: expected a new or empty folder, received one with files"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["used"]
