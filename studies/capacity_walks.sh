#!/usr/bin/env bash
# Capacity walks on the default model, CPU, one job at a time: how long a prefix each text reconstructs when it
# walks the length grid, warm (each length starts from the text's own solution one grid length shorter) against
# cold (every length drawn afresh), and what each walk costs in evaluations and fit minutes.
# Warm walks: the default recipe fast-lbfgs-keep, 4 texts each of wiki, Austen and random, each text fitted
# alone (batch 1: its fit seconds are its own), cap 1500 evaluations per length. Cold walks: fast-lbfgs, cap
# 1000, wiki and Austen to 64 tokens. The store may also hold other recipes' walks over the same texts (e.g.
# `--recipe fast-lbfgs-hold`); walk_tables.py compares any two.
# Resumable: every command skips rows already in the store (results/capacity_walks.db). Then the report, the
# rows as CSV and the walk tables go to studies/results/.
set -euxo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
DB=${DB:-results/capacity_walks.db}
GRID=4,5,8,11,16,22,32,45,64,90,128
K="prototok capacity --samples 4 --data-seed 23 --min-chars 1500 --recipe fast-lbfgs-keep --steps 1500 --db $DB --batch-size 1"
$K --data wiki --lengths $GRID --warm prefix
$K --data austen --lengths $GRID --warm prefix
$K --data random --lengths $GRID --warm prefix
# The wiki walk one grid length further (181 tokens), for the texts still exact at 128:
#   $K --data wiki --lengths $GRID,181 --warm prefix
C="prototok capacity --samples 4 --data-seed 23 --min-chars 1500 --recipe fast-lbfgs --steps 1000 --db $DB --batch-size 2"
$C --data wiki --data austen --lengths 4,5,8,11,16,22,32,45,64 --warm cold
prototok report --db "$DB" -o studies/results/capacity_walks_report
prototok export --db "$DB" --table runs --format csv -o studies/results/capacity_walks_cpu.csv
python studies/walk_tables.py --db "$DB" --recipe "fast-lbfgs(max_steps=1000)"
python studies/walk_tables.py --db "$DB" --recipe "fast-lbfgs-keep(max_steps=1500)" --cold "fast-lbfgs(max_steps=1000)" \
    --summary-at 128 --norms
