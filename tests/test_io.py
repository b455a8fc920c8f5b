"""Atomic writes: a failure (or a kill) mid-write leaves the old file whole and no litter."""

import json
import os

import pytest

from ebm.io import atomic_path, write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"loss": 1.0})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"loss": ')  # half a file, then the process "dies"
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"loss": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_successful_write_replaces_the_file_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    write_json(target, {"loss": 1.0})
    write_json(target, {"loss": 2.0})
    assert json.loads(target.read_text()) == {"loss": 2.0}
    assert target.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600


def test_a_full_disk_mid_checkpoint_keeps_the_old_file_and_says_so_in_one_line(
    tmp_path, monkeypatch
):
    import errno

    import torch

    from ebm.data import DataError
    from ebm.io import save_torch

    target = tmp_path / "checkpoint.pt"
    save_torch(target, {"epoch": 1, "weights": torch.ones(1000)})
    before = target.read_bytes()

    def half_then_full(obj, handle):  # the disk fills up halfway through the new checkpoint
        handle.write(before[: len(before) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_full)
    with pytest.raises(DataError) as caught:
        save_torch(target, {"epoch": 2, "weights": torch.zeros(1000)})
    assert (
        str(caught.value) == f"{target}: not written (No space left on device); "
        "the file is left as it was before this write"
    )
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's always-full /dev/full")
def test_a_real_write_error_is_an_os_error_torch_does_not_hide():
    """torch.save given a path reports a full disk as an opaque RuntimeError; save_torch writes
    through a Python file object, whose OSError atomic_path turns into the one line."""
    import torch

    with pytest.raises(OSError) as caught, open("/dev/full", "wb") as full:
        torch.save({"weights": torch.ones(100_000)}, full)
    assert caught.value.errno == 28
