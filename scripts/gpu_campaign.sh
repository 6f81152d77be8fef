#!/usr/bin/env bash
# Better shipped styles in one GPU loan: train every shipped style at a GPU schedule, PARALLEL at
# a time, in commands of at most 10 minutes that each go on where the last one stopped.
#
#   On this machine, once:   python scripts/pack_for_gpu.py       # .carry: photos, VGG19, wheels
#   On the GPU, repeatedly:  source scripts/gpu_setup.sh; bash scripts/gpu_campaign.sh [STEPS]
#   Copy back outputs/campaign/<s>/<s>.safetensors (the device tool: into $OUT), then here:
#   per style:               python scripts/eval_quality.py --models <s>.safetensors ...
#                            python scripts/ship_style.py <s>.safetensors
#
# What the GPU machine needs: this repository and what scripts/pack_for_gpu.py packs into .carry
# (photos, VGG19, paintings, the wheels for Hydra), set up by sourcing scripts/gpu_setup.sh. The
# schedule: the measured CPU recipe (random weights, balanced weights, content at relu4_2;
# docs/training_recipes.md: no starting network measured better) at trainer=gpu's 256 px crops,
# STEPS steps per style. Set STEPS from the steps/s that scripts/gpu_check.py measures
# (bench_train, 256 px, bf16) so that the eight styles fit the loan: e.g. 6 minutes a style is
# STEPS = 360 x steps/s. Measured on an H200 (docs/benchmarks.md): one training alone made 31
# steps/s, but a step at batch 4 leaves the GPU mostly idle, and four at once made 17 steps/s
# each (67 in all). So the default, 8000 steps with PARALLEL=4, trains four styles in 8 minutes.
# Each command stops itself at MINUTES (default 9) with a checkpoint; the next resumes it. Each
# training's output goes to CAMPAIGN_OUT/<style>.log; the last line of each is printed.
# A style is done when its model file records STEPS steps.
# EXTRA adds training overrides (the test runs it on the CPU: EXTRA="trainer.accelerator=cpu ...").
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-8000}
MINUTES=${MINUTES:-9}
PARALLEL=${PARALLEL:-4}  # trainings at once: an H200 ran 4 at 17 steps/s each, 1 at 31
PHOTOS=${PHOTOS:-${FASTNST_CARRY:-.carry}/photos}
# Those not yet trained on a GPU first (a loaned machine starts bare: set STYLES to go on).
STYLES=${STYLES:-"mosaic composition_vii great_wave woman_with_hat shipwreck udnie starry_night the_scream"}
CAMPAIGN_OUT=${CAMPAIGN_OUT:-outputs/campaign}  # not OUT: the device tool sets that
read -r -a extra <<< "${EXTRA:-}"
[ "$PARALLEL" -ge 1 ] 2>/dev/null || { echo "gpu_campaign: PARALLEL must be 1 or more, not '$PARALLEL'" >&2; exit 2; }
[ -d "$PHOTOS" ] || { echo "gpu_campaign: no $PHOTOS; run python scripts/pack_for_gpu.py first" >&2; exit 2; }
deadline=$(( $(date +%s) + MINUTES * 60 ))

done_steps() {  # the steps a finished model file records, else 0
  python - "$1" <<'EOF'
import sys
from pathlib import Path
from fastnst.model_files import read_metadata
path = Path(sys.argv[1])
print(read_metadata(path).get("steps", 0) if path.is_file() else 0)
EOF
}

trained_seconds() {  # the training time a checkpoint records: Lightning's max_time counts it too
  python - "$1" <<'EOF'
import sys
import torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
print(int(state.get("callbacks", {}).get("Timer", {}).get("time_elapsed", {}).get("train", 0)))
EOF
}

train() {  # STYLE LEFT: train STYLE towards STEPS for at most LEFT - 30 more seconds
  local style=$1 run_dir="$CAMPAIGN_OUT/$1" limit=$(( $2 - 30 )) resume=()
  if [ -f "$run_dir/checkpoints/last.ckpt" ]; then
    resume=("resume=$run_dir/checkpoints/last.ckpt")
    limit=$(( limit + $(trained_seconds "$run_dir/checkpoints/last.ckpt") ))
  fi
  python -m fastnst.train "style=$style" trainer=gpu "trainer.max_steps=$STEPS" \
    "data.root=$PHOTOS" "hydra.run.dir=$run_dir" \
    "trainer.max_time=$(printf '00:%02d:%02d:%02d' $(( limit / 3600 )) $(( limit % 3600 / 60 )) $(( limit % 60 )))" \
    trainer.enable_progress_bar=false "${resume[@]}" "${extra[@]}"
}

mkdir -p "$CAMPAIGN_OUT"
running=0 failed=0 launched=()
for style in $STYLES; do
  if [ "$(done_steps "$CAMPAIGN_OUT/$style/$style.safetensors")" -ge "$STEPS" ]; then
    echo "$style: done ($STEPS steps)"; continue
  fi
  if [ "$running" -ge "$PARALLEL" ]; then  # a free slot first
    wait -n || failed=$(( failed + 1 )); running=$(( running - 1 ))
  fi
  left=$(( deadline - $(date +%s) ))
  if [ "$left" -lt 60 ]; then
    echo "gpu_campaign: no time left in this command for $style"; break
  fi
  echo "$style: training to step $STEPS, ${left}s left in this command; log $CAMPAIGN_OUT/$style.log"
  train "$style" "$left" > "$CAMPAIGN_OUT/$style.log" 2>&1 &
  running=$(( running + 1 )); launched+=("$style")
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=$(( failed + 1 )); running=$(( running - 1 ))
done
for style in "${launched[@]}"; do
  tail -n 1 "$CAMPAIGN_OUT/$style.log" | sed "s/^/$style: /"
done
finished=0 total=0
for style in $STYLES; do
  total=$(( total + 1 ))
  [ "$(done_steps "$CAMPAIGN_OUT/$style/$style.safetensors")" -lt "$STEPS" ] || finished=$(( finished + 1 ))
done
if [ "$failed" -gt 0 ]; then
  echo "gpu_campaign: $failed training(s) failed; their logs are in $CAMPAIGN_OUT" >&2; exit 1
fi
if [ "$finished" -eq "$total" ]; then
  echo "gpu_campaign: all styles at $STEPS steps under $CAMPAIGN_OUT"
else
  echo "gpu_campaign: $finished of $total styles at $STEPS steps; run it again to go on"
fi
