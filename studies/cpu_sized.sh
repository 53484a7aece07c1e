#!/usr/bin/env bash
# The CPU-sized variant of every table and figure of both papers (docs/fidelity.md, "One command per table and
# figure"), one store, then the report that sets the papers' numbers beside the rows measured as they measured
# them (none here: the default model is not one of the papers'; each row says why). Small budgets: these show the
# commands work end to end and how the default model behaves at small sizes, not the papers' scale.
# Resumable: every command skips rows already in the store (studies/results/cpu_sized.db, kept in the tree with
# its .protos/ folder). One job at a time on a 2-core machine (OMP_NUM_THREADS=1 leaves the other core free).
set -euxo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DB=${DB:-studies/results/cpu_sized.db}
OUT=${OUT:-studies/results/cpu_sized_report}
# [OS] Table 1: the two readings of its layouts (Eq. 1 and the caption), the paper's recipe capped at 300 steps
prototok ablate layouts --data wiki --samples 8 --layouts "e m^(N-1),e m^N" --lengths 1,2,4,16 --recipe paper \
    --steps 300 --db "$DB"
# [OS] Table 2: one m shared by groups of 1 and 4 texts
prototok ablate sharing --data wiki --samples 4 --groups 1,4 --lengths 8 --shared m --steps 150 --db "$DB"
# [OS] Table 3: capacity on fixed-length GloVe random words, the paper's recipe
prototok capacity --data random-glove --samples 4 --lengths 4,5,8,11,16 --recipe paper --steps 300 --db "$DB"
# [OS] Table 4: seconds per text, one text at a time
prototok capacity --data wiki --samples 2 --lengths 32 --batch-size 1 --recipe paper --steps 100 --db "$DB"
# [OS] Fig. 3: H_LM reconstructed, one-pass with a shared m against one [mem] of the cramming baseline
prototok capacity --data wiki --share m --samples 4 --lengths 4,8,16 --recipe fast-e50 --steps 300 --db "$DB"
prototok capacity --data wiki --method cram --num-mem 1 --samples 4 --lengths 4,8,16 --steps 300 \
    --db "$DB"
# [OS] Figs. 5-7: solution geometry (distances, line and Bezier paths between two solutions of a text)
prototok geometry --data wiki --seeds 3 --samples 2 --length 16 --steps 300 --db "$DB"
# [CR] Table 1: the cramming baseline on drawn-length random texts
prototok capacity --data random-glove-drawn --method cram --samples 8 --lengths 8,16,32 --steps 300 --db "$DB"
prototok report --db "$DB" -o "$OUT"
prototok export --db "$DB" --table runs --format csv -o studies/results/cpu_sized_cpu.csv
