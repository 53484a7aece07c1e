"""Options, progress and text input shared by the commands: one definition each."""

from __future__ import annotations

import sys

import click

from ..errors import PrototokError
from ..files import read_text
from ..layouts import DEFAULT_LAYOUT, LAYOUTS
from ..models import DEFAULT_MODEL
from ..recipes import DEFAULT_RECIPE, RECIPES

EXIT_OK, EXIT_NOT_RECONSTRUCTED, EXIT_BAD_INPUT = 0, 1, 2


def model_options(f):
    f = click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")(f)
    return click.option(
        "--model", default=None, help=f"built-in name, .gguf file, HF folder or Hub id (default: {DEFAULT_MODEL})"
    )(f)


def fit_options(f):
    """Options shared by every command that fits proto-tokens."""
    opts = [
        click.option("--layout", default=DEFAULT_LAYOUT, show_default=True, help="one of: " + ", ".join(LAYOUTS)),
        click.option(
            "--recipe",
            default=DEFAULT_RECIPE,
            show_default=True,
            type=click.Choice(sorted(RECIPES)),
            help="optimisation recipe: paper (the published one, exactly) or ours (README, Recipes)",
        ),
        click.option("--lr", type=float, default=None, help="override the recipe's learning rate"),
        click.option("--steps", type=int, default=None, help="override the recipe's max steps per text"),
        click.option("--init-scale", type=float, default=None, help="override the recipe's init scale"),
        click.option("--seed", type=int, default=0, show_default=True, help="seeds each text's init draw"),
        click.option("--batch-size", type=int, default=8, show_default=True, help="texts fitted at once"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return model_options(f)


def progress_bar(total: int, desc: str):
    """A tqdm bar on stderr with live accuracy; returns (callback, bar)."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=total, desc=desc, unit="text", file=sys.stderr, dynamic_ncols=True, disable=None
    )  # None: hidden when stderr is not a terminal

    def update(p) -> None:
        bar.n = p.done
        bar.set_postfix(step=p.step, acc=f"{p.active_accuracy:.3f}", solved=p.solved, refresh=False)
        bar.refresh()

    return update, bar


def read_texts(text: str | None, files: tuple[str, ...]) -> list[str]:
    texts = ([text] if text is not None else []) + [read_text(f) for f in files]
    if not texts:
        if sys.stdin is None or sys.stdin.isatty():
            raise PrototokError("no text: give it as an argument, with --file, or on stdin")
        texts.append(sys.stdin.read())
    return texts
