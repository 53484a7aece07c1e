#!/usr/bin/env bash
# The rest of issue 16's measurements on the default model (README, Long texts on a CPU), one job at a time:
# the goal-2 walks with the default recipe fast-lbfgs-keep, 4 texts each of wiki, Austen and random (wiki is done
# and Austen to their first failures), each text fitted alone (batch 1: its fit seconds are its own), then
# the cold walks of the 3rd and 4th texts. (The fast-lbfgs-hold wiki walk, which
# lost to keep's at 128, is in the same store: README, goal 2.) Resumable: every command skips rows already in
# the store; rows go to results/issue16.db.
set -euxo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
GRID=4,5,8,11,16,22,32,45,64,90,128
K="prototok capacity --samples 4 --data-seed 23 --min-chars 1500 --recipe fast-lbfgs-keep --steps 1500 --db results/issue16.db --batch-size 1"
$K --data wiki --lengths $GRID --warm prefix
$K --data austen --lengths $GRID --warm prefix
$K --data random --lengths $GRID --warm prefix
# One grid step further (181) ran for wiki texts 0-2 (README: 0.851, 0.807, 0.895): the walk of wiki text 3, short
# at 128 already, was stopped by hand there, and Austen and random stop before 128. To finish it:
#   $K --data wiki --lengths $GRID,181 --warm prefix
C="prototok capacity --samples 4 --data-seed 23 --min-chars 1500 --recipe fast-lbfgs --steps 1000 --db results/issue16.db --batch-size 2"
$C --data wiki --data austen --lengths 4,5,8,11,16,22,32,45,64 --warm cold
prototok report --db results/issue16.db -o bench/results/issue16_report
prototok export --db results/issue16.db --table runs --format csv -o bench/results/capacity_issue16_cpu.csv
python bench/walk_tables.py --db results/issue16.db --recipe "fast-lbfgs(max_steps=1000)"
python bench/walk_tables.py --db results/issue16.db --recipe "fast-lbfgs-keep(max_steps=1500)" --cold "fast-lbfgs(max_steps=1000)" \
    --goal 128 --norms
