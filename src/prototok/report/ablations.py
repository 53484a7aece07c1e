"""The ablations: Table 1 (arrangements of e and m, one table per model, source and recipe, and one figure) and
Table 2 (one vector shared by a group of texts). The numbers come from the experiments' own tables
(experiments.layouts.layout_table, experiments.sharing.sharing_table), so the CLI's printout and the report agree.
The paper's numbers ([OS] Tables 1 and 2, report.reference) stand beside a group measured as it measured them;
otherwise the report says why not, once per table.
"""

from __future__ import annotations

from pathlib import Path

from ..experiments.layouts import layout_table
from ..experiments.sharing import SHARED_E_NOTE, sharing_table
from .markdown import md_table
from .plotting import finish, log2_axis, pyplot
from .reference import Beside, table1, table2
from .results import Results, group_by

E_ALONE_FIRST = "e m^(N-1)"  # the layout whose position 0 sees e alone: a shared e fixes the group's first token


def layouts_section(rows: list[dict]) -> str:
    rs = [r for r in rows if r["experiment"] == "layouts"]
    if not rs:
        return ""
    out = ["## Table 1: arrangements of e and m\n", "Token accuracy, mean +- std over samples and seeds."]
    for key, group in group_by(rs, "model", "source", "recipe").items():
        table = layout_table(group)
        lengths = sorted({n for d in table.values() for n in d})
        out.append(f"\n### {key[0]}, {key[1]}, recipe {key[2]}\n")
        body = [
            [lay] + [f"{d[n][0]:.3f} +- {d[n][1]:.3f}" if n in d else "-" for n in lengths] for lay, d in table.items()
        ]
        out.append(md_table(["layout"] + [str(n) for n in lengths], body))
        seeds = len({r["seed"] for r in group})
        paper = {
            (lay, n): table1(model=key[0], source=key[1], recipe=key[2], layout=lay, length=n, seeds=seeds)
            for lay, d in table.items()
            for n in d
        }
        out.append(_paper_lines("[OS] Table 1", paper, ["layout", "length"]))
    return "\n".join(out)


def _paper_lines(where: str, paper: dict[tuple, Beside], header: list[str]) -> str:
    """The paper's numbers beside a table's cells (`paper`: the cell's key -> Beside; `header` names the key's
    parts): a table of the comparable ones, or one line saying why none is."""
    got = {k: b for k, b in paper.items() if b.ref is not None}
    if not got:
        why = next((b.why for b in paper.values()), "")
        return f"\nPaper ({where}): not comparable: {why}."
    note = next((b.ref.note for b in got.values() if b.ref.note), "")
    body = [[*k, b.ref.text(".2f")] for k, b in got.items()]
    return f"\nPaper ({where}, mean +- std{'; ' + note if note else ''}):\n\n" + md_table([*header, "paper"], body)


def sharing_section(rows: list[dict]) -> str:
    rs = [r for r in rows if r["experiment"] == "sharing"]
    if not rs:
        return ""
    out = [
        "## Table 2: one vector shared by a group of texts\n",
        "Token accuracy: max over seeds (per text, then mean +- std over texts) and average over seeds (mean +- "
        "std over seeds and texts).\n",
    ]
    for key, group in group_by(rs, "model", "source", "layout", "recipe").items():
        out.append(f"\n### {key[0]}, {key[1]}, layout {key[2]}, recipe {key[3]}\n")
        table = sharing_table(group)
        body = [
            [kind, size, n, f"{st['max']:.4f} +- {st['max_std']:.4f}", f"{st['mean']:.4f} +- {st['std']:.4f}",
             st["texts"]]
            for (kind, size, n), st in table.items()
        ]  # fmt: skip
        out.append(md_table(["shared", "group size", "length", "max over seeds", "average", "texts"], body))
        paper = {
            (kind, size, n, stat): table2(
                model=key[0], source=key[1], recipe=key[3], layout=key[2], shared=kind, group=size, length=n,
                statistic=stat, seeds=st["seeds"],
            )
            for (kind, size, n), st in table.items()
            for stat in ("max", "avg")
        }  # fmt: skip
        out.append(_paper_lines("[OS] Table 2", paper, ["shared", "group size", "length", "statistic"]))
        if any(k[0] == "e" for k in table) and key[2] == E_ALONE_FIRST:
            out.append(f"\nNote: {SHARED_E_NOTE}.")
    return "\n".join(out)


def section(results: Results) -> str:
    return "\n\n".join(s for s in (layouts_section(results.rows), sharing_section(results.rows)) if s)


def figures(results: Results, out: Path) -> list[Path]:
    """Table 1 as one figure: accuracy vs length per layout, every model's and source's layouts rows pooled."""
    rows = [r for r in results.rows if r["experiment"] == "layouts"]
    if not rows:
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    table = layout_table(rows)
    for lay, d in table.items():
        ns = list(d)
        ax.errorbar(ns, [d[n][0] for n in ns], yerr=[d[n][1] for n in ns], marker="o", capsize=3, label=lay)
    log2_axis(ax, {n for d in table.values() for n in d})
    return [
        finish(
            fig,
            ax,
            out / "layouts.png",
            xlabel="text length (tokens)",
            ylabel="token accuracy (mean +- std)",
            title="Table 1: layouts",
            ylim=(-0.02, 1.05),
        )
    ]
