"""YAMNet embedding throughput on ESC-50 clips, in audio-seconds per wall-second.

(a) batched: tfaudio's pipeline as the embedding cache runs it: ``AudioDataset(..., features=
    yamnet.clip_features).batches(--batch)`` (parallel decode, resample and log-mel patches per clip in
    ``tf.data``, prefetched) → ``YAMNetBackbone.batch_frames_from_features`` (the body);
(b) per clip, the TF Hub transfer-learning tutorial's pipeline: ``tf.data`` maps
    ``load_wav_16k_mono`` (decode + ``tfio.audio.resample``) then one model call per clip
    (``yamnet_model(wav)`` with the TF Hub model's signature: waveform → scores, embeddings, log-mel),
    as the tutorial writes them (plain ``map``);
(b') per clip with tfaudio's decoder and resampler: the same per-clip model call, without tfio (the
    best one can do one clip at a time; reported for reference);
(c) the bare forward pass: the body on log-mel patches already in memory (no decode, resample or
    log-mel), in the backbone's patch chunks.

Tracing and warm-up are excluded. The three are measured in alternating rounds (the best round of
each is reported) so that load from other processes hits them alike.

Usage:
    python benchmarks/yamnet.py [--clips N] [--batch 32] [--rounds 2] [--no-write]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import re
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("TFAUDIO_SHARED", ROOT.parent / "shared"))
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def _load(path, rate):
    from tfaudio.io.decode import load_audio
    from tfaudio.signal.resample import clip_resampler

    audio, file_rate = load_audio(path)
    return clip_resampler(file_rate, rate)(audio).numpy() if file_rate != rate else audio


def run_batched(yamnet, files, batch_size):
    """(a): returns the number of embedding frames made."""
    import pandas as pd

    from tfaudio.data.manifest import Manifest
    from tfaudio.data.pipeline import AudioDataset

    manifest = Manifest.from_dataframe(pd.DataFrame({"path": files, "label": "x"}))
    frames = 0
    data = AudioDataset(manifest, sample_rate=yamnet.sample_rate, features=yamnet.clip_features, keep_audio=False)
    for batch in data.batches(batch_size):
        emb, mask = yamnet.batch_frames_from_features(batch["features"], batch["feature_count"])
        frames += int(np.asarray(mask).sum())
        np.asarray(emb)
    return frames


def run_per_clip(yamnet, files):
    """(b)."""
    frames = 0
    for f in files:
        _, emb, _ = yamnet(_load(f, yamnet.sample_rate))
        frames += int(np.asarray(emb).shape[0])
    return frames


def run_tutorial(yamnet, files):
    """(b): the tutorial's ``load_wav_16k_mono`` → ``extract_embedding`` maps."""
    import tensorflow as tf
    import tensorflow_io as tfio

    from tfaudio.io.decode import load_audio

    yamnet_model = yamnet.serving_module(None).serve  # the TF Hub model's call: waveform [N] → dict

    def decode(path):  # the tutorial's tf.audio.decode_wav, for FLAC
        audio, rate = load_audio(path.decode())
        return audio, np.int64(rate)

    def load_wav_16k_mono(filename):
        wav, sample_rate = tf.numpy_function(decode, [filename], [tf.float32, tf.int64])
        wav.set_shape([None])
        return tfio.audio.resample(wav, rate_in=sample_rate, rate_out=16000)

    def extract_embedding(wav):
        return yamnet_model(wav)["embeddings"]  # [P, 1024]

    ds = tf.data.Dataset.from_tensor_slices(files).map(load_wav_16k_mono).map(extract_embedding)
    return sum(int(e.shape[0]) for e in ds)


def run_bare(yamnet, patches):
    """(c)."""
    emb, _ = yamnet.embed_patches(patches)
    np.asarray(emb)
    return int(patches.shape[0])


def cpu_breakdown(yamnet, files, batch_size):
    """CPU seconds per stage, one stage at a time in the main thread (process time: robust to other jobs)."""
    import tensorflow as tf

    from tfaudio.io.decode import load_audio
    from tfaudio.signal.resample import clip_resampler

    cost = {"decode": 0.0, "resample": 0.0, "log-mel frontend": 0.0, "body": 0.0}
    for start in range(0, len(files), batch_size):
        t = time.process_time()
        decoded = [load_audio(f) for f in files[start : start + batch_size]]
        cost["decode"] += time.process_time() - t
        t = time.process_time()
        waves = [clip_resampler(r, yamnet.sample_rate)(a).numpy() if r != yamnet.sample_rate else a for a, r in decoded]
        cost["resample"] += time.process_time() - t
        t = time.process_time()
        patches = tf.concat([yamnet._clip_fn(w)[0] for w in waves], 0)  # what clip_features does per clip
        patches.numpy()
        cost["log-mel frontend"] += time.process_time() - t
        t = time.process_time()
        yamnet.embed_patches(patches)[0].numpy()
        cost["body"] += time.process_time() - t
    return cost


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=0, help="use the first N clips (default: all)")
    ap.add_argument("--batch", type=int, default=32, help="clips per batch in (a)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = ap.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone
    from tfaudio.io.decode import audio_info

    audio_dir = SHARED / "data" / "esc50-subset" / "audio"
    if not audio_dir.is_dir():
        print(f"needs {audio_dir} (see ../shared/ASSETS.md)", file=sys.stderr)
        return 1
    files = sorted(str(p) for p in audio_dir.glob("*.flac"))
    if args.clips:
        files = files[: args.clips]
    seconds = sum(audio_info(f).duration for f in files)
    yamnet = YAMNetBackbone.from_pretrained()

    # warm-up: every tf.function traced once (shapes are free, so no later retracing)
    warm = files[:2]
    run_per_clip(yamnet, warm)
    run_tutorial(yamnet, warm)
    run_batched(yamnet, warm, args.batch)
    waves = [_load(f, yamnet.sample_rate) for f in files]
    patches = tf.concat([yamnet._clip_fn(tf.constant(w))[0] for w in waves], 0)  # [N, 96, 64]
    run_bare(yamnet, patches[:64])
    del waves

    best = {"a": 0.0, "b": 0.0, "b2": 0.0, "c": 0.0}
    rounds: list[dict[str, float]] = []
    for r in range(args.rounds):
        rounds.append({})
        for key, fn in (("c", lambda: run_bare(yamnet, patches)),
                        ("a", lambda: run_batched(yamnet, files, args.batch)),
                        ("b", lambda: run_tutorial(yamnet, files)),
                        ("b2", lambda: run_per_clip(yamnet, files))):
            t = time.perf_counter()
            fn()
            speed = seconds / (time.perf_counter() - t)
            best[key] = max(best[key], speed)
            rounds[-1][key] = speed
            print(f"round {r + 1}: ({key}) {speed:7.1f} audio-s/s", flush=True)

    subset = files[: min(len(files), 4 * args.batch)]
    cost = cpu_breakdown(yamnet, subset, args.batch)
    total = sum(cost.values())
    breakdown = ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in cost.items())
    print(f"CPU time per stage ({len(subset)} clips): {breakdown}")

    a, b, b2, c = best["a"], best["b"], best["b2"], best["c"]
    lines = [
        f"- (a) batched pipeline (decode → resample → log-mel patches in tf.data → body, {args.batch} clips/batch): "
        f"**{a:.0f}** audio-s/s",
        f"- (b) the TF Hub tutorial's pipeline (decode + `tfio.audio.resample`, one model call per clip): "
        f"**{b:.0f}** audio-s/s",
        f"- (b') one model call per clip with tfaudio's decoder and resampler: **{b2:.0f}** audio-s/s",
        f"- (c) bare forward pass on patches in memory: **{c:.0f}** audio-s/s",
        f"- (a)/(b) = **{a / b:.2f}×** (target ≥ 3×; against (b'): {a / b2:.2f}×); "
        f"(a)/(c) = **{100 * a / c:.0f} %** (target ≥ 80 %)",
        f"- CPU time of the batched pipeline by stage ({len(subset)} clips): {breakdown}",
    ]
    print("\n".join(lines))
    if not args.no_write:
        _write_section(lines, rounds, len(files), seconds, int(patches.shape[0]), args)
    return 0


def _write_section(lines, rounds, n_files, seconds, n_patches, args) -> None:
    import tensorflow as tf

    section = "\n".join([
        "## YAMNet",
        "",
        f"Embedding extraction on {n_files} ESC-50 clips ({seconds:.0f} s of audio, {n_patches} patches; "
        "408 at 44.1 kHz resampled to 16 kHz, 32 at 16 kHz), in audio-seconds per wall-second, best of "
        f"{args.rounds} alternating rounds. Machine: {platform.machine()}, {os.cpu_count()} CPUs "
        f"(shared with other jobs), TensorFlow {tf.__version__}. "
        "Re-run: `python benchmarks/yamnet.py`.",
        "",
        *lines,
        "",
        "| round | (a) batched | (b) tutorial | (b') per clip, tfaudio I/O | (c) bare body | (a)/(b) | (a)/(b') | (a)/(c) |",
        "|---|---|---|---|---|---|---|---|",
        *(f"| {i + 1} | {r['a']:.0f} | {r['b']:.0f} | {r['b2']:.0f} | {r['c']:.0f} | {r['a'] / r['b']:.2f}× | "
          f"{r['a'] / r['b2']:.2f}× | {100 * r['a'] / r['c']:.0f} % |" for i, r in enumerate(rounds)),
        "",
        "Reading: on CPU the MobileNet body is most of the work, and one 5 s clip already gives it 10 "
        "patches, which it runs about as fast per patch as any larger batch (16–32 patches per call is "
        "the sweet spot here). So against the same per-clip model call with tfaudio's own decoder and "
        "resampler (b'), batching gains only ~1.2–1.4×: it saves per-call overhead and overlaps decoding "
        "with compute. Against the tutorial's pipeline (b) the gain is several-fold because "
        "`tfio.audio.resample` costs far more than the model. (a) keeps within ~20 % of (c) because "
        "everything before the body (decoding, resampling in the tf.data graph, and the log-mel patches: "
        "the backbone's `clip_features` step mapped per clip) runs in tf.data's workers, one thread per "
        "clip, beside the body, instead of on the body's thread pool (TF's pools handing small ops between "
        "threads cost ~2-3x the CPU of one thread); with the log-mel frontend run on the batch in the main "
        "thread, and the resampler called from Python, (a) was ~70 % of (c). The stage breakdown above is "
        "measured stage by stage in the main thread (TF's thread pool), so it overstates the share of the "
        "stages that tf.data runs on one thread.",
        "",
    ])
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n\n"
    pattern = re.compile(r"^## YAMNet\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    BENCHMARKS_MD.write_text(text.rstrip("\n") + "\n")
    print(f"updated the YAMNet section of {BENCHMARKS_MD}")


if __name__ == "__main__":
    sys.exit(main())
