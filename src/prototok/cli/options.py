"""Options, progress and text input shared by the commands: one definition each."""

from __future__ import annotations

import sys

import click

from ..errors import PrototokError
from ..experiments.runner import DEFAULT_DB
from ..files import read_text
from ..layouts import DEFAULT_LAYOUT, LAYOUTS
from ..models import BUILTIN_MODELS, DEFAULT_MODEL, DTYPES
from ..recipes import RECIPE_HELP

EXIT_OK, EXIT_NOT_RECONSTRUCTED, EXIT_BAD_INPUT = 0, 1, 2


MODEL_HELP = f"built-in name ({', '.join(BUILTIN_MODELS)}), .gguf file, local HF folder or Hub id (user/name)"
DTYPE_CHOICES = ("auto", *DTYPES)


def model_options_with(default: str):
    """--model (whose help says what the default is: `default`), --device, --dtype, --revision."""

    def deco(f):
        f = click.option(
            "--revision", default=None, help="branch, tag or commit of a Hub id (default: the main branch)"
        )(f)
        f = click.option(
            "--dtype",
            type=click.Choice(DTYPE_CHOICES),
            default="auto",
            show_default=True,
            help="weights' dtype; auto: the model's own on GPU (fp32 under bf16 autocast), float32 on CPU; "
            "float32: plain fp32 on GPU too (no autocast)",
        )(f)
        f = click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")(f)
        return click.option("--model", default=None, help=f"{MODEL_HELP} (default: {default})")(f)

    return deco


model_options = model_options_with(DEFAULT_MODEL)


def output_option(default: str | None, help: str, *, folder: bool = False, alias: bool = False):
    """-o/--output everywhere; `alias` also accepts --out, the older spelling of some commands."""
    names = ["-o", "--output", "--out"] if alias else ["-o", "--output"]
    kind = click.Path(file_okay=not folder, dir_okay=folder)
    extra = {"required": True} if default is None else {"default": default, "show_default": True}
    return click.option(*names, "output", type=kind, help=help + (" (--out: the same)" if alias else ""), **extra)


def load_model_from(opts: dict, name: str | None = None):
    """The model of a command's model options (--model, --device, --dtype, --revision)."""
    from ..models import load_model

    dtype = None if opts.get("dtype") in (None, "auto") else opts["dtype"]
    return load_model(name or opts.get("model") or DEFAULT_MODEL, opts.get("device"), dtype, opts.get("revision"))


# ------------------------------------------------------------------------------------------------ config files

CONFIG_HELP = (
    "read option values from a .toml, .json or .yaml file (keys: option names, e.g. batch-size = 8; lists for "
    "repeatable options); options given on the command line override it"
)


def read_config(path: str) -> dict:
    """A flat mapping of option names to values from a TOML, JSON or (with PyYAML) YAML file."""
    from pathlib import Path

    from ..files import read_text

    text = read_text(path)
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix == ".json":
            import json

            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise PrototokError(
                    f"--config {path}: YAML needs PyYAML (pip install pyyaml); or use .toml or .json"
                ) from None
            data = yaml.safe_load(text)
        else:
            raise PrototokError(f"--config {path}: use a .toml, .json, .yaml or .yml file")
    except PrototokError:
        raise
    except Exception as err:  # tomllib, json and yaml each raise their own error type
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise PrototokError(f"--config {path} cannot be parsed: {first}") from None
    if not isinstance(data, dict):
        raise PrototokError(f"--config {path} must hold a mapping of option names to values")
    return data


def _apply_config(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Eager: the file's values become the command's defaults (click's default_map), so flags given override."""
    if not value:
        return
    names = {}
    for p in ctx.command.params:
        if p.name in ("config", "help") or not p.expose_value:
            continue
        names[p.name.replace("-", "_")] = p
        for opt in getattr(p, "opts", []) + getattr(p, "secondary_opts", []):
            if opt.startswith("--"):
                names[opt[2:].replace("-", "_")] = p
    defaults = dict(ctx.default_map or {})
    for key, val in read_config(value).items():
        p = names.get(str(key).replace("-", "_"))
        if p is None:
            known = ", ".join(sorted({q.opts[-1].lstrip("-") if q.opts else q.name for q in names.values()}))
            raise click.BadParameter(f"{value} sets '{key}', which this command does not take (it takes: {known})")
        if getattr(p, "multiple", False) and not isinstance(val, list):
            val = [val]
        defaults[p.name] = val
    ctx.default_map = defaults


def config_option() -> click.Option:
    """--config FILE, added to every command by the group."""
    return click.Option(
        ["--config"],
        type=click.Path(dir_okay=False),
        is_eager=True,
        expose_value=False,
        callback=_apply_config,
        help=CONFIG_HELP,
    )


def fit_options(f):
    """Options shared by every command that fits proto-tokens."""
    opts = [
        click.option("--layout", default=DEFAULT_LAYOUT, show_default=True, help="one of: " + ", ".join(LAYOUTS)),
        click.option("--recipe", default=None, help=RECIPE_HELP),
        click.option("--lr", type=float, default=None, help="override the recipe's learning rate"),
        click.option("--steps", type=click.IntRange(0), default=None, help="override the recipe's max steps per text"),
        click.option("--init-scale", type=float, default=None, help="override the recipe's init scale"),
        click.option("--seed", type=int, default=0, show_default=True, help="seeds each text's init draw"),
        click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True, help="texts fitted at once"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return model_options(f)


def progress_bar(total: int, desc: str):
    """Progress on stderr with live accuracy (a bar on a terminal, plain lines elsewhere); returns (callback, bar)."""
    from ..progress import ProgressBar

    bar = ProgressBar(total, desc)

    def update(p) -> None:
        bar.update(p.done, step=p.step, acc=f"{p.active_accuracy:.3f}", solved=p.solved)

    return update, bar


def check_utf8(text: str, where: str) -> str:
    """A text that came through the OS (argv, a text stdin) holds lone surrogates where its bytes were not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise PrototokError(f"{where} is not valid UTF-8 (at character {err.start})") from None
    return text


def read_stdin() -> str:
    """stdin as UTF-8 text, strictly: undecodable bytes are bad input, not a crash in the tokenizer."""
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:
        return check_utf8(sys.stdin.read(), "the text on stdin")
    data = raw.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PrototokError(f"the text on stdin is not valid UTF-8 (byte {err.start})") from None


def input_texts(text: str | None, files: tuple[str, ...]) -> list[str]:
    texts = ([check_utf8(text, "the TEXT argument")] if text is not None else []) + [read_text(f) for f in files]
    if not texts:
        if sys.stdin is None or sys.stdin.isatty():
            raise PrototokError("no text: give it as an argument, with --file, or on stdin")
        texts.append(read_stdin())
    return texts


db_option = click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="results database (SQLite) written by capacity, ablate and geometry",
)
