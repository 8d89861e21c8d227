"""Peak memory of embedding extraction as the data set grows: streaming 10× more clips must not need
10× more RAM. Each size runs in its own process with a fresh cache; the clips are the ESC-50 subset
repeated under different names (the cache keys by content, so the copies are made distinct by a tiny
per-copy gain change).

Run: .venv/bin/python benchmarks/cache.py   (writes the "Embedding cache" section of BENCHMARKS.md)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from _common import ROOT, machine, peak_rss_mb, shared_dir, write_section

SIZES = (44, 440)


def child(n: int, workdir: str) -> None:
    import numpy as np
    import pandas as pd
    import soundfile as sf

    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest

    src = Manifest.from_source(shared_dir() / "data" / "esc50-subset")
    rows = []
    for i in range(n):  # distinct 16 kHz WAV copies: same cost per clip, distinct content keys
        row = src.frame.iloc[i % len(src)]
        audio, rate = sf.read(row.path, dtype="float32")
        path = os.path.join(workdir, f"clip{i:05d}.wav")
        sf.write(path, audio * (1 - 1e-4 * (i // len(src))), rate)
        rows.append({"path": path, "label": row.label})
    manifest = Manifest(pd.DataFrame(rows))
    backbone = get_backbone("yamnet")
    before = peak_rss_mb()
    t = time.perf_counter()
    root = os.path.join(workdir, "cache")
    cache = EmbeddingCache(backbone, root, shard_size=128)
    report = cache.extract(manifest, progress=False)
    wall = time.perf_counter() - t
    assert report.extracted == n, report
    peak = peak_rss_mb()
    files = len(os.listdir(cache.directory))
    reads = []
    for _ in range(3):  # a fresh cache object each time: scan the shard indexes, then read the records
        t = time.perf_counter()
        clips = EmbeddingCache(backbone, root, shard_size=128).load(manifest, extract=False, progress=False)
        reads.append(time.perf_counter() - t)
        assert len(clips) == n
    print(json.dumps({"clips": n, "peak_rss_mb": peak, "rss_before_mb": before, "wall": wall,
                      "audio_s": float(np.sum([5.0] * n)), "load": min(reads), "files": files}))


def main() -> None:
    if len(sys.argv) > 2:
        return child(int(sys.argv[1]), sys.argv[2])
    results = []
    for n in SIZES:
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run([sys.executable, __file__, str(n), d], capture_output=True, text=True, cwd=ROOT,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode or not line:
            sys.exit(f"{n} clips failed:\n{out.stderr[-3000:]}")
        r = json.loads(line[-1])
        results.append(r)
        print(f"{n:5d} clips: peak RSS {r['peak_rss_mb']:.0f} MB (before extraction {r['rss_before_mb']:.0f} MB), "
              f"{r['wall']:.1f} s, {r['audio_s'] / r['wall']:.0f} audio s / wall s")
    small, large = results
    growth = (large["peak_rss_mb"] - small["peak_rss_mb"]) / small["peak_rss_mb"]
    rows = "\n".join(f"| {r['clips']} | {r['audio_s']:.0f} s | {r['peak_rss_mb']:.0f} MB | {r['rss_before_mb']:.0f} MB "
                     f"| {r['wall']:.1f} s |" for r in results)
    body = f"""Peak RSS of YAMNet embedding extraction into the cache, {SIZES[0]} vs {SIZES[1]} clips of 5 s
(each size in a fresh process and a fresh cache), on this machine ({machine()}). Written by
`benchmarks/cache.py`.

| clips | audio | peak RSS | RSS before extraction | wall time |
|---|---|---|---|---|
{rows}

10× more clips: peak RSS {growth * 100:+.0f} % ({'bounded' if growth < 0.5 else 'NOT bounded'}). Extraction streams
batches through the backbone and appends records to the current shard file; nothing grows with the
number of clips except the list of content keys.
"""
    write_section("Embedding cache", body)


if __name__ == "__main__":
    main()
