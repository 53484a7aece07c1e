"""`prototok report`: tables and figures from a results database."""

from __future__ import annotations

from pathlib import Path

import click

from .options import db_option, output_option


@click.command()
@db_option
@output_option(
    "results/report",
    "folder for report.md and the PNG figures (created; files of the same names are replaced)",
    folder=True,
    alias=True,
)
def report(db, output):
    """Markdown tables shaped like the paper's Tables 1-4, and PNG figures, from the results store."""
    from ..errors import PrototokError
    from ..files import check_output_dir, check_output_file
    from ..report import write_report

    if not Path(db).is_file():  # also refuses a folder or a FIFO
        raise PrototokError(f"no results database at {db}")
    out = output
    check_output_dir(out, "-o")  # before anything is read or created
    check_output_file(Path(out) / "report.md", "-o", writable=False)
    try:
        paths = write_report(db, out)
    except ModuleNotFoundError as err:
        if err.name != "matplotlib":
            raise
        raise PrototokError("the report's figures need matplotlib: pip install 'prototok[report]'") from None
    for path in paths:
        click.echo(f"wrote {path}")
