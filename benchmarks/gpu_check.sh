#!/usr/bin/env bash
# Every GPU check in one call: a lent GPU comes for minutes, once, so nothing is left for later.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the repository root (5-7 min, estimated)
#   SAMPLER=1 bash benchmarks/gpu_check.sh  # also benchmarks/sampler.py (bf16, compiled; about 2 more)
#
# 1. the unit tests of the module, the sampler's speed paths and the CUDA graph (the CUDA build
#    of torch on the CUDA machine; tests/test_graphs.py's CUDA tests compare graph and eager);
# 2. benchmarks/graphs.py: the CUDA graph vs the eager chain vs the tutorial loop at batch 128,
#    K = 60; one timed seed-scale epoch of each kind of training experiment through the stage's
#    own train_step, with the graph (a few eager iterations beside it); the seed-scale journey
#    projected from them; the four trained experiments in four processes at once vs one after
#    another. It ends with a PASS or FAIL line for each of issue 28's targets;
# 3. the training stage itself on CUDA, one small epoch per experiment kind, eager and with
#    `train.sampler.cuda_graph: auto`, in a scratch copy of the project.
# Results go to $OUT (the device tool's folder) or benchmarks/results/.
set -euo pipefail
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
export DVC_NO_ANALYTICS=1
root=$(pwd)
started=$SECONDS
{
  date -u
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

  echo "== 1. unit tests ($((SECONDS - started)) s)"
  python -m pytest -q -rs tests/test_module.py tests/test_sampler_speed_paths.py tests/test_graphs.py 2>&1 | tail -8

  echo "== 2. the chain as a CUDA graph ($((SECONDS - started)) s)"
  python benchmarks/graphs.py --out "$out/gpu_graphs.json" | tee "$out/gpu_graphs.log"
  if [ "${SAMPLER:-0}" = 1 ]; then
    python benchmarks/sampler.py --devices cuda --repeats "${REPEATS:-3}" --out "$out/gpu.json"
  fi

  echo "== 3. the training stage on the device, tiny ($((SECONDS - started)) s)"
  scratch=$(mktemp -d)
  cp -r stages params.yaml "$scratch/"
  cd "$scratch"
  python stages/data.py >/dev/null   # bundled digits at the CPU scale: no network needed
  python stages/judge.py >/dev/null 2>&1   # train.py scores its negatives with the judge (seconds here)
  for graph in false auto; do
    python - "$graph" <<'PY'
import sys, yaml
graph = {"false": False, "auto": "auto"}[sys.argv[1]]
p = yaml.safe_load(open("params.yaml"))
p["device"] = "auto"
p["train"]["sampler"].update(precision="fp32", compile=False, cuda_graph=graph)
p["train"].update(train_subset=1024, batch_size=128, sample_epochs=[1])
for name in ("loss_collapse", "final_training"):
    p["experiments"][name]["epochs"] = 1
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
    rm -rf checkpoints/loss_collapse checkpoints/final_training metrics/train   # the judge stays
    for exp in loss_collapse final_training; do
      echo "-- $exp, cuda_graph $graph"
      python stages/train.py "$exp" 2>&1 | tr "\r" "\n" | grep -v -E "it/s|s/it|^\s*$" | tail -2
      python -c "import json; m = json.load(open('metrics/train/$exp.json')); print({k: m[k] for k in ('status', 'device', 'iterations', 'wall_time_s', 'langevin_img_steps_per_s', 'final_loss')})"
    done
  done
  cd "$root"
  echo "== done in $((SECONDS - started)) s (target: within 480 s)"
  grep -h -E "^(PASS|FAIL)" "$out/gpu_graphs.log"
} 2>&1 | tee "$out/gpu_check.log"
