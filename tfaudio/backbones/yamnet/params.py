"""YAMNet's published hyper-parameters and its layer table, as data.

Sources: the YAMNet model card and README (tensorflow/models ``research/audioset/yamnet``): 16 kHz,
25 ms / 10 ms STFT, 64 mel bands 125–7500 Hz, log(mel + 0.001), 0.96 s patches every 0.48 s, a
MobileNet-v1 body (one 3×3 convolution, then 13 depthwise-separable blocks), batch norm with a
learned offset and no scale (ε = 1e-4), "same" padding, no convolution bias, a 1024-d average-pooled
embedding and 521 sigmoid AudioSet scores.
"""
from __future__ import annotations

import dataclasses

from tfaudio.signal.melspec import LogMelConfig


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One block of the body: ``kind`` is ``"conv"`` (full 3×3 conv) or ``"separable"`` (3×3
    depthwise then 1×1 pointwise); ``filters`` output channels; ``stride`` of the 3×3 conv."""

    kind: str
    filters: int
    stride: int


#: layer1 .. layer14; the Keras layer names are ``layer{i}/conv`` or ``layer{i}/depthwise_conv`` and
#: ``layer{i}/pointwise_conv``, each followed by ``.../bn`` (the names of the official weights).
LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec("conv", 32, 2),
    LayerSpec("separable", 64, 1),
    LayerSpec("separable", 128, 2),
    LayerSpec("separable", 128, 1),
    LayerSpec("separable", 256, 2),
    LayerSpec("separable", 256, 1),
    LayerSpec("separable", 512, 2),
    *(LayerSpec("separable", 512, 1),) * 5,
    LayerSpec("separable", 1024, 2),
    LayerSpec("separable", 1024, 1),
)


@dataclasses.dataclass(frozen=True)
class YAMNetParams:
    """Everything that defines YAMNet's computation (weights aside).

    Args:
        frontend: the log-mel patch settings (16 kHz, 0.96 s / 0.48 s patches of 96×64).
        num_classes: AudioSet classes of the output layer.
        batchnorm_epsilon: ε of every batch norm.
        conv_padding: padding of every convolution.
        layers: the body's block table.
    """

    frontend: LogMelConfig = LogMelConfig()
    num_classes: int = 521
    batchnorm_epsilon: float = 1e-4
    conv_padding: str = "same"
    layers: tuple[LayerSpec, ...] = LAYERS

    @property
    def embedding_dim(self) -> int:
        return self.layers[-1].filters

    @property
    def num_blocks(self) -> int:
        return len(self.layers)
