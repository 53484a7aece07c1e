"""`prototok encoder ...`: train a text -> proto-token encoder, and measure it."""

from __future__ import annotations

import json

import click

from .options import (
    POSITIVE,
    FiniteFloat,
    batch_size_option,
    device_option,
    dtype_option,
    encoder_data_option,
    encoder_samples_option,
    eval_lr_option,
    eval_recipe_option,
    eval_seed_option,
    eval_steps_option,
    json_option,
    layout_option,
    load_model_from,
    model_option,
    output_option,
    revision_option,
    text_field_option,
    train_batch_size_option,
    train_lr_option,
    train_model_option,
    train_seed_option,
    train_steps_option,
)


@click.group()
def encoder() -> None:
    """A learned encoder: proto-tokens for a text in one pass, no per-text optimisation."""


@encoder.command()
@train_model_option
@encoder_data_option
@text_field_option
@encoder_samples_option
@click.option("--min-len", type=click.IntRange(1), default=8, show_default=True, help="shortest training text, tokens")
@click.option("--max-len", type=click.IntRange(1), default=16, show_default=True, help="longest training text, tokens")
@train_steps_option
@train_batch_size_option
@train_lr_option
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
@click.option("--max-minutes", type=POSITIVE, default=None, help="stop (with a checkpoint) after this wall time")
@click.option(
    "--keep-every",
    type=click.IntRange(1),
    default=None,
    help="also keep the weights every K steps in -o/step-NNNNNN (for a learning curve: encoder eval reads each)",
)
@train_seed_option
@device_option("; per rank under torchrun")
@dtype_option
@revision_option
@click.option(
    "--report-to",
    type=click.Choice(["none", "tensorboard"]),
    default="none",
    show_default=True,
    help="also log loss, accuracy and lr to TensorBoard in -o/tensorboard (pip install 'prototok[tensorboard]')",
)
@layout_option
@click.option("--width", type=click.IntRange(1), default=256, show_default=True, help="encoder width")
@click.option("--layers", type=click.IntRange(1), default=2, show_default=True, help="encoder transformer layers")
@click.option("--heads", type=click.IntRange(1), default=4, show_default=True, help="attention heads per encoder layer")
@click.option("--predict-m", is_flag=True, help="predict m per text too (default: one trained m shared by all)")
@click.option(
    "--reader",
    type=click.Choice(["embeddings", "lm"]),
    default="embeddings",
    show_default=True,
    help="what the encoder reads: the LM's token embeddings, or (lm) its hidden states at --reader-layer",
)
@click.option("--reader-layer", type=int, default=-1, show_default=True, help="with --reader lm: which hidden states")
@click.option(
    "--e-scale", type=POSITIVE, default=1.0, show_default=True, help="e = this x the encoder's output (50: fast-e50)"
)
@click.option(
    "--holdout",
    type=FiniteFloat(0, 1, max_open=True),
    default=0.05,
    show_default=True,
    help="fraction of texts kept for eval",
)
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
    keep_every,
    device,
    dtype,
    revision,
    report_to,
    **kw,
):
    """Train an encoder end to end through the frozen model (launch with torchrun for data parallel)."""
    from ..distributed import env
    from ..encoder import TrainConfig, train_encoder, training_texts
    from ..encoder.train import tensorboard_writer
    from ..files import check_output_dir
    from ..sources import with_text_field

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
        keep_every=keep_every,
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
@encoder_data_option
@text_field_option
@click.option(
    "--split",
    type=click.Choice(["heldout", "all"]),
    default="heldout",
    show_default=True,
    help="heldout: only the texts that training kept out (same hash split)",
)
@encoder_samples_option
@click.option("--texts", "n_texts", type=click.IntRange(1), default=16, show_default=True, help="evaluation texts")
@click.option(
    "--min-len", type=click.IntRange(1), default=None, help="shortest evaluation text (default: the training range)"
)
@click.option(
    "--max-len", type=click.IntRange(1), default=None, help="longest evaluation text (default: the encoder's max_len)"
)
@eval_recipe_option
@eval_lr_option
@eval_steps_option
@click.option("--no-fits", is_flag=True, help="amortised accuracy only: skip the warm and cold fits")
@eval_seed_option
@batch_size_option
@model_option("the model the encoder was trained for")
@device_option()
@dtype_option
@revision_option
@json_option
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
    from ..encoder import config_from_meta, eval_texts, evaluate_encoder, read_meta, training_texts
    from ..recipes import parse_recipe
    from ..sources import with_text_field

    rec = parse_recipe(recipe, lr=lr)  # before loading: a bad spec loads nothing, and it picks the precision
    meta = read_meta(ckpt)
    name = model or meta.get("train", {}).get("model") or config_from_meta(meta, str(ckpt)).lm_name
    lm = load_model_from(locals(), name, recipe=rec)
    # the training run's data seed: a source's windows fall where they fell in training, so the hash split holds
    # out exactly the texts training never saw (--seed picks among them and seeds the fits)
    data_seed = meta.get("train", {}).get("seed", seed) if split == "heldout" else seed
    texts = training_texts([with_text_field(d, text_field) for d in data], samples, data_seed)
    chosen = eval_texts(
        lm, ckpt, texts, n_texts, heldout=split == "heldout", min_len=min_len, max_len=max_len, seed=seed
    )
    bar = _fit_bar(no_fits)
    try:
        res = evaluate_encoder(
            lm,
            ckpt,
            chosen,
            recipe=rec,
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
