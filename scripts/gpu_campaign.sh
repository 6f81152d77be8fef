#!/usr/bin/env bash
# Better shipped styles in one GPU loan: train every shipped style at a GPU schedule, one after
# another, in commands of at most 10 minutes that each go on where the last one stopped.
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
# STEPS = 360 x steps/s. Measured on an H200 (docs/benchmarks.md): 31 steps/s in a real run, so
# the default 8000 takes about 4.5 minutes a style with start-up, and a 15-minute loan trains two
# styles. Each command stops itself at MINUTES (default 9) with a checkpoint; the next resumes it.
# A style is done when its model file records STEPS steps.
# EXTRA adds training overrides (the test runs it on the CPU: EXTRA="trainer.accelerator=cpu ...").
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-8000}
MINUTES=${MINUTES:-9}
PHOTOS=${PHOTOS:-${FASTNST_CARRY:-.carry}/photos}
# Those not yet trained on a GPU first (a loaned machine starts bare: set STYLES to go on).
STYLES=${STYLES:-"mosaic composition_vii great_wave woman_with_hat shipwreck udnie starry_night the_scream"}
CAMPAIGN_OUT=${CAMPAIGN_OUT:-outputs/campaign}  # not OUT: the device tool sets that
read -r -a extra <<< "${EXTRA:-}"
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

for style in $STYLES; do
  run_dir="$CAMPAIGN_OUT/$style"
  if [ "$(done_steps "$run_dir/$style.safetensors")" -ge "$STEPS" ]; then
    echo "$style: done ($STEPS steps)"; continue
  fi
  left=$(( deadline - $(date +%s) ))
  if [ "$left" -lt 60 ]; then
    echo "gpu_campaign: out of time for this command; run it again to go on"; exit 0
  fi
  resume=()
  limit=$(( left - 30 ))  # seconds of training in this command
  if [ -f "$run_dir/checkpoints/last.ckpt" ]; then
    resume=("resume=$run_dir/checkpoints/last.ckpt")
    limit=$(( limit + $(trained_seconds "$run_dir/checkpoints/last.ckpt") ))
  fi
  echo "$style: training to step $STEPS, ${left}s left in this command"
  python -m fastnst.train "style=$style" trainer=gpu "trainer.max_steps=$STEPS" \
    "data.root=$PHOTOS" "hydra.run.dir=$run_dir" \
    "trainer.max_time=$(printf '00:%02d:%02d:%02d' $(( limit / 3600 )) $(( limit % 3600 / 60 )) $(( limit % 60 )))" \
    trainer.enable_progress_bar=false "${resume[@]}" "${extra[@]}"
done
echo "gpu_campaign: all styles at $STEPS steps under $CAMPAIGN_OUT"
