"""Benchmark training: images/s of a full training step, and the VGG loss network's share of it.

    python scripts/bench_train.py   # reads ../shared, or FASTNST_VGG19 and FASTNST_STYLE_DIR

A step is what fastnst.train does: network forward, perceptual loss (VGG19 on the photo and on the
result), backward, Adam. The VGG share is 1 - (a step with a trivial loss) / (a full step). The
photo's own VGG pass only has to reach the content layer (relu4_2); "s / step, full photo pass"
is the same step with the photo run through to relu5_1, as before that cut. Prints a Markdown
table; CUDA rows are added when a GPU is present.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import time
from collections.abc import Callable

import torch
from common import (
    DEVICE_TYPES,
    build_loss,
    build_network,
    machine,
    model_names,
    model_spec,
    train_config,
    use_shared_data,
)
from common import devices as available_devices

from fastnst.device import bf16_is_fast
from fastnst.losses import PerceptualLoss
from fastnst.paintings import read_painting
from fastnst.transformer import TransformerNet


def seconds_per_step(step: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Median wall time of `step` over `repeats` runs, after two warm-up runs."""
    times = []
    for i in range(repeats + 2):
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step(net: TransformerNet, loss: PerceptualLoss, opt: torch.optim.Optimizer,
               x: torch.Tensor, precision: str, full: bool = True,
               full_photo_pass: bool = False) -> None:
    """One training step on the batch `x`; `full=False` swaps the VGG loss for a trivial one;
    `full_photo_pass` runs the photo through every VGG tap instead of only to the content layer."""
    opt.zero_grad(set_to_none=True)
    autocast = (torch.autocast(x.device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    with autocast:
        out = net(x)
        if not full:
            total = out.float().mean()
        elif full_photo_pass:
            with torch.no_grad():
                targets = {k: v for k, v in loss.vgg(x).items() if k in loss.content_layers}
            total = loss(out, content_targets=targets)["total"]
        else:
            total = loss(out, content=x)["total"]
    total.backward()
    opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=model_spec, default=model_names(),
                        help="conf/model/ names; NAME:field=value,... changes fields"
                             " (fast:blocks=8)")
    parser.add_argument("--crops", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--devices", nargs="+", choices=DEVICE_TYPES,
                        help="which to measure (default: the CPU, and CUDA when present)")
    args = parser.parse_args()
    use_shared_data()

    devices = available_devices(args.devices)
    print(machine())
    print("\n| device | precision | model | crop | batch | s / step | images / s | VGG share |"
          " s / step, full photo pass |")
    print("|---|---|---|---|---|---|---|---|---|")
    for device in devices:
        precisions = ["fp32"] + (["bf16"] if bf16_is_fast(device) else [])
        for model in args.models:
            cfg = train_config(f"model={model}")  # its default style and style_size
            loss = build_loss(cfg.style.name, device)
            loss.set_style([read_painting(cfg.style, max_size=cfg.style_size).to(device)])
            net = build_network(model).to(device)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            for precision in precisions:
                for crop in args.crops:
                    x = torch.rand(args.batch, 3, crop, crop, device=device)
                    run = functools.partial(train_step, net, loss, opt, x, precision)
                    full = seconds_per_step(run, device, args.repeats)
                    net_only = seconds_per_step(functools.partial(run, full=False), device,
                                                args.repeats)
                    before = seconds_per_step(functools.partial(run, full_photo_pass=True),
                                              device, args.repeats)
                    print(f"| {device.type} | {precision} | {model} | {crop} | {args.batch} |"
                          f" {full:.3f} | {args.batch / full:.2f} |"
                          f" {1 - net_only / full:.0%} | {before:.3f} |", flush=True)


if __name__ == "__main__":
    main()
