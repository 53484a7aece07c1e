"""The results store -> markdown tables shaped like the paper's Tables 1-4, and PNG figures (matplotlib, Agg).

Everything is recomputed from the rows, so a report of a half-finished run is a valid report of what is done.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path

from ..experiments.ablate import SHARED_E_NOTE, layout_table, sharing_table
from ..experiments.capacity import summarize
from ..experiments.runner import THRESHOLD
from ..store import Store

# Published numbers, shown beside ours when the model matches (by the last part of its name, lower-case).
# Capacity = longest text (tokens) reconstructed at >= 0.99 accuracy, layout e m^(N-1), from the capacity
# results of arXiv 2505.21189 (one-step paper) as quoted in this project's issue 3; their table number is to be
# checked against the PDF. Numbers we could not confirm are left out rather than guessed.
PAPER: dict[str, dict[str, float]] = {
    "capacity": {
        "pythia-160m": 128,
        "llama-3.2-1b": 362,
        "llama-3.1-8b": 724,
    },
}


def paper_number(table: str, model: str) -> float | None:
    name = re.split(r"[/\\]", model.rstrip("/\\"))[-1].lower()
    return PAPER.get(table, {}).get(name)


def _fmt(x: float | None, spec: str = ".1f") -> str:
    return "-" if x is None else format(x, spec)


def _md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _kind(sharing: str) -> str:
    return sharing.split("/")[0]


def _groups(rows: list[dict], *cols) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        out[tuple(_kind(r[c]) if c == "sharing" else r[c] for c in cols)].append(r)
    return dict(sorted(out.items()))


def _label(key: tuple, varying: list[int], names: list[str]) -> str:
    return ", ".join(f"{key[i]}" if names[i] in ("model", "source") else f"{names[i]} {key[i]}" for i in varying)


CAP_COLS = ["model", "source", "layout", "sharing", "recipe"]


def _capacity_settings(rows: list[dict]) -> tuple[dict, list[int]]:
    settings = _groups([r for r in rows if r["experiment"] == "capacity"], *CAP_COLS)
    varying = [i for i in range(len(CAP_COLS)) if len({k[i] for k in settings}) > 1] or [0, 1]
    return settings, varying


def capacity_section(rows: list[dict]) -> str:
    settings, varying = _capacity_settings(rows)
    if not settings:
        return ""
    out = [
        "## Capacity per model and source\n",
        f"Capacity: the longest grid length reconstructed at token accuracy >= {THRESHOLD} (max over seeds, "
        "then mean +- std over samples); H_LM in bits, summed over the prefix (the frozen model's own "
        "autoregressive cross-entropy; token 0 from BOS when the tokenizer has one). Layout `mem` rows are the "
        "cramming baseline (arXiv 2502.13063), judged on greedy generation accuracy, not teacher-forced.\n",
    ]
    table = []
    for key, rs in settings.items():
        s = summarize(rs)
        ref = paper_number("capacity", key[0]) if key[2] == "e m^(N-1)" and key[3] == "none" else None
        seeds = len({r["seed"] for r in rs})
        table.append(
            [
                *key,
                len(s.samples),
                seeds,
                f"{s.mean:.1f} +- {s.std:.1f}",
                f"{s.seed_mean:.1f}",
                _fmt(s.h_lm_mean),
                _fmt(ref, "g"),
            ]
        )
    out.append(
        _md_table(
            [*CAP_COLS, "samples", "seeds", "capacity (tokens)", "one seed", "H_LM at capacity (bits)", "paper"], table
        )
    )
    out.append("\n## Accuracy vs length (capacity runs)")
    for key, rs in settings.items():
        s = summarize(rs)
        out.append(f"\n### {_label(key, varying, CAP_COLS)}\n")
        out.append(
            _md_table(
                ["length", "accuracy (max over seeds)", "accuracy (mean +- std)", "reconstructed", "H_LM (bits)"],
                [
                    [
                        n,
                        f"{st['best']:.4f}",
                        f"{st['mean']:.4f} +- {st['std']:.4f}",
                        f"{st['passed']}/{st['samples']}",
                        _fmt(st["h_lm"]),
                    ]
                    for n, st in s.by_length.items()
                ],
            )
        )
    return "\n".join(out)


def layouts_section(rows: list[dict]) -> str:
    rs = [r for r in rows if r["experiment"] == "layouts"]
    if not rs:
        return ""
    out = ["## Table 1: arrangements of e and m\n", "Token accuracy, mean +- std over samples and seeds."]
    for key, group in _groups(rs, "model", "source", "recipe").items():
        table = layout_table(group)
        lengths = sorted({n for d in table.values() for n in d})
        out.append(f"\n### {key[0]}, {key[1]}, recipe {key[2]}\n")
        body = [
            [lay] + [f"{d[n][0]:.3f} +- {d[n][1]:.3f}" if n in d else "-" for n in lengths] for lay, d in table.items()
        ]
        out.append(_md_table(["layout"] + [str(n) for n in lengths], body))
    return "\n".join(out)


def sharing_section(rows: list[dict]) -> str:
    rs = [r for r in rows if r["experiment"] == "sharing"]
    if not rs:
        return ""
    out = [
        "## Table 2: one vector shared by a group of texts\n",
        "Token accuracy: max over seeds (per text, then mean over texts) and average over seeds.\n",
    ]
    for key, group in _groups(rs, "model", "source", "layout", "recipe").items():
        out.append(f"\n### {key[0]}, {key[1]}, layout {key[2]}, recipe {key[3]}\n")
        table = sharing_table(group)
        body = [
            [kind, size, n, f"{st['max']:.4f}", f"{st['mean']:.4f} +- {st['std']:.4f}", st["texts"]]
            for (kind, size, n), st in table.items()
        ]
        out.append(_md_table(["shared", "group size", "length", "max over seeds", "average", "texts"], body))
        if any(k[0] == "e" for k in table) and key[2] == "e m^(N-1)":
            out.append(f"\nNote: {SHARED_E_NOTE}.")
    return "\n".join(out)


def method(row: dict) -> str:
    """ "cram" for the autoregressive baseline's rows (layout "mem"), "onepass" otherwise."""
    return "cram" if row["layout"] == "mem" else "onepass"


def timing_rows(rows: list[dict]) -> dict[tuple, dict]:
    """(model, device, method, length) -> fit seconds per text, steps, seconds per step, decode tokens/s
    (one-pass decode, or greedy generation for cramming rows)."""
    acc: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        acc[(r["model"], r["device"], method(r), r["length"])].append(r)
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


def timing_section(rows: list[dict]) -> str:
    if not rows:
        return ""
    body = [
        [
            *key,
            t["texts"],
            f"{t['fit_s']:.2f}",
            f"{t['steps']:.0f}",
            f"{t['s_per_step'] * 1000:.1f}",
            f"{t['batch']:.0f}",
            _fmt(t["decode_tps"], ",.0f"),
        ]
        for key, t in timing_rows(rows).items()
    ]
    return "\n".join(
        [
            "## Table 4: time to fit and to decode\n",
            "Fit seconds: wall time a text spent in the fitter while `batch` texts were fitted at once (all "
            "experiments). Decode: tokens per second of one batched one-pass decode of a whole proto-token file "
            "(method cram: of one batched greedy generation, one forward per token).",
            "",
            _md_table(
                [
                    "model",
                    "device",
                    "method",
                    "length",
                    "texts",
                    "fit s/text",
                    "steps",
                    "ms/step",
                    "batch",
                    "decode tok/s",
                ],
                body,
            ),
        ]
    )


# ------------------------------------------------------------------------------------------------ figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log2_axis(ax, lengths) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(lengths))
    ax.set_xticklabels([str(n) for n in sorted(lengths)], rotation=45, fontsize=7)
    ax.minorticks_off()


def figures(rows: list[dict], out: Path) -> list[Path]:
    plt = _plt()
    written = []
    settings, varying = _capacity_settings(rows)
    if settings:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        lengths = set()
        for key, rs in settings.items():
            s = summarize(rs)
            ns = list(s.by_length)
            lengths |= set(ns)
            ax.plot(ns, [s.by_length[n]["best"] for n in ns], marker="o", label=_label(key, varying, CAP_COLS))
        ax.axhline(THRESHOLD, color="grey", ls=":", lw=1)
        _log2_axis(ax, lengths)
        ax.set(
            xlabel="text length (tokens)",
            ylabel="token accuracy (max over seeds, mean over samples)",
            title="Accuracy vs length",
            ylim=(-0.02, 1.02),
        )
        ax.legend(fontsize=7)
        written.append(_save(fig, out / "accuracy_vs_length.png", plt))

        fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(settings) + 2), 4.5))
        labels = [_label(k, varying, CAP_COLS) for k in settings]
        sums = [summarize(rs) for rs in settings.values()]
        xs = range(len(sums))
        ax.bar(xs, [s.mean for s in sums], yerr=[s.std for s in sums], width=0.5, capsize=4, label="prototok")
        refs = [(i, paper_number("capacity", k[0])) for i, k in enumerate(settings)]
        refs = [(i, v) for i, v in refs if v is not None]
        if refs:
            ax.scatter(*zip(*refs), marker="_", s=600, color="black", zorder=3, label="paper (2505.21189)")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=7)
        ax.set(ylabel=f"capacity (tokens at accuracy >= {THRESHOLD})", title="Capacity per model and source")
        ax.legend(fontsize=7)
        written.append(_save(fig, out / "capacity.png", plt))

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for key, rs in settings.items():
            s = summarize(rs)
            ns = [n for n, st in s.by_length.items() if st["h_lm"] is not None]
            (line,) = ax.plot(ns, [s.by_length[n]["h_lm"] for n in ns], label=_label(key, varying, CAP_COLS))
            ok = [n for n in ns if s.by_length[n]["passed"]]
            ax.scatter(ok, [s.by_length[n]["h_lm"] for n in ok], color=line.get_color(), zorder=3)
        _log2_axis(ax, lengths)
        ax.set_yscale("log")
        ax.set(
            xlabel="text length (tokens)",
            ylabel="H_LM of the prefix (bits, mean over samples)",
            title="H_LM vs length (dots: reconstructed by some sample)",
        )
        ax.legend(fontsize=7)
        written.append(_save(fig, out / "hlm_vs_length.png", plt))

    lay_rows = [r for r in rows if r["experiment"] == "layouts"]
    if lay_rows:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        table = layout_table(lay_rows)
        lengths = {n for d in table.values() for n in d}
        for lay, d in table.items():
            ns = list(d)
            ax.errorbar(ns, [d[n][0] for n in ns], yerr=[d[n][1] for n in ns], marker="o", capsize=3, label=lay)
        _log2_axis(ax, lengths)
        ax.set(
            xlabel="text length (tokens)",
            ylabel="token accuracy (mean +- std)",
            title="Table 1: layouts",
            ylim=(-0.02, 1.05),
        )
        ax.legend(fontsize=7)
        written.append(_save(fig, out / "layouts.png", plt))
    return written


def _save(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(db: str | Path, out: str | Path) -> list[Path]:
    """Write report.md and the figures into `out`; returns the files written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from ..experiments.geometry import geometry_rows
    from .figures import baseline_section, geometry_section, paper_figures  # they import this module

    with Store(db) as store:
        rows = store.rows()
        geo = geometry_rows(store)
    parts = [f"# prototok results\n\nFrom `{db}`: {len(rows)} fitted texts."]
    parts += [
        s for s in (capacity_section(rows), layouts_section(rows), sharing_section(rows), timing_section(rows)) if s
    ]
    parts += [s for s in (baseline_section(rows), geometry_section(geo)) if s]
    files = figures(rows, out) + paper_figures(rows, geo, out)
    if files:
        parts.append("## Figures\n\n" + "\n".join(f"![{p.stem}]({p.name})" for p in files))
    md = out / "report.md"
    md.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return [md, *files]
