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


FAST = TransformerConfig(channels=48, blocks=5, design="fast")


def _macs(net: nn.Module, h: int, w: int) -> int:
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        total += output[0].numel() * (module.in_channels // module.groups) * \
            module.kernel_size[0] * module.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(torch.rand(1, 3, h, w))
    for handle in handles:
        handle.remove()
    return total


def test_the_fast_design_costs_about_1_gmac_at_640x480_against_47_for_johnson():
    fast, johnson = _macs(TransformerNet(FAST), 480, 640), _macs(TransformerNet(), 480, 640)
    assert 0.8e9 < fast < 1.1e9 and 45e9 < johnson < 50e9, (fast, johnson)
    assert sum(p.numel() for p in TransformerNet(FAST).parameters()) < 50_000
    kinds = {type(m) for m in TransformerNet(FAST).modules()}
    assert nn.ConvTranspose2d not in kinds and nn.ReflectionPad2d not in kinds


@pytest.mark.parametrize(("h", "w"), [(1, 1), (5, 7), (17, 30), (32, 32), (33, 19), (480, 640)])
def test_the_fast_design_takes_any_size(h, w):
    net = TransformerNet(TransformerConfig(channels=9, blocks=2, design="fast"))
    with torch.no_grad():
        y = net(torch.rand(2, 3, h, w))
    assert y.shape == (2, 3, h, w) and float(y.min()) >= 0 and float(y.max()) <= 1


def test_the_fast_design_starts_without_checkerboard():
    # The last layer starts as a nearest-neighbour upsampling: the four pixels of each 2x2 cell
    # of the pixel shuffle come out alike, so there is no checkerboard to unlearn.
    net = TransformerNet(TransformerConfig(channels=9, blocks=1, design="fast")).eval()
    with torch.no_grad():
        y = net(torch.rand(1, 3, 32, 32))
    cells = y.unfold(2, 2, 2).unfold(3, 2, 2)  # (1, 3, 16, 16, 2, 2)
    assert (cells - cells[..., :1, :1]).abs().max() < 1e-6


def test_an_unknown_design_is_refused():
    from fastnst.errors import UsageError

    with pytest.raises(UsageError, match="design must be one of johnson, fast"):
        TransformerConfig(design="tiny")


@pytest.mark.parametrize("design", ["fast", "johnson"])
def test_a_multi_style_network_blends_its_styles_through_the_mix(design):
    from fastnst.transformer import StyleNorm

    torch.manual_seed(0)
    net = TransformerNet(TransformerConfig(channels=12, blocks=2, design=design, styles=3))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, StyleNorm):  # styles that differ
                m.weight.add_(torch.randn_like(m.weight))
                m.bias.add_(torch.randn_like(m.bias))
    net.eval()
    x = torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        a, b = net(x, torch.tensor([1.0, 0, 0])), net(x, torch.tensor([0, 1.0, 0]))
        assert (a - b).abs().mean() > 0.01  # the styles differ
        torch.testing.assert_close(net(x, torch.tensor([3.0, 0, 0])), a)  # normalised
        half = net(x, torch.tensor([0.5, 0.5, 0]))
        # Halfway between the styles' scales and shifts: a picture between theirs.
        assert (half - a).abs().mean() < (b - a).abs().mean()
        assert (half - b).abs().mean() < (b - a).abs().mean()
    for bad in (None, torch.ones(2)):
        with pytest.raises(ValueError, match=r"needs a mix of shape \(3,\)"):
            net(x, bad)
    with pytest.raises(ValueError, match="for multi-style networks"):
        TransformerNet(TransformerConfig(channels=8, blocks=1))(x, torch.ones(1))
    # Per-style rows: each StyleNorm holds (styles, channels) scales and shifts; the fast design
    # has one in every residual block as well as its three norms.
    rows = [m for m in net.modules() if isinstance(m, StyleNorm)]
    assert all(m.weight.shape[0] == 3 for m in rows)
    assert len(rows) == (3 + 2 if design == "fast" else 3 + 2 * 2 + 2)
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in net.modules())


def test_one_style_networks_keep_their_weights_layout():
    """Model files of one style written before multi-style networks existed still load: the
    same tensor names and no `styles` in the architecture metadata."""
    config = TransformerConfig(channels=48, blocks=5, design="fast")
    assert "styles" not in config.as_dict()
    names = set(TransformerNet(config).state_dict())
    assert "fast.down.1.weight" in names and not any("residuals.0.body.5" in n for n in names)
