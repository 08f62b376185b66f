"""download() and the weight registry against a real HTTP server on 127.0.0.1 (tests/http_server.py)."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest

from vggspec.download import download, partial_path
from vggspec.errors import DownloadError, WeightsError
from vggspec.spec.load import load_spec
from vggspec.weights import registry
from vggspec.weights.registry import REGISTRY, WeightFile, WeightRegistry, fetch_file

from cli_cases import one_line
from http_server import FileServer

FILE_BYTES = 300_000
CUT = 100_000


@pytest.fixture
def payload(tmp_path):
    """A folder served over HTTP holding ``file.bin`` (300,000 random bytes); returns (folder, bytes, md5)."""
    folder = tmp_path / "served"
    folder.mkdir()
    data = np.random.default_rng(7).integers(0, 256, FILE_BYTES, dtype=np.uint8).tobytes()
    (folder / "file.bin").write_bytes(data)
    return folder, data, hashlib.md5(data).hexdigest()


def test_full_download_checks_size_and_md5(tmp_path, payload):
    folder, data, md5 = payload
    dest = tmp_path / "out" / "file.bin"
    with FileServer(folder) as server:
        assert download(server.url("file.bin"), dest, size=FILE_BYTES, md5=md5, progress=False) == dest
    assert dest.read_bytes() == data
    assert not partial_path(dest).exists()
    assert [(r.range, r.status, r.sent) for r in server.requests] == [(None, 200, FILE_BYTES)]


def test_interrupted_transfer_resumes_with_range(tmp_path, payload):
    folder, data, md5 = payload
    dest = tmp_path / "file.bin"
    with FileServer(folder) as server:
        server.cut_next_after(CUT)
        download(server.url("file.bin"), dest, size=FILE_BYTES, md5=md5, progress=False)
    assert [(r.range, r.status, r.sent) for r in server.requests] == [
        (None, 200, CUT),
        (f"bytes={CUT}-", 206, FILE_BYTES - CUT),
    ]
    assert dest.read_bytes() == data


def test_partial_file_is_kept_and_resumed_by_the_next_call(tmp_path, payload):
    folder, data, md5 = payload
    dest = tmp_path / "file.bin"
    with FileServer(folder) as server:
        server.cut_next_after(CUT)
        with pytest.raises(DownloadError, match="run again to resume") as failure:
            download(server.url("file.bin"), dest, md5=md5, progress=False, attempts=1)
        assert "\n" not in str(failure.value) and server.url("file.bin") in str(failure.value)
        assert not dest.exists()
        assert partial_path(dest).read_bytes() == data[:CUT]
        download(server.url("file.bin"), dest, md5=md5, progress=False)
    assert server.requests[-1].range == f"bytes={CUT}-" and server.requests[-1].status == 206
    assert dest.read_bytes() == data and not partial_path(dest).exists()


def test_complete_partial_file_is_finished_without_a_transfer(tmp_path, payload):
    folder, data, md5 = payload
    dest = tmp_path / "file.bin"
    partial_path(dest).write_bytes(data)
    with FileServer(folder) as server:
        download(server.url("file.bin"), dest, md5=md5, progress=False)  # size unknown: asks, gets 416
    assert [(r.range, r.status) for r in server.requests] == [(f"bytes={FILE_BYTES}-", 416)]
    assert dest.read_bytes() == data


def test_server_that_ignores_range_restarts_cleanly(tmp_path, payload):
    folder, data, md5 = payload
    dest = tmp_path / "file.bin"
    with FileServer(folder, ignore_range=True) as server:
        server.cut_next_after(CUT)
        download(server.url("file.bin"), dest, size=FILE_BYTES, md5=md5, progress=False)
    assert [(r.range, r.status, r.sent) for r in server.requests] == [
        (None, 200, CUT),
        (f"bytes={CUT}-", 200, FILE_BYTES),
    ]
    assert dest.read_bytes() == data  # not the first 100,000 bytes twice


def test_wrong_md5_removes_the_download_and_keeps_the_old_file(tmp_path, payload):
    folder, data, md5 = payload
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"the file that was there")
    with FileServer(folder) as server, pytest.raises(DownloadError) as failure:
        download(server.url("file.bin"), dest, md5="0" * 32, progress=False)
    message = str(failure.value)
    assert message.startswith("file.bin: md5 expected " + "0" * 32 + f", received {md5}")
    assert dest.read_bytes() == b"the file that was there"
    assert not partial_path(dest).exists()


def test_wrong_size_is_refused_before_the_transfer(tmp_path, payload):
    folder, _, _ = payload
    dest = tmp_path / "file.bin"
    with (
        FileServer(folder) as server,
        pytest.raises(DownloadError, match="expected 1,000 bytes, the server at .* reports 300,000"),
    ):
        download(server.url("file.bin"), dest, size=1000, progress=False)
    assert not dest.exists() and not partial_path(dest).exists()


def test_404_names_the_url(tmp_path, payload):
    folder, _, _ = payload
    dest = tmp_path / "missing.bin"
    with FileServer(folder) as server:
        url = server.url("missing.bin")
        with pytest.raises(DownloadError) as failure:
            download(url, dest, progress=False)
    assert str(failure.value) == f"cannot download {url}: HTTP 404 Not Found"
    assert not dest.exists() and not partial_path(dest).exists()


def test_unreachable_port_is_one_line_with_the_reason(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/file.bin"
    with pytest.raises(DownloadError) as failure:
        download(url, tmp_path / "file.bin", progress=False)
    message = str(failure.value)
    assert message.startswith(f"cannot download {url}: ") and "refused" in message.lower()
    assert "\n" not in message and not (tmp_path / "file.bin").exists()


# --- the registry ---------------------------------------------------------------------------------


def test_registry_holds_the_keras_files():
    assert REGISTRY.names()[:4] == ["vgg16", "vgg16_notop", "vgg19", "vgg19_notop"]
    assert [entry.origin for entry in REGISTRY][:5] == ["keras-applications"] * 4 + ["torchvision"]
    vgg16, notop = REGISTRY["vgg16"], REGISTRY["vgg16_notop"]
    assert vgg16.file_name == "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    assert vgg16.url == (
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    )
    assert (vgg16.size, vgg16.md5) == (553_467_096, "64373286793e3c8b2b4e3219cbf3544b")
    assert (notop.size, notop.md5, notop.include_top) == (58_889_256, "6d6bbae143d832006294945121d1f1fc", False)
    assert REGISTRY["vgg19_notop"].url.endswith("/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert (REGISTRY["vgg19"].size, REGISTRY["vgg19"].md5) == (None, "cbe5617147190e668d6c5d5026f83318")
    for weight_file in list(REGISTRY)[:4]:
        spec = load_spec(weight_file.spec)  # a shipped spec
        assert (spec.name, spec.preprocessing, weight_file.preprocessing) == (weight_file.spec, "caffe", "caffe")
        assert len(weight_file.md5) == 32 and int(weight_file.md5, 16) >= 0


def test_registry_refuses_duplicates_and_lists_names_for_unknown_ones():
    fresh = WeightRegistry()
    entry = REGISTRY["vgg16"]
    fresh.register(entry)
    with pytest.raises(ValueError, match="already registered under the name 'vgg16'"):
        fresh.register(entry)
    with pytest.raises(WeightsError, match="unknown weight file 'vgg17'; expected one of: vgg16, vgg16_notop"):
        REGISTRY["vgg17"]


def test_fetch_downloads_once_into_the_cache(tmp_path, payload, monkeypatch):
    folder, data, md5 = payload
    monkeypatch.setenv("VGGSPEC_HOME", str(tmp_path / "home"))
    weight_file = WeightFile(
        name="test",
        file_name="test_weights.h5",
        url="http://127.0.0.1:9/unused",
        size=FILE_BYTES,
        md5=md5,
        spec="vgg16",
        include_top=True,
    )
    with FileServer(folder) as server:
        first = fetch_file(weight_file, url=server.url("file.bin"), progress=False)
        second = fetch_file(weight_file, url=server.url("file.bin"), progress=False)
    assert first == second == tmp_path / "home" / "weights" / "test_weights.h5"
    assert first.read_bytes() == data
    assert len(server.requests) == 1  # the second call found the cached file
    assert registry.cached_path(weight_file) == first


def test_cli_fetch_with_wrong_md5_exits_2_and_leaves_nothing(tmp_path, payload, cli):
    folder, _, md5 = payload
    home = tmp_path / "home"
    with FileServer(folder) as server:
        result = cli(
            "weights", "fetch", "vgg19_notop", "--url", server.url("file.bin"), env={"VGGSPEC_HOME": str(home)}
        )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        "error: vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5: md5 expected "
        f"253f8cb515780f3b799900260a226db6, received {md5}"
    )
    assert list((home / "weights").iterdir()) == []


def test_cli_fetch_with_wrong_size_and_404_exit_2(tmp_path, payload, cli):
    folder, _, _ = payload
    env = {"VGGSPEC_HOME": str(tmp_path / "home")}
    with FileServer(folder) as server:
        wrong_size = cli("weights", "fetch", "vgg16_notop", "--url", server.url("file.bin"), env=env)
        missing = cli("weights", "fetch", "vgg16", "--url", server.url("nothing.h5"), env=env)
    assert wrong_size.returncode == 2 and "Traceback" not in wrong_size.stderr
    assert wrong_size.stderr.strip() == (
        f"error: vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5: expected "
        f"58,889,256 bytes, the server at {server.url('file.bin')} reports 300,000"
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: cannot download {server.url('nothing.h5')}: HTTP 404 Not Found"
    assert list((tmp_path / "home" / "weights").iterdir()) == []


@pytest.mark.parametrize("where", ["under a file", "under /proc"])
def test_cli_fetch_into_a_cache_that_cannot_be_written_is_refused_before_the_download(where, tmp_path, payload, cli):
    """VGGSPEC_HOME under a file, or under /proc: one line naming VGGSPEC_HOME, no request, nothing made. (The
    tests run as root, which writes into a read-only folder: permissions cannot make a folder unwritable here.)"""
    folder, _, _ = payload
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    home = tmp_path / "notes.txt" / "vggspec" if where == "under a file" else Path("/proc/vggspec-no-such-folder")
    problem = {
        "under a file": f"a path under the file {tmp_path / 'notes.txt'}",
        "under /proc": "one where the folder cannot be made (No such file or directory)",
    }[where]
    before = sorted(tmp_path.rglob("*"))
    with FileServer(folder) as server:
        result = cli(
            "weights", "fetch", "vgg16_notop", "--url", server.url("file.bin"), env={"VGGSPEC_HOME": str(home)}
        )
    assert one_line(result) == (
        f"error: {home / 'weights'} (the download folder under VGGSPEC_HOME={home}): expected a writable folder, "
        f"received {problem}"
    )
    assert server.requests == []
    assert sorted(tmp_path.rglob("*")) == before and not home.exists()


def test_cli_fetch_prints_the_cached_path_and_list_shows_it(tmp_path, cli):
    home = tmp_path / "home"
    cached = home / "weights" / REGISTRY["vgg19_notop"].file_name  # size unknown: any file there counts
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"already here")
    env = {"VGGSPEC_HOME": str(home)}
    fetched = cli("weights", "fetch", "vgg19_notop", "--url", "http://127.0.0.1:9/never-asked", env=env)
    assert (fetched.returncode, fetched.stdout.strip()) == (0, str(cached))
    listed = cli("weights", "list", env=env)
    assert listed.returncode == 0
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:21]}
    assert rows["vgg19_notop"][-1] == "yes" and rows["vgg16"][-1] == "no"
    assert rows["vgg16"][1:6] == [
        "keras-applications",
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        "553,467,096",
        "md5",
        "64373286793e3c8b2b4e3219cbf3544b",
    ]
    assert rows["vgg16_bn_torchvision"][1:] == [
        "torchvision",
        "vgg16_bn-6c64b313.pth",
        "unknown",
        "sha256",
        "6c64b313…",
        "vgg16_bn",
        "torch",
        "no",
    ]
    assert rows["vgg16_timm"][1:4] == ["hub", "timm/vgg16.tv_in1k/model.safetensors", "unknown"]
    assert f"cache: {home / 'weights'}" in listed.stdout
