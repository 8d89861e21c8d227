"""Synthetic soundscapes from ESC-50 clips, with strong labels (for tests, benchmarks and demos).

Foreground clips (ESC-50 categories, trimmed to their audible part: 20 ms frames within 20 dB of the
clip's loudest) are placed at random onsets over a looped background (other ESC-50 categories, e.g. rain and
sea waves) at random event-to-background ratios; up to ``--polyphony`` clips overlap. Each clip's
audible stretches (less than 0.5 s apart joined) are its reference events, so a dog barking twice
is two events. Written block
by block (bounded memory, so hours are fine): ``<name>.flac`` and ``<name>.tsv`` (DCASE / DESED
``filename onset offset event_label``) per soundscape.

    python benchmarks/soundscapes.py --out /tmp/scapes --count 3 --seconds 600 --folds 5
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

FOREGROUND = ("dog", "rooster", "crying_baby", "sneezing", "clock_tick", "helicopter", "chainsaw", "cat")
BACKGROUND = ("rain", "sea_waves")


@dataclasses.dataclass
class Placed:
    onset: float
    label: str
    audio: np.ndarray  # at the soundscape's rate, gain applied

    def offset(self, rate: int) -> float:
        return self.onset + len(self.audio) / rate


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def _frame_db(x: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    hop = max(1, int(0.02 * rate))
    n = max(1, len(x) // hop)
    frames = np.pad(x, (0, max(0, n * hop - len(x))))[: n * hop].reshape(n, hop)
    return 10 * np.log10(np.mean(np.square(frames, dtype=np.float64), axis=1) + 1e-12), hop


def audible(x: np.ndarray, rate: int, floor_db: float = 20.0) -> np.ndarray:
    """The clip from its first to its last 20 ms frame within ``floor_db`` of its loudest frame."""
    db, hop = _frame_db(x, rate)
    loud = np.flatnonzero(db >= db.max() - floor_db)
    return x[loud[0] * hop : (loud[-1] + 1) * hop]


def audible_spans(x: np.ndarray, rate: int, floor_db: float = 20.0, gap: float = 0.5) -> list[tuple[float, float]]:
    """The audible stretches of a (trimmed) clip in seconds: runs of frames within ``floor_db`` of its
    loudest, runs less than ``gap`` apart joined (a dog's barks one second apart are two events)."""
    db, hop = _frame_db(x, rate)
    on = np.concatenate([[0], (db >= db.max() - floor_db).astype(np.int8), [0]])
    starts, ends = np.flatnonzero(np.diff(on) == 1), np.flatnonzero(np.diff(on) == -1)
    spans: list[list[float]] = []
    for a, b in zip(starts * hop / rate, np.minimum(ends * hop, len(x)) / rate, strict=True):
        if spans and a - spans[-1][1] < gap:
            spans[-1][1] = b
        else:
            spans.append([a, b])
    return [(round(a, 3), round(b, 3)) for a, b in spans]


def load_clips(esc50: pathlib.Path, categories, folds, rate: int) -> dict[str, list[np.ndarray]]:
    """ESC-50 clips of ``categories`` from ``folds`` at ``rate`` (tfaudio's decoder and resampler)."""
    import pandas as pd

    from tfaudio.data.audio_converter import AudioConverter

    meta = pd.read_csv(esc50 / "meta" / "esc50.csv")
    meta = meta[meta.category.isin(categories) & meta.fold.isin(folds)]
    conv = AudioConverter(rate)
    clips: dict[str, list[np.ndarray]] = {c: [] for c in categories}
    for row in meta.itertuples():
        clips[row.category].append(conv(str(esc50 / "audio" / row.filename)))
    return {c: v for c, v in clips.items() if v}


def plan(seconds: float, rate: int, fg: dict[str, list[np.ndarray]], rng: np.random.Generator, *,
         mean_gap: float = 6.0, polyphony: int = 2, ebr_db: tuple[float, float] = (0.0, 12.0),
         background_rms: float = 0.02) -> list[Placed]:
    """Random events over ``seconds``: exponential gaps (mean ``mean_gap``), at most ``polyphony`` at once."""
    events: list[Placed] = []
    labels = sorted(fg)
    t = float(rng.exponential(mean_gap / 2))
    while t < seconds - 0.5:
        label = labels[int(rng.integers(len(labels)))]
        clip = audible(fg[label][int(rng.integers(len(fg[label])))], rate)
        clip = clip[: int((seconds - t) * rate)]
        active = [e for e in events if e.offset(rate) > t]
        if len(active) < polyphony and len(clip) > int(0.1 * rate) and all(e.label != label for e in active):
            gain = background_rms * 10 ** (rng.uniform(*ebr_db) / 20) / _rms(clip)
            events.append(Placed(round(t, 3), label, (clip * gain).astype(np.float32)))
        t += float(rng.exponential(mean_gap))
    return events


def render(path: pathlib.Path, seconds: float, rate: int, events: list[Placed], background: np.ndarray, *,
           block_seconds: float = 60.0) -> None:
    """Writes the soundscape block by block (FLAC, 16-bit)."""
    import soundfile as sf

    total, block = int(round(seconds * rate)), int(block_seconds * rate)
    starts = [(int(round(e.onset * rate)), e) for e in events]
    with sf.SoundFile(str(path), "w", rate, 1, subtype="PCM_16", format="FLAC") as f:
        for a in range(0, total, block):
            b = min(total, a + block)
            idx = np.arange(a, b) % len(background)
            out = background[idx].copy()
            for s, e in starts:
                lo, hi = max(a, s), min(b, s + len(e.audio))
                if lo < hi:
                    out[lo - a : hi - a] += e.audio[lo - s : hi - s]
            f.write(np.clip(out, -1, 1))


def make(out: pathlib.Path, name: str, seconds: float, rate: int, fg, bg, rng, *, background_rms: float = 0.02,
         **kw) -> tuple[pathlib.Path, list]:
    """One soundscape ``<name>.flac`` with its strong labels ``<name>.tsv`` in ``out``."""
    from tfaudio.io.atomic import atomic_write_text
    from tfaudio.io.strong_labels import Event, format_strong_labels

    loop = np.concatenate([audible(c, rate) for lst in bg.values() for c in lst[:6]])
    background = (loop * (background_rms / _rms(loop))).astype(np.float32)
    events = plan(seconds, rate, fg, rng, background_rms=background_rms, **kw)
    audio = out / f"{name}.flac"
    render(audio, seconds, rate, events, background)
    strong = [Event(round(e.onset + a, 3), round(e.onset + b, 3), e.label, 1.0, audio.name)
              for e in events for a, b in audible_spans(e.audio, rate)]
    strong.sort(key=lambda x: (x.onset, x.label))
    atomic_write_text(out / f"{name}.tsv", format_strong_labels(strong, scores=False, files=[audio.name]))
    return audio, strong


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--seconds", type=float, default=600.0)
    p.add_argument("--rate", type=int, default=44100)
    p.add_argument("--folds", default="5", help="ESC-50 folds the clips come from (e.g. the test fold)")
    p.add_argument("--polyphony", type=int, default=2)
    p.add_argument("--mean-gap", type=float, default=6.0, help="mean seconds between event onsets")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from benchmarks._common import shared_dir

    esc50 = shared_dir() / "data" / "esc50-subset"
    folds = [int(x) for x in args.folds.split(",")]
    fg = load_clips(esc50, FOREGROUND, folds, args.rate)
    bg = load_clips(esc50, BACKGROUND, folds, args.rate)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for i in range(args.count):
        audio, strong = make(out, f"soundscape_{i:02d}", args.seconds, args.rate, fg, bg, rng,
                             polyphony=args.polyphony, mean_gap=args.mean_gap)
        print(f"{audio}: {args.seconds:g} s, {len(strong)} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
