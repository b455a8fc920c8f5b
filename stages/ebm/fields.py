"""One value of params.yaml: its type, its range or choices, and the one-line error when it is
wrong. `ebm.config` declares every field of the file with one of these; `ebm.params` checks them.

A value that differs between the scales is a mapping of every scale to its value
(`epochs: {cpu: 15, seed: 100}`): `Field.at_scale` picks the entry of the run's scale and
names it in the error (`experiments.final_training.epochs.cpu`).

A count of images held at once (`images=True`: buffer capacity, batch sizes, chains) must fit
in this machine's total RAM at 28*28*4 bytes an image: total, not available, so the verdict
does not change with the load of other jobs.
"""

import math
import os

from ebm.errors import ParamsError

SCALES = ("cpu", "seed")
IMAGE_BYTES = 28 * 28 * 4  # one float32 digit: the unit of every size check below


def physical_memory():
    """This machine's RAM in bytes: a count of images that needs more can never be held."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def size(n_bytes):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.1f} {unit}" if unit != "bytes" else f"{n_bytes} bytes"
        n_bytes /= 1024


class Field:
    """One leaf: its type, range or choices; `images`: a count of 28x28 float32 images held at
    once."""

    def __init__(
        self, kind, lo=None, hi=None, choices=None, optional=False, lo_open=False, images=False
    ):
        self.kind, self.lo, self.hi, self.choices = kind, lo, hi, choices
        self.optional, self.lo_open, self.images = optional, lo_open, images

    def describe(self):
        if self.choices:
            return ("a list of " if self.kind == "names" else "one of ") + " | ".join(
                map(str, self.choices)
            )
        what = {
            int: "an integer",
            float: "a number",
            bool: "true or false",
            str: "a string",
            "ints": "a list of integers",
            "counts": "a mapping of names to integers",
            "switch": "true, false or auto",
            "names": "a non-empty list of names",
            "numbers": "a non-empty list of numbers",
        }[self.kind]
        if self.lo is not None or self.hi is not None:
            left = "(" if self.lo_open else "["
            what += (
                f" in {left}{self.lo if self.lo is not None else '-inf'}, "
                f"{str(self.hi) + ']' if self.hi is not None else 'inf)'}"
            )
        return what + (" or null" if self.optional else "")

    def at_scale(self, value, path, scale):
        """A mapping of every scale to a value: this scale's value and key path; else as it is."""
        if not isinstance(value, dict) or (self.kind == "counts" and set(value) != set(SCALES)):
            return value, path
        # None: `scale` itself, which cannot vary by scale
        if set(value) != set(SCALES) or scale is None:
            raise ParamsError(
                f"params.yaml: {path} = {value!r}: must be {self.describe()}, or a mapping of each "
                f"scale ({', '.join(SCALES)}) to one"
            )
        return value[scale], f"{path}.{scale}"

    def check(self, value, path, scale):
        value, path = self.at_scale(value, path, scale)
        if self.kind == "counts" and isinstance(value, dict):  # each count may differ by scale too
            value = {k: Field(int).at_scale(v, f"{path}.{k}", scale)[0] for k, v in value.items()}
        if value is None and self.optional:
            return None
        ok_type = {
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value),
            bool: isinstance(value, bool),
            str: isinstance(value, str),
            "switch": isinstance(value, bool) or value == "auto",
            "ints": isinstance(value, list)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
            "counts": isinstance(value, dict)
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()),
            "names": isinstance(value, list) and value and all(isinstance(v, str) for v in value),
            "numbers": isinstance(value, list)
            and value
            and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in value
            ),
        }[self.kind]
        chosen = value if self.kind == "names" and isinstance(value, list) else [value]
        if not ok_type or (self.choices and any(v not in self.choices for v in chosen)):
            raise ParamsError(f"params.yaml: {path} = {value!r}: must be {self.describe()}")
        numbers = (
            value
            if self.kind in ("ints", "numbers", "names")
            else list(value.values())
            if self.kind == "counts"
            else [value]
        )
        for v in numbers:
            if isinstance(v, str):
                continue
            too_low = self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo)
            too_high = self.hi is not None and v > self.hi
            if too_low or too_high:
                raise ParamsError(f"params.yaml: {path} = {value!r}: must be {self.describe()}")
            if self.images and v * IMAGE_BYTES > physical_memory():
                raise ParamsError(
                    f"params.yaml: {path} = {value!r}: {v} images of 28x28 float32 take "
                    f"{size(v * IMAGE_BYTES)}, more than this machine's {size(physical_memory())} "
                    f"of memory"
                )
        return float(value) if self.kind is float else value


def positive_int(optional=False):
    return Field(int, lo=1, optional=optional)


def image_count():
    return Field(int, lo=1, images=True)


def fraction():
    return Field(float, lo=0.0, hi=1.0)


def non_negative():
    return Field(float, lo=0.0)


def positive():
    return Field(float, lo=0.0, lo_open=True)
