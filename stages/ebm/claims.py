"""The original journey's (EBM-MNIST-Journey's) claims, quoted, and each step's rule in words.

CLAIMS: step -> (title, the account); RULES: step -> (agrees when, the samples and figures it
reads, why those). The rules themselves, with their thresholds, are ebm.verdicts; the report
prints both.
"""

from ebm.generation import (
    FLD_GROWTH,
    KEEP_FRACTION,
    MIN_CLASSES,
    MIN_ENTROPY,
    MIN_RECOGNISABLE,
    REFERENCE_STEP,
)
from ebm.verdicts import (
    ALL_CLASSES,
    BLOBS,
    COLLAPSED,
    DIGIT_LIKE,
    DIVERSE_ENTROPY,
    EXPECTED_ERROR,
    GENERATE,
    LONG_RUN,
    NOISE,
    NOT_NOISE,
    NOT_READ,
)

CLAIMS = {  # (title, the original journey's account, quoted; a claim, not a result)
    "initial_attempt": (
        "Experiment 1: initial attempt and the gradient error",
        "The MCMC sampling was performed inside a `torch.no_grad()` block, preventing the "
        "calculation of energy gradients needed for Langevin Dynamics. Result: `RuntimeError: "
        "element 0 of tensors does not require grad...`",
    ),
    "loss_collapse": (
        "Experiment 2: loss collapse (trivial minimum)",
        "A poorly scaled energy regularizer `(E_pos**2 + E_neg**2)` created a trivial mathematical "
        "minimum at `E_pos=-1, E_neg=1`. The model learned to output these constant values "
        "regardless of input. Result: Loss stuck at `-1.0`, and generated samples were pure noise.",
    ),
    "blob_collapse": (
        "Experiment 3: blob collapse",
        "After scaling the regularizer, the model found the next-easiest solution: mapping fuzzy "
        "blobs to a low energy value (`-5`) and everything else to a high one (`+5`). The MCMC "
        "sampler was not strong enough to produce challenging negative samples. Result: Loss stuck "
        "at `-5.0`, and generated samples were fuzzy blobs.",
    ),
    "mode_collapse": (
        "Experiment 4: mode collapse",
        "With a stronger MCMC sampler (`CD_K=60`) and a better regularizer (R1 penalty), the model "
        "began to learn real digits. However, the replay buffer created a feedback loop, causing "
        "the "
        'model to get "stuck" generating only one or two types of digits. Result: Generated '
        "samples showed low diversity (e.g., mostly '7's).",
    ),
    "final_training": (
        "Experiment 5: final successful training",
        "By increasing MCMC noise and the frequency of re-initializing chains from random noise, "
        "the mode collapse feedback loop was broken. Result: Stable training and diverse sample "
        "generation across all digit classes.",
    ),
    # Not in the original journey: this entry's text is ours, and may be edited freely.
    LONG_RUN: (
        "After experiment 5: the long run (not in the original journey)",
        "This step is not in the original journey. It continues experiment 5's model and replay "
        "buffer at a constant learning rate, with half of each batch's negatives drawn from a pool "
        "of long-lived chains that run the generation's own sampler every iteration and restart "
        "from noise only rarely, so that training sees every stage of a generation's path, from "
        "noise to as old as a generation's chains (Hill, Nijkamp et al. 2022; Nijkamp et al. "
        "2020). Its generation samples with a moving average of the weights (Du et al. 2021). A "
        "20,000-step chain should then stay diverse digits instead of drifting. The settings tried "
        "for it are in docs/experiments.md.",
    ),
    GENERATE: (
        "Generation: a long chain of 20,000 steps",
        "After successful training and a long MCMC chain for generation, the model is capable of "
        "producing diverse and recognizable digits (`hq_samples_k20000.png`).",
    ),
}

RULES = {  # step -> (agrees when, the samples and figures it reads, why those)
    "initial_attempt": (
        f'training status is expected_error and its error contains "{EXPECTED_ERROR}"',
        "metrics/train: status, error",
        "the claim is an exception, not a number: the run must stop with exactly that error",
    ),
    "loss_collapse": (
        f"final loss within 0.05 of -1, E_pos within 0.25 of -1, E_neg within 0.25 of +1; the "
        f"generated samples are pure noise: noise share >= {NOISE} and recognisable <= {NOT_READ}",
        "metrics/train: final loss, E_pos, E_neg; generated samples (metrics/eval fresh): "
        "noise_share, recognisable",
        'the trivial minimum is loss -1 at E_pos = -1, E_neg = +1; "generated samples were pure '
        'noise"',
    ),
    "blob_collapse": (
        f"final loss within 0.25 of -5; the generated samples' energy nearer E_pos than E_neg "
        f"while the training negatives' is nearer E_neg; the generated samples are blobs: blob "
        f"share >= {BLOBS}, recognisable <= {NOT_READ}, noise share < {NOT_NOISE}",
        "metrics/train: final loss, E_pos, E_neg; metrics/eval: fresh (generated) and buffer "
        "(negatives) energy, fresh blob_share, recognisable, noise_share",
        '"fuzzy blobs to a low energy value (-5) and everything else to a high one (+5)": the '
        "blobs are what a "
        'chain reaches at low energy, the negatives the "everything else"; a blob is a compact '
        "shape thicker than any stroke (ebm.shapes), neither a digit nor noise",
    ),
    "mode_collapse": (
        f"the generated samples at exp 4's last epoch are digit-like (recognisable >= "
        f"{DIGIT_LIKE}) and one or two classes hold at least {COLLAPSED} of the read ones, while "
        f"exp 5's at the same iteration do not",
        "plots/generated/mode_collapse.csv and final_training.csv (64 generated samples at every "
        "sample epoch): recognisable, top2_share, recognised_entropy, the dominant classes",
        '"stuck generating only one or two types of digits ... low diversity (e.g., mostly 7s)", a '
        "feedback loop that exp 5's settings break: both models learn digits over the same "
        "iterations, so exp 4 is compared with exp 5 at the same iteration, not with exp 5's end",
    ),
    "final_training": (
        f"status ok (stable); the generated samples are digits (recognisable >= {DIGIT_LIKE}), "
        f"diverse across all digit classes: class entropy of the read samples >= {DIVERSE_ENTROPY} "
        f"and all {ALL_CLASSES} classes read "
        "(each >= 2% of them)",
        "metrics/train: status; generated samples (metrics/eval fresh): recognisable, "
        "recognised_entropy, recognised_classes",
        '"stable training and diverse sample generation across all digit classes": every class '
        "present and recognisable. How MNIST-typical the strokes are is not claimed: it is a "
        "figure of its own (typical)",
    ),
    LONG_RUN: (
        f"status ok; its generated samples keep exp 5's claim: recognisable >= {DIGIT_LIKE}, class "
        f"entropy of the read samples >= {DIVERSE_ENTROPY} and all {ALL_CLASSES} classes read",
        "metrics/train/long_run.json: status; plots/generated/long_run.csv, last epoch (64 "
        "chains): recognisable, recognised_entropy, recognised_classes",
        "not a claim of the original journey: this step must not lose what exp 5 achieved; its "
        "purpose is judged by its generation",
    ),
    GENERATE: (
        f'the generate stage\'s verdict is "stays realistic": diverse (class entropy of the read '
        f"chains >= {MIN_ENTROPY} and all {MIN_CLASSES} classes, at every snapshot from step "
        f"{REFERENCE_STEP:,}), recognisable (>= {MIN_RECOGNISABLE} of the chains at the last "
        f"step), and no drift (recognisable, coverage and density kept >= {KEEP_FRACTION}x, "
        f"Frechet distance <= {FLD_GROWTH}x its step-{REFERENCE_STEP:,} value)",
        "metrics/generate/<model>.json: verdict.checks (diverse, recognisable, recognisable_kept, "
        "coverage_kept, density_kept, fld_kept)",
        '"diverse and recognizable digits" after 20,000 steps, and no drift (the test of a long '
        "chain in Nijkamp et al. 2020). Typical strokes, ink and white are reported beside it, not "
        "in it. The claim is judged on the generation named last in generate.chains; the others "
        "are shown for comparison",
    ),
}
