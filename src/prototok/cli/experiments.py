"""`prototok capacity`, `prototok ablate layouts|sharing`, `prototok geometry`: each experiment is one command
that writes into the results store (--db) and can be killed and rerun at any point without losing or
duplicating a finished text."""

from __future__ import annotations

import json

import click

from ..errors import PrototokError
from ..experiments.runner import THRESHOLD
from ..experiments.texts import EXPERIMENT_MIN_CHARS
from ..layouts import LAYOUTS
from ..methods import METHODS, WARM_STARTS, OnePass
from ..models import DEFAULT_MODEL
from .options import (
    FRACTION,
    POSITIVE,
    batch_size_option,
    capacity_share_option,
    device_option,
    experiment_data_option,
    experiment_db_option,
    experiment_json_option,
    fit_options,
    model_option,
    paper_data_option,
    revision_option,
    samples_option,
    text_field_option,
)


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
        experiment_data_option,
        text_field_option,
        samples_option,
        click.option("--data-seed", type=int, default=0, show_default=True, help="which samples are drawn"),
        click.option(
            "--min-chars",
            type=click.IntRange(1),
            default=EXPERIMENT_MIN_CHARS,
            show_default=True,
            help="shortest sample in characters (enough for 1448 tokens); a sample shorter than a length skips it",
        ),
        click.option(
            "--seeds", type=click.IntRange(1), default=1, show_default=True, help="number of seeds, starting at --seed"
        ),
        experiment_db_option,
        click.option("--dry-run", is_flag=True, help="print the plan and its cost (times one step), fit nothing"),
        experiment_json_option,
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _bar(total: int, desc: str):
    """Progress on stderr (a bar on a terminal, plain lines elsewhere): texts committed, with live accuracy."""
    from ..progress import ProgressBar

    bar = ProgressBar(total, desc)

    def on_step(p) -> None:
        bar.update(bar.n, step=p.step, acc=f"{p.active_accuracy:.3f}")

    return on_step, lambda rows: bar.advance(len(rows)), bar.close


def _run(name: str, cfg, opts: dict, method=None) -> None:
    """The command as a function call: experiments.run_experiment with the options' Setup and method."""
    from ..experiments import EXPERIMENTS, Setup, run_experiment
    from ..files import check_output_dir, check_output_file
    from ..sources import check_spec, with_text_field
    from ..store import proto_dir_for

    opts["data"] = tuple(with_text_field(spec, opts["text_field"]) for spec in opts["data"])
    for spec in opts["data"]:  # before the model loads and before any database is created
        check_spec(spec)
    check_output_file(opts["db"], "--db", writable=not opts["dry_run"])  # a dry run writes nothing
    check_output_dir(proto_dir_for(opts["db"]), "--db's proto-token folder", writable=False)
    method = method or OnePass.from_options(**opts)
    setup = Setup(
        data=tuple(opts["data"]),
        model=opts["model"] or DEFAULT_MODEL,
        device=opts["device"],
        db=opts["db"],
        samples=opts["samples"],
        random_samples=opts.get("random_samples"),
        data_seed=opts["data_seed"],
        min_chars=opts["min_chars"],
        batch_size=opts["batch_size"],
        dry_run=opts["dry_run"],
        dtype=None if opts["dtype"] == "auto" else opts["dtype"],
        revision=opts["revision"],
    )
    as_json = opts["as_json"]
    echo = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    results = run_experiment(EXPERIMENTS[name], cfg, setup, method, echo=echo, bar=_bar)
    if as_json:
        from ..distributed import env

        if env()[0] == 0:  # under torchrun, rank 0 alone reports
            out = {"experiment": name, "db": str(opts["db"]), "dry_run": opts["dry_run"], "config": jsonable(cfg)}
            click.echo(json.dumps(out | {"method": method.key, "results": jsonable(results)}))


def jsonable(obj):
    """An experiment's result as plain JSON values: dataclasses as dicts (their public properties included),
    tuples as lists, non-string keys as strings."""
    import dataclasses
    import math

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        for k in dir(type(obj)):
            if not k.startswith("_") and isinstance(getattr(type(obj), k), property):
                out[k] = jsonable(getattr(obj, k))
        return out
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else str(k)): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "tolist"):  # tensors, numpy values
        return jsonable(obj.tolist())
    return str(obj)


def _seeds(opts) -> tuple[int, ...]:
    return tuple(range(opts["seed"], opts["seed"] + opts["seeds"]))


@click.command()
@experiment_options
@click.option("--lengths", default=None, help="comma-separated subset of the grid (default: 4,5,8,11,...,1448)")
@capacity_share_option
@click.option(
    "--threshold", type=FRACTION, default=THRESHOLD, show_default=True, help="accuracy that counts as reconstructed"
)
@click.option(
    "--method",
    type=click.Choice(sorted(METHODS)),
    default=OnePass.name,
    show_default=True,
    help="onepass: (e, m), one forward; cram: the autoregressive baseline as hidden_capacity runs it (arXiv "
    "2502.13063: [mem, BOS, text], judged teacher-forced); cram-sink: prototok's earlier variant (mem predicts t_1, "
    "judged on greedy generation)",
)
@click.option(
    "--warm",
    type=click.Choice(WARM_STARTS),
    default="cold",
    show_default=True,
    help="prefix: start each text from its own solution at the previous grid length (one-pass; rows keyed "
    "RECIPE+prefix-warm)",
)
@click.option("--num-mem", type=click.IntRange(1), default=1, show_default=True, help="K [mem] vectors (cram)")
@click.option(
    "--first-scale",
    type=POSITIVE,
    default=1.0,
    show_default=True,
    help="cram: mem_1's init std and lr times this (the attention-sink fix the fast recipe applies to e; try 20)",
)
@fit_options
def capacity(lengths, share, threshold, method, warm, num_mem, first_scale, **opts):
    """Capacity: the longest prefix reconstructed at >= 0.99 token accuracy (papers' length grid), and its H_LM.

    Walks up the length grid, fitting all samples of a length (per seed), and stops after the first length no
    sample reconstructs. Prints accuracy per length and capacity as the paper reports it (the maximum over
    samples of each sample's longest reconstructed length, max over seeds), with mean +- std and the per-sample
    values beside it, and H_LM in nats (the frozen model's own cross-entropy of the prefix, summed; token 0
    predicted from BOS when the tokenizer adds one, else left out, as hidden_capacity does).

    --method cram runs the cramming baseline as its code does (rows of layout "hc-mem", recipe key
    "hc-cram(num_mem=K,...)"): [mem_1..mem_K, BOS, t_1..t_N], AdamW lr 1e-2, betas (0.9, 0.9), wd 0.01, init at
    the embedding table's std, 5000 steps (--lr, --steps, --init-scale override; --recipe and --layout do not
    apply), judged on teacher-forced accuracy (capacity: the largest length whose mean best accuracy over texts
    is >= 0.99); greedy-generation accuracy is stored beside it. --method cram-sink is prototok's earlier variant
    (layout "mem", keys "cram(...)"), judged on greedy generation.
    """
    from ..experiments.capacity import LENGTHS, CapacityConfig

    grid = _ints(lengths, "--lengths") or LENGTHS
    cfg = CapacityConfig(tuple(grid), _seeds(opts), opts["layout"], share, threshold)
    cls = METHODS[method]
    if share != "none" and not cls.shares:
        raise PrototokError(f"method {method} has no shared vectors: use --share none")
    if warm != "cold" and not cls.warm_starts:
        raise PrototokError(f"method {method} starts every text cold: use --warm cold")
    chosen = cls.from_options(**opts, num_mem=num_mem, first_scale=first_scale, warm=warm, share=share)
    _run("capacity", cfg, opts, chosen)


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
    from ..experiments.layouts import LAYOUT_LENGTHS, LayoutsConfig

    grid = _ints(lengths, "--lengths") or LAYOUT_LENGTHS
    names = tuple(x.strip() for x in layouts.split(",")) if layouts else tuple(LAYOUTS)
    cfg = LayoutsConfig(tuple(grid), names, _seeds(opts), stop_on_fail)
    _run("layouts", cfg, opts)


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
    from ..experiments.sharing import SharingConfig

    grid = _ints(lengths, "--lengths")
    kinds = ("m", "e") if shared == "both" else (shared,)
    cfg = SharingConfig(grid, _ints(groups, "--groups"), kinds, _seeds(opts), opts["layout"])
    _run("sharing", cfg, opts, OnePass.from_options(**{**opts, "share": "m"}))  # its groups share a vector


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
@click.option(
    "--bezier-steps", type=click.IntRange(0), default=200, show_default=True, help="Adam steps for each curve"
)
@click.option("--bezier-lr", type=POSITIVE, default=0.01, show_default=True, help="relative to the endpoints' gap")
@click.option("--nearest", type=click.IntRange(1), default=3, show_default=True, help="vocabulary tokens per vector")
@click.option("--all-pairs", is_flag=True, help="connect every pair of a text's solutions (overrides --pairs)")
@click.option(
    "--text-distance",
    "text_distance",
    type=click.Choice(["tfidf", "minilm"]),
    multiple=True,
    help="Fig. 5: also measure each pair of texts' distance (repeatable; needs prototok[textdist])",
)
@click.option("--probe", is_flag=True, help="also generate autoregressively from [e, m] and [BOS, e, m] (probing)")
@fit_options
def geometry(n_seeds, length, contexts, continuations, pairs, points, bezier_steps, bezier_lr, nearest, **opts):
    """Solution geometry (the paper's Figs 5, 6, 7): distances between solutions, line vs Bezier paths, e and m.

    Several solutions per text, their cosine distances by group (same text / same context / different
    context), accuracy along the line vs a trained quadratic Bezier curve between two solutions of one text
    (and curve length / line length; --all-pairs: every pair of a text's solutions), norms of e and m and
    their nearest vocabulary tokens; with --text-distance, Fig. 5: every pair of texts' distance (TF-IDF,
    MiniLM) beside the mean distance of their solutions; with --probe, greedy generation from each solution
    used as a prompt, [e, m] and [BOS, e, m], scored against the text.

    Same-context groups need --data generated:SOURCE with --continuations 2+: --contexts contexts, each
    continued --continuations times by the model. Fits go in the runs table (experiment "geometry"), the
    measurements in the `geometry` table; a rerun skips what is stored.
    """

    from ..experiments.geometry import GeometryConfig

    seeds = tuple(range(opts["seed"], opts["seed"] + n_seeds))
    cfg = GeometryConfig(
        length,
        seeds,
        opts["layout"],
        continuations,
        contexts,
        pairs,
        points=points,
        bezier_steps=bezier_steps,
        bezier_lr=bezier_lr,
        nearest=nearest,
        all_pairs=opts.pop("all_pairs"),
        text_distances=tuple(opts.pop("text_distance")),
        probe=opts.pop("probe"),
    )
    _run("geometry", cfg, opts)


@click.command()
@click.argument("table", type=click.Choice(["table1", "table2", "table3", "table3-shared", "cram-table1"]))
@model_option()
@device_option()
@revision_option
@paper_data_option
@text_field_option
@experiment_db_option
@batch_size_option
@click.option("--dry-run", is_flag=True, help="print every value the preset fixes and the plan's cost, fit nothing")
@experiment_json_option
def reproduce(table, model, device, revision, data, text_field, db, batch_size, dry_run, as_json):
    """Run one of the papers' tables with the papers' settings.

    arXiv 2505.21189, recipe `paper` exactly, its sample counts, seeds, lengths, groups and layouts, and its
    precision (fp32 for Pythia, bf16 for Llama on GPU): table1: `ablate layouts` (50 texts, lengths 1..1024,
    every layout); table2: `ablate sharing` (256 texts, N=256, groups 1/4/16/64/256 sharing m or e, 10 seeds,
    max and average); table3: `capacity` (50 texts, 100 random-word texts, the length grid 4..1448);
    table3-shared: the same with one m shared by the texts. arXiv 2502.13063: cram-table1: `capacity --method
    cram` with one [mem] on its grid 64..3072 (PG-19 and drawn-length random texts). Every fixed value is
    printed first; the settings are those of prototok.experiments.presets.PRESETS. Only the model, the data,
    the database and batching can be chosen.
    """
    from ..experiments.presets import PRESETS, paper_dtype
    from ..models import pick_device

    preset = PRESETS[table]
    name, kind = model or DEFAULT_MODEL, pick_device(device).type
    dtype = paper_dtype(name, kind)
    for line in preset.describe(name, kind):
        click.echo(line, err=as_json)
    opts = {
        "data": data or preset.data,
        "text_field": text_field,
        "db": db,
        "dry_run": dry_run,
        "model": model,
        "device": device,
        "revision": revision,
        "dtype": dtype or "auto",
        "samples": preset.samples,
        "data_seed": 0,
        "min_chars": EXPERIMENT_MIN_CHARS,
        "batch_size": batch_size,
        "as_json": as_json,
    }
    _run(preset.experiment, preset.config, opts | {"random_samples": preset.random_samples}, preset.make_method())
