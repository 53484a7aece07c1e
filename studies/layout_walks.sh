#!/usr/bin/env bash
# Capacity walks under the layout `e m^N` (e's own output unsupervised, the first m predicts t_1), beside the
# `e m^(N-1)` walks of capacity_walks.sh on the same texts (data seed 23, 4 texts per source, the default recipe
# fast-lbfgs-keep, cap 1500 evaluations per length, each text alone, warm from its own shorter solution). Why:
# in 4 of 6 one-token-short `e m^(N-1)` failures the only wrong output was position 0, the one e alone decides;
# `e m^N` takes that position out of the objective.
# Resumable, and kept in the tree (studies/results/layout_walks.db and its .protos/ folder), so a walk longer
# than one sitting continues where it stopped: every command skips rows already in the store. One job at a time
# on a 2-core machine (OMP_NUM_THREADS=1 leaves the other core to other work).
set -euxo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DB=${DB:-studies/results/layout_walks.db}
GRID=4,5,8,11,16,22,32,45,64,90,128
K="prototok capacity --samples 4 --data-seed 23 --min-chars 1500 --recipe fast-lbfgs-keep --steps 1500 --db $DB"
$K --batch-size 1 --warm prefix --layout "e m^N" --data random --lengths $GRID
$K --batch-size 1 --warm prefix --layout "e m^N" --data austen --lengths $GRID
prototok export --db "$DB" --table runs --format csv -o studies/results/layout_walks_cpu.csv
python studies/walk_tables.py --db "$DB" --recipe "fast-lbfgs-keep(max_steps=1500)"
