"""Gram matrices, content/style/TV losses and the batched PerceptualLoss."""

from __future__ import annotations

import pytest
import torch
from helpers import smooth_image, stripes
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from fastnst.losses import PerceptualLoss, content_loss, gram, style_loss, tv_loss

GATYS_STYLE = {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "relu5_1": 1.0}


def test_gram_is_normalised_by_channels_and_pixels():
    f = torch.ones(2, 4, 3, 5)
    g = gram(f)
    assert g.shape == (2, 4, 4)
    torch.testing.assert_close(g, torch.full((2, 4, 4), 15 / (4 * 15)))


def test_gram_is_symmetric_positive_semidefinite_and_size_independent():
    f = torch.rand(1, 6, 8, 8)
    g = gram(f)[0]
    torch.testing.assert_close(g, g.T)
    assert torch.linalg.eigvalsh(g).min() > -1e-6
    tiled = f.repeat(1, 1, 2, 2)  # the same texture over four times the area
    torch.testing.assert_close(gram(tiled), gram(f))


def test_content_and_style_losses_vanish_at_the_target():
    f = {"a": torch.rand(2, 3, 4, 4)}
    assert content_loss(f["a"], f["a"]) == 0
    assert style_loss(f, {"a": gram(f["a"])}, {"a": 1.0}) == 0
    assert style_loss(f, {"a": torch.zeros(1, 3, 3)}, {"a": 2.0}) > 0


def test_total_variation():
    assert tv_loss(torch.full((1, 3, 5, 5), 0.3)) == 0
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 3, 4, 4) * 0.1
    torch.testing.assert_close(tv_loss(ramp), torch.tensor(0.01))


@pytest.fixture
def perceptual(vgg_weights) -> PerceptualLoss:
    loss = PerceptualLoss({"relu4_2": 1.0}, GATYS_STYLE, content_weight=1.0, style_weight=20.0,
                          tv_weight=1.0)
    loss.set_style([stripes(64, 64)])
    return loss


def test_painting_itself_has_no_style_or_content_loss(perceptual):
    s = stripes(64, 64)
    terms = perceptual(s, content=s)
    assert float(terms["content"]) == 0
    other = perceptual(smooth_image(64, 64), content=s)
    assert float(terms["style"]) < 1e-6 * float(other["style"])


def test_batch_loss_is_the_mean_of_per_image_losses(perceptual):
    a, b = smooth_image(32, 32, seed=1), smooth_image(32, 32, seed=2)
    ca, cb = smooth_image(32, 32, seed=3), smooth_image(32, 32, seed=4)
    batch = perceptual(torch.cat([a, b]), content=torch.cat([ca, cb]))
    one, two = perceptual(a, content=ca), perceptual(b, content=cb)
    for key in ("content", "style", "tv", "total"):
        torch.testing.assert_close(batch[key], (one[key] + two[key]) / 2, rtol=1e-4, atol=0)


def test_terms_add_up_and_weights_scale_them(perceptual):
    x, c = smooth_image(32, 32, seed=1), smooth_image(32, 32, seed=2)
    terms = perceptual(x, content=c)
    torch.testing.assert_close(terms["total"], terms["content"] + terms["style"] + terms["tv"])
    doubled = perceptual(x, content=c, style_weight=40.0)
    torch.testing.assert_close(doubled["style"], 2 * terms["style"])
    targets = perceptual.content_targets(c)
    torch.testing.assert_close(perceptual(x, content_targets=targets)["total"], terms["total"])


def test_pixel_term_is_the_weighted_rgb_mse_and_joins_the_total(perceptual):
    x, c = smooth_image(32, 32, seed=1), smooth_image(32, 32, seed=2)
    assert "pixel" not in perceptual(x, content=c)  # off by default
    perceptual.pixel_weight = 1000.0
    terms = perceptual(x, content=c)
    torch.testing.assert_close(terms["pixel"], 1000.0 * ((x - c) ** 2).mean())
    torch.testing.assert_close(terms["total"], terms["content"] + terms["style"] + terms["tv"]
                               + terms["pixel"])
    with pytest.raises(ValueError, match="pixel_weight needs the content images"):
        perceptual(x, content_targets=perceptual.content_targets(c))


def test_pooled_pixel_term_compares_the_layout_not_the_strokes(perceptual):
    c = smooth_image(32, 32, seed=2)
    checker = (torch.arange(32).view(-1, 1) + torch.arange(32)) % 2 * 0.2 - 0.1  # +-0.1
    x = c + checker  # c with fine strokes on top: the same 4x4 block means
    perceptual.pixel_weight, perceptual.pixel_pool = 1000.0, 4
    assert perceptual(x, content=c)["pixel"] < 1e-3 * 1000.0 * ((x - c) ** 2).mean()
    shifted = c.roll(8, dims=-1)  # the layout moved
    blocks = torch.nn.functional.avg_pool2d
    torch.testing.assert_close(perceptual(shifted, content=c)["pixel"],
                               1000.0 * ((blocks(shifted, 4) - blocks(c, 4)) ** 2).mean())
    assert perceptual(shifted, content=c)["pixel"] > 0.1 * 1000.0 * ((shifted - c) ** 2).mean()
    with pytest.raises(ValueError, match="pixel_pool must be at least 1"):
        PerceptualLoss({"relu1_1": 1.0}, {"relu1_1": 1.0}, pixel_pool=0)


def test_blended_targets_are_the_weighted_mean_of_grams(perceptual):
    a, b = stripes(48, 48), smooth_image(48, 48)
    perceptual.set_style([a])
    ga = perceptual.gram_relu3_1.clone()
    perceptual.set_style([b])
    gb = perceptual.gram_relu3_1.clone()
    perceptual.set_style([a, b], blend=[3.0, 1.0])
    torch.testing.assert_close(perceptual.gram_relu3_1, 0.75 * ga + 0.25 * gb)


def test_gradient_reaches_the_image(perceptual):
    x = smooth_image(32, 32).requires_grad_(True)
    perceptual(x, content=smooth_image(32, 32, seed=5))["total"].backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_loss_needs_a_style_first(vgg_weights):
    loss = PerceptualLoss({"relu4_2": 1.0}, {"relu1_1": 1.0})
    with pytest.raises(RuntimeError, match="set_style"):
        loss(torch.rand(1, 3, 16, 16), content=torch.rand(1, 3, 16, 16))


def test_loss_config_takes_its_weights_from_the_style(vgg_weights):
    with initialize_config_module(config_module="fastnst.conf", version_base="1.3"):
        cfg = compose(config_name="gatys", overrides=["style=the_scream", "style.tv_weight=3.5"])
    loss = instantiate(cfg.loss)
    assert isinstance(loss, PerceptualLoss)
    assert loss.content_layers == {"relu4_2": 1.0}
    assert loss.style_layers == GATYS_STYLE
    assert loss.style_weight == cfg.style.style_weight and loss.tv_weight == 3.5
