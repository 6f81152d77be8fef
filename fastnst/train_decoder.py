"""Train a universal style transfer decoder: `python -m fastnst.train_decoder layer=relu4_1`.

Like `python -m fastnst.train`, each run has its own folder (`outputs/decoder/<layer>/<date>/`)
with logs, samples (photos above, reconstructions below) and Lightning checkpoints;
`resume=true` goes on from the newest run of the same layer; `init=shipped` (or a decoder file)
starts a new run from those weights. At the end it writes
`decoder_<layer>.safetensors` (float32, with its layer and training in the metadata).
`paintings=[...]` trains a decoder to paint instead (fastnst.training.decoder), written as
`painter.safetensors`. `output=` (a `.safetensors` file or a folder) is checked before the
training as every command's outputs are (fastnst.files.check_output): never one of the run's
paintings, its `init=` decoder or its checkpoint, and an existing file only with
`overwrite=true`.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from fastnst.console import prepare_console, shown
from fastnst.errors import FastnstError, print_error


def run(cfg: DictConfig) -> Path | None:
    """Train as `conf/decoder.yaml` says; return the decoder file (None on ranks > 0)."""
    import pytorch_lightning as pl
    from hydra.core.hydra_config import HydraConfig
    from safetensors.torch import save_file

    from fastnst.config_checks import ConfigError
    from fastnst.files import atomic_path
    from fastnst.training.checkpoints import check_checkpoint, resume_checkpoint
    from fastnst.training.decoder import DecoderModule
    from fastnst.training.run import instantiate, model_output
    from fastnst.training.trainer import build_trainer
    from fastnst.universal import (
        DECODER_FORMAT,
        DECODER_LAYERS,
        PAINTER,
        TRANSFORMS,
        Decoder,
    )

    if cfg.layer not in DECODER_LAYERS:
        raise ConfigError(f"layer={shown(cfg.layer)}: must be one of {', '.join(DECODER_LAYERS)}")
    if cfg.transform not in TRANSFORMS:
        raise ConfigError(f"transform={shown(cfg.transform)}: must be one of"
                          f" {', '.join(TRANSFORMS)}")
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    ckpt_path = resume_checkpoint(cfg.resume, run_dir)
    name = PAINTER if cfg.paintings else f"decoder_{cfg.layer}"
    output = model_output(cfg, name, ckpt_path, decoder_inputs(cfg))  # before the training
    vetted = check_checkpoint(ckpt_path, Decoder(cfg.layer, cfg.transform), prefix="decoder.") \
        if ckpt_path else None
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    data = instantiate(cfg.data)
    data.setup()
    module = DecoderModule(cfg.layer, cfg.weights, lr=cfg.optim.lr,
                           warmup_steps=cfg.optim.warmup_steps, final_lr=cfg.optim.final_lr,
                           feature_weight=cfg.feature_weight,
                           val_photos=[photo for _, photo in data.val_images()],
                           sample_every=cfg.sample_every, sample_dir=run_dir / "samples",
                           paintings=training_paintings(cfg.paintings),
                           style_weight=cfg.style_weight, hue_jitter=cfg.hue_jitter,
                           seed=cfg.seed, transform=cfg.transform)
    if cfg.init and ckpt_path is None:
        module.decoder.load_state_dict(initial_decoder(str(cfg.init), cfg.layer).state_dict())
        # (a WCT decoder may start an AdaIN run: the weights fit either transform)
    trainer = build_trainer(cfg, run_dir)
    if vetted is not None:
        trainer.strategy.checkpoint_io.vetted = (ckpt_path, vetted)
    trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    if not trainer.is_global_zero:
        return None
    losses = module.final_losses()
    config = OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]),
                                    resolve=True)
    objective = "paint" if cfg.paintings else "reconstruct"
    path = run_dir / f"{name}.safetensors"
    with atomic_path(path) as tmp:
        save_file({k: v.detach().float().contiguous() for k, v in
                   module.decoder.state_dict().items()}, str(tmp),
                  metadata={"format": DECODER_FORMAT, "layer": str(cfg.layer),
                            "transform": str(cfg.transform),
                            "objective": objective, "steps": str(trainer.global_step),
                            "losses": json.dumps(losses), "training": json.dumps(config)})
    if output is not None:
        with atomic_path(output, replace=cfg.overwrite) as tmp:
            shutil.copyfile(path, tmp)
    figures = ", ".join(f"{k} {v:.4g}" for k, v in losses.items() if k != "total")
    print(f"wrote {shown(path)} after {trainer.global_step} steps; {figures} (the mean of the"
          " last steps)")
    return path


def decoder_inputs(cfg: DictConfig) -> list[Path]:
    """The decoder `init=` names, a file that `output=` must never replace (its `paintings=`
    are safe already: an output must be a `.safetensors` file)."""
    from fastnst.config_checks import unset
    from fastnst.universal import shipped_decoders

    if unset(cfg.init):
        return []
    init = str(cfg.init)
    if init == "shipped":
        return [shipped_decoders()[cfg.layer]] if cfg.layer in shipped_decoders() else []
    return [Path(init).expanduser()]


def training_paintings(specs: list[str]) -> list:  # -> list[torch.Tensor]
    """The paintings `paintings=` names (style names, image files, or folders of them: a style
    corpus, scripts/make_style_corpus.py), each `(1, 3, H, W)` at the long side the universal
    path takes a painting at (fastnst.universal.PAINTING_SIDE); StyleError naming one that
    cannot be found."""
    from fastnst.files import files_under
    from fastnst.images import IMAGE_SUFFIXES, resize_long_side
    from fastnst.paintings import load_painting
    from fastnst.universal import PAINTING_SIDE

    files: list[str] = []
    for spec in specs or []:
        folder = Path(str(spec)).expanduser()
        files += map(str, files_under(folder, IMAGE_SUFFIXES)) if folder.is_dir() else [str(spec)]
    return [resize_long_side(load_painting(file, max_size=4 * PAINTING_SIDE), PAINTING_SIDE)
            for file in files]


def initial_decoder(init: str, layer: str):  # -> fastnst.universal.Decoder
    """The decoder `init=` names: "shipped" (fastnst's own for `layer`) or a decoder file,
    checked to be of `layer` (ConfigError, ModelFileError otherwise)."""
    from fastnst.config_checks import ConfigError
    from fastnst.universal import load_decoder, shipped_decoders

    if init == "shipped":
        if layer not in shipped_decoders():
            raise ConfigError(f"init=shipped: no {layer} decoder ships with fastnst")
        init = str(shipped_decoders()[layer])
    decoder = load_decoder(Path(init).expanduser())
    if decoder.layer != layer:
        raise ConfigError(f"init={shown(init)} is a {decoder.layer} decoder, not {layer}")
    return decoder


def main() -> None:
    """Console entry point: `python -m fastnst.train_decoder` (Hydra overrides)."""
    prepare_console()
    import hydra

    @hydra.main(version_base="1.3", config_path="pkg://fastnst.conf", config_name="decoder")
    def _main(cfg: DictConfig) -> None:
        try:
            run(cfg)
        except FastnstError as e:
            sys.exit(print_error("fastnst-train-decoder", e))
        except KeyboardInterrupt:
            print("fastnst-train-decoder: interrupted; checkpoints, if any, are in the run"
                  " folder", file=sys.stderr)
            sys.exit(130)

    _main()


if __name__ == "__main__":
    main()
