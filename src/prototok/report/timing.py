"""Table 4: time to fit and to decode, one line per (model, device, method, experiment, recipe, layout, sharing
kind, length), so lines of different settings are never averaged together. A row's method comes from the
methods registry (the layout its file carries), so a new method gets its own lines without a change here.

Fit seconds per text: a text's wall time in the fitter while `batch` texts were fitted at once; for a group
sharing a vector, whose rows each carry the whole group's wall time, that time divided by the group's size
(labelled so). A line none of whose texts was reconstructed shows "-", as the paper's Table 4 prints "-" beyond
capacity: such a fit ran its whole budget and times the budget, not a fit. [OS] Table 4's seconds stand beside
a line timed as it was timed (report.reference.table4), else the report says why not.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from ..experiments.runner import THRESHOLD
from ..methods import for_layout, judged_score
from .markdown import fmt, md_table
from .reference import table4
from .results import Results, sharing_kind

KEY = ("model", "device", "method", "experiment", "recipe", "layout", "sharing", "length")  # one Table 4 line


def _value(row: dict, column: str):
    if column == "method":
        return for_layout(row["layout"]).name
    if column == "sharing":
        return sharing_kind(row["sharing"])
    return row[column]


def group_size(row: dict) -> int:
    """Texts that shared the row's fit: its sharing group's size, 1 without sharing."""
    return 1 if row["sharing"] == "none" else int(row["sharing"].split("/")[1])


def timing_rows(rows: list[dict], key: tuple[str, ...] = KEY) -> dict[tuple, dict]:
    """`key` values -> fit seconds per text (a shared group's wall time divided by its size), steps, seconds per
    step, batch, whether any text was reconstructed, and decode tokens/s (each proto-token file's decode counted
    once: one-pass decode, or greedy generation for cramming)."""
    acc: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        acc[tuple(_value(r, c) for c in key)].append(r)
    out = {}
    for k, rs in sorted(acc.items()):
        files = {r["proto_path"]: r for r in rs if r["decode_seconds"] > 0}
        tps = [r["decode_tokens"] / r["decode_seconds"] for r in files.values()]
        out[k] = {
            "texts": len(rs),
            "fit_s": statistics.fmean(r["fit_seconds"] / group_size(r) for r in rs),
            "steps": statistics.fmean(r["steps"] for r in rs),
            "s_per_step": sum(r["fit_seconds"] for r in rs) / sum(r["steps"] + 1 for r in rs),
            "batch": statistics.fmean(r["batch_size"] for r in rs),
            "reconstructed": any(judged_score(r) >= THRESHOLD for r in rs),
            "decode_tps": statistics.fmean(tps) if tps else None,
        }
    return out


def section(results: Results) -> str:
    if not results.rows:
        return ""
    body = []
    for key, t in timing_rows(results.rows).items():
        model, device, _, experiment, recipe, layout, sharing, n = key
        paper = table4(
            model=model, experiment=experiment, recipe=recipe, layout=layout, sharing=sharing, length=n,
            batch=t["batch"], device=device,
        )  # fmt: skip
        body.append(
            [
                *key[:6],
                sharing if sharing == "none" else f"{sharing} (group time / size)",
                n,
                t["texts"],
                f"{t['fit_s']:.2f}" if t["reconstructed"] else "- (none reconstructed)",
                f"{t['steps']:.0f}",
                f"{t['s_per_step'] * 1000:.1f}",
                f"{t['batch']:.0f}",
                fmt(t["decode_tps"], ",.0f"),
                paper.cell(),
            ]
        )
    header = [*KEY[:7], "length", "texts", "fit s/text", "steps", "ms/step", "batch", "decode tok/s", "paper s"]
    return "\n".join(
        [
            "## Table 4: time to fit and to decode\n",
            "One line per model, device, method, experiment, recipe, layout, sharing kind and length. Fit seconds "
            "per text: wall time a text spent in the fitter while `batch` texts were fitted at once; a group "
            'sharing a vector: the group\'s wall time divided by its size. "-": no text of the line was '
            "reconstructed (the paper's \"-\", beyond capacity). The paper's Table 4 is one text fitted alone on a "
            "GPU, without sharing: the lines with batch 1 (e.g. from `prototok capacity --batch-size 1`). Decode: "
            "tokens per second of one batched one-pass decode of a whole proto-token file (methods cram and "
            "cram-sink: of one batched greedy generation, one forward per token).",
            "",
            md_table(header, body),
        ]
    )


def figures(results: Results, out: Path) -> list[Path]:
    """None: decode speed is drawn as Fig. 4, one-pass against cramming (report.baseline)."""
    return []
