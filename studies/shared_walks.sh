#!/usr/bin/env bash
# Capacity with one m shared by the 4 texts of a source (`--share m`, e per text), beside the per-text walks of
# capacity_walks.sh on the same texts (data seed 23) and beside the paper's shared-m numbers (Pythia-160M: 45 on
# every source). A shared vector needs an AdamW recipe: the shared default `fast-e50`, capped at 1500 steps per
# length (a step evaluates all 4 texts, so each text gets the per-text walks' 1500 evaluations), warm from the
# group's own solution one grid length shorter. Breadth first: every source up to 22 tokens (minutes each), then
# each source's full walk (a length past 22 costs up to an hour of 1500 joint steps).
# Resumable: every command skips rows already in the store (studies/results/shared_walks.db, tracked with its
# .protos/ folder, so a walk continues across sittings). One job at a time on a 2-core machine.
set -euxo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DB=${DB:-studies/results/shared_walks.db}
GRID=4,5,8,11,16,22,32,45,64,90,128
K="prototok capacity --samples 4 --data-seed 23 --min-chars 1500 --share m --recipe fast-e50 --steps 1500 --db $DB"
for d in wiki random austen; do $K --warm prefix --data $d --lengths 4,5,8,11,16,22; done
$K --warm prefix --data wiki --lengths $GRID
$K --warm prefix --data random --lengths $GRID
$K --warm prefix --data austen --lengths $GRID
prototok export --db "$DB" --table runs --format csv -o studies/results/shared_walks_cpu.csv
