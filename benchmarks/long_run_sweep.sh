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
# where DVC wants a key that params.yaml lacks written with a `+`: -S +long_run.seed=43.
# Needs what `dvc repro long_run` needs done: data/mnist.npz, checkpoints/final_training,
# checkpoints/judge, metrics/train/final_training.json. Writes, per trial, OUTDIR/NAME/ with the
# two stages' metrics, the generation's plots, the logs and times.json. A trial runs in
# OUTDIR/NAME/work until it ends: the same command after a kill resumes its training.
set -euo pipefail
out=$(realpath -m "$1"); shift
root=$(pwd)
mkdir -p "$out"
run_trial() {
  local name=$1; shift
  local dir="$out/$name/work"    # kept until the trial ends: a rerun after a kill resumes in it
  mkdir -p "$out/$name"
  if [ ! -f "$dir/params.yaml" ]; then
    mkdir -p "$dir"/checkpoints "$dir"/metrics/train
    cp -r "$root"/stages "$root"/data "$dir"/
    cp "$root"/matplotlibrc "$dir"/ 2>/dev/null || true
    cp -r "$root"/checkpoints/final_training "$root"/checkpoints/judge "$dir"/checkpoints/
    cp "$root"/metrics/train/final_training.json "$dir"/metrics/train/
    cp "$root"/metrics/data.json "$dir"/metrics/
    python - "$root/params.yaml" "$dir/params.yaml" "$@" <<'PY' || return 1
import sys, yaml
source, target, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
p = yaml.safe_load(open(source))
for override in overrides:
    path, value = override.split("=", 1)
    *parents, leaf = path.split(".")
    node = p
    for key in parents:
        node = node.setdefault(key, {})   # long_run holds only what it changes
    node[leaf] = yaml.safe_load(value)
yaml.safe_dump(p, open(target, "w"), sort_keys=False)
PY
  fi
  cd "$dir" || return 1
  printf '%s\n' "$@" > "$out/$name/overrides.txt"
  local start mid end
  start=$(date +%s)
  python stages/train.py long_run >> "$out/$name/train.log" 2>&1 || return 1   # resumes from its checkpoint
  mid=$(date +%s)
  cp metrics/train/long_run.json "$out/$name/train.json"
  cp plots/negatives/long_run.csv "$out/$name/negatives.csv"
  python stages/generate.py long_run > "$out/$name/generate.log" 2>&1 || return 1
  end=$(date +%s)
  cp metrics/generate/long_run.json "$out/$name/generate.json"
  cp -r plots/generate/long_run "$out/$name/plots"
  echo "{\"train_s\": $((mid - start)), \"generate_s\": $((end - mid))}" > "$out/$name/times.json"
  cd "$out" && rm -rf "$dir"
}
for trial in "$@"; do
  # shellcheck disable=SC2086  # a trial is a name followed by its overrides
  (run_trial $trial || echo "trial failed: $trial (its logs: $out/${trial%% *}/)" >&2) &
done
wait
