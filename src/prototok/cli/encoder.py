"""`prototok encoder ...`: train a text -> proto-token encoder, and measure it."""

from __future__ import annotations

import json

import click

from ..layouts import DEFAULT_LAYOUT, LAYOUTS
from ..models import DEFAULT_MODEL
from ..recipes import DEFAULT_RECIPE, RECIPE_HELP
from .options import DTYPE_CHOICES, MODEL_HELP, load_model_from, output_option

DTYPE_HELP = "weights' dtype; auto: the model's own on GPU (fp32 under bf16 autocast), float32 on CPU"
DATA_HELP = "a .txt file (a text per line), a folder of them, a data source name, or a text (repeatable)"


@click.group()
def encoder() -> None:
    """A learned encoder: proto-tokens for a text in one pass, no per-text optimisation."""


@encoder.command()
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help=MODEL_HELP)
@click.option("--data", "data", multiple=True, required=True, help=DATA_HELP)
@click.option("--text-field", default=None, help="hf: sources: the column holding the text (default: text)")
@click.option(
    "--samples", type=click.IntRange(1), default=5000, show_default=True, help="texts to take from a data source name"
)
@click.option("--min-len", type=click.IntRange(1), default=8, show_default=True, help="shortest training text, tokens")
@click.option("--max-len", type=click.IntRange(1), default=16, show_default=True, help="longest training text, tokens")
@click.option("--steps", type=click.IntRange(1), default=1000, show_default=True, help="total optimiser steps")
@click.option(
    "--batch-size", type=click.IntRange(1), default=16, show_default=True, help="global batch (split over ranks)"
)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="AdamW peak learning rate")
@click.option(
    "--warmup", type=click.IntRange(0), default=20, show_default=True, help="linear warm-up steps, then cosine"
)
@output_option(None, "checkpoint folder", folder=True, alias=True)
@click.option("--resume", is_flag=True, help="continue the run in -o from its last checkpoint")
@click.option("--ckpt-every", type=click.IntRange(1), default=100, show_default=True, help="checkpoint every K steps")
@click.option(
    "--log-every", type=click.IntRange(1), default=10, show_default=True, help="log loss/accuracy every K steps"
)
@click.option(
    "--stop-at", type=click.IntRange(0), default=None, help="stop (with a checkpoint) at this step; --resume continues"
)
@click.option("--max-minutes", type=float, default=None, help="stop (with a checkpoint) after this wall time")
@click.option("--seed", type=int, default=0, show_default=True, help="init and data order")
@click.option("--device", default=None, help="cpu, cuda ... (default: cuda if available; per rank under torchrun)")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="auto", show_default=True, help=DTYPE_HELP)
@click.option("--revision", default=None, help="branch, tag or commit of a Hub id (default: the main branch)")
@click.option(
    "--report-to",
    type=click.Choice(["none", "tensorboard"]),
    default="none",
    show_default=True,
    help="also log loss, accuracy and lr to TensorBoard in -o/tensorboard (pip install 'prototok[tensorboard]')",
)
@click.option("--layout", default=DEFAULT_LAYOUT, show_default=True, help="one of: " + ", ".join(LAYOUTS))
@click.option("--width", type=click.IntRange(1), default=256, show_default=True, help="encoder width")
@click.option("--layers", type=click.IntRange(1), default=2, show_default=True, help="encoder transformer layers")
@click.option("--heads", type=click.IntRange(1), default=4, show_default=True, help="attention heads per encoder layer")
@click.option("--predict-m", is_flag=True, help="predict m per text too (default: one trained m shared by all)")
@click.option("--holdout", type=float, default=0.05, show_default=True, help="fraction of texts kept for eval")
def train(
    model,
    data,
    text_field,
    samples,
    min_len,
    max_len,
    output,
    resume,
    stop_at,
    max_minutes,
    device,
    dtype,
    revision,
    report_to,
    **kw,
):
    """Train an encoder end to end through the frozen model (launch with torchrun for data parallel)."""
    from ..data import with_text_field
    from ..distributed import env
    from ..encoder import TrainConfig, train_encoder, training_texts
    from ..encoder.train import tensorboard_writer
    from ..files import check_output_dir

    out = output
    check_output_dir(out, "-o")  # before the model loads or anything trains
    tensorboard_writer(report_to)  # a missing package is refused before the model loads
    cfg = TrainConfig(model=model, min_len=min_len, max_len=max_len, **kw)
    texts = training_texts([with_text_field(d, text_field) for d in data], samples, cfg.seed)
    last = train_encoder(
        cfg,
        texts,
        out,
        device=device,
        resume=resume,
        stop_at=stop_at,
        max_minutes=max_minutes,
        report_to=report_to,
        dtype=None if dtype == "auto" else dtype,
        revision=revision,
    ).metrics
    if env()[0] != 0:  # under torchrun, rank 0 alone reports
        return
    if last.get("loss") is not None:
        click.echo(f"step {last['step']}: loss {last['loss']:.4f}, token accuracy {last['accuracy']:.4f}")
    click.echo(f"checkpoint in {out}")


@encoder.command("eval")
@click.argument("ckpt")
@click.option("--data", "data", multiple=True, required=True, help=DATA_HELP)
@click.option("--text-field", default=None, help="hf: sources: the column holding the text (default: text)")
@click.option(
    "--split",
    type=click.Choice(["heldout", "all"]),
    default="heldout",
    show_default=True,
    help="heldout: only the texts that training kept out (same hash split)",
)
@click.option(
    "--samples", type=click.IntRange(1), default=5000, show_default=True, help="texts to take from a data source name"
)
@click.option("--texts", "n_texts", type=click.IntRange(1), default=16, show_default=True, help="evaluation texts")
@click.option(
    "--min-len", type=click.IntRange(1), default=None, help="shortest evaluation text (default: the training range)"
)
@click.option(
    "--max-len", type=click.IntRange(1), default=None, help="longest evaluation text (default: the encoder's max_len)"
)
@click.option(
    "--recipe",
    default=DEFAULT_RECIPE,
    show_default=True,
    help="recipe of the warm and cold fits: " + RECIPE_HELP,
)
@click.option("--lr", type=float, default=None, help="override the recipe's learning rate (warm and cold alike)")
@click.option(
    "--steps", type=click.IntRange(0), default=300, show_default=True, help="fit budget per text, warm and cold alike"
)
@click.option("--no-fits", is_flag=True, help="amortised accuracy only: skip the warm and cold fits")
@click.option("--seed", type=int, default=0, show_default=True, help="which texts are drawn and the fits' init")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True, help="texts fitted at once")
@click.option("--model", default=None, help=MODEL_HELP + " (default: the model the encoder was trained for)")
@click.option("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
@click.option("--dtype", type=click.Choice(DTYPE_CHOICES), default="auto", show_default=True, help=DTYPE_HELP)
@click.option("--revision", default=None, help="branch, tag or commit of a Hub id (default: the main branch)")
@click.option("--json", "as_json", is_flag=True, help="the whole result as JSON on stdout")
def eval_(
    ckpt,
    data,
    text_field,
    split,
    samples,
    n_texts,
    min_len,
    max_len,
    recipe,
    lr,
    steps,
    no_fits,
    seed,
    batch_size,
    model,
    device,
    dtype,
    revision,
    as_json,
):
    """Measure encoder CKPT on held-out texts: amortised accuracy by length, warm vs cold steps to solve.

    CKPT is a checkpoint folder or hf://USER/REPO[@REVISION] (see `prototok push`)."""
    from ..data import with_text_field
    from ..encoder import config_from_meta, eval_texts, evaluate_encoder, read_meta, training_texts
    from ..recipes import parse_recipe

    meta = read_meta(ckpt)
    name = model or meta.get("train", {}).get("model") or config_from_meta(meta, str(ckpt)).lm_name
    lm = load_model_from(locals(), name)
    texts = training_texts([with_text_field(d, text_field) for d in data], samples, seed)
    chosen = eval_texts(
        lm, ckpt, texts, n_texts, heldout=split == "heldout", min_len=min_len, max_len=max_len, seed=seed
    )
    bar = _fit_bar(no_fits)
    try:
        res = evaluate_encoder(
            lm,
            ckpt,
            chosen,
            recipe=parse_recipe(recipe, lr=lr),
            max_steps=steps,
            fits=not no_fits,
            seed=seed,
            batch_size=batch_size,
            progress=bar,
        )
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps(res))
        return
    a = res["amortised"]
    click.echo(f"{res['texts']} {split} texts, encoder step {res['encoder_step']}")
    click.echo(f"amortised: token accuracy {a['accuracy']:.4f}, loss {a['loss']:.3f}, exact {a['exact']}")
    for n, row in a["by_length"].items():
        click.echo(f"  N={n:>3}: {row['texts']} texts, accuracy {row['accuracy']:.4f}, exact {row['exact']}")
    if f := res.get("fits"):
        click.echo(f"fits ({f['recipe']}, lr {f['lr']}, budget {f['max_steps']} steps):")
        for phase in ("warm", "cold"):
            p = f[phase]
            click.echo(
                f"  {phase}: solved {p['solved']}/{res['texts']}, mean steps {p['mean_steps']:.1f} "
                f"(unsolved = budget), median {p['median_steps']}"
            )
        click.echo(f"  warm/cold mean steps: {f['warm_over_cold_steps']}")
        d = res["distance"]
        for k in ("amortised_to_cold", "amortised_to_warm"):
            v = d[k]
            click.echo(
                f"  {k}: cos e {v['cos_e']:.3f}, cos m {v['cos_m']:.3f}, L2 e {v['l2_e']:.2f}, L2 m {v['l2_m']:.2f}"
            )


class _fit_bar:
    """tqdm over fitter steps, one bar per phase (warm, cold)."""

    def __init__(self, off: bool):
        self.off, self.bar, self.phase = off, None, None

    def __call__(self, phase, p) -> None:
        from ..progress import ProgressBar

        if phase != self.phase:
            self.close()
            self.phase = phase
            self.bar = ProgressBar(p.total, f"fit {phase}")
        self.bar.update(p.done, step=p.step, acc=f"{p.active_accuracy:.3f}", solved=p.solved)

    def close(self) -> None:
        if self.bar:
            self.bar.close()
