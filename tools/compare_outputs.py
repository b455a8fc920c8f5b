"""Compare the working tree's metrics/ and plots/ with a commit's: do the figures move?

    python tools/compare_outputs.py [REV]     # default HEAD

JSON files are compared without timings (keys ending in _s or holding per_s) and `device`;
every other file byte for byte. Prints the files that differ; exit status 1 if any does.
"""

import json
import subprocess
import sys


def without_timings(tree):
    if isinstance(tree, dict):
        return {
            k: without_timings(v)
            for k, v in tree.items()
            if not (k.endswith("_s") or "per_s" in k or k == "device")
        }
    if isinstance(tree, list):
        return [without_timings(v) for v in tree]
    return tree


def main():
    rev = sys.argv[1] if len(sys.argv) > 1 else "HEAD"
    files = subprocess.check_output(["git", "ls-files", "metrics", "plots"], text=True).split()
    differ = []
    for path in files:
        then = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True).stdout
        with open(path, "rb") as f:
            now = f.read()
        if not then:
            same = False  # not in that commit
        elif path.endswith(".json"):
            same = without_timings(json.loads(then)) == without_timings(json.loads(now))
        else:
            same = then == now
        if not same:
            differ.append(path)
    print(f"{len(files)} files compared with {rev}; differ: {differ or 'none'}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
