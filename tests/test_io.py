"""Atomic writes: a failure (or a kill) mid-write leaves the old file whole and no litter."""
import json

import pytest

from ebm.io import atomic_path, write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"loss": 1.0})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"loss": ')          # half a file, then the process "dies"
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"loss": 1.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_successful_write_replaces_the_file_with_normal_permissions(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    write_json(target, {"loss": 1.0})
    write_json(target, {"loss": 2.0})
    assert json.loads(target.read_text()) == {"loss": 2.0}
    assert target.stat().st_mode & 0o044   # readable by others, not mkstemp's 0600
