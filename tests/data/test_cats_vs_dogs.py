"""`vggspec data cats-vs-dogs` on small zips in both layouts, made here with Pillow (32x32 JPEGs), and on zip bombs."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vggspec.data.cats_vs_dogs import checking, prepare_cats_vs_dogs
from vggspec.data.cats_vs_dogs import split as split_module
from vggspec.data.cats_vs_dogs.checking import check_image
from vggspec.data.cats_vs_dogs.source import MAX_IMAGE_BYTES, MAX_INFLATION
from vggspec.errors import DataError

from cli_cases import one_line
from http_server import FileServer

GOOD = {"cat": 22, "dog": 19}  # plain JFIF JPEGs per class, numbered from 0


def jpeg(seed: int) -> bytes:
    """A 32x32 RGB JPEG of noise (Pillow writes a JFIF header)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def exif_jpeg(seed: int) -> bytes:
    """A JPEG whose first segment is Exif (APP1) instead of JFIF (APP0), as cameras write them."""
    data = jpeg(seed)
    app0_length = int.from_bytes(data[4:6], "big")
    tiff = b"MM\x00\x2a" + (8).to_bytes(4, "big") + b"\x00\x00" + b"\x00\x00\x00\x00"  # empty IFD
    segment = b"Exif\x00\x00" + tiff
    return b"\xff\xd8\xff\xe1" + (len(segment) + 2).to_bytes(2, "big") + segment + data[4 + app0_length :]


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


def dataset_files(layout: str) -> tuple[dict[str, bytes], dict[str, str]]:
    """(path in the archive -> bytes, dropped path -> expected start of the reason)."""

    def path(label: str, number: int) -> str:
        if layout == "microsoft":
            return f"PetImages/{label.capitalize()}/{number}.jpg"
        return f"train/{label}.{number}.jpg"

    files = {path(label, n): jpeg(1000 * (label == "dog") + n) for label, count in GOOD.items() for n in range(count)}
    files[path("dog", 19)] = exif_jpeg(5000)  # kept: Exif instead of JFIF
    junk = np.random.default_rng(3).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    assert junk[:2] != b"\xff\xd8"
    bad = {
        path("cat", 22): (b"", "empty file"),
        path("cat", 23): (png_bytes(), "not a JPEG: starts with 89 50 4e 47"),
        path("dog", 20): (junk, "not a JPEG"),
        path("dog", 21): (jpeg(7)[:700], "Pillow cannot decode it: image file is truncated"),
    }
    files.update({name: data for name, (data, _) in bad.items()})
    if layout == "microsoft":
        files["PetImages/Cat/Thumbs.db"] = b"not an image"
        files["readme[1].txt"] = b"PetImages"
    return files, {name: reason for name, (_, reason) in bad.items()}


KEPT = {"cat": 22, "dog": 20}
FOUND = {"cat": 24, "dog": 22}


def make_zip(path: Path, layout: str) -> tuple[Path, dict[str, bytes], dict[str, str]]:
    files, dropped = dataset_files(layout)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in sorted(files.items()):
            archive.writestr(name, data)
    return path, files, dropped


@pytest.fixture
def petimages_zip(tmp_path):
    return make_zip(tmp_path / "kagglecatsanddogs_5340.zip", "microsoft")


@pytest.fixture
def kaggle_zip(tmp_path):
    return make_zip(tmp_path / "train.zip", "kaggle")


def tree(dest: Path) -> dict[str, list[str]]:
    """split/class -> sorted file names on disk."""
    return {
        f"{split}/{label}": sorted(p.name for p in (dest / split / label).iterdir())
        for split in ("train", "val")
        for label in ("cat", "dog")
    }


def mtimes(dest: Path) -> dict[str, int]:
    return {str(p.relative_to(dest)): p.stat().st_mtime_ns for p in sorted(dest.rglob("*"))}


def check_split(dest: Path, val_fraction: float) -> dict:
    manifest = json.loads((dest / "manifest.json").read_text())
    on_disk = tree(dest)
    for label, kept in KEPT.items():
        n_val = round(val_fraction * kept)
        assert manifest["counts"]["val"][label] == len(on_disk[f"val/{label}"]) == n_val
        assert manifest["counts"]["train"][label] == len(on_disk[f"train/{label}"]) == kept - n_val
        assert not set(on_disk[f"val/{label}"]) & set(on_disk[f"train/{label}"])
    assert manifest["found"] == FOUND
    assert manifest["val_fraction"] == val_fraction
    return manifest


def test_check_image_reasons():
    assert check_image(jpeg(1)) is None and check_image(exif_jpeg(1)) is None
    assert check_image(b"") == "empty file"
    assert check_image(png_bytes()) == "not a JPEG: starts with 89 50 4e 47, expected ff d8"
    assert check_image(b"\xff\xd8\xff\xdb" + bytes(50)) == "no JFIF or Exif header in the first 10 bytes"
    assert check_image(jpeg(1)[:700]).startswith("Pillow cannot decode it: image file is truncated")
    assert (
        check_image(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(40))
        == "Pillow cannot decode it: cannot identify image file"
    )


def test_petimages_zip_from_the_command_line(tmp_path, petimages_zip, cli):
    source, files, dropped = petimages_zip
    dest = tmp_path / "cats_vs_dogs"
    result = cli("data", "cats-vs-dogs", "--dest", dest, "--source", source, "--seed", "1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "dropped 4 of 46 files that are not readable JPEGs (listed in manifest.json): "
        "PetImages/Cat/22.jpg (empty file); PetImages/Cat/23.jpg (not a JPEG"
    )
    assert lines[1] == f"wrote {dest}: train 34 (cat 18, dog 16), val 8 (cat 4, dog 4)"

    manifest = check_split(dest, 0.2)
    assert (manifest["source"], manifest["seed"], manifest["layout"]) == (str(source), 1, "microsoft-petimages")
    assert {entry["file"]: entry["reason"] for entry in manifest["dropped"]}.keys() == dropped.keys()
    for entry in manifest["dropped"]:
        assert entry["reason"].startswith(dropped[entry["file"]])
        assert entry["class"] == ("cat" if "/Cat/" in entry["file"] else "dog")
    assert manifest["ignored"] == ["PetImages/Cat/Thumbs.db", "readme[1].txt"]
    for split in ("train", "val"):  # copies, byte for byte
        for label in ("cat", "dog"):
            for image in (dest / split / label).iterdir():
                assert image.read_bytes() == files[f"PetImages/{label.capitalize()}/{image.name}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cats_vs_dogs", "kagglecatsanddogs_5340.zip"]


def test_kaggle_zip_and_an_extracted_folder_give_the_same_split(tmp_path, kaggle_zip):
    source, _, dropped = kaggle_zip
    from_zip = prepare_cats_vs_dogs(tmp_path / "from_zip", str(source), val_fraction=0.25, seed=3, progress=False)
    manifest = check_split(tmp_path / "from_zip", 0.25)
    assert manifest["layout"] == "kaggle" and not from_zip.already_complete
    assert sorted(entry["file"] for entry in manifest["dropped"]) == sorted(dropped)
    assert all(name.startswith("cat.") for name in tree(tmp_path / "from_zip")["train/cat"])

    folder = tmp_path / "extracted"
    with zipfile.ZipFile(source) as archive:
        archive.extractall(folder)
    before = sorted(p.name for p in (folder / "train").iterdir())
    prepare_cats_vs_dogs(tmp_path / "from_folder", str(folder), val_fraction=0.25, seed=3, progress=False)
    assert tree(tmp_path / "from_folder") == tree(tmp_path / "from_zip")
    assert sorted(p.name for p in (folder / "train").iterdir()) == before  # copied, not moved


def test_same_seed_same_split_other_seed_other_split(tmp_path, petimages_zip):
    source = str(petimages_zip[0])
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        prepare_cats_vs_dogs(tmp_path / name, source, seed=seed, progress=False)
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert tree(tmp_path / "a")["val/cat"] != tree(tmp_path / "c")["val/cat"]
    assert tree(tmp_path / "a")["val/dog"] != tree(tmp_path / "c")["val/dog"]
    assert [len(files) for files in tree(tmp_path / "a").values()] == [
        len(files) for files in tree(tmp_path / "c").values()
    ]


def test_second_run_changes_nothing(tmp_path, petimages_zip, cli):
    dest = tmp_path / "split"
    args = ("data", "cats-vs-dogs", "--dest", dest, "--source", petimages_zip[0], "--val-fraction", "0.3")
    assert cli(*args).returncode == 0
    before = mtimes(dest)
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert (
        again.stdout.strip()
        == f"{dest}: already complete (train 29 (cat 15, dog 14), val 13 (cat 7, dog 6)); nothing to do"
    )
    assert mtimes(dest) == before
    assert not (tmp_path / ".split.partial").exists()


def test_interrupted_run_resumes(tmp_path, petimages_zip, monkeypatch):
    source = str(petimages_zip[0])
    dest = tmp_path / "split"
    real_atomic_path = split_module.atomic_path
    written = []

    def stop_after_ten_images(path, *args, **kwargs):
        if str(path).endswith(".jpg"):
            if len(written) == 10:
                raise KeyboardInterrupt
            written.append(Path(path))
        return real_atomic_path(path, *args, **kwargs)

    monkeypatch.setattr(split_module, "atomic_path", stop_after_ten_images)
    with pytest.raises(KeyboardInterrupt):
        prepare_cats_vs_dogs(dest, source, seed=2, progress=False)
    partial = tmp_path / ".split.partial"
    assert not dest.exists()
    assert sorted(partial.rglob("*.jpg")) == sorted(written)
    first_ten = {path.relative_to(partial): path.stat().st_mtime_ns for path in written}
    stale = partial / "train" / "cat" / ".5.jpg.x1y2.part"  # what a killed process leaves
    stale.write_bytes(b"half")

    monkeypatch.setattr(split_module, "atomic_path", real_atomic_path)
    checks = []
    real_check = checking.check_image
    monkeypatch.setattr(checking, "check_image", lambda data: checks.append(1) or real_check(data))
    resumed = prepare_cats_vs_dogs(dest, source, seed=2, progress=False)
    assert checks == []  # the images were checked before the interruption
    assert not partial.exists() and not resumed.already_complete
    assert {path: (dest / path).stat().st_mtime_ns for path in first_ten} == first_ten  # kept, not rewritten
    assert not list(dest.rglob("*.part")) and sorted(p.name for p in dest.iterdir()) == [
        "manifest.json",
        "train",
        "val",
    ]

    prepare_cats_vs_dogs(tmp_path / "fresh", source, seed=2, progress=False)
    assert tree(dest) == tree(tmp_path / "fresh")
    assert json.loads((dest / "manifest.json").read_text()) == json.loads(
        (tmp_path / "fresh" / "manifest.json").read_text()
    )


def test_zip_served_over_http_is_downloaded_once_into_the_cache(tmp_path, petimages_zip, cli):
    source, _, _ = petimages_zip
    home = tmp_path / "home"
    with FileServer(source.parent) as server:
        url = server.url(source.name)
        first = cli(
            "data", "cats-vs-dogs", "--dest", tmp_path / "one", "--source", url, env={"VGGSPEC_HOME": str(home)}
        )
        second = cli(
            "data", "cats-vs-dogs", "--dest", tmp_path / "two", "--source", url, env={"VGGSPEC_HOME": str(home)}
        )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert len(server.requests) == 1
    assert (home / "data" / source.name).read_bytes() == source.read_bytes()
    manifest = check_split(tmp_path / "one", 0.2)
    assert manifest["source"] == url
    assert tree(tmp_path / "one") == tree(tmp_path / "two")


def test_bad_sources_exit_2_with_one_line(tmp_path, cli):
    neither = tmp_path / "holiday.zip"
    with zipfile.ZipFile(neither, "w") as archive:
        archive.writestr("images/beach.jpg", jpeg(1))
        archive.writestr("images/hotel.jpg", jpeg(2))
    only_cats = tmp_path / "cats.zip"
    with zipfile.ZipFile(only_cats, "w") as archive:
        archive.writestr("train/cat.0.jpg", jpeg(1))
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("hello")
    dest = tmp_path / "out"
    cases = {
        tmp_path / "missing.zip": f"error: {tmp_path / 'missing.zip'}: no such file or folder; expected a URL",
        neither: f"error: {neither}: expected PetImages/Cat/<n>.jpg and PetImages/Dog/<n>.jpg (Microsoft) or "
        f"train/cat.<n>.jpg and train/dog.<n>.jpg (Kaggle), received 2 files (images/beach.jpg, images/hotel.jpg)",
        only_cats: f"error: {only_cats}: expected images of both classes, received none of dog",
        not_zip: f"error: {not_zip}: expected a zip file or a folder, received a file that is not a zip",
    }
    for source, message in cases.items():
        result = cli("data", "cats-vs-dogs", "--dest", dest, "--source", source)
        assert result.returncode == 2, result.stdout
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cats.zip", "holiday.zip", "notes.zip"]


def test_bad_arguments_and_occupied_destinations(tmp_path, petimages_zip):
    source = str(petimages_zip[0])
    with pytest.raises(DataError, match=r"^val_fraction: expected a number between 0 and 1 .*received 1.5") as caught:
        prepare_cats_vs_dogs(tmp_path / "x", source, val_fraction=1.5, progress=False)
    assert caught.value.setting == "val_fraction"
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="expected a new or empty folder, received one with files and no manifest"):
        prepare_cats_vs_dogs(occupied, source, progress=False)
    assert [p.name for p in occupied.iterdir()] == ["mine.txt"]

    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_cats_vs_dogs(empty, source, seed=1, progress=False)  # an empty folder is fine
    with pytest.raises(DataError, match="already holds a split made with .*seed 1.*; expected .*seed 2"):
        prepare_cats_vs_dogs(empty, source, seed=2, progress=False)
    (empty / "val" / "cat" / sorted(tree(empty)["val/cat"])[0]).unlink()
    with pytest.raises(DataError, match=r"val/cat: expected 4 files as manifest.json says, received 3"):
        prepare_cats_vs_dogs(empty, source, seed=1, progress=False)


@pytest.mark.parametrize("where", ["dest under a file", "dest under /proc", "download folder under a file"])
def test_a_destination_that_cannot_be_written_is_refused_before_the_download(where, tmp_path, petimages_zip, cli):
    """One line, exit 2, no request to the server and nothing made. (The tests run as root, which writes into a
    read-only folder: a path under a file and one under /proc stand for a folder that cannot be written.)"""
    source = petimages_zip[0]
    notes = tmp_path / "notes.txt"
    notes.write_text("a file, not a folder")
    dest, home = tmp_path / "split", tmp_path / "home"
    if where == "dest under a file":
        dest = notes / "split"
        expected = f"error: --dest {dest}: expected a writable destination, received a path under the file {notes}"
    elif where == "dest under /proc":
        dest = Path("/proc/vggspec-no-such-folder/split")
        expected = (
            f"error: --dest {dest}: expected a writable destination, received one where the folder cannot be "
            "made (No such file or directory)"
        )
    else:
        home = notes / "vggspec"
        expected = (
            f"error: {home / 'data'} (the download folder under VGGSPEC_HOME={home}): expected a writable folder, "
            f"received a path under the file {notes}"
        )
    before = sorted(tmp_path.rglob("*"))
    with FileServer(source.parent) as server:
        result = cli(
            "data", "cats-vs-dogs", "--dest", dest, "--source", server.url(source.name), env={"VGGSPEC_HOME": str(home)}
        )
    assert one_line(result) == expected
    assert server.requests == []
    assert sorted(tmp_path.rglob("*")) == before and not dest.exists()


def test_the_command_line_names_the_settings_as_its_flags(tmp_path, petimages_zip, cli):
    source = petimages_zip[0]
    folder = tmp_path / "extracted"
    with zipfile.ZipFile(source) as archive:
        archive.extractall(folder)
    done = tmp_path / "done"
    assert cli("data", "cats-vs-dogs", "--dest", done, "--source", source, "--seed", "1").returncode == 0
    cases = {
        ("--dest", tmp_path / "x", "--val-fraction", "1.5"): (
            "error: --val-fraction: expected a number between 0 and 1 (both excluded), received 1.5"
        ),
        ("--dest", folder / "inside", "--source", folder): (
            f"error: --dest {folder / 'inside'}: expected a folder outside the source folder {folder}"
        ),
        ("--dest", done, "--seed", "2"): (
            f"error: --dest {done}: already holds a split made with source {source}, seed 1, val_fraction 0.2; "
            f"expected source {source}, seed 2, val_fraction 0.2 (choose another --dest, or delete it)"
        ),
    }
    for args, expected in cases.items():
        result = cli("data", "cats-vs-dogs", "--source", source, *args)
        assert (result.returncode, result.stderr.strip()) == (2, expected)


def test_keras_reads_the_tree(tmp_path, petimages_zip):
    import keras

    prepare_cats_vs_dogs(tmp_path / "split", str(petimages_zip[0]), progress=False)
    train = keras.utils.image_dataset_from_directory(tmp_path / "split" / "train", image_size=(32, 32), batch_size=8)
    assert train.class_names == ["cat", "dog"]
    labels = np.concatenate([batch_labels.numpy() for _, batch_labels in train])
    assert np.bincount(labels).tolist() == [18, 16]


def small_jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def kaggle_zip_of(path: Path, cats: int, dogs: int, broken_dogs: int = 0) -> Path:
    """Kaggle's train.zip layout with ``cats`` and ``dogs`` small JPEGs, and ``broken_dogs`` files that are not."""
    with zipfile.ZipFile(path, "w") as archive:
        for label, count in (("cat", cats), ("dog", dogs)):
            for n in range(count):
                archive.writestr(f"train/{label}.{n}.jpg", small_jpeg(n + 100 * (label == "dog")))
        for n in range(dogs, dogs + broken_dogs):
            archive.writestr(f"train/dog.{n}.jpg", b"not a jpeg")
    return path


@pytest.mark.parametrize(
    "cats, dogs, broken, fraction, message",
    [
        (1, 1, 0, "0.2", "cat: train 1, val 0 (of 1 image, --val-fraction 0.2)"),
        (22, 19, 0, "0.99", "cat: train 0, val 22 (of 22 images, --val-fraction 0.99)"),
        (6, 1, 5, "0.2", "dog: train 1, val 0 (of 1 image kept, 5 dropped, --val-fraction 0.2)"),
    ],
    ids=["one image per class", "val fraction 0.99", "dropped files empty a split"],
)
def test_data_refuses_a_split_with_an_empty_class(cats, dogs, broken, fraction, message, cli, tmp_path):
    source = kaggle_zip_of(tmp_path / "train.zip", cats, dogs, broken)
    dest = tmp_path / "split"
    result = cli("data", "cats-vs-dogs", "--dest", dest, "--source", source, "--val-fraction", fraction)
    assert one_line(result) == (
        f"error: {source}: expected a split with images of each class in train and in val, "
        f"received {message}; use more images or a --val-fraction nearer 0.5"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.zip"]  # no DIR, no .split.partial


def test_data_with_enough_images_still_splits(tmp_path):
    source = kaggle_zip_of(tmp_path / "train.zip", 2, 2)
    prepared = prepare_cats_vs_dogs(tmp_path / "split", str(source), val_fraction=0.5, progress=False)
    assert prepared.manifest["counts"] == {"train": {"cat": 1, "dog": 1}, "val": {"cat": 1, "dog": 1}}


# ---- zips made to exhaust memory or disk: refused from the sizes they declare, before anything is inflated ----

MIB = 1 << 20


def add_zeros(path: Path, name: str, mebibytes: int) -> None:
    """Append a member of ``mebibytes`` MiB of zeros, deflated (about 1 KB a MiB on disk), written a MiB at a time."""
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open(name, "w", force_zip64=True) as member,
    ):
        for _ in range(mebibytes):
            member.write(bytes(MIB))


def declare_size(path: Path, name: str, size: int) -> None:
    """Rewrite the central directory's uncompressed size of member ``name`` (a header that lies)."""
    data = bytearray(path.read_bytes())
    entry = data.index(b"PK\x01\x02" + bytes(0), data.rindex(name.encode()) - 46)
    assert data[entry + 46 : entry + 46 + len(name)] == name.encode()
    struct.pack_into("<I", data, entry + 24, size)
    path.write_bytes(bytes(data))


def test_a_member_larger_than_any_image_is_refused_before_it_is_inflated(cli, tmp_path):
    bomb = kaggle_zip_of(tmp_path / "train.zip", 3, 3)
    add_zeros(bomb, "train/cat.99.jpg", 256)  # 256 MiB of zeros in about 256 KB (1 GiB took 85 s and 2.1 GB)
    assert bomb.stat().st_size < MIB
    result = cli("data", "cats-vs-dogs", "--dest", tmp_path / "split", "--source", bomb)
    assert one_line(result) == (
        f"error: {bomb}: expected image files of at most {MAX_IMAGE_BYTES:,} bytes each, received "
        "train/cat.99.jpg of 268,435,456 bytes"
    )
    assert result.seconds < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.zip"]  # no DIR, no .split.partial


def test_a_folder_source_with_a_file_larger_than_any_image_is_refused_before_it_is_read(cli, tmp_path, kaggle_zip):
    folder = tmp_path / "extracted"
    with zipfile.ZipFile(kaggle_zip[0]) as archive:
        archive.extractall(folder)
    with open(folder / "train" / "dog.99.jpg", "wb") as huge:  # sparse: no disk spent
        huge.truncate(MAX_IMAGE_BYTES + 1)
    result = cli("data", "cats-vs-dogs", "--dest", tmp_path / "split", "--source", folder)
    assert one_line(result) == (
        f"error: {folder}: expected image files of at most {MAX_IMAGE_BYTES:,} bytes each, received "
        f"train/dog.99.jpg of {MAX_IMAGE_BYTES + 1:,} bytes"
    )
    assert not (tmp_path / "split").exists() and not (tmp_path / ".split.partial").exists()


def test_members_that_together_declare_far_more_than_the_zip_holds_are_refused(cli, tmp_path):
    bomb = kaggle_zip_of(tmp_path / "train.zip", 3, 3)
    for n in range(100, 105):  # 5 x 16 MiB: each a plausible size, together 80 MiB in a zip of about 100 KB
        add_zeros(bomb, f"train/dog.{n}.jpg", 16)
    size = bomb.stat().st_size
    assert max(MAX_INFLATION * size, MAX_IMAGE_BYTES) < 80 * MIB
    declared = sum(info.file_size for info in zipfile.ZipFile(bomb).infolist())
    result = cli("data", "cats-vs-dogs", "--dest", tmp_path / "split", "--source", bomb)
    assert one_line(result) == (
        f"error: {bomb}: expected a zip of images of at most {MAX_IMAGE_BYTES:,} bytes uncompressed "
        f"({MAX_INFLATION} times its {size:,} bytes, or {MAX_IMAGE_BYTES:,} if more: JPEGs barely compress), "
        f"received members that declare {declared:,} bytes"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.zip"]


@pytest.mark.parametrize("declared", [1000, 0], ids=["declares 1000 bytes", "declares none"])
def test_a_member_whose_header_lies_is_read_no_further_than_it_declares(declared, cli, tmp_path):
    """The central directory says ``declared`` bytes; the member's stream inflates to 64 MiB. Reading stops at
    the declared size, where the checksum fails: one line, and the partial folder holds nothing to resume."""
    bomb = kaggle_zip_of(tmp_path / "train.zip", 3, 3)
    add_zeros(bomb, "train/cat.99.jpg", 64)
    declare_size(bomb, "train/cat.99.jpg", declared)
    assert zipfile.ZipFile(bomb).getinfo("train/cat.99.jpg").file_size == declared
    result = cli("data", "cats-vs-dogs", "--dest", tmp_path / "split", "--source", bomb)
    assert one_line(result).startswith(
        f"error: {bomb} (train/cat.99.jpg): expected a readable zip member, received one that cannot be read "
        "(BadZipFile: Bad CRC-32 for file 'train/cat.99.jpg')"
    )
    assert result.seconds < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.zip"]
