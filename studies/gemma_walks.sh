#!/usr/bin/env bash
# The capacity walks of capacity_walks.sh on Gemma-3-270M (a base model; its position 0 is no attention sink as
# SmolLM2's is): the default recipe fast-lbfgs-keep, warm from each text's own shorter solution, cap 1500
# evaluations per length, each text alone, the same texts (data seed 23, 4 per source). Random words first (the
# shorter walk), then wiki.
# Resumable: every command skips rows already in the store (studies/results/gemma_walks.db, tracked with its
# .protos/ folder). One job at a time on a 2-core machine; a Gemma step costs about twice a SmolLM2 step here.
set -euxo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DB=${DB:-studies/results/gemma_walks.db}
GRID=4,5,8,11,16,22,32,45,64,90,128
K="prototok capacity --model gemma3-270m --samples 4 --data-seed 23 --min-chars 1500 --recipe fast-lbfgs-keep --steps 1500 --db $DB --batch-size 1"
$K --warm prefix --data random --lengths $GRID
$K --warm prefix --data wiki --lengths $GRID
prototok export --db "$DB" --table runs --format csv -o studies/results/gemma_walks_cpu.csv
python studies/walk_tables.py --db "$DB" --recipe "fast-lbfgs-keep(max_steps=1500)"
