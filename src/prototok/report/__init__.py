"""`prototok report`: the results store as markdown tables shaped like the papers' tables and PNG figures
(matplotlib, Agg). Everything is recomputed from the rows, so a report of a half-finished run is a valid report
of what is done.

One module per family of sections, each with `section(results) -> str` ("" when the store has nothing for it)
and `figures(results, out) -> list[Path]`; a new section is a module with those two functions and one entry in
SECTIONS. Shared pieces: results (the rows, grouped into settings), markdown, plotting, reference (the papers'
published numbers).
"""

from __future__ import annotations

from pathlib import Path

from ..store import Store
from . import ablations, baseline, capacity, geometry, timing
from .reference import paper_number
from .results import Results

__all__ = ["SECTIONS", "paper_number", "write_report"]

SECTIONS = (capacity, ablations, timing, baseline, geometry)  # the report's order, tables and figures alike


def write_report(db: str | Path, out: str | Path) -> list[Path]:
    """Write report.md and the figures into `out` (created if needed); returns the files written."""
    out = Path(out)
    with Store(db, readonly=True) as store:  # read-only: refuses a foreign database, reads one on a read-only disk
        results = Results.load(store)
    out.mkdir(parents=True, exist_ok=True)  # only once the database is known to be one
    parts = [f"# prototok results\n\nFrom `{db}`: {len(results.rows)} fitted texts."]
    parts += [s for s in (family.section(results) for family in SECTIONS) if s]
    files = [path for family in SECTIONS for path in family.figures(results, out)]
    if files:
        parts.append("## Figures\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in files))
    md = out / "report.md"
    md.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return [md, *files]
