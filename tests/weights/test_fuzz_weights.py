"""Fuzzing the weight readers with Hypothesis.

Corrupted files (truncated, bytes flipped, ranges overwritten) of every format give either a bundle
that fits the plan or one WeightsError line naming the file, nothing else, in process and through
``vggspec convert`` (exit 0 or 2, no traceback). Random valid bundles, every finite float32 bit
pattern included, round-trip bit for bit through every writable format. A NaN or an infinity
anywhere in a file of any format (or a float64 beyond float32's range) is refused by every reader,
naming the layer and the weight. The default run is short and derandomized; the ``slow`` variants
try many more cases.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vggspec.building import read_checked_bundle
from vggspec.errors import WeightsError
from vggspec.weights import hdf5_strings
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.formats import read_bundle, write_bundle

from conftest import run_vggspec
from weight_fixtures import (
    as_bundle_layers,
    plan_layers,
    small_plan,
    small_spec_file,
    write_keras1_h5,
    write_keras2_h5,
    write_keras_archive,
)

# A file of each readable format, by the name it is written under (the name picks the reader).
FORMATS = ("keras1.h5", "keras2.h5", "w.weights.h5", "w.safetensors", "w.pt", "m.keras")
WITHOUT_PLAN = ("keras1.h5", "keras2.h5", "w.safetensors")  # formats read_bundle also reads without a plan
HEADER = 4096  # most of the formats' structure (HDF5 superblock and object headers, zip and pickle headers) is here

QUICK = settings(max_examples=300, deadline=None, derandomize=True, database=None)
MANY = settings(max_examples=3000, deadline=None, derandomize=True, database=None)
QUICK_CLI = settings(max_examples=8, deadline=None, derandomize=True, database=None)
MANY_CLI = settings(max_examples=40, deadline=None, derandomize=True, database=None)


@pytest.fixture(scope="module")
def originals(module_tmp) -> tuple[Path, dict[str, bytes]]:
    """(a work folder, the bytes of the small spec's weights in each format); each file a few dozen KB."""
    folder = module_tmp.mktemp("fuzz")
    plan = small_plan()
    layers = plan_layers(plan)
    bundle = WeightBundle(as_bundle_layers(layers))
    write_keras1_h5(folder / "keras1.h5", layers)
    write_keras2_h5(folder / "keras2.h5", layers)
    for name in ("w.weights.h5", "w.safetensors", "w.pt"):
        write_bundle(folder / name, bundle, plan)
    write_keras_archive(folder / "m.keras", folder / "w.weights.h5")
    data = {name: (folder / name).read_bytes() for name in FORMATS}
    assert all(1_000 < len(content) < 100_000 for content in data.values())
    return folder, data


@st.composite
def corruptions(draw, data: dict[str, bytes]) -> tuple[str, tuple]:
    """(a format, a corruption of its file): ("truncate", offset), ("flip", [(offset, xor mask), ...])
    or ("overwrite", offset, bytes). Offsets favour the first HEADER bytes, where the structure is."""
    name = draw(st.sampled_from(FORMATS))
    size = len(data[name])
    offsets = st.one_of(st.integers(0, min(size, HEADER) - 1), st.integers(0, size - 1))
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite"]))
    if kind == "truncate":
        return name, (kind, draw(st.integers(0, size - 1)))
    if kind == "flip":
        return name, (kind, draw(st.lists(st.tuples(offsets, st.integers(1, 255)), min_size=1, max_size=8)))
    return name, (kind, draw(offsets), draw(st.binary(min_size=1, max_size=64)))


def corrupt(content: bytes, corruption: tuple) -> bytes:
    damaged = bytearray(content)
    if corruption[0] == "truncate":
        del damaged[corruption[1] :]
    elif corruption[0] == "flip":
        for offset, mask in corruption[1]:
            damaged[offset] ^= mask
    else:
        offset, patch = corruption[1], corruption[2][: len(content) - corruption[1]]
        damaged[offset : offset + len(patch)] = patch
    return bytes(damaged)


def _check_read(path: Path, skip_mismatch: bool) -> str:
    """Read ``path`` as the library does: a bundle that fits the small plan ("read"), or one WeightsError
    line naming the file ("refused")."""
    plan = small_plan()
    try:
        bundle, skipped = read_checked_bundle(plan, path, skip_mismatch=skip_mismatch)
    except WeightsError as error:
        assert "\n" not in str(error) and str(error).startswith(str(path)), str(error)
        return "refused"
    assert len(bundle.layers) + len(skipped) == len(plan.weighted_layers())
    for layer in plan.weighted_layers():
        if layer.name in bundle.layers:
            assert [(name, array.shape, array.dtype) for name, array in bundle.layers[layer.name].items()] == [
                (name, shape, np.float32) for name, shape in layer.weights
            ]
    return "read"


def _fuzz_in_process(originals, settings_) -> None:
    folder, data = originals
    seen: set[tuple[str, str]] = set()

    @settings_
    @given(corrupted=corruptions(data), skip_mismatch=st.booleans())
    def run(corrupted, skip_mismatch):
        name, corruption = corrupted
        path = folder / f"corrupt_{name}"
        path.write_bytes(corrupt(data[name], corruption))
        seen.add((name, _check_read(path, skip_mismatch)))
        if name in WITHOUT_PLAN:
            with contextlib.suppress(WeightsError):
                read_bundle(path)

    run()
    # every format was tried, and corruption both broke files and left readable ones
    assert {name for name, _ in seen} == set(FORMATS) and {outcome for _, outcome in seen} == {"read", "refused"}


@pytest.fixture
def short_string_reads(monkeypatch):
    """A damaged string heap keeps the HDF5 library reading for ever, and the forked reader is stopped after
    ISOLATED_READ_S (10 s, for slow disks): corruption finds such files often (one run met 10 in 300
    examples), so the in-process fuzzing stops them after 1 s; a whole attribute takes milliseconds."""
    monkeypatch.setattr(hdf5_strings, "ISOLATED_READ_S", 1.0)


def test_corrupted_files_give_a_bundle_or_one_weights_error(originals, short_string_reads):
    _fuzz_in_process(originals, QUICK)


@pytest.mark.slow
def test_corrupted_files_give_a_bundle_or_one_weights_error_many(originals, short_string_reads):
    _fuzz_in_process(originals, MANY)


def _fuzz_command_line(originals, settings_):
    folder, data = originals
    spec = small_spec_file(folder)

    @settings_
    @given(corrupted=corruptions(data))
    def run(corrupted):
        name, corruption = corrupted
        source, target = folder / f"cli_{name}", folder / "cli_out.safetensors"
        source.write_bytes(corrupt(data[name], corruption))
        target.unlink(missing_ok=True)
        done = run_vggspec("convert", source, target, "--spec", spec)
        assert done.returncode in (0, 2) and "Traceback" not in done.stderr, done.stderr
        if done.returncode == 2:
            assert done.stdout == "" and not target.exists()
            (line,) = done.stderr.splitlines()
            assert line.startswith(f"error: {source}")
        else:
            assert read_bundle(target, small_plan()).total_params == small_plan().total_params

    run()


def test_convert_of_corrupted_files_exits_0_or_2_without_traceback(originals):
    _fuzz_command_line(originals, QUICK_CLI)


@pytest.mark.slow
def test_convert_of_corrupted_files_exits_0_or_2_without_traceback_many(originals):
    _fuzz_command_line(originals, MANY_CLI)


# Writable formats: (file name, keras_version for a legacy .h5)
WRITABLE = (("k1.h5", 1), ("k2.h5", 2), ("w.weights.h5", 2), ("w.safetensors", 2), ("w.pt", 2), ("w.pth", 2))


@st.composite
def random_bundles(draw):
    """(a small plan of random shape, a bundle for it whose arrays are random finite float32 bit patterns:
    the largest finite values, subnormals and -0.0 among them)."""
    changes = {
        "batch_norm": draw(st.booleans()),
        "classes": draw(st.integers(2, 12)),
        "layers": draw(
            st.sampled_from(
                [
                    ["conv3-4", "maxpool"],
                    ["conv3-2", "conv1-3", "maxpool", "conv3-5"],
                    ["conv3-4", "conv3-4", "maxpool", "conv3-8", "maxpool"],
                ]
            )
        ),
        "fc": draw(st.lists(st.integers(1, 20), min_size=1, max_size=2)),
    }
    if draw(st.booleans()):
        changes.update(include_top=False, pooling=draw(st.sampled_from(["avg", "max"])))
    plan = small_plan(**changes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    special = np.array([0x7F7FFFFF, 0xFF7FFFFF, 0x00800000, 0x00000001, 0x80000000, 0x807FFFFF], np.uint32)
    layers = {}
    for layer in plan.weighted_layers():
        weights = {}
        for name, shape in layer.weights:
            bits = rng.integers(0, 2**32, size=shape, dtype=np.uint32)
            bits[(bits & 0x7F800000) == 0x7F800000] &= 0xBFFFFFFF  # NaN and infinity patterns made finite
            bits.ravel()[: special.size] = special[: bits.size]
            weights[name] = bits.view(np.float32)
        layers[layer.name] = weights
    return plan, WeightBundle(layers)


def _same_bits(expected: dict, received: dict) -> None:
    assert list(received) == list(expected)
    for layer, weights in expected.items():
        assert list(received[layer]) == list(weights)
        for name, array in weights.items():
            assert received[layer][name].dtype == np.float32 and received[layer][name].shape == array.shape
            assert np.array_equal(received[layer][name].view(np.uint32), array.view(np.uint32)), (layer, name)


def _round_trips(folder: Path, settings_):
    @settings_
    @given(case=random_bundles())
    def run(case):
        plan, bundle = case
        for name, keras_version in WRITABLE:
            path = folder / name
            write_bundle(path, bundle, plan, keras_version=keras_version)
            _same_bits(bundle.layers, read_bundle(path, plan).layers)
            if name.endswith((".h5", ".safetensors")) and not name.endswith(".weights.h5"):
                _same_bits(bundle.layers, read_bundle(path).layers)  # the same without a plan

    run()


def test_random_bundles_round_trip_bit_for_bit_through_every_writable_format(tmp_path_factory):
    _round_trips(
        tmp_path_factory.mktemp("round_trip"), settings(max_examples=25, deadline=None, derandomize=True, database=None)
    )


@pytest.mark.slow
def test_random_bundles_round_trip_bit_for_bit_through_every_writable_format_many(tmp_path_factory):
    _round_trips(
        tmp_path_factory.mktemp("round_trip"),
        settings(max_examples=300, deadline=None, derandomize=True, database=None),
    )


# --- non-finite values: refused by every reader ---------------------------------------------------------


def write_raw(folder: Path, name: str, layers: dict, plan) -> Path:
    """``layers`` written in the format of ``name`` as other tools would write it, with no check: the writers
    of each format themselves (a NaN written by Keras or torch looks the same)."""
    from vggspec.weights.keras3_h5 import write_keras3_h5
    from vggspec.weights.keras_h5 import write_keras_h5
    from vggspec.weights.safetensors_file import write_safetensors
    from vggspec.weights.torch_file import write_torch

    path, bundle = folder / name, WeightBundle(layers)
    if name == "m.keras":
        return write_keras_archive(path, write_raw(folder, "for_archive.weights.h5", layers, plan))
    if name.endswith(".weights.h5"):
        write_keras3_h5(path, bundle, plan)
    elif name.endswith(".h5"):
        write_keras_h5(path, bundle, [layer.name for layer in plan.layers], 1 if name == "keras1.h5" else 2)
    elif name.endswith(".safetensors"):
        write_safetensors(path, bundle)
    else:
        write_torch(path, bundle, plan)
    return path


@st.composite
def non_finite_files(draw):
    """(a format, a layer, a weight, a flat index, the value put there): NaN, +inf or -inf in float32, or a
    float64 too large for float32 (formats that store float64)."""
    plan = small_plan()
    name = draw(st.sampled_from(FORMATS))
    layer = draw(st.sampled_from(plan.weighted_layers()))
    weight, shape = draw(st.sampled_from(layer.weights))
    index = draw(st.integers(0, int(np.prod(shape)) - 1))
    value = draw(st.sampled_from([np.nan, np.inf, -np.inf] + ([1e39, -3e300] if name in WITHOUT_PLAN else [])))
    return name, layer.name, weight, index, value


def _refuses_non_finite(folder: Path, settings_) -> None:
    plan = small_plan()
    seen = set()

    @settings_
    @given(case=non_finite_files())
    def run(case):
        name, layer, weight, index, value = case
        layers = as_bundle_layers(plan_layers(plan))
        wide = abs(value) > 3.5e38 and np.isfinite(value)
        array = layers[layer][weight].astype(np.float64 if wide else np.float32)
        array.reshape(-1)[index] = value
        layers[layer][weight] = array
        path = write_raw(folder, name, layers, plan)
        expected = "float32 can hold" if wide else "expected finite values"
        readers = [lambda: read_checked_bundle(plan, path)]
        if name in WITHOUT_PLAN:
            readers.append(lambda: read_bundle(path))  # arrays as stored, without a plan
        for read in readers:
            with pytest.raises(WeightsError) as error:
                read()
            message = str(error.value)
            assert "\n" not in message and message.startswith(str(path)), message
            assert f"layer {layer}: {weight}" in message and expected in message, message
        seen.add(name)

    run()
    assert seen == set(FORMATS)


def test_non_finite_values_are_refused_by_every_reader(tmp_path):
    _refuses_non_finite(tmp_path, settings(max_examples=60, deadline=None, derandomize=True, database=None))


@pytest.mark.slow
def test_non_finite_values_are_refused_by_every_reader_many(tmp_path):
    _refuses_non_finite(tmp_path, settings(max_examples=600, deadline=None, derandomize=True, database=None))


def test_the_commands_refuse_non_finite_weights_in_one_line(tmp_path):
    """convert, build, verify and predict: exit 2, one line naming the file, the layer and the count."""
    plan = small_plan()
    spec = small_spec_file(tmp_path)
    layers = as_bundle_layers(plan_layers(plan))
    layers["fc1"]["kernel"][3, :2] = np.nan
    path = write_raw(tmp_path, "w.safetensors", layers, plan)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
    for args in (
        ("convert", path, tmp_path / "out.pt", "--spec", spec),
        ("build", spec, "--backend", "torch", "--weights", path, "--out", tmp_path / "m.pt"),
        ("verify", spec, "--weights", path, "--backends", "torch,onnx", "--json"),
        ("predict", spec, image, "--weights", path, "--backend", "torch", "--json"),
        ("features", spec, image, "--weights", path, "--backend", "torch", "--layers", "fc1", "--json"),
    ):
        done = run_vggspec(*args)
        assert done.returncode == 2 and done.stdout == "", (args, done.stdout, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip() and "layer/s" not in line]
        assert lines == [  # convert streams array by array, so its progress bar has started; nothing is written
            f"error: {path}: layer fc1: kernel: expected finite values, received 2 NaN (the first at index (3, 0))"
        ], args
    assert not (tmp_path / "out.pt").exists() and not (tmp_path / "m.pt").exists()
