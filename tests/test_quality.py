"""The quality yardstick: Gatys's own loss, unweighted, and the structure figure."""

from __future__ import annotations

import pytest
import torch
from helpers import smooth_image, stripes

from fastnst.quality import Scores, gatys_yardstick, judge, ssim, structure


def _blocks(seed: int) -> torch.Tensor:
    """A `(1, 3, 96, 128)` picture with shapes: smooth gradients plus 8 px coloured blocks."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.rand(1, 3, 12, 16, generator=g).repeat_interleave(8, 2).repeat_interleave(8, 3)
    return 0.6 * smooth_image(96, 128, seed) + 0.4 * blocks


def test_structure_is_one_for_the_photo_itself_and_low_for_flat_grey():
    photo = _blocks(3)
    assert structure(photo, photo) == pytest.approx(1.0, abs=1e-5)
    assert structure(photo, torch.full_like(photo, 0.5)) < 0.5
    # Fine noise (strokes) barely moves the coarse layout; a different picture does.
    noisy = (photo + 0.05 * torch.randn_like(photo)).clamp(0, 1)
    assert structure(photo, noisy) > 0.9 > 0.5 > structure(photo, _blocks(11))


def test_ssim_is_symmetric_and_falls_with_distortion():
    a = smooth_image(40, 40, seed=1)[:, :1]
    b = (a + 0.2 * torch.rand_like(a)).clamp(0, 1)
    c = (a + 0.5 * torch.rand_like(a)).clamp(0, 1)
    assert ssim(a, b) == pytest.approx(ssim(b, a), abs=1e-6)
    assert 1.0 > ssim(a, b) > ssim(a, c)


def test_yardstick_is_the_gatys_loss_unweighted(vgg_weights):
    loss = gatys_yardstick()
    assert loss.content_layers == {"relu4_2": 1.0}
    assert list(loss.style_layers) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert (loss.content_weight, loss.style_weight, loss.tv_weight) == (1.0, 1.0, 0.0)
    painting, photo = stripes(48, 48), smooth_image(48, 64)
    loss.set_style([painting])
    same = judge(loss, photo, photo)
    assert same.content == 0.0 and same.style > 0 and same.structure == pytest.approx(1.0)
    assert judge(loss, painting, painting).style == pytest.approx(0.0, abs=1e-3 * same.style)
    assert Scores.mean([same, Scores(2.0, 4.0, 0.0)]) == Scores(
        1.0, (same.style + 4.0) / 2, (same.structure + 0.0) / 2)


def test_palette_distance_sees_colours_not_their_arrangement():
    from fastnst.color import rgb_to_lab
    from fastnst.quality import palette, palette_distance

    white, red = torch.ones(1, 3, 1, 1), torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)
    assert rgb_to_lab(white).flatten().tolist() == pytest.approx([100, 0, 0], abs=0.01)
    assert rgb_to_lab(red).flatten().tolist() == pytest.approx(
        [53.24, 80.09, 67.20], abs=0.05)  # sRGB red in CIE Lab (D65)
    picture = _blocks(3)
    shuffled = picture.flatten(2)[..., torch.randperm(96 * 128)].view_as(picture)
    assert palette_distance(palette(picture), palette(shuffled)) < 0.5
    warmer = (picture * torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1))
    assert palette_distance(palette(picture), palette(warmer)) > 5
    assert palette_distance(palette(picture), palette(_blocks(11))) < palette_distance(
        palette(picture), palette(torch.full_like(picture, 0.2)))


def test_identity_asks_which_painting_a_result_is_nearest(vgg_weights):
    from fastnst.quality import gram_distance, identity, style_grams

    assert identity([3.0, 1.0, 2.0], own=1) and not identity([3.0, 1.0, 2.0], own=2)
    loss = gatys_yardstick()
    painting, photo = stripes(48, 48), smooth_image(48, 64)
    loss.set_style([painting])
    # gram_distance is the yardstick's style term, as judge reports it.
    expected = judge(loss, photo, photo).style
    got = gram_distance(loss, style_grams(loss, photo), style_grams(loss, painting))
    assert got == pytest.approx(expected, rel=1e-4)
