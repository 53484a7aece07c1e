"""The `prototok` command: a thin layer of click commands over the public functions.

One module per group of commands (encode.py: encode/decode/demo; experiments.py; encoder.py; report.py);
options.py holds what they share. This file only assembles them and turns errors into exit statuses.
"""

from __future__ import annotations

import os
import sys

import click

from ..errors import PrototokError, first_line
from .encode import decode, demo, encode
from .encoder import encoder
from .experiments import ablate, capacity, geometry, reproduce
from .fetch import fetch_model
from .info import info
from .logs import configure as configure_logging
from .options import EXIT_BAD_INPUT, config_option
from .report import report
from .share import export, push

DEBUG_ENV = "PROTOTOK_DEBUG"


def _debug(ctx: click.Context | None) -> bool:
    """--debug, or PROTOTOK_DEBUG set to anything but "", "0", "false", "no": tracebacks instead of one line."""
    if ctx is not None and ctx.find_root().meta.get("prototok.debug"):
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _fail(line: str) -> None:
    """The exit-2 contract: one line on stderr (an error's first line: errors.first_line), status 2."""
    click.echo(f"prototok: error: {line.strip() or 'bad input'}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _usage(err: click.UsageError) -> None:
    """A click usage error as one line (click's own display prints usage, a hint and the error: 3+ lines)."""
    hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
    _fail(err.format_message().replace("\n", " ") + hint)


class _Group(click.Group):
    """Turns user errors into one line on stderr and exit status 2; Ctrl-C into 130. With --debug (or
    PROTOTOK_DEBUG=1) the traceback is shown instead.

    Bad input is a PrototokError, a ValueError, an OSError (a file or folder that cannot be read or written) or a
    click usage error; anything else is a bug in prototok and keeps its traceback."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as err:  # options of the group itself: `prototok --bogus`
            if type(err).__name__ == "NoArgsIsHelpError" or _debug(None):
                raise  # bare `prototok`: click prints the help
            _usage(err)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            if _debug(ctx) or type(err).__name__ == "NoArgsIsHelpError":
                raise
            _usage(err)
        except (PrototokError, ValueError, OSError) as err:
            if _debug(ctx) or isinstance(err, BrokenPipeError):  # `| head`: click's own quiet handling
                raise
            _fail(first_line(err))
        except KeyboardInterrupt:
            if _debug(ctx):
                raise
            click.echo("prototok: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="prototok")
@click.option(
    "--debug", is_flag=True, help=f"show the traceback of an error instead of one line (or set {DEBUG_ENV}=1)"
)
@click.option("-q", "--quiet", is_flag=True, help="on stderr only warnings and errors: no progress, no notes")
@click.option("-v", "--verbose", is_flag=True, help="on stderr debug lines too (model, fingerprints, recipe key)")
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool, verbose: bool) -> None:
    """Encode a text into two proto-token vectors; a frozen LM writes it back in one forward pass."""
    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose exclude each other")
    ctx.meta["prototok.debug"] = debug
    ctx.call_on_close(configure_logging(-1 if quiet else 1 if verbose else 0))  # the logger as it was, after


def _with_config(cmd: click.Command) -> None:
    """--config FILE on every command (not on groups): option values from a file, flags override."""
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _with_config(sub)
    elif not any(p.name == "config" for p in cmd.params):
        cmd.params.append(config_option())


for _cmd in (encode, decode, info, demo, capacity, ablate, geometry, reproduce, report, export, push, encoder,
             fetch_model):  # fmt: skip
    _with_config(_cmd)
    main.add_command(_cmd)
