"""run.json as a typed, versioned RunRecord; one set of training defaults; the rules of a resumed run; a
backend's own settings (torch's device, compile, ...) and their refusal by a backend without them.

Everything here runs without training: records are made by hand from a real spec, and the
command line is called in this process (``vggspec.cli.main``) except for two real runs of it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import vggspec
from vggspec.backends import installed_backend
from vggspec.cli import error_text, main
from vggspec.errors import DataError, ResumeError, VggspecError
from vggspec.training import finetune as finetune_module
from vggspec.training import settings as settings_module
from vggspec.training.backend_settings import (
    backend_setting_names,
    backend_settings,
    declared_settings,
    installed_settings,
)
from vggspec.training.protocol import TrainConfig
from vggspec.training.run_folder import NAME_LENGTH, Best, Checkpoints, RunFolder, RunRecord, default_run_dir
from vggspec.training.settings import CHANGEABLE_ON_RESUME, SETTINGS, RunSettings, resumed_settings
from vggspec_torch import TorchBackend
from vggspec_torch.settings import TorchSettings

from cli_cases import ONE_THREAD, files_under, one_line, tiny_spec
from conftest import SPECS, run_vggspec

SMALL = SPECS / "examples" / "small64.yaml"
TORCH_DEFAULTS = {"device": None, "compile": False, "channels_last": True, "autocast": True}


def small_record(**changes: object) -> RunRecord:
    """The record of a two-class run of small64 on torch, one epoch done, with ``changes``."""
    spec = vggspec.spec_from_mapping({**vggspec.spec_to_mapping(vggspec.load_spec(SMALL)), "classes": 2})
    record = RunRecord(
        spec=vggspec.spec_to_mapping(spec),
        backend="torch",
        classes=("circles", "stripes"),
        data="/data/shapes",
        weights=None,
        freeze="none",
        config=TrainConfig(epochs=3, batch_size=16, learning_rate=1e-4, optimizer="sgd"),
        backend_settings=TORCH_DEFAULTS,
        train_images=48,
        val_images=16,
        world_size=1,
        checkpoints=Checkpoints(best="best.pt", last="last.pt"),
        best=Best(epoch=1, val_accuracy=0.8125, val_loss=0.4375),
        epochs_done=1,
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def write_run(folder: Path, record: RunRecord) -> Path:
    RunFolder(folder).create()
    RunFolder(folder).write_record(record)
    return folder / "run.json"


def error_line(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """The one line ``vggspec ARGV`` prints on stderr, run in this process, exiting 2."""
    assert main([str(arg) for arg in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ---- the record ----


def test_record_round_trips_through_run_json(tmp_path):
    record = small_record(weights="/weights/vgg16.h5", freeze="block2_pool", ranks_agree=True, world_size=2)
    record = dataclasses.replace(record, config=dataclasses.replace(record.config, freeze=("input_layer", "b")))
    path = write_run(tmp_path / "run", record)
    written = json.loads(path.read_text())
    assert list(written)[:2] == ["format", "version"]
    assert (written["format"], written["version"]) == ("vggspec-run", RunRecord.format_version) == ("vggspec-run", 2)
    assert written["backend_settings"] == TORCH_DEFAULTS
    assert written["config"]["freeze"] == ["input_layer", "b"] and written["classes"] == ["circles", "stripes"]
    assert written["best"] == {"epoch": 1, "val_accuracy": 0.8125, "val_loss": 0.4375}
    read = RunFolder(tmp_path / "run").read_record()
    assert read == record
    assert isinstance(read.config, TrainConfig) and read.config.freeze == ("input_layer", "b")
    assert isinstance(read.checkpoints, Checkpoints) and read.best == Best(1, 0.8125, 0.4375)


def test_a_new_record_has_no_best_epoch_yet(tmp_path):
    record = small_record(best=None, epochs_done=0)
    write_run(tmp_path / "run", record)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["best"] is None
    assert RunFolder(tmp_path / "run").read_record() == record


@pytest.mark.parametrize(
    "key",
    [item.name for item in dataclasses.fields(RunRecord)]
    + [f"config.{item.name}" for item in dataclasses.fields(TrainConfig)]
    + ["checkpoints.best", "checkpoints.last", "best.epoch", "best.val_accuracy", "best.val_loss"],
)
def test_every_field_of_the_record_is_required(key, tmp_path):
    """The keys run.json must hold are the dataclasses' fields (no table of its own)."""
    record = small_record().to_json()
    parent, _, name = key.rpartition(".")
    del (record[parent] if parent else record)[name]
    with pytest.raises(DataError) as caught:
        RunRecord.from_json(record, "run.json")
    assert str(caught.value) == (
        f'run.json: not a vggspec run record (written by vggspec finetune): expected the key "{key}", '
        "received a record without it"
    )


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("weights", 3, 'expected "weights" to be a string or null, received an integer (3)'),
        ("train_images", 1.5, 'expected "train_images" to be an integer, received a number (1.5)'),
        ("epochs_done", True, 'expected "epochs_done" to be an integer, received a boolean (true)'),
        ("ranks_agree", "yes", 'expected "ranks_agree" to be true, false or null, received a string ("yes")'),
        ("best", [], 'expected "best" to be a mapping or null, received a list ([])'),
        ("classes", ["a", 1], 'expected "classes" to be a list of class names, received a list (["a", 1])'),
        ("config.learning_rate", "1e-3", 'expected "config.learning_rate" to be a number, received a string ("1e-3")'),
        ("config.cache_dir", 0, 'expected "config.cache_dir" to be a string or null, received an integer (0)'),
        ("backend_settings", [], 'expected "backend_settings" to be a mapping, received a list ([])'),
        ("config.freeze", "none", 'expected "config.freeze" to be a list of strings, received a string ("none")'),
        ("checkpoints.best", None, 'expected "checkpoints.best" to be a file name, received null'),
        ("config.epochs", 0, "config.epochs: expected a positive integer, received 0"),
        ("format", "keras", 'expected "format" to be "vggspec-run", received a string ("keras")'),
        ("version", "1", 'expected "version" to be an integer, received a string ("1")'),
    ],
)
def test_a_value_of_the_wrong_type_names_its_key(key, value, expected):
    record = small_record().to_json()
    parent, _, name = key.rpartition(".")
    (record[parent] if parent else record)[name] = value
    with pytest.raises(DataError) as caught:
        RunRecord.from_json(record, "runs/a/run.json")
    assert str(caught.value) == f"runs/a/run.json: not a vggspec run record (written by vggspec finetune): {expected}"


def as_version_1(record: dict) -> dict:
    """What vggspec wrote before the backend's own settings left config (RunRecord version 1)."""
    older = {key: value for key, value in record.items() if key != "backend_settings"}
    return {**older, "version": 1, "config": {**record["config"], **record["backend_settings"]}}


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            lambda record: {**record, "version": 3},
            "{path}: written by a newer vggspec (version 3); this vggspec reads version 2",
        ),
        (
            lambda record: as_version_1(record),
            "{path}: written by an older vggspec (version 1); this vggspec reads version 2: the run must be "
            "started again (in a new run folder)",
        ),
        (
            lambda record: {key: value for key, value in record.items() if key not in ("format", "version")},
            "{path}: written by an older vggspec (no version); this vggspec reads version 2: the run must be "
            "started again (in a new run folder)",
        ),
    ],
    ids=["version 3", "version 1", "no version"],
)
def test_a_record_of_another_version_is_one_line(change, expected, tmp_path, capsys):
    path = write_run(tmp_path / "run", small_record())
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    line = f"error: {expected.format(path=path)}"
    assert error_line(capsys, "evaluate", tmp_path / "run") == line
    assert error_line(capsys, "finetune", SMALL, "--data", tmp_path, "--out", tmp_path / "run", "--resume") == line


def test_a_record_of_a_newer_version_is_refused_by_the_real_command_line(cli, tmp_path):
    path = write_run(tmp_path / "run", small_record())
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": 3, "a_field_of_version_3": []}))
    result = cli("evaluate", tmp_path / "run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: written by a newer vggspec (version 3); this vggspec reads version 2"
    ]


# ---- one set of defaults ----


def test_train_config_defaults_are_the_command_lines():
    assert TrainConfig() == TrainConfig(
        epochs=10,
        batch_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        momentum=0.9,
        freeze=(),
        workers=2,
        seed=0,
    )
    assert not hasattr(TrainConfig(), "extra")
    assert not hasattr(TrainConfig(), "device")  # torch's own: TorchSettings
    assert RunSettings() == RunSettings(None, None, None, None, TrainConfig(), {})  # backend: one that can run
    assert dataclasses.asdict(TorchSettings()) == TORCH_DEFAULTS


def finetune_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        main(["finetune", "--help"])
    assert caught.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_the_help_shows_the_library_defaults(capsys, monkeypatch):
    def shown(settings: RunSettings, torch: TorchSettings) -> list[str]:
        config = settings.config
        on = {True: "on", False: "off"}
        return [
            "torch backend: --device DEVICE cpu, cuda or cuda:N (default: CUDA when available)",
            "--backend BACKEND keras or torch (default: keras, else torch, whichever can run here)",
            f"--epochs EPOCHS epochs in all (default {config.epochs})",
            f"--batch-size BATCH_SIZE images per batch and process (default {config.batch_size})",
            f"--lr LR learning rate (default {config.learning_rate:g})",
            f"adam or sgd, sgd with momentum {config.momentum} (default {config.optimizer})",
            f"0 to 64 (default {config.workers};",
            f"0 to 4294967295 (default {config.seed})",
            f"--compile, --no-compile torch.compile the model (default {on[torch.compile]})",
            f"--channels-last, --no-channels-last on CUDA, the channels-last (NHWC) memory format "
            f"(default {on[torch.channels_last]})",
            f"--autocast, --no-autocast on CUDA, bfloat16 autocast; off: float32 (default {on[torch.autocast]})",
        ]

    text = finetune_help(capsys)
    assert [line for line in shown(RunSettings(), TorchSettings()) if line not in text] == []
    assert "(default 10)" in text and "(default 32)" in text and "(default 0.001)" in text

    # other defaults in the library and in the torch backend: the help follows them
    @dataclasses.dataclass(frozen=True)
    class Other(RunSettings):
        backend: str = "torch"
        config: TrainConfig = dataclasses.field(
            default_factory=lambda: TrainConfig(
                epochs=7, batch_size=5, learning_rate=0.25, optimizer="sgd", workers=3, seed=11
            )
        )

    @dataclasses.dataclass(frozen=True)
    class OtherTorch(TorchSettings):
        compile: bool = dataclasses.field(default=True, metadata={"help": "torch.compile the model"})
        autocast: bool = dataclasses.field(default=False, metadata={"help": "on CUDA, bfloat16 autocast; off: float32"})

    monkeypatch.setattr(settings_module, "RunSettings", Other)
    monkeypatch.setattr(TorchBackend, "training_settings", OtherTorch)
    text = finetune_help(capsys)
    assert [line for line in shown(Other(), OtherTorch()) if line not in text] == []


def test_options_left_out_leave_the_library_defaults(tmp_path, capsys, monkeypatch):
    """The command line passes only what it was given: a run of no options has RunSettings()."""
    calls = []

    def fake_finetune(spec, data_dir, run_dir, settings=None):
        calls.append((spec.name, str(data_dir), Path(run_dir), settings))
        return small_record()

    monkeypatch.setattr(finetune_module, "finetune", fake_finetune)
    monkeypatch.chdir(tmp_path)
    assert main(["finetune", str(SMALL), "--data", "shapes"]) == 0
    ((name, data, run_dir, settings),) = calls
    assert (name, data, settings) == ("small64", "shapes", RunSettings())
    assert run_dir.parent == Path("runs") and run_dir.name.startswith("small64-keras-")
    assert "best epoch 1 of 1: val_accuracy 0.8125 val_loss 0.4375 (best.pt)" in capsys.readouterr().out

    calls.clear()
    argv = ["finetune", str(SMALL), "--data", "shapes", "--backend", "torch", "--lr", "0.01", "--no-autocast"]
    assert main([*argv, "--epochs", "3", "--weights", "w.h5", "--freeze", "block1_pool", "--out", "r"]) == 0
    ((_, _, run_dir, settings),) = calls
    assert run_dir == Path("r")
    assert settings == RunSettings(
        backend="torch",
        weights="w.h5",
        freeze="block1_pool",
        config=TrainConfig(epochs=3, learning_rate=0.01),
        backend_settings={"autocast": False},
    )


# ---- settings are named by the library, shown as flags by the command line ----


@pytest.mark.parametrize(
    "settings, setting, message",
    [
        ({"epochs": 0}, "epochs", "epochs: expected a positive integer, received 0"),
        ({"batch_size": -1}, "batch_size", "batch_size: expected a positive integer, received -1"),
        ({"workers": 65}, "workers", "workers: expected 0 to 64, received 65"),
        ({"learning_rate": float("nan")}, "learning_rate", "learning_rate: expected a positive learning rate"),
        ({"optimizer": "rmsprop"}, "optimizer", "optimizer: expected adam or sgd, received 'rmsprop'"),
        ({"momentum": 2.0}, "momentum", "momentum: expected 0 to 1, received 2.0"),
        ({"seed": -1}, "seed", "seed: expected an integer from 0 to 4294967295 (2**32 - 1), received -1"),
    ],
)
def test_a_bad_setting_is_named_as_the_library_names_it(settings, setting, message):
    with pytest.raises(VggspecError) as caught:
        RunSettings.given(settings)
    assert caught.value.setting == setting and str(caught.value).startswith(message)


def test_an_unknown_setting_is_a_type_error():
    with pytest.raises(TypeError, match="unknown settings lr, out"):
        RunSettings.given({"lr": 0.1, "out": "runs/a", "epochs": 2})


def test_the_command_line_shows_a_setting_as_its_flag():
    flags = {"learning_rate": "--lr", "batch_size": "--batch-size", "run_dir": "--out"}
    assert (
        error_text(VggspecError("learning_rate: expected x", setting="learning_rate"), flags)
        == "error: --lr: expected x"
    )
    assert (
        error_text(VggspecError("run_dir runs/a: expected y", setting="run_dir"), flags)
        == "error: --out runs/a: expected y"
    )
    # not an option of the command, no setting, or a message that does not start with it: as it is
    assert error_text(VggspecError("spec: expected z", setting="spec"), flags) == "error: spec: expected z"
    assert error_text(VggspecError("batch_size: expected w"), flags) == "error: batch_size: expected w"
    assert error_text(VggspecError("a: batch_size", setting="batch_size"), flags) == "error: a: batch_size"
    assert error_text(VggspecError("batch_sizes: v", setting="batch_size"), flags) == "error: batch_sizes: v"
    assert error_text(VggspecError("a.yaml:1:1 $: p\nb.yaml:2:1 $: q"), flags) == "a.yaml:1:1 $: p\nb.yaml:2:1 $: q"


def test_evaluate_names_its_settings(tmp_path, capsys):
    from vggspec.training.evaluate import evaluate_run

    with pytest.raises(VggspecError) as caught:
        evaluate_run(tmp_path, batch_size=0)
    assert (caught.value.setting, str(caught.value)) == (
        "batch_size",
        "batch_size: expected a positive integer, received 0",
    )
    with pytest.raises(VggspecError, match="checkpoint: expected best or last, received 'first'"):
        evaluate_run(tmp_path, checkpoint="first")
    expected = "error: --batch-size: expected a positive integer, received -2"
    assert error_line(capsys, "evaluate", tmp_path, "--batch-size", "-2") == expected


# ---- resuming ----


def test_a_resumed_run_keeps_its_settings_and_takes_the_changeable_ones(tmp_path):
    record = small_record()
    given = {name: None for name in (*SETTINGS, *TORCH_DEFAULTS)}  # as the command line gives them: None is not given
    given.update(epochs=5, workers=0, device="cpu", compile=True, channels_last=False, autocast=False)
    given.update(batch_size=16, optimizer="sgd", backend="torch", freeze="none", classes=2)  # the same again
    spec, settings = resumed_settings(record, tmp_path / "run.json", given, vggspec.load_spec(SMALL))
    assert spec.name == "small64" and spec.classes == 2  # the run's head
    assert settings == RunSettings(
        backend="torch",
        weights=None,
        freeze="none",
        classes=2,
        config=dataclasses.replace(record.config, epochs=5, workers=0),
        backend_settings={"device": "cpu", "compile": True, "channels_last": False, "autocast": False},
    )
    assert set(CHANGEABLE_ON_RESUME) == {"epochs", "workers"}  # and every setting of the backend's own
    _, unchanged = resumed_settings(record, tmp_path / "run.json", {})
    assert unchanged.config == record.config and unchanged.backend == "torch"
    assert unchanged.backend_settings == TORCH_DEFAULTS
    _, some = resumed_settings(record, tmp_path / "run.json", {"compile": True})
    assert some.backend_settings == {**TORCH_DEFAULTS, "compile": True}


@pytest.mark.parametrize(
    "setting, value, recorded",
    [
        ("batch_size", 32, "16"),
        ("learning_rate", 1e-3, "0.0001"),
        ("optimizer", "adam", "sgd"),
        ("seed", 1, "0"),
        ("momentum", 0.5, "0.9"),
        ("backend", "keras", "torch"),
        ("weights", "w.h5", "none"),
        ("freeze", "block1_pool", "none"),
        ("classes", 3, "2"),
    ],
)
def test_a_resume_that_changes_a_fixed_setting_names_it(setting, value, recorded, tmp_path):
    with pytest.raises(ResumeError) as caught:
        resumed_settings(small_record(), tmp_path / "run.json", {setting: value})
    assert caught.value.setting == setting
    assert str(caught.value) == (
        f"{setting}: expected {recorded}, as {tmp_path / 'run.json'} records (a resumed run keeps it; leave it out), "
        f"received {value}"
    )


def test_a_resume_with_another_spec_is_refused(tmp_path):
    other = vggspec.spec_from_mapping({**vggspec.spec_to_mapping(vggspec.load_spec(SMALL)), "fc": [32]}, "other.yaml")
    with pytest.raises(ResumeError) as caught:
        resumed_settings(small_record(), tmp_path / "run.json", {}, other)
    assert caught.value.setting == "spec"
    assert str(caught.value) == (
        f"spec: expected the spec {tmp_path / 'run.json'} records (small64, with any number of classes), "
        "received another (other.yaml)"
    )


def test_the_command_line_shows_a_fixed_setting_as_its_flag(tmp_path, capsys):
    path = write_run(tmp_path / "run", small_record())
    argv = ["finetune", SMALL, "--data", tmp_path, "--out", tmp_path / "run", "--resume"]
    assert error_line(capsys, *argv, "--lr", "0.5") == (
        f"error: --lr: expected 0.0001, as {path} records (a resumed run keeps it; leave it out), received 0.5"
    )
    assert (
        error_line(capsys, *argv, "--batch-size", "0") == "error: --batch-size: expected a positive integer, received 0"
    )
    assert error_line(capsys, "finetune", SMALL, "--data", tmp_path, "--out", tmp_path / "none", "--resume") == (
        f"error: --resume: expected a run folder with run.json, received {tmp_path / 'none'} (does not exist)"
    )
    assert error_line(capsys, "finetune", SMALL, "--data", tmp_path, "--resume") == (
        "error: --resume: expected --out RUN_DIR, the run folder to continue, received none"
    )


def test_a_resume_with_fewer_epochs_than_finished_names_epochs(tmp_path, capsys):
    with pytest.raises(ResumeError) as caught:
        resumed_settings(small_record(epochs_done=3), tmp_path / "run.json", {"epochs": 2})
    assert caught.value.setting == "epochs"
    assert str(caught.value) == f"epochs: expected at least the 3 epochs {tmp_path} has finished, received 2"
    write_run(tmp_path / "run", small_record(epochs_done=3))
    argv = ["finetune", SMALL, "--data", tmp_path, "--out", tmp_path / "run", "--resume", "--epochs", "2"]
    assert error_line(capsys, *argv) == (
        f"error: --epochs: expected at least the 3 epochs {tmp_path / 'run'} has finished, received 2"
    )


def test_a_resume_on_other_class_folders_is_refused(tmp_path):
    from vggspec.training.finetune import resume_finetune

    write_run(tmp_path / "run", small_record())
    for name in ("cats", "dogs"):
        (tmp_path / "data" / "train" / name).mkdir(parents=True)
        (tmp_path / "data" / "train" / name / "0.jpg").write_bytes(b"")
    with pytest.raises(ResumeError) as caught:
        resume_finetune(tmp_path / "run", tmp_path / "data")
    assert str(caught.value) == (
        f"{tmp_path / 'data' / 'train'}: expected the run's class folders circles, stripes, received cats, dogs"
    )
    assert caught.value.setting is None


# ---- a backend's own settings: declared by it, checked by the core, refused by another backend ----


def test_a_backend_makes_its_own_settings_from_those_given():
    keras, torch = installed_backend("keras"), installed_backend("torch")
    assert declared_settings(keras) is None and declared_settings(torch) is TorchSettings
    assert backend_settings(keras, {}) is None
    assert backend_settings(torch, {}) == TorchSettings()
    assert backend_settings(torch, {"device": "cpu", "compile": True}) == TorchSettings(device="cpu", compile=True)
    assert backend_setting_names() == ("device", "compile", "channels_last", "autocast")
    assert installed_settings() == {"torch": TorchSettings}


@pytest.mark.parametrize(
    "backend, given, message",
    [
        (
            "keras",
            {"compile": True},
            "compile: expected a setting of the keras backend (it has none of its own), "
            "received a setting of the torch backend",
        ),
        (
            "torch",
            {"precision": "bf16"},
            "precision: expected a setting of the torch backend (device, compile, channels_last, autocast), "
            "received a setting no installed backend has",
        ),
        ("torch", {"compile": 0}, "compile: expected true or false, received 0"),
        ("torch", {"device": 0}, "device: expected a string or null, received 0"),
    ],
)
def test_a_setting_the_backend_does_not_have_is_refused_naming_it(backend, given, message):
    with pytest.raises(VggspecError) as caught:
        backend_settings(installed_backend(backend), given)
    assert (caught.value.setting, str(caught.value)) == (next(iter(given)), message)


@pytest.mark.parametrize("argv", [["--compile"], ["--no-autocast"], ["--device", "cpu"]])
def test_keras_given_a_torch_option_is_one_line_before_anything_is_read_or_written(argv, tmp_path, capsys):
    """Refused before the data is read (there is none here) and before anything is written."""
    name = argv[0].removeprefix("--no-").removeprefix("--")
    argv = ["finetune", SMALL, "--data", tmp_path / "data", "--backend", "keras", *argv, "--out", tmp_path / "run"]
    assert error_line(capsys, *argv) == (
        f"error: --{name}: expected a setting of the keras backend (it has none of its own), "
        "received a setting of the torch backend"
    )
    assert list(tmp_path.iterdir()) == []


def test_keras_given_a_torch_option_exits_2_from_the_real_command_line(cli, tmp_path):
    result = cli("finetune", SMALL, "--data", tmp_path, "--backend", "keras", "--compile", "--out", tmp_path / "run")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: --compile: expected a setting of the keras backend (it has none of its own), "
        "received a setting of the torch backend"
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_resumed_keras_run_refuses_a_torch_option(tmp_path, capsys):
    record = small_record(
        backend="keras", backend_settings={}, checkpoints=Checkpoints("best.weights.h5", "last.weights.h5")
    )
    write_run(tmp_path / "run", record)
    argv = ["finetune", SMALL, "--data", tmp_path / "data", "--out", tmp_path / "run", "--resume", "--device", "cpu"]
    assert error_line(capsys, *argv) == (
        "error: --device: expected a setting of the keras backend (it has none of its own), "
        "received a setting of the torch backend"
    )


@pytest.mark.parametrize(
    "recorded, message",
    [
        (
            {**TORCH_DEFAULTS, "compile": 0},
            'expected "backend_settings.compile" to be true or false, received an integer (0)',
        ),
        (
            {"device": None},
            'expected the key "backend_settings.compile", received a record without it',
        ),
        (
            {**TORCH_DEFAULTS, "xla": True},
            'expected "backend_settings" to hold settings of the torch backend (device, compile, channels_last, '
            "autocast), received xla",
        ),
    ],
)
def test_a_recorded_backend_setting_that_is_not_the_backends_names_run_json(recorded, message, tmp_path, capsys):
    path = write_run(tmp_path / "run", small_record(backend_settings=recorded))
    argv = ["finetune", SMALL, "--data", tmp_path / "data", "--out", tmp_path / "run", "--resume"]
    assert (
        error_line(capsys, *argv) == f"error: {path}: not a vggspec run record (written by vggspec finetune): {message}"
    )


@pytest.fixture(scope="module")
def finished_run(module_tmp, tiny_image_set) -> Path:
    run = module_tmp.mktemp("finished") / "run"
    spec = tiny_spec(run.parent)
    result = run_vggspec(
        "finetune",
        spec,
        "--data",
        tiny_image_set,
        "--backend",
        "torch",
        "--epochs",
        1,
        "--workers",
        0,
        "--out",
        run,
        env=ONE_THREAD,
    )
    assert result.returncode == 0, result.stderr
    return run


def test_default_run_folder_of_a_long_name_is_short_and_unique(tmp_path):
    long_a, long_b = "a" * 299 + "x", "a" * 299 + "y"
    folder_a, folder_b = default_run_dir(long_a, "torch"), default_run_dir(long_b, "torch")
    assert folder_a.parent == Path("runs") and folder_a != folder_b
    for folder in (folder_a, folder_b):
        assert len(folder.name.encode()) <= NAME_LENGTH + len("-torch-20250101-000000")
        assert folder.name.startswith("a" * (NAME_LENGTH - 9))
        (tmp_path / folder).mkdir(parents=True)  # "File name too long" before
    assert default_run_dir("vgg16", "keras").name.startswith("vgg16-keras-")  # short names stay as they were


def test_finetune_default_folder_of_a_128_character_name(cli, tmp_path, tiny_image_set):
    name = "a" + "b" * 127
    result = cli(
        "finetune",
        tiny_spec(tmp_path, name=name),
        "--data",
        tiny_image_set,
        "--backend",
        "torch",
        "--epochs",
        "1",
        "--workers",
        "0",
        env=ONE_THREAD,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith(name[: NAME_LENGTH - 9] + "-") and "-torch-" in folder.name
    assert len(folder.name) == NAME_LENGTH + len("-torch-20250101-000000")
    assert json.loads((folder / "run.json").read_text())["spec"]["name"] == name


def test_evaluate_a_file_says_it_is_a_file(cli, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"mine")
    assert one_line(cli("evaluate", photo)) == (
        f"error: {photo}: expected a run folder with run.json (written by vggspec finetune), received a file"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda record: {**record, "spec": 3}, 'expected "spec" to be a mapping, received an integer (3)'),
        (lambda record: [1, 2], "expected a JSON object, received a list ([1, 2])"),
        (
            lambda record: {k: v for k, v in record.items() if k != "checkpoints"},
            'expected the key "checkpoints", received a record without it',
        ),
        (
            lambda record: {**record, "config": {**record["config"], "seed": "0"}},
            'expected "config.seed" to be an integer, received a string ("0")',
        ),
        (
            lambda record: {**record, "config": {**record["config"], "cache_features": 0}},
            'expected "config.cache_features" to be true or false, received an integer (0)',
        ),
        (
            lambda record: {**record, "classes": "circles,stripes"},
            'expected "classes" to be a list of class names, received a string ("circles,stripes")',
        ),
    ],
    ids=["spec 3", "a list", "missing key", "seed a string", "cache_features 0", "classes a string"],
)
def test_run_json_that_is_not_a_run_record(change, message, cli, tmp_path, finished_run, tiny_image_set):
    run = tmp_path / "run"
    run.mkdir()
    for path in finished_run.iterdir():
        (run / path.name).write_bytes(path.read_bytes())
    record = change(json.loads((finished_run / "run.json").read_text()))
    (run / "run.json").write_text(json.dumps(record))
    before = files_under(run)
    expected = f"error: {run / 'run.json'}: not a vggspec run record (written by vggspec finetune): {message}"
    assert one_line(cli("evaluate", run, "--data", tiny_image_set)) == expected
    resumed = cli(
        "finetune",
        tiny_spec(tmp_path),
        "--data",
        tiny_image_set,
        "--out",
        run,
        "--resume",
        "--epochs",
        "2",
        env=ONE_THREAD,
    )
    assert one_line(resumed) == expected
    assert files_under(run) == before
