"""EfficientAT mn04's body in TFLite with XNNPACK (float32, float16 weights) against TensorFlow's batched
float32 body: is it the faster extraction engine mn04 lacks?

The body (log-mel ``[B, T, 128]`` + frame counts → frame embeddings) of real esc50-subset clips (5 s,
so every clip of a batch has the same length and the TFLite model a fixed shape) runs in batches of
``--batch`` clips: TensorFlow's traced float32 body (what the cache runs today), and the same body converted
to TFLite (float32, and float16 weights: XNNPACK computes float32 after de-quantizing them at load)
in the interpreter tfaudio picks, with 1 and 2 threads. The variants take turns in rounds in one
process. Fidelity: cosine of each frame embedding with TensorFlow's.

Run: .venv/bin/python benchmarks/tflite_body.py   (writes "Extraction engines: TFLite body (mn04)")
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from _common import machine, shared_dir, write_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--spec", default="efficientat:mn04_as")
    args = parser.parse_args()

    import tensorflow as tf

    from tfaudio.backbones import engines
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.audio_converter import AudioConverter
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest
    from tfaudio.interpreter import interpreter_backend, tflite_interpreter
    from tfaudio.log import native_stderr_silenced

    manifest = Manifest.from_source(shared_dir() / "data" / "esc50-subset")
    rng = np.random.default_rng(0)
    paths = [manifest.paths[i] for i in rng.permutation(len(manifest))[: args.clips]]
    backbone = get_backbone(args.spec)
    rate = backbone.sample_rate
    convert = AudioConverter(rate)
    waves = [convert(p, rate) for p in paths]
    size = max(len(w) for w in waves)
    feats = [np.asarray(backbone.clip_features(np.pad(w, (0, size - len(w))))) for w in waves]  # [T, 128]
    frames = feats[0].shape[0]
    batches = [np.stack(feats[i : i + args.batch]) for i in range(0, len(feats), args.batch)]
    batches = [b for b in batches if len(b) == args.batch]  # one fixed shape for the TFLite models
    counts = np.full([args.batch], frames, np.int32)
    audio_s = len(batches) * args.batch * size / rate

    def convert(batch: int, name: str) -> bytes:
        """The body for ``batch`` clips of this length as a TFLite model (``name``: float32 / float16 weights)."""
        spec = [tf.TensorSpec([batch, frames, feats[0].shape[1]], tf.float32), tf.TensorSpec([batch], tf.int32)]
        fn = tf.function(lambda x, n: backbone._body_outputs(x, n)["embeddings"], input_signature=spec,
                         autograph=False)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], backbone.body)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if name == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        with native_stderr_silenced():
            return converter.convert()

    spec = [tf.TensorSpec([args.batch, frames, feats[0].shape[1]], tf.float32), tf.TensorSpec([args.batch], tf.int32)]
    body = tf.function(lambda x, n: backbone._body_outputs(x, n)["embeddings"], input_signature=spec, autograph=False)
    models = {name: convert(args.batch, name) for name in ("float32", "float16")}
    halves = {name: convert(args.batch // 2, name) for name in ("float32", "float16")}

    def tflite_runner(model: bytes, threads: int):
        it = tflite_interpreter(model_content=model, num_threads=threads)
        ins = sorted(it.get_input_details(), key=lambda d: len(d["shape"]), reverse=True)  # features, counts
        out = it.get_output_details()[0]["index"]

        def run(x):
            it.set_tensor(ins[0]["index"], np.ascontiguousarray(x))
            it.set_tensor(ins[1]["index"], counts[: len(x)])
            it.invoke()
            return it.get_tensor(out).copy()

        return run

    def pair(model: bytes):
        """Two 1-thread interpreters on two Python threads, each half of the batch (invoke releases the GIL)."""
        two = [tflite_runner(model, 1) for _ in range(2)]
        pool = ThreadPoolExecutor(2)

        def run(x):
            h = len(x) // 2
            return np.concatenate(list(pool.map(lambda a: a[0](a[1]), [(two[0], x[:h]), (two[1], x[h:])])))

        return run

    runners = {"TensorFlow float32 (today)": lambda x: np.asarray(body(x, counts))}
    for name, model in models.items():
        for threads in (1, 2):
            runners[f"TFLite {name}, {threads} thread{'s' if threads > 1 else ''}"] = tflite_runner(model, threads)
        runners[f"TFLite {name}, 2 interpreters x 1 thread"] = pair(halves[name])
    outputs = {n: [r(b) for b in batches] for n, r in runners.items()}  # warm-up
    load = os.getloadavg()
    seconds = dict.fromkeys(runners, 0.0)
    for _ in range(args.rounds):
        for n, r in runners.items():
            start = time.perf_counter()
            for b in batches:
                r(b)
            seconds[n] += time.perf_counter() - start
    # the whole cache road on the same clips (decode, resample, frontend, body, write), float32 as today
    subset = Manifest(manifest.frame[manifest.frame.path.isin(paths[: len(batches) * args.batch])].reset_index(drop=True),
                      labels=manifest.labels)
    extract = 0.0
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: the pipeline's traces
        EmbeddingCache(backbone, tmp, engine="float32").extract(subset, progress=False)
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            EmbeddingCache(backbone, tmp, engine="float32").extract(subset, progress=False)
            extract += time.perf_counter() - start
    ref = np.concatenate([o.reshape(-1, o.shape[-1]) for o in outputs["TensorFlow float32 (today)"]])
    base = seconds["TensorFlow float32 (today)"]
    rows = []
    for n in runners:
        emb = np.concatenate([o.reshape(-1, o.shape[-1]) for o in outputs[n]])
        cos = np.sum(emb * ref, 1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1) + 1e-12)
        rows.append(f"| {n} | {audio_s * args.rounds / seconds[n]:.0f} | {base / seconds[n]:.2f}× | {cos.min():.6f} |")
        print(rows[-1], flush=True)
    fastest = min(seconds, key=seconds.get)
    # Amdahl: extraction with the fastest body instead of TensorFlow's (everything else unchanged)
    bound = extract / (extract - base + seconds[fastest])
    summary = (f"Extraction through the cache (float32, the same {len(subset)} clips, after one untimed warm-up run, "
               f"{args.rounds} rounds): "
               f"{audio_s * args.rounds / extract:.0f} audio-s/s, of which TensorFlow's body is "
               f"{100 * base / extract:.0f} % of the time; with the fastest body above ({fastest}) in its place, "
               f"extraction would run at most {bound:.2f}x today's: the rest (decoding, resampling to 32 kHz, "
               "the log-mel frontend, writing) bounds it, so no body engine alone reaches the 1.8x target for mn04.")
    print(summary, flush=True)
    write_section("Extraction engines: TFLite body (mn04)", "\n".join([
        f"EfficientAT mn04's body alone on the log-mels of {len(batches) * args.batch} esc50-subset clips of 5 s, in "
        f"batches of {args.batch} (one fixed shape), {args.rounds} rounds, the variants in turn in one process. "
        f"TFLite: {interpreter_backend()} with its default XNNPACK delegate; float16 = float16 weights "
        "de-quantized at load (float32 compute). audio-s/s = seconds of audio per second of wall time; "
        "cos min: the lowest cosine of a frame embedding with TensorFlow's. One run, "
        f"{machine()}, CPU flags: {engines.describe_cpu()}, TensorFlow {tf.__version__}; the 2 cores were shared "
        f"with another developer's jobs (load average {load[0]:.1f} at the start). Re-run: "
        "`python benchmarks/tflite_body.py`.",
        "",
        "| body | audio-s/s | vs TensorFlow float32 | cos min |",
        "|---|---|---|---|",
        *rows,
        "",
        summary,
    ]))


if __name__ == "__main__":
    main()
