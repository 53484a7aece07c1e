"""`prototok capacity`, `prototok ablate layouts|sharing`, `prototok report`: each experiment is one command
that writes into the results store (--db) and can be killed and rerun at any point without losing or
duplicating a finished text."""

from __future__ import annotations

import sys

import click

from .cli import fit_options
from .experiments import MIN_CHARS
from .fit import SHARES
from .layouts import LAYOUTS
from .models import DEFAULT_MODEL

DEFAULT_DB = "results/prototok.db"


def _ints(value: str | None, name: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(int(x) for x in value.replace(" ", "").split(",") if x)
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got '{value}'", param_hint=name) from None
    if not out or min(out) < 1:
        raise click.BadParameter(f"expected positive integers, got '{value}'", param_hint=name)
    return out


def _without(name: str):
    """Drop an option a shared decorator added (ablate layouts varies --layout itself)."""

    def deco(f):
        f.__click_params__ = [p for p in f.__click_params__ if p.name != name]
        return f

    return deco


def experiment_options(f):
    opts = [
        click.option(
            "--data",
            "data",
            multiple=True,
            required=True,
            help="data source (repeatable): PATH, file:PATH, hf:NAME[:split], wiki, austen, random, generated:SOURCE",
        ),
        click.option("--samples", type=click.IntRange(1), default=10, show_default=True, help="samples per source"),
        click.option("--data-seed", type=int, default=0, show_default=True, help="which samples are drawn"),
        click.option(
            "--min-chars",
            type=click.IntRange(1),
            default=MIN_CHARS,
            show_default=True,
            help="shortest sample in characters (enough for 1448 tokens); a sample shorter than a length skips it",
        ),
        click.option(
            "--seeds", type=click.IntRange(1), default=1, show_default=True, help="number of seeds, starting at --seed"
        ),
        click.option(
            "--db",
            default=DEFAULT_DB,
            show_default=True,
            type=click.Path(dir_okay=False),
            help="results database (SQLite); proto-token files go beside it in <stem>.protos/",
        ),
        click.option("--dry-run", is_flag=True, help="print the plan and its cost (times one step), fit nothing"),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _bar(total: int, desc: str):
    """tqdm on stderr (hidden when stderr is not a terminal): texts committed, with the fitter's live accuracy."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="text", file=sys.stderr, dynamic_ncols=True, disable=None)

    def on_step(p) -> None:
        bar.set_postfix(step=p.step, acc=f"{p.active_accuracy:.3f}", refresh=False)
        bar.refresh()

    return bar, on_step, lambda rows: bar.update(len(rows))


def _experiment(name, cfg, lengths, opts, plan_fn, run_fn, show):
    """Load the model, then per data source: samples -> prefixes -> plan (dry run) or run, then show the result."""
    from .errors import PrototokError
    from .experiments import Run, load, prefixes
    from .models import load_model
    from .recipes import get_recipe
    from .store import Store

    rec = get_recipe(opts["recipe"], lr=opts["lr"], max_steps=opts["steps"], init_scale=opts["init_scale"])
    if opts["batch_size"] < 1:
        raise PrototokError(f"--batch-size must be at least 1, got {opts['batch_size']}")
    model = opts["model"] or DEFAULT_MODEL
    lm = load_model(model, opts["device"])
    with Store(opts["db"]) as store:
        store.check_model(model, lm.fingerprint)
        for spec in opts["data"]:
            source, samples = load(spec, opts["samples"], lm, data_seed=opts["data_seed"], min_chars=opts["min_chars"])
            texts = prefixes(lm, samples, list(lengths), h_lm=not opts["dry_run"])
            store.check_samples(source, {t.sample: (t.doc, t.offset) for t in texts})
            run = Run(lm, store, name, model, source, rec, opts["batch_size"])
            plan = plan_fn(run, texts, cfg)
            click.echo(f"[{source}] {len(samples)} samples")
            if opts["dry_run"]:
                click.echo(plan.render(rec, lm))
                continue
            bar, run.on_step, run.on_commit = _bar(plan.texts, f"{name} {source}")
            try:
                result = run_fn(run, texts, cfg)
            finally:
                bar.close()
            click.echo(show(result))
        if not opts["dry_run"]:
            click.echo(f"results in {opts['db']} ({store.count()} rows)")


def _seeds(opts) -> tuple[int, ...]:
    return tuple(range(opts["seed"], opts["seed"] + opts["seeds"]))


@click.command()
@experiment_options
@click.option("--lengths", default=None, help="comma-separated subset of the grid (default: 4,5,8,11,...,1448)")
@click.option(
    "--share",
    type=click.Choice(SHARES),
    default="none",
    show_default=True,
    help="m (or e): one vector shared by all samples of a length and seed",
)
@click.option("--threshold", type=float, default=0.99, show_default=True, help="accuracy that counts as reconstructed")
@fit_options
def capacity(lengths, share, threshold, **opts):
    """Capacity: the longest prefix reconstructed at >= 0.99 token accuracy (papers' length grid), and its H_LM.

    Walks up the length grid, fitting all samples of a length (per seed), and stops after the first length no
    sample reconstructs. Prints accuracy per length, capacity per sample (max over seeds) and the mean over
    samples, with H_LM in bits (the frozen model's own cross-entropy of the prefix, summed; token 0 predicted
    from BOS when the tokenizer has one, else left out).
    """
    from .experiments.capacity import LENGTHS, CapacityConfig, plan_capacity, run_capacity

    grid = _ints(lengths, "--lengths") or LENGTHS
    cfg = CapacityConfig(tuple(grid), _seeds(opts), opts.pop("layout"), share, threshold)
    _experiment("capacity", cfg, grid, opts, plan_capacity, run_capacity, lambda s: s.render())


@click.group()
def ablate():
    """The paper's ablations: Table 1 (layouts) and Table 2 (sharing e or m)."""


@ablate.command("layouts")
@experiment_options
@click.option("--lengths", default=None, help="comma-separated lengths (default: 1,2,4,...,1024)")
@click.option("--layouts", default=None, help="comma-separated subset of: " + ", ".join(LAYOUTS) + " (default: all)")
@click.option("--stop-on-fail", is_flag=True, help="skip a layout's longer lengths once one is reconstructed by none")
@_without("layout")
@fit_options
def ablate_layouts(lengths, layouts, stop_on_fail, **opts):
    """Table 1: every arrangement of e and m over lengths 1, 2, 4, 8, ...; mean and std token accuracy."""
    from .experiments.ablate import LAYOUT_LENGTHS, LayoutsConfig, plan_layouts, render_layouts, run_layouts

    grid = _ints(lengths, "--lengths") or LAYOUT_LENGTHS
    names = tuple(x.strip() for x in layouts.split(",")) if layouts else tuple(LAYOUTS)
    cfg = LayoutsConfig(tuple(grid), names, _seeds(opts), stop_on_fail)
    _experiment("layouts", cfg, grid, opts, plan_layouts, run_layouts, render_layouts)


@ablate.command("sharing")
@experiment_options
@click.option("--lengths", default="64", show_default=True, help="comma-separated text lengths")
@click.option("--groups", default="1,4,16,64,256", show_default=True, help="texts per group sharing one vector")
@click.option(
    "--shared",
    type=click.Choice(["m", "e", "both"]),
    default="both",
    show_default=True,
    help="the vector a group shares; sharing e under e m^(N-1) forces one first token on the group",
)
@fit_options
def ablate_sharing(lengths, groups, shared, **opts):
    """Table 2: groups of 1, 4, 16, 64, 256 texts share m (or e); accuracy max and average over seeds.

    Samples are cut into consecutive groups (sample order); a group size larger than --samples is skipped.
    Note: with the layout e m^(N-1), e alone decides the output at position 0, so a group sharing e must
    share its first token; its accuracy is reported as measured.
    """
    from .experiments.ablate import SharingConfig, plan_sharing, render_sharing, run_sharing

    grid = _ints(lengths, "--lengths")
    kinds = ("m", "e") if shared == "both" else (shared,)
    cfg = SharingConfig(grid, _ints(groups, "--groups"), kinds, _seeds(opts), opts.pop("layout"))
    _experiment("sharing", cfg, grid, opts, plan_sharing, run_sharing, render_sharing)


@click.command()
@click.option("--db", default=DEFAULT_DB, show_default=True, type=click.Path(dir_okay=False))
@click.option("--out", default="results/report", show_default=True, type=click.Path(file_okay=False))
def report(db, out):
    """Markdown tables shaped like the paper's Tables 1-4, and PNG figures, from the results store."""
    from pathlib import Path

    from .errors import PrototokError
    from .report import write_report

    if not Path(db).is_file():
        raise PrototokError(f"no results database at {db}")
    for path in write_report(db, out):
        click.echo(f"wrote {path}")


def register(main: click.Group) -> None:
    for cmd in (capacity, ablate, report):
        main.add_command(cmd)
