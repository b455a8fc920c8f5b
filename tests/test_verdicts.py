"""The agreement rules (ebm.verdicts) on hand-made outputs: each claim, no more, no less."""

import pandas as pd
import pytest

from ebm import claims, verdicts
from ebm.verdicts import AGREES, DISAGREES, NOT_AT_SCALE, NOT_RUN, agreement, headline

REAL = {"recognisable": 0.97, "recognised_entropy": 0.99, "recognised_classes": 10}


def generated_rows(*rows):
    """plots/generated/<name>.csv: (step, recognisable, top2_share, recognised_entropy,
    {class: share})."""
    return pd.DataFrame(
        [
            {
                "step": step,
                "epoch": i + 1,
                "recognisable": recog,
                "top2_share": top2,
                "recognised_entropy": entropy,
                **{f"class_{d}": shares.get(d, 0.0) for d in range(10)},
            }
            for i, (step, recog, top2, entropy, shares) in enumerate(rows)
        ]
    )


class Outputs:
    """What the report's Run gives the rules, made by hand."""

    def __init__(self, scale="cpu", trains=None, evals=None, generated=None, gens=None):
        self.scale, self.trains, self.gens = scale, trains or {}, gens or {}
        self.evals, self._generated = evals or {}, generated or {}

    def quality(self, name, protocol):
        return (self.evals.get(name) or {}).get(protocol)

    def real(self, name):
        return REAL

    def generated(self, name):
        return self._generated.get(name)


def test_loss_collapse_reads_the_loss_the_energies_and_the_generated_noise():
    train = {"status": "ok", "final_loss": -0.99, "final_e_pos": -1.0, "final_e_neg": 1.0}
    noisy = {"fresh": {"noise_share": 0.97, "recognisable": 0.0}}
    assert (
        agreement(
            Outputs(trains={"loss_collapse": train}, evals={"loss_collapse": noisy}),
            "loss_collapse",
        ).word
        == AGREES
    )
    digits = {"fresh": {"noise_share": 0.1, "recognisable": 0.6}}  # the negatives are never read
    verdict = agreement(
        Outputs(trains={"loss_collapse": train}, evals={"loss_collapse": digits}), "loss_collapse"
    )
    assert verdict.word == NOT_AT_SCALE and "generated noise" in verdict.short
    missing = agreement(Outputs(trains={"loss_collapse": train}), "loss_collapse")
    assert missing.word == NOT_RUN and "metrics/eval/loss_collapse.json" in missing.why


def test_blob_collapse_wants_blobs_at_low_energy_and_negatives_at_high():
    train = {"status": "ok", "final_loss": -4.9, "final_e_pos": -5.0, "final_e_neg": 4.9}
    evals = {
        "fresh": {"energy": -4.7, "blob_share": 0.8, "recognisable": 0.0, "noise_share": 0.0},
        "buffer": {"energy": 4.4},
    }
    run = Outputs(trains={"blob_collapse": train}, evals={"blob_collapse": evals})
    verdict = agreement(run, "blob_collapse")
    assert (
        verdict.word == AGREES
        and verdict.headline["blobs"] == 0.8
        and verdict.headline["loss"] == -4.9
    )
    # generated samples as high as the negatives: not the account's blobs
    evals["fresh"]["energy"] = 3.0
    assert agreement(run, "blob_collapse").word == NOT_AT_SCALE
    evals["fresh"].update(energy=-4.7, blob_share=0.1, noise_share=0.9)  # low energy, but noise
    run.scale = "seed"
    assert agreement(run, "blob_collapse").word == DISAGREES


def test_mode_collapse_is_exp_4_against_exp_5_at_the_same_iteration():
    exp4 = generated_rows((125, 0.3, 0.4, 0.9, {}), (375, 0.7, 0.8, 0.45, {7: 0.6, 1: 0.2, 3: 0.1}))
    exp5 = generated_rows(
        (125, 0.3, 0.4, 0.9, {}), (375, 0.6, 0.3, 0.95, {}), (1250, 0.8, 0.25, 0.97, {})
    )
    run = Outputs(
        trains={"mode_collapse": {"status": "ok"}},
        generated={"mode_collapse": exp4, "final_training": exp5},
    )
    verdict = agreement(run, "mode_collapse")
    assert verdict.word == AGREES
    assert "7 (60%), 1 (20%)" in verdict.why and "iteration 375" in verdict.why
    assert verdict.headline == {
        "recognisable": 0.7,
        "top2": 0.8,
        "top2_exp5": 0.3,
        "entropy": 0.45,
        "entropy_exp5": 0.95,
    }
    exp5.loc[1, "top2_share"] = 0.8  # exp 5 as narrow at that iteration: no loop to blame
    assert agreement(run, "mode_collapse").word == NOT_AT_SCALE
    exp5.loc[1, "top2_share"] = 0.3
    exp4.loc[1, "top2_share"] = 0.67  # three classes equally: more than "one or two types"
    assert agreement(run, "mode_collapse").word == NOT_AT_SCALE
    exp4.loc[1, "top2_share"] = 0.8
    exp5.loc[1, "step"] = 376  # exp 5 not seen at exp 4's last iteration: nothing to compare
    verdict = agreement(run, "mode_collapse")
    assert verdict.word == NOT_RUN and "no row at iteration 375" in verdict.why
    exp5.loc[1, "step"] = 375
    exp4.loc[1, "recognisable"] = (
        0.2  # collapsed onto shapes the judge cannot read: not "real digits"
    )
    assert agreement(run, "mode_collapse").word == NOT_AT_SCALE


def test_final_training_asks_for_every_class_and_nothing_about_typical_strokes():
    fresh = {
        "recognised_entropy": 0.95,
        "recognised_classes": 10,
        "recognisable": 0.6,
        "typical": 0.01,
    }
    run = Outputs(
        trains={"final_training": {"status": "ok"}}, evals={"final_training": {"fresh": fresh}}
    )
    assert agreement(run, "final_training").word == AGREES  # typical strokes are not asked for
    fresh["recognisable"] = 0.1  # ten read samples are not "sample generation"
    assert agreement(run, "final_training").word == DISAGREES
    fresh["recognisable"] = 0.6
    fresh["recognised_classes"] = 9
    assert agreement(run, "final_training").word == DISAGREES  # a fix must hold at any scale
    run.trains["final_training"]["status"] = "diverged"
    assert agreement(run, "final_training").word == DISAGREES


def test_generation_reads_the_generate_stages_checks():
    checks = {
        k: {"value": 1.0, "passed": True} for k in ("diverse", "recognisable", "coverage_kept")
    }
    gen = {
        "verdict": {
            "verdict": "stays realistic",
            "reference_step": 1000,
            "last_step": 20000,
            "checks": checks,
        },
        "snapshots": {
            "1000": {"recognisable": 0.7},
            "20000": {"recognisable": 0.72, "recognised_entropy": 0.95},
        },
    }
    run = Outputs(gens={"long_run": gen})
    assert agreement(run, (verdicts.GENERATE, "long_run")).word == AGREES
    checks["coverage_kept"]["passed"] = False
    verdict = agreement(run, (verdicts.GENERATE, "long_run"))
    assert verdict.word == DISAGREES and verdict.short == "failed: coverage_kept"


def test_headline_numbers_the_steps_and_keeps_numbers_short():
    run = Outputs(
        trains={
            "initial_attempt": {
                "status": "expected_error",
                "error": f"RuntimeError: {verdicts.EXPECTED_ERROR} and ...",
            }
        }
    )
    out = headline(run, ["initial_attempt", "loss_collapse"], ["long_run"])
    assert out == {
        "1_initial_attempt": {"verdict": AGREES, "status": "expected_error"},
        "2_loss_collapse": {"verdict": NOT_RUN},
        "3_generation": {"verdict": NOT_RUN, "model": "long_run"},
    }


@pytest.mark.parametrize(
    "name",
    [
        "initial_attempt",
        "loss_collapse",
        "blob_collapse",
        "mode_collapse",
        "final_training",
        verdicts.LONG_RUN,
        verdicts.GENERATE,
    ],
)
def test_every_step_has_a_claim_and_a_rule(name):
    title, claim = claims.CLAIMS[name]
    assert title and claim and len(claims.RULES[name]) == 3
