"""matplotlib set up for files, not screens: the Agg backend (no display on a cluster node), one dpi, figures
closed once saved so a long report does not hold them all in memory."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the Agg backend; imported on first use, so the report's tables need no matplotlib.
    Lines cycle through 10 colours, then the same colours dashed and dotted: a report with more than 10
    settings in one figure (a capacity walk figure can have 12) keeps every line distinct."""
    import matplotlib
    from cycler import cycler

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = matplotlib.colormaps["tab10"].colors
    matplotlib.rcParams["axes.prop_cycle"] = cycler(linestyle=["-", "--", ":"]) * cycler(color=colors)
    return plt


def save(fig, path: Path) -> Path:
    """Write the figure as a PNG and close it; returns the path."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def log2_axis(ax, lengths) -> None:
    """Text lengths on a log2 x axis, one labelled tick per length measured (the grids grow geometrically)."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(lengths))
    ax.set_xticklabels([str(n) for n in sorted(lengths)], rotation=45, fontsize=7)
    ax.minorticks_off()


def finish(fig, ax, path: Path, **props) -> Path:
    """Label the axes (`props` as for Axes.set), add the small legend every figure has, and save."""
    ax.set(**props)
    ax.legend(fontsize=7)
    return save(fig, path)
