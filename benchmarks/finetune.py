"""Fine-tuning against the frozen default: accuracy, seconds per epoch and peak memory per backbone.

Two parts (each writes its own section of BENCHMARKS.md):

- ``--choose``: how the ``finetune`` recipe's settings were chosen — candidates compared on a development
  split only (training folds 1-3, validation fold 4; fold 5 is never looked at), on speech-commands-mini
  and esc50-subset with EfficientAT mn04. Section "Fine-tuning: recipe choice".
- default: k-fold cross-validation of ``tfaudio cv --finetune`` (the ``finetune`` recipe as shipped) per
  backbone and data set, beside the frozen default recipe's figure from the same folds, with the seconds
  per epoch and the peak memory of the fine-tuning process. Each (backbone, data set) runs in a fresh
  process so that its peak memory is its own. Section "Fine-tuning".

Data: ../shared/data esc50-subset (its own 5 folds), speech-commands-mini (5 folds assigned by tfaudio,
grouped by speaker), fsdd-mini (3 folds, one speaker each).

Run: .venv/bin/python benchmarks/finetune.py [--choose] [--backbones efficientat:mn04_as,speech-embedding]
     [--sets speech-commands-mini,esc50-subset] [--folds 5]
Results are kept per (backbone, set) in benchmarks/results/finetune.json with the date, so a run of some
rows leaves the others in the section.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
from _common import ROOT, machine, peak_rss_mb, shared_dir, write_section

RESULTS = pathlib.Path(__file__).parent / "results" / "finetune.json"
CACHE = pathlib.Path.home() / ".cache" / "tfaudio" / "embeddings"


def datasets(names):
    from train import datasets as all_sets

    sets = all_sets(shared_dir())
    return {n: sets[n] for n in names}


def load_avg() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def one(backbone_spec: str, set_name: str, folds: int | None, out: pathlib.Path) -> None:
    """In this process: frozen default CV and fine-tuned CV of one (backbone, set); JSON to ``out``."""
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.waveform_cache import WaveformCache
    from tfaudio.tasks.cross_validation import cross_validate, cross_validate_finetune
    from tfaudio.tasks.recipe import get_recipe

    manifest = datasets([set_name])[set_name]
    if folds:
        manifest = manifest.filter_folds(manifest.folds[:folds])
    backbone = get_backbone(backbone_spec)
    row = {"backbone": backbone_spec, "set": set_name, "clips": len(manifest), "folds": manifest.folds,
           "started": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "load_start": load_avg(),
           "machine": machine()}
    t = time.perf_counter()
    frozen = cross_validate(manifest, backbone, "default", progress=False)["metrics"]["accuracy"]
    row["frozen"] = {"accuracy": frozen["mean"], "std": frozen["std"], "per_fold": frozen["per_fold"],
                     "seconds": time.perf_counter() - t}
    recipe = get_recipe("finetune")
    cache = WaveformCache(backbone.sample_rate, CACHE)
    t = time.perf_counter()
    cache.extract(manifest, progress=False)
    decode = time.perf_counter() - t
    t = time.perf_counter()
    tuned = cross_validate_finetune(manifest, backbone, recipe, cache=cache, progress=False)
    seconds = time.perf_counter() - t
    accuracy = tuned["metrics"]["accuracy"]
    epochs = sum(len(f["history"]["loss"]) for f in tuned["folds"])
    train_clips = [len(manifest.filter_folds([f for f in manifest.folds if f != fold["fold"]])) for fold in tuned["folds"]]
    row["finetuned"] = {"accuracy": accuracy["mean"], "std": accuracy["std"],
                        "per_fold": accuracy["per_fold"], "seconds": seconds, "decode_seconds": decode,
                        "epochs": epochs, "seconds_per_epoch": seconds / max(epochs, 1),
                        "train_clips_per_fold": float(np.mean(train_clips)),
                        "recipe": recipe.to_dict()}
    row["peak_rss_mb"] = peak_rss_mb()
    row["load_end"] = load_avg()
    out.write_text(json.dumps(row, indent=1, default=float))


CHOOSE = pathlib.Path(__file__).parent / "results" / "finetune-choose.json"


def choose(args) -> None:
    """The candidates the shipped recipe was chosen from, on the development split (train 1-3, validate 4).
    Rows accumulate in benchmarks/results/finetune-choose.json (``--candidates`` runs the names containing
    a given text)."""
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.waveform_cache import WaveformCache
    from tfaudio.tasks.finetune import evaluate_waveforms, finetune
    from tfaudio.tasks.recipe import get_recipe

    shipped = get_recipe("finetune")
    linear = shipped.replace(head={"hidden_units": ()})
    off = {"gain_db": 0.0, "shift_seconds": 0.0, "freq_mask": 0.0, "time_mask": 0.0}
    candidates = {
        "linear head, lr 1e-3, top block 0.1x, dropout 0.2, 12 epochs (first draft)": linear.replace(
            train={"learning_rate": 1e-3, "epochs": 12}, finetune={"backbone_learning_rate": 0.1, "dropout": 0.2}),
        "linear head, lr 3e-3, top block 0.3x, 12 epochs": linear.replace(
            train={"epochs": 12}, finetune={"backbone_learning_rate": 0.3}),
        "linear head, lr 3e-3, top block 1x, 12 epochs": linear.replace(train={"epochs": 12}),
        "linear head, lr 3e-3, top block 1x, 20 epochs": linear,
        "linear head, 20 epochs, dropout 0.2": linear.replace(finetune={"dropout": 0.2}),
        "linear head, 20 epochs, batch norm trains": linear.replace(finetune={"batchnorm": "train"}),
        "linear head, 20 epochs, no augmentation": linear.replace(train={"mixup": 0.0}, finetune=off),
        "linear head, 20 epochs, head only (frozen backbone)": linear.replace(finetune={"freeze_blocks": -1}),
        "MLP 512 head, lr 3e-3, top block 1x, 20 epochs (shipped, speed perturbation off)": shipped.replace(finetune={"speed": 0.0}),
        "MLP 512 head, 20 epochs, speed perturbation 0.1": shipped.replace(finetune={"speed": 0.1}),
        "MLP 512 head, 20 epochs, 4 head-only epochs": shipped.replace(finetune={"head_epochs": 4}),
        "MLP 512 head, 20 epochs, speed perturbation 0.1, 4 head-only epochs": shipped.replace(
            finetune={"speed": 0.1, "head_epochs": 4}),
    }
    wanted = [n for n in candidates if not args.candidates or any(c in n for c in args.candidates.split(";"))]
    stored = json.loads(CHOOSE.read_text()) if CHOOSE.exists() else {}
    for backbone_spec in args.backbones.split(","):
        backbone = get_backbone(backbone_spec)
        start = [v.numpy() for v in backbone.variables]
        cache = WaveformCache(backbone.sample_rate, CACHE)
        for set_name, m in datasets(args.sets.split(",")).items():
            train, val = m.filter_folds([1, 2, 3]), m.filter_folds([4])
            for name in wanted:
                backbone.assign_variables(start)
                t = time.perf_counter()
                clf = finetune(train, backbone, candidates[name], cache=cache, progress=False)
                acc = evaluate_waveforms(clf, cache, val)["accuracy"]
                stored[f"{set_name} | {backbone_spec} | {name}"] = {
                    "accuracy": acc, "seconds": time.perf_counter() - t, "load": load_avg(),
                    "when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}
                print(f"{set_name:22s} {backbone_spec:20s} {name:60s} {acc:.3f}", flush=True)
                CHOOSE.write_text(json.dumps(stored, indent=1))
    body = [f"Training folds 1-3, validation fold 4 (fold 5 is never used here); one run each, seed 0; {machine()}; "
            "the 2 cores were shared with other jobs (times are indicative). Chosen: the best candidate for mn04 on "
            "speech-commands-mini's development split among the linear heads, then the MLP head, which the speech "
            "embedding's small (96-dim) embedding needed and mn04 did not mind. Fold 4 is also one of the five test "
            "folds of the cross-validation in \"Fine-tuning\", so those figures are not fully independent of this "
            "choice. Later candidates (speed perturbation, 4 head-only epochs: a longer linear-probe phase "
            "before the backbone trains) did not beat the recipe on this split (one validation fold of ~95 clips, "
            "mostly one speaker: 1 clip = 1 point). Speed perturbation was then compared by nested CV "
            "(\"Fine-tuning: nested CV of recipes\"), which chose it for the speech embedding in every outer fold: "
            "the speech backbones (speech embedding, Wav2Vec2/HuBERT, Whisper) default to it "
            "(`Backbone.finetune_speed`), the others keep it off (`--speed` sets it). "
            "Re-run: `python benchmarks/finetune.py --choose [--candidates TEXT]`.", "",
            "| data | backbone | candidate | validation accuracy | time | when |", "|---|---|---|---|---|---|"]
    for key, r in stored.items():
        set_name, backbone_spec, name = key.split(" | ")
        body.append(f"| {set_name} | {backbone_spec} | {name} | {r['accuracy']:.3f} | {r['seconds']:.0f} s | "
                    f"{r['when']}, {r['load']} |")
    write_section("Fine-tuning: recipe choice", "\n".join(body))


NESTED = pathlib.Path(__file__).parent / "results" / "finetune-nested.json"
BASELINE = "speed perturbation off"  # the recipe as it was; wins ties


def nested_candidates():
    from tfaudio.tasks.recipe import get_recipe

    shipped = get_recipe("finetune")
    return {"speed perturbation off": shipped.replace(finetune={"speed": 0.0}),
            "speed perturbation 0.1": shipped.replace(finetune={"speed": 0.1}),
            "4 head-only epochs": shipped.replace(finetune={"head_epochs": 4, "speed": 0.0}),
            # LP-FT: a linear probe to convergence first, then fine-tuning (the backbone's own speed default)
            "linear probe first (100 epochs), then fine-tuning": shipped.replace(
                finetune={"probe_epochs": 100, "head_epochs": 0}),
            # the default head's silence gate: silent frames left out of the head's mean (training and scores)
            "silence gate": shipped.replace(head={"silence_gate": True}),
            # the frozen default's pooling: every frame scored, the clip's score their mean (frame cross-entropy)
            "frame head (mean of frame scores)": shipped.replace(head={"pooling": "mean"}),
            # twice the epochs (the cosine schedule stretched over them): small data sets, heavy augmentation
            "40 epochs": shipped.replace(train={"epochs": 40}),
            # EfficientAT's own ESC-50 fine-tuning masks nothing (its ex_esc50.py: freqm 0, timem 0)
            "no SpecAugment": shipped.replace(finetune={"freq_mask": 0.0, "time_mask": 0.0}),
            # a wider speed perturbation (0.8-1.2x) against speaker variation
            "speed perturbation 0.2": shipped.replace(finetune={"speed": 0.2}),
            # fine-tuning, then the frozen default's head trained again on the fine-tuned embeddings
            "refit the default head": shipped.replace(finetune={"refit_head": True}),
            # WiSE-FT: one fine-tuning per fit, scored at several points between the pretrained and the
            # fine-tuned weights (the head refit on each); alpha 1 is the shipped recipe on the same fits
            "weight-space ensembles": shipped.replace(finetune={"interpolate": 0.5})}


#: candidates that score several models from each fit: {candidate: {stored name: FineTuneRun.interpolate's alpha}}
SHARED_FITS = {"weight-space ensembles": {"WiSE-FT alpha 1 (the shipped recipe, same fits)": 1.0,
                                          "WiSE-FT alpha 0.75": 0.75, "WiSE-FT alpha 0.5": 0.5,
                                          "WiSE-FT alpha 0.25": 0.25}}


@contextlib.contextmanager
def _nested_store():
    """The stored fits (benchmarks/results/finetune-nested.json), read and written under an exclusive lock:
    several ``--nested`` processes (one per candidate) can share the file without losing each other's fits."""
    import fcntl

    from tfaudio.io.atomic import atomic_write_text

    NESTED.parent.mkdir(parents=True, exist_ok=True)
    with open(NESTED.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored = json.loads(NESTED.read_text()) if NESTED.exists() else {}
        yield stored
        atomic_write_text(NESTED, json.dumps(stored, indent=1))


def nested(args) -> None:
    """Nested cross-validation of fine-tuning recipes (as ``tfaudio tune`` does for heads): for each outer
    test fold k, each candidate's inner score is its mean accuracy over the other folds d, each tested by a
    model trained on the remaining three; the best inner candidate is the one tested on k. A model trained
    on folds F - {k, d} serves as the inner model of outer fold k (tested on d) and of outer fold d (tested
    on k), so the inner fits are one per pair of folds and candidate. Every fit is stored as it ends
    (benchmarks/results/finetune-nested.json): a stopped run resumes. ``--candidates`` fits only those (run
    one process per candidate to use both cores); the choice is made over the candidates whose fits are all
    stored, the recipe as it was among them."""
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.waveform_cache import WaveformCache

    every = nested_candidates()
    wanted = [k for k in every if not args.candidates or any(c in k for c in args.candidates.split(";"))]
    for backbone_spec in args.backbones.split(","):
        backbone = get_backbone(backbone_spec)
        cache = WaveformCache(backbone.sample_rate, CACHE)
        for set_name, m in datasets(args.sets.split(",")).items():
            _nested_set(f"{set_name} | {backbone_spec}", m, backbone, cache, every, wanted)
    with _nested_store() as stored:
        nested_report(stored)


def _nested_set(key, m, backbone, cache, every, wanted) -> None:
    """:func:`nested` of one (data set, backbone): the fits of the ``wanted`` candidates (stored as they
    end), then the choice over the candidates whose fits are all stored."""
    import itertools

    from tfaudio.tasks.finetune import FineTuneRun, evaluate_waveforms

    start = [v.numpy() for v in backbone.variables]
    folds = list(m.folds)
    trainings = [[f for f in folds if f != k] for k in folds]  # the outer CV's fits first, then the inner ones
    trainings += [[f for f in folds if f not in pair] for pair in itertools.combinations(folds, 2)]

    def tag(name, train_folds):
        return f"{name} | train {','.join(map(str, train_folds))}"

    for name in wanted:
        alphas = SHARED_FITS.get(name, {name: None})
        for train_folds in trainings:
            test_folds = [f for f in folds if f not in train_folds]
            with _nested_store() as stored:
                if all(tag(n, train_folds) in stored.get(key, {}) for n in alphas):
                    continue
            backbone.assign_variables(start)
            t = time.perf_counter()
            train = m.filter_folds(train_folds)
            fit = FineTuneRun(backbone, train.labels, every[name], cache=cache).fit(train, progress=False)
            runs = {}
            for n, alpha in alphas.items():
                clf = (fit.interpolate(alpha) if alpha is not None else fit).classifier()
                runs[n] = {"test": {str(f): evaluate_waveforms(clf, cache, m.filter_folds([f]))["accuracy"]
                                    for f in test_folds},
                           "seconds": time.perf_counter() - t, "load": load_avg(),
                           "when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}
            with _nested_store() as stored:
                for n, run in runs.items():
                    stored.setdefault(key, {})[tag(n, train_folds)] = run
                    print(f"{key} {tag(n, train_folds)}: {run['test']} ({run['seconds']:.0f} s)", flush=True)

    names = [n for c in every for n in SHARED_FITS.get(c, {c: None})]
    with _nested_store() as stored:
        runs = stored.get(key, {})
        done = [n for n in names if all(tag(n, t) in runs for t in trainings)]
        if BASELINE not in done or len(done) < 2:
            return

        def scores(name, train_folds):
            return {int(f): a for f, a in runs[tag(name, train_folds)]["test"].items()}

        inner = {n: {k: {} for k in folds} for n in done}
        for n in done:
            for k, d in itertools.combinations(folds, 2):
                got = scores(n, [f for f in folds if f not in (k, d)])
                inner[n][k][d], inner[n][d][k] = got[d], got[k]
        outer = {n: {k: scores(n, [f for f in folds if f != k])[k] for k in folds} for n in done}
        chosen = {k: max(done, key=lambda n: (np.mean(list(inner[n][k].values())), n == BASELINE)) for k in folds}
        picked = [outer[chosen[k]][k] for k in folds]
        stored[key + " | summary"] = {
            "inner": {n: {k: float(np.mean(list(inner[n][k].values()))) for k in folds} for n in done},
            "outer": outer, "chosen": chosen, "nested": float(np.mean(picked)), "nested_std": float(np.std(picked))}


def nested_report(stored) -> None:
    body = [f"Nested cross-validation of fine-tuning recipes ({machine()}; one run; the 2 cores were shared with "
            "other jobs). For each outer test fold, each candidate is scored by inner cross-validation over the "
            "other folds only (each inner fold tested by a model fine-tuned on the remaining three); the best "
            "inner candidate (ties: the recipe as it was, \"speed perturbation off\": for mn04 that is the shipped "
            "recipe) is the one counted on the outer fold, so the outer fold never selects. *outer*: each "
            "candidate's own 5-fold CV (fine-tuned on the four other folds), shown for comparison, not for "
            "choosing. A candidate stopped before all of its fits is listed below the table with the mean over the "
            "test folds it shares with the recipe as it was. Re-run: `python benchmarks/finetune.py --nested "
            "[--candidates TEXT]` (one process per candidate can share the results file). *WiSE-FT alpha A* "
            "(weight-space ensembling, `--interpolate A`): one fine-tuning of the shipped recipe per fit, scored "
            "with the backbone's weights A of the way from the pretrained to the fine-tuned ones and the head "
            "refit on them (recipe `default`); alpha 1 is the shipped recipe on those same fits (run at commit "
            "`3050f8d`, 2026-12-07 17:24-18:08). *WiSE-FT alpha chosen by inner CV*: the choice among the four "
            "alphas alone, what `--interpolate auto` does with a validation fold in place of the inner CV.", "",
            "| data | backbone | candidate | inner mean per outer fold | outer accuracy per fold | outer mean |",
            "|---|---|---|---|---|---|"]
    for key, summary in stored.items():
        if not key.endswith(" | summary"):
            continue
        set_name, backbone_spec, _ = key.split(" | ")
        for name, inner in summary["inner"].items():
            outer = summary["outer"][name]
            body.append(f"| {set_name} | {backbone_spec} | {name} | {' '.join(f'{v:.3f}' for v in inner.values())} | "
                        f"{' '.join(f'{v:.3f}' for v in outer.values())} | {np.mean(list(outer.values())):.3f} |")
        wise = [n for n in summary["inner"] if n.startswith("WiSE-FT alpha")]
        if wise:
            pick = {k: max(wise, key=lambda n: (summary["inner"][n][k], n.startswith("WiSE-FT alpha 1 ")))
                    for k in summary["outer"][wise[0]]}
            got = [summary["outer"][pick[k]][k] for k in pick]
            alphas = ", ".join(f"fold {k}: {n.split()[2]}" for k, n in pick.items())
            body.append(f"| {set_name} | {backbone_spec} | WiSE-FT alpha chosen by inner CV ({alphas}) | | "
                        f"{' '.join(f'{v:.3f}' for v in got)} | {np.mean(got):.3f} ± {np.std(got):.3f} |")
        picks = ", ".join(f"fold {k}: {v}" for k, v in summary["chosen"].items())
        body.append(f"| {set_name} | {backbone_spec} | **chosen per outer fold** ({picks}) | | | "
                    f"**{summary['nested']:.3f} ± {summary['nested_std']:.3f}** |")
    notes = []
    for key, runs in stored.items():
        if key.endswith(" | summary"):
            continue
        fits: dict[str, dict[str, dict]] = {}
        for tag, run in runs.items():
            name, train = tag.split(" | train ")
            fits.setdefault(name, {})[train] = run["test"]
        complete = stored.get(key + " | summary", {}).get("inner", {})
        for name, got in fits.items():
            if name in complete or name == BASELINE or BASELINE not in fits:
                continue
            shared = [(a, fits[BASELINE][t][f]) for t, tests in got.items() if t in fits[BASELINE]
                      for f, a in tests.items()]
            if shared:
                notes.append(f"- {key}, {name}: stopped after {len(got)} fits; over the {len(shared)} test folds it "
                             f"shares with the recipe as it was, {np.mean([a for a, _ in shared]):.3f} against "
                             f"{np.mean([b for _, b in shared]):.3f}.")
    if notes:
        body += ["", *notes]
    write_section("Fine-tuning: nested CV of recipes", "\n".join(body))


def esc50_sized_fold(args) -> None:
    """Wall time of one ESC-50-sized fold: 1600 training clips of 5 s, mn04, the shipped recipe, end to end
    (decode into the waveform cache, the pass for the head's statistics, 20 epochs). The clips are the
    esc50-subset's 440, each also circularly shifted by 1.25, 2.5 and 3.75 s (new content, so new cache
    keys): right for timing, meaningless for accuracy. Section "Fine-tuning: an ESC-50-sized fold"."""
    import soundfile as sf

    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.manifest import Manifest
    from tfaudio.data.waveform_cache import WaveformCache
    from tfaudio.tasks.finetune import FineTuneRun

    m = datasets(["esc50-subset"])["esc50-subset"]
    folder = pathlib.Path(args.scratch) / "esc50-sized"
    rows = []
    for i, (path, label) in enumerate(zip(m.frame.path, m.frame.label)):
        audio, rate = sf.read(path, dtype="float32")
        for k in range(4):
            if len(rows) >= 1600:
                break
            out = folder / label / f"{i:03d}_{k}.wav"
            if not out.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
                sf.write(out, np.roll(audio, int(k * 1.25 * rate)), rate, subtype="PCM_16")
            rows.append({"path": str(out), "label": label})
    import pandas as pd

    train = Manifest(pd.DataFrame(rows), labels=m.labels)
    backbone = get_backbone(args.backbones.split(",")[0])
    cache = WaveformCache(backbone.sample_rate, pathlib.Path(args.scratch) / "cache")
    start = load_avg()
    t0 = time.perf_counter()
    cache.extract(train, progress=False)
    decode = time.perf_counter() - t0
    from tfaudio.tasks.recipe import get_recipe

    # the shipped recipe with --interpolate 0.5: fit() ends with one refit of the head, timed again below
    recipe = get_recipe("finetune").replace(finetune={"interpolate": 0.5})
    run = FineTuneRun(backbone, train.labels, recipe, cache=cache)
    t1 = time.perf_counter()
    run.fit(train, progress=False)
    fit_and_refit = time.perf_counter() - t1
    t2 = time.perf_counter()
    run.interpolate(0.5)  # the same refit again: its own time
    refit = time.perf_counter() - t2
    fit = fit_and_refit - refit
    epochs = len(run.history["loss"])
    body = (f"EfficientAT mn04_as, recipe `finetune` as shipped ({epochs} epochs of {run.plan.steps_per_epoch} steps "
            f"of {run.plan.batch_size} clips, {run.plan.crop_samples / backbone.sample_rate:g} s windows), "
            f"{len(train)} training clips of 5 s (the 440 esc50-subset clips and circular shifts of them: a timing "
            f"set, not an accuracy one). `--interpolate 0.5`: what the weight-space ensemble adds after the epochs "
            "(the weights moved, a pass over the training clips' windows, the frozen default's head trained 40 "
            "epochs on their frames; `--interpolate auto` does it three times), measured by running it again after "
            f"the fit. One run, {machine()}, {start} at the start, {load_avg()} at the end"
            f"{' (the 2 cores were shared with other jobs)' if args.shared else ''}. Re-run: "
            "`python benchmarks/finetune.py --esc50-sized`.\n\n"
            "| decode + resample into the waveform cache | fine-tuning (statistics pass + epochs) | per epoch | total | "
            "`--interpolate 0.5` adds | total with it | peak RSS | target |\n|---|---|---|---|---|---|---|---|\n"
            f"| {decode:.0f} s | {fit / 60:.1f} min | {fit / epochs:.1f} s | {(decode + fit) / 60:.1f} min | "
            f"{refit:.0f} s | {(decode + fit_and_refit) / 60:.1f} min | {peak_rss_mb():.0f} MB | ≤ 20 min: "
            f"**{'met' if (decode + fit_and_refit) <= 1200 else 'not met'}** |")
    print(body)
    write_section("Fine-tuning: an ESC-50-sized fold", body)


def precision(args) -> None:
    """float32 against oneDNN's automatic bfloat16 for the training step: seconds per epoch (after the first,
    which traces) and validation accuracy on the development split (train 1-3, validate 4), in one process,
    taking turns. Section "Fine-tuning: bfloat16"."""
    from tfaudio.backbones.engines import bfloat16_native, cpu_features
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.waveform_cache import WaveformCache
    from tfaudio.tasks.finetune import FineTuneRun, evaluate_waveforms
    from tfaudio.tasks.recipe import get_recipe

    if not bfloat16_native():
        write_section("Fine-tuning: bfloat16", f"Not measured: this CPU has no native bfloat16 ({machine()}).")
        return
    set_name = args.sets.split(",")[0]
    m = datasets([set_name])[set_name]
    rows = []
    for backbone_spec in args.backbones.split(","):
        backbone = get_backbone(backbone_spec)
        start = [v.numpy() for v in backbone.variables]
        cache = WaveformCache(backbone.sample_rate, CACHE)
        for name in ("float32", "bfloat16"):
            backbone.assign_variables(start)
            recipe = get_recipe("finetune").replace(finetune={"precision": name})
            run = FineTuneRun(backbone, m.labels, recipe, cache=cache)
            t = time.perf_counter()
            run.fit(m.filter_folds([1, 2, 3]), progress=False)
            total = time.perf_counter() - t
            acc = evaluate_waveforms(run.classifier(), cache, m.filter_folds([4]))["accuracy"]
            rows.append((backbone_spec, name, total / len(run.history["loss"]), acc, run.precision))
            print(rows[-1], flush=True)
    flags = ", ".join(sorted(f for f in cpu_features() if "bf16" in f or "amx" in f or "vnni" in f))
    body = [f"{set_name}, training folds 1-3 (validation fold 4), recipe `finetune`; {machine()}, CPU flags: {flags}; "
            f"{load_avg()} at the end (shared with other jobs). Per epoch: the whole run's wall time / epochs. "
            "Re-run: `python benchmarks/finetune.py --precision`.", "",
            "| backbone | precision | s / epoch | validation accuracy |", "|---|---|---|---|"]
    body += [f"| {b} | {used} | {sec:.1f} | {acc:.3f} |" for b, _, sec, acc, used in rows]
    write_section("Fine-tuning: bfloat16", "\n".join(body))


def _random_transformers(kind: str, folder: pathlib.Path) -> pathlib.Path:
    """A base-sized Wav2Vec2 or Whisper encoder with random weights (no real weights here: timing only)."""
    import tensorflow as tf
    import transformers

    tf.keras.utils.set_random_seed(0)
    if kind == "wav2vec2-base":
        model = transformers.TFWav2Vec2Model(transformers.Wav2Vec2Config())  # 12 layers of 768: wav2vec2-base
        fe = transformers.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False)
    else:  # whisper-base's encoder: 6 layers of 512, 80 mel bins
        model = transformers.TFWhisperModel(transformers.WhisperConfig(
            d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048, decoder_layers=1,
            decoder_attention_heads=8, decoder_ffn_dim=2048, num_mel_bins=80))
        fe = transformers.WhisperFeatureExtractor(feature_size=80)
    model.build_in_name_scope()
    model.save_pretrained(folder)
    fe.save_pretrained(folder)
    return folder


def speed_one(spec: str, set_name: str, epochs: int, out: pathlib.Path) -> None:
    """In this process: ``epochs`` epochs of the shipped recipe on folds 1-3 of ``set_name``; JSON to ``out``."""
    import tempfile

    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.waveform_cache import WaveformCache
    from tfaudio.tasks.finetune import FineTuneRun
    from tfaudio.tasks.recipe import get_recipe

    m = datasets([set_name])[set_name].filter_folds([1, 2, 3])
    if spec in ("wav2vec2-base", "whisper-base"):
        folder = _random_transformers(spec, pathlib.Path(tempfile.mkdtemp()) / spec)
        backbone = get_backbone(f"{spec.split('-')[0]}:{folder}")
    else:
        backbone = get_backbone(spec)
    params = int(sum(np.prod(v.shape) for v in backbone.variables))
    cache = WaveformCache(backbone.sample_rate, CACHE)
    cache.extract(m, progress=False)
    run = FineTuneRun(backbone, m.labels, get_recipe("finetune").replace(train={"epochs": epochs}), cache=cache)
    t = time.perf_counter()
    run.fit(m, progress=False)
    total = time.perf_counter() - t
    out.write_text(json.dumps({
        "backbone": spec, "set": set_name, "clips": len(m), "params": params, "epochs": epochs,
        "window_s": run.plan.crop_samples / backbone.sample_rate, "blocks": len(run.plan.blocks),
        "frozen": run.plan.frozen, "epoch_seconds": run.epoch_seconds, "total": total,
        "peak_rss_mb": peak_rss_mb(), "load": load_avg()}))


SPEED_RESULTS = RESULTS.parent / "finetune-speed.json"


def speed(args) -> None:
    """Seconds per epoch and peak memory of every backbone's fine-tuning (fresh process each; rows kept per
    backbone in benchmarks/results/finetune-speed.json). Section "Fine-tuning: seconds per epoch"."""
    results = json.loads(SPEED_RESULTS.read_text()) if SPEED_RESULTS.exists() else {}
    for spec in args.backbones.split(","):
        out = RESULTS.parent / f".speed-{os.getpid()}.json"
        set_name = args.sets.split(",")[0]
        start, started = load_avg(), datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        cmd = [sys.executable, __file__, "--speed-one", spec, set_name, str(out), "--epochs", str(args.epochs)]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
        row = json.loads(out.read_text())
        out.unlink()
        row.update(load_start=start, started=started)
        results[spec] = row
        SPEED_RESULTS.write_text(json.dumps(results, indent=1))
        print(row, flush=True)
    body = ["The shipped recipe `finetune` on speech-commands-mini folds 1-3 (287 clips of 1 s, batches of 16), a "
            "few epochs per backbone, each backbone in a fresh process (its peak RSS is its own; the waveform cache "
            "was filled before). \"first\": the first epoch (it traces the training step; the head-only epoch); "
            "\"then\": the mean of the later ones. wav2vec2-base and whisper-base are those architectures with "
            "random weights (no real weights here): their times are real, their accuracy meaningless. Whisper's "
            "encoder takes 30 s of audio (3000 mel frames) whatever the clip's length, so a 1 s clip costs what "
            f"30 s cost. {machine()}; the 2 cores were shared with other developers' jobs (load at the start and "
            "end of each row), so the times are indicative. Re-run: `python benchmarks/finetune.py --speed "
            "[--backbones ...] [--epochs N]`.", "",
            "| backbone | parameters | window | blocks (frozen) | epochs | first epoch | then, s / epoch | peak RSS | when |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in results.values():
        later = f"{np.mean(r['epoch_seconds'][1:]):.1f} s" if len(r["epoch_seconds"]) > 1 else "n/a"
        body.append(f"| {r['backbone']} | {r['params'] / 1e6:.1f} M | {r['window_s']:g} s | {r['blocks']} "
                    f"({r['frozen']}) | {r['epochs']} | {r['epoch_seconds'][0]:.1f} s | {later} | "
                    f"{r['peak_rss_mb']:.0f} MB | {r['started']}, {r['load_start']} → {r['load']} |")
    print("\n".join(body))
    write_section("Fine-tuning: seconds per epoch", "\n".join(body))


def report(results: dict) -> None:
    body = ["`tfaudio cv --finetune` (recipe `finetune` as shipped: "
            "20 epochs, batches of 16, AdamW (weight decay 1e-4), peak lr 3e-3 for the head and the top block, "
            "layer decay 0.85 per block below, 1 head-only epoch, warm-up 1 epoch then cosine, mixup 0.3, "
            "SpecAugment masks, gain ±6 dB, shift ±0.2 s, label smoothing 0.1, frozen batch-norm statistics, "
            "head: the mean frame embedding, standardised, → Dense 512 ReLU → classes; speed perturbation "
            "±10 % for the speech backbones) against the frozen default recipe (`tfaudio cv`) on the same folds. "
            "Rows marked *speed off* ran before the speech backbones' speed perturbation became their default "
            "(the others are unchanged by it). Rows before 2026-12-07 13:30 drew each epoch's batches through a "
            "512-clip shuffle buffer over the waveform cache's shard order; later rows read a permutation per "
            "epoch by offset (the same recipe, another draw of the batches). Each row "
            "ran in a fresh process (peak RSS is that process's: both CVs of that row). Seconds per epoch: the "
            "fine-tuning CV's wall time / its epochs (including each fold's start and its test scoring). "
            "Re-run: `python benchmarks/finetune.py`.", "",
            "| data | backbone | folds | frozen default | fine-tuned | gain | per fold (fine-tuned) | s / epoch "
            "(train clips) | peak RSS | when |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key in sorted(results):
        r = results[key]
        f, t = r["frozen"], r["finetuned"]
        gain = 100 * (t["accuracy"] - f["accuracy"])
        per = " ".join(f"{v:.2f}" for v in t["per_fold"])
        speech = r["backbone"].split(":")[0] in ("speech-embedding", "wav2vec2", "hubert", "whisper")
        backbone = r["backbone"] + (" (*speed off*)" if speech and "speed" not in str(t.get("recipe", "")) else "")
        body.append(f"| {r['set']} | {backbone} | {len(r['folds'])} | {f['accuracy']:.3f} ± {f['std']:.3f} | "
                    f"{t['accuracy']:.3f} ± {t['std']:.3f} | {gain:+.1f} pts | {per} | {t['seconds_per_epoch']:.1f} "
                    f"({t['train_clips_per_fold']:.0f}) | {r['peak_rss_mb']:.0f} MB | {r['started']}, "
                    f"{r['load_start']} → {r['load_end']} |")
    write_section("Fine-tuning", "\n".join(body))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--choose", action="store_true")
    ap.add_argument("--nested", action="store_true", help="nested CV of fine-tuning recipes (--candidates filters)")
    ap.add_argument("--backbones", default="efficientat:mn04_as,speech-embedding,yamnet")
    ap.add_argument("--sets", default="speech-commands-mini,esc50-subset")  # --choose: use speech-commands-mini
    ap.add_argument("--folds", type=int, default=0, help="only the first N folds (0: all)")
    ap.add_argument("--one", nargs=3, metavar=("BACKBONE", "SET", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--esc50-sized", action="store_true", help="time one fold of 1600 clips of 5 s (mn04)")
    ap.add_argument("--precision", action="store_true", help="float32 against bfloat16 training (dev split)")
    ap.add_argument("--candidates", default="", help="--choose: only candidates whose names contain one of these (;-separated)")
    ap.add_argument("--scratch", default="/tmp/tfaudio-finetune-bench", help="where --esc50-sized writes its clips")
    ap.add_argument("--shared", action="store_true", help="say in the section that the machine was shared")
    ap.add_argument("--speed", action="store_true", help="seconds per epoch and peak memory per backbone")
    ap.add_argument("--speed-one", nargs=3, metavar=("BACKBONE", "SET", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=3, help="--speed: epochs per backbone")
    args = ap.parse_args()
    if args.speed_one:
        speed_one(*args.speed_one[:2], args.epochs, pathlib.Path(args.speed_one[2]))
        return
    if args.speed:
        speed(args)
        return
    if args.one:
        one(args.one[0], args.one[1], args.folds or None, pathlib.Path(args.one[2]))
        return
    if args.choose:
        choose(args)
        return
    if args.nested:
        nested(args)
        return
    if args.precision:
        precision(args)
        return
    if args.esc50_sized:
        esc50_sized_fold(args)
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for backbone in args.backbones.split(","):
        for set_name in args.sets.split(","):
            out = RESULTS.parent / f".finetune-{os.getpid()}.json"
            cmd = [sys.executable, __file__, "--one", backbone, set_name, str(out), "--folds", str(args.folds)]
            print(" ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
            row = json.loads(out.read_text())
            out.unlink()
            results[f"{set_name} {backbone}"] = row
            print(json.dumps({k: row[k] for k in ("frozen", "finetuned")}, default=float)[:600], flush=True)
            RESULTS.parent.mkdir(exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=1, default=float))
            report(results)


if __name__ == "__main__":
    main()
