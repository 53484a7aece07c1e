"""What a report is drawn from, and how its rows group into settings (one table or one line per setting)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..store import Store


@dataclass(frozen=True)
class Results:
    """The store's fitted texts (`runs` rows) and geometry measurements (value parsed), read once per report."""

    rows: list[dict]
    geometry: list[dict]

    @classmethod
    def load(cls, store: Store) -> Results:
        return cls(store.rows(), store.geometry())


def sharing_kind(sharing: str) -> str:
    """ "none", "m" or "e": the group size is left out, so a setting's rows span every group size."""
    return sharing.split("/")[0]


def group_by(rows: list[dict], *cols: str) -> dict[tuple, list[dict]]:
    """Rows by their values in `cols` (sharing by its kind), keys sorted so the report's order is stable."""
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        out[tuple(sharing_kind(r[c]) if c == "sharing" else r[c] for c in cols)].append(r)
    return dict(sorted(out.items()))


def label(key: tuple, varying: list[int], names: list[str]) -> str:
    """A setting named by the columns that vary between settings only; model and source need no column name."""
    return ", ".join(f"{key[i]}" if names[i] in ("model", "source") else f"{names[i]} {key[i]}" for i in varying)
