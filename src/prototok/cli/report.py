"""`prototok report`: tables and figures from a results database."""

from __future__ import annotations

from pathlib import Path

import click

from ..experiments.runner import DEFAULT_DB


@click.command()
@click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="results database (SQLite) written by capacity, ablate and geometry",
)
@click.option(
    "--out",
    default="results/report",
    show_default=True,
    type=click.Path(file_okay=False),
    help="folder for report.md and the PNG figures (created; files of the same names are replaced)",
)
def report(db, out):
    """Markdown tables shaped like the paper's Tables 1-4, and PNG figures, from the results store."""
    from ..errors import PrototokError
    from ..report import write_report

    if not Path(db).is_file():
        raise PrototokError(f"no results database at {db}")
    for path in write_report(db, out):
        click.echo(f"wrote {path}")
