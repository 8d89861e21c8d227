"""5-fold cross-validated clip accuracy of head recipes on YAMNet embeddings, with wall times and RSS.

Data: ../shared/data/esc50-subset (its own 5 folds) and ../shared/data/speech-commands-mini
(5 folds assigned by tfaudio: stratified by word, grouped by speaker).

Recipes are compared on the VALIDATION folds only (inside each CV split the fold after the test fold
validates); the default is chosen by validation accuracy, never by test accuracy. Test-fold figures
are reported for every recipe so nothing is hidden.

Run: .venv/bin/python benchmarks/train.py   (writes the "Training" section of BENCHMARKS.md)
"""
from __future__ import annotations

import dataclasses
import pathlib
import tempfile
import time

import numpy as np
from _common import machine, peak_rss_mb, shared_dir, write_section

from tfaudio.backbones.registry import get_backbone
from tfaudio.data.embedding_cache import EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.heads.classification_head import HeadConfig
from tfaudio.tasks.audio_classifier import AudioClassifier, TrainConfig

RECIPES = {
    "tutorial MLP 512 (default)": (HeadConfig(), TrainConfig()),
    "linear probe": (HeadConfig.linear(), TrainConfig()),
    "MLP 512 + dropout 0.3 + L2 1e-4": (HeadConfig(dropout=0.3, l2=1e-4), TrainConfig()),
    "MLP 512 + embedding mixup 0.2": (HeadConfig(), TrainConfig(mixup=0.2)),
    "MLP 1024-256 + dropout 0.3": (HeadConfig(hidden_units=(1024, 256), dropout=0.3), TrainConfig()),
}


def evaluate_recipe(manifest, clips, backbone, cache, head, train):
    """Per fold: (validation clip accuracy, test clip accuracy, test macro-F1)."""
    out = []
    for _, split in manifest.kfold():
        def part(m):
            return clips.subset(np.isin(clips.folds, m.folds))

        clf = AudioClassifier(backbone, labels=manifest.labels, head=head, cache=cache)
        clf.fit(part(split.train), part(split.val), train)
        val = clf.evaluate(part(split.val))["clip"]
        test = clf.evaluate(part(split.test))["clip"]
        out.append((val["accuracy"], test["accuracy"], test["macro_f1"]))
    return np.array(out)


def run_dataset(name, manifest, backbone, cache_root):
    cache = EmbeddingCache(backbone, cache_root / name)  # a fresh cache: the extraction time is real
    t = time.perf_counter()
    cache.extract(manifest, progress=False)
    t_extract = time.perf_counter() - t
    clips = cache.load(manifest, extract=False, progress=False)
    rows = []
    for recipe, (head, train) in RECIPES.items():
        t = time.perf_counter()
        res = evaluate_recipe(manifest, clips, backbone, cache, head, train)
        rows.append((recipe, res, time.perf_counter() - t))
        print(f"{name:22s} {recipe:34s} val {res[:, 0].mean():.3f}  test {res[:, 1].mean():.3f} ± "
              f"{res[:, 1].std():.3f}  ({rows[-1][2]:.0f} s)")
    return {"extract_s": t_extract, "rows": rows, "clips": len(manifest), "classes": len(manifest.labels),
            "cached_before": False}


def main() -> None:
    shared = shared_dir()
    backbone = get_backbone("yamnet")
    datasets = {
        "esc50-subset": Manifest.from_source(shared / "data" / "esc50-subset"),
        "speech-commands-mini": Manifest.from_folder(shared / "data" / "speech-commands-mini").assign_folds(5, seed=0),
    }
    sections = []
    tmp = tempfile.TemporaryDirectory()
    for name, manifest in datasets.items():
        r = run_dataset(name, manifest, backbone, pathlib.Path(tmp.name))
        default = r["rows"][0]
        best = max(r["rows"], key=lambda row: row[1][:, 0].mean())
        lines = [
            f"### {name}: {r['clips']} clips, {r['classes']} classes, 5 folds",
            "",
            f"Embedding extraction (YAMNet, batched, cold cache): {r['extract_s']:.1f} s.",
            "",
            "| recipe | validation acc. (selects) | **test clip acc. mean ± std** | test macro-F1 | train time (5 folds) |",
            "|---|---|---|---|---|",
        ]
        for recipe, res, secs in r["rows"]:
            lines.append(f"| {recipe} | {res[:, 0].mean():.3f} | **{res[:, 1].mean():.3f} ± {res[:, 1].std():.3f}** "
                         f"| {res[:, 2].mean():.3f} | {secs:.0f} s |")
        d_val = best[1][:, 0].mean() - default[1][:, 0].mean()
        d_test = best[1][:, 1].mean() - default[1][:, 1].mean()
        lines += ["", f"Best by validation: *{best[0]}* ({d_val:+.3f} validation, {d_test:+.3f} test vs the default)."]
        sections.append("\n".join(lines) + "\n")
    body = f"""Written by `benchmarks/train.py` on this machine ({machine()}); peak RSS of the whole run
{peak_rss_mb():.0f} MB. Clip accuracy = mean of frame scores per clip (what the exported model computes);
std over folds is the population std. In each CV split the fold after the test fold validates (early
stopping and recipe choice); the other three train. Recipes are chosen on validation accuracy only.

{chr(10).join(sections)}

Head settings not listed are the defaults of `HeadConfig` / `TrainConfig`
({dataclasses.asdict(TrainConfig())}).
"""
    write_section("Training", body)


if __name__ == "__main__":
    main()
