"""Every bad spec in tests/spec/bad_specs gives exit status 2, the line where the YAML has one, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BAD = Path(__file__).parent / "bad_specs"

# file -> (line:column of the first problem, the JSON path, a phrase the message must hold)
EXPECTED = {
    "bad_enums.yaml": ("3:13", "$.activation", "expected one of relu, relu6, elu"),
    "broken_yaml.yaml": ("3:12", "$", "expected valid YAML"),
    "configuration_and_layers.yaml": ("2:1", "$.configuration", "expected either configuration or layers"),
    "duplicate_keys.yaml": ("5:1", "$.classes", "received a duplicate of the key at line 3"),
    "empty.yaml": ("1:1", "$", "expected a mapping, received an empty document"),
    "even_kernel.yaml": ("2:10", "$.layers[0]", "expected an odd kernel size"),
    "fc_token_in_layers.yaml": ("2:29", "$.layers[2]", "received 'FC-4096'"),
    "huge_width.yaml": ("2:20", "$.layers[1]", "expected a width from 1 to 65,536, received 'conv3-1000000'"),
    "input_too_small.yaml": ("3:15", "$.input_shape[0]", "expected an image height ≥ 32, received 16"),
    "merge_key.yaml": ("2:1", "$", "expected plain YAML values"),
    "negative_values.yaml": ("3:10", "$.classes", "expected a number of classes ≥ 1, received -3"),
    "not_a_mapping.yaml": ("1:1", "$", "expected a mapping of fields, received a list"),
    "only_comment.yaml": ("1:1", "$", "received an empty document"),
    "over_budget.yaml": ("2:9", "$.layers", "expected at most 1,000,000,000 parameters in all, received 3,309,218,536"),
    "pooling_with_top.yaml": ("4:10", "$.pooling", "expected pooling: null with include_top: true"),
    "python_tag.yaml": ("1:7", "$.name", "received the tag 'tag:yaml.org,2002:python/object/apply:os.system'"),
    "tab_indent.yaml": ("3:1", "$", "expected valid YAML"),
    "token_typo.yaml": ("5:5", "$.layers[2]", "received 'maxpol'"),
    "too_many_pools.yaml": ("4:55", "$.layers[11]", "expected a feature map of at least 2×2 before each maxpool"),
    "unknown_configuration.yaml": ("2:16", "$.configuration", "expected one of A, A-LRN, B, C, D, E, received 'F'"),
    "unknown_keys.yaml": ("3:1", "$.num_classes", "received the unknown field 'num_classes'"),
    "wrong_types.yaml": ("3:20", "$.input_shape[1]", "expected an integer, received 'wide'"),
    "zero_widths.yaml": ("2:20", "$.layers[1]", "expected a width from 1 to 65,536, received 'conv3-0'"),
    # hostile input (issue "Nothing hangs, nothing crashes")
    "alias_bomb.yaml": ("2:8", "$.f[0][3][3][7][2][0]", "expected at most 100,000 values once aliases are expanded"),
    "recursive_alias.yaml": ("2:9", "$.layers[1]", "received an alias inside the value it names"),
    "whole_number_floats.yaml": ("3:15", "$.input_shape[0]", "expected an integer, received 32.0"),
    "not_finite.yaml": ("4:10", "$.dropout", "expected a finite number, received .nan"),
    "yaml11_booleans.yaml": ("4:13", "$.batch_norm", "expected true or false, received 'yes' (YAML 1.2"),
    "duplicate_and_more.yaml": ("2:19", "$.layers[1]", "received 'maxpol'"),
    "one_class_softmax.yaml": ("4:10", "$.classes", "expected at least 2 classes with classifier_activation: softmax"),
    "huge_input.yaml": ("3:14", "$.input_shape", "expected at most 1,000,000,000 activation values per image"),
    "long_name.yaml": ("1:7", "$.name", "at most 128 characters, received 'vvvvvvvvvv"),
    "token_with_newline.yaml": ("2:19", "$.layers[1]", "received 'maxpool\\n'"),
}


def test_the_corpus_is_complete():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_spec(cli, name):
    position, path, phrase = EXPECTED[name]
    result = cli("validate", BAD / name)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{BAD / name}:{position} {path}: "), first
    assert phrase in first


def test_every_problem_is_reported(cli):
    result = cli("validate", BAD / "zero_widths.yaml", BAD / "wrong_types.yaml")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert [line.split(" ")[1].rstrip(":") for line in lines] == [
        "$.layers[1]",
        "$.fc[1]",
        "$.classes",
        "$.input_shape[1]",
        "$.batch_norm",
        "$.classes",
    ]


def test_summary_of_a_bad_spec_exits_2(cli):
    result = cli("summary", BAD / "python_tag.yaml")
    assert (result.returncode, result.stdout) == (2, "")
    assert "Traceback" not in result.stderr


def test_missing_file(cli, tmp_path):
    result = cli("validate", tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"{tmp_path / 'nope.yaml'} $: expected a spec file, received a path that does not exist"
    )


def test_every_problem_is_reported_beside_a_duplicate_key(cli):
    result = cli("validate", BAD / "duplicate_and_more.yaml")
    assert [line.split(" ")[:2] for line in result.stderr.splitlines()] == [
        [f"{BAD / 'duplicate_and_more.yaml'}:2:19", "$.layers[1]:"],
        [f"{BAD / 'duplicate_and_more.yaml'}:4:1", "$.classes:"],
        [f"{BAD / 'duplicate_and_more.yaml'}:5:6", "$.fc[0]:"],
    ]


def test_not_finite_and_whole_floats_are_each_reported(cli):
    lines = cli("validate", BAD / "not_finite.yaml", BAD / "whole_number_floats.yaml").stderr.splitlines()
    assert [line.split(" ", 2)[1] for line in lines] == [
        "$.dropout:",
        "$.lrn.alpha:",
        "$.input_shape[0]:",
        "$.classes:",
        "$.fc[0]:",
    ]
    assert lines[1].endswith("$.lrn.alpha: expected a finite number, received .inf")


def test_the_alias_bomb_is_refused_at_once_with_bounded_memory():
    """Nine levels of nine aliases expand to 9⁹ values; the reader stops at 100,000 (0.2 s, ~60 MB here)."""
    # VmHWM, not ru_maxrss: the latter keeps the forked parent's peak across exec (pytest holds torch and Keras)
    code = (
        "import time, vggspec\n"
        "start = time.perf_counter()\n"
        f"try:\n    vggspec.load_spec({str(BAD / 'alias_bomb.yaml')!r})\n"
        "except vggspec.SpecError as error:\n    print(error)\n"
        "peak = next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
        "print(time.perf_counter() - start, peak)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    message, numbers = result.stdout.strip().splitlines()
    assert "expected at most 100,000 values once aliases are expanded" in message
    seconds, peak_kib = numbers.split()
    assert float(seconds) < 1.0
    assert int(peak_kib) < 300 * 1024  # the Python process itself is about 50 MB


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "too_large", "not_utf8"])
def test_only_regular_spec_files_of_a_sane_size_are_read(cli, tmp_path, kind):
    path = {
        "fifo": tmp_path / "pipe.yaml",
        "device": Path("/dev/zero"),
        "folder": tmp_path,
        "too_large": tmp_path / "large.yaml",
        "not_utf8": tmp_path / "latin1.yaml",
    }[kind]
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "too_large":
        path.write_text("name: large\nconfiguration: D\ndescription: " + "x" * (1 << 20) + "\n")
    elif kind == "not_utf8":
        path.write_bytes("name: caf\xe9\nconfiguration: D\n".encode("latin-1"))
    result = cli("validate", path, timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    expected = {
        "fifo": "received a FIFO (named pipe)",
        "device": "received a character device",
        "folder": "received a folder",
        "too_large": "expected a spec file of at most 1,048,576 bytes",
        "not_utf8": "expected UTF-8 text, received a byte 0xe9 at offset 9",
    }[kind]
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith(f"{path} $: expected ") and expected in line, line


def test_the_shipped_table_validates_and_a_broken_one_is_located(cli, tmp_path):
    table = Path(__file__).resolve().parents[2] / "specs" / "vgg.yaml"
    result = cli("validate", table)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{table}: ok (a table of 6 configurations: A, A-LRN, B, C, D, E)"
    broken = tmp_path / "table.yaml"
    broken.write_text(
        table.read_text()
        .replace("dropout: 0.5 ", "dropout: 2 ")
        .replace("\nconfigurations:", "\n  lrn: {size: 4}\nconfigurations:")  # the last of the defaults
        + "  F: [conv3-8, FC-10, maxpool]\n  G: [conv3-8, FC-1000000000]\n"
    )
    lines = cli("validate", broken).stderr.splitlines()
    assert [line.split(" ")[1] for line in lines] == [
        "$.defaults.dropout:",
        "$.defaults.lrn.size:",
        "$.configurations.F:",
    ]
    broken.write_text(broken.read_text().replace("size: 4", "size: 5").replace("dropout: 2 ", "dropout: 0.5 "))
    lines = cli("validate", broken).stderr.splitlines()
    assert [line.split(" ")[1] for line in lines] == [
        "$.configurations.F:",
        "$.configurations.G:",
        "$.configurations.G:",
    ]
    assert "the largest output, predictions, is 1000000000 (give fewer units)" in lines[1]  # sorted by message
    assert "expected at most 1,000,000,000 parameters in all" in lines[2]
    summary = cli("summary", table)
    assert summary.returncode == 2
    assert "expected a model spec (name, and configuration or layers), received a table of configurations" in (
        summary.stderr
    )
