"""Training precision: float32, bfloat16 on CPUs that have it, float16 on GPUs that have it.

Both reduced precisions are TensorFlow's graph rewrites of the training step (Grappler's automatic
mixed precision), not a Keras dtype policy: the backbones are plain TF graphs and Keras layers built
in float32, and the rewrite casts what is safe to compute in 16 bits (convolutions, matmuls) while
variables, the loss and the reductions stay float32. It applies to the functions first run inside
:func:`training_rewrite`, in this thread only (:func:`tfaudio.backbones.engines.graph_rewrite`).

- ``bfloat16``: oneDNN's rewrite, on CPUs with native bfloat16 (AVX512_BF16 / AMX). bfloat16 has
  float32's range, so gradients need no loss scaling.
- ``float16``: the rewrite TensorFlow's ``mixed_float16`` uses on GPUs, where compute capability
  >= 7.0 (tensor cores) makes it pay. float16's range is narrow: small gradients underflow, so the loss
  is multiplied by a :class:`DynamicLossScale` before the backward pass and the gradients divided by it
  after; a step whose gradients are not finite is skipped and the scale halved; after
  ``growth_steps`` finite steps in a row it doubles (the scheme of ``keras.mixed_precision.LossScaleOptimizer``,
  over the several optimizers of a fine-tuning run at once).

On a CPU, TensorFlow can emulate the float16 rewrite (``auto_mixed_precision_cpu``: float16 at every
op's inputs and outputs, float32 inside): the tests train that way (``TFAUDIO_FLOAT16_EMULATE=1``), which
checks the rewrite reaches the step and the loss scaling, not the GPU's speed.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import tensorflow as tf

from tfaudio.backbones.engines import bfloat16_native, graph_rewrite

__all__ = ["precision_choice", "float16_support", "gpu_float16_support", "training_rewrite", "DynamicLossScale", "PRECISIONS"]

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
#: Set to 1 to train ``precision="float16"`` on a CPU through TensorFlow's float16 emulation (tests).
EMULATE_ENV = "TFAUDIO_FLOAT16_EMULATE"


def _emulated() -> bool:
    return os.environ.get(EMULATE_ENV, "") not in ("", "0")


def gpu_float16_support() -> tuple[bool, str]:
    """(whether a GPU here computes float16 fast, why): compute capability >= 7.0 (tensor cores)."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False, "no GPU found (float16 is slower than float32 on CPUs)"
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        cc = details.get("compute_capability")
        if cc and tuple(cc) >= (7, 0):
            return True, f"GPU {details.get('device_name', gpu.name)} has compute capability {cc[0]}.{cc[1]}"
    return False, "no GPU with compute capability >= 7.0 (float16 tensor cores)"


def float16_support() -> tuple[bool, str]:
    """(whether float16 training pays here, why): :func:`gpu_float16_support`, or the CPU emulation
    when ``TFAUDIO_FLOAT16_EMULATE=1`` (tests)."""
    if _emulated():
        return True, f"emulated on the CPU ({EMULATE_ENV}=1: float16 at op boundaries, float32 inside; for tests)"
    return gpu_float16_support()


def precision_choice(requested: str) -> tuple[str, str]:
    """(``"float32"``, ``"bfloat16"`` or ``"float16"``, why) for a fine-tuning ``precision``.

    ``auto`` takes float16 on a GPU that has tensor cores, else float32: bfloat16 training did not pay
    on the one AVX512_BF16 CPU it was measured on (BENCHMARKS.md "Fine-tuning: bfloat16"), so it is
    used only when asked for.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if requested == "float32":
        return "float32", "asked for"
    if requested == "bfloat16":
        if bfloat16_native():
            return "bfloat16", "asked for; this CPU has native bfloat16 (AVX512_BF16/AMX)"
        return "float32", "bfloat16 asked for, but this CPU has no native bfloat16 (it would be emulated, slower)"
    half, why = float16_support()
    if requested == "float16":
        return ("float16", f"asked for; {why}") if half else ("float32", f"float16 asked for, but {why}")
    if half and not _emulated():
        return "float16", f"auto: {why}"
    return "float32", ("auto: float32 (bfloat16 training did not pay: BENCHMARKS.md 'Fine-tuning: bfloat16')"
                       if bfloat16_native() else "auto: no GPU with float16 tensor cores, no native bfloat16")


@contextlib.contextmanager
def training_rewrite(precision: str) -> Iterator[None]:
    """The graph rewrite of ``precision`` for the functions first run inside (none for float32)."""
    if precision == "bfloat16":
        option = "auto_mixed_precision_onednn_bfloat16"
    elif precision == "float16":
        option = "auto_mixed_precision_cpu" if _emulated() else "auto_mixed_precision"
    else:
        yield
        return
    with graph_rewrite(option):
        yield


class DynamicLossScale(tf.Module):
    """A loss scale for float16 gradients: halved after a step with non-finite gradients (that step is
    skipped), doubled after ``growth_steps`` finite steps in a row. Its two variables belong in the
    run's checkpoint, so a resumed run goes on with the scale it had."""

    def __init__(self, initial_scale: float = 2.0**15, growth_steps: int = 2000, name: str = "loss_scale"):
        super().__init__(name=name)
        self.growth_steps = int(growth_steps)
        self.scale = tf.Variable(float(initial_scale), trainable=False, dtype=tf.float32, name="scale")
        self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="good_steps")

    @staticmethod
    def all_finite(grads) -> tf.Tensor:
        """Whether every gradient (None ones ignored) is finite."""
        checks = [tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None]
        return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)

    def update(self, finite) -> None:
        """After a step: ``finite`` says whether its gradients were (a bool tensor)."""
        grown = self.good_steps + 1 >= self.growth_steps
        self.scale.assign(tf.where(finite, tf.where(grown, self.scale * 2.0, self.scale),
                                   tf.maximum(self.scale / 2.0, 1.0)))
        self.good_steps.assign(tf.where(tf.logical_and(finite, tf.logical_not(grown)), self.good_steps + 1,
                                        tf.zeros_like(self.good_steps)))
