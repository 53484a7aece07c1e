"""Geometry of solutions (arXiv 2505.21189, Figs. 6 and 7), from the store's geometry measurements, per
(model, source, recipe, layout, length): cosine distances between solutions by pair group (Fig. 6), token
accuracy along the straight line and the trained Bezier curve between two solutions (Fig. 7), and the
vectors' norms and nearest tokens; with text distances measured (geometry --text-distance), Fig. 5: how far
apart two texts' solutions lie against how far apart the texts are (TF-IDF, MiniLM).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from pathlib import Path

from ..analysis.distances import PAIR_KINDS
from ..analysis.text_distances import pearson, spearman
from .markdown import fmt, md_table
from .plotting import finish, pyplot, save
from .results import Results


def geometry_settings(geo: list[dict]) -> dict[tuple, list[dict]]:
    """(model, source, recipe, layout, length) -> its measurements, sorted."""
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in geo:
        out[(r["model"], r["source"], r["recipe"], r["layout"], r["length"])].append(r)
    return dict(sorted(out.items()))


def stats_cells(v: list[float]) -> list[str]:
    """count, mean, std, min, max as table cells; an empty group still gets its line."""
    if not v:
        return ["0", "-", "-", "-", "-"]
    sd = statistics.pstdev(v) if len(v) > 1 else 0.0
    return [str(len(v)), f"{statistics.fmean(v):.4f}", f"{sd:.4f}", f"{min(v):.4f}", f"{max(v):.4f}"]


def distance_table(dist: list[dict]) -> str:
    body = []
    for kind in PAIR_KINDS:
        vs = [v for v in dist if v["group"] == kind]
        e = fmt(statistics.fmean(v["e"] for v in vs), ".4f") if vs else "-"
        m = fmt(statistics.fmean(v["m"] for v in vs), ".4f") if vs else "-"
        body.append([kind, *stats_cells([v["distance"] for v in vs]), e, m])
    return md_table(["group", "pairs", "mean", "std", "min", "max", "e mean", "m mean"], body)


def path_table(paths: list[dict]) -> str:
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
    header = ["pair", "line mean", "line min", "Bezier mean", "Bezier min", "curve/line", "distance", "fit"]
    return md_table(header, body)


def vector_note(vecs: list[dict]) -> str:
    t = vecs[0]["table_norm"]
    common = {
        k: ", ".join(f"`{w}` ({c})" for w, c in Counter(v[f"{k}_nearest"][0] for v in vecs).most_common(3))
        for k in ("e", "m")
    }
    return (
        f"\nNorms over {len(vecs)} solutions: |e| {statistics.fmean(v['e_norm'] for v in vecs):.2f}, "
        f"|m| {statistics.fmean(v['m_norm'] for v in vecs):.2f}; vocabulary embeddings {t[0]:.2f} +- "
        f"{t[1]:.2f}. Nearest token (cosine) most often: e {common['e']}; m {common['m']}."
    )


# each kind of geometry measurement: its introduction in the report and how its rows render
PARTS = (
    (
        "distance",
        "Cosine distance between solutions [e; m] (and e, m alone: mean), by pair group.\n",
        lambda rows: distance_table([r["value"] for r in rows]),
    ),
    (
        "path",
        "\nToken accuracy along the straight line and the trained quadratic Bezier curve between two solutions of "
        "one text (mean over the scored taus; min: the worst tau).\n",
        lambda rows: path_table(rows),
    ),
    ("vector", "", lambda rows: vector_note([r["value"] for r in rows])),
    (
        "probe",
        "\nProbing: greedy generation with the proto-tokens as an ordinary prompt ([e, m]; [BOS, e, m]), as long "
        "as the text, scored against it (position-wise accuracy; leading tokens matched), beside the one-pass "
        "accuracy of the same solutions; the first solution's generation as an example.\n",
        lambda rows: probe_table(rows),
    ),
    (
        "text-distance",
        "\nFig. 5: per pair of texts, the cosine distance of the texts (TF-IDF vectors; MiniLM embeddings) against "
        "the mean cosine distance of their solutions (every seed pair): correlation over the pairs.\n",
        lambda rows: text_distance_table(rows),
    ),
)


def section(results: Results) -> str:
    if not results.geometry:
        return ""
    out = ["## Geometry of solutions (Figs. 6 and 7)"]
    for key, rs in geometry_settings(results.geometry).items():
        out.append(f"\n### {key[0]}, {key[1]}, recipe {key[2]}, layout {key[3]}, length {key[4]}\n")
        for kind, intro, render in PARTS:
            mine = [r for r in rs if r["kind"] == kind]
            if mine:
                out += [intro, render(mine)] if intro else [render(mine)]
    return "\n".join(out)


def probe_table(rows: list[dict]) -> str:
    body = []
    for prompt in sorted({r["params"] for r in rows}, key=len):
        vs = [r for r in rows if r["params"] == prompt]
        example = vs[0]["value"]["text"].replace("|", "\\|").replace("\n", " ")[:80]
        body.append(
            [
                prompt,
                len(vs),
                f"{statistics.fmean(r['value']['accuracy'] for r in vs):.3f}",
                f"{statistics.fmean(r['value']['prefix'] for r in vs):.1f}",
                f"{statistics.fmean(r['value']['fit_accuracy'] for r in vs):.3f}",
                f"{vs[0]['item']}: {example}",
            ]
        )
    header = ["prompt", "solutions", "accuracy", "leading tokens matched", "one-pass accuracy", "example"]
    return md_table(header, body)


def text_distance_table(rows: list[dict]) -> str:
    """Pearson and Spearman correlation of text distance with solution distance ([e; m], e, m), per measure."""
    body = []
    for kind in sorted({r["params"] for r in rows}):
        vs = [r["value"] for r in rows if r["params"] == kind]
        text = [v["text"] for v in vs]
        sol = {k: [v[k] for v in vs] for k in ("distance", "e", "m")}
        cells = [f"{pearson(text, d):.3f} / {spearman(text, d):.3f}" for d in sol.values()]
        body.append([kind, len(vs), f"{statistics.fmean(text):.3f}", *cells])
    header = ["text distance", "pairs", "mean", "r / rho: [e; m]", "r / rho: e", "r / rho: m"]
    return md_table(header, body)


def figures(results: Results, out: Path) -> list[Path]:
    written = []
    settings = geometry_settings(results.geometry)
    dist_sets = {k: [r["value"] for r in rs if r["kind"] == "distance"] for k, rs in settings.items()}
    dist_sets = {k: v for k, v in dist_sets.items() if v}
    if dist_sets:
        plt = pyplot()
        fig, axes = plt.subplots(1, len(dist_sets), figsize=(5 * len(dist_sets), 4), squeeze=False)
        for ax, (key, vs) in zip(axes[0], dist_sets.items()):
            for kind in PAIR_KINDS:
                d = [v["distance"] for v in vs if v["group"] == kind]
                if d:
                    ax.hist(d, bins=20, range=(0, max(1.0, max(d))), alpha=0.5, label=f"{kind} ({len(d)})")
            ax.set(xlabel="cosine distance of [e; m]", ylabel="pairs", title=f"{key[0]}, {key[1]}, N={key[4]}")
            ax.legend(fontsize=7)
        fig.suptitle("Fig. 6: distances between solutions")
        written.append(save(fig, out / "fig6_distances.png"))
    text_sets = {k: [r for r in rs if r["kind"] == "text-distance"] for k, rs in settings.items()}
    text_sets = {k: v for k, v in text_sets.items() if v}
    if text_sets:
        plt = pyplot()
        kinds = sorted({r["params"] for rs in text_sets.values() for r in rs})
        fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4), squeeze=False)
        for ax, kind in zip(axes[0], kinds):
            for key, rs in text_sets.items():
                vs = [r["value"] for r in rs if r["params"] == kind]
                ax.scatter([v["text"] for v in vs], [v["distance"] for v in vs], s=12, label=f"{key[0]}, N={key[4]}")
            ax.set(xlabel=f"text distance ({kind}, cosine)", ylabel="solution distance ([e; m], cosine)")
            ax.legend(fontsize=7)
        fig.suptitle("Fig. 5: solution distance vs text distance")
        written.append(save(fig, out / "fig5_text_distances.png"))
    path_sets = {k: [r["value"] for r in rs if r["kind"] == "path"] for k, rs in settings.items()}
    path_sets = {k: v for k, v in path_sets.items() if v}
    if path_sets:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for key, vs in path_sets.items():
            taus = vs[0]["taus"]
            for name, ls in (("line", "--"), ("curve", "-")):
                # pairs scored at another number of taus cannot be averaged point by point with these
                curves = [v[f"{name}_accuracy"] for v in vs if len(v["taus"]) == len(taus)]
                mean = [statistics.fmean(c[i] for c in curves) for i in range(len(taus))]
                label = f"{'line' if name == 'line' else 'Bezier'}: {key[0]}, N={key[4]} ({len(curves)} pairs)"
                ax.plot(taus, mean, ls=ls, marker="o", label=label)
        title = "Fig. 7: line vs Bezier between two solutions"
        written.append(
            finish(
                fig, ax, out / "fig7_paths.png", xlabel="tau", ylabel="token accuracy", title=title, ylim=(-0.02, 1.05)
            )
        )
    return written
