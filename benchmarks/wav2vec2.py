"""Wav2Vec2 embedding extraction: throughput and peak RSS, batched (with masks) vs. one clip at a time,
and whether the target (batched ≥ 2× one at a time) is within this CPU's reach at all.

The model is wav2vec2-base sized (``Wav2Vec2Config()`` defaults: 7-layer conv encoder with 512
channels, 12 transformer layers of width 768, ~94 M parameters) with random weights: speed and
memory do not depend on the weights, and nothing is downloaded. The audio is real speech from
``../shared/data/speech-commands-mini`` (1 s clips; 5 s clips are five of them joined), or seeded
noise + tones when that folder is absent.

The modes of one clip length run in one process on one model, taking turns (see :func:`child`); the
first batch / clip of each mode is a warm-up (tracing, XLA compilation) and is not timed.

Compute bound, in the same process:

- **MACs** (multiply-accumulates) per clip: :func:`tfaudio.inference.model_info.graph_macs` (TensorFlow's
  registered FLOP statistics / 2 of the conv and matmul ops, what ``tf.compat.v1.profiler`` sums) on
  the backbone's one-clip forward pass traced at the clip's static length (one trace per distinct
  length), checked (total, and conv encoder alone) against :func:`analytic_macs` from the ``Wav2Vec2Config`` (conv
  encoder, feature projection, grouped positional conv, per layer Q/K/V/out projections, QKᵀ and AV,
  FFN). Attention grows with the square of the frames, so the MACs per audio second differ between
  1 s and 5 s clips. Element-wise work (norms, GELU, softmax) is not counted. *Useful* MACs are those
  of the clips alone; *run* MACs are what a mode really computes, padding included (padded batches,
  XLA's length and batch buckets), from the analytic count.
- **Measured peak**: best float32 ``tf.matmul`` throughput of this machine (2048×2048 square, and the
  model's biggest layer, the FFN's ``[frames, 768] × [768, 3072]`` at one clip's and at a batch's
  frames), measured in the same process after each pass of the modes (so it meets the same load from
  other jobs; in the first round once, after all modes, to leave the peak RSS figures alone);
  GFLOP/s = 2 × MACs / s, of wall time and per CPU second of the process.
- Each mode's achieved GFLOP/s (2 × useful and run MACs / best wall time) and % of the peak. Since
  batched extraction must still do the useful MACs, it can beat one at a time by at most peak /
  (one-at-a-time GFLOP/s), less with padding: if that bound is below 2, the target cannot be met on
  this machine. The same bound per CPU second is shown as a check less exposed to other jobs' load.

Run:
    .venv/bin/python benchmarks/wav2vec2.py            # full: writes the "Wav2Vec2" section of BENCHMARKS.md
    .venv/bin/python benchmarks/wav2vec2.py --quick    # 8 × 1 s and 8 × 5 s clips, 1 round, prints only
    .venv/bin/python benchmarks/wav2vec2.py --sets 1:16,5:8 --rounds 2 --no-write
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import ROOT, machine, peak_rss_mb, write_section

RATE = 16000
BATCH = 8
# (clip seconds, clips): a few dozen clips each, a few minutes in all on 2 cores
SETS = ((1.0, 32), (5.0, 12))
QUICK_SETS = ((1.0, 8), (5.0, 8))
ROUNDS = 3
MODES = ("single", "batched", "batched-plain", "batched-xla")
LABELS = {"single": "one at a time", "batched": f"batched ×{BATCH}, masked (conv encoder per clip)",
          "batched-plain": f"batched ×{BATCH}, masked, conv encoder on the padded batch (before)",
          "batched-xla": f"batched ×{BATCH}, masked, `jit_compile=True`"}
TARGET = 2.0
SQUARE = 2048  # the square matmul of the peak measurement
PEAK_SECONDS = 0.2  # each matmul timing runs this long at least; best of PEAK_REPEATS
PEAK_REPEATS = 3


def clips(seconds: float, count: int):
    """``count`` float32 clips of at most ``seconds`` (speech-commands clips are up to 1 s long)."""
    import numpy as np

    folder = ROOT.parent / "shared" / "data" / "speech-commands-mini"
    if folder.is_dir():
        from tfaudio.io.decode import load_audio

        paths = sorted(p for p in folder.glob("*/*.wav") if p.parent.name != "_silence_")
        per = int(round(seconds))
        out = []
        for i in range(count):
            parts = [load_audio(paths[(i * per + j) * 7 % len(paths)])[0] for j in range(per)]
            out.append(np.concatenate(parts).astype(np.float32)[: int(seconds * RATE)])
        return out, "speech-commands-mini (real speech)"
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        n = int(seconds * RATE * rng.uniform(0.8, 1.0))
        t = np.arange(n) / RATE
        out.append((0.3 * rng.uniform(-1, 1, n) + 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32))
    return out, "generated noise + tones"


def backbone():
    import tensorflow as tf
    from transformers import TFWav2Vec2Model, Wav2Vec2Config

    from tfaudio.backbones.wav2vec2.backbone import Wav2Vec2Backbone

    tf.keras.utils.set_random_seed(0)
    model = TFWav2Vec2Model(Wav2Vec2Config())
    model.build_in_name_scope()
    return Wav2Vec2Backbone(model, source="random wav2vec2-base")


# ---- MACs ----------------------------------------------------------------------------------------
def conv_encoder_macs(config, samples: int) -> int:
    """MACs of the conv feature encoder on one clip of ``samples`` samples (clips shorter than the
    receptive field are zero-padded to it, as ``Wav2Vec2Embedder.prepare`` does): per layer, output
    steps × output channels × kernel × input channels."""
    from tfaudio.backbones.wav2vec2.backbone import receptive_field

    n = max(int(samples), receptive_field(config.conv_kernel, config.conv_stride))
    total, channels_in = 0, 1
    for kernel, stride, channels in zip(config.conv_kernel, config.conv_stride, config.conv_dim, strict=True):
        n = (n - kernel) // stride + 1
        total += n * channels * kernel * channels_in
        channels_in = channels
    return total


def transformer_macs(config, frames: int) -> dict[str, int]:
    """MACs after the conv encoder for one clip of ``frames`` frames (padded frames cost the same), by part."""
    f, h, layers = int(frames), int(config.hidden_size), int(config.num_hidden_layers)
    kernel, groups = int(config.num_conv_pos_embeddings), int(config.num_conv_pos_embedding_groups)
    return {
        "feature projection": f * int(config.conv_dim[-1]) * h,
        # "same" zero padding of kernel // 2 each side (one step more than f for an even kernel, then cut)
        "positional conv": (f + 2 * (kernel // 2) - kernel + 1) * h * kernel * (h // groups),
        "attention Q/K/V/out": layers * 4 * f * h * h,
        "attention QKᵀ, AV": layers * 2 * f * f * h,  # all heads together: f × f × head_dim × heads, twice
        "FFN": layers * 2 * f * h * int(config.intermediate_size),
    }


def analytic_macs(config, samples: int) -> dict[str, int]:
    """MACs of one clip of ``samples`` samples, by part (see :func:`conv_encoder_macs`,
    :func:`transformer_macs`)."""
    from tfaudio.backbones.wav2vec2.backbone import conv_output_length, receptive_field

    n = max(int(samples), receptive_field(config.conv_kernel, config.conv_stride))
    frames = conv_output_length(n, config.conv_kernel, config.conv_stride)
    return {"conv encoder": conv_encoder_macs(config, samples), **transformer_macs(config, frames)}


def traced_macs(bb, samples: int) -> dict[str, int]:
    """:func:`graph_macs` of the backbone's one-clip forward pass (what ``frames`` runs) traced at a
    static length of ``samples``, and of its conv encoder alone: ``{"total", "conv encoder", "by_op"}``."""
    import tensorflow as tf

    from tfaudio.inference.model_info import graph_macs

    specs = (tf.TensorSpec([1, samples], tf.float32), tf.TensorSpec([1], tf.int32))
    whole = graph_macs(tf.function(bb._forward, autograph=False).get_concrete_function(*specs))

    def encoder(x, n):
        return bb.embedder._features(*bb.embedder.prepare(x, n), False)

    conv = graph_macs(tf.function(encoder, autograph=False).get_concrete_function(*specs))
    return {"total": sum(whole.values()), "conv encoder": sum(conv.values()), "by_op": whole}


def run_macs(bb, mode: str, groups) -> int:
    """MACs a mode really computes on ``groups`` of clips, padding included (analytic count)."""
    config = bb.config

    def whole(samples):
        return sum(analytic_macs(config, samples).values())

    total = 0
    for group in groups:
        lengths = [len(c) for c in group]
        width = max(lengths)
        if mode == "single":
            total += whole(width)
        elif mode == "batched":  # conv encoder on each clip's own samples, transformer on the padded batch
            total += sum(conv_encoder_macs(config, n) for n in lengths)
            total += len(group) * sum(transformer_macs(config, bb.num_frames(width)).values())
        elif mode == "batched-plain":
            total += len(group) * whole(width)
        elif mode == "batched-xla":  # Wav2Vec2Backbone._run's buckets: width in 0.5 s steps, 2^k clips
            step = bb.sampling_rate // 2
            padded_width = max(step, -(-width // step) * step)
            total += (1 << (len(group) - 1).bit_length()) * whole(padded_width)
        else:
            raise ValueError(mode)
    return total


# ---- peak matmul throughput ----------------------------------------------------------------------
def matmul_gflops(m: int, k: int, n: int) -> tuple[float, float]:
    """Best float32 ``tf.matmul`` rate of ``[m, k] × [k, n]``: (GFLOP/s of wall time, GFLOP per CPU
    second of the process, all threads), 2 × MACs per second; best of PEAK_REPEATS timings of at
    least PEAK_SECONDS each, after a warm-up call."""
    import tensorflow as tf

    a = tf.random.stateless_normal([m, k], seed=[1, 2])
    b = tf.random.stateless_normal([k, n], seed=[3, 4])
    start = time.perf_counter()
    tf.matmul(a, b).numpy()  # warm-up, and an estimate of one call's time
    calls = max(1, int(PEAK_SECONDS / max(time.perf_counter() - start, 1e-6)))
    wall = cpu = float("inf")
    for _ in range(PEAK_REPEATS):
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(calls):
            c = tf.matmul(a, b)
        c.numpy()  # CPU eager ops are synchronous; this only makes sure
        wall = min(wall, (time.perf_counter() - start) / calls)
        cpu = min(cpu, (time.process_time() - cpu_start) / calls)
    flops = 2.0 * m * k * n / 1e9
    return flops / wall, flops / max(cpu, 1e-9)


def peak_shapes(config, frames: int) -> dict[str, tuple[int, int, int]]:
    """The matmuls timed for the peak: a large square one, and the FFN's first layer (the model's
    biggest) at one clip's frames and at a batch's."""
    h, ffn = int(config.hidden_size), int(config.intermediate_size)
    return {f"{SQUARE}×{SQUARE} · {SQUARE}×{SQUARE}": (SQUARE, SQUARE, SQUARE),
            f"[{frames}, {h}] · [{h}, {ffn}] (FFN, one clip)": (frames, h, ffn),
            f"[{BATCH * frames}, {h}] · [{h}, {ffn}] (FFN, batch of {BATCH})": (BATCH * frames, h, ffn)}


# ---- one clip length, all modes ------------------------------------------------------------------
def child(seconds: float, count: int, rounds: int) -> None:
    """All modes in one process on one model, interleaved over ``rounds`` passes (best pass counts), so a
    change of load on the shared machine hits every mode alike. Modes first run in the order of
    MODES; the peak RSS after each mode's first pass is recorded (a later mode's figure is therefore
    at least an earlier one's). The matmul peak is measured after the first passes of all modes, then
    after every pass (so it meets the same load); the MACs are counted at the end (tracing would add to the RSS figures)."""
    import numpy as np
    import tensorflow as tf

    from tfaudio.backbones.wav2vec2.backbone import Wav2Vec2Backbone

    audio, source = clips(seconds, count)
    plain = backbone()
    xla = Wav2Vec2Backbone(plain.model, jit_compile=True)  # the same weights, extraction through XLA
    params = int(sum(np.prod(w.shape) for w in plain.model.weights))

    def batched(bb, plain_conv=False):
        def run(group):
            lengths = np.array([len(c) for c in group], np.int32)
            batch = np.zeros([len(group), lengths.max()], np.float32)
            for i, c in enumerate(group):
                batch[i, : len(c)] = c
            if plain_conv:  # the whole batch through the conv encoder at once (tfaudio before)
                _, mask = bb._batch_fn(tf.constant(batch), tf.constant(lengths))
            else:
                _, mask = bb.batch_frames(batch, lengths)
            return int(np.asarray(mask).sum())

        # clips sorted by length before batching, so a batch pads little (what a user should do)
        ordered = sorted(audio, key=len)
        return run, [ordered[i : i + BATCH] for i in range(0, len(ordered), BATCH)]

    def single(group):
        return int(plain.frames(group[0]).shape[0])

    runs = {"single": (single, [[c] for c in audio]), "batched": batched(plain),
            "batched-plain": batched(plain, plain_conv=True), "batched-xla": batched(xla)}

    def timed_pass(mode):
        run, groups = runs[mode]
        start, cpu = time.perf_counter(), time.process_time()
        frames = sum(run(group) for group in groups)
        return time.perf_counter() - start, time.process_time() - cpu, frames

    frames_per_clip = plain.num_frames(max(map(len, audio)))
    shapes = peak_shapes(plain.config, frames_per_clip)
    peaks: dict[str, list[float]] = {name: [] for name in shapes}  # GFLOP/s, one per measurement
    cpu_peaks: dict[str, list[float]] = {name: [] for name in shapes}  # GFLOP per CPU second

    def measure_peaks():  # right after every mode's pass, so that it meets the same load
        for name, shape in shapes.items():
            wall, cpu = matmul_gflops(*shape)
            peaks[name].append(wall)
            cpu_peaks[name].append(cpu)

    results = {}
    for mode in MODES:
        run, groups = runs[mode]
        start = time.perf_counter()
        run(groups[0])  # warm-up: tracing (and XLA compilation)
        warmup = time.perf_counter() - start
        wall, cpu, frames = timed_pass(mode)
        results[mode] = {"mode": mode, "warmup": warmup, "walls": [wall], "cpus": [cpu], "frames": frames,
                         "peak_rss_mb": peak_rss_mb()}
    measure_peaks()  # not between the first passes: its matrices could add to the next mode's peak RSS
    for _ in range(rounds - 1):
        for mode in MODES:
            wall, cpu, _ = timed_pass(mode)
            results[mode]["walls"].append(wall)
            results[mode]["cpus"].append(cpu)
            measure_peaks()

    # MACs: one trace per distinct clip length, checked against the analytic count
    by_length = {}
    for n in sorted({len(c) for c in audio}):
        traced = traced_macs(plain, n)
        analytic = analytic_macs(plain.config, n)
        by_length[n] = {"traced": traced, "analytic": analytic, "analytic_total": sum(analytic.values())}
    useful = sum(by_length[len(c)]["traced"]["total"] for c in audio)
    audio_seconds = sum(map(len, audio)) / RATE
    parts = {}
    for c in audio:
        for part, macs in by_length[len(c)]["analytic"].items():
            parts[part] = parts.get(part, 0) + macs
    mismatches = [
        {"samples": n, "traced": v["traced"]["total"], "analytic": v["analytic_total"],
         "traced_conv": v["traced"]["conv encoder"], "analytic_conv": v["analytic"]["conv encoder"]}
        for n, v in by_length.items()
        if v["traced"]["total"] != v["analytic_total"] or v["traced"]["conv encoder"] != v["analytic"]["conv encoder"]]
    lengths = sorted(by_length)
    print(json.dumps({
        "kind": "compute", "seconds": seconds, "clips": len(audio), "audio_seconds": audio_seconds,
        "frames_per_clip": frames_per_clip, "peaks": peaks, "cpu_peaks": cpu_peaks,
        "useful_macs": useful, "macs_per_audio_second": useful / audio_seconds,
        "parts_per_audio_second": {k: v / audio_seconds for k, v in parts.items()},
        "by_op_per_clip": by_length[lengths[-1]]["traced"]["by_op"], "longest": lengths[-1],
        "macs_per_longest_clip": by_length[lengths[-1]]["traced"]["total"],
        "distinct_lengths": len(lengths), "mismatches": mismatches,
    }))
    for mode, r in results.items():
        r.update(seconds=seconds, clips=len(audio), audio_seconds=audio_seconds,
                 wall=min(r["walls"]), cpu=min(r["cpus"]), params=params, source=source,
                 useful_macs=useful, run_macs=run_macs(plain, mode, runs[mode][1]))
        print(json.dumps(r))


# ---- the report ----------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", nargs=3, metavar=("SECONDS", "CLIPS", "ROUNDS"), help=argparse.SUPPRESS)
    ap.add_argument("--sets", help="clip sets as SECONDS:CLIPS,... (default "
                    + ",".join(f"{s:g}:{c}" for s, c in SETS) + ")")
    ap.add_argument("--rounds", type=int, help=f"passes per mode, best counts (default {ROUNDS})")
    ap.add_argument("--quick", action="store_true", help="a short check: "
                    + ",".join(f"{s:g}:{c}" for s, c in QUICK_SETS) + ", 1 round, --no-write")
    ap.add_argument("--no-write", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    args = ap.parse_args()
    if args.child:
        return child(float(args.child[0]), int(args.child[1]), int(args.child[2]))
    sets = QUICK_SETS if args.quick else SETS
    if args.sets:
        sets = tuple((float(s), int(c)) for s, c in (x.split(":") for x in args.sets.split(",")))
    rounds = args.rounds or (1 if args.quick else ROUNDS)
    write = not (args.no_write or args.quick)

    results, computes = [], []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TRANSFORMERS_VERBOSITY": "error"}
    for seconds, count in sets:
        out = subprocess.run([sys.executable, __file__, "--child", str(seconds), str(count), str(rounds)],
                             capture_output=True, text=True, cwd=ROOT, env=env)
        lines = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]
        modes = [r for r in lines if "mode" in r]
        compute = [r for r in lines if r.get("kind") == "compute"]
        if out.returncode or len(modes) != len(MODES) or len(compute) != 1:
            sys.exit(f"{seconds} s clips failed:\n{out.stderr[-3000:]}")
        c = compute[0]
        c["peak"] = max(max(v) for v in c["peaks"].values())
        c["cpu_peak"] = max(max(v) for v in c["cpu_peaks"].values())
        computes.append(c)
        print(f"{seconds:.0f} s clips: {c['macs_per_longest_clip'] / 1e9:.2f} G MACs per clip, "
              f"{c['macs_per_audio_second'] / 1e9:.2f} G MACs per audio second (graph_macs"
              f"{' = analytic count' if not c['mismatches'] else ' ≠ analytic count: ' + str(c['mismatches'])}); "
              "matmul GFLOP/s " + ", ".join(f"{k}: {'/'.join(f'{x:.0f}' for x in v)}" for k, v in c["peaks"].items())
              + f"; peak {c['peak']:.0f} GFLOP/s, {c['cpu_peak']:.0f} GFLOP per CPU second", flush=True)
        for r in modes:
            r["throughput"] = r["audio_seconds"] / r["wall"]
            r["gflops"] = 2 * r["useful_macs"] / r["wall"] / 1e9
            r["gflops_run"] = 2 * r["run_macs"] / r["wall"] / 1e9
            r["gflops_cpu"] = 2 * r["useful_macs"] / r["cpu"] / 1e9
            r["peak"], r["cpu_peak"] = c["peak"], c["cpu_peak"]
            results.append(r)
            print(f"{seconds:.0f} s clips {r['mode']:13s} {r['throughput']:6.2f} audio s / wall s (best of "
                  f"{', '.join(f'{w:.1f}' for w in r['walls'])} s for {r['audio_seconds']:.0f} s of audio; warm-up "
                  f"{r['warmup']:.1f} s), peak RSS {r['peak_rss_mb']:.0f} MB, {r['gflops']:.1f} GFLOP/s useful "
                  f"({r['gflops_run']:.1f} run) = {100 * r['gflops'] / c['peak']:.0f} % of the measured peak",
                  flush=True)
    rows = ["| clips | mode | audio s / wall s | wall time (best pass) | CPU time (best pass) | warm-up (trace, "
            "compile) | peak RSS | vs. one at a time: wall (each pass) | CPU time | MACs per pass: useful "
            "(run, with padding) | GFLOP/s: useful (run) | % of measured peak: useful (run) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for i in range(0, len(results), len(MODES)):
        single = results[i]
        for r in results[i : i + len(MODES)]:
            if r is single:
                speedup = cpu_ratio = ""
            else:
                passes = ", ".join(f"{a / b:.2f}" for a, b in zip(single["walls"], r["walls"], strict=True))
                speedup = f"**{r['throughput'] / single['throughput']:.2f}×** ({passes})"
                cpu_ratio = f"{single['cpu'] / r['cpu']:.2f}×"
            rows.append(f"| {r['clips']} × {r['seconds']:.0f} s | {LABELS[r['mode']]} | {r['throughput']:.2f} | "
                        f"{r['wall']:.1f} s | {r['cpu']:.1f} s | {r['warmup']:.1f} s | {r['peak_rss_mb']:.0f} MB | "
                        f"{speedup} | {cpu_ratio} | {r['useful_macs'] / 1e9:.0f} G ({r['run_macs'] / 1e9:.0f} G) | "
                        f"{r['gflops']:.1f} ({r['gflops_run']:.1f}) | {100 * r['gflops'] / r['peak']:.0f} % "
                        f"({100 * r['gflops_run'] / r['peak']:.0f} %) |")
    body = f"""Embedding extraction with `Wav2Vec2Backbone` (last layer, frames `[F, 768]`) of a wav2vec2-base
sized model with random weights (`Wav2Vec2Config()`: {results[0]['params'] / 1e6:.1f} M parameters, "group" norm),
float32 on CPU, on this machine ({machine()}). Audio: {results[0]['source']}; the 5 s clips are five
1 s clips joined. One at a time: `frames` per clip (a plain call per clip, as a user would write it).
Batched: `batch_frames` on batches of {BATCH} clips sorted by length and zero-padded to the longest, with
lengths (masked GroupNorm statistics and attention); "conv encoder per clip" is what `batch_frames` does
now (see below), "before" runs the padded batch through the conv encoder at once. The modes of
one clip length share a process and a model and take turns over {rounds} passes (the best pass counts;
the ratio of each pass, taken side by side, is in brackets), so load from other jobs on the machine
hits them alike. CPU time is the process's (all threads), a figure that other jobs' load moves less
than wall time. Peak RSS (TensorFlow and the model included) is the process's after each mode's first
pass, modes in table order. Tracing and XLA compilation are excluded (warm-up column). Written by
`benchmarks/wav2vec2.py`. Target: batched ≥ {TARGET:g}× one at a time.

Compute bound (same processes): MACs are multiply-accumulates of the convolutions and matrix products
(`tfaudio.inference.model_info.graph_macs`, i.e. TensorFlow's registered FLOP statistics / 2 as
`tf.compat.v1.profiler` sums them, on the one-clip forward pass traced at each distinct clip length,
checked against a count from the `Wav2Vec2Config` by hand: {check_text(computes)}); norms, GELU and softmax are not
counted. *Useful* MACs are the clips' own; *run* MACs add what a mode computes on padding (padded
batches; XLA's 0.5 s / power-of-two buckets). GFLOP/s = 2 × MACs / best wall time. The measured peak
is the best float32 `tf.matmul` rate reached in the same process, measured once after the first
round and after every pass of the later ones (square {SQUARE}×{SQUARE} matrices, and the model's biggest layer, the FFN's `[frames, 768] · [768, 3072]`,
at one clip's and at a batch's frames; best of {PEAK_REPEATS} timings of ≥ {PEAK_SECONDS} s each).
Batched extraction still has to do the useful MACs, so at best it runs them at the measured peak: it
can be at most peak / (one-at-a-time GFLOP/s) faster than one at a time. The same ratio per CPU second
(the matmul's best GFLOP per CPU second / one at a time's) bounds the CPU time batching can save, a
figure other jobs' load moves less. When other jobs took cores from one at a time (on a quiet machine
it keeps both busy), its wall-time rate is understated and the wall-time ratios and bound overstated;
the lines below then say so, and the verdict on wall time is left open.

{chr(10).join(rows)}

{compute_lines(results, computes)}

{verdict(results)}
"""
    if write:
        write_section("Wav2Vec2", body + NOTES)
        print("wrote the Wav2Vec2 section of BENCHMARKS.md")
    else:
        print("\n" + body)


def check_text(computes) -> str:
    bad = [m for c in computes for m in c["mismatches"]]
    if bad:
        return ("**NOT equal** at " + "; ".join(f"{m['samples']} samples: graph {m['traced']:,} vs. hand "
                                                f"{m['analytic']:,}" for m in bad))
    return "equal at every length, " + ", ".join(
        f"{c['macs_per_longest_clip']:,} MACs per {c['longest'] / RATE:g} s clip" for c in computes)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def bounds(single, batched) -> dict[str, float]:
    """How much faster than one at a time batched extraction could be at the measured peak.

    ``wall``: peak GFLOP/s / one-at-a-time GFLOP/s, times useful / run MACs of the batched mode (it
    must do the useful MACs plus its padding at no more than the peak). ``cpu``: the same per CPU
    second of the process (other jobs' load moves CPU time less than wall time): a bound on the CPU
    time batching can save. ``cores_used``: one at a time's CPU time / wall time. When one at a time
    got clearly less than all cores (``starved``, other jobs' load: on a quiet machine it keeps both
    cores busy), its wall rate is understated and ``wall`` overstated; ``cpu`` is then the figure."""
    padding = batched["useful_macs"] / batched["run_macs"]
    used = single["cpu"] / single["wall"]
    return {"wall": single["peak"] / single["gflops"] * padding,
            "cpu": single["cpu_peak"] / single["gflops_cpu"] * padding,
            "cores_used": used, "starved": used < 0.8 * cores()}


def above_peak(group) -> list[str]:
    """Modes that ran faster than the measured peak: the load changed between measurements, and the
    bound is not to be trusted."""
    return [r["mode"] for r in group if r["gflops_run"] > r["peak"] or 2 * r["run_macs"] / r["cpu"] / 1e9 > r["cpu_peak"]]


def compute_lines(results, computes) -> str:
    """Per clip length: MACs per audio second, the measured peak, and the bound on batching."""
    lines = []
    n = cores()
    for i, c in zip(range(0, len(results), len(MODES)), computes, strict=True):
        single, batched = results[i], results[i + MODES.index("batched")]
        name = f"{c['seconds']:.0f} s clips"
        parts = ", ".join(f"{k} {v / 1e9:.2f}" for k, v in c["parts_per_audio_second"].items())
        peaks = "; ".join(f"{k}: {max(v):.0f} ({min(v):.0f}-{max(v):.0f} over {len(v)})"
                          for k, v in c["peaks"].items())
        cpu_peaks = ", ".join(f"{max(v):.0f}" for v in c["cpu_peaks"].values())
        b = bounds(single, batched)
        padding = batched["run_macs"] != batched["useful_macs"]
        need = TARGET * single["gflops"]
        lines += [
            f"- {name}: **{c['macs_per_audio_second'] / 1e9:.2f} G MACs per audio second** ({parts} G), "
            f"{c['macs_per_longest_clip'] / 1e9:.2f} G per {c['longest'] / RATE:g} s clip.",
            f"- {name}, matmul GFLOP/s, best (range over the measurements after each pass): {peaks}; "
            f"**measured peak {c['peak']:.0f} GFLOP/s**. Per CPU second, best of the same shapes: {cpu_peaks}, "
            f"so {c['cpu_peak']:.0f} GFLOP per CPU second ({n} cores: {n * c['cpu_peak']:.0f} GFLOP/s if all work).",
            f"- {name}: one at a time already runs at **{single['gflops']:.1f} GFLOP/s = "
            f"{100 * single['gflops'] / c['peak']:.0f} % of the measured peak**; batched can be at most "
            f"peak / {single['gflops']:.1f} = **{c['peak'] / single['gflops']:.2f}× faster**"
            + (f" ({b['wall']:.2f}× with the padding it computes)" if padding else "")
            + f". {TARGET:g}× would need {need:.0f} GFLOP/s of useful work, {100 * need / c['peak']:.0f} % of the "
            f"measured peak (batched reached {batched['gflops']:.1f} GFLOP/s, "
            f"{100 * batched['gflops'] / c['peak']:.0f} %). Per CPU second: one at a time "
            f"{single['gflops_cpu']:.1f} GFLOP = {100 * single['gflops_cpu'] / c['cpu_peak']:.0f} % of the matmul's "
            f"{c['cpu_peak']:.0f}, so batched can take at most {b['cpu']:.2f}× less CPU time (it took "
            f"{single['cpu'] / batched['cpu']:.2f}× less); one at a time used {b['cores_used']:.1f} of {n} cores "
            "(CPU time / wall time).",
        ]
        if b["starved"]:
            lines.append(f"- {name}: **note**: one at a time got only {b['cores_used']:.1f} of {n} cores' worth of "
                         "CPU time per wall second in its best pass (other jobs' load; on a quiet machine it keeps "
                         "both cores busy), so its wall figures understate it and the wall-time ratios and bound "
                         "overstate what batching gives; only the CPU-time bound holds in this run.")
        flagged = above_peak(results[i : i + len(MODES)])
        if flagged:
            lines.append(f"- {name}: **warning**: {', '.join(flagged)} ran above the measured peak, so other "
                         "jobs' load changed between the measurements and the bound is not reliable; rerun on "
                         "a quieter machine.")
    return "\n".join(lines)


def verdict(results) -> str:
    """The target line (batched, conv encoder per clip, / one at a time, per clip length) and the bound."""
    parts, texts, verdicts = [], [], []
    for i in range(0, len(results), len(MODES)):
        single, batched = results[i], results[i + MODES.index("batched")]
        name = f"{single['seconds']:.0f} s clips"
        b = bounds(single, batched)
        parts.append(f"{batched['throughput'] / single['throughput']:.2f}× on {name}"
                     + (" (overstated: one at a time was short of cores)" if b["starved"] else ""))
        texts.append(f"{b['wall']:.2f}× on {name} (CPU time: {b['cpu']:.2f}×)")
        if above_peak(results[i : i + len(MODES)]):
            verdicts.append(f"inconclusive for {name} (load changed during the measurements)")
        elif b["starved"]:
            verdicts.append(
                f"{'not attainable' if b['cpu'] < TARGET else 'not excluded'} in CPU time for {name} "
                f"(at most {b['cpu']:.2f}× less), and open in wall time: one at a time was short of cores "
                f"(other jobs' load), rerun when the machine is quieter")
        elif b["wall"] < TARGET and b["cpu"] < TARGET:
            verdicts.append(f"**not physically attainable on this machine for {name}**, even if norms, GELU and "
                            "softmax took no time: one at a time already runs the model's convolutions and matrix "
                            "products too close to the best rate this CPU's matmul reaches")
        elif b["wall"] >= TARGET and b["cpu"] >= TARGET:
            verdicts.append(f"not excluded by the arithmetic for {name}: batched would have to run its MACs at "
                            f"{100 * TARGET / min(b['wall'], b['cpu']):.0f} % of the measured peak or more, norms, "
                            "GELU and softmax included")
        else:
            verdicts.append(f"borderline for {name} (the wall-time and CPU-time bounds fall on either side of "
                            f"{TARGET:g}×)")
    met = [f"{results[i]['seconds']:.0f} s" for i in range(0, len(results), len(MODES))
           if results[i + MODES.index("batched")]["throughput"] >= TARGET * results[i]["throughput"]]
    status = ("met" if len(met) == len(parts) else "not met" if not met else
              f"met on {', '.join(met)} clips only")
    return (f"- target batched ≥ {TARGET:g}× one at a time: **{status}** ({', '.join(parts)})\n"
            f"- the most batching could give at the measured peak: {', '.join(texts)}. {TARGET:g}× is "
            + "; ".join(verdicts) + ".")


NOTES = """
What was changed for batched extraction, and why (component figures measured while making the changes,
CPU time per clip, wav2vec2-base, on this machine while other jobs ran):

- `batch_frames` runs the conv encoder clip by clip on each clip's own samples (a `tf.while_loop`,
  two clips in flight) and only the transformer on the padded batch. A batch's conv activations (512
  channels × 3,200 steps per second of audio: 52 MB for 8 clips of 1 s) leave the CPU caches and the
  element-wise steps (GroupNorm, GELU) become memory-bound; one clip's stay closer. Conv encoder of
  8 clips: 100 → 80 ms per 1 s clip, 680 → 540 ms per 5 s clip, and no conv work on padding.
  Rows "conv encoder per clip" vs "before" above.
- The positional convolution (kernel 128, 16 groups) no longer goes through Keras' XLA-compiled
  grouped convolution, which XLA compiled once per input shape (every new clip length paid a
  compilation) and ran slowly: 23 ms per 1 s clip alone, 13 ms in a batch of 8; one plain
  convolution per group: 9.5 and 7 ms. This saves one clip at a time more than batches (13.5 vs
  6 ms per 1 s clip, so it lowers the ratio a little; the baseline above includes it), and it removes
  the per-length compilations.
- Batches are made of clips sorted by length, so they pad little.
- XLA (`jit_compile=True`) over the whole batch: no consistent gain on this CPU, and a compilation
  per bucket (warm-up column).

Why batching gives little on this CPU (figures in the bound lines above): nearly all of the model's
work is matrix products and convolutions, and one clip at a time already runs them at a large fraction
of the best rate TensorFlow's own matmul reaches on this machine, with both cores busy (CPU time ≈ 1.9 ×
wall time on a quiet machine), so there is neither an idle core nor much arithmetic headroom for batching to use. A 1 s
clip gives 49-row matrix products, less efficient than a batch's 392 rows (compare the FFN-shaped
matmul timings), which is where the gain on 1 s clips comes from; a 5 s clip gives 249 rows, already
about as efficient as a batch, and its attention (quadratic in frames) makes up more of the work. On a
GPU, where one clip leaves most of the device idle, batching is where the throughput comes from.
"""


if __name__ == "__main__":
    main()
