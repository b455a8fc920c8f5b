"""Checkpoints are data, not code: written as plain values, read with torch.load(weights_only=True).

A pickle may hold any object, and unpickling an object runs whatever its class says: a
checkpoint passed around (a shared run, a DVC remote) could run code on the machine that
loads it. torch's weights_only loader rebuilds only tensors, numbers, strings, lists,
tuples and dicts and refuses the rest, so that is all a checkpoint may hold: `save_checkpoint`
turns NumPy values into those and refuses anything else when it writes, not when a later
stage reads. A file that cannot be read (truncated, corrupt, another format, or an older
checkpoint that held NumPy arrays) stops the stage in one line naming the file and the
command that rebuilds it (a DataError, see ebm.stage.run_stage).
"""

import pickle
import re
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ebm.data import DataError
from ebm.io import save_torch

_ATOMS = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    torch.Tensor,
    torch.Size,
    torch.dtype,
    torch.device,
)


def plain(obj, where="checkpoint"):
    """`obj` with NumPy arrays as tensors and NumPy scalars as Python numbers; a TypeError naming
    the entry (`where`) for any other object torch.load(weights_only=True) would refuse."""
    if isinstance(obj, np.generic):  # before _ATOMS: np.float64 is a float, but pickles as NumPy's
        return obj.item()
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError(f"{where}: a NumPy array of Python objects cannot go in a checkpoint")
        return torch.from_numpy(np.ascontiguousarray(obj).copy())
    if isinstance(obj, _ATOMS):
        return obj
    if type(obj) in (list, tuple):  # not a subclass (a namedtuple pickles as its class)
        return type(obj)(plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, dict):  # OrderedDict stays one, with a state_dict's _metadata
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            out[plain(k, where)] = plain(v, f"{where}[{k!r}]")
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    raise TypeError(
        f"{where}: a {type(obj).__module__}.{type(obj).__qualname__} cannot go in a checkpoint "
        f"(torch.load(weights_only=True) reads tensors, numbers, strings, lists and dicts only)"
    )


def save_checkpoint(path, obj):
    """Write `obj` atomically as plain data (see `plain`)."""
    save_torch(path, plain(obj))


def retrain(folder):
    """The command that trains afresh the experiment whose checkpoints are in `folder`. Not
    `dvc repro -f` alone: the folder is a persistent output, which DVC keeps, and train.py
    would try to resume from it again."""
    name = Path(folder).name
    stage = name if name == "long_run" else f"train@{name}"  # dvc.yaml's stage names
    return f"to train it afresh: `rm -r {folder} && dvc repro {stage}`"


def load_checkpoint(path, device, remedy):
    """torch.load(path, weights_only=True) onto `device`; a DataError in one line naming `path`
    and `remedy` (the command that rebuilds it) when the file cannot be read."""
    if not Path(path).is_file():
        raise DataError(f"{path}: file not found; {remedy}")
    # torch.save writes a zip, whose directory is at its end: a cut file has none. (Given bytes
    # that are no zip, torch would try its pre-1.6 format, and the unpickler fails in any of a
    # dozen ways: KeyError, IndexError, ...)
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: truncated or not a checkpoint (no whole zip archive); {remedy}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if refused:  # the loader stopped at it: nothing of the file was built or run
            raise DataError(
                f"{path}: holds {refused.group(1)}, not only tensors, numbers, strings, lists and "
                f"dicts (an older checkpoint format, or not a checkpoint of this project); not "
                f"loaded; {remedy}"
            ) from None
        reason = str(err).split("WeightsUnpickler error:")[-1].split("Check the documentation")[0]
        raise DataError(
            f"{path}: corrupt ({_first_line(reason) or 'unreadable pickle'}); {remedy}"
        ) from None
    except (
        EOFError,
        IndexError,
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        struct.error,
        OSError,
        zipfile.BadZipFile,
    ) as err:  # a damaged record inside a whole archive
        raise DataError(
            f"{path}: corrupt ({type(err).__name__}: {_first_line(err)}); {remedy}"
        ) from None
    except RuntimeError as err:  # torch's zip reader (PytorchStreamReader) on a damaged archive
        if "PytorchStreamReader" not in str(err) and "corrupt" not in str(err):
            raise
        raise DataError(f"{path}: corrupt ({_first_line(err)}); {remedy}") from None


def _first_line(message):
    """The gist of a library's error message: its first sentence, on one line."""
    return " ".join(str(message).split()).split(". ")[0].rstrip(".")
