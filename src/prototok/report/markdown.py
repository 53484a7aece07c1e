"""Markdown cells and tables: every section formats numbers the same way, and a missing value reads "-"."""

from __future__ import annotations


def fmt(x: float | None, spec: str = ".1f") -> str:
    """A number in `spec`, or "-" when there is none (no decode timed, no H_LM, nothing reconstructed)."""
    return "-" if x is None else format(x, spec)


def md_cell(value) -> str:
    """A value as one table cell: str(), with `|` escaped and line breaks turned into spaces, so a source name
    or a document path holding either cannot break its row."""
    return " ".join(str(value).replace("|", "\\|").splitlines())


def md_table(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table; every cell (header included) goes through md_cell."""
    lines = ["| " + " | ".join(map(md_cell, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(md_cell, r)) + " |" for r in rows]
    return "\n".join(lines)
