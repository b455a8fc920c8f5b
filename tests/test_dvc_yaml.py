"""dvc.yaml against the code and params.yaml, read as files (no DVC run).

* every stage's deps cover the `ebm` modules its script imports, transitively;
* every stage but check_params depends on check_params' output;
* each curve overlays exactly params.yaml's experiments, in their order, then long_run.
* every output ebm.paths names for the code is one dvc.yaml declares, and no other.
"""

import re

import pytest
import yaml

from ebm import paths
from pipeline_repo import EXPERIMENTS, ROOT

DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = {name: stage.get("do", stage) for name, stage in DVC_YAML["stages"].items()}
IMPORT = re.compile(r"^\s*from ebm(?:\.(\w+))? import ([\w, ]+)", re.MULTILINE)


def ebm_imports(path, seen=None):
    """stages/ebm/*.py files `path` imports (`from ebm.x import` or `from ebm import x`),
    transitively."""
    seen = set() if seen is None else seen
    for module, names in IMPORT.findall(path.read_text()):
        for name in [module] if module else [n.strip() for n in names.split(",")]:
            target = ROOT / "stages/ebm" / f"{name}.py"
            if target.is_file() and target not in seen:
                seen.add(target)
                ebm_imports(target, seen)
    return seen


def covered(path, deps):
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == dep or rel.startswith(dep.rstrip("/") + "/") for dep in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_deps_cover_what_the_script_imports(name):
    stage = STAGES[name]
    script = ROOT / re.search(r"python (stages/\w+\.py)", stage["cmd"]).group(1)
    needed = {script, *ebm_imports(script)}
    assert len(needed) > 1 or name == "check_params"
    missing = sorted(
        p.relative_to(ROOT).as_posix() for p in needed if not covered(p, stage["deps"])
    )
    assert not missing, f"stage {name} imports {missing} but does not depend on them"


def test_the_import_scan_sees_lazy_and_package_imports():
    found = {p.name for p in ebm_imports(ROOT / "stages/train.py")}
    assert {"distributed.py", "runtime.py", "params.py", "data.py", "io.py"} <= found


@pytest.mark.parametrize("name", sorted(set(STAGES) - {"check_params"}))
def test_every_stage_waits_for_check_params(name):
    assert STAGES[name]["deps"][0] == "checks/params.ok"


def test_one_stage_per_experiment_from_params_yaml():
    for name in ("train", "evaluate"):
        assert DVC_YAML["stages"][name]["foreach"] == "${experiments}"
    assert "initial_attempt" not in yaml.safe_dump(DVC_YAML["stages"])  # named in params.yaml only


def test_curves_overlay_every_experiment():
    curves = [
        props
        for plot in DVC_YAML["plots"]
        if isinstance(plot, dict)
        for props in plot.values()
        if isinstance(props.get("y"), dict)
    ]
    folders = [next(iter(curve["y"])).rsplit("/", 1)[0] for curve in curves]
    assert folders == ["plots/train"] * 7 + ["plots/negatives"] * 2 + ["plots/generated"] * 3
    for folder, curve in zip(folders, curves):
        assert list(curve["y"]) == [f"{folder}/{name}.csv" for name in [*EXPERIMENTS, "long_run"]]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_the_code_writes_what_dvc_yaml_declares(name):
    """ebm.paths names every output once for the code; dvc.yaml must declare the same, in order."""
    stage = STAGES[name]
    declared = [
        next(iter(out)) if isinstance(out, dict) else out
        for out in [*stage.get("outs", []), *stage.get("metrics", [])]
    ]
    key = {"long_run": "long_run", "abilities": "${item}"}.get(name, "${key}")
    written = paths.OUTPUTS["train" if name == "long_run" else name](key)
    assert [p.as_posix() for p in written] == declared
