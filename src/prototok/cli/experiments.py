"""`prototok capacity`, `prototok ablate layouts|sharing`, `prototok report`: each experiment is one command
that writes into the results store (--db) and can be killed and rerun at any point without losing or
duplicating a finished text."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..experiments import MIN_CHARS
from ..fit import SHARES
from ..layouts import LAYOUTS
from ..models import DEFAULT_MODEL
from .options import DEFAULT_DB, fit_options


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


def _bar(total: int, desc: str, show: bool = True):
    """tqdm on stderr (hidden when stderr is not a terminal): texts committed, with the fitter's live accuracy."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="text", file=sys.stderr, dynamic_ncols=True, disable=None if show else True)

    def on_step(p) -> None:
        bar.set_postfix(step=p.step, acc=f"{p.active_accuracy:.3f}", refresh=False)
        bar.refresh()

    return bar, on_step, lambda rows: bar.update(len(rows))


def _experiment(name, cfg, lengths, opts, plan_fn, run_fn, show, *, make_run=None, loader=None, rec=None):
    """Load the model, then per data source: samples -> prefixes -> plan (dry run) or run, then show the result.

    make_run(lm, store, name, model, source, recipe, batch_size) builds the Run (default: Run, the one-pass
    fitter; with a make_run the dry run prints no time estimate, which times one-pass steps); loader(spec, lm)
    -> (source key, samples) replaces experiments.load; rec replaces the recipe built from the options."""
    from ..distributed import RankStore, merge_rank_stores, setup
    from ..errors import PrototokError
    from ..experiments import Run, load, prefixes
    from ..models import load_model
    from ..recipes import get_recipe
    from ..store import Store

    rec = rec or get_recipe(opts["recipe"], lr=opts["lr"], max_steps=opts["steps"], init_scale=opts["init_scale"])
    if opts["batch_size"] < 1:
        raise PrototokError(f"--batch-size must be at least 1, got {opts['batch_size']}")
    model = opts["model"] or DEFAULT_MODEL
    # under torchrun (WORLD_SIZE > 1): join the process group, one device per rank; rank 0 alone prints
    dist, device = setup(opts["device"])
    echo = click.echo if dist.rank == 0 else lambda *a, **k: None
    lm = load_model(model, device)
    if dist.active and dist.rank == 0 and not opts["dry_run"]:
        Store(opts["db"]).close()  # created by one rank, before the others open it
    if dist.rank == 0 and not opts["dry_run"]:
        merge_rank_stores(opts["db"])  # rows a crashed multi-rank run left in its rank files
    dist.barrier()
    dry_new = opts["dry_run"] and not Path(opts["db"]).exists()
    with Store(":memory:" if dry_new else opts["db"]) as store:  # a dry run creates no database
        store.check_model(model, lm.fingerprint)
        ranked = dist.active and not opts["dry_run"]
        writes = RankStore(store, dist.rank) if ranked else store  # each rank commits to <db>.rank{r}.db
        for spec in opts["data"]:
            if loader is not None:
                source, samples = loader(spec, lm)
            else:
                source, samples = load(
                    spec, opts["samples"], lm, data_seed=opts["data_seed"], min_chars=opts["min_chars"]
                )
            texts = prefixes(lm, samples, list(lengths), h_lm=not opts["dry_run"])
            store.check_samples(source, {t.sample: (t.doc, t.offset) for t in texts})
            run = (make_run or Run)(lm, writes, name, model, source, rec, opts["batch_size"])
            run.dist = dist if ranked else None
            plan = plan_fn(run, texts, cfg)
            echo(f"[{source}] {len(samples)} samples")
            if opts["dry_run"]:
                echo(plan.render(rec, None if make_run else lm))
                continue
            share = -(-plan.texts // dist.world)  # rank 0's bar counts its own share
            bar, run.on_step, run.on_commit = _bar(share, f"{name} {source}", show=dist.rank == 0)
            try:
                result = run_fn(run, texts, cfg)
                run.sync()
            finally:
                bar.close()
            echo(show(result))
        if ranked:  # every rank's rows into the main database, once all have stopped writing
            writes.close()
            dist.barrier()
            if dist.rank == 0:
                merge_rank_stores(opts["db"])
            dist.barrier()
        if not opts["dry_run"]:
            echo(f"results in {opts['db']} ({store.count()} rows)")


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
@click.option(
    "--method",
    type=click.Choice(["onepass", "cram"]),
    default="onepass",
    show_default=True,
    help="onepass: (e, m), one forward; cram: the autoregressive baseline (arXiv 2502.13063), K [mem] vectors, "
    "judged on greedy generation accuracy",
)
@click.option("--num-mem", type=click.IntRange(1), default=1, show_default=True, help="K [mem] vectors (cram)")
@click.option(
    "--first-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="cram: mem_1's init std and lr times this (the attention-sink fix the fast recipe applies to e; try 20)",
)
@fit_options
def capacity(lengths, share, threshold, method, num_mem, first_scale, **opts):
    """Capacity: the longest prefix reconstructed at >= 0.99 token accuracy (papers' length grid), and its H_LM.

    Walks up the length grid, fitting all samples of a length (per seed), and stops after the first length no
    sample reconstructs. Prints accuracy per length, capacity per sample (max over seeds) and the mean over
    samples, with H_LM in bits (the frozen model's own cross-entropy of the prefix, summed; token 0 predicted
    from BOS when the tokenizer has one, else left out).

    --method cram runs the cramming baseline instead (rows of layout "mem" in the same store, recipe key
    "cram(num_mem=K,...)"): AdamW lr 1e-2, betas (0.9, 0.9), wd 0.01, init at the embedding table's std, 5000
    steps (--lr, --steps, --init-scale override; --recipe and --layout do not apply). Both teacher-forced and
    greedy-generation accuracy are stored; capacity is judged on greedy generation, which is what reading the
    text back gives (teacher forcing can hide a collapse after one wrong token).
    """
    from ..experiments.capacity import LENGTHS, CapacityConfig, plan_capacity, run_capacity

    grid = _ints(lengths, "--lengths") or LENGTHS
    cfg = CapacityConfig(tuple(grid), _seeds(opts), opts.pop("layout"), share, threshold, method, num_mem)
    extra = {}
    if method == "cram":
        from ..baselines.cramming import CramConfig
        from ..experiments.cram_run import CramRun

        cram_cfg = CramConfig(
            num_mem=num_mem,
            **{k: v for k, v in (("lr", opts["lr"]), ("max_steps", opts["steps"])) if v is not None},
            init_scale=opts["init_scale"] or 1.0,
            first_scale=first_scale,
        )

        def make_run(*args, **kw):
            return CramRun(*args, **kw, cram=cram_cfg)

        extra = {"make_run": make_run, "rec": cram_cfg.recipe()}
    _experiment("capacity", cfg, grid, opts, plan_capacity, run_capacity, lambda s: s.render(), **extra)


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
    from ..experiments.ablate import LAYOUT_LENGTHS, LayoutsConfig, plan_layouts, render_layouts, run_layouts

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
    from ..experiments.ablate import SharingConfig, plan_sharing, render_sharing, run_sharing

    grid = _ints(lengths, "--lengths")
    kinds = ("m", "e") if shared == "both" else (shared,)
    cfg = SharingConfig(grid, _ints(groups, "--groups"), kinds, _seeds(opts), opts.pop("layout"))
    _experiment("sharing", cfg, grid, opts, plan_sharing, run_sharing, render_sharing)


@click.command()
@_without("seeds")
@experiment_options
@click.option("--seeds", "n_seeds", type=click.IntRange(1), default=3, show_default=True, help="solutions per text")
@click.option("--length", type=click.IntRange(1), default=32, show_default=True, help="tokens per text")
@click.option("--contexts", type=click.IntRange(1), default=None, help="generated:SOURCE: contexts (default --samples)")
@click.option(
    "--continuations",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="generated:SOURCE: sampled continuations per context (same-context pairs need 2+)",
)
@click.option("--pairs", type=click.IntRange(0), default=1, show_default=True, help="line/Bezier paths per text")
@click.option("--points", type=click.IntRange(2), default=11, show_default=True, help="taus scored along each path")
@click.option("--bezier-steps", type=click.IntRange(0), default=200, show_default=True)
@click.option("--bezier-lr", type=float, default=0.01, show_default=True, help="relative to the endpoints' gap")
@click.option("--nearest", type=click.IntRange(1), default=3, show_default=True, help="vocabulary tokens per vector")
@fit_options
def geometry(n_seeds, length, contexts, continuations, pairs, points, bezier_steps, bezier_lr, nearest, **opts):
    """Figs. 6 and 7: several solutions per text, their cosine distances by group (same text / same context /
    different context), accuracy along the line vs a trained quadratic Bezier curve between two solutions of
    one text (and curve length / line length), norms of e and m and their nearest vocabulary tokens.

    Same-context groups need --data generated:SOURCE with --continuations 2+: --contexts contexts, each
    continued --continuations times by the model. Fits go in the runs table (experiment "geometry"), the
    measurements in the `geometry` table; a rerun skips what is stored.
    """

    from ..errors import PrototokError
    from ..experiments.geometry import GeometryConfig, continuation_samples, plan_geometry, run_geometry

    generated = all(spec.startswith("generated:") for spec in opts["data"])
    if (contexts is not None or continuations > 1) and not generated:
        raise PrototokError("--contexts/--continuations need --data generated:SOURCE")
    seeds = tuple(range(opts["seed"], opts["seed"] + n_seeds))
    cfg = GeometryConfig(
        length, seeds, opts.pop("layout"), continuations, pairs, points, bezier_steps, bezier_lr, nearest
    )

    def loader(spec, lm):
        if spec.startswith("generated:"):
            inner = spec.partition(":")[2]
            n_ctx = contexts or opts["samples"]
            return continuation_samples(lm, inner, n_ctx, continuations, length, opts["data_seed"])
        from ..experiments import load

        return load(spec, opts["samples"], lm, data_seed=opts["data_seed"], min_chars=opts["min_chars"])

    _experiment("geometry", cfg, [length], opts, plan_geometry, run_geometry, lambda s: s.render(), loader=loader)
