"""Training: the loss drops, runs resume where they stopped, DDP runs, corrupt photos are skipped,
and the final model file reloads. Tiny photos and few steps; needs the VGG19 weights."""

from __future__ import annotations

import csv
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ctrl_c_default, smooth_image, stripes, tiny_model, wait_for_file
from hostile import PicklePayload
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from fastnst.images import read_image, write_image
from fastnst.model_files import load_model, read_metadata
from fastnst.paintings import expand_style_path
from fastnst.training.checkpoints import CheckpointError, check_checkpoint, resume_checkpoint
from fastnst.training.module import (
    NonFiniteLossError,
    StyleTask,
    StyleTransferModule,
    lr_factor,
    trainable,
)
from fastnst.training.run import run
from fastnst.training.tasks import initial_weights
from fastnst.training.trainer import resolve_precision
from fastnst.transformer import TransformerConfig, TransformerNet


@pytest.fixture
def photos(tmp_path) -> Path:
    """Eight small photos in nested folders."""
    root = tmp_path / "photos"
    for i in range(8):
        write_image(smooth_image(40 + i, 52, seed=i), root / f"set{i % 2}" / f"p{i}.jpg")
    return root


@pytest.fixture
def painting(tmp_path) -> Path:
    # Muted stripes: fully saturated ones drive the output sigmoid to its flat ends, where a
    # few steps learn little and the test would hinge on floating-point noise.
    return write_image(0.3 + 0.4 * stripes(48, 48), tmp_path / "stripes.png")


LR = 0.002  # at 0.01 some seeds saturate the output in the first steps and learn nothing


def _overrides(photos: Path, painting: Path, steps: int, *extra: str) -> list[str]:
    return [*expand_style_path([f"style={painting}"]), f"data.root={photos}",
            "data.crop_size=32", "data.short_side=40", "data.batch_size=2", "data.workers=0",
            "data.val_count=2", "data.val_size=32", "style_size=48", "sample_every=2",
            "checkpoint_every=2", "optim.warmup_steps=2", f"optim.lr={LR}",
            f"trainer.max_steps={steps}", "trainer.enable_progress_bar=false",
            "trainer.log_every_n_steps=1", *extra]


def _train(run_dir: Path, overrides: list[str], config: str = "train") -> Path | None:
    """Run `fastnst.train` (or with config="distill", `fastnst.distill`) in this process, writing
    to `run_dir`."""
    with initialize_config_module("fastnst.conf", version_base="1.3"):
        cfg = compose(config, return_hydra_config=True,
                      overrides=[*overrides, f"hydra.run.dir={run_dir}",
                                 f"hydra.runtime.output_dir={run_dir}"])
    HydraConfig.instance().set_config(cfg)
    return run(cfg)


def _metrics(run_dir: Path, key: str) -> dict[int, float]:
    """Logged values of `key` by step, from the run's CSV log."""
    with open(run_dir / "csv" / "metrics.csv") as f:
        return {int(r["step"]): float(r[key]) for r in csv.DictReader(f) if r.get(key)}


def test_lr_warms_up_then_decays_to_its_final_factor():
    assert lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(55, 10, 100, 0.1) == pytest.approx(0.55)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(5000, 10, -1, 0.1) == 1.0  # no max_steps: constant after warm-up


def test_precision_auto_is_fp32_on_cpus_without_fast_bf16(monkeypatch):
    monkeypatch.setattr("fastnst.device.bf16_is_fast", lambda device: False)
    assert resolve_precision("auto", "cpu") == "32-true"
    monkeypatch.setattr("fastnst.device.bf16_is_fast", lambda device: True)
    assert resolve_precision("auto", "cpu") == "bf16-mixed"
    assert resolve_precision("16-mixed", "gpu") == "16-mixed"


def test_resume_true_finds_the_newest_other_run(tmp_path):
    runs = tmp_path / "starry"
    old, new, current = (runs / n / "checkpoints" / "last.ckpt" for n in ("a", "b", "c"))
    for i, p in enumerate((old, new, current)):
        p.parent.mkdir(parents=True)
        p.write_bytes(b"x")
        os.utime(p, (1000 + i, 1000 + i))
    assert resume_checkpoint(True, runs / "c") == new
    assert resume_checkpoint(False, runs / "c") is None
    with pytest.raises(CheckpointError, match="nothing to resume"):
        resume_checkpoint(True, tmp_path / "elsewhere" / "run")
    with pytest.raises(CheckpointError, match=r"nope\.ckpt"):
        resume_checkpoint(str(tmp_path / "nope.ckpt"), runs / "c")


@pytest.mark.slow  # a subprocess, or seconds of work
def test_a_few_steps_lower_the_loss_and_write_a_model(vgg_weights, photos, painting,
                                                      tmp_path):
    run_dir = tmp_path / "runs" / "one"
    model = _train(run_dir, _overrides(photos, painting, 30))
    total = _metrics(run_dir, "train/total")
    assert sorted(total) == list(range(30))
    first, last = (sum(total[s] for s in steps) / 5 for steps in (range(5), range(25, 30)))
    # Measured over seeds 0-7 in fp32 and bf16-mixed: 0.53-0.80 (noisy: random crops).
    assert last < 0.9 * first
    val = _metrics(run_dir, "val/total")  # the same validation photos every 2 steps
    assert sorted(val) == list(range(2, 31, 2))
    assert val[30] < 0.8 * val[2]  # measured over the same 16 runs: 0.43-0.67
    assert (run_dir / "samples" / "step_000030.png").is_file()
    assert {"step000002.ckpt", "last.ckpt"} <= {p.name for p in (run_dir / "checkpoints").iterdir()}
    # The checkpoints leave the 80 MB VGG out.
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state and all(k.startswith("net.") for k in state)

    assert model == run_dir / "stripes.safetensors"
    net, meta = load_model(model)
    assert meta["style"] == "stripes" and meta["steps"] == 30
    assert meta["training"]["model"]["channels"] == 32 and meta["processes"] == 1
    assert meta["losses"]["total"] < first
    photo = smooth_image(33, 47)
    with torch.no_grad():
        out = net(photo)
    assert out.shape == photo.shape and 0 <= float(out.min()) <= float(out.max()) <= 1


TRAINING_STEP = StyleTransferModule.training_step


def _ctrl_c_during_step(monkeypatch: pytest.MonkeyPatch, step: int, presses: int) -> None:
    """Send this process `presses` SIGINTs while training step `step` (1-based) runs."""
    def training_step(self, *args):
        if self.global_step == step - 1:
            for _ in range(presses):
                os.kill(os.getpid(), signal.SIGINT)
        return TRAINING_STEP(self, *args)

    monkeypatch.setattr(StyleTransferModule, "training_step", training_step)


def test_an_interrupted_run_resumes_at_its_step_lr_and_optimizer_state(
        vgg_weights, photos, painting, tmp_path, monkeypatch, capfd, ctrl_c_enabled):
    _ctrl_c_during_step(monkeypatch, 5, presses=1)
    runs = tmp_path / "runs"
    overrides = _overrides(photos, painting, 10, "optim.final_lr=0.5")
    with pytest.raises(SystemExit):  # Lightning exits after a Ctrl-C
        _train(runs / "first", overrides)
    err = capfd.readouterr().err
    assert "stopping at the end of this step" in err
    assert "interrupted at step 5" in err  # step 5 finished, then it stopped
    assert not list((runs / "first").glob("*.safetensors"))
    last = runs / "first" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=True)
    assert state["global_step"] == 5 and state["fastnst"]["seconds"] > 0
    state["fastnst"]["seconds"] = 600.0  # as if the first run had trained for 10 minutes
    torch.save(state, last)

    monkeypatch.setattr(StyleTransferModule, "training_step", TRAINING_STEP)  # no more Ctrl-C
    model = _train(runs / "second", [*overrides, "resume=true"])
    assert model is not None and read_metadata(model)["steps"] == 10
    assert 600 < read_metadata(model)["seconds"] < 900  # the model counts both runs' time
    steps = _metrics(runs / "second", "train/total")
    assert sorted(steps) == list(range(5, 10))  # continued at step 5, not from 0
    lrs = _metrics(runs / "second", "lr-Adam")
    assert lrs[5] == pytest.approx(LR * lr_factor(5, 2, 10, 0.5))
    opt = torch.load(runs / "second" / "checkpoints" / "last.ckpt", weights_only=True)
    assert opt["optimizer_states"][0]["state"][0]["step"] == 10  # Adam's moments carried over


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_periodic_checkpoint(
        vgg_weights, photos, painting, tmp_path, monkeypatch, capfd, ctrl_c_enabled):
    _ctrl_c_during_step(monkeypatch, 4, presses=2)
    run_dir = tmp_path / "runs" / "forced"
    with pytest.raises(SystemExit):
        _train(run_dir, _overrides(photos, painting, 10))
    last = run_dir / "checkpoints" / "last.ckpt"
    assert (f"stopped mid-step at step 3; nothing saved. The last good checkpoint is {last}"
            " (step 2); continue with resume=true") in capfd.readouterr().err
    assert torch.load(last, weights_only=True)["global_step"] == 2  # the periodic one, whole
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back


@pytest.mark.parametrize(("override", "message"), [
    ("data.crop_size=0", "data.crop_size=0: must be an integer in [16, 4096]"),
    ("data.crop_size=-8", "data.crop_size=-8: must be an integer in [16, 4096]"),
    ("style_size=0", "style_size=0: must be an integer in [16, 4096]"),
    ("data.short_side=60000", "data.short_side=60000: must be an integer in [16, 16384] or null"),
    ("data.short_side=20", "data.short_side=20 is smaller than data.crop_size=32: the crops"
                           " would not fit"),
    ("trainer.max_steps=0", "trainer.max_steps=0: must be an integer in [1, inf] or -1"),
    ("style.style_weight=-1", "style.style_weight=-1: must be a number in [0, inf]"),
    ("optim.lr=0", "optim.lr=0: must be a number in [1e-09, 1]"),
    ("loss.pixel_pool=0", "loss.pixel_pool=0: must be an integer in [1, 4096]"),
    # Typed: a float where an integer goes, a seed no generator takes.
    ("data.batch_size=2.0", "data.batch_size=2.0: must be an integer in [1, 4096]"),
    ("data.crop_size=32.0", "data.crop_size=32.0: must be an integer in [16, 4096]"),
    ("trainer.max_steps=1.0", "trainer.max_steps=1.0: must be an integer in [1, inf] or -1"),
    ("seed=12345678901234567890123",
     "seed=12345678901234567890123: must be an integer in [0, 4294967295]"),
])
def test_options_out_of_range_are_refused_before_anything_loads(photos, painting, tmp_path,
                                                                 override, message):
    from fastnst.config_checks import ConfigError

    with pytest.raises(ConfigError) as error:
        _train(tmp_path / "run", [*_overrides(photos, painting, 4), override])
    assert str(error.value) == message
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_corrupt_photos_are_skipped_and_counted(vgg_weights, photos, painting, tmp_path,
                                                 caplog):
    (photos / "empty.jpg").write_bytes(b"")
    (photos / "set0" / "text.png").write_text("not an image")
    model = _train(tmp_path / "runs" / "c", _overrides(photos, painting, 5))
    assert model is not None
    meta = read_metadata(model)
    assert meta["steps"] == 5 and meta["skipped_images"] >= 2  # 10 files, 5 batches of 2
    warnings = [r.message for r in caplog.records if "unreadable" in r.message]
    assert any("empty.jpg" in w for w in warnings) and any("text.png" in w for w in warnings)


@pytest.mark.slow  # a subprocess, or seconds of work
def test_resume_refuses_foreign_checkpoints_in_one_line_without_running_them(tmp_path):
    net = TransformerNet(TransformerConfig(channels=8, blocks=1))
    other = tmp_path / "other.ckpt"  # a Lightning checkpoint of another architecture
    torch.save({"global_step": 3, "state_dict": {f"net.{k}": v for k, v in
                                                 TransformerNet().state_dict().items()}}, other)
    with pytest.raises(ValueError, match=r"other\.ckpt: does not fit the configured model= \("
                                         r"encoder\.0\.0\.1\.weight is \[32, 3, 9, 9\], the"
                                         r" architecture needs \[8, 3, 9, 9\]"):
        check_checkpoint(other, net)
    plain = tmp_path / "weights.ckpt"
    torch.save(net.state_dict(), plain)
    with pytest.raises(ValueError, match="not a Lightning training checkpoint"):
        check_checkpoint(plain, net)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.ckpt: not a PyTorch checkpoint"):
        check_checkpoint(text, net)

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"global_step": 1, "state_dict": PicklePayload(marker)}, evil)
    proc = subprocess.run([sys.executable, "-m", "fastnst.train", f"resume={evil}",
                           f"hydra.run.dir={tmp_path}/r"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and not marker.exists()
    assert proc.stderr.strip().splitlines() == [
        f"fastnst-train: error: {evil}: refused: it holds Python objects besides tensors, and"
        " loading them could run code"]


def _checkpoint(net: TransformerNet, **changes) -> dict:
    """A Lightning checkpoint of `net` as a run writes it, with `changes` (None: key removed)."""
    checkpoint = {"epoch": 0, "global_step": 3, "pytorch-lightning_version": "2.5",
                  "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                  "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {}}},
                  "callbacks": {}, "optimizer_states": [{"state": {}, "param_groups": []}],
                  "lr_schedulers": [], "fastnst": {}}
    checkpoint.update(changes)
    return {k: v for k, v in checkpoint.items() if v is not None}


def test_checkpoints_are_bounded_and_whole_before_a_run_resumes(tmp_path, monkeypatch):
    import zipfile

    from fastnst.training import checkpoints
    from fastnst.training.checkpoints import AtomicCheckpointIO

    net = TransformerNet(TransformerConfig(channels=8, blocks=1))
    good = tmp_path / "good.ckpt"
    torch.save(_checkpoint(net), good)
    vetted = check_checkpoint(good, net)
    assert vetted["global_step"] == 3
    io = AtomicCheckpointIO()  # Lightning gets what was checked, not the file read again
    io.vetted = (good, vetted)
    good.write_bytes(b"swapped")
    assert io.load_checkpoint(good) is vetted

    payload = torch.zeros(1_000_000)  # 4 MB that deflate to a few kB
    cases = {
        "deflated": (_checkpoint(net, fastnst={"x": payload}), "compressed entries"),
        "a payload outside the network": (
            _checkpoint(net, state_dict={**_checkpoint(net)["state_dict"], "extra": payload}),
            r"weights outside the network: extra"),
        "an unknown entry": (_checkpoint(net, payload=payload), "unknown entries: payload"),
        "no optimizer state": (_checkpoint(net, optimizer_states=None),
                               r"spoiled \(no optimizer state\); resume from another"),
        "an empty optimizer state": (_checkpoint(net, optimizer_states=[]), "no optimizer"),
        "garbage loop state": (_checkpoint(net, loops={"fit_loop": {"state_dict": 7}}),
                               r"spoiled \(no loop state\)"),
        "a step that is not a count": (_checkpoint(net, global_step=-5), "step is not a count"),
    }
    for case, (checkpoint, message) in cases.items():
        path = tmp_path / f"{case}.ckpt"
        torch.save(checkpoint, path)
        if case == "deflated":
            plain = path.with_suffix(".plain")
            path.rename(plain)
            with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w",
                                                                zipfile.ZIP_DEFLATED) as dst:
                for entry in src.infolist():
                    dst.writestr(entry.filename, src.read(entry))
            assert path.stat().st_size < 500_000
        with pytest.raises(CheckpointError, match=message):
            check_checkpoint(path, net)
    # Sizes: of the file before reading, of what its archive would unpack to before unpacking.
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_BYTES", 2_000_000)
    big = tmp_path / "big.ckpt"
    torch.save(_checkpoint(net, fastnst={"x": payload}), big)
    with pytest.raises(CheckpointError, match=r"big\.ckpt: 4\.\d MB, more than the 2\.0 MB"):
        check_checkpoint(big, net)
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_BYTES", 1_000_000)
    with pytest.raises(CheckpointError, match=r"deflated\.ckpt: holds 4\.\d MB, more than"):
        check_checkpoint(tmp_path / "deflated.ckpt", net)


@pytest.mark.slow  # a subprocess, or seconds of work
def test_cli_reports_a_missing_folder_in_one_line(tmp_path):
    env = {**os.environ, "FASTNST_TRAIN_DIR": str(tmp_path / "missing")}
    proc = subprocess.run([sys.executable, "-m", "fastnst.train", f"hydra.run.dir={tmp_path}/r"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"fastnst-train: error: {tmp_path / 'missing'}: training folder not found"
        " (set data.root or FASTNST_TRAIN_DIR)")


@pytest.mark.slow  # a subprocess, or seconds of work
def test_ddp_with_two_cpu_processes(vgg_weights, photos, painting, tmp_path):
    run_dir = tmp_path / "ddp"
    args = _overrides(photos, painting, 4, "trainer=ddp", "trainer.accelerator=cpu",
                      "trainer.devices=2", f"hydra.run.dir={run_dir}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "fastnst.train", *args], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = read_metadata(run_dir / "stripes.safetensors")
    assert meta["processes"] == 2 and meta["steps"] == 4
    assert math.isfinite(meta["losses"]["total"])


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(
        vgg_weights, photos, painting, tmp_path, monkeypatch):
    original = StyleTransferModule.training_step

    def nan_photos_at_step_5(self, batch, batch_idx):
        images, skipped = batch
        return original(self, (images * float("nan") if self.global_step == 5 else images,
                               skipped), batch_idx)

    monkeypatch.setattr(StyleTransferModule, "training_step", nan_photos_at_step_5)
    run_dir = tmp_path / "runs" / "nan"
    last = run_dir / "checkpoints" / "last.ckpt"
    with pytest.raises(NonFiniteLossError) as stopped:
        _train(run_dir, _overrides(photos, painting, 10))
    assert str(stopped.value).startswith("the loss is nan at step 5 (content nan, style nan")
    assert f"the last good checkpoint is {last} (step 4)" in str(stopped.value).lower()
    state = torch.load(last, weights_only=True)
    assert state["global_step"] == 4
    assert all(v.isfinite().all() for v in state["state_dict"].values())
    assert not list(run_dir.glob("*.safetensors"))


def test_a_checkpoint_with_non_finite_weights_is_never_written():
    from fastnst.transformer import TransformerConfig

    module = StyleTransferModule(TransformerConfig(channels=8, blocks=1), torch.nn.Identity(),
                                 [StyleTask(torch.zeros(1, 3, 8, 8))])
    good = {"state_dict": {k: v.clone() for k, v in module.state_dict().items()}}
    module.on_save_checkpoint(good)  # finite: fine
    with torch.no_grad():
        module.net.decoder[2][1].weight[0, 0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteLossError, match=r"weights hold NaN or inf .*net\.decoder\.2"):
        module.on_save_checkpoint({"state_dict": dict(module.state_dict())})


def _start(args: list[str], run_dir: Path, *extra: str) -> subprocess.Popen:
    """`python -m fastnst.train` in the background, on one thread (as the other runs)."""
    return subprocess.Popen([sys.executable, "-m", "fastnst.train", *args, *extra,
                             f"hydra.run.dir={run_dir}"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=run_dir.parent,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=ctrl_c_default)


@pytest.mark.slow  # a subprocess, or seconds of work
def test_runs_stopped_by_ctrl_c_and_sigkill_resume_to_the_uninterrupted_weights(
        vgg_weights, photos, painting, tmp_path, reap):
    """Ctrl-C at a random moment saves a checkpoint; SIGKILL at a random moment loses only the
    steps since the last one; resuming twice ends with the weights of an unbroken run."""
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    args = _overrides(photos, painting, 16, "data.workers=0")
    (tmp_path / "whole").mkdir()
    (tmp_path / "runs").mkdir()
    whole = _start(args, tmp_path / "whole" / "run")
    reap(whole)

    first_dir = tmp_path / "runs" / "1"
    first = _start(args, first_dir)
    reap(first)
    wait_for_file(first_dir / "checkpoints" / f"step{rng.choice((2, 4, 6)):06d}.ckpt", first)
    time.sleep(rng.uniform(0, 0.6))
    first.send_signal(signal.SIGINT)
    err = first.communicate(timeout=120)[1]
    assert first.returncode == 1, f"seed {seed}: {err[-2000:]}"
    stopped_at = int(err.split("interrupted at step ")[1].split(";")[0])
    last = first_dir / "checkpoints" / "last.ckpt"
    assert f"checkpoint {last}; continue with resume=true" in err
    assert torch.load(last, weights_only=True)["global_step"] == stopped_at

    second_dir = tmp_path / "runs" / "2"
    second = _start(args, second_dir, "resume=true")
    reap(second)
    # A checkpoint (every 2 steps) at least 2 steps on: the first step's metrics are written
    # just after the checkpoint of its end, so a kill right then would leave none to check.
    reached = stopped_at + rng.choice((2, 3))
    reached += reached % 2
    wait_for_file(second_dir / "checkpoints" / f"step{reached:06d}.ckpt", second)
    time.sleep(rng.uniform(0, 0.6))
    second.kill()  # SIGKILL: no handler runs
    assert second.wait(timeout=60) == -signal.SIGKILL
    assert not list(second_dir.glob("*.safetensors"))
    assert min(_metrics(second_dir, "train/total")) == stopped_at  # went on at that step
    saved = torch.load(second_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert saved >= reached  # lost only the steps after the last checkpoint

    third_dir = tmp_path / "runs" / "3"
    third = _start(args, third_dir, "resume=true")
    reap(third)
    assert third.wait(timeout=180) == 0, third.communicate()[1][-2000:]
    assert min(_metrics(third_dir, "train/total")) == saved
    assert whole.wait(timeout=180) == 0, whole.communicate()[1][-2000:]
    resumed, _ = load_model(third_dir / "stripes.safetensors")
    unbroken, _ = load_model(tmp_path / "whole" / "run" / "stripes.safetensors")
    for (name, a), b in zip(resumed.state_dict().items(), unbroken.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"seed {seed}: {name}")


def test_init_starts_from_a_model_and_train_only_norm_keeps_the_convolutions(
        vgg_weights, photos, painting, tmp_path):
    start = tiny_model(tmp_path / "start.safetensors", channels=8, blocks=2)
    init, _ = load_model(start)
    small = ("model.channels=8", "model.blocks=2", f"init={start}")
    model = _train(tmp_path / "runs" / "norm", _overrides(photos, painting, 4, *small,
                                                          "train_only=norm"))
    assert model is not None
    net, meta = load_model(model)
    assert meta["training"]["init"] == str(start) and meta["training"]["train_only"] == "norm"
    changed = {k for k, v in net.state_dict().items()
               if not torch.equal(v, init.state_dict()[k])}
    norms = {f"{name}.{p}" for name, m in init.named_modules()
             if isinstance(m, torch.nn.InstanceNorm2d) for p in ("weight", "bias")}
    assert changed and changed <= norms  # only instance-norm scales and shifts moved
    model = _train(tmp_path / "runs" / "all", _overrides(photos, painting, 4, *small))
    net, _ = load_model(model)
    moved = [k for k, v in net.state_dict().items() if not torch.equal(v, init.state_dict()[k])]
    assert set(moved) - norms  # train_only=all (the default) trains the convolutions too


def test_init_of_another_architecture_is_refused_in_one_line_naming_both(tmp_path):
    start = tiny_model(tmp_path / "start.safetensors", channels=8, blocks=2)
    with pytest.raises(ValueError, match=r"init=.*start\.safetensors.*channels=8.*model= is"
                                         r".*channels=32") as e:
        initial_weights(str(start), TransformerConfig())
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown style"):
        initial_weights("no_such_style", TransformerConfig())
    assert initial_weights(None, TransformerConfig()) is None
    weights = initial_weights(str(start), TransformerConfig(channels=8, blocks=2))
    assert weights is not None and torch.equal(
        weights["encoder.0.0.1.weight"], load_model(start)[0].state_dict()["encoder.0.0.1.weight"])


def test_train_only_rejects_unknown_values():
    with pytest.raises(ValueError, match="train_only must be one of all, norm"):
        trainable(TransformerNet(TransformerConfig(channels=4, blocks=1)), "convs")


def test_fine_tune_a_shipped_style_on_your_own_photos(vgg_weights, style_dir, photos, tmp_path):
    """The README's `python -m fastnst.train style=starry_night init=starry_night
    data.root=MY_PHOTOS`, for two steps: it starts from the shipped weights and moves them."""
    from fastnst.styles import find_model

    shipped, _ = load_model(find_model("starry_night"))
    overrides = [o for o in _overrides(photos, Path("unused.png"), 2) if not o.startswith(
        ("style=", "+style", "style.", "style_size"))]
    model = _train(tmp_path / "runs" / "mine", ["style=starry_night", "init=starry_night",
                                                 *overrides])
    net, meta = load_model(model)
    assert meta["style"] == "starry_night" and meta["training"]["init"] == "starry_night"
    weights, start = net.state_dict(), shipped.state_dict()
    moved = [k for k in start if not torch.equal(weights[k], start[k])]
    assert moved  # it trained ...
    # ... from the shipped weights, not from scratch: two small Adam steps stay close to them.
    drift = max(float((weights[k] - start[k]).abs().max()) for k in start)
    assert drift < 0.05


@pytest.mark.slow  # seconds of work
def test_distillation_copies_the_teacher_into_a_fast_network(vgg_weights, photos, painting,
                                                              tmp_path):
    teacher = tiny_model(tmp_path / "teacher.safetensors", channels=8, blocks=1)
    run_dir = tmp_path / "runs" / "distill"
    model = _train(run_dir, _overrides(photos, painting, 40, f"teacher={teacher}",
                                       "model.channels=12", "model.blocks=2",
                                       "optim.lr=0.005"), config="distill")
    assert model == run_dir / "stripes-fast.safetensors"  # named for the style, and fast
    net, meta = load_model(model)
    assert net.config.design == "fast" and meta["style"] == "stripes-fast"
    assert meta["training"]["teacher"] == str(teacher)
    # The distance to the teacher's results falls (pixel term; measured 0.48-0.75 over seeds 0-3).
    pixel = _metrics(run_dir, "train/pixel")
    first, last = (sum(pixel[s] for s in steps) / 5 for steps in (range(5), range(35, 40)))
    assert last < 0.85 * first
    # The checkpoints hold only the student: no teacher, no VGG.
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state and all(k.startswith("net.fast.") for k in state)
    # On a photo, the result is nearer the teacher's than an untrained fast network's is
    # (measured 0.54-0.60 of its distance over seeds 0-3).
    teacher_net, _ = load_model(teacher)
    untrained = TransformerNet(net.config).eval()
    photo = smooth_image(40, 52, seed=3)
    with torch.no_grad():
        target = teacher_net(photo)
        trained, fresh = ((n(photo) - target).abs().mean() for n in (net, untrained))
    assert trained < 0.8 * fresh, (trained, fresh)


def test_a_painting_without_a_model_is_distilled_from_its_universal_results(
        vgg_weights, photos, painting, tmp_path, monkeypatch):
    from fastnst.training.tasks import load_teacher
    from fastnst.universal import Decoder, PaintingTeacher, UniversalStylizer

    made = []

    def small_stylizer(device):  # the shipped decoders' plumbing, with one small decoder
        made.append(UniversalStylizer([Decoder("relu1_1")]))
        return made[-1]

    monkeypatch.setattr("fastnst.universal.universal_stylizer", small_stylizer)
    run_dir = tmp_path / "runs" / "distill"
    model = _train(run_dir, _overrides(photos, painting, 2, "model.channels=12",
                                       "model.blocks=2"), config="distill")
    assert model == run_dir / "stripes-fast.safetensors" and len(made) == 1
    _, meta = load_model(model)
    assert meta["training"]["teacher"] == "stripes"  # the default: the style's own name
    # The teacher paints each photo as the painting backend does, at the photo's size.
    style = OmegaConf.create({"name": "stripes"})
    teacher = load_teacher("stripes", style, smooth_image(48, 48, seed=7))
    assert isinstance(teacher, PaintingTeacher)
    batch = torch.cat([smooth_image(32, 40, seed=i) for i in range(2)])
    out = teacher(batch)
    assert out.shape == batch.shape and (out[0] - out[1]).abs().mean() > 0.01
    expected = teacher.stylizer.run(batch[1:], teacher.stylizer.painting_moments(
        teacher.painting))[0]
    torch.testing.assert_close(out[1:], expected)
    # A shipped style's name is its model, not a painting's universal results.
    assert not isinstance(load_teacher("udnie", OmegaConf.create({"name": "udnie"}),
                                       smooth_image(48, 48)), PaintingTeacher)


@pytest.mark.slow  # VGG19 on the eight shipped paintings, and a fast network's steps
def test_a_painting_is_distilled_from_the_fast_network_of_the_nearest_painting(
        vgg_weights, style_dir, photos, tmp_path, monkeypatch):
    import shutil

    from fastnst.distill import config_for
    from fastnst.styles import find_model
    from fastnst.training.tasks import nearest_fast_model
    from fastnst.universal import Decoder, UniversalStylizer

    assert config_for(["style=art/my painting.jpg", "data.root=x"]) == "distill_painting"
    assert config_for(["style=art/mine.png", "teacher=mine.safetensors"]) == "distill"
    assert config_for(["style=starry_night"]) == "distill"
    # A copy of a shipped painting is nearest to its own style.
    wave = shutil.copy(style_dir / "great_wave.jpg", tmp_path / "my wave.jpg")
    assert nearest_fast_model(read_image(wave)) == "great_wave-fast"
    monkeypatch.setattr("fastnst.universal.universal_stylizer",
                        lambda device: UniversalStylizer([Decoder("relu1_1")]))
    run_dir = tmp_path / "runs" / "painting"
    overrides = [o for o in _overrides(photos, Path(wave), 2) if not o.startswith("optim.lr")]
    model = _train(run_dir, overrides, config="distill_painting")
    assert model == run_dir / "my_wave-fast.safetensors"
    net, meta = load_model(model)
    assert meta["training"]["teacher"] == "universal" and meta["training"]["init"] == "nearest"
    # It started from great_wave-fast (the painting judged at 256 px, not at style_size=48):
    # two small steps away from it.
    start, _ = load_model(find_model("great_wave-fast"))
    drift = max(float((net.state_dict()[k] - v).abs().max())
                for k, v in start.state_dict().items())
    assert 0 < drift < 0.05


@pytest.mark.slow  # seconds of work
def test_a_multi_style_network_distils_several_styles_and_one_more_is_added_alone(
        vgg_weights, style_dir, photos, painting, tmp_path):
    """`python -m fastnst.distill styles=[mosaic,udnie] name=multi` trains one network of both
    styles from their shipped models; `add_style=true` then adds a painting's style to it,
    training only that style's scales and shifts: the other styles stay exactly as they were."""
    from fastnst.transformer import StyleNorm

    small = [o for o in _overrides(photos, painting, 6) if not o.startswith(
        ("style=", "+style", "style.", "style_size"))]
    run_dir = tmp_path / "runs" / "multi"
    model = _train(run_dir, [*small, "styles=[mosaic,udnie]", "name=multi", "model.channels=12",
                             "model.blocks=2"], config="distill")
    net, meta = load_model(model)
    assert meta["styles"] == ["mosaic", "udnie"] and net.config.styles == 2
    norms = {name for name, m in net.named_modules() if isinstance(m, StyleNorm)}
    assert norms and not any(isinstance(m, torch.nn.InstanceNorm2d) for m in net.modules())
    fresh = TransformerNet(net.config).state_dict()
    for name in norms:  # each style trained (three steps each): its rows left their start
        for row in (0, 1):
            assert not torch.equal(net.state_dict()[f"{name}.weight"][row],
                                   fresh[f"{name}.weight"][row]), (name, row)
    # One style re-tuned alone: with train_only=norm the other keeps its rows and the
    # convolutions, bit for bit.
    tuned, _ = load_model(_train(tmp_path / "runs" / "tuned", [
        *small, "styles=[mosaic,udnie]", "train_styles=[udnie]", "train_only=norm",
        f"init={model}", "name=multi", "model=fast", "model.channels=12", "model.blocks=2"]))
    for key, value in tuned.state_dict().items():
        kept = value[0] if key.rsplit(".", 1)[0] in norms else value
        assert torch.equal(kept, net.state_dict()[key][0] if key.rsplit(".", 1)[0] in norms
                           else net.state_dict()[key]), key
    assert any(not torch.equal(tuned.state_dict()[f"{n}.weight"][1],
                               net.state_dict()[f"{n}.weight"][1]) for n in norms)
    added = _train(tmp_path / "runs" / "added", [
        *_overrides(photos, painting, 4, "model=fast", "model.channels=12", "model.blocks=2"),
        f"init={model}", "add_style=true", "train_only=norm", "name=multi3"])
    grown, meta = load_model(added)
    assert meta["styles"] == ["mosaic", "udnie", "stripes"] and grown.config.styles == 3
    before, after = net.state_dict(), grown.state_dict()
    moved = set()
    for key, value in after.items():
        old = before[key][:2] if key.rsplit(".", 1)[0] in norms else before[key]
        kept = value[:2] if key.rsplit(".", 1)[0] in norms else value
        assert torch.equal(kept, old), key  # convolutions and the old styles: bit for bit
        if key.rsplit(".", 1)[0] in norms and not torch.equal(value[2], before[key].mean(0)):
            moved.add(key)
    assert moved  # the new style trained
    with pytest.raises(ValueError, match="udnie is already a style of"):
        _train(tmp_path / "runs" / "again", [*small, "style=udnie", f"init={added}",
                                             "add_style=true", "model=fast",
                                             "model.channels=12", "model.blocks=2"])


def test_a_multi_style_run_weighs_each_style_by_its_own_factor_and_fast_teachers(style_dir):
    """`style_factors={udnie: 5}` gives udnie its own multiple of its weight (the others keep
    `style_factor`), and `teacher=fast` makes each style's fast network its teacher; a factor
    for a style not in the run, or out of range, is one error naming it."""
    from fastnst.model_files import shipped_models
    from fastnst.paintings import style_config
    from fastnst.training.tasks import ConfigError, network, plan

    def planned(*overrides: str):
        with initialize_config_module("fastnst.conf", version_base="1.3"):
            cfg = compose("train", overrides=["styles=[mosaic,udnie]", "model=fast",
                                              "style_factor=2", *overrides])
        config, names = network(cfg, TransformerConfig(**{
            k: v for k, v in cfg.model.items() if k != "_target_"}))
        return cfg, plan(cfg, config, names)

    _, made = planned("style_factors={udnie: 5}", "teacher=fast")
    weights = {t.index: t.style_weight for t in made.tasks}
    mosaic, udnie = (style_config(n).style_weight for n in ("mosaic", "udnie"))
    assert weights == {0: pytest.approx(2 * mosaic), 1: pytest.approx(5 * udnie)}
    fast = [load_model(shipped_models()[f"{n}-fast"])[0] for n in ("mosaic", "udnie")]
    for task, net in zip(made.tasks, fast, strict=True):
        theirs = net.state_dict()
        assert task.teacher.config == net.config and all(
            torch.equal(v, theirs[k]) for k, v in task.teacher.state_dict().items())
    _, shipped = planned("teacher=shipped")  # any other teacher: each style's own model
    assert shipped.tasks[0].teacher.config.design != "fast"
    with pytest.raises(ConfigError, match="style_factors: candy not in styles="):
        planned("style_factors={candy: 5}")
    with pytest.raises(ConfigError, match=r"style_factors.udnie=-1"):
        planned("style_factors={udnie: -1}")


def test_training_some_styles_with_all_weights_holds_the_others_to_what_init_paints(
        style_dir, tmp_path):
    """`train_styles=[udnie] train_only=all`: the shared convolutions move, so mosaic is held,
    every other step, to what init= paints for it (no style term); the run fails at once
    without an init= to hold it to."""
    from fastnst.model_files import save_model
    from fastnst.training.module import StyleTransferModule
    from fastnst.training.tasks import ConfigError, HeldStyle, network, plan

    torch.manual_seed(0)
    net = TransformerNet(TransformerConfig(channels=12, blocks=2, design="fast", styles=2))
    with torch.no_grad():  # two styles that paint differently
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    init = save_model(net, tmp_path / "two.safetensors", "two", styles=["mosaic", "udnie"])

    def planned(*overrides: str):
        with initialize_config_module("fastnst.conf", version_base="1.3"):
            cfg = compose("train", overrides=["styles=[mosaic,udnie]", "model=fast",
                                              "model.channels=12", "model.blocks=2",
                                              "train_styles=[udnie]", *overrides])
        config, names = network(cfg, TransformerConfig(**{
            k: v for k, v in cfg.model.items() if k != "_target_"}))
        return plan(cfg, config, names)

    made = planned("train_only=all", f"init={init}")
    (udnie, mosaic) = made.tasks
    assert udnie.index == 1 and udnie.style_weight and not isinstance(udnie.teacher, HeldStyle)
    assert mosaic.index == 0 and mosaic.style_weight == 0.0
    photo = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        held = mosaic.teacher(photo)
        assert torch.allclose(held, net(photo, torch.tensor([1.0, 0.0])), atol=1e-3)
        assert not torch.allclose(held, net(photo, torch.tensor([0.0, 1.0])), atol=1e-3)
    assert made.order == [0, 1]
    module = StyleTransferModule(made.config, torch.nn.Identity(), made.tasks,
                                 init=made.init, order=made.order)
    assert [module.task_at(s) for s in range(4)] == [0, 1, 0, 1]
    # train_only=norm leaves mosaic's rows as they are: nothing to hold.
    assert [t.index for t in planned("train_only=norm", f"init={init}").tasks] == [1]
    with pytest.raises(ConfigError, match="give init= the multi-style model"):
        planned("train_only=all")
