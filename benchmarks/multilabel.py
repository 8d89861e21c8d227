"""Benchmark: multi-label heads on 2-3-source mixtures, single-label vs multi-label heads on the same
data, and the "none of these" rejection threshold of a single-label model (YAMNet embeddings).

Mixtures: 5 s clips summing 2 or 3 ESC-50 clips of different classes (each at its RMS level ±6 dB), from
folds 1-3 (training), 4 (validation: thresholds) and 5 (test) only; written as 16 kHz WAV with a
``;``-separated label CSV (the multi-label data format).

    python benchmarks/multilabel.py --work /tmp/multilabel-bench
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from benchmarks._common import machine, shared_dir, write_section  # noqa: E402

OUT_OF_SET = ("rain", "sea_waves", "crackling_fire")


def mixtures(esc50: pathlib.Path, out: pathlib.Path, counts: dict[int, int], seed: int = 0) -> pathlib.Path:
    """Writes the mixtures and ``mixtures.csv`` (filename, fold, category 'a;b[;c]')."""
    import pandas as pd
    import soundfile as sf

    from tfaudio.data.audio_converter import AudioConverter

    meta = pd.read_csv(esc50 / "meta" / "esc50.csv")
    conv = AudioConverter(16000)
    rng = np.random.default_rng(seed)
    source_folds = {1: [1, 2, 3], 2: [4], 3: [5]}
    rows = ["filename,fold,category"]
    out.mkdir(parents=True, exist_ok=True)
    for fold, n in counts.items():
        pool = meta[meta.fold.isin(source_folds[fold])]
        by_class = {c: list(g.filename) for c, g in pool.groupby("category")}
        classes = sorted(by_class)
        for i in range(n):
            k = int(rng.integers(2, 4))
            chosen = [classes[j] for j in rng.choice(len(classes), k, replace=False)]
            mix = np.zeros(5 * 16000, np.float32)
            for c in chosen:
                x = conv(str(esc50 / "audio" / by_class[c][int(rng.integers(len(by_class[c])))]))[: len(mix)]
                rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-9)
                mix[: len(x)] += x * (0.05 / rms) * 10 ** (rng.uniform(-6, 6) / 20)
            mix *= 0.9 / max(1e-6, float(np.abs(mix).max()))
            name = f"mix_{fold}_{i:03d}.wav"
            sf.write(str(out / name), mix, 16000, subtype="PCM_16")
            rows.append(f"{name},{fold},{';'.join(sorted(chosen))}")
    (out / "mixtures.csv").write_text("\n".join(rows) + "\n")
    return out / "mixtures.csv"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/tfaudio-multilabel-bench")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    work = pathlib.Path(args.work)
    esc50 = shared_dir() / "data" / "esc50-subset"

    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.multilabel_metrics import (
        choose_thresholds,
        f1_at_thresholds,
        multilabel_report,
        rejection_report,
        rejection_threshold,
    )

    t0 = time.perf_counter()
    csv = mixtures(esc50, work / "mix", {1: 400, 2: 100, 3: 200})
    mix = Manifest.from_csv(csv, audio_dir=work / "mix")
    iso = Manifest.from_csv(esc50 / "meta" / "esc50.csv").with_labels(mix.labels)
    bb = get_backbone("yamnet")
    cache = EmbeddingCache(bb, work / "cache")
    labels = mix.labels
    m_tr, m_va, m_te = mix.filter_folds([1]), mix.filter_folds([2]), mix.filter_folds([3])
    i_tr, i_va = iso.filter_folds([1, 2, 3]), iso.filter_folds([4])
    test = cache.load(m_te)
    y_test = test.targets
    y_val = cache.load(m_va).targets

    def row(name: str, clf) -> tuple:
        s_val, s_test = clf.clip_scores(cache.load(m_va)), clf.clip_scores(test)
        thresholds = choose_thresholds(y_val, s_val)  # on the validation mixtures (fold 4 sources) only
        rep = multilabel_report(y_test, s_test, labels, thresholds)
        at_half = f1_at_thresholds(y_test, s_test, np.full(len(labels), 0.5))
        return (name, rep["mAP"], rep["lwlrap"], rep["d_prime"], rep["micro_f1"], rep["macro_f1"], at_half["micro_f1"])

    rows = []
    single_iso = AudioClassifier(bb, labels=labels, cache=cache).fit(i_tr, i_va)
    rows.append(row("single-label (softmax) head, isolated clips", single_iso))
    multi_iso = AudioClassifier(bb, labels=labels, cache=cache,
                                head=dataclass_replace(single_iso.recipe.head, multi_label=True)).fit(i_tr, i_va)
    rows.append(row("multi-label (sigmoid) head, isolated clips", multi_iso))
    multi_mix = AudioClassifier(bb, labels=labels, cache=cache).fit(m_tr, m_va)
    rows.append(row("multi-label head, mixtures (';' labels)", multi_mix))
    for r in rows:
        print(r, flush=True)

    # ---- "none of these": a single-label model on 8 classes, the 3 others as out-of-set clips --------------
    in_set = [c for c in iso.labels if c not in OUT_OF_SET]
    iso_all = Manifest.from_csv(esc50 / "meta" / "esc50.csv")
    closed = iso_all.select(in_set)
    oos = iso_all.select(list(OUT_OF_SET))
    clf = AudioClassifier(bb, labels=in_set, cache=cache).fit(closed.filter_folds([1, 2, 3]), closed.filter_folds([4]))
    va, te = cache.load(closed.filter_folds([4])), cache.load(closed.filter_folds([5]))
    out_scores = clf.clip_scores(cache.load(_as_in_set(oos, in_set)))
    rej = []
    for keep in (0.99, 0.95, 0.9, 0.8):
        thr = rejection_threshold(clf.clip_scores(va), va.targets, keep=keep)
        rej.append((keep, rejection_report(clf.clip_scores(te), te.targets, out_scores, thr)))
    seconds = time.perf_counter() - t0
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"

    table = ["| model (YAMNet embeddings, default recipe) | mAP | lwlrap | d′ | micro F1 | macro F1 | micro F1 at 0.5 |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {r[0]} | **{r[1]:.3f}** | {r[2]:.3f} | {r[3]:.2f} | {r[4]:.3f} | {r[5]:.3f} | {r[6]:.3f} |" for r in rows]
    rtable = ["| kept on validation | threshold | accuracy kept (fold 5) | accuracy without rejection | in-set rejected | "
              "false accepts (out-of-set) |", "|---|---|---|---|---|---|"]
    rtable += [f"| {k:.0%} | {r['threshold']:.3f} | {r['accuracy_kept']:.3f} | {r['accuracy_without']:.3f} | "
               f"{r['in_set_rejected']:.3f} | **{r['false_accepts']:.3f}** |" for k, r in rej]
    body = f"""
Multi-label heads on mixtures of 2–3 ESC-50 clips (5 s, 16 kHz, each source at its RMS level ±6 dB; the 11
classes of the subset), built by `benchmarks/multilabel.py` from folds 1–3 (400 training mixtures), 4 (100
validation mixtures: the per-class thresholds) and 5 (200 test mixtures) only. Three heads on the same YAMNet
embeddings: a single-label softmax head and a multi-label sigmoid head trained on the same isolated clips
(folds 1–3, fold 4 validates), and a multi-label head trained on the training mixtures (labels `a;b;c`). F1
at per-class thresholds chosen on the validation mixtures; "at 0.5" is the fixed threshold. Machine:
{machine()}, shared with other developers' jobs (load average {load} at the end); {seconds:.0f} s in all,
extraction included. Re-run: `python benchmarks/multilabel.py`.

{chr(10).join(table)}

**"None of these"**: a single-label head on the 8 other classes (isolated clips, folds 1–3; fold 4
validates), rejecting a clip when its top score is below a threshold chosen on fold 4 to keep the given
share of its correctly classified clips; tested on fold 5 (in-set) and on every clip of {", ".join(OUT_OF_SET)}
(out-of-set, never seen in training).

{chr(10).join(rtable)}
"""
    print(body)
    if not args.no_write:
        write_section("Multi-label heads and rejection", body)
    return 0


def dataclass_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def _as_in_set(oos, in_set):
    """Out-of-set clips as a manifest the in-set classifier can load (their labels do not matter)."""
    from tfaudio.data.manifest import Manifest

    frame = oos.frame.assign(label=in_set[0])
    return Manifest(frame, labels=in_set)


if __name__ == "__main__":
    sys.exit(main())
