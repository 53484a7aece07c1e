#!/usr/bin/env bash
# The rest of issue 16's measurements on the default model (README, Long texts on a CPU): 4 texts per source,
# random texts, the cold walks and `paper` at N=64. Resumable: every command skips rows already in the store.
set -euxo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
C="prototok capacity --samples 4 --data-seed 23 --min-chars 1500 --recipe fast-lbfgs --steps 1000 --db results/issue16.db --batch-size 2"
$C --data wiki --data austen --data random --lengths 4,5,8,11,16,22,32,45,64,90,128 --warm prefix
$C --data wiki --data austen --lengths 4,5,8,11,16,22,32,45,64 --warm cold
python bench/recipe_sweep.py --lengths 32 64 --texts 4 --cap 600 --data wiki --data-seed 23 paper \
    --out bench/results/recipe_sweep_heldout_paper_cpu.jsonl
prototok report --db results/issue16.db -o bench/results/issue16_report
prototok export --db results/issue16.db --table runs --format csv -o bench/results/capacity_issue16_cpu.csv
