"""Google's speech embedding backbone: parity with openWakeWord's TFLite files, extraction speed, and
keyword spotting accuracy beside YAMNet (cross-validated, speaker-grouped folds).

1. Parity: every clip of ../shared/data/speech-commands-mini (16 kHz) and fsdd-mini (8 kHz, resampled
   to 16 kHz with tfaudio.signal.resample.resample), tfaudio's port against the two TFLite files run
   through tfaudio.interpreter.tflite_interpreter and chained as openWakeWord chains them.
2. Extraction speed (speech-commands-mini): the embedding cache from files, cold (decode in tf.data,
   ``batch_frames`` on batches); the bare backbone on clips in memory; the two TFLite files per clip
   (openWakeWord's way); YAMNet's cache for reference. Modes alternate over rounds; the best round
   counts.
3. Keyword spotting beside YAMNet, speaker-grouped folds: speech-commands-mini 5 folds (assigned by
   tfaudio: stratified by word, grouped by speaker), fsdd-mini 3 folds (it has 3 speakers: leave one
   speaker out). ``cross_validate`` of tfaudio's default recipe, of the same with attention pooling and
   with mean/std pooling, and of the default head on the frames of one window flattened (measured here,
   not a tfaudio pooling); nested CV (``tfaudio.tasks.tuning.tune``) chooses among them per outer fold
   without looking at the outer test fold.

Usage:
    python benchmarks/speech_embedding.py [--rounds 2] [--skip-speed] [--skip-cv] [--no-write]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import resource
import tempfile
import time

import numpy as np
from _common import machine, peak_rss_mb, shared_dir, write_section

from tfaudio.data.embedding_cache import ClipEmbeddings, EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.heads.frame_pooling import pool_clips
from tfaudio.tasks.cross_validation import cross_validate
from tfaudio.tasks.recipe import get_recipe
from tfaudio.tasks.tuning import tune


# ---- data ----------------------------------------------------------------------------------------
def speech_commands(shared) -> Manifest:
    return Manifest.from_folder(shared / "data" / "speech-commands-mini").assign_folds(5, seed=0)


def fsdd(shared) -> Manifest:
    import pandas as pd

    files = sorted((shared / "data" / "fsdd-mini" / "recordings").glob("*.wav"))
    frame = pd.DataFrame({"path": [str(f) for f in files], "label": [f.name.split("_")[0] for f in files]})
    return Manifest.from_dataframe(frame).assign_folds(3, seed=0)  # groups: the file names' speakers


def speakers_mixed(manifest: Manifest) -> Manifest:
    """The same clips in 5 folds stratified by label but NOT grouped by speaker (every speaker in
    every fold): an optimistic sanity figure, not the benchmark."""
    return Manifest(manifest.frame.drop(columns=["fold"]), labels=manifest.labels).assign_folds(5, seed=0, group=None)


def load16k(path) -> np.ndarray:
    from tfaudio.io.decode import load_audio
    from tfaudio.signal.resample import resample

    audio, rate = load_audio(path)
    return np.asarray(resample(audio, rate, 16000)) if rate != 16000 else audio


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# ---- 1. parity -----------------------------------------------------------------------------------
def parity(backbone, folder, manifests) -> dict:
    from tfaudio.backbones.speech_embedding.frontend import speech_mel_spectrogram
    from tfaudio.interpreter import tflite_interpreter

    mel_it = tflite_interpreter(folder / "melspectrogram.tflite", allocate=False)
    emb_it = tflite_interpreter(folder / "embedding_model.tflite", allocate=False)

    def run(it, x):
        index = it.get_input_details()[0]["index"]
        it.resize_tensor_input(index, list(x.shape))
        it.allocate_tensors()
        it.set_tensor(index, x)
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])

    out = {}
    for name, manifest in manifests.items():
        mel_err, emb_err, emb_abs, mel_range, clips, frames = 0.0, 0.0, [], [np.inf, -np.inf], 0, 0
        for path in manifest.paths:
            audio = load16k(path)
            count = backbone.num_frames(len(audio))
            padded = np.zeros(12512 + (count - 1) * 1280, np.float32)
            padded[: len(audio)] = audio
            ref_mel = run(mel_it, (padded * 32768.0)[None])[0, 0]  # int16 scale, as openWakeWord feeds it
            mel = speech_mel_spectrogram(padded).numpy()
            mel_err = max(mel_err, float(np.abs(mel - ref_mel).max()))
            mel_range = [min(mel_range[0], float(ref_mel.min())), max(mel_range[1], float(ref_mel.max()))]
            scaled = ref_mel / 10 + 2
            windows = np.stack([scaled[i : i + 76] for i in range(0, scaled.shape[0] - 75, 8)])[..., None]
            ref = run(emb_it, windows.astype(np.float32))[:, 0, 0]
            ours = backbone.frames(audio).numpy()
            assert ours.shape == ref.shape, (path, ours.shape, ref.shape)
            emb_err = max(emb_err, float(np.abs(ours - ref).max()))
            emb_abs.append(float(np.abs(ref).max()))
            clips += 1
            frames += len(ref)
        out[name] = {"clips": clips, "frames": frames, "mel": mel_err, "mel_range": mel_range, "embedding": emb_err,
                     "embedding_max_abs": max(emb_abs)}
        print(f"parity {name}: {clips} clips, {frames} embeddings, mel max|Δ| {mel_err:.2e} dB, "
              f"embedding max|Δ| {emb_err:.2e} (values up to {max(emb_abs):.1f})")
    return out


# ---- 2. extraction speed -------------------------------------------------------------------------
def speed(backbone, yamnet, folder, manifest, rounds: int) -> dict:
    import tensorflow as tf

    from tfaudio.interpreter import tflite_interpreter

    audio_s = 0.0
    waves = []
    for path in manifest.paths:
        w = load16k(path)
        waves.append(w)
        audio_s += len(w) / 16000

    def cache_run(bb):
        with tempfile.TemporaryDirectory() as tmp:
            cache = EmbeddingCache(bb, pathlib.Path(tmp))
            cache.extract(manifest, progress=False)

    def bare():
        for start in range(0, len(waves), 16):
            chunk = waves[start : start + 16]
            lengths = np.array([len(w) for w in chunk], np.int32)
            batch = np.zeros([len(chunk), lengths.max()], np.float32)
            for i, w in enumerate(chunk):
                batch[i, : len(w)] = w
            np.asarray(backbone.batch_frames(tf.constant(batch), tf.constant(lengths))[0])

    mel_it = tflite_interpreter(folder / "melspectrogram.tflite", allocate=False)
    emb_it = tflite_interpreter(folder / "embedding_model.tflite", allocate=False)

    def tflite_chain():
        for w in waves:
            count = backbone.num_frames(len(w))
            padded = np.zeros([1, 12512 + (count - 1) * 1280], np.float32)
            padded[0, : len(w)] = w * 32768.0
            mel_it.resize_tensor_input(0, list(padded.shape))
            mel_it.allocate_tensors()
            mel_it.set_tensor(mel_it.get_input_details()[0]["index"], padded)
            mel_it.invoke()
            mel = mel_it.get_tensor(mel_it.get_output_details()[0]["index"])[0, 0] / 10 + 2
            windows = np.stack([mel[i : i + 76] for i in range(0, mel.shape[0] - 75, 8)])[..., None]
            emb_it.resize_tensor_input(0, list(windows.shape))
            emb_it.allocate_tensors()
            emb_it.set_tensor(emb_it.get_input_details()[0]["index"], windows.astype(np.float32))
            emb_it.invoke()
            emb_it.get_tensor(emb_it.get_output_details()[0]["index"])

    modes = {
        "embedding cache from files (decode in tf.data, `batch_frames` on batches of 16)": lambda: cache_run(backbone),
        "bare `batch_frames`, clips in memory, batches of 16": bare,
        "openWakeWord's two TFLite files per clip, clips in memory": tflite_chain,
        "YAMNet: cache from files (its default path)": lambda: cache_run(yamnet),
    }
    for fn in modes.values():  # warm-up: traces, first-call allocations
        fn()
    load = [os.getloadavg()[0]]
    best = {k: (np.inf, np.inf) for k in modes}
    for r in range(rounds):
        for name, fn in modes.items():
            t, c = time.perf_counter(), cpu_seconds()
            fn()
            wall, cpu = time.perf_counter() - t, cpu_seconds() - c
            if wall < best[name][0]:
                best[name] = (wall, cpu)
            print(f"round {r + 1} {name}: {wall:.2f} s wall, {cpu:.2f} s CPU, {audio_s / wall:.0f} audio-s/s")
    load.append(os.getloadavg()[0])
    return {"audio_s": audio_s, "clips": len(waves), "best": best, "load": load}


# ---- 3. keyword spotting -------------------------------------------------------------------------
def kws_grid() -> list:
    """The recipes compared: the default recipe and its attention and mean/std poolings (``tfaudio tune``'s
    candidates that change how a clip's frames are pooled)."""
    d = get_recipe("default")
    return [d, d.replace(name="default, attention pooling", head={"pooling": "attention"}),
            d.replace(name="default, mean/std pooling", head={"pooling": "stats"})]


FLATTEN = "default on frames flattened over the window"


class _FlatBackbone:
    """A backbone seen through :class:`FlattenedCache`: the same, with one ``k * D`` embedding per clip."""

    def __init__(self, backbone, dim: int):
        self._backbone = backbone
        self.contract = dataclasses.replace(backbone.contract, embedding_dim=dim)

    def __getattr__(self, name):
        return getattr(self._backbone, name)


class FlattenedCache:
    """The embedding cache seen through ``frame_pooling.pool_clips(..., "flatten", k)``: each clip is one
    "frame", its first ``k`` frames (one window) side by side (zeros past its end). Not a tfaudio
    pooling: measured here to decide whether it should become one. The frames are extracted once, by
    the wrapped cache; the silence gate has nothing to gate (one frame per clip)."""

    def __init__(self, cache: EmbeddingCache, k: int):
        self.cache, self.k = cache, k
        self.backbone = _FlatBackbone(cache.backbone, k * cache.backbone.contract.embedding_dim)

    def extract(self, manifest, **kwargs):
        return self.cache.extract(manifest, **kwargs)

    def load(self, manifest, **kwargs) -> ClipEmbeddings:
        clips = self.cache.load(manifest, **kwargs)
        flat = pool_clips(clips.embeddings, "flatten", self.k)
        return ClipEmbeddings([f[None] for f in flat], clips.targets, clips.rows, clips.folds, None)


def kws(manifest: Manifest, backbone, cache_root: pathlib.Path) -> dict:
    """Plain CV of each recipe (the test figures), then nested CV (``tune``) to choose between them
    without looking at a test fold: the recipes of :func:`kws_grid` in one ``tune`` run, the flattened
    frames in another on the same folds; per outer fold the recipe with the best inner score is
    picked, and its test accuracy on that fold counts."""
    cache = EmbeddingCache(backbone, cache_root)
    t = time.perf_counter()
    cache.extract(manifest, progress=False)
    extract_s = time.perf_counter() - t
    k = backbone.num_frames(backbone.contract.window_samples)  # frames of one window
    flat = FlattenedCache(cache, k)
    grid = kws_grid()
    sources = [(r, backbone, cache) for r in grid] + [(grid[0].replace(name=FLATTEN), flat.backbone, flat)]
    rows: dict[str, dict] = {}
    for recipe, bb, source in sources:
        t = time.perf_counter()
        s = cross_validate(manifest, bb, recipe, cache=source, progress=False)
        acc = s["metrics"]["accuracy"]
        rows[recipe.name] = {"test": dict(zip(s["fold_ids"], acc["per_fold"])), "mean": acc["mean"], "std": acc["std"],
                             "f1": s["metrics"]["macro_f1"]["mean"], "seconds": time.perf_counter() - t}
        print(f"  {backbone.name:16s} {recipe.name:45s} test {acc['mean']:.3f} ± {acc['std']:.3f} "
              f"({rows[recipe.name]['seconds']:.0f} s)", flush=True)
    t = time.perf_counter()
    tuned = tune(manifest, backbone, grid=grid, cache=cache, progress=False)
    tuned_flat = tune(manifest, flat.backbone, grid=[sources[-1][0]], cache=flat, progress=False)
    tune_s = time.perf_counter() - t
    folds = manifest.folds
    inner = {f: {**tuned["inner"][str(f)], **tuned_flat["inner"][str(f)]} for f in folds}
    for name in rows:
        rows[name]["inner"] = float(np.mean([inner[f][name] for f in folds]))
    names = list(rows)
    chosen = {f: max(names, key=lambda n: (inner[f][n], -names.index(n))) for f in folds}
    nested = np.array([rows[chosen[f]]["test"][f] for f in folds])
    print(f"  {backbone.name}: nested CV {nested.mean():.3f} ± {nested.std():.3f} (tune over the grid alone: "
          f"{tuned['outer']['mean']:.3f}), chosen {chosen} ({tune_s:.0f} s)", flush=True)
    return {"rows": rows, "chosen": chosen, "nested": nested, "tune_outer": tuned["outer"]["mean"],
            "extract_s": extract_s, "tune_s": tune_s, "k": k}


def kws_table(title: str, manifest: Manifest, results: dict) -> str:
    k = len(manifest.folds)
    lines = [f"### {title}: {len(manifest)} clips, {len(manifest.labels)} classes, {k} speaker-grouped folds", "",
             "| backbone | recipe | inner-CV acc. (selects) | **test clip acc. mean ± std** | test macro-F1 | CV time |",
             "|---|---|---|---|---|---|"]
    for backbone_name, r in results.items():
        for name, row in r["rows"].items():
            label = name if name != FLATTEN else f"default on the first {r['k']} frame(s) flattened (benchmark only)"
            lines.append(f"| {backbone_name} | {label} | {row['inner']:.3f} | **{row['mean']:.3f} ± {row['std']:.3f}** | "
                         f"{row['f1']:.3f} | {row['seconds']:.0f} s |")
        picks = ", ".join(f"fold {f}: {n.replace('default, ', '').replace(FLATTEN, 'flattened')}"
                          for f, n in r["chosen"].items())
        lines.append(f"| {backbone_name} | *chosen per outer fold by nested CV* ({picks}) | | "
                     f"**{r['nested'].mean():.3f} ± {r['nested'].std():.3f}** | | {r['tune_s']:.0f} s |")
    lines += ["", "Embedding extraction (once, into the cache): " + ", ".join(
        f"{n} {r['extract_s']:.0f} s" for n, r in results.items()) + "."]
    return "\n".join(lines)


# ---- main ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-cv", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from tfaudio.backbones.registry import get_backbone
    from tfaudio.interpreter import interpreter_backend

    shared = shared_dir()
    folder = shared / "models" / "speech_embedding"
    t = time.perf_counter()
    backbone = get_backbone(f"speech-embedding:{folder}")
    load_s = time.perf_counter() - t
    yamnet = get_backbone("yamnet")
    manifests = {"speech-commands-mini": speech_commands(shared), "fsdd-mini": fsdd(shared)}
    par = parity(backbone, folder, manifests)
    sp = None if args.skip_speed else speed(backbone, yamnet, folder, manifests["speech-commands-mini"], args.rounds)
    cv = {}
    if not args.skip_cv:
        tmp = tempfile.TemporaryDirectory()
        for name, manifest in manifests.items():
            cv[name] = {bb.name: kws(manifest, bb, pathlib.Path(tmp.name) / name / bb.name)
                        for bb in (backbone, yamnet)}
        sanity = {}
        for bb in (backbone, yamnet):  # fsdd-mini, speakers shared across folds (default recipe)
            m = speakers_mixed(manifests["fsdd-mini"])
            s = cross_validate(m, bb, cache=EmbeddingCache(bb, pathlib.Path(tmp.name) / "fsdd-mini" / bb.name),
                               progress=False)
            sanity[bb.name] = s["metrics"]["accuracy"]
            print(f"  fsdd-mini, not speaker-grouped, {bb.name}: {s['metrics']['accuracy']['mean']:.3f}")

    lines = [f"Written by `benchmarks/speech_embedding.py` on this machine ({machine()}); TFLite interpreter: "
             f"{interpreter_backend()}; peak RSS of the whole run {peak_rss_mb():.0f} MB. `SpeechEmbeddingBackbone` "
             f"(`speech-embedding`): openWakeWord's `embedding_model.tflite` read into a tf_keras body "
             f"({sum(int(np.prod(v.shape)) for v in backbone.variables):,} parameters; loading took {load_s:.1f} s), "
             "the frontend `tfaudio.backbones.speech_embedding.frontend`; 96-d embeddings of 0.782 s windows every 80 ms.", "",
             "**Parity** with openWakeWord's two TFLite files (the mel file on each clip zero-padded to whole "
             "windows, `x / 10 + 2`, 76-frame windows every 8 frames into the embedding file), every clip:", "",
             "| clips | embeddings | mel max \\|Δ\\| (dB; values span) | embedding max \\|Δ\\| (largest \\|value\\|) |",
             "|---|---|---|---|"]
    for name, p in par.items():
        lines.append(f"| {name}: {p['clips']} | {p['frames']} | {p['mel']:.1e} ({p['mel_range'][0]:.0f} to "
                     f"{p['mel_range'][1]:.0f} dB) | {p['embedding']:.1e} ({p['embedding_max_abs']:.0f}) |")
    if sp:
        lines += ["", f"**Extraction speed**, speech-commands-mini ({sp['clips']} clips, {sp['audio_s']:.0f} s of "
                  f"audio), warm (traces excluded), best of {args.rounds} alternating rounds; other jobs shared the "
                  f"machine (1-minute load average {sp['load'][0]:.1f} before, {sp['load'][1]:.1f} after, on "
                  f"{os.cpu_count()} cores), so wall times are inflated; CPU time is the steadier figure:", "",
                  "| mode | audio s / wall s | wall time | CPU time |", "|---|---|---|---|"]
        for name, (wall, cpu) in sp["best"].items():
            lines.append(f"| {name} | {sp['audio_s'] / wall:.0f} | {wall:.2f} s | {cpu:.2f} s |")
    if cv:
        d = get_recipe("default")
        lines += ["", "**Keyword spotting**, speaker-grouped folds (no speaker in two folds), each clip tested once. "
                  f"Recipes: tfaudio's default (`--recipe default`: head {d.head.to_dict()}; training "
                  f"{ {k: v for k, v in dataclasses.asdict(d.train).items() if k != 'verbose'} }, every training "
                  "fold fits, no validation fold) and the same with attention pooling (`--pooling attention`) or a "
                  "head on mean/std-pooled embeddings (`--pooling stats`); and, to decide whether tfaudio needs it, "
                  "the default head on each clip's first window of frames flattened into one vector "
                  "(`frame_pooling.pool_clips(..., 'flatten', k)`, not a tfaudio pooling). *Test* columns: "
                  "`cross_validate` of each recipe (5 folds; fsdd-mini has 3 speakers, so 3 leave-one-speaker-out "
                  "folds). *Inner-CV*: `tfaudio.tasks.tuning.tune` (nested CV: for each outer fold, CV over the other "
                  "folds only), mean over outer folds; the *chosen* row takes, for each outer fold, the recipe with "
                  "the best inner score and counts its test accuracy on that fold (the outer test fold never "
                  "selects). std: population std over folds. Times: wall time on the shared machine.", ""]
        titles = {"speech-commands-mini": "speech-commands-mini (12 classes incl. _silence_, _unknown_)",
                  "fsdd-mini": "fsdd-mini (digits 0-9, 8 kHz resampled to 16 kHz, 3 speakers)"}
        for name, results in cv.items():
            lines += [kws_table(titles[name], manifests[name], results), ""]
        lines += ["Sanity check, not a benchmark: fsdd-mini in 5 folds stratified by digit but *not* grouped by "
                  "speaker (all 3 speakers in every fold, so test speakers are heard in training), default recipe: "
                  + ", ".join(f"{n} {a['mean']:.3f} ± {a['std']:.3f}" for n, a in sanity.items()) + ".", ""]
        sc = cv["speech-commands-mini"]
        y = sc[yamnet.name]["rows"][d.name]["mean"]
        s_default = sc[backbone.name]["rows"][d.name]["mean"]
        s_nested = sc[backbone.name]["nested"].mean()
        lines.append(f"Target (issue #14): ≥ 2× YAMNet's accuracy on speech-commands-mini with the same recipe: "
                     f"YAMNet {y:.3f} with the default recipe → target {2 * y:.3f}; speech embedding {s_default:.3f} "
                     f"with the default recipe ({s_default / y:.2f}×), {s_nested:.3f} with the recipe chosen by nested "
                     f"CV ({s_nested / y:.2f}×): **{'met' if s_default >= 2 * y else 'not met'}** with the default "
                     "recipe.")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("Speech embedding", body)


if __name__ == "__main__":
    main()
