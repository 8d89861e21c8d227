"""Google's speech embedding model: its settings and its layer table, as data.

Read off openWakeWord's ``embedding_model.tflite`` (TF Hub ``google/speech_embedding/1``, Apache-2.0;
the model of J. Lin et al., "Training Keyword Spotters with Limited and Synthesized Speech Data",
ICASSP 2020): log-mel windows ``[76, 32]`` → zero-pad the 32 mel bands to 34 → 19 convolutions
(factorised 1×3 / 3×1 after the first 3×3; batch norm folded into their biases), each followed by
a leaky ReLU (α 0.2) clipped below at -0.4, five max-pools, and a last 3×1 convolution with neither
activation → one 96-d embedding per window.

Only "valid" convolutions and 2-step pools shrink the time axis, 8 frames per window step in all,
so the body runs fully convolutionally over a clip's whole mel spectrogram and yields exactly the
embedding of each 76-frame window every 8 frames (80 ms), as openWakeWord cuts them.
"""
from __future__ import annotations

import dataclasses

from tfaudio.backbones.speech_embedding.frontend import SpeechMelConfig


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One layer: ``kind`` ``"conv"`` (Conv2D with bias, then the clipped leaky ReLU unless
    ``activation`` is False) or ``"pool"`` (MaxPool2D); ``size`` (time, mel) kernel or pool size;
    ``padding`` ``"same"`` / ``"valid"``; ``filters`` for convolutions. Pools stride by their size."""

    kind: str
    size: tuple[int, int]
    padding: str
    filters: int = 0
    activation: bool = True


def _block(filters: int) -> tuple[LayerSpec, ...]:
    """The factorised pair repeated through the body: 1×3 "same" over mel, 3×1 "valid" over time."""
    return (LayerSpec("conv", (1, 3), "same", filters), LayerSpec("conv", (3, 1), "valid", filters))


#: The body after the mel padding, in the file's order (its CONV_2D / MAX_POOL_2D ops one to one).
LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("conv", (3, 3), "valid", 24),
    LayerSpec("conv", (1, 3), "same", 24),
    LayerSpec("conv", (3, 1), "valid", 24),
    LayerSpec("pool", (2, 2), "valid"),
    *_block(48), *_block(48),
    LayerSpec("pool", (1, 2), "same"),
    *_block(72), *_block(72),
    LayerSpec("pool", (2, 2), "valid"),
    *_block(96), *_block(96),
    LayerSpec("pool", (1, 2), "valid"),
    *_block(96), *_block(96),
    LayerSpec("pool", (2, 2), "valid"),
    LayerSpec("conv", (3, 1), "valid", 96, activation=False),
)


@dataclasses.dataclass(frozen=True)
class SpeechEmbeddingParams:
    """Everything that defines the model's computation (weights aside).

    Args:
        frontend: the mel spectrogram settings (:mod:`tfaudio.backbones.speech_embedding.frontend`).
        patch_frames: mel frames per embedding window (76 ≈ 0.78 s).
        patch_hop_frames: mel frames between windows (8 = 80 ms).
        mel_scale, mel_offset: openWakeWord's ``x / 10 + 2`` between the two graphs, which brings
            the dB values near the scale of the TF Hub model's own frontend.
        mel_padding: zero bands added below and above the mel bands (the file's PAD op).
        leaky_alpha: slope of the leaky ReLU below 0.
        activation_floor: the floor the activations are clipped at (the file's MAXIMUM ops).
        layers: the body's layer table.
    """

    frontend: SpeechMelConfig = SpeechMelConfig()
    patch_frames: int = 76
    patch_hop_frames: int = 8
    mel_scale: float = 0.1
    mel_offset: float = 2.0
    mel_padding: int = 1
    leaky_alpha: float = 0.2
    activation_floor: float = -0.4
    layers: tuple[LayerSpec, ...] = LAYERS

    @property
    def embedding_dim(self) -> int:
        return self.layers[-1].filters

    @property
    def patch_samples(self) -> int:
        """Samples one window sees: 75 hops + one 512-sample frame (12512, 0.782 s)."""
        fe = self.frontend
        return (self.patch_frames - 1) * fe.hop_samples + fe.fft_length

    @property
    def patch_hop_samples(self) -> int:
        return self.patch_hop_frames * self.frontend.hop_samples

    @property
    def time_stride(self) -> int:
        """Frames per output step of the fully convolutional body (the product of the pools' time
        sizes; must equal ``patch_hop_frames``)."""
        stride = 1
        for spec in self.layers:
            if spec.kind == "pool":
                stride *= spec.size[0]
        return stride
