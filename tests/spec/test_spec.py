"""The spec language and its checks: shipped names, the paper's table, YAML 1.2, positions of problems; no framework."""

from __future__ import annotations

import re

import pytest

import vggspec
from vggspec.errors import SpecError
from vggspec.spec.shipped import shipped_names
from vggspec.spec.table import configuration_fields, load_table

from conftest import SHIPPED_SPECS, SPECS


def test_every_shipped_name_is_listed_and_loads():
    names = shipped_names()
    assert set(SHIPPED_SPECS) <= set(names)
    for name in names:
        assert vggspec.load_spec(name).name


def test_the_examples_are_shipped_names_too(tmp_path, monkeypatch):
    """The README trains small64 by name: the wheel holds specs/examples/, and no clone is needed."""
    monkeypatch.chdir(tmp_path)  # no specs/ folder here: the name must find the shipped file
    spec = vggspec.load_spec("small64")
    assert (spec.name, spec.input_shape, vggspec.plan(spec).total_params) == ("small64", (64, 64, 3), 322_850)
    assert "small64" in shipped_names()


def test_default_spec_writes_out_the_table_column_d():
    assert [str(t) for t in vggspec.load_spec("vgg16").layers] == configuration_fields("D")["layers"]
    assert vggspec.load_spec("vgg16").preprocessing == "caffe"


def test_table_mirrors_the_paper():
    defaults, columns = load_table()
    assert list(columns) == ["A", "A-LRN", "B", "C", "D", "E"]
    weight_layers = {letter: sum(t.startswith(("conv", "FC")) for t in tokens) for letter, tokens in columns.items()}
    assert weight_layers == {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
    assert columns["C"].count("conv1-256") == 1 and columns["C"].count("conv1-512") == 2
    assert columns["A-LRN"][:3] == ["conv3-64", "LRN", "maxpool"]
    assert all(tokens[-4:] == ["FC-4096", "FC-4096", "FC-1000", "soft-max"] for tokens in columns.values())
    assert defaults["input_shape"] == [224, 224, 3] and defaults["dropout"] == 0.5
    plan = vggspec.plan("A-LRN")
    assert [layer.name for layer in plan.layers[1:4]] == ["block1_conv1", "block1_lrn", "block1_pool"]
    assert plan.layer("block1_lrn").config() == {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}
    assert plan.layer("fc1_dropout").config() == {"rate": 0.5, "follows": "fc1"}


def test_spec_round_trips_through_a_mapping():
    for name in ("vgg16", "vgg19_bn", "A-LRN"):
        spec = vggspec.load_spec(name)
        again = vggspec.spec_from_mapping(vggspec.spec_to_mapping(spec))
        assert vggspec.plan(again) == vggspec.plan(spec)


def test_shipped_specs_name_their_schema_for_editors():
    for path in sorted(SPECS.glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        schema = "table" if path.name == "vgg.yaml" else "spec"
        assert first == f"# yaml-language-server: $schema=schema/{schema}.schema.json", path
        assert (SPECS / "schema" / f"{schema}.schema.json").exists()


def test_all_problems_are_reported_with_positions(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text("name: two\nlayers: [conv3-64, maxpol]\nclasses: 0\n")
    with pytest.raises(SpecError) as caught:
        vggspec.load_spec(str(path))
    lines = str(caught.value).splitlines()
    assert lines == [
        f"{path}:2:20 $.layers[1]: expected a layer token in the paper's notation: convK-N (K×K kernel, "
        "N filters), LRN or maxpool, received 'maxpol'",
        f"{path}:3:10 $.classes: expected a number of classes ≥ 1, received 0",
    ]


def test_unknown_shipped_name_lists_the_names():
    with pytest.raises(SpecError, match=r"expected a spec file or a shipped name \(vgg11, .*received 'vgg17'"):
        vggspec.load_spec("vgg17")


def test_list_and_validate_commands(cli):
    listing = cli("list")
    assert listing.returncode == 0
    assert re.search(r"^vgg16_bn\s+16 weight layers\s+138,365,992\s+8,448\s+batch norm", listing.stdout, re.M)
    assert re.search(r"^C\s+16 weight layers\s+133,638,952\s+0", listing.stdout, re.M)
    assert re.search(r"^small64\s+6 weight layers\s+322,850\s+0\s+example, 64×64×3 input$", listing.stdout, re.M)
    ok = cli("validate", "vgg16", str(SPECS / "vgg11_bn.yaml"), "A-LRN")
    assert ok.returncode == 0 and ok.stdout.count(": ok (") == 3


def test_python_dash_m_and_help(cli):
    assert cli("--version").stdout.startswith("vggspec ")
    assert "summary" in cli("--help").stdout
    assert cli("summary").returncode == 2  # argparse: missing SPEC


def test_import_leaves_frameworks_out():
    import subprocess
    import sys

    code = (
        "import sys, vggspec; vggspec.plan('vgg16'); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'torch', 'h5py', 'jax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_yaml_1_2_scalars(tmp_path):
    """YAML 1.2 core schema, as editors and JSON read it: 1e-4 is a number, 010 is ten, no/on are strings."""
    path = tmp_path / "yaml12.yaml"
    path.write_text(
        "name: no\nlayers: [conv3-8, LRN, maxpool]\ninput_shape: [032, 0x20, 3]\nclasses: 010\n"
        "lrn: {alpha: 1e-4, beta: 0.75, k: 2}\nfc: [8]\n"
    )
    spec = vggspec.load_spec(str(path))
    assert spec.name == "no"
    assert spec.input_shape == (32, 32, 3) and spec.classes == 10
    assert spec.lrn.alpha == 1e-4 and isinstance(spec.lrn.alpha, float)
    assert vggspec.plan(spec).layer("block1_lrn").config() == {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2}
