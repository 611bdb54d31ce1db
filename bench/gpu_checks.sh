#!/usr/bin/env bash
# The GPU checks of issues 3, 5 and 9, in one run on a lent CUDA machine (its own torch; no network there):
#   bash bench/gpu_checks.sh            (from the repo root; writes findings to $OUT or ./gpu-out)
# Each part runs under `timeout`; the whole script stays under ~8 minutes on one H100/H200.
set -u -o pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
PY=${PY:-python3}
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
  $PY -c "import tensorrt" 2>&1 | tail -1 | sed 's/^/import tensorrt: /'
} 2>&1 | tee "$OUT/env.txt"
# editable installs without dependencies: the machine's own torch stays, entry points get registered
$PY -m pip install -q --no-deps --no-build-isolation -e . -e plugins/prime-plugin-trainer \
    -e plugins/prime-plugin-dit -e export 2>&1 | tail -3 | tee "$OUT/install.txt"
$PY -c "from prime_core.plugin.registry import get_registry as g; r=g(); print('trainers', r.names('trainer'), 'backbones', r.names('backbone'))"
status=0
echo "== trainer check"; timeout 300 $PY bench/gpu_trainer_check.py --steps 200 --json "$OUT/trainer.json" 2>&1 \
  | tee "$OUT/trainer.txt" | tail -40 || status=1
echo "== export check"; timeout 180 $PY bench/gpu_export_check.py 2>&1 | tee "$OUT/export.txt" | tail -30 || status=1
# issue 9: the sampler on CUDA vs CPU (prime sample/eval --device, identical tokens), and DiT-base training MFU
echo "== sampler cuda vs cpu"; timeout 150 $PY bench/gpu_sampler_check.py --device cuda --num-samples 10000 \
  --steps 128 --json "$OUT/sampler.json" 2>&1 | tee "$OUT/sampler.txt" | tail -12 || status=1
echo "== DiT 12x768 L=1024 bf16 MFU"; timeout 150 $PY bench/gpu_dit_mfu.py --device cuda --steps 30 --warmup 5 \
  --batch-size 8 --json "$OUT/dit_mfu.json" 2>&1 | tee "$OUT/dit_mfu.txt" | tail -5 || status=1
exit $status
