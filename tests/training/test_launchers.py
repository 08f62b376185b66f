"""Which process of a run this is, as each framework's launcher says it (vggspec.training.distributed):
torchrun's RANK and WORLD_SIZE, TensorFlow's TF_CONFIG, Keras' KERAS_DISTRIBUTION_* variables; and the
one-line refusal of a launcher that a backend cannot join. TF_CONFIG is typed by people: fuzzed."""

from __future__ import annotations

import contextlib
import json
from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vggspec.errors import VggspecError
from vggspec.training.distributed import (
    KERAS_DISTRIBUTION,
    TF_CONFIG,
    TORCHRUN,
    launch_environment,
    launcher,
    per_process_batch,
    process_rank,
)

from conftest import SPECS, run_vggspec
from image_sets import make_image_set

LAUNCH_VARIABLES = (
    "RANK",
    "WORLD_SIZE",
    "TF_CONFIG",
    "KERAS_DISTRIBUTION_PROCESS_ID",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
)


@pytest.fixture
def environment(monkeypatch):
    """Set launch variables (and only those given) for one test."""
    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    def set_variables(**variables: object) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value if isinstance(value, str) else json.dumps(value))

    return set_variables


def cluster(workers: int, task: dict, chief: bool = False) -> dict:
    members = {"worker": [f"host{index}:2222" for index in range(workers)]}
    if chief:
        members["chief"] = ["chief:2222"]
    return {"cluster": members, "task": task}


def test_a_plain_process_is_rank_0_of_1(environment):
    environment()
    assert (launcher(), process_rank()) == (None, (0, 1))


def test_torchrun_sets_rank_and_world_size(environment):
    environment(RANK="3", WORLD_SIZE="4")
    assert (launcher(), process_rank()) == (TORCHRUN, (3, 4))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (cluster(2, {"type": "worker", "index": 1}), (1, 2)),
        (cluster(3, {"type": "worker", "index": 0}), (0, 3)),
        (cluster(2, {"type": "chief", "index": 0}, chief=True), (0, 3)),  # the chief is rank 0, workers follow
        (cluster(2, {"type": "worker", "index": 1}, chief=True), (2, 3)),
        (cluster(1, {"type": "worker", "index": 0}), (0, 1)),
    ],
)
def test_tf_config_names_the_rank_among_chief_and_workers(environment, config, expected):
    environment(TF_CONFIG=config)
    assert (launcher(), process_rank()) == (TF_CONFIG, expected)


@pytest.mark.parametrize("source", [TF_CONFIG, KERAS_DISTRIBUTION])
def test_the_variables_written_for_a_worker_name_that_worker(environment, source):
    addresses = ["10.0.0.1:1234", "10.0.0.2:1234", "10.0.0.3:1234"]
    for index in range(3):
        environment(**launch_environment(source, addresses, index))
        assert (launcher(), process_rank()) == (source, (index, 3))


def test_keras_distribution_variables_give_the_rank(environment):
    environment(KERAS_DISTRIBUTION_PROCESS_ID="1", KERAS_DISTRIBUTION_NUM_PROCESSES="2")
    assert (launcher(), process_rank()) == (KERAS_DISTRIBUTION, (1, 2))


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"TF_CONFIG": "{not json"}, r'TF_CONFIG: expected \{"cluster"'),
        ({"TF_CONFIG": {"cluster": {"worker": ["a:1"]}}}, r'TF_CONFIG: expected \{"cluster".*received'),
        ({"TF_CONFIG": cluster(2, {"type": "worker", "index": 2})}, "task worker 2 is not in the cluster, which has 2"),
        ({"TF_CONFIG": cluster(2, {"type": "ps", "index": 0})}, "at most one chief"),
        ({"TF_CONFIG": cluster(2, {"type": "worker", "index": "0"})}, "at most one chief"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK/WORLD_SIZE: expected 0 <= RANK < WORLD_SIZE, received 2/2"),
        ({"KERAS_DISTRIBUTION_PROCESS_ID": "x"}, "KERAS_DISTRIBUTION_PROCESS_ID/KERAS_DISTRIBUTION_NUM_PROCESSES"),
    ],
)
def test_bad_launch_variables_are_one_line_errors(environment, variables, message):
    environment(**variables)
    with pytest.raises(VggspecError, match=message) as caught:
        process_rank()
    assert "\n" not in str(caught.value)


@contextlib.contextmanager
def tf_config_only(text: str) -> Iterator[None]:
    """TF_CONFIG set to ``text``, and no other launch variable, within the block."""
    with pytest.MonkeyPatch.context() as patch:
        for name in LAUNCH_VARIABLES:
            patch.delenv(name, raising=False)
        patch.setenv("TF_CONFIG", text)
        yield


KEYS = st.sampled_from(["cluster", "task", "worker", "chief", "type", "index"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 5) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(JSON.map(json.dumps), st.text(max_size=40)))
def test_any_tf_config_gives_a_rank_or_one_line(text):
    """Whatever TF_CONFIG holds, the rank is one of the cluster's or the error is one line naming TF_CONFIG."""
    try:
        with tf_config_only(text.replace("\0", "") or "{}"):
            rank, world_size = process_rank()
    except VggspecError as error:
        assert str(error).startswith("TF_CONFIG: ") and "\n" not in str(error)
    else:
        assert 0 <= rank < world_size


@settings(max_examples=100, deadline=None)
@given(workers=st.integers(1, 6), chief=st.booleans(), data=st.data())
def test_every_task_of_a_cluster_has_its_own_rank(workers, chief, data):
    """The ranks of a cluster's tasks are 0 .. size-1, each once, the chief's (else worker 0's) first."""
    tasks = [{"type": "chief", "index": 0}] * chief + [{"type": "worker", "index": i} for i in range(workers)]
    ranks = []
    for task in data.draw(st.permutations(tasks)):
        with tf_config_only(json.dumps(cluster(workers, task, chief))):
            rank, world_size = process_rank()
        assert world_size == workers + chief
        ranks.append((rank, task["type"]))
    assert sorted(rank for rank, _ in ranks) == list(range(workers + chief))
    assert min(ranks)[1] == ("chief" if chief else "worker")


@pytest.fixture(scope="module")
def tiny_set(module_tmp):
    return make_image_set(module_tmp.mktemp("launch"), size=64, train_per_class=4, val_per_class=2, seed=5)


@pytest.mark.parametrize(
    ("backend", "variables", "message"),
    [
        ("torch", {"TF_CONFIG": json.dumps(cluster(2, {"type": "worker", "index": 0}))}, "expected torchrun to start"),
        ("keras", {"RANK": "0", "WORLD_SIZE": "2"}, "expected TF_CONFIG to start the 2 processes of a keras on"),
        ("keras", {"TF_CONFIG": json.dumps(cluster(2, {"type": "worker", "index": 1}))}, "2 processes (TF_CONFIG)"),
    ],
)
def test_a_backend_refuses_a_launcher_it_cannot_join(tiny_set, tmp_path, backend, variables, message):
    """torch joins the processes torchrun starts, Keras on TensorFlow those of TF_CONFIG: the other is one
    line (exit 2), not a hang waiting for peers that never come, and no run folder is left. Cached features
    are written by one process: refused with two, before the workers join."""
    run = tmp_path / "run"
    cached = ["--cache-features", "--augment", "none", "--freeze", "block3_pool", "--cache-dir", tmp_path / "cache"]
    result = run_vggspec(
        "finetune", SPECS / "examples" / "small64.yaml", "--data", tiny_set, "--backend", backend,
        "--epochs", 1, "--out", run, *(cached if "TF_CONFIG" in variables and backend == "keras" else []),
        env={"KERAS_BACKEND": "tensorflow", **variables}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr[-3000:]
    assert not run.exists()


@pytest.mark.parametrize(
    ("variables", "global_batch", "expected"),
    [
        ({}, 32, 32),
        ({"RANK": "1", "WORLD_SIZE": "4"}, 32, 8),
        ({"TF_CONFIG": cluster(3, {"type": "worker", "index": 2})}, 12, 4),
    ],
)
def test_a_global_batch_is_shared_equally_by_the_processes(environment, variables, global_batch, expected):
    environment(**variables)
    assert per_process_batch(global_batch) == expected


def test_a_global_batch_that_does_not_divide_is_one_line_before_anything_runs(tiny_set, tmp_path):
    run = tmp_path / "run"
    result = run_vggspec(
        "finetune", SPECS / "examples" / "small64.yaml", "--data", tiny_set, "--backend", "torch",
        "--global-batch-size", 15, "--out", run, env={"RANK": "0", "WORLD_SIZE": "2"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: --global-batch-size: expected a multiple of the run's 2 processes (torchrun), received 15"
    )
    assert not run.exists()
