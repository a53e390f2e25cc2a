#!/usr/bin/env bash
# GPU readiness check: run on a CUDA machine whose python3 has PyTorch with CUDA.
# It runs the CPU unit tests there (another torch version), both experiments on the
# GPU, and the benchmarks on the GPU. Results go to $OUT (default /tmp/gpu_check).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q -x -p no:cacheprovider tests/models tests/tasks tests/probes tests/test_config.py 2>&1 | tail -2
for exp in "hidden-progress --preset quick" "icl-markov --preset paper"; do
  start=$(date +%s.%N)
  python3 -m learnlab.cli run $exp --device cuda --store "$OUT/gpu.sqlite" --quiet
  echo "wall: $(echo "$(date +%s.%N) - $start" | bc) s for $exp on cuda"
done
python3 -m learnlab.cli report --store "$OUT/gpu.sqlite" --out "$OUT/report" >/dev/null
python3 benchmarks/icl_markov.py --device cuda --steps 50
python3 benchmarks/run.py --device cuda --steps 1000 --repeats 1
