# Source this on a loaned GPU machine, in the repository root, before gpu_check.py or
# gpu_campaign.sh:   source scripts/gpu_setup.sh [.carry]
# It uses what scripts/pack_for_gpu.py packed (the folder named, default .carry): installs the
# packed wheels into /tmp/fastnst-site, links conf/ and models/ where an installed fastnst has
# them (fastnst.conf, fastnst.models), unpacks the VGG19 weights, and exports PYTHONPATH,
# FASTNST_VGG19, FASTNST_STYLE_DIR and FASTNST_CARRY (the folder). Prints the versions and GPU.
_carry=$(cd "${1:-.carry}" && pwd) || return 1
if [ -d "$_carry/wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/fastnst-site "$_carry"/wheels/*.whl || return 1
fi
export PYTHONPATH="/tmp/fastnst-site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
ln -sfn ../conf fastnst/conf
ln -sfn ../models fastnst/models
command -v python >/dev/null || ln -s "$(command -v python3)" /usr/local/bin/python
gunzip -c "$_carry/vgg19.safetensors.gz" > /tmp/fastnst-vgg19.safetensors || return 1
export FASTNST_VGG19=/tmp/fastnst-vgg19.safetensors FASTNST_STYLE_DIR="$_carry/paintings"
export FASTNST_CARRY="$_carry"
python -c "import torch, pytorch_lightning as pl, hydra, onnxruntime as ort
print('torch', torch.__version__, '| lightning', pl.__version__, '| hydra', hydra.__version__,
      '| onnxruntime', ort.__version__, ort.get_available_providers(), '|',
      torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"
unset _carry
