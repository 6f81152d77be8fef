"""scripts/gpu_check.py, scripts/gpu_campaign.sh and scripts/pack_photos.py: the GPU loan's
work, run here on the CPU at tiny sizes so that it cannot rot between loans."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
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


@pytest.mark.slow  # two training subprocesses
def test_the_campaign_trains_resumes_and_skips_finished_styles(vgg_weights, style_dir, photos,
                                                                tmp_path):
    env = {**os.environ, "STYLES": "udnie", "PHOTOS": str(photos), "OUT": str(tmp_path / "c"),
           "EXTRA": "trainer.accelerator=cpu trainer.precision=32-true data.crop_size=32"
                    " data.workers=0 data.val_count=1 data.val_size=32 sample_every=2"}
    script = str(REPO / "scripts" / "gpu_campaign.sh")
    first = subprocess.run(["bash", script, "3"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    model = tmp_path / "c" / "udnie" / "udnie.safetensors"
    assert read_metadata(model)["steps"] == 3
    again = subprocess.run(["bash", script, "3"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "udnie: done (3 steps)" in again.stdout
    more = subprocess.run(["bash", script, "5"], env=env, capture_output=True, text=True,
                          timeout=300)  # a longer schedule resumes from the checkpoint
    assert more.returncode == 0, more.stdout + more.stderr
    assert read_metadata(model)["steps"] == 5
    missing = subprocess.run(["bash", script], env={**env, "PHOTOS": str(tmp_path / "none")},
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "pack_photos.py" in missing.stderr


def test_photos_are_packed_small_and_within_the_size_limit(photos, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    pack = importlib.import_module("pack_photos")
    big = tmp_path / "big"
    for i in range(4):
        write_image(smooth_image(400, 600, seed=i), big / f"b{i}.png")
    out = tmp_path / "packed"
    assert pack.main(["--src", str(big), "--out", str(out), "--short-side", "100"]) == 0
    packed = sorted(out.iterdir())
    assert len(packed) == 4 and all(read_image(p).shape[-2] == 100 for p in packed)
    small = tmp_path / "small"
    size = packed[0].stat().st_size
    assert pack.main(["--src", str(big), "--out", str(small), "--short-side", "100",
                      "--max-mib", str(2.5 * size / 2**20)]) == 0
    assert len(list(small.iterdir())) == 2  # the third would pass the limit
