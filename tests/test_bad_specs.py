"""Every bad spec in tests/bad_specs gives exit status 2, the line where the YAML has one, no traceback."""

from __future__ import annotations

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
        "$.layers[1]", "$.fc[1]", "$.classes", "$.input_shape[1]", "$.batch_norm", "$.classes"]


def test_summary_of_a_bad_spec_exits_2(cli):
    result = cli("summary", BAD / "python_tag.yaml")
    assert (result.returncode, result.stdout) == (2, "")
    assert "Traceback" not in result.stderr


def test_missing_file(cli, tmp_path):
    result = cli("validate", tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert result.stderr.strip() == f"{tmp_path / 'nope.yaml'} $: expected a spec file, received a path that does not exist"
