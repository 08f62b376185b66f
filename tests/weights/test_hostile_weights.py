"""Hostile weight files: each refused with one WeightsError line that says where (file, layer, dataset or
key) and what (expected vs received), before anything the file merely declares is read or followed."""

from __future__ import annotations

import tracemalloc
import zipfile

import h5py
import numpy as np
import pytest

import vggspec
from vggspec.building import read_checked_bundle
from vggspec.errors import WeightsError
from vggspec.weights.bundle import WeightBundle
from vggspec.weights.formats import read_bundle, write_bundle

from weight_fixtures import (
    SMALL,
    as_bundle_layers,
    assert_same_arrays,
    plan_layers,
    small_plan,
    small_spec_file,
    write_keras1_h5,
    write_keras_archive,
)

HUGE = (200_000, 200_000)  # 149 GiB of float32, declared by a file of a few dozen KB


def refused(path, plan=None, **options) -> str:
    """The one-line message ``read_checked_bundle`` refuses ``path`` with (it must name the file first)."""
    with pytest.raises(WeightsError) as error:
        read_checked_bundle(plan or small_plan(), path, **options)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


def one_line_exit_2(done) -> str:
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ")
    return line[len("error: ") :]


def keras1_file(path, edit=None, libver=None):
    """The small spec's Keras 1 .h5, then ``edit(file)`` applied with h5py."""
    write_keras1_h5(path, plan_layers(small_plan()))
    if edit is not None:
        with h5py.File(path, "a", libver=libver) as file:
            edit(file)
    return path


def replace(file, name, **dataset):
    """Replace the dataset ``name`` with ``create_dataset(name, **dataset)``."""
    del file[name]
    file.create_dataset(name, **dataset)


def declare_huge(file, name):
    replace(file, name, shape=HUGE, dtype="f4", compression="gzip", chunks=(1000, 1000))


def huge_fc1(tmp_path, kind):
    """(a weight file whose fc1 kernel is declared HUGE and stored as nothing, the dataset's path)."""
    if kind == "keras1":
        return keras1_file(tmp_path / "huge.h5", lambda file: declare_huge(file, "fc1/fc1_W_1:0")), "/fc1/fc1_W_1:0"
    plan = small_plan()
    weights = tmp_path / "huge.weights.h5"
    write_bundle(weights, WeightBundle(as_bundle_layers(plan_layers(plan))), plan)
    with h5py.File(weights, "a") as file:
        declare_huge(file, "layers/dense/vars/0")
    if kind == "keras3":
        return weights, "/layers/dense/vars/0"
    return write_keras_archive(tmp_path / "huge.keras", weights), "/layers/dense/vars/0"


@pytest.mark.parametrize("kind", ["keras1", "keras3", "keras"])
def test_a_huge_declared_array_is_refused_or_skipped_without_being_read(tmp_path, kind):
    path, dataset = huge_fc1(tmp_path, kind)
    assert path.stat().st_size < 100_000
    where = f"{path} (model.weights.h5)" if kind == "keras" else str(path)
    expected = (
        f"{where}: layer fc1: expected kernel of shape (512, 16), received (200000, 200000) (dataset '{dataset}')"
    )
    assert refused(path) == expected
    # skip_mismatch leaves fc1 out, named, and reads the others (a few KB in all)
    tracemalloc.start()
    try:
        bundle, skipped = read_checked_bundle(small_plan(), path, skip_mismatch=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert skipped == [expected] and peak < 8 << 20
    wanted = as_bundle_layers(plan_layers(small_plan()))
    del wanted["fc1"]
    assert_same_arrays(wanted, bundle.layers)


def test_without_a_plan_a_huge_declared_array_is_refused_before_reading(tmp_path):
    path, _ = huge_fc1(tmp_path, "keras1")
    with pytest.raises(WeightsError) as error:
        read_bundle(path)
    assert str(error.value) == (
        f"{path}: layer fc1: expected arrays of at most 4,000,000,000 bytes in all as float32 (the spec budget of "
        "1,000,000,000 parameters), received kernel of shape (200000, 200000) (dataset '/fc1/fc1_W_1:0'), past that"
    )


def _soft_link_loop(file):
    del file["block1_conv1/block1_conv1_W_1:0"]
    file["block1_conv1/block1_conv1_W_1:0"] = h5py.SoftLink("/block1_conv1/other")
    file["block1_conv1/other"] = h5py.SoftLink("/block1_conv1/block1_conv1_W_1:0")


def _external_link(outside):
    def edit(file):
        with h5py.File(outside, "w") as other:  # a valid array: following the link would load it
            other["kernel"] = file["block1_conv1/block1_conv1_W_1:0"][()]
        del file["block1_conv1/block1_conv1_W_1:0"]
        file["block1_conv1/block1_conv1_W_1:0"] = h5py.ExternalLink(str(outside), "/kernel")

    return edit


def _external_storage(outside):
    def edit(file):
        file["block1_conv1/block1_conv1_b_1:0"][()].tofile(outside)
        replace(file, "block1_conv1/block1_conv1_b_1:0", shape=(4,), dtype="f4", external=[(str(outside), 0, 16)])

    return edit


def _virtual_dataset(outside):
    def edit(file):
        with h5py.File(outside, "w") as other:
            other["bias"] = file["block1_conv1/block1_conv1_b_1:0"][()]
        layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(outside), "bias", shape=(4,))
        del file["block1_conv1/block1_conv1_b_1:0"]
        file["block1_conv1"].create_virtual_dataset("block1_conv1_b_1:0", layout)

    return edit


def _layer_group_soft_link(file):
    del file["block1_conv2"]
    file["block1_conv2"] = h5py.SoftLink("/block1_conv1")


LINKS = {
    "soft_link_loop": (
        _soft_link_loop,
        "layer block1_conv1: expected 'block1_conv1_W_1:0' stored in the file "
        "(a hard link), received a soft link to '/block1_conv1/other', which is not followed",
    ),
    "external_link": (
        _external_link,
        "layer block1_conv1: expected 'block1_conv1_W_1:0' stored in the file "
        "(a hard link), received an external link to '/kernel' in '{outside}', which is not opened",
    ),
    "external_storage": (
        _external_storage,
        "layer block1_conv1: expected the dataset "
        "'/block1_conv1/block1_conv1_b_1:0' to keep its data in the file, received external "
        "storage in '{outside}', which is not opened",
    ),
    "virtual_dataset": (
        _virtual_dataset,
        "layer block1_conv1: expected the dataset '/block1_conv1/block1_conv1_b_1:0'"
        " to keep its data in the file, received a virtual dataset (data in other files), which is "
        "not opened",
    ),
    "layer_group_soft_link": (
        _layer_group_soft_link,
        "layer block1_conv2: expected 'block1_conv2' stored in the file "
        "(a hard link), received a soft link to '/block1_conv1', which is not followed",
    ),
}


@pytest.mark.parametrize("case", LINKS)
def test_links_and_data_outside_the_file_are_refused_not_followed(tmp_path, case):
    make, message = LINKS[case]
    outside = tmp_path / "outside.bin"
    path = keras1_file(
        tmp_path / f"{case}.h5", make if case in ("soft_link_loop", "layer_group_soft_link") else make(outside)
    )
    expected = f"{path}: " + message.format(outside=outside)
    assert refused(path) == expected
    with pytest.raises(WeightsError, match="^" + expected.replace("(", r"\(").replace(")", r"\)")):
        read_bundle(path)  # also without a plan


def _many_names(file):
    """weight_names with 200,000 entries (needs the newer format's dense attribute storage)."""
    arrays = {name: file["block1_conv1"][name][()] for name in file["block1_conv1"]}
    del file["block1_conv1"]
    group = file.create_group("block1_conv1")
    for name, array in arrays.items():
        group[name] = array
    group.attrs["weight_names"] = np.asarray([b"block1_conv1_W_1:0"] * 200_000)


BIAS = "block1_conv1/block1_conv1_b_1:0"
WHERE_BIAS = (
    "layer block1_conv1: expected bias as float16, bfloat16, float32 or float64, received {} "
    "(dataset '/block1_conv1/block1_conv1_b_1:0')"
)
TYPES = {
    "string_dataset": (lambda f: replace(f, BIAS, data=np.array([b"abcd"] * 4)), WHERE_BIAS.format("strings")),
    "vlen_string_dataset": (
        lambda f: replace(f, BIAS, data=["a", "b", "c", "d"], dtype=h5py.string_dtype()),
        WHERE_BIAS.format("strings"),
    ),
    "compound_dataset": (
        lambda f: replace(f, BIAS, data=np.zeros(4, [("a", "f4"), ("b", "i4")])),
        WHERE_BIAS.format("a compound type"),
    ),
    "vlen_float_dataset": (
        lambda f: replace(f, BIAS, shape=(4,), dtype=h5py.vlen_dtype("f4")),
        WHERE_BIAS.format("variable-length sequences"),
    ),
    "integer_dataset": (lambda f: replace(f, BIAS, data=np.arange(4)), WHERE_BIAS.format("int64")),
    "bool_dataset": (lambda f: replace(f, BIAS, data=np.ones(4, bool)), WHERE_BIAS.format("bool")),
    "null_dataset": (
        lambda f: replace(f, BIAS, shape=None, dtype="f4"),
        "layer block1_conv1: expected an array in the dataset '/block1_conv1/block1_conv1_b_1:0', "
        "received an empty (null) dataset",
    ),
    "scalar_dataset": (
        lambda f: replace(f, BIAS, data=np.float32(1)),
        "layer block1_conv1: expected bias of shape (4,), received () (dataset '/block1_conv1/block1_conv1_b_1:0')",
    ),
    "group_for_a_dataset": (
        lambda f: (f.__delitem__(BIAS), f.create_group(BIAS)),
        "layer block1_conv1: expected 'block1_conv1_b_1:0' to be a dataset, received a group",
    ),
    "dataset_for_a_group": (
        lambda f: (f.__delitem__("block1_conv2"), f.create_dataset("block1_conv2", data=[1.0])),
        "layer block1_conv2: expected 'block1_conv2' to be a group, received a dataset",
    ),
    "layer_names_an_int": (
        lambda f: f.attrs.__setitem__("layer_names", 5),
        "attribute layer_names: expected strings, received int64 of shape ()",
    ),
    "weight_names_floats": (
        lambda f: f["block1_conv1"].attrs.__setitem__("weight_names", np.ones(2)),
        "layer block1_conv1: attribute weight_names: expected strings, received float64 of shape (2,)",
    ),
    "weight_names_200000": (
        _many_names,
        "layer block1_conv1: attribute weight_names: expected at most 100,000 names "
        "and 16,777,216 bytes in all, received 200,000 of 18 bytes each",
    ),
    "weight_name_not_utf8": (
        lambda f: f["block1_conv1"].attrs.__setitem__("weight_names", np.array([b"\xff\xfe_W"])),
        r"layer block1_conv1: attribute weight_names: expected UTF-8 names, "
        r"received b'\xff\xfe_W'",
    ),
    "weight_name_absolute": (
        lambda f: f["block1_conv1"].attrs.__setitem__("weight_names", np.array([b"/fc1/W"])),
        "layer block1_conv1: expected a relative name without empty or '.' parts, received '/fc1/W'",
    ),
    "layer_name_with_a_newline": (
        lambda f: f.attrs.__setitem__("layer_names", np.array([b"block1\nconv1"])),
        r"attribute layer_names: expected printable names, received 'block1\nconv1'",
    ),
    "layer_listed_twice": (
        lambda f: f.attrs.__setitem__("layer_names", np.array([b"block1_conv1"] * 2)),
        "layer block1_conv1: expected each layer once in layer_names, received it twice",
    ),
}


@pytest.mark.parametrize("case", TYPES)
def test_wrong_types_and_shapes_of_objects_and_attributes_are_named(tmp_path, case):
    edit, message = TYPES[case]
    path = keras1_file(tmp_path / f"{case}.h5", edit, libver="latest" if case == "weight_names_200000" else None)
    assert refused(path) == f"{path}: {message}"


def test_keras3_groups_and_datasets_of_the_wrong_kind_are_named(tmp_path):
    plan = small_plan()
    good = tmp_path / "good.weights.h5"
    write_bundle(good, WeightBundle(as_bundle_layers(plan_layers(plan))), plan)
    data = good.read_bytes()
    edits = {
        "layers_a_dataset": (
            lambda f: (f.__delitem__("layers"), f.create_dataset("layers", data=[0.0])),
            "expected 'layers' to be a group, received a dataset",
        ),
        "vars_0_a_group": (
            lambda f: (f.__delitem__("layers/conv2d/vars/0"), f.create_group("layers/conv2d/vars/0")),
            "layer block1_conv1 (layers/conv2d): expected '0' to be a dataset, received a group",
        ),
        "vars_1_soft": (
            lambda f: (
                f.__delitem__("layers/conv2d/vars/1"),
                f.__setitem__("layers/conv2d/vars/1", h5py.SoftLink("/layers/conv2d/vars/1")),
            ),
            "layer block1_conv1 (layers/conv2d): expected '1' stored in the file (a hard link), received "
            "a soft link to '/layers/conv2d/vars/1', which is not followed",
        ),
        "vars_external": (
            lambda f: (
                f.__delitem__("layers/dense_1"),
                f.__setitem__("layers/dense_1", h5py.ExternalLink(str(good), "/layers/dense_1")),
            ),
            "layer fc2 (layers/dense_1): expected 'dense_1' stored in the file (a hard link), "
            f"received an external link to '/layers/dense_1' in '{good}', which is not opened",
        ),
    }
    for name, (edit, message) in edits.items():
        path = tmp_path / f"{name}.weights.h5"
        path.write_bytes(data)
        with h5py.File(path, "a") as file:
            edit(file)
        assert refused(path) == f"{path}: {message}", name


def test_command_line_refuses_hostile_h5_in_one_line_and_writes_nothing(tmp_path, cli):
    spec = small_spec_file(tmp_path)
    outside = tmp_path / "outside.h5"
    cases = {
        "linked.h5": (_external_link(outside), "received an external link to '/kernel'"),
        "strings.h5": (
            TYPES["string_dataset"][0],
            "expected bias as float16, bfloat16, float32 or float64, received strings",
        ),
    }
    for name, (edit, message) in cases.items():
        path = keras1_file(tmp_path / name, edit)
        target = tmp_path / "out.safetensors"
        line = one_line_exit_2(cli("convert", path, target, "--spec", spec))
        assert line.startswith(f"{path}: layer block1_conv1: ") and message in line, line
        assert not target.exists()


def torch_file(tmp_path, name, **changes):
    """The small spec's .pt (written by vggspec, torchvision keys), with ``changes`` to its state dict."""
    import torch

    plan = small_plan()
    path = tmp_path / name
    write_bundle(path, WeightBundle(as_bundle_layers(plan_layers(plan))), plan)
    state = torch.load(path, weights_only=True)
    state.update(changes)
    torch.save(state, path)
    return path


FC1_WIDTH = (
    "layer fc1: expected kernel of shape (512, 16), received (500, 16) "
    "(key 'classifier.0.weight' of shape (16, 500), torch's (out, in))"
)


def test_a_pt_with_the_wrong_fc1_width_names_the_layer_in_convert_and_build(tmp_path, cli):
    import torch

    path = torch_file(tmp_path, "wide.pt", **{"classifier.0.weight": torch.zeros(16, 500)})
    assert refused(path) == f"{path}: {FC1_WIDTH}"
    with pytest.raises(WeightsError) as error:
        vggspec.build(vggspec.spec_from_mapping(SMALL), backend="torch", weights=path)
    assert str(error.value) == f"{path}: {FC1_WIDTH}"
    assert one_line_exit_2(cli("convert", path, tmp_path / "out.h5", "--spec", small_spec_file(tmp_path))) == (
        f"{path}: {FC1_WIDTH}"
    )
    assert not (tmp_path / "out.h5").exists()


def _torch_cases():
    import torch

    kernel = (
        "layer block1_conv1: expected kernel as float16, bfloat16, float32 or float64, received {} "
        "(key 'features.0.weight' of shape (4, 3, 3, 3), torch's OIHW)"
    )
    bias = (
        "layer block1_conv1: expected bias as float16, bfloat16, float32 or float64, received {} "
        "(key 'features.0.bias' of shape (4,))"
    )
    return {
        "conv_rank_3": (
            {"features.0.weight": torch.zeros(4, 3, 3)},
            "layer block1_conv1: expected kernel of shape (3, 3, 3, 4), received (4, 3, 3) "
            "(key 'features.0.weight' of shape (4, 3, 3), torch's OIHW)",
        ),
        "int64": ({"features.0.weight": torch.zeros(4, 3, 3, 3, dtype=torch.int64)}, kernel.format("int64")),
        "uint8": ({"features.0.weight": torch.zeros(4, 3, 3, 3, dtype=torch.uint8)}, kernel.format("uint8")),
        "bool": ({"features.0.bias": torch.zeros(4, dtype=torch.bool)}, bias.format("bool")),
        "complex": ({"features.0.bias": torch.zeros(4, dtype=torch.complex64)}, bias.format("complex64")),
        "sparse": (
            {"features.0.bias": torch.zeros(4).to_sparse()},
            "key 'features.0.bias': expected a dense CPU tensor, received a sparse_coo tensor on cpu",
        ),
    }


@pytest.mark.parametrize("case", ["conv_rank_3", "int64", "uint8", "bool", "complex", "sparse"])
def test_pt_tensors_of_the_wrong_rank_dtype_or_layout_are_named(tmp_path, case):
    changes, message = _torch_cases()[case]
    path = torch_file(tmp_path, f"{case}.pt", **changes)
    assert refused(path) == f"{path}: {message}"


def test_pt_parameters_and_half_precision_tensors_are_read(tmp_path):
    """A state dict of nn.Parameters (requires_grad) and bfloat16/float16 tensors reads as float32."""
    import torch

    bias = torch.tensor([1.5, -2.0, 3.25, 0.0])
    path = torch_file(
        tmp_path,
        "mixed.pt",
        **{
            "features.0.bias": torch.nn.Parameter(bias.clone()),
            "features.2.bias": bias.to(torch.bfloat16),
            "classifier.0.bias": torch.ones(16, dtype=torch.float16),
        },
    )
    bundle, skipped = read_checked_bundle(small_plan(), path)
    assert skipped == []
    for layer in ("block1_conv1", "block1_conv2"):
        np.testing.assert_array_equal(bundle.layers[layer]["bias"], bias.numpy(), strict=True)
    np.testing.assert_array_equal(bundle.layers["fc1"]["bias"], np.ones(16, np.float32), strict=True)


def test_safetensors_of_the_wrong_shape_or_dtype_are_named_and_bfloat16_is_widened(tmp_path):
    import torch
    from safetensors.numpy import save_file
    from safetensors.torch import save_file as save_torch_file

    plan = small_plan()
    flat = WeightBundle(as_bundle_layers(plan_layers(plan))).flat()
    cases = {
        "fc1/kernel": (
            np.zeros((500, 16), np.float32),
            "layer fc1: expected kernel of shape (512, 16), received (500, 16)",
        ),
        "fc1/bias": (
            np.zeros(16, np.int32),
            "layer fc1: expected bias as float16, bfloat16, float32 or float64, received int32",
        ),
        "fc2/bias": (
            np.zeros(12, bool),
            "layer fc2: expected bias as float16, bfloat16, float32 or float64, received bool",
        ),
    }
    for key, (array, message) in cases.items():
        path = tmp_path / f"{key.replace('/', '_')}.safetensors"
        save_file({**flat, key: array}, path)
        assert refused(path) == f"{path}: {message}"
    halves = {key: torch.from_numpy(array).to(torch.bfloat16) for key, array in flat.items()}
    save_torch_file(halves, tmp_path / "bf16.safetensors")
    bundle, _ = read_checked_bundle(plan, tmp_path / "bf16.safetensors")
    for key, tensor in halves.items():
        layer, name = key.split("/")
        np.testing.assert_array_equal(bundle.layers[layer][name], tensor.float().numpy(), strict=True)


def test_keras_archives_without_weights_or_with_a_bomb_are_refused(tmp_path, cli):
    plan = small_plan()
    weights = tmp_path / "w.weights.h5"
    write_bundle(weights, WeightBundle(as_bundle_layers(plan_layers(plan))), plan)
    assert_same_arrays(
        as_bundle_layers(plan_layers(plan)),
        read_bundle(write_keras_archive(tmp_path / "good.keras", weights), plan).layers,
    )

    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("metadata.json", "{}")
    assert refused(tmp_path / "empty.keras") == (
        f"{tmp_path / 'empty.keras'}: expected the member model.weights.h5 in a Keras 3 model archive (.keras, a zip), "
        "received an archive with config.json, metadata.json"
    )

    (tmp_path / "text.keras").write_text("not a zip\n")
    assert refused(tmp_path / "text.keras") == (
        f"{tmp_path / 'text.keras'}: expected a Keras 3 model archive (.keras, a zip), received 10 bytes that are "
        "not a zip"
    )

    bomb = tmp_path / "bomb.keras"  # 80 MB of zeros in 80 KB: more than the small spec's weights can need
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", bytes(80_000_000))
    assert bomb.stat().st_size < 200_000
    limit = 16 * plan.total_params + (64 << 20)
    assert refused(bomb) == (
        f"{bomb} (model.weights.h5): expected at most {limit:,} bytes (for the spec's "
        "parameters), received a member that declares 80,000,000"
    )

    escaping = tmp_path / "inner" / "escaping.keras"  # member names are never used as paths
    escaping.parent.mkdir()
    with zipfile.ZipFile(escaping, "w") as archive:
        archive.writestr("../../escaped.txt", "outside")
        archive.writestr("/tmp/absolute.txt", "outside")
        archive.write(weights, "model.weights.h5")
    assert read_checked_bundle(plan, escaping)[1] == []
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "inner" / "escaped.txt").exists()

    spec = small_spec_file(tmp_path)
    line = one_line_exit_2(cli("convert", weights, tmp_path / "out.keras", "--spec", spec))
    assert line == (
        f"{tmp_path / 'out.keras'}: expected a weight file to write (.h5, .weights.h5, .safetensors or "
        ".pt), received a .keras name: a Keras model archive holds the model too; make one with "
        "vggspec build SPEC --backend keras --out FILE.keras --weights WEIGHTS"
    )
    assert not (tmp_path / "out.keras").exists()


def test_a_zip_format_pt_declaring_more_than_the_spec_needs_is_refused_before_torch_reads_it(tmp_path):
    source = torch_file(tmp_path, "good.pt")
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(bomb, "w") as archive:
        for info in original.infolist():
            archive.writestr(info, original.read(info))
        prefix = original.namelist()[0].split("/")[0]
        archive.writestr(f"{prefix}/data/99", bytes(80_000_000), compress_type=zipfile.ZIP_DEFLATED)
    limit = 16 * small_plan().total_params + (64 << 20)
    declared = sum(info.file_size for info in zipfile.ZipFile(bomb).infolist())
    assert refused(bomb) == (
        f"{bomb}: expected a PyTorch state dict saved with torch.save of at most {limit:,} "
        "bytes uncompressed (for the spec's parameters), received members that declare "
        f"{declared:,} bytes"
    )


class RunsCode:
    """Unpickled, it would run ``touch MARKER`` (``os.system``): a pickle a weights-only load must refuse."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


SAVE_INSTEAD = (
    "(vggspec loads with weights_only=True and will not run code from a file): "
    "save model.state_dict() with torch.save instead"
)


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_pickled_module_and_an_unsafe_pickle_are_refused_with_what_to_do(tmp_path, cli, zip_format):
    """torch's own message spans lines, carries terminal escape codes and advises weights_only=False; vggspec's
    is one whole line that says what the file holds and how to save what it reads."""
    import os

    import torch

    model = vggspec.build(vggspec.spec_from_mapping(SMALL), backend="torch")
    module, unsafe, marker = tmp_path / "model.pt", tmp_path / "unsafe.pt", tmp_path / "ran"
    torch.save(model, module, _use_new_zipfile_serialization=zip_format)
    state = dict(model.state_dict())
    torch.save({**state, "features.0.weight": RunsCode(marker)}, unsafe, _use_new_zipfile_serialization=zip_format)
    expected = {
        module: f"received a whole pickled nn.Module (vggspec_torch.network.VGG), not its weights {SAVE_INSTEAD}",
        unsafe: f"received a pickle that needs {os.system.__module__}.system, which a weights-only load refuses "
        f"{SAVE_INSTEAD}",
    }
    spec = small_spec_file(tmp_path)
    for path, received in expected.items():
        message = f"{path}: expected a PyTorch state dict saved with torch.save, {received}"
        assert refused(path) == message
        assert one_line_exit_2(cli("convert", path, tmp_path / "out.h5", "--spec", spec)) == message
    assert not marker.exists() and not (tmp_path / "out.h5").exists()


@pytest.mark.slow
def test_a_damaged_string_heap_that_hangs_the_hdf5_library_is_read_in_bounded_time(tmp_path):
    """Found by the fuzz tests: two bytes of a Keras 2 file changed, and h5py's read of its ``backend`` attribute
    (a variable-length string in the file's global heap, as Keras writes it) never returns. vggspec reads such
    attributes in a forked child it can stop: the file is read, or refused in one line, within seconds."""
    import subprocess
    import sys
    import time

    from weight_fixtures import write_keras2_h5

    path = write_keras2_h5(tmp_path / "damaged.h5", plan_layers(small_plan()))
    data = bytearray(path.read_bytes())
    for offset, value in ((1332, 46), (2104, 126)):  # the fuzz tests' flips
        data[offset] = value
    path.write_bytes(data)
    probe = f"import h5py; h5py.File({str(path)!r}, 'r').attrs['backend']"
    try:
        subprocess.run([sys.executable, "-c", probe], timeout=10, capture_output=True, check=False)
        pytest.skip("this h5py lays the file out otherwise: the two flips no longer make a heap that hangs")
    except subprocess.TimeoutExpired:
        pass  # the raw read hangs: the case to defend against
    started = time.monotonic()
    try:
        read_bundle(path, small_plan())
    except WeightsError as error:
        assert "\n" not in str(error) and str(error).startswith(str(path)), str(error)
    assert time.monotonic() - started < 30
