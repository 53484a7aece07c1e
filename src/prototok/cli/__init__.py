"""The `prototok` command: a thin layer of click commands over the public functions.

One module per group of commands (encode.py: encode/decode/demo; experiments.py; encoder.py; report.py);
options.py holds what they share. This file only assembles them and turns errors into exit statuses.
"""

from __future__ import annotations

import sys

import click

from ..errors import PrototokError
from .encode import decode, demo, encode
from .encoder import encoder
from .experiments import ablate, capacity, geometry
from .options import EXIT_BAD_INPUT
from .report import report


class _Group(click.Group):
    """Turns user errors into one line on stderr and exit status 2; Ctrl-C into 130."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (PrototokError, ValueError) as err:
            click.echo(f"prototok: error: {err}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            click.echo("prototok: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="prototok")
def main() -> None:
    """Encode a text into two proto-token vectors; a frozen LM writes it back in one forward pass."""


for _cmd in (encode, decode, demo, capacity, ablate, geometry, report, encoder):
    main.add_command(_cmd)
