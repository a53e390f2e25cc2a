#!/usr/bin/env bash
# GPU readiness check: run on a CUDA machine whose python3 has PyTorch with CUDA.
# It runs the CPU unit tests there (another torch version), the experiments on the GPU
# (hidden-progress quick / scaling / transformer learner / width x lr grid, icl-markov
# paper / priors / trigram, sq-vs-pac and corgi2 smoke, gd-vs-ntk quick), then the benchmarks on the GPU. The run store is copied to $OUT/gpu.sqlite after every run.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
STORE=/tmp/gpu_runs/learnlab.sqlite
mkdir -p "$OUT"
save() { python3 -c "import sqlite3,sys; s=sqlite3.connect(sys.argv[1]); d=sqlite3.connect(sys.argv[2]); s.backup(d)" "$STORE" "$OUT/gpu.sqlite"; }
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
python3 -m pytest -q -x -p no:cacheprovider -n 8 tests/models tests/tasks tests/probes tests/test_config.py 2>&1 | tail -2
for exp in "hidden-progress --preset quick" "hidden-progress --preset scaling" \
           "hidden-progress --preset smoke learner=transformer train.optimizer=adam train.lr=3e-3" \
           "hidden-progress --preset quick widths=25,100 lrs=0.05,0.1 n_seeds=4" \
           "icl-markov --preset paper" "icl-markov --preset priors" "icl-markov --preset trigram" \
           "sq-vs-pac --preset smoke" "gd-vs-ntk --preset quick" "corgi2 --preset smoke"; do
  start=$(date +%s)
  python3 -m learnlab.cli run $exp --device cuda --store "$STORE" --quiet
  echo "wall: $(( $(date +%s) - start )) s for $exp on cuda"
  save
done
python3 benchmarks/icl_markov.py --device cuda --steps 50
python3 benchmarks/run.py --device cuda --steps 500 --repeats 1
