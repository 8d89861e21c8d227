"""Start-up of `tfaudio predict` on a saved YAMNet classifier and three short files: where the time
goes in a fresh process (import TensorFlow, import tfaudio, load the model, decode the files, the first
scoring call with its trace, a second call), and the whole command beside `tfaudio tag` on the same
files. With ``--baseline DIR`` the same phases are measured for the tfaudio in DIR (e.g.
``git archive <commit> | tar -x -C DIR``), interleaved with the current code so both see the same load.

Run: .venv/bin/python benchmarks/startup.py [--rounds 3] [--baseline DIR]   (writes the "Start-up"
section of BENCHMARKS.md)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import ROOT, machine, shared_dir, write_section

PHASES = ("import tensorflow", "import tfaudio", "load model", "decode 3 files", "first scores (trace)",
          "second scores")

CHILD = r"""
import json, sys, time
code = sys.argv[1]
sys.path.insert(0, code)
t = [time.perf_counter()]
import tensorflow as tf
t.append(time.perf_counter())
import os
if os.path.exists(os.path.join(code, "tfaudio", "inference", "loader.py")):
    from tfaudio.inference.loader import load_model
else:  # a checkout from before the inference layer
    from tfaudio.export.loader import load_model
t.append(time.perf_counter())
model = load_model(sys.argv[2])
t.append(time.perf_counter())
converted = model.converter().convert_many(sys.argv[3:])
t.append(time.perf_counter())
model.scorer.scores(converted.waves)
t.append(time.perf_counter())
model.scorer.scores(converted.waves)
t.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(t, t[1:])]))
"""


def build_model(folder: str, files: list[str]) -> None:
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    m = Manifest.from_source(shared_dir() / "data" / "esc50-subset").select(["dog", "cat"])
    m = m.filter_folds([1, 2])
    backbone = get_backbone("yamnet")
    clf = AudioClassifier(backbone, labels=m.labels, cache=EmbeddingCache(backbone, os.path.join(folder, "cache")))
    clf.fit(m, config=TrainConfig(epochs=5)).save(os.path.join(folder, "model"))
    import soundfile as sf

    for i, path in enumerate(m.paths[:3]):  # WAV, the format most users start from (FLAC would do too)
        audio, rate = sf.read(path, dtype="int16")
        files.append(os.path.join(folder, f"clip{i}.wav"))
        sf.write(files[-1], audio[: 2 * rate], rate)  # short clips: start-up, not throughput


def phases(code: str, model: str, files: list[str]) -> list[float]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": code, "TFAUDIO_SHARED": str(shared_dir())}
    out = subprocess.run([sys.executable, "-c", CHILD, code, model, *files], capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(f"{code}: the child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def command(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "tfaudio"), *args], capture_output=True, check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--baseline", help="folder with another tfaudio checkout to measure beside this one")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files: list[str] = []
        build_model(tmp, files)
        model = os.path.join(tmp, "model")
        codes = {"this commit": str(ROOT)} | ({"baseline": args.baseline} if args.baseline else {})
        runs = {name: [] for name in codes}
        whole = {"tfaudio predict": [], "tfaudio tag": []}
        for _ in range(args.rounds):
            for name, code in codes.items():
                runs[name].append(phases(code, model, files))
            whole["tfaudio predict"].append(command(["predict", model, *files]))
            whole["tfaudio tag"].append(command(["tag", *files]))
    load = os.getloadavg()[0]
    rows = ["| phase | " + " | ".join(f"{n} (s)" for n in codes) + " |", "|---|" + "---|" * len(codes)]
    for i, phase in enumerate(PHASES):
        rows.append(f"| {phase} | " + " | ".join(f"{statistics.median(r[i] for r in runs[n]):.2f}" for n in codes) + " |")
    rows.append("| **total** | " + " | ".join(f"**{statistics.median(sum(r) for r in runs[n]):.2f}**" for n in codes) + " |")
    body = "\n".join([
        f"Fresh processes, medians of {args.rounds} rounds ({machine()}; load average {load:.1f} at the end: "
        "other jobs shared the CPU, so compare columns, measured interleaved, rather than absolute times). "
        "A YAMNet classifier (dog/cat, ESC-50 folds 1-2) and three 2 s 16-bit WAV clips. `benchmarks/startup.py`.",
        "", *rows, "",
        f"Whole commands on the same files (this commit): `tfaudio predict` "
        f"{statistics.median(whole['tfaudio predict']):.1f} s, `tfaudio tag` {statistics.median(whole['tfaudio tag']):.1f} s.",
    ])
    print(body)
    write_section("Start-up", body)


if __name__ == "__main__":
    main()
