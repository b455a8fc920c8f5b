"""The generation's figures per training seed, as a Markdown table (docs/experiments.md).

Usage: python tools/seed_table.py [--verdicts seeds/verdicts.csv] [NAME ...]
Each NAME is a DVC experiment (`dvc exp run --queue -n seed44 -S train.seed=44`, then
`dvc queue start`), read from its git ref; `workspace` reads the files on disk. One row per
experiment and generating model: classes read and read entropy at steps 1,000 / 5,000 /
20,000, what the drift checks keep from step 1,000, read at 20,000 and the checks failed.
--verdicts also writes every step's verdict per run (metrics/headline.json) to a CSV, the small
committed file the report reads to say on how many seeds each claim holds.
"""

import csv
import json
import subprocess
import sys

import yaml

MODELS = ("final_training", "long_run")
STEPS = ("1000", "5000", "20000")


def read(name, path):
    """Text of `path` in experiment `name` (its git ref), or on disk for `workspace`."""
    if name == "workspace":
        with open(path) as f:
            return f.read()
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    found = [line.split()[1] for line in refs if line and line.split()[0].endswith(f"/{name}")]
    if not found:
        raise SystemExit(f"no experiment named {name} (dvc exp list)")
    return subprocess.run(
        ["git", "show", f"{found[-1]}:{path}"], capture_output=True, text=True, check=True
    ).stdout


def row(name, model):
    seed = yaml.safe_load(read(name, "params.yaml"))["train"]["seed"]
    gen = json.loads(read(name, f"metrics/generate/{model}.json"))
    snaps, checks = gen["snapshots"], gen["verdict"]["checks"]
    per_step = " / ".join
    return [
        name,
        str(seed),
        model,
        str(gen["chains"]),
        per_step(str(snaps[s]["recognised_classes"]) for s in STEPS),
        per_step(f"{snaps[s]['recognised_entropy']:.2f}" for s in STEPS),
        f"{checks['coverage_kept']['value']:.2f}x",
        f"{checks['density_kept']['value']:.2f}x",
        f"{checks['fld_kept']['value']:.2f}x",
        f"{snaps['20000']['recognisable']:.2f}",
        ", ".join(k for k, c in checks.items() if not c["passed"]) or "none",
    ]


def verdicts(name):
    """Every step's verdict in experiment `name`, from its metrics/headline.json."""
    headline = json.loads(read(name, "metrics/headline.json"))
    row = {"run": name, "train_seed": yaml.safe_load(read(name, "params.yaml"))["train"]["seed"]}
    row.update({k.split("_", 1)[1]: v["verdict"] for k, v in headline.items() if v.get("verdict")})
    model = next((v["model"] for v in headline.values() if v.get("model")), None)
    if model and row.get("generation"):  # which of the generation's checks failed, if any did
        checks = json.loads(read(name, f"metrics/generate/{model}.json"))["verdict"]["checks"]
        failed = [k for k, c in checks.items() if not c["passed"]]
        if failed:
            row["generation"] += f" ({', '.join(failed)} failed)"
    return row


def main():
    args = sys.argv[1:]
    if args[:1] == ["--verdicts"]:
        out, args = args[1], args[2:]
        rows = [verdicts(name) for name in args or ["workspace"]]
        with open(out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    names = args or ["workspace"]
    header = [
        "run",
        "train.seed",
        "model",
        "chains",
        "classes read (1,000 / 5,000 / 20,000)",
        "read entropy",
        "coverage kept",
        "density kept",
        "Frechet kept",
        "read at 20,000",
        "checks failed",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in names:
        for model in MODELS:
            print("| " + " | ".join(row(name, model)) + " |")


if __name__ == "__main__":
    main()
