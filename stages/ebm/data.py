"""The digits file: one uncompressed .npz with x_train, y_train, x_test, y_test.

Images are uint8 (N, 28, 28), labels int64 in 0..9. `save_digits` writes it atomically
and returns a sha256 of its contents; `load_digits` checks everything a later stage
relies on (readable, right arrays, dtypes, shapes, label range, and the hash recorded in
metrics/data.json) and fails with a `DataError` that names the file and the problem.
"""

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np

from ebm import paths
from ebm.errors import DataError  # noqa: F401  (re-exported: stages import it from here)
from ebm.io import atomic_path

KEYS = ("x_train", "y_train", "x_test", "y_test")
IMAGE_SHAPE = (28, 28)
RERUN = "rerun `dvc repro data`"


def content_hash(arrays):
    """sha256 over each array's name, dtype, shape and bytes, in the fixed order of KEYS."""
    digest = hashlib.sha256()
    for key in KEYS:
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def check_digits(arrays, where):
    """Raise DataError unless `arrays` holds valid digits; `where` names the file in messages."""
    for key in KEYS:
        if key not in arrays:
            raise DataError(f"{where}: missing array {key!r} (has {sorted(arrays)}); {RERUN}")
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE:
            raise DataError(
                f"{where}: x_{split} is {x.dtype} {x.shape}, must be uint8 (N, 28, 28); {RERUN}"
            )
        if y.dtype not in (np.int64, np.uint8) or y.ndim != 1:
            raise DataError(
                f"{where}: y_{split} is {y.dtype} {y.shape}, must be int64 or uint8 (N,); {RERUN}"
            )
        if len(x) != len(y):
            raise DataError(
                f"{where}: x_{split} has {len(x)} images but y_{split} has {len(y)} labels; {RERUN}"
            )
        if len(x) == 0:
            raise DataError(f"{where}: the {split} split is empty; {RERUN}")
        if y.min() < 0 or y.max() > 9:
            raise DataError(
                f"{where}: y_{split} has labels outside 0..9 (min {y.min()}, max {y.max()}); "
                f"{RERUN}"
            )


def save_digits(path, x_train, y_train, x_test, y_test):
    """Write the digits atomically as one uncompressed .npz; return its content hash."""
    arrays = {
        "x_train": np.ascontiguousarray(x_train, dtype=np.uint8),
        "y_train": np.ascontiguousarray(y_train, dtype=np.int64),
        "x_test": np.ascontiguousarray(x_test, dtype=np.uint8),
        "y_test": np.ascontiguousarray(y_test, dtype=np.int64),
    }
    check_digits(arrays, path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:  # a file object: no ".npz" appended
        np.savez(handle, **arrays)
    return content_hash(arrays)


def load_digits(path=paths.DIGITS, record=paths.DIGITS_RECORD):
    """Load and check the digits; with `record` (when that file exists), verify the content hash."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: file not found; run `dvc repro data` (or `python stages/data.py`)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        ValueError,
        OSError,
        EOFError,
        KeyError,
    ) as err:
        reason = " ".join(str(err).split())  # one line, whatever the library wrote
        raise DataError(
            f"{path}: corrupt or truncated .npz ({type(err).__name__}: {reason}); {RERUN}"
        ) from None
    check_digits(arrays, path)
    if record is not None and Path(record).is_file():
        try:
            expected = json.loads(Path(record).read_text())["content_hash"]
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(
                f"{record}: unreadable record of {path} ({type(err).__name__}: {err}); {RERUN}"
            ) from None
        actual = content_hash(arrays)
        if actual != expected:
            raise DataError(
                f"{path}: contents do not match the hash recorded in {record} ({actual[:12]}… != "
                f"{str(expected)[:12]}…); the file was changed or replaced after the data stage "
                f"ran; {RERUN}"
            )
    return {
        "x_train": arrays["x_train"],
        "y_train": arrays["y_train"].astype(np.int64, copy=False),
        "x_test": arrays["x_test"],
        "y_test": arrays["y_test"].astype(np.int64, copy=False),
    }


def to_unit_range(images_uint8):
    """uint8 images (N, 28, 28) -> float32 tensor (N, 1, 28, 28) in [-1, 1]."""
    import torch

    images = torch.as_tensor(np.asarray(images_uint8))
    if images.dtype != torch.uint8 or images.ndim != 3:
        raise ValueError(
            f"to_unit_range: expected uint8 (N, 28, 28), got {images.dtype} {tuple(images.shape)}"
        )
    return images.unsqueeze(1).float().div_(127.5).sub_(1.0)
