#!/usr/bin/env bash
# Every GPU check in one call: a lent GPU comes for minutes, once, so nothing is left for later.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from the repository root
#   REPEATS=3 bash benchmarks/gpu_check.sh  # quicker
#
# 1. the unit tests of the module (the CUDA build of torch on the CUDA machine);
# 2. the sampler benchmark: tutorial loop vs the project's sampler (fp32, bf16, compiled),
#    one full seed-scale epoch of exp 5 timed, the seed-scale journey projected;
# 3. the training stage itself on CUDA, a few iterations per experiment kind, with the
#    default path and with bf16 + torch.compile, in a scratch copy of the project.
# Results go to $OUT (the device tool's folder) or benchmarks/results/.
set -euo pipefail
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
export DVC_NO_ANALYTICS=1
{
  date -u
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"

  echo "== 1. unit tests"
  python -m pytest -q tests/test_module.py tests/test_sampler_speed_paths.py 2>&1 | tail -3

  echo "== 2. benchmark"
  python benchmarks/sampler.py --devices cuda --repeats "${REPEATS:-9}" --out "$out/gpu.json"

  echo "== 3. the training stage on the device, tiny"
  scratch=$(mktemp -d)
  cp -r stages params.yaml "$scratch/"
  cd "$scratch"
  python stages/data.py >/dev/null   # bundled digits at the CPU scale: no network needed
  for variant in "fp32 false" "bf16 true"; do
    set -- $variant
    python - "$1" "$2" <<'EOF'
import sys, yaml
precision, compiled = sys.argv[1], sys.argv[2] == "true"
p = yaml.safe_load(open("params.yaml"))
p["device"] = "auto"
p["train"]["sampler"].update(precision=precision, compile=compiled)
p["train"].update(train_subset=1024, batch_size=128, sample_epochs=[1])
for name in ("mode_collapse", "final_training"):
    p["experiments"][name]["epochs"] = 1
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
EOF
    rm -rf checkpoints metrics/train
    for exp in mode_collapse final_training; do
      echo "-- $exp, precision $1, compile $2"
      python stages/train.py "$exp" 2>&1 | tr "\r" "\n" | grep -v -E "it/s|s/it|^\s*$" | tail -2
      python -c "import json; m = json.load(open('metrics/train/$exp.json')); print({k: m[k] for k in ('status', 'device', 'iterations', 'wall_time_s', 'langevin_img_steps_per_s', 'final_loss')})"
    done
  done
} 2>&1 | tee "$out/gpu_check.log"
