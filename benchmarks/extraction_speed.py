"""Embedding extraction against commit 7d92a63 (when issue #23 was filed), in one run: is it >= 1.8x?

For each backbone, one worker process per variant: the code of ``--old`` (a throwaway ``git worktree``
of that commit, run with ``PYTHONPATH`` set to it) and this checkout with ``--engine auto`` and
``float32`` (and any ``--extra`` engines). Each worker loads the backbone once, then on the driver's
word runs ``EmbeddingCache(backbone, fresh folder).extract(clips, progress=False)`` of the same random
esc50-subset clips (5 s): the variants take turns, round by round, so the machine's load falls on them
alike. Round 1 pays the start-up (tracing, TFLite models loaded or converted); "steady" is the mean
of the later rounds; "first" is the time from the worker's start (imports, backbone) to the end of
round 1. audio-s/s = seconds of audio per second of wall time.

Gate: after the timed rounds each worker reads its embeddings back (untimed) and the driver compares
every frame's embedding with this checkout's float32 ones (cosine min / 1st percentile / mean; gate
0.999 on every frame). An engine that fails it (bfloat16) needs the CV alternative: downstream 5-fold
CV accuracy within 0.5 point (``benchmarks/engines.py --cv``, BENCHMARKS.md "Extraction engines:
downstream accuracy").

Run: .venv/bin/python benchmarks/extraction_speed.py   (writes "Extraction speed against 7d92a63"; with
``--clips N`` other than 128, "Extraction speed against 7d92a63: N clips", so both runs are kept)
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import ROOT, machine, shared_dir, write_section

TITLE = "Extraction speed against 7d92a63"
LABELS = {"yamnet": "YAMNet", "efficientat:mn04_as": "EfficientAT mn04"}


# ---- worker (runs in its own process, with the code under test on PYTHONPATH) ----------------------
def worker(spec: str, engine: str, clips_file: str) -> None:
    start = time.perf_counter()
    # _common put this checkout first on sys.path: the code under test is the one on PYTHONPATH
    sys.path[:] = [p for p in sys.path if pathlib.Path(p or ".").resolve() != ROOT]
    sys.path[:0] = os.environ["PYTHONPATH"].split(os.pathsep)
    import tfaudio
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest

    info = json.loads(pathlib.Path(clips_file).read_text())
    full = Manifest.from_source(info["data"])
    manifest = Manifest(full.frame.iloc[info["rows"]].reset_index(drop=True), labels=full.labels)
    backbone = get_backbone(spec)
    kwargs = {} if engine == "old" else {"engine": engine}
    print(json.dumps({"ready": time.perf_counter() - start, "code": tfaudio.__file__}), flush=True)
    root = pathlib.Path(tempfile.mkdtemp(prefix="tfaudio-speed-"))  # one cache folder per worker
    try:
        for line in sys.stdin:
            command = json.loads(line)
            cache = EmbeddingCache(backbone, root, **kwargs)
            shutil.rmtree(cache.directory, ignore_errors=True)  # no embeddings left from the last round
            t0, c0 = time.perf_counter(), time.process_time()
            cache.extract(manifest, progress=False)
            out = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                   "since_start": time.perf_counter() - start,
                   "engine": getattr(getattr(cache, "engine", None), "name", "float32 (7d92a63)")}
            if command.get("save"):
                clips = cache.load(manifest, progress=False)
                np.savez(command["save"], *[np.asarray(e, np.float32) for e in clips.embeddings])
            print(json.dumps(out), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- driver -------------------------------------------------------------------------------------------
class Worker:
    def __init__(self, name: str, spec: str, engine: str, code: pathlib.Path, clips_file: str):
        env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "3"}
        self.name = name
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", spec, engine, clips_file], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, cwd=str(code))
        ready = self._read()
        if not pathlib.Path(ready["code"]).resolve().is_relative_to(code.resolve()):
            raise SystemExit(f"worker {name} imported tfaudio from {ready['code']}, not from {code}")

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"worker {self.name} died (run it alone to see why)")
            if line.startswith("{"):
                return json.loads(line)

    def round(self, save: str | None = None) -> dict:
        self.proc.stdin.write(json.dumps({"save": save}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def old_checkout(commit: str) -> tuple[pathlib.Path, bool]:
    """A worktree of ``commit`` (made here, and removed at the end, unless it is there already), beside this
    checkout so that its ``../shared`` (the weights and data) is this checkout's."""
    path = ROOT.parent / f".wt-{commit}"
    if (path / "tfaudio").is_dir():
        return path, False
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit], check=True,
                   capture_output=True)
    return path, True


def cosines(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    out = []
    for x, y in zip(a, b, strict=True):
        if x.shape != y.shape:
            raise SystemExit(f"frame counts differ: {x.shape} vs {y.shape}")
        out.append(np.sum(x * y, -1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1) + 1e-30))
    return np.concatenate(out)


def load_npz(path: str) -> list[np.ndarray]:
    with np.load(path) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per variant (the first is start-up)")
    parser.add_argument("--old", default="7d92a63", help="the commit to compare with")
    parser.add_argument("--backbones", default="yamnet,efficientat:mn04_as")
    parser.add_argument("--extra", default="yamnet=tflite",
                        help="more variants of this checkout, as backbone=engine,... (default: YAMNet's TFLite body, "
                             "what auto runs where bfloat16 is not native)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    sys.path.insert(0, str(ROOT))
    from tfaudio.backbones.engines import describe_cpu
    from tfaudio.data.manifest import Manifest

    data = shared_dir() / "data" / "esc50-subset"
    rows = np.random.default_rng(0).permutation(len(Manifest.from_source(data)))[: args.clips]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="tfaudio-speed-"))
    clips_file = tmp / "clips.json"
    clips_file.write_text(json.dumps({"data": str(data), "rows": [int(r) for r in rows]}))
    old, made = old_checkout(args.old)
    load_start = os.getloadavg()
    lines, results, drift = [], {}, {}
    try:
        for spec in args.backbones.split(","):
            variants = [("old", old), ("auto", ROOT), ("float32", ROOT)]
            variants += [(e.split("=", 1)[1], ROOT) for e in args.extra.split(",") if e.split("=", 1)[0] == spec]
            workers = {name: Worker(f"{spec} {name}", spec, name, code, str(clips_file)) for name, code in variants}
            rounds = {name: [] for name in workers}
            for r in range(args.rounds):
                for name, w in workers.items():
                    save = str(tmp / f"{name}.npz") if r == args.rounds - 1 else None
                    rounds[name].append(w.round(save))
                    print(f"{spec} {name} round {r + 1}: {rounds[name][-1]['wall']:.2f} s", flush=True)
            for w in workers.values():
                w.close()
            audio_s = args.clips * 5.0
            ref = load_npz(str(tmp / "float32.npz"))
            old_emb = load_npz(str(tmp / "old.npz"))
            drift[spec] = (max(float(np.abs(a - b).max()) for a, b in zip(old_emb, ref)),
                           max(float(np.abs(b).max()) for b in ref))
            for name in workers:
                steady = rounds[name][1:] or rounds[name]
                wall = float(np.median([x["wall"] for x in steady]))  # the median: a round that met a burst of load elsewhere counts less
                cos = cosines(load_npz(str(tmp / f"{name}.npz")), ref)
                results[(spec, name)] = {
                    "engine": rounds[name][0]["engine"], "steady": audio_s / wall,
                    "cpu": float(np.median([x["cpu"] for x in steady])), "first": rounds[name][0]["since_start"],
                    "first_round": rounds[name][0]["wall"], "cos": (cos.min(), np.percentile(cos, 1), cos.mean()),
                }
    finally:
        if made:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    load_end = os.getloadavg()

    lines.append("| backbone | code | engine | steady audio-s/s | vs 7d92a63 | CPU s / round | first round (s from start) "
                 "| vs 7d92a63 | cos min | cos 1 % | cos mean | cosine gate |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for spec in args.backbones.split(","):
        base = results[(spec, "old")]
        for (s, name), r in results.items():
            if s != spec:
                continue
            code = f"`{args.old}`" if name == "old" else f"this branch, `--engine {name}`"
            gate = "yes" if r["cos"][0] >= 0.999 else "no"
            lines.append(
                f"| {LABELS.get(spec, spec)} | {code} | {r['engine']} | {r['steady']:.0f} | {r['steady'] / base['steady']:.2f}x "
                f"| {r['cpu']:.2f} | {r['first']:.1f} | {base['first'] / r['first']:.2f}x "
                f"| {r['cos'][0]:.5f} | {r['cos'][1]:.5f} | {r['cos'][2]:.5f} | {gate} |")
        auto = results[(spec, "auto")]
        ratio = auto["steady"] / base["steady"]
        twin = [n for (s, n), r in results.items() if s == spec and n not in ("auto", "old") and r["engine"] == auto["engine"]]
        same = "".join(f" The `--engine {n}` row runs the same code: its {results[(spec, n)]['steady'] / base['steady']:.2f}x "
                       "shows how far identical variants drift apart on these shared cores." for n in twin)
        verdicts.append(f"{LABELS.get(spec, spec)}: `--engine auto` ({auto['engine']}) steady state "
                        f"{ratio:.2f}x 7d92a63's: the 1.8x target is {'met' if ratio >= 1.8 else 'NOT met'} in this run."
                        + same + f" float32 embeddings of this branch against {args.old}'s: max |difference| "
                        f"{drift[spec][0]:.1e} (largest |value| {drift[spec][1]:.1f}).")
    body = (
        f"`EmbeddingCache(backbone, fresh folder).extract(...)` of the same {args.clips} random esc50-subset clips "
        f"(5 s; 44.1 kHz FLAC but for the 16 kHz `cat` clips), code of `{args.old}` (a throwaway worktree) against "
        f"this branch; one worker process per variant, the variants taking turns over {args.rounds} rounds in one run. "
        f"Each worker keeps one cache folder and removes its embeddings before every round. "
        f"steady = median of rounds 2-{args.rounds} (start-up excluded); first round = seconds from the worker's start "
        "(imports, weights, tracing; for `tflite`, converting the body: once per cache folder, kept in "
        "`<cache>/engines`) to the end of round 1; "
        "CPU s = the worker's CPU seconds per steady round (median). Cosines: every frame's embedding against this branch's "
        "float32 ones (gate 0.999 on every frame; 7d92a63's row checks that float32 did not change). "
        f"One run, {machine()}, CPU flags: {describe_cpu()}; the 2 cores were shared with other developers' jobs "
        f"(load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end): wall-clock figures are "
        f"noisy, the turns spread the load over the variants alike. Re-run: `python benchmarks/extraction_speed.py"
        f"{'' if args.clips == 128 else f' --clips {args.clips}'} --rounds {args.rounds}`.\n\n"
        + "\n".join(lines) + "\n\n" + "\n".join(f"- {v}" for v in verdicts)
    )
    print(body)
    if not args.no_write:
        write_section(TITLE if args.clips == 128 else f"{TITLE}: {args.clips} clips", body)


if __name__ == "__main__":
    main()
