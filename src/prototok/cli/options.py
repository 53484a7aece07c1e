"""Options, progress and text input shared by the commands: one definition each."""

from __future__ import annotations

import math
import sys

import click

from ..errors import PrototokError, first_line
from ..experiments.runner import DEFAULT_DB
from ..files import read_text
from ..layouts import DEFAULT_LAYOUT, LAYOUTS, get_layout
from ..models import BUILTIN_MODELS, DEFAULT_MODEL, DTYPES
from ..recipes import DEFAULT_RECIPE, RECIPE_HELP, SHARES

EXIT_OK, EXIT_NOT_RECONSTRUCTED, EXIT_BAD_INPUT = 0, 1, 2


# ------------------------------------------------------------------------------------------------ value types
# Checked when the command line (or --config) is parsed: a bad value is exit 2 before any file or model is touched.


class FiniteFloat(click.FloatRange):
    """A float in a range that is also a number: NaN passes every comparison and inf every lower bound, so
    click.FloatRange alone would let `--lr nan` or `--lr inf` through to a fit that writes a file of NaNs."""

    name = "number"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


POSITIVE = FiniteFloat(0, min_open=True)  # learning rates, scales, minutes
FRACTION = FiniteFloat(0, 1)  # accuracies


class LayoutName(click.ParamType):
    """A layout name (layouts.get_layout: spaces optional), checked at parse time and passed on as given, so
    rows keep the name they were keyed by."""

    name = "layout"

    def convert(self, value, param, ctx):
        try:
            get_layout(str(value))
        except ValueError as err:
            self.fail(str(err), param, ctx)
        return value


LAYOUT = LayoutName()


# ---------------------------------------------------------------------------------------------------- options
# Every option more than one command takes is declared here, once. Where an option means something else in one
# command (push --revision: the branch to commit to), that meaning is its own declaration, named for it.

MODEL_HELP = f"built-in name ({', '.join(BUILTIN_MODELS)}), .gguf file, local HF folder or Hub id (user/name)"
DTYPE_CHOICES = ("auto", *DTYPES)


def model_option(unset: str = DEFAULT_MODEL):
    """--model, None when not given; the help says what that means (`unset`: a model name or a rule)."""
    return click.option("--model", default=None, help=f"{MODEL_HELP} (default: {unset})")


# encoder train: the model an encoder is trained for, recorded in its checkpoint (a name, never None)
train_model_option = click.option("--model", default=DEFAULT_MODEL, show_default=True, help=MODEL_HELP)


def device_option(note: str = ""):
    """--device; `note` adds to what the default means (e.g. under torchrun)."""
    return click.option("--device", default=None, help=f"cpu, cuda, cuda:1 ... (default: cuda if available{note})")


dtype_option = click.option(
    "--dtype",
    type=click.Choice(DTYPE_CHOICES),
    default="auto",
    show_default=True,
    help="weights' dtype; auto: the model's own on GPU (fp32 under bf16 autocast), float32 on CPU; "
    "float32: plain fp32 on GPU too (no autocast)",
)
revision_option = click.option(
    "--revision", default=None, help="branch, tag or commit of a Hub id (default: the main branch)"
)
# push: the branch the commit goes to, not the revision a model is read at
branch_option = click.option("--revision", default=None, help="branch to commit to (default: main)")


def model_options_with(default: str):
    """--model (whose help says what the default is: `default`), --device, --dtype, --revision."""

    def deco(f):
        for opt in (revision_option, dtype_option, device_option(), model_option(default)):
            f = opt(f)
        return f

    return deco


model_options = model_options_with(DEFAULT_MODEL)

# the results database: read by report and export, written by the experiments (with their proto-token files)
db_option = click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="results database (SQLite) written by capacity, ablate and geometry",
)
experiment_db_option = click.option(
    "--db",
    default=DEFAULT_DB,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="results database (SQLite); proto-token files go beside it in <stem>.protos/",
)
# encode: optional, and it appends (experiment "encode"), the file copied into <stem>.protos/encode/
encode_db_option = click.option(
    "--db",
    default=None,
    type=click.Path(dir_okay=False),
    help="also add the texts to this results database (SQLite), a row each, as the experiments do; the file is "
    "copied into <stem>.protos/encode/ with the run's JSON",
)

# --data: the experiments' sources; reproduce's (optional: the paper's data by default); the encoder's texts
experiment_data_option = click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    help="data source (repeatable): PATH, file:PATH, hf:NAME[:CONFIG][:SPLIT], wiki, austen, random, generated:SOURCE",
)
paper_data_option = click.option(
    "--data",
    "data",
    multiple=True,
    help="data source (repeatable), as for the experiment commands (default: the paper's PG-19 chunks, "
    "second-half:hf:yurakuratov/pg19_valid_1k_chunks; offline: e.g. second-half:PATH, random-glove)",
)
encoder_data_option = click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    help="a .txt file (a text per line), a folder of them, a data source name, or a text (repeatable)",
)
text_field_option = click.option(
    "--text-field", default=None, help="hf: sources: the column holding the text (default: text)"
)
samples_option = click.option(
    "--samples", type=click.IntRange(1), default=10, show_default=True, help="samples per source"
)
encoder_samples_option = click.option(
    "--samples", type=click.IntRange(1), default=5000, show_default=True, help="texts to take from a data source name"
)

# fitting: the shared meaning, then the encoder's (train: its own optimiser; eval: its warm and cold fits)
layout_option = click.option(
    "--layout", type=LAYOUT, default=DEFAULT_LAYOUT, show_default=True, help="one of: " + ", ".join(LAYOUTS)
)
recipe_option = click.option("--recipe", default=None, help=RECIPE_HELP)
eval_recipe_option = click.option(
    "--recipe", default=DEFAULT_RECIPE, show_default=True, help="recipe of the warm and cold fits: " + RECIPE_HELP
)
lr_option = click.option("--lr", type=POSITIVE, default=None, help="override the recipe's learning rate")
eval_lr_option = click.option(
    "--lr", type=POSITIVE, default=None, help="override the recipe's learning rate (warm and cold alike)"
)
train_lr_option = click.option("--lr", type=POSITIVE, default=1e-3, show_default=True, help="AdamW peak learning rate")
steps_option = click.option(
    "--steps", type=click.IntRange(0), default=None, help="override the recipe's max steps per text"
)
eval_steps_option = click.option(
    "--steps", type=click.IntRange(0), default=300, show_default=True, help="fit budget per text, warm and cold alike"
)
train_steps_option = click.option(
    "--steps", type=click.IntRange(1), default=1000, show_default=True, help="total optimiser steps"
)
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="seeds each text's init draw")
eval_seed_option = click.option(
    "--seed", type=int, default=0, show_default=True, help="which texts are drawn and the fits' init"
)
train_seed_option = click.option("--seed", type=int, default=0, show_default=True, help="init and data order")
batch_size_option = click.option(
    "--batch-size", type=click.IntRange(1), default=8, show_default=True, help="texts fitted at once"
)
train_batch_size_option = click.option(
    "--batch-size", type=click.IntRange(1), default=16, show_default=True, help="global batch (split over ranks)"
)
# encode: every text of the call; capacity: the samples of one length and seed
share_option = click.option(
    "--share", type=click.Choice(SHARES), default="none", show_default=True, help="share m (or e) across all the texts"
)
capacity_share_option = click.option(
    "--share",
    type=click.Choice(SHARES),
    default="none",
    show_default=True,
    help="m (or e): one vector shared by all samples of a length and seed",
)

# --json: the result alone on stdout; the experiments' also moves their progress lines to stderr
json_option = click.option("--json", "as_json", is_flag=True, help="machine-readable result on stdout")
experiment_json_option = click.option(
    "--json", "as_json", is_flag=True, help="the result as one JSON object on stdout (the rest to stderr)"
)


def output_option(default: str | None, help: str, *, folder: bool = False, alias: bool = False):
    """-o/--output everywhere; `alias` also accepts --out, the older spelling of some commands."""
    names = ["-o", "--output", "--out"] if alias else ["-o", "--output"]
    kind = click.Path(file_okay=not folder, dir_okay=folder)
    extra = {"required": True} if default is None else {"default": default, "show_default": True}
    return click.option(*names, "output", type=kind, help=help + (" (--out: the same)" if alias else ""), **extra)


def proto_output_option(default: str):
    """-o/--output of the commands that write a proto-token file (encode, demo)."""
    return click.option(
        "-o", "--output", default=default, show_default=True, type=click.Path(), help="proto-token file"
    )


def load_model_from(opts: dict, name: str | None = None, *, recipe=None, precision: str = ""):
    """The model of a command's model options (--model, --device, --dtype, --revision). With --dtype auto, the
    precision rule picks the weights' dtype: float32 for an L-BFGS `recipe`, and a file's own `precision` for
    decoding (prototok.precision)."""
    from ..models import load_model
    from ..precision import decode_dtype, load_dtype

    dtype = None if opts.get("dtype") in (None, "auto") else opts["dtype"]
    if recipe is not None:
        dtype = load_dtype(recipe, dtype)
    if precision:
        dtype = decode_dtype(precision, dtype)
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
        raise PrototokError(f"--config {path} cannot be parsed: {first_line(err)}") from None
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
        defaults[p.name] = _config_value(value, str(key), p, val)
    ctx.default_map = defaults


def _config_value(path: str, key: str, p: click.Parameter, val):
    """A config value in the shape the option takes: one value (a string where it names a file), or a list of
    them for a repeatable option. Anything else (a list for a one-value option such as `text`, a nested list, a
    mapping: what a YAML anchor bomb expands into) is refused here, as one line, before click converts it."""
    repeatable = getattr(p, "multiple", False) or p.nargs != 1
    if isinstance(val, list) and not repeatable:
        raise click.BadParameter(f"{path} sets '{key}' to a list, but it takes one value")
    items = val if isinstance(val, list) else [val]
    for item in items:
        if isinstance(p.type, click.Path | click.File):
            ok, want = isinstance(item, str), "a path (a string)"
        elif isinstance(p.type, click.types.BoolParamType):
            ok, want = isinstance(item, bool | str), "true or false"
        else:
            ok, want = isinstance(item, str | int | float) and not isinstance(item, bool), "a string or a number"
        if not ok:
            shown = "a list" if isinstance(item, list) else "a mapping" if isinstance(item, dict) else repr(item)[:40]
            raise click.BadParameter(f"{path} sets '{key}' to {shown}, but it takes {want}")
    return items if repeatable else val


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
        layout_option,
        recipe_option,
        lr_option,
        steps_option,
        click.option("--init-scale", type=POSITIVE, default=None, help="override the recipe's init scale"),
        seed_option,
        batch_size_option,
    ]
    for opt in reversed(opts):
        f = opt(f)
    return model_options(f)


def progress_bar(total: int, desc: str):
    """Progress on stderr with live accuracy (a bar on a terminal, plain lines elsewhere; none under -q); returns
    (callback, bar): progress.fit_progress, the display encode(progress=True) shows too."""
    from ..progress import fit_progress

    return fit_progress(total, desc)


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
