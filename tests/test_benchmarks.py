"""The benchmark runner: ``python -m benchmarks --quick`` reports every figure, and its helpers are right.

The quick run uses VGG16's layers on a 32x32 input (10 classes), so its speeds say nothing;
what is checked is that every ratio is there (a number, or null with the reason), that
the candidates compared really compute the same function, and that the conversion
measured the file it wrote.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from conftest import REPO, run_in_own_session

if str(REPO) not in sys.path:  # the benchmarks package lives at the repository root, not installed
    sys.path.insert(0, str(REPO))

from benchmarks.common import PEAK_RSS_PRELUDE, QUICK, figure, measured_module, run_child
from benchmarks.conversion import imported_modules, write_keras1_h5
from benchmarks.forward_torch import hand_written_vgg16
from benchmarks.predict_memory import BACKENDS as PREDICT_BACKENDS

EXPECTED_RATIOS = [
    *(
        f"forward_torch/batch{b}/{layout}/{versus}"
        for layout in ("contiguous", "channels_last")
        for b in (1, 8)
        for versus in ("vs_hand_written", "vs_torchvision", "control_a_vs_a")
    ),
    *(f"forward_keras/batch{b}/{versus}" for b in (1, 8) for versus in ("vs_keras_applications", "control_a_vs_a")),
    *(f"forward_onnx/batch{b}/{versus}" for b in (1, 8) for versus in ("vs_torch_backend", "control_a_vs_a")),
    *(f"forward_numpy/batch{b}/{versus}" for b in (1, 8) for versus in ("vs_torch_backend", "control_a_vs_a")),
    *(f"forward_int8/batch{b}/{name}_vs_torch_backend" for b in (1, 8) for name in ("onnx_int8", "onnx", "keras")),
    "forward_int8/batch1/control_a_vs_a",
    "forward_int8/batch8/control_a_vs_a",
    "forward_int8/int8_file_vs_float32_file",
    "digits/int8_minus_float32_accuracy_points",
    "digits/int8_top1_agreement",
    "digits/int8_file_vs_float32_file",
    *(
        f"conversion/{target}/{what}"
        for target in ("safetensors", "pt")
        for what in ("time_vs_copy", "time_vs_hand_written", "peak_rss_vs_file_size", "tensorflow_imported")
    ),
    "startup/summary_vgg16_seconds",
    "startup/summary_vgg16_vs_python_floor",
    "finetune/torch/seconds_per_epoch",
    "finetune/keras/seconds_per_epoch",
    "finetune/torch_vs_keras",
    *(
        f"finetune/vgg16_frozen/{backend}/{what}"
        for backend in ("torch", "keras")
        for what in (
            "uncached_seconds_per_epoch",
            "cached_seconds_per_epoch",
            "cached_speedup",
            "caching_seconds",
            "val_accuracy_within_one_image",
        )
    ),
    *(
        f"processes/{framework}/{what}"
        for framework in ("torch", "keras-tensorflow", "keras-jax")
        for what in ("one_images_per_s", "two_images_per_s", "two_vs_one")
    ),
    "features/block2_conv2_vs_full_model",
    *(f"predict/{backend}/{what}" for backend in PREDICT_BACKENDS for what in ("peak_all_vs_one_batch", "peak_gb")),
    "drawing/svg_slowest_spec_seconds",
    "drawing/png_slowest_spec_seconds",
    "drawing/svg_slowest_vs_summary",
]
# VGG16's convolutions (FACTS.md: 14,714,688), fc1 on the 1x1x512 map, fc2, a 10-way head
QUICK_PARAMS = 14_714_688 + (512 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 10 + 10)


@pytest.fixture(scope="module")
def quick_run(module_tmp):
    """(report from --json-out, stdout) of one ``python -m benchmarks --quick`` run."""
    out = module_tmp.mktemp("bench") / "report.json"
    done = run_in_own_session([sys.executable, "-m", "benchmarks", "--quick", "--json-out", str(out)], 900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


@pytest.mark.slow  # the quick run of every measure: about 70 s
def test_quick_run_reports_every_ratio_or_why_not(quick_run):
    report, _ = quick_run
    assert list(report["ratios"]) == EXPECTED_RATIOS
    for name, entry in report["ratios"].items():
        if entry["value"] is None:
            assert entry["reason"], name
        else:
            assert entry["unit"] in ("x", "s", "bool", "GB", "points", "share", "images/s"), name
            assert entry["met"] in (True, False, None), name
    assert all(
        report["ratios"][name]["goal"] is None and report["ratios"][name]["value"] > 0
        for name in EXPECTED_RATIOS
        if name.endswith("control_a_vs_a")
    )
    if importlib.util.find_spec("torchvision") is None:
        entry = report["ratios"]["forward_torch/batch1/contiguous/vs_torchvision"]
        assert entry["value"] is None and "torchvision" in entry["reason"]
    assert report["goals_missed"] == [name for name, entry in report["ratios"].items() if entry["met"] is False]
    assert report["machine"]["usable_cpus"] >= 1 and report["machine"]["versions"]["torch"]


@pytest.mark.slow  # the quick run of every measure: about 70 s
def test_quick_run_compares_equal_networks_and_measures_the_file_it_wrote(quick_run):
    measures = quick_run[0]["measures"]
    assert not [name for name, details in measures.items() if "error" in details]
    torch_details = measures["forward_torch"]
    assert torch_details["max_abs_output_difference_vs_vggspec"]["hand_written"] < 1e-6
    assert [(row["batch"], row["layout"]) for row in torch_details["results"]] == [
        (1, "contiguous"),
        (8, "contiguous"),
        (1, "channels_last"),
        (8, "channels_last"),
    ]
    assert all(rates["median"] > 0 for row in torch_details["results"] for rates in row["images_per_s"].values())
    assert measures["forward_keras"]["max_abs_output_difference"] < 1e-6
    onnx_details = measures["forward_onnx"]
    assert onnx_details["max_abs_output_difference_vs_torch"]["torch_again"] < 1e-6
    assert onnx_details["max_abs_output_difference_vs_torch"]["onnx"] < 1e-5  # softmax outputs, same weights
    assert [row["batch"] for row in onnx_details["results"]] == [1, 8]
    assert "CPUExecutionProvider" in onnx_details["providers"]
    numpy_details = measures["forward_numpy"]
    assert numpy_details["max_abs_output_difference_vs_torch"]["numpy"] < 1e-5
    assert [row["batch"] for row in numpy_details["results"]] == [1, 8]
    int8 = measures["forward_int8"]
    assert int8["max_abs_output_difference_vs_torch"]["onnx"] < 1e-5
    assert int8["max_abs_output_difference_vs_torch"]["onnx_int8"] < 0.1  # 10-way softmax of random weights
    assert int8["file_bytes"]["onnx_int8"] <= 0.3 * int8["file_bytes"]["onnx"]
    digits = measures["digits"]
    assert digits["images"] == {"train": 364, "val": 86}  # every fourth scan: one epoch, a check that it runs
    assert digits["evaluate_int8"]["images"] == 86 and digits["evaluate_int8"]["precision"] == "int8"
    assert digits["evaluate_int8"]["versus_float32"]["images"] == 86
    processes = {name: runs for name, runs in measures["processes"].items() if name != "wall_s"}
    assert sorted(processes) == ["keras-jax", "keras-tensorflow", "torch"]
    assert all(runs["two"]["ranks_agree"] is True and runs["one"]["images_per_s"] > 0 for runs in processes.values())
    conversion = measures["conversion"]
    assert conversion["parameters"] == QUICK_PARAMS
    assert 0 < conversion["source_bytes"] - 4 * QUICK_PARAMS < 100_000  # float32 data plus HDF5 metadata
    for target, details in conversion["targets"].items():
        assert 0 < details["output_bytes"] - 4 * QUICK_PARAMS < 100_000, target
        assert details["imported"]["tensorflow"] is False, target
        # streamed: the largest array (fc2, 4096x4096) was in memory, not necessarily all of them together
        assert details["peak_rss_bytes"] > 4 * 4096 * 4096, target
        hand_written = details["hand_written"]
        assert hand_written["wall_s_median"] > 0 and hand_written["peak_rss_bytes"] > 4 * QUICK_PARAMS, target
    startup = measures["startup"]["seconds_median"]
    assert startup["summary_vgg16"] > startup["python_floor"] > 0
    finetune = measures["finetune"]
    assert (finetune["epochs"], finetune["images_per_class"]) == (
        QUICK.finetune_epochs,
        {"train": QUICK.finetune_train_per_class, "val": QUICK.finetune_val_per_class},
    )
    assert list(finetune["backends"]) == ["torch", "keras"]
    for backend, details in finetune["backends"].items():
        assert "error" not in details, details
        assert len(details["epoch_seconds"]) == QUICK.finetune_epochs, backend
        assert details["seconds_per_epoch"] == details["epoch_seconds"][1] > 0, backend  # epoch 1 not counted
        assert 0 < details["startup_and_teardown_s"] < details["wall_s"], backend
    assert quick_run[0]["machine"]["cpu"] in quick_run[0]["ratios"]["finetune/torch_vs_keras"]["note"]
    vgg16 = finetune["vgg16_frozen"]
    assert (vgg16["freeze"], vgg16["epochs"], vgg16["input_size"]) == ("block5_pool", 3, QUICK.input_size)
    for backend, runs in vgg16["backends"].items():
        assert set(runs) == {"uncached", "cached"} and not [run for run in runs.values() if "error" in run], runs
        assert len(runs["cached"]["epoch_seconds"]) == len(runs["uncached"]["epoch_seconds"]) == 3, backend
        assert runs["cached"]["caching_s"] > 0 and runs["uncached"]["caching_s"] is None, backend
    ratios = quick_run[0]["ratios"]
    assert ratios["finetune/vgg16_frozen/torch/cached_speedup"]["goal"] == ">= 20.0"
    assert all(ratios[f"finetune/vgg16_frozen/{b}/val_accuracy_within_one_image"]["value"] for b in ("torch", "keras"))


@pytest.mark.slow  # the quick run of every measure: about 70 s
def test_stdout_is_one_json_object_then_a_table_of_every_figure(quick_run):
    report, stdout = quick_run
    printed, end = json.JSONDecoder().raw_decode(stdout)
    assert printed == report
    about, *table = stdout[end:].strip().splitlines()
    assert about.startswith("machine: ") and report["machine"]["cpu"] in about
    assert table[0].split()[:4] == ["figure", "value", "goal", "met"]
    assert [line.split()[0] for line in table[2:]] == EXPECTED_RATIOS


def test_digits_are_written_as_class_folders_one_in_five_for_validation(tmp_path):
    pytest.importorskip("sklearn")
    from PIL import Image

    from benchmarks.digits import write_digits

    # 180 scans, from 10 (nines) to 31 (fours) of a digit; each digit's fifth, tenth, ... in val
    assert write_digits(tmp_path, every=10) == {"train": 147, "val": 33}
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == [str(d) for d in range(10)]
    image = Image.open(next((tmp_path / "train" / "0").iterdir()))
    assert (image.mode, image.size) == ("L", (32, 32))


def test_hand_written_reference_is_vggspecs_network():
    import vggspec

    model = hand_written_vgg16(QUICK.input_size, QUICK.classes)
    assert sum(p.numel() for p in model.parameters()) == QUICK_PARAMS == vggspec.plan(QUICK.spec()).total_params


def test_keras1_source_is_read_by_vggspec_as_keras1(tmp_path):
    from vggspec.weights.formats import KERAS1, detect_format, read_bundle

    from weight_fixtures import small_plan

    plan = small_plan()
    path = tmp_path / "small.h5"
    size = write_keras1_h5(str(path), plan)
    assert size == path.stat().st_size
    assert detect_format(path) == KERAS1
    bundle = read_bundle(path, plan)
    assert bundle.total_params == plan.total_params
    assert {name: {w: a.shape for w, a in weights.items()} for name, weights in bundle.layers.items()} == {
        layer.name: dict(layer.weights) for layer in plan.layers if layer.weights
    }


def test_imported_modules_reads_importtime_lines():
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |   tensorflow.python\n"
        "import time:        50 |        170 | numpy\nsomething else | torch\n"
    )
    assert imported_modules(stderr) == {"tensorflow", "numpy"}


def test_figures_judge_the_goal_on_the_reported_value():
    assert figure(0.97, goal=(">=", 0.98))["met"] is False
    assert figure(0.49999, unit="s", goal=("<", 0.5))["met"] is False  # reported as 0.5
    assert figure(False, unit="bool", goal=("==", False))["met"] is True
    assert figure(None, reason="no torchvision")["met"] is None
    with pytest.raises(ValueError):
        figure(None)


def test_run_child_measures_the_peak_memory_the_child_reports():
    small = run_child([sys.executable, "-c", PEAK_RSS_PRELUDE + "print('small')"])
    big = run_child([sys.executable, "-c", PEAK_RSS_PRELUDE + "data = b'x' * 300_000_000; print(len(data))"])
    assert (small.returncode, small.stdout, small.stderr) == (0, "small\n", "")  # marker line removed
    assert (big.returncode, big.stdout.strip()) == (0, "300000000")
    # this test process holds torch (hundreds of MB): none of it may count as the child's
    assert small.max_rss_bytes < 50_000_000 < 300_000_000 < big.max_rss_bytes < 400_000_000
    assert big.wall_s > 0


def test_measured_module_runs_the_module_as_python_m_does():
    done = run_child(measured_module("vggspec", "summary", "vgg16", "--format", "json"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total_params"] == 138_357_544
    assert 10_000_000 < done.max_rss_bytes < 300_000_000
    refused = run_child(measured_module("vggspec", "summary", "no_such_spec"))
    assert refused.returncode == 2 and refused.stderr.startswith("error: ")


def test_gpu_script_skips_cleanly_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: run benchmarks/gpu.py itself")
    done = run_in_own_session([sys.executable, str(REPO / "benchmarks" / "gpu.py")], 120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["benchmark"] == "vggspec-gpu" and "CUDA" in report["skipped"]
    assert "skipped" in done.stderr
