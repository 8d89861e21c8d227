"""EfficientAT (mn04_as) next to YAMNet: extraction throughput and memory through the embedding cache,
parity with the reference TFLite model and a float64 frontend, parameters and MACs.

(1) Extraction: ``EmbeddingCache(backbone, <fresh temp dir>).load(manifest)`` on the ESC-50 subset
    (440 clips of 5 s; 408 at 44.1 kHz, 32 at 16 kHz), the same batched pipeline for both backbones
    (``tf.data`` decode + in-graph resample + the backbone's ``clip_features`` per clip, the body on
    padded batches). Each backbone runs in its own process (peak RSS is per process); a warm-up
    extraction of one batch into another temp cache traces the graphs first. Throughput = audio
    seconds / wall seconds of the timed ``load``; rounds alternate between the backbones and the
    best is reported (other processes share the machine).
(2) Parity: the Keras body against ``mn04_as_reference.tflite`` on the log-mel of real clips (10
    animals-mp3 + 4 ESC-50, each cut/padded to 10 s + 1 sample = 1001 frames); the frontend against a
    float64 numpy version of EfficientAT's recipe (both STFT paths); optionally (``--tflite``) the
    ``graph_outputs`` TFLite conversion (builtins only) against Keras on a 1 s window, with its size
    and single-thread latency.
(3) Cost: parameters; MACs per 10 s clip of the body (``tfaudio.tasks.model_info.count_macs`` on a
    body with 1000 static frames) and of the frontend's DFT-matmul + mel matmuls (the TFLite path;
    the RFFT path does far fewer multiplies).
(4) Padded batches: the masked batch (what ``graph_outputs`` does) against one body call per clip,
    16 log-mels of 5 s, alternating rounds, best of each.

Usage:
    python benchmarks/efficientat.py [--rounds 2] [--batch 16] [--tflite] [--no-write]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import ROOT, machine, peak_rss_mb, shared_dir, write_section

RATE = 32000


# ---- (1) extraction, one backbone per process ----------------------------------------------------
def child(name: str, batch: int) -> None:
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest

    manifest = Manifest.from_source(shared_dir() / "data" / "esc50-subset")
    import soundfile as sf

    audio_s = float(sum(sf.info(p).duration for p in manifest.paths))
    t = time.perf_counter()
    backbone = get_backbone(name)
    load_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as warm, tempfile.TemporaryDirectory() as cold:
        t = time.perf_counter()
        first = Manifest(manifest.frame.iloc[:batch].reset_index(drop=True), labels=manifest.labels)
        EmbeddingCache(backbone, warm, batch_size=batch).load(first, progress=False)
        warm_s = time.perf_counter() - t
        rss_before = peak_rss_mb()
        t = time.perf_counter()
        clips = EmbeddingCache(backbone, cold, batch_size=batch).load(manifest, progress=False)
        wall = time.perf_counter() - t
    frames = int(sum(e.shape[0] for e in clips.embeddings))
    print(json.dumps({"name": name, "clips": len(clips), "audio_s": audio_s, "wall": wall, "load_s": load_s,
                      "warmup_s": warm_s, "frames": frames, "dim": int(clips.embeddings[0].shape[1]),
                      "peak_rss_mb": peak_rss_mb(), "rss_before_mb": rss_before}))


def run_child(name: str, batch: int) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, __file__, "--child", name, "--batch", str(batch)], capture_output=True,
                         text=True, cwd=ROOT, env=env)
    line = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if out.returncode or not line:
        sys.exit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[-1])


# ---- (2) parity ----------------------------------------------------------------------------------
def _load32k(path) -> np.ndarray:
    from tfaudio.io.decode import load_audio
    from tfaudio.signal.resample import resample

    audio, rate = load_audio(path)
    return np.asarray(resample(audio, rate, RATE)) if rate != RATE else audio


def _reference_log_mel(x, banks) -> np.ndarray:
    x = np.asarray(x, np.float64)
    y = x[1:] - 0.97 * x[:-1]
    padded = np.pad(y, 512, mode="reflect")
    window = np.zeros(1024)
    window[112:912] = np.hanning(800)
    frames = np.stack([padded[t * 320 : t * 320 + 1024] for t in range(1 + len(y) // 320)])
    return (np.log(np.abs(np.fft.rfft(frames * window)) ** 2 @ banks + 1e-5) + 4.5) / 5.0


def _kaldi_banks64() -> np.ndarray:
    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)

    step = (mel(15000.0) - mel(0.0)) / 129
    b = np.arange(128)[None, :]
    m = mel(np.arange(512) * RATE / 1024)[:, None]
    up, down = (m - b * step) / step, ((b + 2) * step - m) / step
    return np.pad(np.maximum(0, np.minimum(up, down)), [(0, 1), (0, 0)])


def parity(eat, tflite: bool) -> dict:
    import tensorflow as tf
    import tf_keras as keras

    from tfaudio.export.interpreter import tflite_interpreter
    from tfaudio.signal import efficientat_frontend as fe
    from tfaudio.signal.melspec import tflite_compatible

    shared = shared_dir()
    esc = shared / "data" / "esc50-subset"
    with open(esc / "meta" / "esc50.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["filename"])
    picks = [next(r for r in rows if r["category"] == c)["filename"] for c in ("dog", "rooster", "rain", "crying_baby")]
    paths = sorted((shared / "data" / "animals-mp3").glob("*.mp3")) + [esc / "audio" / n for n in picks]
    clips = [_load32k(p) for p in paths]
    log_mel = []
    for a in clips:
        x = np.zeros(10 * RATE + 1, np.float32)
        x[: min(len(a), len(x))] = a[: len(x)]
        log_mel.append(fe.log_mel(x).numpy())
    log_mel = np.stack(log_mel)
    it = tflite_interpreter(shared / "models" / "efficientat" / "mn04_as_reference.tflite")
    inp, outp = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    ref = []
    for lm in log_mel:
        it.set_tensor(inp, np.ascontiguousarray(lm.T[None, :, :, None]))
        it.invoke()
        ref.append(it.get_tensor(outp)[0].copy())
    ref = np.stack(ref).astype(np.float64)
    counts = np.full([len(paths)], log_mel.shape[1], np.int32)
    logits = keras.Model(eat.body.inputs, eat.body.get_layer("classifier.5").output)([log_mel, counts]).numpy()
    scores = eat.body([log_mel, counts])[2].numpy()
    out = {
        "clips": len(paths),
        "scores_max_abs": float(np.abs(scores - 1 / (1 + np.exp(-ref))).max()),
        "logits_max_abs": float(np.abs(logits - ref).max()),
        "top5_equal": int((np.argsort(-scores, 1)[:, :5] == np.argsort(-ref, 1)[:, :5]).all(1).sum()),
    }
    banks = _kaldi_banks64()
    for path_name, flag in (("rfft", False), ("dft_matmul", True)):
        worst = 0.0
        for a in clips[:5]:
            x = a[: 3 * RATE]
            with tflite_compatible(flag):
                ours = fe.log_mel(x).numpy()
            worst = max(worst, float(np.abs(ours - _reference_log_mel(x, banks)).max()))
        out[f"frontend_{path_name}_max_abs"] = worst
    if tflite:
        window = clips[2][None, RATE : 2 * RATE].astype(np.float32)  # dog, 1 s
        expected = eat.batch_outputs(window)["clip_scores"].numpy()
        variants = (("dynamic", None, True), ("fixed_dft_matmul", window.shape[1], True),
                    ("fixed_rfft", window.shape[1], False))
        for name, width, dft in variants:
            module = tf.Module()
            module.weights = eat.variables
            spec = [tf.TensorSpec([None if width is None else 1, width], tf.float32),
                    tf.TensorSpec([None if width is None else 1], tf.int32)]
            with tflite_compatible(dft):
                concrete = tf.function(eat.graph_outputs, input_signature=spec, autograph=False).get_concrete_function()
            converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
            t = time.perf_counter()
            blob = converter.convert()
            convert_s = time.perf_counter() - t
            it = tflite_interpreter(model_content=blob, num_threads=1)
            ins = {d["dtype"]: d["index"] for d in it.get_input_details()}
            if width is None:
                it.resize_tensor_input(ins[np.float32], window.shape)
                it.resize_tensor_input(ins[np.int32], [1])
                it.allocate_tensors()
            it.set_tensor(ins[np.float32], window)
            it.set_tensor(ins[np.int32], np.array([window.shape[1]], np.int32))
            times = []
            for _ in range(30):
                t = time.perf_counter()
                it.invoke()
                times.append(time.perf_counter() - t)
            got = next(it.get_tensor(d["index"]) for d in it.get_output_details() if tuple(d["shape"]) == (1, 527))
            out[f"tflite_{name}"] = {"bytes": len(blob), "convert_s": convert_s,
                                     "scores_max_abs": float(np.abs(got - expected).max()),
                                     "ms_median": 1000 * float(np.median(times)), "ms_min": 1000 * float(min(times))}
    return out


# ---- (3) cost ------------------------------------------------------------------------------------
def costs(eat, yamnet) -> dict:
    from tfaudio.backbones.efficientat_backbone import build_body
    from tfaudio.signal import efficientat_frontend as fe
    from tfaudio.tasks.model_info import count_macs, frontend_macs_per_frame

    frames = 1000  # 10 s
    body = build_body(eat.params, num_frames=frames)
    counts = count_macs(body)
    assert all(v is not None for v in counts.values()), [k for k, v in counts.items() if v is None]
    weights = fe.kaldi_mel_matrix(eat.params.frontend)
    used = np.flatnonzero(weights.any(axis=1))
    bins = int(used[-1]) + 1 - int(used[0])
    front_per_frame = eat.params.frontend.window_samples * 2 * bins + bins * eat.params.frontend.num_mel_bins
    n_stats = sum(int(np.prod(w.shape)) for w in eat.body.weights if "moving_" in w.name)
    y_stats = sum(int(np.prod(w.shape)) for w in yamnet.body.weights if "moving_" in w.name)
    from tfaudio.signal import melspec

    y_body = sum(v for v in count_macs(yamnet.body).values() if v)
    y_front = sum(frontend_macs_per_frame(yamnet.params.frontend).values())
    cfg = yamnet.params.frontend  # a 10 s clip after YAMNet's padding
    y_patches = melspec.num_patches(10 * cfg.sample_rate, cfg)
    y_frames = 1 + (cfg.min_samples + (y_patches - 1) * cfg.patch_hop_samples - cfg.window_samples) // cfg.hop_samples
    return {
        "eat_params": int(eat.body.count_params()) - n_stats, "eat_bn_stats": n_stats,
        "eat_body_macs_10s": int(sum(counts.values())), "eat_frontend_macs_10s": front_per_frame * frames,
        "eat_dft_bins": bins,
        "yamnet_params": int(yamnet.body.count_params()) - y_stats, "yamnet_bn_stats": y_stats,
        "yamnet_patches_10s": int(y_patches),
        "yamnet_body_macs_10s": int(y_body * y_patches), "yamnet_frontend_macs_10s": int(y_front * y_frames),
    }


# ---- (4) masked batch vs per clip ----------------------------------------------------------------
def batch_vs_single(eat, rounds: int) -> dict:
    rng = np.random.default_rng(0)
    feats = np.stack([eat.clip_features(rng.standard_normal(5 * RATE).astype(np.float32) * 0.1).numpy()
                      for _ in range(16)])
    counts = np.full([16], feats.shape[1], np.int32)
    eat.batch_features_outputs(feats, counts)
    eat.batch_features_outputs(feats[:1], counts[:1])
    batched, single = [], []
    for _ in range(3 * rounds):
        t = time.perf_counter()
        eat.batch_features_outputs(feats, counts)["clip_scores"].numpy()
        batched.append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in range(16):
            eat.batch_features_outputs(feats[i : i + 1], counts[i : i + 1])["clip_scores"].numpy()
        single.append(time.perf_counter() - t)
    return {"batched_audio_s_per_s": 80 / min(batched), "single_audio_s_per_s": 80 / min(single)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--tflite", action="store_true", help="also convert graph_outputs to TFLite (~30 s)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child")
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.batch)
        return 0
    load = os.getloadavg()
    runs: dict[str, list[dict]] = {"yamnet": [], "efficientat:mn04_as": []}
    for r in range(args.rounds):
        for name in runs:
            res = run_child(name, args.batch)
            runs[name].append(res)
            print(f"round {r + 1} {name}: {res['audio_s'] / res['wall']:.0f} audio-s/s, peak RSS "
                  f"{res['peak_rss_mb']:.0f} MB", flush=True)
    best = {n: min(rs, key=lambda x: x["wall"]) for n, rs in runs.items()}

    from tfaudio.backbones.registry import get_backbone

    eat, yamnet = get_backbone("efficientat:mn04_as"), get_backbone("yamnet")
    par = parity(eat, args.tflite)
    print(json.dumps(par, indent=1))
    cost = costs(eat, yamnet)
    print(json.dumps(cost, indent=1))
    bvs = batch_vs_single(eat, args.rounds)
    print(json.dumps(bvs, indent=1))

    y, e = best["yamnet"], best["efficientat:mn04_as"]
    lines = [
        f"Machine: {machine()}; `python benchmarks/efficientat.py{' --tflite' if args.tflite else ''}` "
        f"(batch {args.batch}, best of {args.rounds} alternating rounds). The machine was shared with other "
        f"jobs (load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end on its 2 cores): "
        "throughputs are lower than on an idle machine and noisy; compare rows of one run, not runs.",
        "",
        f"**Extraction** through the same batched pipeline, `EmbeddingCache(backbone, <fresh temp dir>)"
        f".load(manifest)` on the ESC-50 subset ({y['clips']} clips, {y['audio_s']:.0f} s of audio, 44.1 and "
        "16 kHz FLAC, resampled in the `tf.data` graph to each backbone's rate), one process per backbone, "
        "graphs traced by a one-batch warm-up first:",
        "",
        "| backbone | rate | frames / clip | dim | audio-s per wall-s | wall | peak RSS | load + warm-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, res, rate in (("YAMNet", y, 16000), ("EfficientAT mn04_as", e, 32000)):
        lines.append(f"| {name} | {rate // 1000} kHz | {res['frames'] / res['clips']:.1f} | {res['dim']} | "
                     f"{res['audio_s'] / res['wall']:.0f} | {res['wall']:.1f} s | {res['peak_rss_mb']:.0f} MB | "
                     f"{res['load_s']:.1f} + {res['warmup_s']:.1f} s |")
    lines += [
        "",
        f"**Padded batches**: EfficientAT's masked body on 16 log-mels of 5 s in one call ran at "
        f"{bvs['batched_audio_s_per_s']:.0f} audio-s/s, one call per clip at {bvs['single_audio_s_per_s']:.0f} "
        "audio-s/s (best of alternating rounds). The masks (a multiply before each depthwise convolution and in "
        "each squeeze-excitation mean) are what make a padded batch exact; with equal-length clips the two "
        "paths do the same arithmetic, so the difference is scheduling and load noise. `graph_outputs` keeps the "
        "batch (one graph, no loop, for export too).",
        "",
        f"**Parity** (mn04_as, {par['clips']} real clips: 10 animals-mp3 + 4 ESC-50, at 32 kHz, cut/padded to "
        "10 s + 1 sample = 1001 log-mel frames):",
        "",
        f"- Keras body vs `mn04_as_reference.tflite` (which outputs **logits**, not sigmoid scores) on the same "
        f"log-mel: max |Δ| of the 527 scores {par['scores_max_abs']:.1e} (sigmoid of the reference logits), of the "
        f"527 logits {par['logits_max_abs']:.1e}; top-5 classes identical on {par['top5_equal']}/{par['clips']} clips.",
        f"- Frontend vs a float64 numpy implementation of EfficientAT's recipe (3 s of 5 real clips): max |Δ| "
        f"{par['frontend_rfft_max_abs']:.1e} (RFFT path), {par['frontend_dft_matmul_max_abs']:.1e} (DFT-matmul "
        "path of `melspec.tflite_compatible()`), in normalised log-mel units ((log + 4.5) / 5).",
    ]
    if "tflite_dynamic" in par:
        d, fd, fr = par["tflite_dynamic"], par["tflite_fixed_dft_matmul"], par["tflite_fixed_rfft"]
        lines += [
            "- `graph_outputs` → TFLite with TFLITE_BUILTINS only (a raw conversion of the backbone graph, not "
            "tfaudio's export, which the lead is redesigning), on a 1 s window of the dog clip, 1 thread, "
            "median (min) of 30 invokes:",
            "",
            "| conversion | size | max \\|Δ\\| scores vs Keras | latency |",
            "|---|---|---|---|",
            f"| free batch and length, DFT-matmul frontend (`tflite_compatible()`) | {d['bytes'] / 1e6:.1f} MB | "
            f"{d['scores_max_abs']:.1e} | {d['ms_median']:.1f} ({d['ms_min']:.1f}) ms |",
            f"| fixed [1, 32000], DFT-matmul frontend | {fd['bytes'] / 1e6:.1f} MB | {fd['scores_max_abs']:.1e} | "
            f"{fd['ms_median']:.1f} ({fd['ms_min']:.1f}) ms |",
            f"| fixed [1, 32000], RFFT frontend (RFFT2D builtin) | {fr['bytes'] / 1e6:.1f} MB | "
            f"{fr['scores_max_abs']:.1e} | {fr['ms_median']:.1f} ({fr['ms_min']:.1f}) ms |",
        ]
    ratio = cost["eat_frontend_macs_10s"] / cost["eat_body_macs_10s"]
    latency = ""
    if "tflite_dynamic" in par:
        latency = (f" In TFLite (fixed 1 s window, 1 thread) the RFFT2D frontend ran in "
                   f"{par['tflite_fixed_rfft']['ms_median']:.0f} ms against {par['tflite_fixed_dft_matmul']['ms_median']:.0f} ms "
                   "for the DFT matmul (XNNPACK makes the matmul fast, but it is 800 × 958 per frame), and the "
                   "file is 3 MB smaller: for EfficientAT the RFFT path may be the better TFLite frontend.")
    lines += [
        "",
        "**Cost** per 10 s clip (MACs by `tfaudio.tasks.model_info.count_macs` on a body with static shapes; "
        "frontends as the DFT-matmul + mel matmuls of their TFLite graphs):",
        "",
        "| | weights | body MACs / 10 s | frontend MACs / 10 s |",
        "|---|---|---|---|",
        f"| YAMNet | {cost['yamnet_params'] / 1e6:.2f} M (+ {cost['yamnet_bn_stats'] / 1e3:.0f} k batch-norm "
        f"statistics) | {cost['yamnet_body_macs_10s'] / 1e6:.0f} M ({cost['yamnet_patches_10s']} patches) | "
        f"{cost['yamnet_frontend_macs_10s'] / 1e6:.0f} M |",
        f"| EfficientAT mn04_as | {cost['eat_params'] / 1e6:.3f} M (+ {cost['eat_bn_stats'] / 1e3:.0f} k batch-norm "
        f"statistics) | {cost['eat_body_macs_10s'] / 1e6:.0f} M | {cost['eat_frontend_macs_10s'] / 1e6:.0f} M |",
        "",
        f"EfficientAT's frontend in its TFLite form costs {ratio:.1f}× its body: an 800-sample window times "
        f"{cost['eat_dft_bins']} complex DFT bins per 10 ms frame (a 1024-point RFFT does ~1/40 of that)."
        f"{latency} Still to measure: CV accuracy with EfficientAT embeddings vs YAMNet, and export size / "
        "latency through tfaudio's export once it is redesigned.",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("EfficientAT", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
