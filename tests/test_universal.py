"""Universal style transfer (fastnst.universal): the feature transform gives the painting's
statistics, and the decoders mirror VGG19's shapes."""

from __future__ import annotations

import pytest
import torch

from fastnst.universal import DECODER_LAYERS, Decoder, wct


def _features(channels: int, n: int, seed: int, mix: torch.Tensor | None = None,
              shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(channels, n, generator=g)
    if mix is not None:
        x = mix @ x
    return (x + shift).reshape(1, channels, n // 10, 10)


def test_wct_gives_the_paintings_mean_and_covariance_and_keeps_the_photos_order():
    g = torch.Generator().manual_seed(1)
    mix = torch.randn(6, 6, generator=g)  # the painting's features are correlated
    photo, painting = _features(6, 400, 2), _features(6, 900, 3, mix=mix, shift=2.0)
    out = wct(photo, painting).reshape(6, -1)
    target = painting.reshape(6, -1)
    torch.testing.assert_close(out.mean(1), target.mean(1), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cov(out), torch.cov(target), atol=2e-3, rtol=1e-3)
    # Where the photo is bright the result is, in its whitened order: not the painting's pixels.
    whitened = photo.reshape(6, -1)
    assert torch.corrcoef(torch.stack([whitened[0], out[0]]))[0, 1].abs() > 0.1
    torch.testing.assert_close(wct(photo, painting, strength=0.0), photo)
    other = wct(photo, _features(6, 900, 4, mix=torch.randn(6, 6, generator=g)))
    assert (other - wct(photo, painting)).abs().mean() > 0.1  # the painting decides


@pytest.mark.parametrize("layer", DECODER_LAYERS)
def test_each_decoder_mirrors_vgg19_down_to_its_layer(layer):
    scale = 2 ** DECODER_LAYERS.index(layer)
    decoder = Decoder(layer)
    out = decoder(torch.zeros(2, decoder.channels, 48 // scale, 64 // scale))
    assert out.shape == (2, 3, 48, 64)


def _train_decoder(run_dir, photos, *extra):
    from hydra import compose, initialize_config_module
    from hydra.core.hydra_config import HydraConfig

    from fastnst.train_decoder import run

    with initialize_config_module("fastnst.conf", version_base="1.3"):
        cfg = compose("decoder", return_hydra_config=True, overrides=[
            "layer=relu2_1", f"data.root={photos}", "data.crop_size=32", "data.short_side=40",
            "data.batch_size=2", "data.workers=0", "data.val_count=1", "data.val_size=32",
            "sample_every=2", "checkpoint_every=2", "optim.warmup_steps=1", "optim.lr=1e-3",
            "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
            f"hydra.runtime.output_dir={run_dir}", *extra])
    HydraConfig.instance().set_config(cfg)
    return run(cfg)


def test_a_decoder_learns_to_reconstruct_photos_and_resumes(vgg_weights, tmp_path):
    from helpers import smooth_image
    from safetensors import safe_open

    from fastnst.images import write_image
    from fastnst.training.decoder import DecoderModule

    photos = tmp_path / "photos"
    for i in range(6):
        write_image(smooth_image(40, 48, seed=i), photos / f"p{i}.jpg")
    first = _train_decoder(tmp_path / "runs" / "a", photos, "trainer.max_steps=2")
    torch.manual_seed(0)  # the run's seed: its starting weights
    module = DecoderModule("relu2_1", str(vgg_weights))
    batch = torch.stack([smooth_image(32, 32, seed=i)[0] for i in range(2)])
    before = module.terms(batch)["total"].item()
    with safe_open(str(first), "pt") as f:
        assert f.metadata()["layer"] == "relu2_1" and f.metadata()["steps"] == "2"
        module.decoder.load_state_dict({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118
    assert module.terms(batch)["total"].item() < before  # two steps already reconstruct better
    resumed = _train_decoder(tmp_path / "runs" / "b", photos, "trainer.max_steps=4",
                             "resume=true")
    with safe_open(str(resumed), "pt") as f:
        assert f.metadata()["steps"] == "4"
    assert (tmp_path / "runs" / "b" / "samples").is_dir()
