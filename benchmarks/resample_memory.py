"""Peak memory and speed of ``tfaudio.signal.resample`` on long inputs (issue #16): new vs old.

    new   the current resampler: a tf.while_loop over fixed-size chunks, each frames (slices and
          reshapes of the chunk) times matmuls (``tfaudio/signal/resample.py``).
    old   the resampler before #16, kept here (``_old_resample``) only for this comparison: one strided
          Conv2D per phase group over the whole padded input. With oneDNN on an AVX-512 machine that
          conv asked for a 28 GB buffer for 60 s at 44.1 kHz.

Every (implementation, input) case runs in a fresh process: import TensorFlow, warm up on 1 s of the
same rate (tracing, thread pools), make the input (a float32 tensor), then measure one call:

    peak  VmHWM after the call minus VmRSS just before it (the peak is reset with /proc/self/clear_refs),
          so the input itself is in the baseline and the figure is what resampling adds: the output
          plus every temporary. Target: <= 1.5x the input's own size (float32 bytes).
    speed audio seconds per wall second of the call (best of the repeats), and per CPU second of the
          process (the machine is shared: CPU time moves less with other jobs than wall time).

The process's address space is capped (RLIMIT_AS) a few GB over its size before the call, so a
runaway allocation fails that case instead of swapping the shared machine.

Run:   .venv/bin/python benchmarks/resample_memory.py            (writes "Resampling memory" in BENCHMARKS.md)
Short: .venv/bin/python benchmarks/resample_memory.py --durations 60 --rates 44100 --targets 16000 --no-write
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from _common import ROOT, machine, write_section

DURATIONS = (1, 60, 600)  # seconds of input
RATES = (44100, 48000, 88200, 96000)
TARGETS = (16000, 32000, 8000)
TARGET_RATIO = 1.5  # peak over baseline / input bytes
HEADROOM_GB = 4  # address space allowed over the process size before the measured call


def _status() -> dict[str, int]:
    """VmRSS, VmHWM and VmSize of this process, in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmSize"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _old_resample(waveform, orig_rate: int, new_rate: int):
    """The resampler as it was before issue #16 (same kernel, one Conv2D per phase group), for comparison."""
    import numpy as np
    import tensorflow as tf

    from tfaudio.signal.resample import _output_length, _polyphase_kernel

    x = tf.convert_to_tensor(waveform, tf.float32)
    kernel = _polyphase_kernel(orig_rate, new_rate)
    up, down, width = kernel.up, kernel.down, kernel.width
    groups = []  # (first tap, weights) per group of <= 64 consecutive phases, as the old _Kernel.groups
    count = -(-up // 64)
    edges = np.linspace(0, up, count + 1).round().astype(int)
    for start, stop in zip(edges[:-1], edges[1:]):
        block = kernel.weights[:, start:stop]
        used = np.flatnonzero(np.abs(block).sum(axis=1))
        groups.append((int(used[0]), np.ascontiguousarray(block[used[0] : used[-1] + 1])))
    num_samples = tf.shape(x)[-1]
    num_out = _output_length(num_samples, up, down)
    num_blocks = (num_out + up - 1) // up
    padded = (tf.maximum(num_blocks, 1) - 1) * down + width
    right_pad = tf.maximum(padded - kernel.left_pad - num_samples, 0)
    leading = tf.shape(x)[:-1]
    batch = tf.reduce_prod(leading)
    flat = tf.pad(tf.reshape(x, [batch, num_samples]), [[0, 0], [kernel.left_pad, right_pad]])
    images = tf.expand_dims(tf.expand_dims(flat, 1), -1)  # [batch, 1, padded, 1]
    parts = []
    for first_tap, weights in groups:
        filters = tf.constant(weights[None, :, None, :])
        part = tf.nn.conv2d(images[:, :, first_tap:, :], filters, strides=[1, 1, down, 1], padding="VALID")
        parts.append(part[:, :, :num_blocks, :])
    blocks = parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)
    out = tf.reshape(blocks, [batch, num_blocks * up])[:, :num_out]
    return tf.reshape(out, tf.concat([leading, [num_out]], axis=0))


def child(impl: str, orig: int, new: int, seconds: float, repeats: int) -> None:
    """One case in this (fresh) process; prints a JSON line."""
    import gc

    import tensorflow as tf

    from tfaudio.signal.resample import resample

    # Traced for clips of any length, as tf.data, clip_resampler and exported models run it.
    step = resample if impl == "new" else _old_resample
    traced = tf.function(lambda x: step(x, orig, new), input_signature=[tf.TensorSpec([None], tf.float32)])
    fn = traced.get_concrete_function()
    fn(tf.zeros([orig]))  # warm-up: kernels, thread pools
    n = int(round(seconds * orig))
    x = tf.random.stateless_uniform([n], seed=[1, 2], minval=-0.5, maxval=0.5)
    gc.collect()
    before = _status()
    limit = before["VmSize"] + HEADROOM_GB * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    walls, cpus = [], []
    for i in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        y = fn(x)
        y.shape  # noqa: B018  (eager: computed on return)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        if i == 0:
            peak = _status()["VmHWM"] - before["VmRSS"]
            out_len = int(y.shape[0])
        del y
    print(json.dumps({"peak": peak, "input": 4 * n, "output": 4 * out_len, "wall": min(walls), "cpu": min(cpus),
                      "baseline": before["VmRSS"]}))


def run_case(impl: str, orig: int, new: int, seconds: float, env: dict) -> dict:
    repeats = 20 if seconds <= 1 else 5 if seconds <= 60 else 2
    cmd = [sys.executable, __file__, "--child", impl, str(orig), str(new), str(seconds), str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        import signal

        lines = [x for x in proc.stderr.strip().splitlines() if "factory" not in x and x.strip()]
        why = f"killed by {signal.Signals(-proc.returncode).name}" if proc.returncode < 0 else (lines or ["?"])[-1][:160]
        return {"error": f"exit {proc.returncode}: {why}"}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", default=",".join(map(str, DURATIONS)))
    parser.add_argument("--rates", default=",".join(map(str, RATES)))
    parser.add_argument("--targets", default=",".join(map(str, TARGETS)))
    parser.add_argument("--impls", default="old,new")
    parser.add_argument("--onednn", choices=("default", "on", "off"), default="default",
                        help="TF_ENABLE_ONEDNN_OPTS for the cases (default: TensorFlow's choice for this CPU)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--child", nargs=5, metavar=("IMPL", "ORIG", "NEW", "SECONDS", "REPEATS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, orig, new, seconds, repeats = args.child
        child(impl, int(orig), int(new), float(seconds), int(repeats))
        return

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT))
    if args.onednn != "default":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.onednn == "on" else "0"
    impls = args.impls.split(",")
    header = ("| input | rate → target | input MB | " + " | ".join(f"{i} peak MB (× input)" for i in impls)
              + " | " + " | ".join(f"{i} audio s / wall s (/ CPU s)" for i in impls)
              + (" | new / old wall |" if impls == ["old", "new"] else " |"))
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    print(header)
    worst = {}
    started, load = time.time(), os.getloadavg()
    for seconds in map(float, args.durations.split(",")):
        for orig in map(int, args.rates.split(",")):
            for new in map(int, args.targets.split(",")):
                res = {impl: run_case(impl, orig, new, seconds, env) for impl in impls}
                ok = [r for r in res.values() if "error" not in r]
                input_mb = ok[0]["input"] / 1e6 if ok else 4 * seconds * orig / 1e6
                peaks, speeds = [], []
                for impl in impls:
                    r = res[impl]
                    if "error" in r:
                        peaks.append(f"failed ({r['error']})")
                        speeds.append("-")
                        continue
                    ratio = r["peak"] / r["input"]
                    worst[(impl, seconds)] = max(worst.get((impl, seconds), 0.0), ratio)
                    peaks.append(f"{r['peak'] / 1e6:.1f} ({ratio:.2f})")
                    speeds.append(f"{seconds / r['wall']:,.0f} ({seconds / r['cpu']:,.0f})")
                rel = ""
                if impls == ["old", "new"]:
                    rel = (f" {res['old']['wall'] / res['new']['wall']:.2f}x |"
                           if all("error" not in r for r in res.values()) else " - |")
                row = (f"| {seconds:g} s | {orig} → {new} | {input_mb:.1f} | " + " | ".join(peaks) + " | "
                       + " | ".join(speeds) + " |" + rel)
                rows.append(row)
                print(row, flush=True)
    elapsed = time.time() - started
    summary = [f"- worst peak / input, {impl}, {s:g} s inputs: {v:.2f}" for (impl, s), v in sorted(worst.items())]
    print("\n".join(summary))
    onednn = {"default": "TensorFlow's default for this CPU", "on": "forced on", "off": "forced off"}[args.onednn]
    body = f"""`benchmarks/resample_memory.py` ({machine()}; oneDNN: {onednn}; {elapsed / 60:.0f} min). Issue #16:
the old resampler (one strided Conv2D per phase group over the whole padded input) made oneDNN ask
for 28 GB for 60 s at 44.1 kHz on an AVX-512 machine; the new one loops over fixed-size chunks
(slices + matmuls per chunk), so its temporaries stay a few MB whatever the length.

Each case runs in a fresh process. **Peak** = VmHWM after one call minus VmRSS just before it (input
already in memory, peak reset via /proc/self/clear_refs): what resampling adds, output included;
in brackets × the input's float32 size (target ≤ {TARGET_RATIO}). **Speed** = audio seconds per wall
second of one call, best of 20 / 5 / 2 repeats for 1 s / 60 s / 10 min, and per CPU second in
brackets. The machine is shared with other jobs (2 cores, load {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end): wall figures
are noisy, CPU figures less so; for 1 s inputs the peak is dominated by allocator noise (a few MB).

{chr(10).join(rows)}

{chr(10).join(summary)}
"""
    if not args.no_write:
        write_section("Resampling memory", body)
        print("wrote the 'Resampling memory' section of BENCHMARKS.md")


if __name__ == "__main__":
    main()
