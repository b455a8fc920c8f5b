"""Atomic writes: a stage killed at any moment leaves either the old file or the new one.

Every output goes to a temporary file in the same folder and is renamed into place;
`os.replace` is atomic on POSIX within one filesystem. A write that fails (a full disk,
a read-only folder) leaves the old file as it was and stops the stage in one line.
"""

import contextlib
import json
import os
import socket
import tempfile
import threading
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    An OSError on the way (ENOSPC, EACCES, ...) becomes a DataError naming `path`, which the
    stage reports in one line (ebm.stage.run_stage) instead of a traceback."""
    from ebm.data import DataError  # (ebm.data imports this module)

    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give outputs the usual permissions
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        if isinstance(err, OSError):
            raise DataError(
                f"{path}: not written ({err.strerror or err}); the file is left as it was before "
                f"this write"
            ) from None
        raise


def write_json(path, obj):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path, frame):
    """Write a pandas DataFrame as CSV (the format `dvc plots` reads)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_torch(path, obj):
    """torch.save, atomically. Through a Python file object: then a full disk is an OSError
    (torch's own writer, given a path, reports it as an opaque RuntimeError), and the bytes do
    not depend on the temporary file's random name (torch names the archive after the file)."""
    import torch

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)


class TooLate(Exception):
    """`within_deadline`'s work did not finish in time."""


def within_deadline(work, socket_timeout_s, deadline_s):
    """work() (a download) in a daemon thread, each socket it opens timing out after
    socket_timeout_s (torchvision's urlopen calls take no timeout of their own), awaited for
    deadline_s at most: its value, or the exception it raised, or TooLate. A late thread is
    abandoned: a daemon thread dies with the process."""
    outcome = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(socket_timeout_s)
    try:
        worker = threading.Thread(target=run, name="download", daemon=True)
        worker.start()
        worker.join(deadline_s)
    finally:
        socket.setdefaulttimeout(previous)
    if worker.is_alive():
        raise TooLate(f"no complete download within {deadline_s:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def round_figure(v, digits=4):
    """One figure for a metrics file: a float (a numpy or torch scalar too) rounded to `digits`,
    NaN as None and no -0.0; a list item by item; ints, strings and None as they are."""
    if isinstance(v, list):
        return [round_figure(x, digits) for x in v]
    if hasattr(v, "item") and not isinstance(v, (int, float)):  # numpy, torch
        v = v.item()
    if isinstance(v, float):
        return None if v != v else round(v, digits) + 0.0
    return v


def rounded(figures, digits=4, drop_missing=False):
    """A dict of figures, each `round_figure`d; drop_missing: without those that are None or
    NaN."""
    out = {k: round_figure(v, digits) for k, v in figures.items()}
    return {k: v for k, v in out.items() if v is not None} if drop_missing else out
