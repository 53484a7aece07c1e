"""The paper's Fig. 4 and Table 4 as they measure them: each method at its own capacity, one text at a time.

For every setting of a results db (model, source, method and recipe), read its capacity (the method's own
statistic: experiments.capacity.summarize), take the stored text at that length (the first sample that
reconstructs it), and time writing it back alone, batch 1: one forward pass for one-pass proto-tokens, greedy
generation with a KV cache for the cramming baseline (its method's decode, as every experiment decodes).
Throughput = capacity tokens / median seconds. Both methods in one db give the ratio one-pass / baseline in
the same run: on every one-pass line against the baseline's line of its (model, source) (the baseline timed at
its largest capacity), and once more per (model, source) as a ratio line of the best of each. Table 4's time
to fit one text alone is the rows' own fit_seconds when the capacity run fitted at --batch-size 1 (the report's
Table 4 shows each row's batch beside it).

    python bench/throughput_at_capacity.py --db results/prototok.db \
        --out bench/results/throughput_at_capacity_cpu.jsonl
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import replace

import torch

from common import RunLog, out_option, ratio, timed
from prototok.experiments.capacity import summarize
from prototok.experiments.texts import tokens_sha256, whole_short
from prototok.methods import for_layout, judged_score
from prototok.models import load_model, pick_device
from prototok.protofile import ProtoTokens
from prototok.store import Store

BASELINE = "cram"  # the method the others are compared with: the cramming baseline as hidden_capacity runs it


def one_text(proto: ProtoTokens, i: int) -> ProtoTokens:
    """Text i of a file as a file of its own (per-text lists in extra sliced too), so decoding runs at batch 1."""
    per_text = {k: [v[i]] for k, v in proto.extra.items() if isinstance(v, list) and len(v) == len(proto)}
    return replace(
        proto,
        e=proto.e[i : i + 1],
        m=proto.m if proto.m.shape[0] <= 1 else proto.m[i : i + 1],
        lengths=[proto.lengths[i]],
        accuracy=[proto.accuracy[i]],
        steps=[proto.steps[i]],
        text_sha256=[proto.text_sha256[i]],
        texts=None if proto.texts is None else [proto.texts[i]],
        extra={**proto.extra, **per_text},
    )


def settings(rows: list[dict]) -> dict[tuple, list[dict]]:
    """(model, source, method, layout, recipe) -> rows of per-text fits (shared-vector rows are another setting)."""
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["sharing"] == "none":
            out[(r["model"], r["source"], for_layout(r["layout"]).name, r["layout"], r["recipe"])].append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, nargs="+", help="results dbs with capacity rows (prototok capacity)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=5, help="timed decodes per text (median), after one warm-up")
    out_option(ap)
    args = ap.parse_args()
    stores = [Store(db, readonly=True) for db in args.db]
    found = {k: (store, rows) for store in stores for k, rows in settings(store.rows(experiment="capacity")).items()}
    models: dict[str, object] = {}
    log = RunLog(args.out, pick_device(args.device))
    out = []
    for (model, source, method, layout, recipe), (store, rows) in sorted(found.items()):
        summary = summarize(rows)
        cap = summary.capacity
        if not cap:
            print(f"{model} {source} {method} {recipe}: capacity 0, nothing to time")
            continue
        at_cap = [  # a text of the capacity's length: not a shorter one fitted whole at that grid length
            r for r in rows if r["length"] == cap and judged_score(r) >= summary.threshold and not whole_short(r)
        ]
        row = min(at_cap, key=lambda r: r["sample"])
        lm = models.get(model) or models.setdefault(model, load_model(model, args.device))
        proto = one_text(ProtoTokens.load(store.proto_file(row["proto_path"])), row["proto_index"])
        cls = for_layout(layout)
        with torch.no_grad():
            seconds = timed(lambda cls=cls, lm=lm, proto=proto: cls.decode(lm, proto, 1), lm.device, args.repeats)
            exact = tokens_sha256(cls.decode(lm, proto, 1)[0]) == proto.text_sha256[0]
        line = {
            "model": model,
            "source": source,
            "method": method,
            "recipe": recipe,
            "device": str(lm.device),
            "capacity": cap,
            "statistic": summary.statistic,
            "sample": row["sample"],
            "decode_s": seconds,
            "tokens_per_s": cap / seconds,
            "batch": 1,
            "row_accuracy": judged_score(row),
            "decoded_exactly": exact,  # the batch-1 decode is the stored text (its sha256), token for token
        }
        if method != BASELINE:  # settings sort by method, so its baseline ("cram" < "onepass") is already timed
            base = _pairs(out).get((model, source), {}).get(BASELINE)
            line["baseline"] = [base["recipe"], base["capacity"]] if base else None
            line["tokens_per_s_ratio"] = ratio(line["tokens_per_s"], base and base["tokens_per_s"], 3)
            line["decode_s_ratio"] = ratio(line["decode_s"], base and base["decode_s"], 3)
        out.append(log.add(line))
    for (model, source), group in _pairs(out).items():
        if {"onepass", "cram"} <= set(group):
            one, ar = group["onepass"], group["cram"]
            best = {"model": model, "source": source, "ratio": "onepass/cram tokens_per_s"}
            best |= {"onepass": [one["recipe"], one["capacity"]], "cram": [ar["recipe"], ar["capacity"]]}
            best["value"] = one["tokens_per_s"] / ar["tokens_per_s"]
            log.add(best)
    log.flush()


def _pairs(lines: list[dict]) -> dict[tuple, dict[str, dict]]:
    """(model, source) -> method -> its line of the largest capacity (the method at its best), one per method."""
    out: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for line in lines:
        best = out[(line["model"], line["source"])].get(line["method"])
        if best is None or (line["capacity"], line["tokens_per_s"]) > (best["capacity"], best["tokens_per_s"]):
            out[(line["model"], line["source"])][line["method"]] = line
    return out


if __name__ == "__main__":
    main()
