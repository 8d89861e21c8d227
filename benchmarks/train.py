"""Head recipes on frozen embeddings: the default recipe vs the TF Hub tutorial's vs `tfaudio tune`,
cross-validated clip accuracy with wall times, plus the silence gate's effect.

Data (all in ../shared/data): esc50-subset (its own 5 folds), speech-commands-mini (5 folds assigned by
tfaudio: stratified by word, grouped by speaker) and fsdd-mini (3 speakers: 3 folds, one speaker each —
leave-one-speaker-out, the only speaker-grouped split it allows).

How the figures are obtained (no choice looks at a test fold):
- default and tutorial: `cross_validate` with the named recipe (each fold the test fold once);
- tuned: `tune` — nested cross-validation: for each outer test fold the small grid's candidates are
  compared on inner folds of the training folds only, the winner is trained on all training folds and
  tested once on the outer fold; the figure is the mean of those outer accuracies;
- silence gate: the default recipe with the gate off, same folds.

Run: .venv/bin/python benchmarks/train.py [--backbone yamnet] [--inner-folds 2] [--sets a,b]
(writes the "Training" section of BENCHMARKS.md; the embedding cache is reused between runs). Each
data set's row is also kept in benchmarks/results/train-<backbone>.json with the date it was measured,
so `--sets` can re-measure some sets and the section still shows all of them.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import time

import pandas as pd
from _common import machine, shared_dir, write_section

from tfaudio.backbones.registry import get_backbone
from tfaudio.data.embedding_cache import EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.tasks.cross_validation import cross_validate
from tfaudio.tasks.recipe import get_recipe
from tfaudio.tasks.tuning import tune


def datasets(shared: pathlib.Path) -> dict[str, Manifest]:
    data = shared / "data"
    fsdd = sorted((data / "fsdd-mini" / "recordings").glob("*.wav"))
    frame = pd.DataFrame({"path": [str(f) for f in fsdd], "label": [f.name.split("_")[0] for f in fsdd]})
    return {
        "esc50-subset": Manifest.from_source(data / "esc50-subset"),
        "speech-commands-mini": Manifest.from_source(data / "speech-commands-mini").assign_folds(5),
        "fsdd-mini": Manifest.from_dataframe(frame).assign_folds(3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="yamnet")
    ap.add_argument("--inner-folds", type=int, default=2, help="inner test folds per outer fold in tune")
    ap.add_argument("--cache", default=str(pathlib.Path.home() / ".cache" / "tfaudio" / "embeddings"))
    ap.add_argument("--sets", default="esc50-subset,speech-commands-mini,fsdd-mini")
    args = ap.parse_args()
    backbone = get_backbone(args.backbone)
    store = pathlib.Path(__file__).parent / "results" / f"train-{args.backbone.replace(':', '-')}.json"
    stored = json.loads(store.read_text()) if store.exists() else {}
    for name, manifest in datasets(shared_dir()).items():
        if name not in args.sets.split(","):
            continue
        cache = EmbeddingCache(backbone, args.cache)
        t = time.perf_counter()
        cache.extract(manifest, progress=False)
        extract = time.perf_counter() - t
        clips = cache.load(manifest, extract=False, progress=False)
        row = {"data": name, "clips": len(clips), "folds": len(manifest.folds), "extract": extract}
        for key, recipe in (("default", get_recipe("default")), ("tutorial", get_recipe("tutorial")),
                            ("no gate", get_recipe("default").replace(name="default, no gate",
                                                                      head={"silence_gate": False}))):
            t = time.perf_counter()
            s = cross_validate(manifest, backbone, recipe, cache=cache, clips=clips, progress=False)
            acc = s["metrics"]["accuracy"]
            row[key] = (acc["mean"], acc["std"], time.perf_counter() - t)
            print(f"{name} {key}: {acc['mean']:.3f} ± {acc['std']:.3f} ({row[key][2]:.0f} s)", flush=True)
        t = time.perf_counter()
        result = tune(manifest, backbone, grid="small", inner_folds=args.inner_folds, cache=cache, progress=False)
        row["tuned"] = (result["outer"]["mean"], result["outer"]["std"], time.perf_counter() - t)
        row["chosen"] = result["outer"]["chosen"]
        print(f"{name} tuned: {row['tuned'][0]:.3f} ± {row['tuned'][1]:.3f} ({row['tuned'][2]:.0f} s) "
              f"chosen {row['chosen']}", flush=True)
        row["measured"] = f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {machine()}, load {os.getloadavg()[0]:.1f}"
        stored[name] = row
        store.parent.mkdir(exist_ok=True)
        tmp = store.with_suffix(".tmp")
        tmp.write_text(json.dumps(stored, indent=1))
        os.replace(tmp, store)
    rows = [stored[name] for name in datasets(shared_dir()) if name in stored]

    def cell(v):
        return f"{v[0]:.3f} ± {v[1]:.3f} ({v[2]:.0f} s)"

    table = ["| data | clips | folds | default | tutorial | tuned (nested CV) | default without silence gate | measured |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['data']} | {r['clips']} | {r['folds']} | {cell(r['default'])} | {cell(r['tutorial'])} | "
              f"{cell(r['tuned'])} | {cell(r['no gate'])} | {r['measured']} |" for r in rows]
    chosen = "\n".join(f"- {r['data']}: " + ", ".join(f"fold {f}: {c}" for f, c in r["chosen"].items()) for r in rows)
    d = get_recipe("default")
    at_least = [r["data"] for r in rows if r["default"][0] >= r["tutorial"][0]]
    better = [r["data"] for r in rows if r["default"][0] > r["tutorial"][0]]
    tuned_up = [r["data"] for r in rows if r["tuned"][0] > r["default"][0]]
    targets = (f"Targets (issue #17): default at least as good as tutorial on each set — "
               f"{'met' if len(at_least) == len(rows) else 'not met'} ({len(at_least)} of {len(rows)}); better on at "
               f"least two — {'met' if len(better) >= 2 else 'not met'} ({', '.join(better) or 'none'}). "
               f"`tune` above the default on: {', '.join(tuned_up) or 'none'}"
               + (f"; not on {', '.join(r['data'] for r in rows if r['data'] not in tuned_up)}" if len(tuned_up) < len(rows) else "")
               + ".")
    body = f"""
Machine: {machine()}; `python benchmarks/train.py --backbone {args.backbone} --inner-folds {args.inner_folds}`
(backbone {args.backbone}, frozen; embeddings from the cache, so the times are head training only).

Clip accuracy, mean ± std over the outer folds, and the wall time of the whole cross-validation.
**default**: the default recipe ({d.head.hidden_units[0]} hidden, dropout {d.head.dropout}, input dropout
{d.head.input_dropout}, standardised inputs, label smoothing {d.train.label_smoothing}, mixup {d.train.mixup},
{d.train.epochs} epochs with cosine decay on every training fold, silence gate). **tutorial**: the TF Hub
tutorial's (Dense 512, early stopping on the training loss, the next fold held out). **tuned**: `tune`'s
nested CV over the small grid (6 candidates, {args.inner_folds} inner folds per outer fold) — an honest
estimate of choosing a recipe that way. No figure here was used to choose a setting.

{chr(10).join(table)}

Recipes `tune` chose per outer fold (by inner folds only):

{chosen}

fsdd-mini has 3 speakers, so its speaker-grouped split is leave-one-speaker-out (3 folds, training on 2
speakers): a hard, small test of generalising to a new voice.

{targets}
"""
    write_section("Training", body)
    print(body)


if __name__ == "__main__":
    main()
