"""The generation's rule: do long chains stay diverse, legible digits without drifting?

The original journey's claim and no more: "diverse and recognizable digits" after 20,000
steps, and (Nijkamp et al. 2020's test of a long chain) no drift since REFERENCE_STEP. A model
whose long chains stay realistic is "convergent"; one whose chains drift (oversaturate,
collapse to few classes, dissolve into noise) learnt a sampler that only works for its short
training chains. The generate stage applies it; exp 5's "diverse" (ebm.verdicts) uses its
thresholds too.
"""

REFERENCE_STEP = 1000  # the chains' first realistic state: the last snapshot is compared with it
# diverse: the recognisable chains' class entropy (1 = uniform) at least MIN_ENTROPY at every
# snapshot >= REFERENCE_STEP, and all ten classes among them (each >= 2% of them)
MIN_ENTROPY = 0.9
MIN_CLASSES = 10
MIN_RECOGNISABLE = 0.5  # recognisable: most chains at the last step (real test digits 0.95 or more)
# no drift: recognisable, coverage and density at the last step >= 90% of their reference values,
# and the Frechet distance at most 1.2x its reference value
KEEP_FRACTION = 0.9
FLD_GROWTH = 1.2


def verdict(per_step, real):
    """Diverse and legible from REFERENCE_STEP on, and no drift to the last step? Rules at the top.

    real: the real line (test digits' ink and saturated fractions among it)."""
    steps = sorted(int(s) for s in per_step)
    last = steps[-1]
    later = [s for s in steps if REFERENCE_STEP <= s]
    ref = (
        later[0]
        if later and later[0] < last
        else ([s for s in steps if 0 < s < last] or [last])[-1]
    )
    judged = [s for s in steps if s >= ref]
    m_ref, m_last = per_step[str(ref)], per_step[str(last)]

    def ratio(a, b):
        return round(a / b, 4) if b else None  # None: no reference value to compare with

    checks = {
        "diverse": {
            "value": min(per_step[str(s)]["recognised_entropy"] for s in judged),
            "rule": f"the recognisable chains' class entropy >= {MIN_ENTROPY} and all "
            f"{MIN_CLASSES} classes among them at every snapshot from step {ref} to {last}",
            "passed": all(
                per_step[str(s)]["recognised_entropy"] >= MIN_ENTROPY
                and per_step[str(s)]["recognised_classes"] >= MIN_CLASSES
                for s in judged
            ),
        },
        "recognisable": {
            "value": m_last["recognisable"],
            "rule": f"recognisable at step {last} >= {MIN_RECOGNISABLE} (real digits "
            f"{real['recognisable']})",
            "passed": m_last["recognisable"] >= MIN_RECOGNISABLE,
        },
        "recognisable_kept": {
            "value": ratio(m_last["recognisable"], m_ref["recognisable"]),
            "rule": f"recognisable at step {last} >= {KEEP_FRACTION} x its value at step {ref}",
            "passed": m_last["recognisable"] >= KEEP_FRACTION * m_ref["recognisable"],
        },
        "coverage_kept": {
            "value": ratio(m_last["coverage"], m_ref["coverage"]),
            "rule": f"coverage at step {last} >= {KEEP_FRACTION} x its value at step {ref}",
            "passed": m_last["coverage"] >= KEEP_FRACTION * m_ref["coverage"],
        },
        "density_kept": {
            "value": ratio(m_last["density"], m_ref["density"]),
            "rule": f"density at step {last} >= {KEEP_FRACTION} x its value at step {ref}",
            "passed": m_last["density"] >= KEEP_FRACTION * m_ref["density"],
        },
        "fld_kept": {
            "value": ratio(m_last["fld"], m_ref["fld"]),
            "rule": f"Frechet distance at step {last} <= {FLD_GROWTH} x its value at step {ref}",
            "passed": m_last["fld"] <= FLD_GROWTH * m_ref["fld"],
        },
    }
    beyond = {
        "typical_vs_real": m_last["typical_vs_real"],
        **{
            f"{pixels}_vs_test": ratio(m_last[pixels], real[f"test_{pixels}"])
            for pixels in ("ink", "white")
        },
    }
    checks = {k: {**c, "passed": bool(c["passed"])} for k, c in checks.items()}
    failed = [k for k, c in checks.items() if not c["passed"]]
    word = "stays realistic" if not failed else "drifts or fails"
    numbers = (
        f"class entropy {m_ref['class_entropy']:.3f} -> {m_last['class_entropy']:.3f}; coverage "
        f"{m_ref['coverage']:.3f} -> {m_last['coverage']:.3f}; density {m_ref['density']:.3f} -> "
        f"{m_last['density']:.3f}; fld {m_ref['fld']:.3g} -> {m_last['fld']:.3g}; recognisable "
        f"{m_ref['recognisable']:.3f} -> {m_last['recognisable']:.3f} (real digits "
        f"{real['recognisable']})"
    )
    summary = (
        f"{word} (step {ref} -> {last}): "
        + ("every check passed" if not failed else "failed: " + ", ".join(failed))
        + f". {numbers}"
    )
    return {
        "reference_step": ref,
        "last_step": last,
        "verdict": word,
        "failed": failed,
        "checks": checks,
        "beyond_the_claim": beyond,
        "summary": summary,
    }
