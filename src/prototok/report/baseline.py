"""One pass against the cramming baseline (arXiv 2502.13063), drawn when the store holds cramming rows (the
baseline as hidden_capacity runs it, method "cram", and prototok's sink variant, "cram-sink"): the baseline's
own table (teacher-forced vs greedy accuracy, and which one judges it), Fig. 3 (H_LM reconstructed per text,
in nats, one-pass vs cramming, as a table and a scatter) and Fig. 4 (decode throughput, one batched one-pass
decode vs one batched greedy generation). Methods are told apart by the registry (methods.for_layout: a
method's `autoregressive` flag), never by a name or layout.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from ..analysis.gains import summary as gain_summary
from ..experiments.capacity import CapacitySummary, nats, summarize
from ..experiments.runner import THRESHOLD
from ..methods import METHODS, OnePass, for_layout
from .capacity import capacity_settings
from .markdown import fmt, md_table
from .plotting import finish, pyplot
from .reference import Beside, cramming_table1
from .results import Results
from .timing import timing_rows

AUTOREGRESSIVE = tuple(m for m in METHODS.values() if m.autoregressive)  # Fig. 4's methods against one-pass


def method_pairs(rows: list[dict]) -> list[tuple[str, str, tuple, tuple, CapacitySummary, CapacitySummary]]:
    """(model, source, one-pass setting, cramming setting, one-pass summary, cramming summary) for every pair
    of settings of one (model, source): one-pass per text or with one m shared by the texts (the paper's
    Fig. 3 left: shared m against one [mem]) against cramming; settings are report.capacity.COLUMNS tuples."""
    settings, _ = capacity_settings(rows)
    out = []
    for model, source in dict.fromkeys((k[0], k[1]) for k in settings):
        mine = [k for k in settings if k[:2] == (model, source)]
        for ko in (k for k in mine if for_layout(k[2]) is OnePass and k[3].split("/")[0] in ("none", "m")):
            for kc in (k for k in mine if for_layout(k[2]).autoregressive and k[3] == "none"):
                out.append((model, source, ko, kc, summarize(settings[ko]), summarize(settings[kc])))
    return out


def throughput(rows: list[dict]) -> dict[tuple, dict[str, float]]:
    """(model, device, length) -> {method name: decode tokens/s} of the capacity runs, where one-pass and at
    least one autoregressive method (the baseline, the sink variant) were decoded."""
    out: dict[tuple, dict[str, float]] = defaultdict(dict)
    rows = [r for r in rows if r["experiment"] == "capacity"]
    for (model, device, name, n), t in timing_rows(rows, ("model", "device", "method", "length")).items():
        if t["decode_tps"]:
            out[(model, device, n)][name] = t["decode_tps"]
    return {k: v for k, v in sorted(out.items()) if OnePass.name in v and any(m.name in v for m in AUTOREGRESSIVE)}


def cramming_table(rows: list[dict]) -> str:
    """Per (model, source, recipe, length): teacher-forced accuracy (the fitter's) beside greedy generation's
    (what reading the text back gives), and which of the two the method is judged on (the baseline as
    hidden_capacity runs it: teacher-forced; the sink variant: greedy)."""
    acc: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        acc[(r["model"], r["source"], r["recipe"], r["length"], r["layout"])].append(r)
    body = []
    for (model, source, recipe, n, layout), rs in sorted(acc.items()):
        gen = [r["gen_accuracy"] for r in rs if r["gen_accuracy"] is not None]
        judged = for_layout(layout).judged_on
        body.append(
            [
                model,
                source,
                recipe,
                n,
                len(rs),
                f"{statistics.fmean(r['accuracy'] for r in rs):.4f}",
                fmt(statistics.fmean(gen) if gen else None, ".4f"),
                sum(g >= THRESHOLD for g in gen),
                "greedy" if judged == "gen_accuracy" else "teacher-forced",
                f"{statistics.fmean(r['steps'] for r in rs):.0f}",
            ]
        )
    header = ["model", "source", "recipe", "length", "texts", "teacher-forced acc", "greedy acc"]
    return md_table([*header, f"greedy >= {THRESHOLD}", "judged on", "steps"], body)


def fig3_table(pairs: list[tuple]) -> str:
    body = []
    for model, source, ko, kc, so, sc in pairs:
        ho = [s.h_lm_max or 0.0 for s in so.samples]
        hc = [s.h_lm_max or 0.0 for s in sc.samples]
        body.append(
            [
                model,
                source,
                f"{ko[2]}, {ko[4]}" + (", m shared" if ko[3] != "none" else ""),
                kc[4],
                so.capacity,
                sc.capacity,
                f"{so.mean:.1f}",
                f"{sc.mean:.1f}",
                fmt(nats(statistics.fmean(ho)) if ho else None),
                fmt(nats(statistics.fmean(hc)) if hc else None),
            ]
        )
    header = ["model", "source", "one-pass setting", "cramming", "capacity one-pass", "capacity cramming"]
    header += ["mean one-pass", "mean cramming"]
    return md_table([*header, "H_LM one-pass (nats)", "H_LM cramming (nats)"], body)


def fig4_table(tp: dict[tuple, dict[str, float]]) -> str:
    one = OnePass.name
    return md_table(
        ["model", "device", "length", "method", "one-pass tok/s", "greedy tok/s", "speed-up"],
        [
            [*k, m.name, f"{v[one]:,.0f}", f"{v[m.name]:,.0f}", f"{v[one] / v[m.name]:.1f}x"]
            for k, v in tp.items()
            for m in AUTOREGRESSIVE
            if m.name in v
        ],
    )


def gains_table(rows: list[dict], threshold: float = THRESHOLD) -> str:
    """Token and Information Gain per (model, source, method, recipe), or "" when no row has them."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["sharing"] == "none":
            groups[(r["model"], r["source"], for_layout(r["layout"]).name, r["recipe"])].append(r)
    body = []
    for key, rs in sorted(groups.items()):
        g = gain_summary(rs, threshold)
        if g:
            info, tok = g["information"], g["tokens"]
            body.append(
                [*key, g["texts"], f"{info[0]:.1f} +- {info[1]:.1f}", f"{tok[0]:.1f} +- {tok[1]:.1f}",
                 *(paper_gain(q, key, for_layout(rs[0]["layout"])).cell(".1f") for q in GAINS)]
            )  # fmt: skip
    if not body:
        return ""
    header = ["model", "source", "method", "recipe", "texts", "information gain (nats)", "token gain"]
    return md_table([*header, "paper information gain", "paper token gain"], body)


GAINS = ("information_gain", "token_gain")  # report.reference's names of [CR] Table 1's Info and Gain


def paper_gain(quantity: str, key: tuple, method) -> Beside:
    """[CR] Table 1's information or token gain beside a gains line of the baseline as hidden_capacity runs it;
    a one-pass line gets the same formula, but the paper defines the gains for cramming only."""
    model, source, _, recipe = key
    if not method.autoregressive:
        return Beside(why="one-pass rows (the paper gives the gains for cramming only)")
    return cramming_table1(
        quantity, model=model, source=source, as_hidden_capacity=getattr(method, "hc", False), sharing="none",
        recipe=recipe,
    )  # fmt: skip


def section(results: Results) -> str:
    cram_rows = [r for r in results.rows if for_layout(r["layout"]).autoregressive]
    if not cram_rows:
        return ""
    out = [
        "## Cramming baseline (arXiv 2502.13063) vs one pass\n",
        "Cramming: K [mem] vectors, teacher-forced fit, decoded by greedy generation (one forward per token). "
        "The baseline as hidden_capacity runs it (recipe `hc-cram(...)`, layout `hc-mem`: [mem, BOS, text], "
        "t_1 given without a BOS) is judged on teacher-forced accuracy, as that code judges it; prototok's sink "
        "variant (recipe `cram(...)`, layout `mem`) on greedy generation. Greedy accuracy is shown for both: "
        "teacher forcing can hide a collapse after one wrong token.\n",
        cramming_table(cram_rows),
    ]
    pairs = method_pairs(results.rows)
    if pairs:
        out += [
            "\n### Fig. 3: H_LM reconstructed per text\n",
            "Capacity: each method's statistic (one-pass: max over samples; baseline: largest length at mean "
            "best accuracy >= threshold), and the mean of per-sample capacities. H_LM: per sample, the largest "
            "H_LM (nats) among the prefixes reconstructed (max over seeds), mean over samples.\n",
            fig3_table(pairs),
        ]
    gains = gains_table(results.rows)
    if gains:
        out += [
            "\n### Token Gain and Information Gain (hidden_capacity)\n",
            "What a fit adds over the frozen model reading the text alone (analysis/gains.py): Information Gain = "
            "(original loss - fit's loss) x max_length, in nats; Token Gain = (fit's accuracy - original accuracy) "
            "x max_length, teacher-forced; max_length counts the BOS as hidden_capacity's does. Mean +- std over "
            "the texts not reconstructed (accuracy <= threshold), as its table; one-pass rows get the same formula "
            "(ours: the paper defines it for cramming).\n",
            gains,
        ]
    tp = throughput(results.rows)
    if tp:
        out += [
            "\n### Fig. 4: reconstruction throughput\n",
            "Tokens/s of one batched decode of a whole file at equal lengths: one forward (one-pass) vs N forwards "
            "(greedy). Batched, prototok's extra: the paper's Fig. 4 times each method at its own capacity, one "
            "text at a time (`bench/throughput_at_capacity.py`).\n",
            fig4_table(tp),
        ]
    return "\n".join(out)


def figures(results: Results, out: Path) -> list[Path]:
    written = []
    pairs = method_pairs(results.rows)
    if pairs:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(5, 5))
        top = 1.0
        for model, source, ko, kc, so, sc in pairs:
            hc = {s.sample: nats(s.h_lm_max or 0.0) for s in sc.samples}
            ho = {s.sample: nats(s.h_lm_max or 0.0) for s in so.samples}
            common = sorted(set(hc) & set(ho))
            xs, ys = [hc[s] for s in common], [ho[s] for s in common]
            top = max([top, *xs, *ys])
            ax.scatter(xs, ys, label=f"{model}, {source}" + (f", {ko[4]} vs {kc[4]}" if len(pairs) > 1 else ""))
        for slope, style in ((1, ":"), (1 / 2, "--"), (1 / 5, "-.")):  # the paper's guides: y = x, x/2, x/5
            label = "y = x" if slope == 1 else f"y = x/{round(1 / slope)}"
            ax.plot([0, top * 1.05], [0, top * 1.05 * slope], color="grey", ls=style, lw=1, label=label)
        written.append(
            finish(
                fig,
                ax,
                out / "fig3_hlm_onepass_vs_cram.png",
                xlabel="cramming: H_LM reconstructed (nats)",
                ylabel="one pass: H_LM reconstructed (nats)",
                title="Fig. 3: information reconstructed per text",
            )
        )
    tp = throughput(results.rows)
    if tp:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for model, device in dict.fromkeys((k[0], k[1]) for k in tp):
            ks = [k for k in tp if k[:2] == (model, device)]
            for method, marker in zip((OnePass, *AUTOREGRESSIVE), ("o", "s", "^", "v")):
                got = [k for k in ks if method.name in tp[k]]
                if got:
                    ax.plot([k[2] for k in got], [tp[k][method.name] for k in got], marker=marker,
                            label=f"{model} ({device}): {method.name}")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        written.append(
            finish(
                fig,
                ax,
                out / "fig4_throughput.png",
                xlabel="text length (tokens)",
                ylabel="decode tokens/s",
                title="Fig. 4: reconstruction throughput",
            )
        )
    return written
