"""TransformerNet: architecture, any input size, output range, no transposed convolutions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fastnst.transformer import TransformerConfig, TransformerNet


def test_paper_widths_have_about_1_68_million_parameters():
    n = sum(p.numel() for p in TransformerNet().parameters())
    assert 1.66e6 < n < 1.70e6, n


def test_uses_resize_convolutions_and_instance_norm():
    net = TransformerNet()
    kinds = {type(m) for m in net.modules()}
    assert nn.ConvTranspose2d not in kinds
    assert nn.InstanceNorm2d in kinds and nn.ReflectionPad2d in kinds
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


@pytest.mark.parametrize(("h", "w"), [(1, 1), (5, 7), (17, 30), (32, 32), (33, 19)])
def test_any_size_gives_the_same_size_in_range(h, w):
    net = TransformerNet(TransformerConfig(channels=8, blocks=1))
    with torch.no_grad():
        y = net(torch.rand(2, 3, h, w))
    assert y.shape == (2, 3, h, w)
    assert float(y.min()) >= 0 and float(y.max()) <= 1


def test_width_and_blocks_are_configurable():
    slim = TransformerNet(TransformerConfig(channels=16, blocks=3))
    assert len(slim.residuals) == 3
    assert slim.encoder[0][0][1].out_channels == 16
    assert sum(p.numel() for p in slim.parameters()) < 0.2 * sum(
        p.numel() for p in TransformerNet().parameters())


def test_uniform_image_stays_uniform_at_odd_sizes():
    # Zero padding or a misplaced crop would darken or shift the borders.
    net = TransformerNet(TransformerConfig(channels=8, blocks=1)).eval()
    with torch.no_grad():
        y = net(torch.full((1, 3, 13, 21), 0.4))
    assert (y - y[..., :1, :1]).abs().max() < 1e-5


def test_gradients_reach_every_parameter():
    net = TransformerNet(TransformerConfig(channels=8, blocks=2))
    net(torch.rand(2, 3, 20, 20)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
