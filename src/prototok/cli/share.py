"""`prototok export` (a results table as CSV, JSON, JSON lines or Parquet) and `prototok push` (a proto-token file or
an encoder checkpoint to the Hugging Face Hub)."""

from __future__ import annotations

from pathlib import Path

import click

from .options import branch_option, db_option, output_option


@click.command()
@db_option
@click.option(
    "--table",
    type=click.Choice(["runs", "geometry"]),
    default="runs",
    show_default=True,
    help="runs: one row per fitted text; geometry: the geometry experiment's measurements (value as JSON)",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "jsonl", "parquet"]),
    default=None,
    help="csv (header + a line per row), json (an array of objects, for pandas.read_json), jsonl (an object per "
    "line) or parquet (needs pyarrow; needs -o); default: from -o's extension (.json, .jsonl, .parquet), else csv",
)
@output_option("-", "file to write (replaced atomically); - for stdout")
def export(db, table, fmt, output):
    """Export a table of the results store (every column, a row per line) for pandas, R or a spreadsheet."""
    from ..export import export_table, format_for
    from ..files import check_output_file

    to_stdout = output == "-"
    fmt = fmt or format_for(output)
    if not to_stdout:
        check_output_file(output, "-o")
    n, text = export_table(db, table, fmt, None if to_stdout else output)
    if to_stdout:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {n} rows of {table} to {output}", err=True)


@click.command()
@click.argument("path", type=click.Path(exists=True))
@click.argument("repo")
@click.option(
    "--filename", default=None, help="a proto-token file's name in the repo (default: prototokens.safetensors)"
)
@click.option("--private", is_flag=True, default=None, help="create the repository as private (when it is new)")
@branch_option
@click.option("--message", default=None, help="commit message (default: says what and for which model)")
def push(path, repo, filename, private, revision, message):
    """Push a proto-token file, or an encoder checkpoint folder, to Hub repository REPO (USER/NAME).

    Read back with `prototok decode hf://USER/NAME` (a file) or `--encoder hf://USER/NAME` (a checkpoint);
    in Python, ProtoTokens.from_pretrained("USER/NAME") and prototok.encoder.from_pretrained("USER/NAME", lm).
    Log in first (`hf auth login`, or HF_TOKEN).
    """
    from ..encoder.checkpoint import CONFIG, push_encoder
    from ..protofile import ProtoTokens

    if (Path(path) / CONFIG).is_file() or Path(path).name == "encoder.safetensors":
        url = push_encoder(path, repo, private=private, revision=revision, commit_message=message)
    else:
        proto = ProtoTokens.load(path)  # refuses what is not a proto-token file before anything is sent
        url = proto.push_to_hub(repo, filename or "", private=private, revision=revision, commit_message=message)
    click.echo(f"pushed {path} to {url}")
