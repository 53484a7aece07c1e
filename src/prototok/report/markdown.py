"""Markdown cells and tables: every section formats numbers the same way, and a missing value reads "-"."""

from __future__ import annotations


def fmt(x: float | None, spec: str = ".1f") -> str:
    """A number in `spec`, or "-" when there is none (no decode timed, no H_LM, nothing reconstructed)."""
    return "-" if x is None else format(x, spec)


def md_table(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table; cells are written with str()."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
