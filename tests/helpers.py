"""Small shared test helpers: seeded signal generators, file writers and ../shared assets."""
from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import re

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


@contextlib.contextmanager
def warns(caplog, match: str):
    """Like ``pytest.warns`` for tfaudio's one-line warnings (the ``tfaudio`` logger); yields the
    list of matching messages."""
    caplog.clear()
    found: list[str] = []
    with caplog.at_level(logging.WARNING, logger="tfaudio"):
        yield found
    found += [r.getMessage() for r in caplog.records if r.name == "tfaudio" and re.search(match, r.getMessage())]
    assert found, f"no tfaudio warning matching {match!r}; got {[r.getMessage() for r in caplog.records]}"


#: float32 machine epsilon.
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def same_computation(expected, *, terms: int = 4096, layers: int = 16) -> dict:
    """``assert_allclose`` tolerances for two float32 runs of the same network that may use different
    kernels: batch against one clip, a Keras model against its traced graph, eager against a loaded
    copy. oneDNN picks kernels (and so summation orders) per CPU and per batch shape, and these
    machines change between sessions (with and without AVX512_BF16 / AMX), so results agree only to
    the rounding of sums: about ``sqrt(terms) · eps`` of the values' scale per layer, growing like
    ``sqrt(layers)`` through the network. ``terms``: the longest sum (YAMNet's 1024-channel pointwise
    convolutions, a transformer's 3072-wide feed-forward); ``layers``: the depth. The defaults give
    3.1e-5 of the scale; measured: 1.9e-6 on 521 YAMNet scores between an AVX512_VNNI and an
    AVX512_BF16 machine. A real bug (a wrong frame, a missing mask) moves results by far more.
    """
    scale = max(1.0, float(np.abs(np.asarray(expected, np.float64)).max(initial=0.0)))
    return {"atol": float(np.sqrt(layers * terms) * FLOAT32_EPS * scale), "rtol": 0.0}


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


def _toy_backbone_class():
    from tfaudio.backbones.backbone import Backbone, InputContract

    class ToyBackbone(Backbone):
        """A tiny deterministic backbone for fast tests of the cache, heads, tasks and exports (not a
        product backbone): log energies in ``bands`` equal frequency bands of each 0.96 s patch, hop
        0.48 s, padded like YAMNet, in plain TF ops (so it exports). ``calls`` counts eager batches.
        Real backbones are tested in their own files."""

        def __init__(self, sample_rate: int = 16000, bands: int = 8, tag: str = "toy"):
            self.contract = InputContract(sample_rate, 0.96, 0.48, bands, 0.975)
            self.tag = tag
            self.calls = 0
            self.class_names = None

        @property
        def fingerprint(self) -> str:
            return f"toy-{self.tag}-{self.contract.embedding_dim}"

        def spec(self) -> dict:
            return {"name": "toy", "source": self.tag}

        @property
        def variables(self) -> list:
            return []

        def graph_outputs(self, waveforms, lengths):
            import tensorflow as tf

            c = self.contract
            win, hop, bands = c.frame_samples, c.hop_samples, c.embedding_dim
            lengths = tf.cast(lengths, tf.int32)
            counts = 1 + (tf.maximum(lengths - c.min_samples, 0) + hop - 1) // hop  # [B]
            frames = tf.reduce_max(counts)
            width = c.min_samples + (frames - 1) * hop
            x = tf.where(tf.sequence_mask(lengths, tf.shape(waveforms)[1]), waveforms, 0.0)[:, :width]
            x = tf.pad(x, [[0, 0], [0, width - tf.shape(x)[1]]])
            patches = tf.signal.frame(x, win, hop)[:, :frames]  # [B, F, win]
            power = tf.abs(tf.signal.rfft(patches)) ** 2  # [B, F, win/2 + 1]
            usable = ((win // 2 + 1) // bands) * bands
            shape = tf.shape(power)
            energy = tf.reduce_sum(tf.reshape(power[..., :usable], [shape[0], shape[1], bands, -1]), -1)
            mask = tf.sequence_mask(counts, frames)
            emb = tf.where(mask[..., None], tf.math.log(energy + 1e-3), 0.0)
            return {"embeddings": emb, "mask": mask}

        def batch_outputs(self, waveforms, lengths=None):
            self.calls += 1
            return super().batch_outputs(waveforms, lengths)

    return ToyBackbone


def _tiny_conv_backbone_class():
    import tensorflow as tf
    import tf_keras as keras

    from tfaudio.backbones.backbone import Backbone, InputContract

    class TinyConvBackbone(Backbone):
        """A tiny trainable backbone for fine-tuning tests (not a product backbone): log power spectra of
        25 ms frames (hop 10 ms, time-major ``[B, T, 33]``: the "log_mel" the fine-tuning road masks) →
        two blocks of Conv1D + batch norm + ReLU, the second with stride 4 → frames of 40 ms ``[B, T/4, 16]``.
        Weights are drawn from ``seed``, so a spec builds the same network again."""

        finetune_feature_kind = "log_mel"

        def __init__(self, sample_rate: int = 8000, seed: int = 0, tag: str = "tiny"):
            self.contract = InputContract(sample_rate, 0.04, 0.04, 16, 0.04)
            self.seed, self.tag = seed, tag
            self._fingerprint = None
            self.win, self.hop = int(0.025 * sample_rate), int(0.01 * sample_rate)
            bins = self.win // 2 + 1
            keras.utils.set_random_seed(seed)
            x = inputs = keras.Input((None, bins))
            x = keras.layers.Conv1D(16, 3, padding="same", use_bias=False, name="block1/conv")(x)
            x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="block1/bn")(x))
            x = keras.layers.Conv1D(16, 4, strides=4, padding="same", use_bias=False, name="block2/conv")(x)
            x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="block2/bn")(x))
            self.body = keras.Model(inputs, x, name="tiny_body")

        @property
        def fingerprint(self) -> str:
            if self._fingerprint is None:
                from tfaudio.backbones.backbone import weights_digest

                self._fingerprint = weights_digest("tiny", self.tag, self.body.weights)
            return self._fingerprint

        def spec(self) -> dict:
            return {"name": "tiny", "source": self.tag}

        @property
        def variables(self) -> list:
            return list(self.body.weights)

        def finetune_features(self, waveforms, lengths):
            waveforms = tf.convert_to_tensor(waveforms, tf.float32)
            lengths = tf.cast(lengths, tf.int32)
            x = tf.where(tf.sequence_mask(lengths, tf.shape(waveforms)[1]), waveforms, 0.0)
            x = tf.pad(x, [[0, 0], [0, self.win]])
            power = tf.abs(tf.signal.stft(x, self.win, self.hop, self.win)) ** 2
            spec = (tf.math.log(power + 1e-6) + 4.0) / 4.0  # [B, T, bins], about unit scale
            frames = tf.maximum((lengths + self.hop - 1) // self.hop, 1)
            return spec[:, : tf.reduce_max(frames)], frames

        def finetune_frames(self, features, state, training):
            emb = self.body(features, training=training)  # [B, ceil(T/4), 16]
            mask = tf.sequence_mask((state + 3) // 4, tf.shape(emb)[1])
            return tf.where(mask[..., None], emb, 0.0), mask

        def finetune_blocks(self):
            return [(b, [w for layer in self.body.layers if layer.name.startswith(b + "/") for w in layer.weights
                         if w.trainable]) for b in ("block1", "block2")]

        def graph_outputs(self, waveforms, lengths):
            emb, mask = self.finetune_frames(*self.finetune_features(waveforms, lengths), training=False)
            return {"embeddings": emb, "mask": mask}

    return TinyConvBackbone


def __getattr__(name: str):
    if name == "ToyBackbone":  # built on first use: importing tests.helpers must not import TensorFlow
        globals()[name] = cls = _toy_backbone_class()
        return cls
    if name == "TinyConvBackbone":
        globals()[name] = cls = _tiny_conv_backbone_class()
        return cls
    raise AttributeError(name)


def tflite_window_scores(path, windows: np.ndarray, *, shape: list | None = None, num_threads: int | None = None) -> np.ndarray:
    """A TFLite file's first output on each window (one ``invoke()`` per window of ``windows [n, S]``),
    through tfaudio's interpreter; ``shape``: the ``[input shape, output shape]`` the file must have."""
    from tfaudio.interpreter import tflite_interpreter

    it = tflite_interpreter(path, **({"num_threads": num_threads} if num_threads else {}))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if shape is not None:
        assert [list(inp["shape"]), list(out["shape"])] == shape
    scores = []
    for w in windows:
        it.set_tensor(inp["index"], w[None].astype(np.float32))
        it.invoke()
        scores.append(it.get_tensor(out["index"])[0].copy())
    return np.array(scores)


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

