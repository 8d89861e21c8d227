"""EfficientAT's MobileNetV3 (``mn``) hyper-parameters, its block table and its released checkpoints, as data.

Source: the published architecture of EfficientAT (F. Schmid, K. Koutini, G. Widmer, "Efficient
Large-Scale Audio Tagging via Transformer-to-CNN Knowledge Distillation", ICASSP 2023; github
fschmid56/EfficientAT ``models/mn``, MIT), itself torchvision's MobileNetV3-Large adapted to one
input channel:

- a 3×3 stride-2 convolution to 16·w channels, batch norm (ε = 0.001), Hardswish;
- 15 inverted-residual blocks (:data:`BLOCKS`): an optional 1×1 expansion (when the expanded width
  differs from the input width), a k×k depthwise convolution, squeeze-excitation on some blocks
  (channel-wise, global mean over frequency and time, bottleneck ``make_divisible(c // 4)``, ReLU,
  then a *sigmoid* gate — not MobileNetV3's hard sigmoid), a 1×1 projection without activation,
  and a residual connection when the stride is 1 and the widths agree; every convolution is followed
  by batch norm, and by ReLU ("RE") or Hardswish ("HS") except the projection;
- a 1×1 convolution to 6× the last block's width, batch norm, Hardswish;
- the "mlp" head: global average pool → Linear (``classifier.2``, ``make_divisible(1280·w)`` units)
  → Hardswish → dropout → Linear (``classifier.5``, 527 AudioSet logits); sigmoid scores.

Widths scale with ``w`` through :func:`make_divisible` (multiples of 8, never more than 10 % below
``c·w``); convolutions pad ``(k - 1) // 2`` on every side, no bias (batch norm follows). Five stride-2
layers: the feature map is 1/32 of the log-mel in frequency (128 → 4) and in time (one column per
32 STFT frames = 0.32 s at 32 kHz).
"""
from __future__ import annotations

import dataclasses
import re

from tfaudio.backbones.efficientat.frontend import EfficientATFrontendConfig

__all__ = ["BlockSpec", "Block", "BLOCKS", "EfficientATParams", "Release", "RELEASES", "RELEASE_URL",
           "make_divisible", "width_from_name"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """``value`` rounded to a multiple of ``divisor`` (at least ``min_value``, default ``divisor``),
    rounded up once more when rounding lost over 10 % (the MobileNet rule).

    Example:
        >>> make_divisible(16 * 0.4), make_divisible(24 * 0.4), make_divisible(1280 * 0.4)
        (8, 16, 512)
    """
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block at width 1.0 (MobileNetV3-Large's table).

    Args:
        kernel: depthwise kernel size (3 or 5).
        expanded: channels of the expansion (at width 1.0).
        out: output channels (at width 1.0).
        use_se: squeeze-excitation after the depthwise convolution.
        activation: ``"RE"`` (ReLU) or ``"HS"`` (Hardswish).
        stride: depthwise stride (1, or 2 to halve frequency and time).
    """

    kernel: int
    expanded: int
    out: int
    use_se: bool
    activation: str
    stride: int


#: features.1 .. features.15; the first block's input is the stem's 16 channels (at width 1.0).
BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(3, 16, 16, False, "RE", 1),
    BlockSpec(3, 64, 24, False, "RE", 2),
    BlockSpec(3, 72, 24, False, "RE", 1),
    BlockSpec(5, 72, 40, True, "RE", 2),
    BlockSpec(5, 120, 40, True, "RE", 1),
    BlockSpec(5, 120, 40, True, "RE", 1),
    BlockSpec(3, 240, 80, False, "HS", 2),
    BlockSpec(3, 200, 80, False, "HS", 1),
    BlockSpec(3, 184, 80, False, "HS", 1),
    BlockSpec(3, 184, 80, False, "HS", 1),
    BlockSpec(3, 480, 112, True, "HS", 1),
    BlockSpec(3, 672, 112, True, "HS", 1),
    BlockSpec(5, 672, 160, True, "HS", 2),
    BlockSpec(5, 960, 160, True, "HS", 1),
    BlockSpec(5, 960, 160, True, "HS", 1),
)


@dataclasses.dataclass(frozen=True)
class Block:
    """A block with its channel counts at a given width (see :attr:`EfficientATParams.blocks`)."""

    index: int  # features.<index>
    inputs: int
    kernel: int
    expanded: int
    out: int
    se_channels: int  # squeeze-excitation bottleneck (0: no SE)
    hardswish: bool
    stride: int

    @property
    def has_expansion(self) -> bool:
        return self.expanded != self.inputs

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.inputs == self.out


@dataclasses.dataclass(frozen=True)
class EfficientATParams:
    """Everything that defines an EfficientAT ``mn`` model's computation (weights aside).

    Args:
        width_mult: the width multiplier (``mn04`` = 0.4, ``mn10`` = 1.0, ``mn40`` = 4.0).
        num_classes: output classes (527 AudioSet classes).
        frontend: the log-mel settings (32 kHz, 128 mel bands, 10 ms hop).
        batchnorm_epsilon: ε of every batch norm (EfficientAT: 0.001).
        se_reduction: squeeze-excitation bottleneck divisor.
        stem_channels: channels of the first convolution at width 1.0.
        head_channels: hidden units of the classifier at width 1.0 (``classifier.2``).
        last_conv_factor: the last 1×1 convolution has this many times the last block's channels.
        blocks: the block table at width 1.0.
    """

    width_mult: float = 0.4
    num_classes: int = 527
    frontend: EfficientATFrontendConfig = EfficientATFrontendConfig()
    batchnorm_epsilon: float = 1e-3
    se_reduction: int = 4
    stem_channels: int = 16
    head_channels: int = 1280
    last_conv_factor: int = 6
    blocks_table: tuple[BlockSpec, ...] = BLOCKS

    def __post_init__(self):
        if not 0 < self.width_mult <= 16:
            raise ValueError(f"width_mult must be in (0, 16], got {self.width_mult!r} (EfficientAT releases "
                             "0.1 to 4.0).")

    def channels(self, base: int) -> int:
        """``base`` channels at this width."""
        return make_divisible(base * self.width_mult)

    @property
    def stem(self) -> int:
        return self.channels(self.stem_channels)

    @property
    def blocks(self) -> tuple[Block, ...]:
        """The block table at this width (features.1 .. features.15)."""
        out, prev = [], self.stem
        for i, spec in enumerate(self.blocks_table, start=1):
            expanded = self.channels(spec.expanded)
            se = make_divisible(expanded // self.se_reduction) if spec.use_se else 0
            out.append(Block(i, prev, spec.kernel, expanded, self.channels(spec.out), se,
                             spec.activation == "HS", spec.stride))
            prev = out[-1].out
        return tuple(out)

    @property
    def last_conv_channels(self) -> int:
        """Channels of the last 1×1 convolution: the clip and frame embeddings' size."""
        return self.last_conv_factor * self.blocks[-1].out

    @property
    def embedding_dim(self) -> int:
        return self.last_conv_channels

    @property
    def hidden_units(self) -> int:
        return self.channels(self.head_channels)

    @property
    def num_halvings(self) -> int:
        """Stride-2 layers (the stem and 4 blocks): the time and frequency reduction is ``2**num_halvings``."""
        return 1 + sum(b.stride == 2 for b in self.blocks)

    @property
    def last_layer_index(self) -> int:
        """``features.<index>`` of the last 1×1 convolution (16)."""
        return len(self.blocks_table) + 1


@dataclasses.dataclass(frozen=True)
class Release:
    """An official checkpoint of release v0.0.1 (github fschmid56/EfficientAT).

    Args:
        width_mult: its width.
        filename: the release asset's name.
        sha256: its full SHA-256 when known (None: the first download's hash is recorded and checked
            on later uses, as :func:`tfaudio.datasets.fetch` does).
        sha256_prefix: the start of the published hash when only that is known (checked after download).
        sha256_suffix: its end, likewise.
        size: its size in bytes when known.
    """

    width_mult: float
    filename: str
    sha256: str | None = None
    sha256_prefix: str = ""
    sha256_suffix: str = ""
    size: int | None = None

    @property
    def url(self) -> str:
        return RELEASE_URL + self.filename


RELEASE_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"

#: The AudioSet-trained ``mn`` checkpoints (mAP on AudioSet in the file name).
RELEASES: dict[str, Release] = {
    "mn01_as": Release(0.1, "mn01_as_mAP_298.pt"),
    "mn02_as": Release(0.2, "mn02_as_mAP_378.pt"),
    "mn04_as": Release(0.4, "mn04_as_mAP_432.pt",
                       sha256="899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c", size=4066513),
    "mn05_as": Release(0.5, "mn05_as_mAP_443.pt"),
    "mn10_as": Release(1.0, "mn10_as_mAP_471.pt", sha256_prefix="0bd7dc24", sha256_suffix="8a4e", size=19708753),
    "mn20_as": Release(2.0, "mn20_as_mAP_478.pt"),
    "mn30_as": Release(3.0, "mn30_as_mAP_482.pt"),
    "mn40_as": Release(4.0, "mn40_as_mAP_484.pt"),
    "mn40_as_ext": Release(4.0, "mn40_as_ext_mAP_487.pt"),
}


def width_from_name(name: str) -> float | None:
    """The width an EfficientAT model or file name states (``"mn04_as_mAP_432.pt"`` → 0.4), or None.

    Only names of the standard models count; variants with another frontend or head (``_hop_``,
    ``_mels_``, ``_fc``) and the dynamic ``dymn`` models give None.
    """
    stem = name.rsplit("/", 1)[-1]
    m = re.match(r"^mn(\d)(\d)_as(?:_ext|_no_im_pre)?(?:_mAP_\d+(?:\(\d\))?)?(?:\.pt|\.pth)?$", stem)
    if not m:
        return None
    return int(m.group(1)) + int(m.group(2)) / 10
