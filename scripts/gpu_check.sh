#!/usr/bin/env bash
# GPU readiness check, for any CUDA machine whose python3 has PyTorch with CUDA:
#   bash scripts/gpu_check.sh            (OUT=/path keeps the run store and the log there)
# 1. the CPU unit tests of models, tasks and probes (another torch build);
# 2. every experiment's smoke preset with --device cuda (no CPU-only assumption anywhere);
# 3. the GPU-scale runs measured before (hidden-progress, icl-markov, gd-vs-ntk quick);
# 4. the benchmarks on the GPU (training steps, the ICL-MC sampler, Mamba's scans).
# The run store is copied to $OUT/gpu.sqlite after every run, so a cut-off check keeps its numbers.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
STORE=/tmp/gpu_runs/learnlab.sqlite
mkdir -p "$OUT"
save() { python3 -c "import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d)" "$STORE" "$OUT/gpu.sqlite"; }
timed() {
  start=$(date +%s.%N)
  python3 -m learnlab run "$@" --device cuda --store "$STORE" --quiet
  echo "wall: $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s for $* on cuda"
  save
}
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q -x -p no:cacheprovider -n 8 tests/models tests/tasks tests/probes tests/test_config.py 2>&1 | tail -2
for exp in $(python3 -m learnlab list | awk '{print $1}'); do
  timed "$exp" --preset smoke
done
timed copying --preset quick n_seeds=1 parts=copy   # E1/E2 on one seed: transformers, Mamba (parallel scan), LSTM
timed hidden-progress --preset quick
timed icl-markov --preset paper
timed gd-vs-ntk --preset quick
python3 benchmarks/icl_markov.py --device cuda --steps 50
python3 benchmarks/run.py --device cuda --steps 500 --repeats 1
python3 benchmarks/mamba.py --device cuda --steps 20 --hf-steps 2
