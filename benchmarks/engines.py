"""Extraction speed and fidelity of each engine (float32 TF, bfloat16 oneDNN, TFLite XNNPACK) for YAMNet
and EfficientAT mn04.

For each backbone: real esc50-subset clips (5 s). "body" times the backbone's body alone on the clips'
precomputed features (batches of 16 clips, the cache's batch size); "extraction" times the whole cache
road (decode, resample, frontend, body, write) into a fresh cache folder. The engines take turns in
rounds, in one process, so that a busy machine slows them alike; figures are ratios within this run.
Fidelity: cosine of each frame's embedding with float32's (min, 1st percentile, mean); the gate is 0.999.

Run: .venv/bin/python benchmarks/engines.py   (writes the "Extraction engines" section of BENCHMARKS.md)
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _common import machine, shared_dir, write_section

BACKBONES = {"yamnet": "YAMNet", "efficientat:mn04_as": "EfficientAT mn04"}
GATE = 0.999


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--cv", nargs="*", default=None, metavar="BACKBONE",
                        help="instead: 5-fold CV accuracy (default recipe, esc50-subset) of float32 vs bfloat16 "
                             "embeddings for these backbones (default yamnet); writes its own section")
    args = parser.parse_args()
    if args.cv is not None:
        return cv_section(args.cv or ["yamnet"])

    import tensorflow as tf

    from tfaudio.backbones import engines
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.audio_converter import AudioConverter
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest

    manifest = Manifest.from_source(shared_dir() / "data" / "esc50-subset")
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(manifest))[: args.clips]
    subset = Manifest(manifest.frame.iloc[rows].reset_index(drop=True), labels=manifest.labels)
    load = os.getloadavg()
    lines = []
    for spec in args.backbones:
        backbone = get_backbone(spec)
        names = ["float32", "bfloat16", "tflite"]
        chosen = {n: engines.choose_engine(n, backbone=backbone) for n in names}
        names = [n for n in names if chosen[n].name == n]  # what this machine / backbone can run
        rate = backbone.sample_rate
        convert = AudioConverter(rate)
        feats = [np.asarray(backbone.clip_features(convert(p, rate))) for p in subset.paths]
        batches = []
        for i in range(0, len(feats), 16):
            group = feats[i : i + 16]
            counts = np.array([len(f) for f in group], np.int32)
            rest = [(0, 0)] * (group[0].ndim - 1)
            batches.append((np.stack([np.pad(f, [(0, counts.max() - len(f))] + rest) for f in group]), counts))
        audio_s = sum(len(convert(p, rate)) for p in subset.paths) / rate
        fns = {n: engines.engine_functions(backbone, chosen[n])[1] for n in names}
        out = {n: [fn(*b) for b in batches] for n, fn in fns.items()}  # warm-up (traces, conversion)
        body_t = {n: 0.0 for n in names}
        ext_t = {n: 0.0 for n in names}
        for _ in range(args.rounds):
            for n in names:
                start = time.perf_counter()
                for b in batches:
                    fns[n](*b)
                body_t[n] += time.perf_counter() - start
            for n in names:
                with tempfile.TemporaryDirectory() as tmp:
                    cache = EmbeddingCache(backbone, tmp, engine=n)
                    start = time.perf_counter()
                    cache.extract(subset, progress=False)
                    ext_t[n] += time.perf_counter() - start
        ref = np.concatenate([np.asarray(e)[np.asarray(m)] for e, m in out["float32"]])
        for n in names:
            emb = np.concatenate([np.asarray(e)[np.asarray(m)] for e, m in out[n]])
            cos = np.sum(emb * ref, 1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1) + 1e-12)
            body = audio_s * args.rounds / body_t[n]
            ext = audio_s * args.rounds / ext_t[n]
            lines.append(
                f"| {BACKBONES.get(spec, spec)} | {n} | {body:.0f} | {body_t['float32'] / body_t[n]:.2f}× | "
                f"{ext:.0f} | {ext_t['float32'] / ext_t[n]:.2f}× | {cos.min():.5f} | {np.percentile(cos, 1):.5f} | "
                f"{cos.mean():.5f} | {'yes' if cos.min() >= GATE else 'no'} |")
            print(lines[-1], flush=True)
    body = "\n".join([
        f"{args.clips} esc50-subset clips of 5 s per backbone; the engines take turns over {args.rounds} rounds "
        "in one process. \"body\": the body alone on precomputed features, batches of 16 clips; \"extraction\": "
        "`EmbeddingCache.extract` into a fresh folder (decode, resample, frontend, body, write). audio-s/s = "
        "seconds of audio per second of wall time. Cosine: each frame's embedding against float32's; gate "
        f"{GATE} on every frame. One run, {machine()}, CPU flags: {engines.describe_cpu()}, TensorFlow "
        f"{tf.__version__}; the 2 cores were shared with other developers' jobs (load average {load[0]:.1f} at "
        "the start), so only the ratios within a backbone mean much. Re-run: `python benchmarks/engines.py`.",
        "",
        "| backbone | engine | body audio-s/s | body vs float32 | extraction audio-s/s | extraction vs float32 | "
        "cos min | cos 1 % | cos mean | gate |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *lines,
    ])
    write_section("Extraction engines", body)


def cv_section(specs: list[str]) -> None:
    """The alternative gate: downstream 5-fold CV accuracy equal within 0.5 point."""
    import tempfile

    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest
    from tfaudio.tasks.cross_validation import cross_validate

    manifest = Manifest.from_source(shared_dir() / "data" / "esc50-subset")
    load = os.getloadavg()
    lines = []
    for spec in specs:
        backbone = get_backbone(spec)
        acc = {}
        for engine in ("float32", "bfloat16"):
            cache = EmbeddingCache(backbone, engine=engine)
            with tempfile.TemporaryDirectory() as tmp:
                summary = cross_validate(manifest, backbone, "default", cache=cache, output_dir=tmp)
            acc[engine] = summary["metrics"]["accuracy"]
        diff = 100 * (acc["bfloat16"]["mean"] - acc["float32"]["mean"])
        folds = sum(a != b for a, b in zip(acc["float32"]["per_fold"], acc["bfloat16"]["per_fold"], strict=True))
        lines.append(f"| {BACKBONES.get(spec, spec)} | {acc['float32']['mean']:.3f} | {acc['bfloat16']['mean']:.3f} | "
                     f"{diff:+.1f} | {folds} of 5 | {'yes' if abs(diff) <= 0.5 else 'no'} |")
        print(lines[-1], flush=True)
    write_section("Extraction engines: downstream accuracy", "\n".join([
        "The gate's alternative: 5-fold CV clip accuracy of the default recipe on esc50-subset (11 classes) "
        "from float32 and from bfloat16 embeddings (each engine has its own cache namespace). One run, "
        f"{machine()}, load average {load[0]:.1f}. Re-run: `python benchmarks/engines.py --cv yamnet`.",
        "",
        "| backbone | float32 | bfloat16 | difference (points) | folds that differ | within 0.5 point |",
        "|---|---|---|---|---|---|",
        *lines,
    ]))


if __name__ == "__main__":
    main()
