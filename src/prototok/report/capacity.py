"""Capacity per setting (model, source, layout, sharing kind, recipe): the summary table with the papers'
numbers beside the rows measured the same way (report.reference: [OS] Table 3 for one-pass settings, [CR]
Table 1 for the cramming baseline; "not comparable: <why>" otherwise), accuracy vs length per setting, Fig. 1
(the best capacity per model over its data) and three more figures (accuracy vs length, capacity per setting,
H_LM vs length). Every method's rows are summarized alike: experiments.capacity.summarize judges each row on its
method's own accuracy and gives its method's capacity statistic and the count statistic C_tokens. H_LM in nats
(stored in bits, converted for display).
"""

from __future__ import annotations

from pathlib import Path

from ..experiments.capacity import CapacitySummary, summarize
from ..experiments.runner import THRESHOLD
from ..methods import for_layout
from .markdown import fmt, md_table
from .plotting import finish, log2_axis, pyplot
from .reference import Beside, best_capacity, cramming_table1, table3
from .results import Results, group_by, label

COLUMNS = ["model", "source", "layout", "sharing", "recipe"]  # what makes one capacity setting


def capacity_settings(rows: list[dict]) -> tuple[dict[tuple, list[dict]], list[int]]:
    """(COLUMNS tuple -> its capacity rows, indices of the columns that differ between settings): labels name
    only what varies; with a single setting, model and source."""
    settings = group_by([r for r in rows if r["experiment"] == "capacity"], *COLUMNS)
    varying = [i for i in range(len(COLUMNS)) if len({k[i] for k in settings}) > 1] or [0, 1]
    return settings, varying


def paper_beside(key: tuple, s: CapacitySummary, quantity: str) -> Beside:
    """The paper's number for a setting's capacity ("capacity") or H_LM ("h_lm"), or why there is none: a
    one-pass setting against [OS] Table 3, a cramming setting against [CR] Table 1 (which prints no H_LM)."""
    model, source, layout, sharing, recipe = key
    method = for_layout(layout)
    if method.autoregressive:
        if quantity == "h_lm":
            return Beside(why="[CR] Table 1 prints no H_LM (its information gain is in the gains table)")
        return cramming_table1(
            "capacity", model=model, source=source, as_hidden_capacity=getattr(method, "hc", False),
            sharing=sharing, recipe=recipe, lengths=s.lengths,
        )  # fmt: skip
    return table3(
        quantity, model=model, source=source, layout=layout, sharing=sharing, recipe=recipe,
        statistic=s.statistic, lengths=s.lengths, counted=s.counted,
    )  # fmt: skip


def _h_lm(s: CapacitySummary) -> str:
    return "-" if s.h_lm_mean is None else f"{s.h_lm_mean:.1f} +- {s.h_lm_std:.1f}"


def section(results: Results) -> str:
    settings, varying = capacity_settings(results.rows)
    if not settings:
        return ""
    out = [
        "## Capacity per model and source\n",
        f"Capacity, the papers' statistic on the length grid: one-pass rows, per sample the longest grid length "
        f"reconstructed at token accuracy >= {THRESHOLD} by any seed, then the maximum over samples (the paper "
        "reports maximum values); cramming baseline rows (`hc-mem`, arXiv 2502.13063 as hidden_capacity runs it), "
        f"the largest length whose mean best teacher-forced accuracy over texts is >= {THRESHOLD}. C_tokens: the "
        "count arXiv 2505.21189's Table 3 prints (Eq. 2), per sample the most tokens of a text reconstructed (a "
        "text shorter than its grid length is fitted whole once; a drawn-length text counts its drawn tokens), "
        'then the maximum over samples ("-": rows stored before token counts were kept, of a drawing source). '
        "Beside them: mean +- std of the per-sample grid capacities and the per-sample values. H_LM in nats (the "
        "paper's unit), mean +- std over samples of the H_LM of each sample's text at C_tokens (the frozen "
        "model's own autoregressive cross-entropy; token 0 from BOS when the tokenizer adds one, as "
        "hidden_capacity). Layout `mem` rows are prototok's sink variant (cram-sink), judged on greedy "
        "generation. `paper`: the published number with its table ([OS] Table 3 Ctokens beside C_tokens; [CR] "
        "Table 1's Max beside the capacity for PG-19 and fanfics and beside C_tokens for its drawn-length random "
        "texts), only beside a setting measured as the paper measured it; otherwise why not.\n",
    ]
    table = []
    for key, rs in settings.items():
        s = summarize(rs)
        table.append(
            [
                *key,
                len(s.samples),
                len({r["seed"] for r in rs}),
                s.capacity,
                fmt(s.capacity_tokens, "d"),
                f"{s.mean:.1f} +- {s.std:.1f}",
                ", ".join(map(str, s.per_sample)),
                f"{s.seed_mean:.1f}",
                _h_lm(s),
                fmt(s.h_lm_top),
                paper_beside(key, s, "capacity").cell(),
                paper_beside(key, s, "h_lm").cell(".1f"),
            ]
        )
    header = [*COLUMNS, "samples", "seeds", "capacity (grid)", "C_tokens", "mean +- std", "per sample", "one seed"]
    header += ["H_LM at capacity (nats)", "H_LM max (nats)", "paper", "paper H_LM (nats)"]
    out.append(md_table(header, table))
    fig1 = fig1_table(settings)
    if fig1:
        out += ["\n### Fig. 1: the best capacity per model\n", fig1]
    out.append("\n## Accuracy vs length (capacity runs)")
    out.append(
        "\nEvaluations: forward+backward passes of the length's rows, summed (the work, whatever the optimiser; "
        '"-" for rows written before it was recorded); walk so far: the same summed over this and every shorter '
        "length, which a warm walk (`+prefix-warm`) and a cold one over the same texts are compared on "
        "(`accuracy_vs_length.png` plots accuracy against length per setting). Texts shorter than their grid "
        "length, fitted whole, are left out here: they count towards C_tokens only."
    )
    for key, rs in settings.items():
        s = summarize(rs)
        out.append(f"\n### {label(key, varying, COLUMNS)}\n")
        out.append(
            md_table(
                [
                    "length",
                    "accuracy (max over seeds)",
                    "accuracy (mean +- std)",
                    "reconstructed",
                    "H_LM (nats)",
                    "evaluations (all rows)",
                    "walk so far",
                    "fit s (all rows)",
                ],  # fmt: skip
                [
                    [
                        n,
                        f"{st['best']:.4f}",
                        f"{st['mean']:.4f} +- {st['std']:.4f}",
                        f"{st['passed']}/{st['samples']}",
                        fmt(st["h_lm"]),
                        fmt(st["evals"], "d"),
                        fmt(walk, "d"),
                        f"{st['fit_s_sum']:.0f}",
                    ]
                    for (n, st), walk in zip(s.by_length.items(), _running(s.by_length))
                ],
            )
        )
    return "\n".join(out)


def _count(s: CapacitySummary) -> int:
    """C_tokens, or the grid capacity where a count is unknown."""
    return s.capacity if s.capacity_tokens is None else s.capacity_tokens


def best_per_model(settings: dict[tuple, list[dict]]) -> dict[str, tuple[tuple, CapacitySummary, int]]:
    """Fig. 1 of arXiv 2505.21189: per model, its one-pass setting without sharing whose C_tokens is largest over
    every data source measured -> (setting, summary, how many sources were measured)."""
    best: dict[str, tuple[tuple, CapacitySummary, int]] = {}
    for key, rs in settings.items():
        if for_layout(key[2]).autoregressive or key[3] != "none":
            continue
        s = summarize(rs)
        sources = len({k[1] for k in settings if k[0] == key[0] and k[3] == "none"})
        if key[0] not in best or _count(s) > _count(best[key[0]][1]):
            best[key[0]] = (key, s, sources)
    return best


def fig1_table(settings: dict[tuple, list[dict]]) -> str:
    """Per model: the best capacity over its data (C_tokens, else the grid value) and where it came from, beside
    the paper's best over Table 3's datasets (no sharing) when that setting is measured as the paper's."""
    body = []
    for model, (key, s, sources) in best_per_model(settings).items():
        beside, ref = paper_beside(key, s, "capacity"), best_capacity(model)
        paper = beside.cell() if beside.ref is None or ref is None else f"{ref.value:g} ({ref.dataset}, {ref.where})"
        body.append([model, _count(s), key[1], key[2], key[4], sources, paper])
    header = ["model", "best capacity (C_tokens)", "from source", "layout", "recipe", "sources measured"]
    return md_table([*header, "paper: best over its datasets"], body) if body else ""


def _running(by_length: dict[int, dict]) -> list[int | None]:
    """Evaluations of the walk up to and including each length (None once a length lacks the count): what a
    warm walk is compared on, against the cold fits of the same lengths."""
    out, total = [], 0
    for st in by_length.values():
        total = None if total is None or st["evals"] is None else total + st["evals"]
        out.append(total)
    return out


def figures(results: Results, out: Path) -> list[Path]:
    settings, varying = capacity_settings(results.rows)
    if not settings:
        return []
    plt = pyplot()
    labels = [label(k, varying, COLUMNS) for k in settings]
    sums = [summarize(rs) for rs in settings.values()]
    lengths = {n for s in sums for n in s.by_length}

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, s in zip(labels, sums):
        ns = list(s.by_length)
        ax.plot(ns, [s.by_length[n]["best"] for n in ns], marker="o", label=name)
    ax.axhline(THRESHOLD, color="grey", ls=":", lw=1)
    log2_axis(ax, lengths)
    written = [
        finish(
            fig,
            ax,
            out / "accuracy_vs_length.png",
            xlabel="text length (tokens)",
            ylabel="token accuracy (max over seeds, mean over samples)",
            title="Accuracy vs length",
            ylim=(-0.02, 1.02),
        )
    ]

    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(settings) + 2), 4.5))
    xs = range(len(sums))
    ax.bar(xs, [s.capacity for s in sums], width=0.5, label="prototok (capacity statistic)")
    ax.errorbar(xs, [s.mean for s in sums], yerr=[s.std for s in sums], fmt="o", color="grey", capsize=4,
                label="mean +- std over samples")  # fmt: skip
    # only beside settings measured as the paper measured it (report.reference)
    refs = [(i, paper_beside(k, s, "capacity").value) for i, (k, s) in enumerate(zip(settings, sums))]
    refs = [(i, v) for i, v in refs if v is not None]
    if refs:
        ax.scatter(*zip(*refs), marker="_", s=600, color="black", zorder=3, label="paper (its table's number)")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=7)
    written.append(
        finish(
            fig,
            ax,
            out / "capacity.png",
            ylabel=f"capacity (tokens at accuracy >= {THRESHOLD})",
            title="Capacity per model and source",
        )
    )

    best = best_per_model(settings)
    if best:
        fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(best) + 2), 4.5))
        xs = range(len(best))
        ax.bar(xs, [_count(s) for _, s, _ in best.values()], width=0.5, label="prototok: best over its sources")
        refs = [(i, best_capacity(m)) for i, m in enumerate(best)]
        refs = [
            (i, r.value) for (i, r), (k, s, _) in zip(refs, best.values()) if r and paper_beside(k, s, "capacity").ref
        ]
        if refs:
            ax.scatter(*zip(*refs), marker="_", s=600, color="black", zorder=3, label="paper: best over its datasets")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(list(best), rotation=20, ha="right", fontsize=7)
        written.append(
            finish(
                fig,
                ax,
                out / "fig1_best_capacity.png",
                ylabel="C_tokens (tokens reconstructed at accuracy >= 0.99)",
                title="Fig. 1: the best capacity per model",
            )
        )

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, s in zip(labels, sums):
        ns = [n for n, st in s.by_length.items() if st["h_lm"] is not None]
        (line,) = ax.plot(ns, [s.by_length[n]["h_lm"] for n in ns], label=name)
        ok = [n for n in ns if s.by_length[n]["passed"]]
        ax.scatter(ok, [s.by_length[n]["h_lm"] for n in ok], color=line.get_color(), zorder=3)
    log2_axis(ax, lengths)
    ax.set_yscale("log")
    written.append(
        finish(
            fig,
            ax,
            out / "hlm_vs_length.png",
            xlabel="text length (tokens)",
            ylabel="H_LM of the prefix (nats, mean over samples)",
            title="H_LM vs length (dots: reconstructed by some sample)",
        )
    )
    return written
