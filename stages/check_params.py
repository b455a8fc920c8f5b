"""Validate all of params.yaml, at both scales, before any other stage runs.

    python stages/check_params.py  # what `dvc repro check_params` runs, from the repository root

Writes checks/params.ok (always the same line), which every other stage depends on. DVC
deletes a stage's outputs just before it runs the stage's command, so a stage that refuses
bad params itself has already lost its metrics, plots or report by then. This stage runs
first in every `dvc repro` that follows a change to params.yaml (it depends on the whole
file, so an unknown key or section reruns it too) and stops the run in one line,
`error: params.yaml: <key> ...`, before DVC has removed anything. Its output never changes,
so a good edit reruns only the stages whose own params changed.

Alternatives weighed: `persist: true` on every output keeps files through a failure but
leaves stale ones after a success (a plot whose name changed) and takes those stages out
of DVC's run cache; cached outputs (`cache: true`) could be restored with `dvc checkout`
but would leave a fresh clone without its committed metrics and plots. One cheap gate
stage keeps the outputs as they are.

A stage that dies mid-run (killed, out of memory) has still lost the outputs DVC deleted
before it started; the committed ones come back with
    git checkout -- metrics plots report
and `dvc repro` rebuilds the rest.
"""

from ebm import paths
from ebm.params import SCALES, load_params
from ebm.stage import run_stage

OUT = paths.PARAMS_OK


def main():
    load_params()  # every section, at the file's scale and then at the other one
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(f"params.yaml is valid at every scale ({', '.join(SCALES)})\n")


if __name__ == "__main__":
    run_stage(main)
