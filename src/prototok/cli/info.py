"""`prototok info FILE`: what a proto-token file holds and what it was made with, without loading any model."""

from __future__ import annotations

import json

import click

from .options import json_option


@click.command()
@click.argument("file")
@json_option
def info(file, as_json):
    """What proto-token FILE holds: model and fingerprints, layout, recipe, the precision it was fitted in, and per
    text its length, accuracy and steps. Reads and checks the file (checksums, metadata); loads no model.

    FILE is a path or hf://USER/REPO[/FILE][@REVISION]."""
    from ..protofile import ProtoTokens

    proto = ProtoTokens.load(file)
    summary = {
        "file": str(file),
        "model": proto.model,
        "model_fingerprint": proto.model_fingerprint,
        "tokenizer_fingerprint": proto.tokenizer_fingerprint,
        "layout": proto.layout,
        "recipe": proto.recipe,
        "precision": proto.precision or "unknown (written before prototok stored it)",
        "seed": proto.seed,
        "e_shape": list(proto.e.shape),
        "m_shape": list(proto.m.shape),
        "texts": [
            {"index": i, "n_tokens": n, "accuracy": a, "steps": s}
            for i, (n, a, s) in enumerate(zip(proto.lengths, proto.accuracy, proto.steps))
        ],
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    for key, value in summary.items():
        if key != "texts":
            click.echo(f"{key}: {value}")
    for t in summary["texts"]:
        click.echo(f"text {t['index']}: {t['n_tokens']} tokens, accuracy {t['accuracy']:.4f}, {t['steps']} steps")
