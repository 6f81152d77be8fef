"""Train one fast style network: `python -m fastnst.train style=starry_night data.root=PHOTOS`.

Each run writes to its own folder (`outputs/train/<style>/<date_time>/`): the resolved config
(`.hydra/`), `train.log`, logs (`tensorboard/`, `csv/metrics.csv`), sample grids (`samples/`),
Lightning checkpoints (`checkpoints/`, every `checkpoint_every` steps and at the end; `last.ckpt`
the newest) and, at the end, the deployable model `<style>.safetensors`. `resume=true` continues
the newest run of the same style from its `last.ckpt`, at the same step, learning rate,
optimizer state and place in the data (fastnst.training.data.SampleOrder), so a killed and
resumed run ends with an unbroken run's weights. `init=` starts from a model instead of random
weights (a shipped style or a `.safetensors` file of the configured architecture): fine-tuning
a shipped style on your own photos is `style=starry_night init=starry_night data.root=MY_PHOTOS`.

The run itself is fastnst.training.run; this module is the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from fastnst.console import prepare_console
from fastnst.errors import FastnstError, print_error


def main(config_name: str = "train", prog: str = "fastnst-train") -> None:
    """Console entry point: `fastnst-train` / `python -m fastnst.train` (Hydra overrides), and
    with `config_name="distill"` `python -m fastnst.distill`."""
    prepare_console()
    import hydra

    from fastnst.config_checks import prepare_overrides

    prepare_overrides(prog)

    @hydra.main(version_base="1.3", config_path="pkg://fastnst.conf", config_name=config_name)
    def _main(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig

        from fastnst.training.run import remove_if_untouched, run

        try:
            run(cfg)
        except FastnstError as e:
            remove_if_untouched(Path(HydraConfig.get().runtime.output_dir))
            sys.exit(print_error(prog, e))
        except KeyboardInterrupt:  # before or after the training loop (it handles its own)
            print(f"{prog}: interrupted; no model written (checkpoints, if any, are in the run"
                  " folder)", file=sys.stderr)
            sys.exit(130)

    _main()


if __name__ == "__main__":
    main()
