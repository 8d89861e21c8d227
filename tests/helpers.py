"""Small shared test helpers: seeded signal generators, file writers and ../shared assets."""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("TFAUDIO_SHARED", ROOT.parent / "shared"))


def shared(*parts: str) -> pathlib.Path:
    """Path to an asset in ``../shared``; skips the calling test with a reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs the shared asset {path} (see ../shared/ASSETS.md); it is not on this machine")
    return path


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5, phase: float = 0.0) -> np.ndarray:
    """A float32 sine tone."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def noise(seconds: float, rate: int, seed: int = 0, amplitude: float = 0.3) -> np.ndarray:
    """Seeded uniform white noise in [-amplitude, amplitude], float32."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-amplitude, amplitude, int(round(seconds * rate))).astype(np.float32)


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(int(round(seconds * rate)), np.float32)


def write_audio(path, audio: np.ndarray, rate: int, subtype: str | None = None, format: str | None = None):
    """Write ``audio`` ([samples] or [samples, channels]) with soundfile; returns the path."""
    import soundfile as sf

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, subtype=subtype, format=format)
    return path


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Error of ``estimate`` against ``reference`` in dB (negative is better)."""
    err = np.mean((np.asarray(estimate, np.float64) - reference) ** 2)
    return float(10 * np.log10(err / np.mean(np.asarray(reference, np.float64) ** 2) + 1e-30))
