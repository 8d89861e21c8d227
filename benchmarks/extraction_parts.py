"""Where extraction's CPU goes, and what each lever measured against issue #23's 1.8x target.

Three tables, single-threaded CPU time per 5 s esc50-subset clip (TensorFlow with one intra- and one
inter-op thread, as a ``tf.data`` map runs a clip's ops; TFLite interpreters with one thread):

0. Decoding the 16-bit FLACs: ``sf.read(dtype="float32")`` against :func:`tfaudio.io.flac_fast.read_flac16`
   (miniaudio's dr_flac), and whether every sample is equal.

1. The frontends (``clip_features``: what the data pipeline runs per clip) traced with the plain kernels
   and with ``melspec.fast_kernels()`` (the RFFT's power as re² + im², the banded mel projection),
   on the clips resampled to the backbone's rate; max |difference| of the features.
2. EfficientAT mn04's body as fixed-shape TFLite models (8 clips x 500 frames): float32 with the frame
   masks (the ``tflite`` engine for clips of mixed lengths), float32 converted with full-length counts
   as constants (the masks folded away: what the engine runs when every clip fills the bucket), and
   int8 (XNNPACK's QS8 kernels on this VNNI CPU; float input and output) calibrated on a fixed
   generated set (seeded noise, tones, harmonics, clicks, sweeps at several levels: what an engine
   could ship, independent of the user's clips) and, as the best case, on real esc50-subset clips
   disjoint from the measured ones. Cosines of every frame embedding against TensorFlow's float32 body
   on the measured clips (unseen by either calibration); the gate is 0.999 on every frame.

Run: .venv/bin/python benchmarks/extraction_parts.py   (writes "Extraction engines: decoding, frontend
kernels, TFLite body variants (mn04)")
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from _common import machine, shared_dir, write_section

TITLE = "Extraction engines: decoding, frontend kernels, TFLite body variants (mn04)"
LABELS = {"yamnet": "YAMNet", "efficientat:mn04_as": "EfficientAT mn04"}


def _cpu_ms(fn, items, rounds: int = 3) -> float:
    """Best of ``rounds`` of the CPU ms per item of ``fn`` over ``items`` (after one warm-up call)."""
    fn(items[0])
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for x in items:
            fn(x)
        best = min(best, (time.process_time() - start) / len(items) * 1000)
    return best


def _generated_calibration(backbone, count: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Log-mels of ``count`` generated clips (kinds in turn, levels -60 to 0 dBFS), seeded: the same set
    on every machine."""
    rate = backbone.sample_rate
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    out = []
    for k in range(count):
        level = 10 ** rng.uniform(-3, 0)
        kind = k % 5
        if kind == 0:  # noise
            a = rng.standard_normal(t.size)
        elif kind == 1:  # a tone
            a = np.sin(2 * np.pi * rng.uniform(50, 12000) * t)
        elif kind == 2:  # harmonics, amplitude-modulated
            f0 = rng.uniform(80, 1000)
            a = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 8)) * (1 + np.sin(2 * np.pi * 2 * t)) / 4
        elif kind == 3:  # clicks: decaying noise bursts
            a = np.zeros(t.size)
            for s in rng.integers(0, t.size - 2000, 20):
                a[s : s + 2000] += rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300)
        else:  # a log sweep 50 Hz - 15 kHz
            f = np.exp(np.linspace(np.log(50), np.log(15000), t.size))
            a = np.sin(2 * np.pi * np.cumsum(f) / rate)
        a = level * a / (np.abs(a).max() + 1e-9)
        out.append(np.asarray(backbone.clip_features(a.astype(np.float32))))
    return np.stack(out).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=48, help="measured clips (and as many for real calibration)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    from tfaudio.backbones import engines
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.manifest import Manifest
    from tfaudio.data.pipeline import PipelineConfig, decode_clip
    from tfaudio.interpreter import interpreter_backend, tflite_interpreter
    from tfaudio.log import native_stderr_silenced
    from tfaudio.signal import melspec

    manifest = Manifest.from_source(shared_dir() / "data" / "esc50-subset")
    order = np.random.default_rng(0).permutation(len(manifest))
    measured, held = order[: args.clips], order[args.clips : 2 * args.clips]
    load = os.getloadavg()

    # ---- 0. decoding -----------------------------------------------------------------------------------
    import soundfile as sf

    from tfaudio.io.flac_fast import read_flac16

    flacs = [manifest.paths[i] for i in measured]
    equal = all(np.array_equal(sf.read(p, dtype="float32", always_2d=True)[0], read_flac16(p)[0]) for p in flacs)
    soundfile_ms = _cpu_ms(lambda p: sf.read(p, dtype="float32", always_2d=True), flacs)
    miniaudio_ms = _cpu_ms(read_flac16, flacs)
    decode_row = (f"| {soundfile_ms:.2f} | {miniaudio_ms:.2f} | {soundfile_ms / miniaudio_ms:.2f}x "
                  f"| {'yes' if equal else 'NO'} |")
    print(decode_row, flush=True)

    # ---- 1. frontends ------------------------------------------------------------------------------
    front_rows = []
    spec_sig = [tf.TensorSpec([None], tf.float32)]
    for spec in ("yamnet", "efficientat:mn04_as"):
        backbone = get_backbone(spec)
        config = PipelineConfig(sample_rate=backbone.sample_rate)
        clips = [tf.constant(decode_clip(manifest.paths[i], config)) for i in measured]
        traced, outs = {}, {}
        for fast in (False, True):
            with melspec.fast_kernels(fast):
                traced[fast] = tf.function(backbone.clip_features, input_signature=spec_sig,
                                           autograph=False).get_concrete_function()
            outs[fast] = [traced[fast](x).numpy() for x in clips]
        plain, fast = (_cpu_ms(traced[f], clips) for f in (False, True))
        diff = max(float(np.abs(a - b).max()) for a, b in zip(outs[False], outs[True]))
        front_rows.append(f"| {LABELS[spec]} | {plain:.3f} "
                          f"| {fast:.3f} | {plain / fast:.2f}x | {diff:.1e} |")
        print(front_rows[-1], flush=True)

    # ---- 2. mn04's body --------------------------------------------------------------------------------
    backbone = get_backbone("efficientat:mn04_as")
    config = PipelineConfig(sample_rate=backbone.sample_rate)

    def log_mels(rows):
        return np.stack([np.asarray(backbone.clip_features(decode_clip(manifest.paths[i], config)))[:500]
                         for i in rows]).astype(np.float32)

    x, x_held = log_mels(measured), log_mels(held)
    frames, rows = x.shape[1], 8
    x, x_held = x[: len(x) // rows * rows], x_held[: len(x_held) // rows * rows]
    counts = np.full([rows], frames, np.int32)
    generated = _generated_calibration(backbone, len(x_held), frames / 100)
    masked_spec = [tf.TensorSpec([rows, frames, x.shape[2]], tf.float32), tf.TensorSpec([rows], tf.int32)]
    full_spec = masked_spec[:1]
    holder = tf.Module()
    holder.weights_ = list(backbone.body.weights)

    def convert(full: bool, calibration: np.ndarray | None = None) -> bytes:
        if full:
            fn = tf.function(lambda a: backbone.body([a, tf.constant(counts)], training=False)[0],
                             input_signature=full_spec, autograph=False)
        else:
            fn = tf.function(lambda a, n: backbone.body([a, n], training=False)[0], input_signature=masked_spec,
                             autograph=False)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], holder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if calibration is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: (
                [calibration[i : i + rows]] + ([] if full else [counts]) for i in range(0, len(calibration), rows))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            converter.inference_input_type = tf.float32
            converter.inference_output_type = tf.float32
        with native_stderr_silenced():
            return converter.convert()

    def runner(model: bytes, full: bool):
        it = tflite_interpreter(model_content=model, num_threads=1)
        ins = sorted(it.get_input_details(), key=lambda d: len(d["shape"]), reverse=True)
        out = it.get_output_details()[0]["index"]

        def run(batch):
            it.set_tensor(ins[0]["index"], batch)
            if not full:
                it.set_tensor(ins[1]["index"], counts)
            it.invoke()
            return it.get_tensor(out).copy()

        return run

    batches = [x[i : i + rows] for i in range(0, len(x), rows)]
    ref_fn = tf.function(lambda a, n: backbone.body([a, n], training=False)[0], input_signature=masked_spec,
                         autograph=False)
    ref = np.concatenate([ref_fn(b, counts).numpy() for b in batches]).reshape(-1, backbone.embedding_dim)
    variants = {
        "TensorFlow float32 (reference)": (lambda b: ref_fn(b, counts).numpy()),
        "TFLite float32, masks (mixed lengths)": runner(convert(False), False),
        "TFLite float32, full-length counts as constants": runner(convert(True), True),
        "TFLite int8, generated calibration": runner(convert(True, generated), True),
        "TFLite int8, real calibration (disjoint clips)": runner(convert(True, x_held), True),
    }
    body_rows = []
    base = None
    for name, run in variants.items():
        emb = np.concatenate([run(b) for b in batches]).reshape(-1, backbone.embedding_dim)
        cos = np.sum(emb * ref, 1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1) + 1e-30)
        ms = _cpu_ms(run, batches) / rows
        base = base or ms
        gate = "yes" if cos.min() >= 0.999 else "no"
        body_rows.append(f"| {name} | {ms:.2f} | {base / ms:.2f}x | {cos.min():.5f} | {np.percentile(cos, 1):.5f} "
                         f"| {cos.mean():.5f} | {gate} |")
        print(body_rows[-1], flush=True)

    body = "\n".join([
        f"CPU ms per 5 s clip, single-threaded (TensorFlow: 1 intra- and 1 inter-op thread; TFLite: "
        f"{interpreter_backend()}, 1 thread, default XNNPACK delegate), best of 3 rounds after a warm-up, "
        f"{len(x)} random esc50-subset clips. One run, {machine()}, CPU flags: {engines.describe_cpu()}, "
        f"TensorFlow {tf.__version__}; load average {load[0]:.1f} at the start (the 2 cores shared with "
        "other jobs: CPU time moves less than wall time, but not nothing). Re-run: "
        "`python benchmarks/extraction_parts.py`.",
        "",
        "Decoding the 16-bit FLACs (`tfaudio.io.flac_fast`, what `load_audio` takes first with miniaudio "
        "installed):",
        "",
        "| soundfile ms / clip | miniaudio (dr_flac) ms / clip | speed-up | every sample equal |",
        "|---|---|---|---|",
        decode_row,
        "",
        "Frontends (`clip_features`, on the clips resampled to the backbone's rate), plain kernels against "
        "`melspec.fast_kernels()` (what the data pipeline's per-clip step traces with):",
        "",
        "| backbone | plain ms / clip | fast ms / clip | speed-up | max abs difference of the features |",
        "|---|---|---|---|---|",
        *front_rows,
        "",
        f"EfficientAT mn04's body on {rows} clips x {frames} frames per call; cosines of every frame embedding "
        "with TensorFlow's float32 body (the measured clips were in neither calibration set):",
        "",
        "| body | ms / clip | vs TensorFlow | cos min | cos 1 % | cos mean | cosine gate |",
        "|---|---|---|---|---|---|---|",
        *body_rows,
    ])
    print(body)
    if not args.no_write:
        write_section(TITLE, body)


if __name__ == "__main__":
    main()
