"""Table 4: time to fit and to decode, per model, device, method and length, over every experiment's rows.
A row's method comes from the methods registry (the layout its file carries), so a new method gets its own
lines without a change here.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from ..methods import for_layout
from .markdown import fmt, md_table
from .results import Results


def timing_rows(rows: list[dict]) -> dict[tuple, dict]:
    """(model, device, method name, length) -> fit seconds per text, steps, seconds per step, batch, decode
    tokens/s (each proto-token file's decode counted once: one-pass decode, or greedy generation for cramming)."""
    acc: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        acc[(r["model"], r["device"], for_layout(r["layout"]).name, r["length"])].append(r)
    out = {}
    for key, rs in sorted(acc.items()):
        files = {r["proto_path"]: r for r in rs if r["decode_seconds"] > 0}
        tps = [r["decode_tokens"] / r["decode_seconds"] for r in files.values()]
        out[key] = {
            "texts": len(rs),
            "fit_s": statistics.fmean(r["fit_seconds"] for r in rs),
            "steps": statistics.fmean(r["steps"] for r in rs),
            "s_per_step": sum(r["fit_seconds"] for r in rs) / sum(r["steps"] + 1 for r in rs),
            "batch": statistics.fmean(r["batch_size"] for r in rs),
            "decode_tps": statistics.fmean(tps) if tps else None,
        }
    return out


def section(results: Results) -> str:
    if not results.rows:
        return ""
    body = [
        [
            *key,
            t["texts"],
            f"{t['fit_s']:.2f}",
            f"{t['steps']:.0f}",
            f"{t['s_per_step'] * 1000:.1f}",
            f"{t['batch']:.0f}",
            fmt(t["decode_tps"], ",.0f"),
        ]
        for key, t in timing_rows(results.rows).items()
    ]
    header = ["model", "device", "method", "length", "texts", "fit s/text", "steps", "ms/step", "batch"]
    return "\n".join(
        [
            "## Table 4: time to fit and to decode\n",
            "Fit seconds: wall time a text spent in the fitter while `batch` texts were fitted at once (all "
            "experiments; the paper's Table 4 is one text fitted alone: the lines with batch 1, e.g. from "
            "`prototok capacity --batch-size 1`). Decode: tokens per second of one batched one-pass decode of a "
            "whole proto-token file (methods cram and cram-sink: of one batched greedy generation, one forward per "
            "token).",
            "",
            md_table([*header, "decode tok/s"], body),
        ]
    )


def figures(results: Results, out: Path) -> list[Path]:
    """None: decode speed is drawn as Fig. 4, one-pass against cramming (report.baseline)."""
    return []
