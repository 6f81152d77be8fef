"""Prove every CUDA path in one command (under 8 minutes on one GPU), and write a report.

    python scripts/gpu_check.py [--report outputs/gpu_check.md] [--train-dir PHOTOS]
    python scripts/gpu_check.py --dry-run        # the same sequence on the CPU at tiny sizes

The checks, each in its own process (one failing does not stop the others), pass or fail with
the error's last lines:

1. training: `trainer=gpu` at 256 px in bf16-mixed for a few hundred steps, then resumed for
   more from its checkpoint; the loss goes down, the model file loads, and its output in fp16
   matches fp32;
2. the Gatys baseline at 512 px, 50 L-BFGS iterations on CUDA;
3. inference: `fastnst-infer` with PyTorch CUDA fp32 and `--half`, and ONNX Runtime's CUDA
   provider when the installed onnxruntime has it (else the report says so and names
   onnxruntime-gpu);
4. benchmarks: the CUDA rows of scripts/bench_infer.py (1920x1080, every model) and
   scripts/bench_train.py (256 px crops).

The report (Markdown) names the GPU and holds each check's verdict, time and figures; the exit
status is 1 when any check failed. `--dry-run` runs the same commands on the CPU with tiny
sizes and few steps, so a test keeps the script from rotting between GPU loans. Needs the
VGG19 weights, the paintings and some training photos: ../shared, or FASTNST_VGG19,
FASTNST_STYLE_DIR and --train-dir, or on a loaned machine what scripts/pack_for_gpu.py packed:

    source scripts/gpu_setup.sh && python scripts/gpu_check.py --report $OUT/gpu_check.md

The report is rewritten after every check, so a loan that ends early keeps what was found.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from common import EVAL_DIR, TRAIN_DIR, machine, use_shared_data

from fastnst.files import atomic_path
from fastnst.stylizer import ORT_CUDA_PROVIDER, ORT_GPU_PACKAGE

SCRIPTS = Path(__file__).resolve().parent
CHECK_PHOTO = "chicago.jpg"  # the evaluation photo the Gatys and inference checks use


@dataclass
class Check:
    """One check's outcome: its name, pass or fail, seconds, and what it found or the error."""

    name: str
    passed: bool = False
    seconds: float = 0.0
    found: list[str] = field(default_factory=list)


@dataclass
class Sizes:
    """What the checks run at: the GPU's sizes, or the dry run's tiny ones."""

    device: str
    train_steps: int
    resume_steps: int
    crop: int
    precision: str
    gatys_size: int
    gatys_iterations: int
    photo_size: int
    bench_sizes: list[str]
    bench_crops: int
    repeats: int
    warmup: int  # learning-rate warm-up steps of the training check


GPU = Sizes("cuda", 300, 100, 256, "bf16-mixed", 512, 50, 1024, ["1920x1080"], 256, 10, 100)
DRY = Sizes("cpu", 20, 10, 32, "32-true", 48, 3, 64, ["64x48"], 32, 1, 2)


class CheckFailed(Exception):
    """A check found something wrong; the message says what."""


def run(command: list[str], timeout: float) -> str:
    """Run `command` (python for "python"), return its stdout; CheckFailed with the last lines
    of its output when it fails or runs past `timeout` seconds."""
    command = [sys.executable if c == "python" else c for c in command]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"`{' '.join(command[1:4])} ...` ran past {timeout:.0f} s") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise CheckFailed(f"`{' '.join(command[1:4])} ...` exited {proc.returncode}:\n{tail}")
    return proc.stdout


def train(sizes: Sizes, work: Path, train_dir: Path) -> list[str]:
    """trainer=gpu in `sizes.precision`, resumed; the loss falls; fp16 matches fp32."""
    from fastnst.model_files import load_model

    run_dir = work / "train"
    common = ["python", "-m", "fastnst.train", "style=starry_night", "trainer=gpu",
              f"trainer.accelerator={'gpu' if sizes.device == 'cuda' else 'cpu'}",
              f"trainer.precision={sizes.precision}", f"data.root={train_dir}",
              f"data.crop_size={sizes.crop}", "data.workers=2", "trainer.log_every_n_steps=1",
              "data.val_count=2", f"data.val_size={sizes.crop}",
              f"optim.warmup_steps={sizes.warmup}",
              "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
              f"sample_every={sizes.train_steps}", f"checkpoint_every={sizes.train_steps}"]
    start = time.perf_counter()
    run([*common, f"trainer.max_steps={sizes.train_steps}"], 300)
    first = time.perf_counter() - start
    total = sizes.train_steps + sizes.resume_steps
    run([*common, f"trainer.max_steps={total}", f"resume={run_dir / 'checkpoints' / 'last.ckpt'}"],
        300)
    with open(run_dir / "csv" / "metrics.csv") as f:
        losses = {int(r["step"]): float(r["train/total"]) for r in csv.DictReader(f)
                  if r.get("train/total")}
    steps = sorted(losses)
    if steps[-1] < total - 2:
        raise CheckFailed(f"the resumed run logged up to step {steps[-1]}, not {total - 1}")
    n = max(1, len(steps) // 5)
    early = sum(losses[s] for s in steps[:n]) / n
    late = sum(losses[s] for s in steps[-n:]) / n
    if not late < early:
        raise CheckFailed(f"the loss did not fall: {early:.4g} over the first {n} steps,"
                          f" {late:.4g} over the last {n}")
    net, meta = load_model(run_dir / "starry_night.safetensors", sizes.device)
    photo = torch.rand(1, 3, sizes.crop, sizes.crop, device=sizes.device)
    with torch.inference_mode():
        fp32 = net(photo)
        low = torch.float16 if sizes.device == "cuda" else torch.bfloat16
        with torch.autocast(sizes.device, low):
            fp16 = net(photo).float()
    diff = float((fp16 - fp32).abs().max())
    if diff > 0.05:
        raise CheckFailed(f"fp16 and fp32 outputs differ by {diff:.3f} (limit 0.05)")
    return [f"{sizes.train_steps} steps at {sizes.crop} px in {sizes.precision}: {first:.0f} s"
            " with start-up", f"resumed at step {sizes.train_steps} to {total}; loss"
            f" {early:.4g} -> {late:.4g}; {meta['precision']} precision recorded",
            f"fp16 vs fp32 output, max difference {diff:.4f}"]


def gatys(sizes: Sizes, work: Path, photo: Path) -> list[str]:
    """The Gatys baseline on the device."""
    start = time.perf_counter()
    run(["python", "-m", "fastnst.gatys", f"content={photo}", "style=starry_night",
         f"size={sizes.gatys_size}", f"iterations={sizes.gatys_iterations}",
         f"device={sizes.device}", f"output={work / 'gatys.png'}", "progress=false"], 300)
    return [f"{sizes.gatys_iterations} iterations at {sizes.gatys_size} px:"
            f" {time.perf_counter() - start:.1f} s with start-up"]


def infer(sizes: Sizes, work: Path, photo: Path) -> list[str]:
    """fastnst-infer on the device: fp32, --half, and ONNX Runtime's CUDA provider if there."""
    import onnxruntime as ort

    found = []
    runs = {"torch fp32": [], "torch --half": ["--half"]}
    has_cuda_ep = ORT_CUDA_PROVIDER in ort.get_available_providers()
    if sizes.device == "cpu" or has_cuda_ep:
        runs["onnxruntime"] = ["--backend", "onnx"]
    for label, extra in runs.items():
        out = work / f"infer_{len(found)}"
        start = time.perf_counter()
        run(["python", "-m", "fastnst.infer", str(photo), "--style", "starry_night", "--device",
             sizes.device, "--max-size", str(sizes.photo_size), "-o", str(out), "-q", *extra],
            180)
        if not any(out.iterdir()):
            raise CheckFailed(f"{label}: nothing written")
        found.append(f"{label}: {time.perf_counter() - start:.1f} s with start-up")
    if not has_cuda_ep:
        found.append(f"ONNX Runtime's CUDA provider: not in this onnxruntime"
                     f" ({', '.join(ort.get_available_providers())}); `pip install"
                     f" {ORT_GPU_PACKAGE}` has it")
    return found


def benchmarks(sizes: Sizes) -> list[str]:
    """The benchmark scripts' tables (their CUDA rows on a GPU)."""
    infer_table = run(["python", str(SCRIPTS / "bench_infer.py"), "--sizes", *sizes.bench_sizes,
                       "--repeats", str(sizes.repeats), "--webcam-frames", "0",
                       "--devices", sizes.device], 400)
    train_table = run(["python", str(SCRIPTS / "bench_train.py"), "--crops",
                       str(sizes.bench_crops), "--repeats", str(sizes.repeats),
                       "--devices", sizes.device], 400)
    rows = [line for line in (infer_table + train_table).splitlines() if line.startswith("|")]
    if not rows:
        raise CheckFailed("the benchmarks printed no table")
    return ["", *[line for line in infer_table.splitlines() if line.startswith("|")], "",
            *[line for line in train_table.splitlines() if line.startswith("|")]]


def write_report(path: Path, checks: list[Check], planned: int, dry_run: bool) -> None:
    """The Markdown report of the checks run so far (of `planned`), written atomically."""
    failed = [c.name for c in checks if not c.passed]
    lines = [f"# GPU check{' (dry run on the CPU)' if dry_run else ''}", "", machine(), "",
             f"{len(checks) - len(failed)} of {len(checks)} checks passed"
             + (f" ({planned - len(checks)} not run yet)" if len(checks) < planned else ""), ""]
    for c in checks:
        lines += [f"## {c.name}: {'pass' if c.passed else 'FAIL'} ({c.seconds:.0f} s)", ""]
        lines += [f"    {line}" if not c.passed else line for line in c.found] + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="the same sequence on the CPU at tiny sizes (what the test runs)")
    parser.add_argument("--report", type=Path, default=Path("outputs/gpu_check.md"))
    carry = os.environ.get("FASTNST_CARRY")  # set by scripts/gpu_setup.sh on a loaned machine
    parser.add_argument("--train-dir", type=Path,
                        default=Path(carry) / "photos" if carry else TRAIN_DIR,
                        help="training photos (default: %(default)s)")
    parser.add_argument("--photo", type=Path,
                        default=Path(carry) / "eval" / CHECK_PHOTO if carry
                        else EVAL_DIR / CHECK_PHOTO)
    args = parser.parse_args(argv)
    use_shared_data()
    sizes = DRY if args.dry_run else GPU
    if sizes.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device here (torch.cuda.is_available() is False); --dry-run runs"
                     " the checks on the CPU")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    checks: list[Check] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        steps = {"training (trainer=gpu, resume, fp16 vs fp32)":
                 lambda: train(sizes, work, args.train_dir),
                 "Gatys baseline": lambda: gatys(sizes, work, args.photo),
                 "fastnst-infer": lambda: infer(sizes, work, args.photo),
                 "benchmarks": lambda: benchmarks(sizes)}
        for name, step in steps.items():
            check = Check(name)
            start = time.perf_counter()
            try:
                check.found = step()
                check.passed = True
            except Exception as e:  # every failure goes into the report; the others still run
                check.found = str(e).splitlines()
            check.seconds = time.perf_counter() - start
            print(f"{'pass' if check.passed else 'FAIL'}: {name} ({check.seconds:.0f} s)",
                  flush=True)
            checks.append(check)
            # After every check: a loan that ends mid-way still leaves what was found.
            write_report(args.report, checks, len(steps), args.dry_run)
    failed = [c.name for c in checks if not c.passed]
    print(f"wrote {args.report}; {len(failed)} failed" + (f": {', '.join(failed)}" if failed
                                                         else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
