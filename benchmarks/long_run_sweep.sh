#!/usr/bin/env bash
# The long run's settings, several at once on one GPU: each trial trains `long_run` from exp 5's
# checkpoint in a scratch copy of the project and generates from it (stage scripts, no DVC, so it
# runs where DVC is not installed). Every trial runs in parallel: one trial leaves a GPU nearly idle.
#
#   bash benchmarks/long_run_sweep.sh OUTDIR 'NAME key.path=value ...' ...
#   bash benchmarks/long_run_sweep.sh /tmp/sweep 'E12 long_run.epochs.cpu=12' 'L3 long_run.optim.lr=3.2e-4'
#
# A trial's overrides are `dvc exp run -S` ones (values parsed as YAML; the stages reject unknown
# keys), so each trial is also
#   dvc exp run -S long_run.epochs.cpu=12 ...
# Needs what `dvc repro long_run` needs done: data/mnist.npz, checkpoints/final_training,
# checkpoints/judge, metrics/train/final_training.json. Writes, per trial, OUTDIR/NAME/ with the
# two stages' metrics, the generation's plots, the logs and times.json.
set -euo pipefail
out=$(realpath -m "$1"); shift
root=$(pwd)
mkdir -p "$out"
run_trial() {
  local name=$1; shift
  local dir
  dir=$(mktemp -d)
  cp -r "$root"/stages "$root"/params.yaml "$root"/data "$dir"/
  cp "$root"/matplotlibrc "$dir"/ 2>/dev/null || true
  mkdir -p "$dir"/checkpoints "$dir"/metrics/train "$out/$name"
  cp -r "$root"/checkpoints/final_training "$root"/checkpoints/judge "$dir"/checkpoints/
  cp "$root"/metrics/train/final_training.json "$root"/metrics/data.json "$dir"/metrics/ 2>/dev/null || true
  mv "$dir"/metrics/final_training.json "$dir"/metrics/train/
  cd "$dir" || return 1
  python - "$@" <<'PY'
import sys, yaml
p = yaml.safe_load(open("params.yaml"))
for override in sys.argv[1:]:
    path, value = override.split("=", 1)
    *parents, leaf = path.split(".")
    node = p
    for key in parents:
        node = node[key]
    node[leaf] = yaml.safe_load(value)
yaml.safe_dump(p, open("params.yaml", "w"), sort_keys=False)
PY
  [ $? -eq 0 ] || return 1
  printf '%s\n' "$@" > "$out/$name/overrides.txt"
  local start mid end
  start=$(date +%s)
  python stages/train.py long_run > "$out/$name/train.log" 2>&1 || return 1
  mid=$(date +%s)
  cp metrics/train/long_run.json "$out/$name/train.json"
  cp plots/negatives/long_run.csv "$out/$name/negatives.csv"
  python stages/generate.py long_run > "$out/$name/generate.log" 2>&1 || return 1
  end=$(date +%s)
  cp metrics/generate/long_run.json "$out/$name/generate.json"
  cp -r plots/generate/long_run "$out/$name/plots"
  echo "{\"train_s\": $((mid - start)), \"generate_s\": $((end - mid))}" > "$out/$name/times.json"
  rm -rf "$dir"
}
for trial in "$@"; do
  # shellcheck disable=SC2086  # a trial is a name followed by its overrides
  (run_trial $trial || echo "trial failed: $trial (its logs: $out/${trial%% *}/)" >&2) &
done
wait
