"""The report's second part: the generation, the abilities, and where every figure came from."""

import platform
from pathlib import Path


from ebm import paths
from ebm.claims import CLAIMS, RULES
from ebm.params import ParamsError, load_params
from ebm.quality import RECOGNISABLE
from ebm.report.journey import gen_anchor
from ebm.report.outputs import fmt, read_csv, read_json, stage_records
from ebm.verdicts import GENERATE, agreement

SNAPSHOT_FIGURES = [
    "recognisable",
    "recognised_entropy",
    "recognised_classes",
    "density",
    "coverage",
    "fld",
    "typical",
    "ink",
    "white",
    "energy_mean",
    "below_real_energy",
]


CONTROL_COLUMNS = [
    "recognisable",
    "typical",
    "top2_share",
    "noise_share",
    "blob_share",
    "density",
    "coverage",
]


def controls_section(doc, run):
    doc.heading(2, "How to read the figures", anchor="how-to-read")
    doc.para(
        "Every figure a verdict reads was first run on control sets whose answer a person knows "
        "(ebm.controls; tests/test_controls.py holds the answers). recognisable: the judges, "
        'three LeNet-5s with an eleventh class for "not a digit" read by their mean probability, '
        f"are at least {RECOGNISABLE} sure of one digit, i.e. a person would read it. "
        "typical: recognisable and inside the k-NN ball of a real digit (Kynkaanniemi et al. "
        "2019), which real digits themselves pass only about half the time: it measures how "
        "typical of MNIST's strokes a sample is, and no verdict reads it. top2_share: the two "
        "commonest classes' share of the recognisable samples (collapse at 0.5). noise_share and "
        "blob_share: ebm.shapes, from the pixels alone. density and coverage: Naeem et al. 2020, "
        "in the judge's features. The judges and the shape tests were then fitted to samples "
        "of other training runs that a person read tile by tile (docs/labelling.md): a judge "
        "calibrated on synthetic controls alone had read exp 3's fuzzy blobs as 9s and 4s and "
        "exp 5's scrawls as digits. Each card below shows the person's reading of the "
        "committed grid beside the figures; no tile of this run tuned them."
    )
    controls = (run.judge or {}).get("controls")
    if not controls:
        doc.para("not run: metrics/judge.json has no controls.")
        return
    doc.table(
        ["control", *CONTROL_COLUMNS, "known answers met"],
        [
            [name, *[row.get(k) for k in CONTROL_COLUMNS], row.get("meets")]
            for name, row in controls.items()
        ],
        table_id="controls",
    )
    doc.para(
        f"{fmt((run.judge or {}).get('real', {}).get('n'))} images per control, drawn from the "
        f"test split or "
        "from generators of their own, never from what the judge trained on."
    )


def generation_section(doc, run, model):
    title, claim = CLAIMS[GENERATE]
    final = run.final_model()
    doc.heading(2, f"{title}, from {model}", anchor=gen_anchor(model))
    if model == final:
        doc.para(f"The original journey says: {claim}", quote=True)
    else:
        doc.para(
            f"For comparison: the original journey's claim is judged on the generation from "
            f"{final}."
        )
    gen = run.gens.get(model)
    doc.para(
        f"Agrees with the original journey? {agreement(run, (GENERATE, model)).text()}. Rule: "
        f"{RULES[GENERATE][0]}."
    )
    if gen is None:
        doc.para(f"not run: metrics/generate/{model}.json is missing.")
        return
    folder = paths.generate_plots(model)
    # the full one: rules, summary
    verdict = read_json(folder / "verdict.json") or gen.get("verdict") or {}
    doc.para(f"Verdict: {verdict.get('summary') or verdict.get('verdict', 'missing')}")
    weights = (
        "; the moving average of its weights" if gen.get("weights") == "moving average" else ""
    )
    doc.para(
        f"{fmt(gen.get('chains'))} chains from {gen.get('init')} under {model}'s model (epoch "
        f"{fmt(gen.get('checkpoint_epoch'))}{weights}), {fmt(gen.get('steps'))} steps on "
        f"{gen.get('device')} in {fmt(gen.get('wall_time_s'))} s "
        f"({fmt(gen.get('langevin_img_steps_per_s'))} image-steps/s)."
    )
    grid = folder / f"hq_samples_k{gen.get('steps')}.png"
    if grid.is_file():
        doc.image(grid, f"{model}: the final grid after {fmt(gen.get('steps'))} steps")
    if (folder / "chain_snapshots.png").is_file():
        doc.image(
            folder / "chain_snapshots.png",
            f"{model}: chains (rows) at the snapshot steps (columns)",
        )
    snaps = gen.get("snapshots") or {}
    real = gen.get("real") or {}
    if (folder / "energy.csv").is_file():
        doc.para(
            f"The chains' energy over the steps, beside the test digits' band: `dvc plots show "
            f"{folder}/energy.csv`. The test digits' mean energy is {fmt(real.get('energy_mean'))} "
            f"(5-95%: {fmt(real.get('energy_q05'))} to {fmt(real.get('energy_q95'))})."
        )
    doc.heading(3, "Figures over the steps", anchor=f"{gen_anchor(model)}-metrics")
    rows = [
        [f"{int(s):,}", *[snaps[s].get(k) for k in SNAPSHOT_FIGURES]]
        for s in sorted(snaps, key=int)
    ]
    # the test digits' own figures; none for a share of the chains
    real_keys = {
        "ink": "test_ink",
        "saturated": "test_saturated",
        "white": "test_white",
        "below_real_energy": None,
    }
    rows.append(
        [
            f"real ({fmt(real.get('n'))} digits)",
            *[real.get(real_keys.get(k, k)) for k in SNAPSHOT_FIGURES],
        ]
    )
    binary = gen.get("binarised_real") or {}
    if binary:
        rows.append(
            [
                f"real at ±1 ({fmt(real.get('n'))} digits)",
                *[binary.get(k) for k in SNAPSHOT_FIGURES],
            ]
        )
    doc.table(["step", *[k.replace("modes_covered", "modes") for k in SNAPSHOT_FIGURES]], rows)
    doc.para(
        f"The real row: what {fmt(real.get('n'))} real train digits score (ink, saturated, white "
        f"and energy_mean: the test digits'); below_real_energy: the share of chains whose energy "
        f"is below that of 95% of the test digits ({fmt(real.get('energy_q05'), 3)}). The noise "
        f"ceiling of the Frechet distance is {fmt(real.get('fld_ceiling'), 3)}."
    )
    if binary:
        white, test_white = binary.get("white"), real.get("test_white")
        doc.para(
            f"The real at ±1 row: as many real train digits with every pixel set to -1 or +1, the "
            f"style of a cold chain whose gradient steps carry pixels to the ends of [-1, 1]. "
            f"Shapes as real as the data's then score recognisable "
            f"{fmt(binary.get('recognisable'), 3)} (typical "
            f"{fmt(binary.get('typical_vs_real'), 2)} of real) and white "
            f"{fmt(binary.get('white'), 3)} "
            f"({fmt(white / test_white if white is not None and test_white else None, 2)}x the "
            f"test digits'): recognisable judges shapes, white grey stroke edges."
        )
    counts = read_csv(folder / "class_counts.csv")
    if counts is not None and len(counts):
        doc.heading(3, "The judge's classes over the steps", anchor=f"{gen_anchor(model)}-classes")
        doc.table(list(counts.columns), counts.values.tolist())
    doc.heading(3, "The verdict's checks", anchor=f"{gen_anchor(model)}-checks")
    doc.table(
        ["check", "value", "rule", "passed"],
        [
            [k, c.get("value"), c.get("rule", "—"), c.get("passed")]
            for k, c in (verdict.get("checks") or {}).items()
        ],
    )
    beyond = verdict.get("beyond_the_claim") or {}
    if beyond:
        doc.para(
            "Beyond the claim, and in no check: "
            + "; ".join(f"{k} {fmt(v, 3)}" for k, v in beyond.items())
            + " (typical_vs_real: how MNIST-typical the strokes are, as a share of what real "
            "digits score; ink and white: against the test digits')."
        )


def abilities_headline(models):
    """The headline's line for the last model's abilities: the energy's OOD AUROC on the far and
    the near sets, and completion of the lower half beside the mean-image and nearest-digit
    baselines."""
    model = models[-1] if models else None
    record = read_json(paths.abilities_record(model)) if model else None
    if not record:
        return {}
    ood, lower = record.get("ood") or {}, (record.get("completion") or {}).get("lower_half") or {}
    auroc = {
        f"auroc_{k}": (ood.get(k) or {}).get("auroc", {}).get("energy")
        for k in ("uniform_noise", "inverted", "sklearn_digits")
    }
    accuracy = lower.get("accuracy") or {}
    line = {
        "model": model,
        **auroc,
        "lower_half_acc": accuracy.get("ebm"),
        "lower_half_acc_mean": accuracy.get("mean"),
        "lower_half_acc_nearest": accuracy.get("nearest"),
    }
    return {k: v for k, v in line.items() if v is not None}


def abilities_section(doc):
    """What the energy does besides sampling (stages/abilities.py), per model, each figure beside
    its baseline, and in words where the energy loses to one. Reads params.yaml abilities.models
    and metrics/abilities/<model>.json, plots/abilities/<model>/*.png."""
    try:
        models = load_params(sections=["abilities"]).abilities.models
    except (ParamsError, KeyError):
        models = sorted(p.stem for p in Path("metrics/abilities").glob("*.json"))
    doc.heading(
        2,
        "Besides sampling: completion, denoising, out-of-distribution detection",
        anchor="abilities",
    )
    doc.para(
        "What an energy gives that a sampler alone does not (IGEBM, Du & Mordatch 2019): "
        "completing a digit with part of it hidden (the hidden pixels start as noise, the model's "
        "sampler runs with the visible pixels clamped), denoising by a few Langevin steps, and "
        "telling digits from non-digits by E(x). Each figure stands beside a plain baseline: for "
        "completion the hole at background, the train-mean image and the nearest train digit by "
        "the visible pixels; for denoising a 3x3 median filter; for OOD the judge's maximum "
        "softmax probability (MSP, Hendrycks & Gimpel 2017). Accuracy is the judge's against the "
        "true labels; MSE is over the hidden pixels, on the [-1, 1] scale."
    )
    for model in models:
        record = read_json(paths.abilities_record(model))
        doc.heading(3, f"{model}", anchor=f"abilities-{model}")
        if record is None:
            doc.para(f"not run: metrics/abilities/{model}.json is missing.")
            continue
        folder, comp = paths.abilities_plots(model), record.get("completion") or {}
        regions = [k for k, v in comp.items() if isinstance(v, dict)]
        ways = ("ebm", "background", "mean", "nearest")
        doc.table(
            ["region", *[f"accuracy {w}" for w in ways], *[f"MSE {w}" for w in ways]],
            [
                [
                    r,
                    *[comp[r]["accuracy"].get(w) for w in ways],
                    *[comp[r]["mse"].get(w) for w in ways],
                ]
                for r in regions
            ],
        )
        loses = {
            b: [r for r in regions if comp[r]["accuracy"]["ebm"] < comp[r]["accuracy"][b]]
            for b in ("mean", "nearest")
        }
        doc.para(
            f"Completion of {fmt(comp.get('digits'))} test digits, {fmt(comp.get('steps'))} "
            f"Langevin steps (the judge on the intact digits: "
            f"{fmt(comp.get('judge_accuracy_original'), 3)}). "
            + " ".join(
                f"The energy's completions are less accurate than the {b} baseline's in "
                f"{len(lost)} of {len(regions)} regions ({', '.join(lost)})."
                if lost
                else f"The energy's completions are at least as accurate as the {b} baseline's in "
                f"every region."
                for b, lost in loses.items()
            )
        )
        for region in regions:
            if (folder / f"completion_{region}.png").is_file():
                doc.image(
                    folder / f"completion_{region}.png",
                    f"{model}, completion of the {region.replace('_', ' ')} "
                    "(rows: original, the hole in grey, the energy's completion, the nearest train "
                    "digit's)",
                )
        den = record.get("denoise") or {}
        sigmas = [k for k, v in den.items() if isinstance(v, dict)]
        doc.table(
            [
                "noise",
                "PSNR noisy",
                "PSNR energy",
                "PSNR median",
                "accuracy clean",
                "accuracy noisy",
                "accuracy energy",
                "accuracy median",
            ],
            [
                [
                    k.replace("_", " "),
                    *[den[k]["psnr"].get(w) for w in ("noisy", "ebm", "median")],
                    *[den[k]["accuracy"].get(w) for w in ("clean", "noisy", "ebm", "median")],
                ]
                for k in sigmas
            ],
        )
        worse = [
            k.replace("_", " ") for k in sigmas if den[k]["psnr"]["ebm"] < den[k]["psnr"]["median"]
        ]
        doc.para(
            f"Denoising of {fmt(den.get('digits'))} test digits by {fmt(den.get('steps'))} "
            f"Langevin steps "
            "(PSNR in dB, peak-to-peak 2). "
            + (
                f"The energy's PSNR is below the 3x3 median's at {', '.join(worse)}."
                if worse
                else "The energy's PSNR is above the 3x3 median's at every noise level."
            )
        )
        if (folder / "denoise.png").is_file():
            doc.image(
                folder / "denoise.png",
                f"{model}, denoising (rows: clean, then per noise level: noisy, "
                "the energy's, the median filter's)",
            )
        det = record.get("ood") or {}
        sets = [k for k, v in det.items() if isinstance(v, dict)]
        rows, lost = [], []
        for k in sets:
            block = det[k]
            if "auroc" not in block:
                rows.append([k, None, None, None, None, f"skipped: {block.get('skipped')}"])
                continue
            a, f = block["auroc"], block["fpr95"]
            better = (
                "energy" if a["energy"] > a["msp"] else "MSP" if a["msp"] > a["energy"] else "tie"
            )
            lost += [k] if better == "MSP" else []
            rows.append([k, a["energy"], a["msp"], f["energy"], f["msp"], better])
        doc.table(
            ["set", "AUROC energy", "AUROC MSP", "FPR95 energy", "FPR95 MSP", "higher AUROC"], rows
        )
        doc.para(
            f"{fmt(det.get('digits'))} test digits against each set (low energy = a digit; the "
            f"test digits' mean energy {fmt(det.get('digits_energy_mean'), 3)}). "
            + (
                f"The energy loses to the judge's max softmax on {', '.join(lost)}."
                if lost
                else "The energy beats the judge's max softmax on every set."
            )
        )
        if (folder / "energy_hist.png").is_file():
            doc.image(
                folder / "energy_hist.png", f"{model}: energy of the test digits against each set"
            )


def provenance_section(doc, run):
    import torch

    doc.heading(2, "Provenance")
    data, judge = run.data, run.judge
    rows = [["scale (params.yaml)", run.scale]]
    if data:
        rows += [
            [
                "data source",
                f"{data.get('source')} (asked: {data.get('requested_source')})"
                + (
                    f"; fell back: {data['fallback_reason']}" if data.get("fallback_reason") else ""
                ),
            ],
            [
                "train / test digits",
                f"{fmt(data.get('train_size'))} / {fmt(data.get('test_size'))}",
            ],
            ["data content hash", str(data.get("content_hash", ""))[:16]],
        ]
    else:
        rows.append(["data", "not run (metrics/data.json is missing)"])
    rows.append(["judge test accuracy", fmt(judge.get("test_accuracy")) if judge else "not run"])
    rows += [
        ["torch / python (report stage)", f"{torch.__version__} / {platform.python_version()}"]
    ]
    doc.table(["what", "value"], rows)
    doc.table(
        ["stage", "wall time (s)", "device"],
        [
            [
                s,
                (m or {}).get("wall_time_s", "not run" if m is None else None),
                (m or {}).get("device"),
            ]
            for s, m in stage_records(run)
        ],
    )
