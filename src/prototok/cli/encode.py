"""`prototok encode`, `decode` and `demo`: text -> proto-tokens -> text from the command line."""

from __future__ import annotations

import json
import sys

import click

from ..errors import PrototokError
from ..files import check_output_file
from ..recipes import DEFAULT_RECIPE
from .options import (
    EXIT_NOT_RECONSTRUCTED,
    EXIT_OK,
    FRACTION,
    check_utf8,
    encode_db_option,
    fit_options,
    input_texts,
    json_option,
    load_model_from,
    model_options,
    model_options_with,
    progress_bar,
    proto_output_option,
    share_option,
)


@click.command()
@click.argument("text", required=False)
@click.option("--file", "files", multiple=True, type=click.Path(), help="read a text from a file (repeatable)")
@proto_output_option("prototokens.safetensors")
@fit_options
@share_option
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="fixed-shape steps through torch.compile (CUDA graphs on GPU); pays off on long runs",
)
@click.option(
    "--walk/--no-walk",
    default=None,
    help="fit each text through its own prefixes (4, 5, 8, ... tokens, each from the last one's solution) "
    "[default: texts longer than 64 tokens walk]",
)
@click.option("--encoder", type=click.Path(), default=None, help="a trained encoder checkpoint (no optimisation)")
@click.option(
    "--refine", type=click.IntRange(0), default=0, show_default=True, help="with --encoder: optimiser steps from it"
)
@click.option("--min-accuracy", type=FRACTION, default=1.0, show_default=True, help="exit 1 below this accuracy")
@click.option("--store-text", is_flag=True, help="keep the text itself in the file (else only its sha256)")
@encode_db_option
@json_option
def encode(
    text,
    files,
    output,
    model,
    device,
    dtype,
    revision,
    layout,
    recipe,
    lr,
    steps,
    init_scale,
    seed,
    batch_size,
    compile_,
    walk,
    share,
    encoder,
    refine,
    min_accuracy,
    store_text,
    db,
    as_json,
):
    """Fit proto-tokens for TEXT (or --file, or stdin) and write them to -o.

    With --encoder, a trained encoder gives them in one pass instead (optionally refined by --refine steps).
    With --db, the texts are also added to a results store (a row each, the file copied into <stem>.protos/).
    """
    from dataclasses import asdict

    from ..encode import encode_resolved
    from ..layouts import get_layout
    from ..models import DEFAULT_MODEL
    from ..recipes import resolve_recipe
    from ..records import add_encoded, check_db, check_db_model
    from ..schema import document, encode_texts
    from ..tokens import tokenize

    check_output_file(output, "-o")  # before any loading or fitting
    if db:
        check_db(db)
    texts = input_texts(text, files)
    origins = ((["argument"] if text is not None else []) + [str(f) for f in files]) or ["stdin"]
    lay = get_layout(layout)  # names resolved (the recipe checked for --share) once, before the model loads
    rec = resolve_recipe(recipe, share, lr=lr, max_steps=steps, init_scale=init_scale)
    lm = load_model_from(locals(), recipe=rec)
    if db:
        check_db_model(db, model or DEFAULT_MODEL, lm)
    update, bar = progress_bar(len(texts), "encode")
    try:
        if encoder:
            from ..encoder import amortised_encode

            proto = amortised_encode(lm, encoder, texts, refine_steps=refine, recipe=rec, layout=lay, seed=seed,
                                     batch_size=batch_size, progress=update)  # fmt: skip
        else:
            proto = encode_resolved(lm, texts, lay, rec, seed=seed, share=share, batch_size=batch_size,
                                    store_text=store_text, progress=update, compile=compile_,
                                    walk=walk)  # fmt: skip
    finally:
        bar.close()
    proto.save(output)
    token_ids = [tokenize(lm.tokenizer, t) for t in texts]
    config = {"device": str(lm.device), "dtype": str(lm.dtype).removeprefix("torch."), "batch_size": batch_size,
              "share": share, "compile": compile_, "walk": walk, "encoder": encoder, "refine": refine,
              "min_accuracy": min_accuracy, "store_text": store_text,
              "recipe": {k: v for k, v in asdict(rec).items() if k != "notes"}}  # fmt: skip
    doc = document("encode", lm.name, proto, encode_texts(proto, texts, token_ids), file=str(output), config=config)
    if db:
        doc = add_encoded(db, proto, lm, token_ids, model=model or DEFAULT_MODEL, origins=origins,
                          batch_size=batch_size, document=doc)  # fmt: skip
    if as_json:
        click.echo(json.dumps(doc))
    else:
        for r in doc["texts"]:
            click.echo(
                f"text {r['index']}: {r['length']} tokens, accuracy {r['accuracy']:.4f} "
                f"after {r['steps']} steps, {r['fit_seconds'] or 0:.1f} s"
            )
        click.echo(f"wrote {output}")
        if db:
            click.echo(f"added {doc['rows_added']} of {len(proto)} rows to {db} (the file as {doc['proto_path']})")
    sys.exit(EXIT_OK if min(proto.accuracy) >= min_accuracy else EXIT_NOT_RECONSTRUCTED)


DEMO_TEXT = "The cat sat on the mat and looked out of the window."


@click.command()
@model_options
@click.option("--text", default=DEMO_TEXT, show_default=True, help="the sentence to send through two vectors")
@proto_output_option("demo.safetensors")
def demo(model, device, dtype, revision, text, output):
    """Round trip: encode a sample sentence into two vectors, write it back in one forward pass."""
    import time

    from ..decode import decode as run_decode
    from ..encode import encode as run_encode

    check_output_file(output, "-o")  # before any loading or fitting
    from ..recipes import get_recipe

    t0 = time.perf_counter()
    lm = load_model_from(locals(), recipe=get_recipe(DEFAULT_RECIPE))
    click.echo(
        f"model {lm.name} loaded in {time.perf_counter() - t0:.1f} s; fitting e and m "
        f"({DEFAULT_RECIPE} recipe, {lm.hidden_size} numbers each)"
    )
    update, bar = progress_bar(1, "encode")
    try:
        proto = run_encode(text, lm, progress=update)
    finally:
        bar.close()
    proto.save(output)
    (out,) = run_decode(proto, lm, references=[text])
    click.echo(f"original : {text}")
    click.echo(f"one pass : {out.text}")
    click.echo(
        f"{proto.lengths[0]} tokens, token accuracy {out.accuracy:.3f}, {proto.steps[0]} steps, "
        f"{proto.extra['seconds'][0]:.0f} s; proto-tokens in {output}"
    )
    sys.exit(EXIT_OK if out.accuracy == 1.0 else EXIT_NOT_RECONSTRUCTED)


@click.command()
@click.argument("file")
@model_options_with("the model FILE was made for, when loading it fetches and converts nothing (see above)")
@click.option("--reference", multiple=True, help="the expected text (repeat per text) to report token accuracy")
@json_option
@click.option(
    "--trust-file-model",
    is_flag=True,
    help="without --model: load the model FILE names even if that fetches it from the Hub or converts a GGUF",
)
def decode(file, model, device, dtype, revision, reference, as_json, trust_file_model):
    """Write back the text(s) stored in FILE with one forward pass.

    FILE is a proto-token file, or hf://USER/REPO[/NAME.safetensors][@REVISION] on the Hugging Face Hub
    (NAME defaults to prototokens.safetensors; see `prototok push`).

    Without --model, the model FILE was made for is loaded (one line on stderr says so) when that needs no
    download and no conversion: a local Hugging Face folder, or a built-in name or .gguf already converted in
    the cache. Anything else needs --model, or --trust-file-model.
    """
    import logging
    import warnings

    from ..decode import decode as run_decode
    from ..models import file_model_refusal
    from ..protofile import ProtoTokens
    from .logs import holding, release

    log = logging.getLogger("prototok")
    # the file's warnings are shown once the decode worked: an error stays the one line on stderr
    with warnings.catch_warnings(record=True) as caught, holding() as held:
        warnings.simplefilter("always")
        proto = ProtoTokens.load(file)
    if reference and len(reference) != len(proto):
        raise PrototokError(f"{file} holds {len(proto)} texts but {len(reference)} --reference were given")
    references = [check_utf8(r, "--reference") for r in reference] or None
    if model is None and not trust_file_model and (why := file_model_refusal(proto.model)):
        raise PrototokError(
            f"{file} names model '{proto.model}': {why}; pass --model {proto.model} (or --trust-file-model) to load it"
        )
    lm = load_model_from(locals(), model or proto.model, precision=proto.precision)
    out = run_decode(proto, lm, references=references)
    release(held)
    for w in caught:
        log.warning("%s", w.message)
    if model is None:  # after the decode: an error stays the only line on stderr
        log.info("decoded with model '%s', the one %s was made for (--model overrides)", proto.model, file)
    if as_json:
        from ..schema import decode_texts, document

        config = {"device": str(lm.device), "dtype": str(lm.dtype).removeprefix("torch."), "references": len(reference)}
        click.echo(
            json.dumps(document("decode", lm.name, proto, decode_texts(proto, out), file=str(file), config=config))
        )
    else:
        for d in out:
            click.echo(d.text)
    if reference and any(d.accuracy < 1.0 for d in out):
        sys.exit(EXIT_NOT_RECONSTRUCTED)
