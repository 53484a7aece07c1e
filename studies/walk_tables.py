"""Warm against cold capacity walks from one results db, as markdown tables (prototok.analysis.walks).

Per source and length: each text's evaluations (cold, warm), the warm accuracy, the work of each walk so far and
their ratio, and the warm walk's fit minutes so far per text. Work so far sums only the texts both walks fitted
at every length up to there, so the ratio compares the same texts. --summary-at N adds, per text of the warm walk,
whether it reconstructs N tokens exactly and what its whole walk up to N cost. --norms adds the L2 norm of each
stored e of the warm walk (long warm chains carry a large e).

    python studies/walk_tables.py --db results/capacity_walks.db --recipe "fast-lbfgs(max_steps=1000)"
    python studies/walk_tables.py --db results/capacity_walks.db --recipe "fast-lbfgs-keep(max_steps=1500)" \
        --cold "fast-lbfgs(max_steps=1000)" --summary-at 128 --norms
"""

from __future__ import annotations

import argparse

from prototok.analysis.walks import walk_tables
from prototok.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="results/capacity_walks.db")
    ap.add_argument("--recipe", default="fast-lbfgs(max_steps=1000)", help="the warm walk's recipe key (+prefix-warm)")
    ap.add_argument("--cold", default=None, help="the cold walk's recipe key (default: --recipe)")
    ap.add_argument(
        "--summary-at", type=int, default=None, help="also a per-text summary of the warm walk up to this length"
    )
    ap.add_argument("--norms", action="store_true", help="also |e| of every stored solution of the warm walk")
    args = ap.parse_args()
    store = Store(args.db, readonly=True)
    for block in walk_tables(store, args.recipe, args.cold, at=args.summary_at, with_norms=args.norms):
        print(block + "\n")


if __name__ == "__main__":
    main()
