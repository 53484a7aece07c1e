"""Capacity per setting (model, source, layout, sharing kind, recipe): the summary table with the papers'
numbers beside the rows measured the same way (report.reference), accuracy vs length per setting, and three
figures (accuracy vs length, capacity per setting, H_LM vs length). Every method's rows are summarized alike:
experiments.capacity.summarize judges each row on its method's own accuracy and gives its method's capacity
statistic. H_LM in nats (stored in bits, converted for display).
"""

from __future__ import annotations

from pathlib import Path

from ..experiments.capacity import summarize
from ..experiments.runner import THRESHOLD
from .markdown import fmt, md_table
from .plotting import finish, log2_axis, pyplot
from .reference import measured_as_paper, paper_capacity, paper_h_lm
from .results import Results, group_by, label

COLUMNS = ["model", "source", "layout", "sharing", "recipe"]  # what makes one capacity setting


def capacity_settings(rows: list[dict]) -> tuple[dict[tuple, list[dict]], list[int]]:
    """(COLUMNS tuple -> its capacity rows, indices of the columns that differ between settings): labels name
    only what varies; with a single setting, model and source."""
    settings = group_by([r for r in rows if r["experiment"] == "capacity"], *COLUMNS)
    varying = [i for i in range(len(COLUMNS)) if len({k[i] for k in settings}) > 1] or [0, 1]
    return settings, varying


def section(results: Results) -> str:
    settings, varying = capacity_settings(results.rows)
    if not settings:
        return ""
    out = [
        "## Capacity per model and source\n",
        f"Capacity, the papers' statistic: one-pass rows, per sample the longest grid length reconstructed at "
        f"token accuracy >= {THRESHOLD} by any seed, then the maximum over samples (the paper reports maximum "
        "values); cramming baseline rows (`hc-mem`, arXiv 2502.13063 as hidden_capacity runs it), the largest "
        f"length whose mean best teacher-forced accuracy over texts is >= {THRESHOLD}. Beside it: mean +- std "
        "and the per-sample capacities. H_LM in nats (the paper's unit), summed over the prefix (the frozen "
        "model's own autoregressive cross-entropy; token 0 from BOS when the tokenizer adds one, as "
        "hidden_capacity). Layout `mem` rows are prototok's sink variant (cram-sink), judged on greedy "
        "generation. `paper`: the published number, only beside a setting measured as the paper measured it "
        "(layout e m^(N-1), recipe `paper`, its data); every other setting is ours.\n",
    ]
    table = []
    for key, rs in settings.items():
        s = summarize(rs)
        same = measured_as_paper(key[2], key[4], s.statistic)
        table.append(
            [
                *key,
                len(s.samples),
                len({r["seed"] for r in rs}),
                s.capacity,
                f"{s.mean:.1f} +- {s.std:.1f}",
                ", ".join(map(str, s.per_sample)),
                f"{s.seed_mean:.1f}",
                fmt(s.h_lm_mean),
                fmt(s.h_lm_top),
                "paper's" if same else "ours",
                fmt(paper_capacity(key[0], key[1], key[2], key[3], key[4], s.statistic), "g"),
                fmt(paper_h_lm(key[0], key[1], key[2], key[3], key[4], s.statistic)),
            ]
        )
    header = [*COLUMNS, "samples", "seeds", "capacity (tokens)", "mean +- std", "per sample", "one seed"]
    header += ["H_LM at capacity (nats)", "H_LM max (nats)", "measured as", "paper", "paper H_LM (nats)"]
    out.append(md_table(header, table))
    out.append("\n## Accuracy vs length (capacity runs)")
    out.append(
        "\nEvaluations: forward+backward passes of the length's rows, summed (the work, whatever the optimiser; "
        '"-" for rows written before it was recorded); walk so far: the same summed over this and every shorter '
        "length, which a warm walk (`+prefix-warm`) and a cold one over the same texts are compared on (Fig. 2 "
        "of arXiv 2505.21189 plots accuracy against length per recipe: `accuracy_vs_length.png`)."
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
    refs = [(i, paper_capacity(*k, s.statistic)) for i, (k, s) in enumerate(zip(settings, sums))]
    refs = [(i, v) for i, v in refs if v is not None]
    if refs:
        ax.scatter(*zip(*refs), marker="_", s=600, color="black", zorder=3, label="paper (2505.21189)")
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
