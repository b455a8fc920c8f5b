"""The figures the verdicts read give the known answer on control sets (ebm.controls).

The judge is trained exactly as the judge stage trains it (params.yaml `judge`, the data
stage's split of the bundled digits); the controls come from the test split and from
generators of their own. Every requirement in ebm.controls.EXPECTED must hold: real digits
and thickened, binarised ones are recognisable; noise, speckle and blobs are not; the shape
tests tell noise and blobs from digits; one- and two-class sets are collapsed, real digits not.
"""

import pytest
import torch

from ebm.controls import EXPECTED, control_sets, gaussian_discs, meets, thicken_and_binarise
from ebm.data import to_unit_range
from ebm.judge import NOT_A_DIGIT
from ebm.non_digits import non_digits
from ebm.quality import RECOGNISABLE, class_metrics, embed
from ebm.shapes import is_blob, is_noise, isolated_share, kinds, roughness, shape_figures, thickness

# `digits` and `stage_judge` (the judge stage's judge, trained as it trains it) come from
# conftest.py


@pytest.fixture(scope="module")
def table(digits, stage_judge):
    """control -> figures, for 500 images of each, drawn with a seed the judge never saw."""
    out = {}
    for name, images in control_sets(digits["x_test"], digits["y_test"], n=500, seed=12345).items():
        _, probs = embed(stage_judge, images)
        out[name] = {
            "recognisable": float((probs.max(1) >= RECOGNISABLE).mean()),
            **class_metrics(probs),
            **shape_figures(images, probs),
        }
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_control_gives_its_known_answer(table, name):
    wrong = {
        k: (round(table[name][k], 3), rule)
        for k, rule in EXPECTED[name].items()
        if not meets(table[name][k], rule)
    }
    assert not wrong, f"{name}: {wrong}"


def test_every_requirement_of_the_issue_is_a_control():
    required = {
        ("real digits", "recognisable"),
        ("thickened, binarised", "recognisable"),
        ("uniform noise", "recognisable"),
        ("+-1 speckle", "recognisable"),
        ("blurred blobs", "recognisable"),
        ("blurred blobs", "blob_share"),
        ("real digits", "blob_share"),
        ("thickened, binarised", "blob_share"),
        ("uniform noise", "blob_share"),
        ("+-1 speckle", "blob_share"),
        ("one class (7s)", "top2_share"),
        ("two classes (1s, 7s)", "top2_share"),
        ("real digits", "top2_share"),
    }
    assert required <= {(name, k) for name, rules in EXPECTED.items() for k in rules}


def test_the_judge_says_not_a_digit_and_reads_digits(digits, stage_judge):
    judge = stage_judge
    x = to_unit_range(digits["x_test"][:200])
    assert (judge(x).argmax(1) < NOT_A_DIGIT).float().mean() > 0.95
    others = non_digits(200, torch.Generator().manual_seed(99))
    assert (judge(others.float()).argmax(1) == NOT_A_DIGIT).float().mean() > 0.95


# ---- the shape tests on hand-made images -----------------------------------------------------


def test_roughness_of_known_images():
    flat = -torch.ones(2, 1, 28, 28)
    stripes = flat.clone()
    stripes[:, :, :, ::2] = 1.0  # every horizontal neighbour differs by 2
    assert roughness(flat).tolist() == [0.0, 0.0]
    assert roughness(stripes)[0] == pytest.approx(1.0)  # (2 + 0) / 2
    assert is_noise(stripes).all() and not is_noise(flat).any()


def test_a_filled_disc_is_a_blob_and_a_stroke_of_any_width_is_not():
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    disc = torch.where((yy - 14) ** 2 + (xx - 14) ** 2 < 49, 1.0, -1.0)[None, None]
    bar = -torch.ones(1, 1, 28, 28)
    bar[..., 2:26, 11:17] = 1.0  # a thick "1": 24 x 6 pixels
    half_width, compact, area = thickness(torch.cat([disc, bar]))
    assert half_width[0] > 2 and compact[0] > 0.85 and 0.15 < area[0] < 0.2  # 145 of 784 pixels
    assert half_width[1] >= 1.5 and compact[1] < 0.5  # as wide as a blob, but long: a stroke
    assert is_blob(disc).all() and not is_blob(bar).any()
    assert not is_blob(-torch.ones(1, 1, 28, 28)).any()  # no ink, no blob
    sure_one = torch.zeros(1, 10)
    sure_one[0, 1] = 0.95
    assert not is_blob(disc, sure_one).any()  # what the judge reads is no blob


def test_a_white_page_is_no_blob_and_a_block_off_the_frame_is_one():
    white, half = torch.ones(1, 1, 28, 28), -torch.ones(1, 1, 28, 28)
    half[..., :, :14] = 1.0  # a block that runs off the frame (docs/labelling.md)
    assert kinds(white).tolist() == [""] and kinds(half).tolist() == ["blob"]
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    # half a disc, cut by the frame
    edge = torch.where((yy - 14) ** 2 + xx**2 < 64, 1.0, -1.0)[None, None]
    assert kinds(edge).tolist() == ["blob"]


def test_specks_and_isolated_pixels():
    few = -torch.ones(1, 1, 28, 28)
    few[0, 0, 5, ::3] = 1.0  # 10 lone pixels: a speck
    lattice = -torch.ones(1, 1, 28, 28)
    lattice[0, 0, ::4, ::4] = 0.5  # 49 lone grey dots over the frame: noise
    assert isolated_share(lattice)[0] == 1.0 and isolated_share(-torch.ones(1, 1, 28, 28))[0] == 0
    assert kinds(torch.cat([few, lattice])).tolist() == ["speck", "noise"]


def test_the_control_makers():
    generator = torch.Generator().manual_seed(0)
    discs = gaussian_discs(20, generator)
    assert discs.shape == (20, 1, 28, 28) and discs.min() >= -1 and discs.max() <= 1
    assert is_blob(discs).mean() == 1
    x = -torch.ones(1, 1, 28, 28)
    x[0, 0, 14, 14] = 0.5
    thick = thicken_and_binarise(x)
    assert set(thick.unique().tolist()) == {-1.0, 1.0} and (thick > 0).sum() == 9
