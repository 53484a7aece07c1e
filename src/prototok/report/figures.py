"""Report sections for the paper's Figs. 3 and 4 (one-pass vs the autoregressive cramming baseline) and Figs. 6
and 7 (geometry of solutions), each a markdown table and a PNG, drawn only when the database has the data.

Fig. 3: H_LM reconstructed per text, one-pass vs cramming (per sample: the largest H_LM among the prefixes it
reconstructed, max over seeds; cramming judged on greedy generation). Fig. 4: decode throughput, tokens/s of
one batched one-pass decode vs one batched greedy generation. Fig. 6: cosine distances between solutions by
group. Fig. 7: token accuracy along the straight line and the trained Bezier curve between two solutions.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path

from ..experiments.capacity import summarize
from ..geometry import PAIR_KINDS
from . import _capacity_settings, _fmt, _md_table, _plt, _save, method, timing_rows

# ------------------------------------------------------------------------------------------------ Figs. 3, 4


def method_pairs(rows: list[dict]) -> list[tuple]:
    """(model, source, one-pass setting, cram setting, one-pass summary, cram summary) per (model, source)
    that has both; settings are report.CAP_COLS tuples (model, source, layout, sharing kind, recipe)."""
    settings, _ = _capacity_settings(rows)
    out = []
    for model, source in dict.fromkeys((k[0], k[1]) for k in settings):
        mine = [k for k in settings if k[:2] == (model, source) and k[3] == "none"]
        for ko in (k for k in mine if k[2] != "mem"):
            for kc in (k for k in mine if k[2] == "mem"):
                out.append((model, source, ko, kc, summarize(settings[ko]), summarize(settings[kc])))
    return out


def throughput(rows: list[dict]) -> dict[tuple, dict[str, float]]:
    """(model, device, length) -> {method: decode tokens/s} where both methods were decoded."""
    out: dict[tuple, dict[str, float]] = defaultdict(dict)
    for (model, device, meth, n), t in timing_rows([r for r in rows if r["experiment"] == "capacity"]).items():
        if t["decode_tps"]:
            out[(model, device, n)][meth] = t["decode_tps"]
    return {k: v for k, v in sorted(out.items()) if len(v) == 2}


def baseline_section(rows: list[dict]) -> str:
    cram_rows = [r for r in rows if method(r) == "cram"]
    if not cram_rows:
        return ""
    out = [
        "## Cramming baseline (arXiv 2502.13063) vs one pass\n",
        "Cramming: K [mem] vectors, teacher-forced fit, decoded by greedy generation (one forward per token). "
        "Its capacity is judged on greedy generation accuracy; teacher-forced accuracy can hide a collapse.\n",
    ]
    body = []
    acc: dict[tuple, list[dict]] = defaultdict(list)
    for r in cram_rows:
        acc[(r["model"], r["source"], r["recipe"], r["length"])].append(r)
    for (model, source, recipe, n), rs in sorted(acc.items()):
        gen = [r["gen_accuracy"] for r in rs if r["gen_accuracy"] is not None]
        body.append(
            [
                model,
                source,
                recipe,
                n,
                len(rs),
                f"{statistics.fmean(r['accuracy'] for r in rs):.4f}",
                _fmt(statistics.fmean(gen) if gen else None, ".4f"),
                sum(g >= 0.99 for g in gen),
                f"{statistics.fmean(r['steps'] for r in rs):.0f}",
            ]
        )
    out.append(
        _md_table(
            [
                "model",
                "source",
                "recipe",
                "length",
                "texts",
                "teacher-forced acc",
                "greedy acc",
                "greedy >= 0.99",
                "steps",
            ],
            body,
        )
    )
    pairs = method_pairs(rows)
    if pairs:
        out += [
            "\n### Fig. 3: H_LM reconstructed per text\n",
            "Per sample, the largest H_LM (bits) among the prefixes reconstructed (max over seeds), "
            "mean over samples.\n",
        ]
        body = []
        for model, source, ko, kc, so, sc in pairs:
            ho = [s.h_lm_max or 0.0 for s in so.samples]
            hc = [s.h_lm_max or 0.0 for s in sc.samples]
            body.append(
                [
                    model,
                    source,
                    f"{ko[2]}, {ko[4]}",
                    kc[4],
                    f"{so.mean:.1f}",
                    f"{sc.mean:.1f}",
                    _fmt(statistics.fmean(ho) if ho else None),
                    _fmt(statistics.fmean(hc) if hc else None),
                ]
            )
        out.append(
            _md_table(
                [
                    "model",
                    "source",
                    "one-pass setting",
                    "cramming",
                    "capacity one-pass",
                    "capacity cramming",
                    "H_LM one-pass",
                    "H_LM cramming",
                ],
                body,
            )
        )
    tp = throughput(rows)
    if tp:
        out += [
            "\n### Fig. 4: reconstruction throughput\n",
            "Tokens/s of one batched decode of a whole file: one forward (one-pass) vs N forwards (greedy).\n",
            _md_table(
                ["model", "device", "length", "one-pass tok/s", "greedy tok/s", "speed-up"],
                [
                    [*k, f"{v['onepass']:,.0f}", f"{v['cram']:,.0f}", f"{v['onepass'] / v['cram']:.1f}x"]
                    for k, v in tp.items()
                ],
            ),
        ]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ Figs. 6, 7


def _geo_settings(geo: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in geo:
        out[(r["model"], r["source"], r["recipe"], r["layout"], r["length"])].append(r)
    return dict(sorted(out.items()))


def _stats(v: list[float]) -> list[str]:
    if not v:
        return ["0", "-", "-", "-", "-"]
    sd = statistics.pstdev(v) if len(v) > 1 else 0.0
    return [str(len(v)), f"{statistics.fmean(v):.4f}", f"{sd:.4f}", f"{min(v):.4f}", f"{max(v):.4f}"]


def geometry_section(geo: list[dict]) -> str:
    if not geo:
        return ""
    out = ["## Geometry of solutions (Figs. 6 and 7)"]
    for key, rs in _geo_settings(geo).items():
        out.append(f"\n### {key[0]}, {key[1]}, recipe {key[2]}, layout {key[3]}, length {key[4]}\n")
        dist = [r["value"] for r in rs if r["kind"] == "distance"]
        if dist:
            out.append("Cosine distance between solutions [e; m] (and e, m alone: mean), by pair group.\n")
            body = []
            for kind in PAIR_KINDS:
                vs = [v for v in dist if v["group"] == kind]
                e = _fmt(statistics.fmean(v["e"] for v in vs), ".4f") if vs else "-"
                m = _fmt(statistics.fmean(v["m"] for v in vs), ".4f") if vs else "-"
                body.append([kind, *_stats([v["distance"] for v in vs]), e, m])
            out.append(_md_table(["group", "pairs", "mean", "std", "min", "max", "e mean", "m mean"], body))
        paths = [r for r in rs if r["kind"] == "path"]
        if paths:
            out.append("\nToken accuracy along the straight line and the trained quadratic Bezier curve between two ")
            out[-1] += "solutions of one text (mean over the scored taus; min: the worst tau).\n"
            body = []
            for p in paths:
                v = p["value"]
                body.append(
                    [
                        p["item"],
                        f"{statistics.fmean(v['line_accuracy']):.3f}",
                        f"{min(v['line_accuracy']):.3f}",
                        f"{statistics.fmean(v['curve_accuracy']):.3f}",
                        f"{min(v['curve_accuracy']):.3f}",
                        f"{v['length_ratio']:.3f}",
                        f"{v['cosine_distance']:.4f}",
                        p["params"],
                    ]
                )
            out.append(
                _md_table(
                    ["pair", "line mean", "line min", "Bezier mean", "Bezier min", "curve/line", "distance", "fit"],
                    body,
                )
            )
        vecs = [r["value"] for r in rs if r["kind"] == "vector"]
        if vecs:
            t = vecs[0]["table_norm"]
            common = {
                k: ", ".join(f"`{w}` ({c})" for w, c in Counter(v[f"{k}_nearest"][0] for v in vecs).most_common(3))
                for k in ("e", "m")
            }
            out.append(
                f"\nNorms over {len(vecs)} solutions: |e| {statistics.fmean(v['e_norm'] for v in vecs):.2f}, "
                f"|m| {statistics.fmean(v['m_norm'] for v in vecs):.2f}; vocabulary embeddings {t[0]:.2f} +- "
                f"{t[1]:.2f}. Nearest token (cosine) most often: e {common['e']}; m {common['m']}."
            )
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ figures


def paper_figures(rows: list[dict], geo: list[dict], out: Path) -> list[Path]:
    plt = _plt()
    written = []
    pairs = method_pairs(rows)
    if pairs:
        fig, ax = plt.subplots(figsize=(5, 5))
        top = 1.0
        for model, source, ko, kc, so, sc in pairs:
            hc = {s.sample: s.h_lm_max or 0.0 for s in sc.samples}
            ho = {s.sample: s.h_lm_max or 0.0 for s in so.samples}
            common = sorted(set(hc) & set(ho))
            xs, ys = [hc[s] for s in common], [ho[s] for s in common]
            top = max([top, *xs, *ys])
            ax.scatter(xs, ys, label=f"{model}, {source}" + (f", {ko[4]} vs {kc[4]}" if len(pairs) > 1 else ""))
        ax.plot([0, top * 1.05], [0, top * 1.05], color="grey", ls=":", lw=1)
        ax.set(
            xlabel="cramming (greedy): H_LM reconstructed (bits)",
            ylabel="one pass: H_LM reconstructed (bits)",
            title="Fig. 3: information reconstructed per text",
        )
        ax.legend(fontsize=7)
        written.append(_save(fig, out / "fig3_hlm_onepass_vs_cram.png", plt))
    tp = throughput(rows)
    if tp:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for model, device in dict.fromkeys((k[0], k[1]) for k in tp):
            ks = [k for k in tp if k[:2] == (model, device)]
            ns = [k[2] for k in ks]
            for meth, marker in (("onepass", "o"), ("cram", "s")):
                ax.plot(ns, [tp[k][meth] for k in ks], marker=marker, label=f"{model} ({device}): {meth}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set(xlabel="text length (tokens)", ylabel="decode tokens/s", title="Fig. 4: reconstruction throughput")
        ax.legend(fontsize=7)
        written.append(_save(fig, out / "fig4_throughput.png", plt))
    settings = _geo_settings(geo)
    dist_sets = {k: [r["value"] for r in rs if r["kind"] == "distance"] for k, rs in settings.items()}
    dist_sets = {k: v for k, v in dist_sets.items() if v}
    if dist_sets:
        fig, axes = plt.subplots(1, len(dist_sets), figsize=(5 * len(dist_sets), 4), squeeze=False)
        for ax, (key, vs) in zip(axes[0], dist_sets.items()):
            for kind in PAIR_KINDS:
                d = [v["distance"] for v in vs if v["group"] == kind]
                if d:
                    ax.hist(d, bins=20, range=(0, max(1.0, max(d))), alpha=0.5, label=f"{kind} ({len(d)})")
            ax.set(xlabel="cosine distance of [e; m]", ylabel="pairs", title=f"{key[0]}, {key[1]}, N={key[4]}")
            ax.legend(fontsize=7)
        fig.suptitle("Fig. 6: distances between solutions")
        written.append(_save(fig, out / "fig6_distances.png", plt))
    path_sets = {k: [r["value"] for r in rs if r["kind"] == "path"] for k, rs in settings.items()}
    path_sets = {k: v for k, v in path_sets.items() if v}
    if path_sets:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for key, vs in path_sets.items():
            taus = vs[0]["taus"]
            for name, ls in (("line", "--"), ("curve", "-")):
                curves = [v[f"{name}_accuracy"] for v in vs if len(v["taus"]) == len(taus)]
                mean = [statistics.fmean(c[i] for c in curves) for i in range(len(taus))]
                label = f"{'line' if name == 'line' else 'Bezier'}: {key[0]}, N={key[4]} ({len(curves)} pairs)"
                ax.plot(taus, mean, ls=ls, marker="o", label=label)
        ax.set(xlabel="tau", ylabel="token accuracy", title="Fig. 7: line vs Bezier between two solutions")
        ax.set_ylim(-0.02, 1.05)
        ax.legend(fontsize=7)
        written.append(_save(fig, out / "fig7_paths.png", plt))
    return written
