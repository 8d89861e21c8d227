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


class ToyBackbone:
    """A tiny deterministic backbone for fast tests of the cache, heads and tasks (not a product
    backbone): log energies in ``bands`` equal frequency bands of each 0.96 s patch, hop 0.48 s,
    padded like YAMNet. Real backbones are tested in their own files."""

    def __init__(self, sample_rate: int = 16000, bands: int = 8, tag: str = "toy"):
        from tfaudio.backbones.backbone import InputContract

        self.contract = InputContract(sample_rate, 0.96, 0.48, bands, 0.975)
        self.tag = tag
        self.calls = 0
        self.class_names = None

    @property
    def fingerprint(self) -> str:
        return f"toy-{self.tag}-{self.contract.embedding_dim}"

    def spec(self) -> dict:
        return {"name": "toy", "source": self.tag}

    def num_frames(self, num_samples: int) -> int:
        c = self.contract
        return 1 + int(np.ceil(max(0, num_samples - c.min_samples) / c.hop_samples))

    def frames(self, waveform) -> np.ndarray:
        c = self.contract
        w = np.asarray(waveform, np.float32)
        n = self.num_frames(len(w))
        padded = np.zeros(c.min_samples + (n - 1) * c.hop_samples, np.float32)
        padded[: len(w)] = w
        win = int(round(c.frame_seconds * c.sample_rate))
        frames = np.stack([padded[i * c.hop_samples : i * c.hop_samples + win] for i in range(n)])
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        usable = (power.shape[1] // c.embedding_dim) * c.embedding_dim
        bands = power[:, :usable].reshape(n, c.embedding_dim, -1).sum(axis=2)
        return np.log(bands + 1e-3).astype(np.float32)

    def batch_frames(self, waveforms, lengths):
        import tensorflow as tf

        self.calls += 1
        waveforms, lengths = np.asarray(waveforms), np.asarray(lengths)
        per = [np.asarray(self.frames(w[:n])) for w, n in zip(waveforms, lengths)]
        f = max(len(p) for p in per)
        emb = np.zeros([len(per), f, self.contract.embedding_dim], np.float32)
        mask = np.zeros([len(per), f], bool)
        for i, p in enumerate(per):
            emb[i, : len(p)], mask[i, : len(p)] = p, True
        return tf.constant(emb), tf.constant(mask)


def tone_dataset(root, n_per_class: int = 6, rate: int = 16000, seconds: float = 1.5, folds: int = 3):
    """Write a small labelled data set (classes 'low' 300 Hz tones, 'high' 3.5 kHz tones, 'hiss'
    noise, with seeded jitter) as WAV files; returns a Manifest with folds 1..``folds``."""
    import pandas as pd

    from tfaudio.data.manifest import Manifest

    rng = np.random.default_rng(0)
    rows = []
    for label, freq in (("low", 300.0), ("high", 3500.0), ("hiss", None)):
        for i in range(n_per_class):
            if freq is None:
                audio = noise(seconds, rate, seed=int(rng.integers(1 << 30)))
            else:
                audio = sine(freq * rng.uniform(0.95, 1.05), seconds, rate) + noise(seconds, rate, seed=i, amplitude=0.01)
            path = write_audio(pathlib.Path(root) / label / f"{label}_{i}.wav", audio, rate)
            rows.append({"path": str(path), "label": label, "fold": i % folds + 1})
    return Manifest(pd.DataFrame(rows), labels=["low", "high", "hiss"])


def pytorch_layout_weights(model) -> dict:
    """A transformers TF model's weights named and laid out as its PyTorch checkpoint (what the hub's
    ``model.safetensors`` holds): ``{pytorch name: numpy array}``. Write them with
    ``safetensors.numpy.save_file(weights, path, metadata={"format": "pt"})``."""
    from transformers.modeling_tf_pytorch_utils import TransposeType, convert_tf_weight_name_to_pt_weight_name

    out = {}
    for w in model.weights:
        name, transpose = convert_tf_weight_name_to_pt_weight_name(
            w.name, start_prefix_to_remove=model.name + "/", tf_weight_shape=w.shape)
        value = w.numpy()
        if transpose is TransposeType.CONV1D:
            value = value.transpose(2, 1, 0)
        elif transpose is TransposeType.SIMPLE:
            value = value.T
        elif transpose is not TransposeType.NO:
            raise NotImplementedError(f"{w.name}: {transpose}")
        out[name] = np.ascontiguousarray(value)
    return out

