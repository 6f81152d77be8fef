"""scripts/gpu_check.py, gpu_campaign.sh, pack_for_gpu.py and gpu_setup.sh: the GPU loan's
work, run here on the CPU at tiny sizes so that it cannot rot between loans."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, smooth_image

from fastnst.images import read_image, write_image
from fastnst.model_files import read_metadata


@pytest.fixture
def photos(tmp_path) -> Path:
    root = tmp_path / "photos"
    for i in range(6):
        write_image(smooth_image(48 + i, 64, seed=i), root / f"p{i}.jpg")
    return root


@pytest.fixture
def gpu_check(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    return importlib.import_module("gpu_check")


@pytest.mark.slow  # a dozen subprocesses: about a minute
def test_the_gpu_check_dry_run_passes_every_check_on_the_cpu(vgg_weights, style_dir, photos,
                                                             tmp_path):
    photo = write_image(smooth_image(40, 56), tmp_path / "photo.png")
    report = tmp_path / "report.md"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--dry-run",
                           "--report", str(report), "--train-dir", str(photos), "--photo",
                           str(photo)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = report.read_text()
    assert "4 of 4 checks passed" in text and "dry run on the CPU" in text
    assert "resumed at step 20 to 30" in text and "fp16 vs fp32 output" in text
    assert "| cpu | fast |" in text and "images / s" in text  # both benchmark tables


def test_a_failed_check_is_reported_with_its_error_and_the_others_still_run(
        gpu_check, monkeypatch, tmp_path, capsys):
    ran = []

    def fails(*args):
        ran.append("train")
        raise gpu_check.CheckFailed("the loss did not fall: 3 over the first 1 steps, 4 over"
                                    " the last 1")

    monkeypatch.setattr(gpu_check, "train", fails)
    for name in ("gatys", "infer"):
        monkeypatch.setattr(gpu_check, name, lambda *a, n=name: ran.append(n) or [f"{n} ok"])
    monkeypatch.setattr(gpu_check, "benchmarks", lambda *a: ran.append("bench") or ["| t |"])
    report = tmp_path / "r.md"
    assert gpu_check.main(["--dry-run", "--report", str(report)]) == 1
    assert ran == ["train", "gatys", "infer", "bench"]
    text = report.read_text()
    assert "3 of 4 checks passed" in text and "the loss did not fall" in text
    assert "## Gatys baseline: pass" in text and "gatys ok" in text
    assert "1 failed: training" in capsys.readouterr().out
    # Without a GPU the real check refuses at once, pointing at --dry-run.
    if not gpu_check.torch.cuda.is_available():
        with pytest.raises(SystemExit):
            gpu_check.main(["--report", str(report)])
        assert "--dry-run" in capsys.readouterr().err


@pytest.mark.slow  # training subprocesses, two of them side by side
def test_the_campaign_trains_resumes_and_skips_finished_styles(vgg_weights, style_dir, photos,
                                                                tmp_path):
    env = {**os.environ, "STYLES": "udnie mosaic", "PARALLEL": "2", "PHOTOS": str(photos),
           "CAMPAIGN_OUT": str(tmp_path / "c"), "OUT": str(tmp_path / "device_out"),
           "EXTRA": "trainer.accelerator=cpu trainer.precision=32-true data.crop_size=32"
                    " data.workers=0 data.val_count=1 data.val_size=32 sample_every=2"}
    script = str(REPO / "scripts" / "gpu_campaign.sh")
    first = subprocess.run(["bash", script, "3"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "all styles at 3 steps" in first.stdout
    model = tmp_path / "c" / "udnie" / "udnie.safetensors"
    assert read_metadata(model)["steps"] == 3  # both trained, side by side
    assert read_metadata(tmp_path / "c" / "mosaic" / "mosaic.safetensors")["steps"] == 3
    again = subprocess.run(["bash", script, "3"], env={**env, "STYLES": "udnie"},
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "udnie: done (3 steps)" in again.stdout
    # Lightning's max_time counts the training time the checkpoint records: an hour of it
    # must not stop the next command before its first step.
    checkpoint = tmp_path / "c" / "udnie" / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state["callbacks"]["Timer"]["time_elapsed"]["train"] = 3600.0
    torch.save(state, checkpoint)
    more = subprocess.run(["bash", script, "5"], env={**env, "STYLES": "udnie"},
                          capture_output=True, text=True, timeout=300)  # resumes
    assert more.returncode == 0, more.stdout + more.stderr
    assert read_metadata(model)["steps"] == 5
    missing = subprocess.run(["bash", script], env={**env, "PHOTOS": str(tmp_path / "none")},
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "pack_for_gpu.py" in missing.stderr
    broken = subprocess.run(["bash", script, "3"], env={**env, "STYLES": "no_such_style"},
                            capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1 and "1 training(s) failed" in broken.stderr
    assert "no_such_style" in (tmp_path / "c" / "no_such_style.log").read_text()


@pytest.mark.slow  # reads and packs the VGG19 weights
def test_the_loan_is_packed_within_the_limit_and_set_up_from_the_pack(vgg_weights, style_dir,
                                                                      tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    pack = importlib.import_module("pack_for_gpu")
    big = tmp_path / "big"
    for i in range(6):
        write_image(smooth_image(400, 600, seed=i), big / f"b{i}.png")
    carry = tmp_path / "carry"
    travels = pack.tracked_bytes()
    assert pack.main(["--src", str(big), "--out", str(carry), "--short-side", "100",
                      "--no-wheels", "--limit-mib", "1000"]) == 0
    photos = sorted((carry / "photos").iterdir())
    assert len(photos) == 6 and all(read_image(p).shape[-2] == 100 for p in photos)
    size = photos[0].stat().st_size
    fixed = pack.tree_bytes([carry]) - pack.tree_bytes([carry / "photos"])
    # Room for the repository, the rest of the pack and 2.5 photos of about `size` bytes.
    limit = (travels + fixed + 2.5 * size) / 2**20 + 1
    assert pack.main(["--src", str(big), "--out", str(carry), "--short-side", "100",
                      "--no-wheels", "--limit-mib", str(limit)]) == 0
    assert len(list((carry / "photos").iterdir())) == 2  # the third would pass the limit
    assert {p.stem for p in (carry / "paintings").iterdir()} >= {"starry_night", "udnie"}
    assert pack.main(["--out", str(carry), "--no-wheels", "--limit-mib", "1"]) == 1
    assert (carry / "vgg19.safetensors.gz").stat().st_size < 30 * 2**20
    # gpu_setup.sh, sourced, points fastnst at the pack: the packed VGG19 gives the same
    # features as the original through relu5_1 (fp16-close), and the configs and models are
    # where an installed fastnst has them.
    probe = ("import os, torch; from fastnst.vgg import VGGFeatures;"
             "x = torch.rand(1, 3, 48, 48); taps = ['relu1_1', 'relu3_1', 'relu5_1'];"
             "a = VGGFeatures(taps, weights=os.environ['FASTNST_VGG19'])(x);"
             f"b = VGGFeatures(taps, weights={str(vgg_weights)!r})(x);"
             "print(max(float((a[t] - b[t]).abs().max() / b[t].abs().max()) for t in taps));"
             "print(os.environ['FASTNST_STYLE_DIR'])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTNST_")}
    out = subprocess.run(["bash", "-c", f"source scripts/gpu_setup.sh {carry} >/dev/null &&"
                          f" python -c \"{probe}\""], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    error, paintings = out.stdout.split()
    assert float(error) < 0.01 and paintings == str(carry / "paintings")
    for name in ("conf", "models"):  # fastnst.conf and fastnst.models
        assert (REPO / "fastnst" / name).resolve() == (REPO / name).resolve()
