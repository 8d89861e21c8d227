"""Fine-tuning: the backbone trains with its head, end to end from the waveform — one road for every backbone.

What trains is the computation the exported model runs, split where the augmentations go in::

    waveform cache (decoded + resampled once) → speed, random crop / pad → gain, shift, mixup   (tf.data)
      → backbone.finetune_features   (its frontend: log-mel, or the waveform itself)
      → SpecAugment masks            (log-mel backbones; training only)
      → backbone.finetune_frames     (its body; dropout and, unless frozen, batch norm in training mode)
      → dropout → head, pooled as the recipe's head says (without silent frames when it has the silence
        gate): "embedding_mean" (shipped): the mean frame embedding, standardised → MLP → softmax;
        "mean": each frame standardised → MLP → softmax, the clip's score the mean of its frames' scores
        (the frozen default's head; trained on each frame's cross-entropy, as that head is); "attention"
        and "stats" as in :mod:`tfaudio.heads.classification_head`

The result is an ordinary :class:`~tfaudio.tasks.audio_classifier.AudioClassifier` (the fine-tuned
backbone's weights saved beside the head), so ``evaluate``, ``predict``, ``demo``, ``info`` and ``export``
(SavedModel, TFLite, MediaPipe metadata) take it unchanged: at inference the head and the backbone run
through :class:`~tfaudio.tasks.clip_scorer.ClipScorer`, augmentations are gone by construction.

The optimizer is AdamW, one per block of :meth:`~tfaudio.backbones.backbone.Backbone.finetune_blocks`
(layer-wise learning-rate decay: the top block learns at ``backbone_learning_rate`` times the head's
rate, each block below ``layer_decay`` times slower; the first ``freeze_blocks`` do not train), each with
linear warm-up then cosine decay, the backbone's held at 0 for the ``head_epochs`` first epochs.
Every random draw (speed, crop, gain, shift, mixup, masks, dropout) is stateless, keyed by the seed, the epoch
and the step, and a checkpoint is written after every epoch: a run killed at any point and started
again resumes after its last whole epoch and ends where the uninterrupted run ends. The training step
runs under the current ``tf.distribute`` strategy (e.g. ``MirroredStrategy`` over GPUs or CPU devices).

Example:
    >>> clf = finetune(manifest.filter_folds([1, 2, 3]), "efficientat:mn04_as", checkpoint_dir="runs/ft/ckpt")
    >>> clf.save("runs/ft")

k-fold cross-validation of fine-tuning is :func:`tfaudio.tasks.cross_validation.cross_validate_finetune`.
One file of ~700 lines on purpose: the run's plan, optimizers, data stream, training step and
checkpoints share its state (:class:`FineTuneRun`); the augmentations (``signal/augment.py``) and the
waveform cache (``data/waveform_cache.py``) are apart.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import pathlib
import shutil
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfaudio.backbones.registry import backbone_spec, get_backbone
from tfaudio.data.clip_embeddings import ClipEmbeddings
from tfaudio.data.manifest import Manifest
from tfaudio.data.waveform_cache import WaveformCache
from tfaudio.errors import ManifestError, TfaudioError
from tfaudio.heads.classification_head import build_head
from tfaudio.io.atomic import atomic_write_text
from tfaudio.signal import augment
from tfaudio.signal.frame_energy import frame_energy_db, silence_gate
from tfaudio.signal.pooling import masked_mean
from tfaudio.tasks.audio_classifier import AudioClassifier, training_clips
from tfaudio.tasks.clip_scorer import frame_head_scores
from tfaudio.tasks.head_training import TrainingData, train_head
from tfaudio.tasks.metrics import classification_report
from tfaudio.tasks.precision import DynamicLossScale, precision_choice, training_rewrite
from tfaudio.tasks.recipe import FineTuneConfig, Recipe, get_recipe

__all__ = ["finetune", "FineTuneRun", "WarmupCosine", "evaluate_waveforms", "precision_choice"]

log = logging.getLogger(__name__)
RUN_FILE = "run.json"


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """0 for ``hold`` steps, a linear rise to ``peak`` over ``warmup`` steps, then cosine decay to 0 at
    ``total`` steps."""

    def __init__(self, peak: float, total: int, warmup: int = 0, hold: int = 0):
        self.peak, self.total, self.warmup, self.hold = float(peak), int(total), int(warmup), int(hold)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        hold, warmup, total = float(self.hold), float(max(self.warmup, 0)), float(max(self.total, 1))
        rise = tf.minimum((step - hold + 1.0) / max(warmup, 1.0), 1.0)
        span = max(total - hold - warmup, 1.0)
        progress = tf.clip_by_value((step - hold - warmup) / span, 0.0, 1.0)
        cosine = 0.5 * (1.0 + tf.cos(math.pi * progress))
        lr = self.peak * tf.where(step < hold + warmup, rise, cosine)
        return tf.where(step < hold, 0.0, lr)

    def get_config(self) -> dict:
        return {"peak": self.peak, "total": self.total, "warmup": self.warmup, "hold": self.hold}


def _batchnorms(backbone: Any) -> list[keras.layers.BatchNormalization]:
    """The backbone's batch-norm layers (in its Keras body / embedder)."""
    out = []
    for owner in (getattr(backbone, "body", None), getattr(backbone, "embedder", None)):
        if isinstance(owner, keras.layers.Layer):
            out += [m for m in owner.submodules if isinstance(m, keras.layers.BatchNormalization)]
    return out


def memory_budget() -> float:
    """Bytes the training activations may take: ``TFAUDIO_FINETUNE_MEMORY_GB``, else half of the memory
    free now (on a GPU, set it to what the GPU holds, or pass ``micro_batch``)."""
    asked = os.environ.get("TFAUDIO_FINETUNE_MEMORY_GB")
    if asked:
        try:
            return float(asked) * 1e9
        except ValueError:
            raise TfaudioError(f"TFAUDIO_FINETUNE_MEMORY_GB={asked!r} is not a number of GB. Fix: e.g. 8.") from None
    try:
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 4e9


def _largest_divisor(n: int, limit: int) -> int:
    """The largest divisor of ``n`` that is at most ``limit`` (1 at least)."""
    return max(d for d in range(1, n + 1) if n % d == 0 and d <= max(limit, 1))


def _cross_entropy(targets, probs, frames=None):
    """Each clip's cross-entropy ``[B]`` against ``targets [B, C]``: of its probabilities ``probs [B, C]``,
    or, for a frame head (``frames``: (frame probabilities ``[B, F, C]``, weights ``[B, F]``)), the mean
    over the frames that count of each frame's (every frame carries its clip's label, as the frozen
    default's frame head is trained)."""
    if frames is None:
        return -tf.reduce_sum(targets * tf.math.log(tf.clip_by_value(probs, 1e-7, 1.0)), -1)
    scores, weights = frames
    per_frame = -tf.reduce_sum(targets[:, None, :] * tf.math.log(tf.clip_by_value(scores, 1e-7, 1.0)), -1)
    return masked_mean(per_frame[..., None], weights)[:, 0]


def run_digest(obj: Any) -> str:
    """16 hex digits of sha256 over ``obj`` as sorted JSON: what identifies a run's settings and data."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


#: the alphas ``interpolate="auto"`` chooses from (:meth:`FineTuneRun.interpolate`)
INTERPOLATE_GRID = (1.0, 0.75, 0.5, 0.25)


@dataclasses.dataclass
class _Plan:
    """What a run trains, fixed before it starts (a resumed run must have the same)."""

    labels: tuple[str, ...]
    crop_samples: int
    steps_per_epoch: int
    epochs: int
    batch_size: int
    blocks: list[tuple[str, list[tf.Variable]]]
    frozen: int
    class_weights: np.ndarray
    micro_batch: int = 0  # clips per forward/backward pass on one replica (0: its whole batch)


class FineTuneRun:
    """One fine-tuning run: the backbone, its head, the optimizers, the data and the checkpoints.

    Most users call :func:`finetune`; this class is the long form (build, :meth:`fit`, :meth:`classifier`).

    Args:
        backbone: a backbone or a spec for :func:`~tfaudio.backbones.registry.get_backbone`; it is trained
            in place (pass a fresh one to keep the pretrained weights).
        labels: class names in score order.
        recipe: a :class:`~tfaudio.tasks.recipe.Recipe` with ``finetune`` settings, its name or file
            (default ``"finetune"``).
        cache: the waveform cache (default: one at the backbone's rate in ``$TFAUDIO_CACHE``).
        checkpoint_dir: where a checkpoint is written after every epoch (None: no checkpoints, no resume).
        strategy: a ``tf.distribute.Strategy`` (default: the current one).
    """

    def __init__(self, backbone: Any, labels: Sequence[str], recipe: Recipe | str | None = None, *,
                 cache: WaveformCache | None = None, checkpoint_dir: str | os.PathLike | None = None,
                 strategy: tf.distribute.Strategy | None = None):
        self.recipe = get_recipe(recipe or "finetune")
        if self.recipe.finetune is None:
            self.recipe = dataclasses.replace(self.recipe, finetune=FineTuneConfig())
        self.config: FineTuneConfig = self.recipe.finetune
        self.train_config = self.recipe.train
        self.labels = tuple(labels)
        if len(self.labels) < 2:
            raise ManifestError(f"fine-tuning needs at least 2 classes, got {list(self.labels)}. Fix: select more.")
        self.strategy = strategy or tf.distribute.get_strategy()
        with self.strategy.scope():
            self.backbone = self._backbone_in_scope(backbone)
            self.head_config = dataclasses.replace(self.recipe.head, multi_label=False, ensemble=1)
            self._build_head(None)
        self.cache = cache if cache is not None else WaveformCache(self.backbone.sample_rate)
        if self.cache.sample_rate != self.backbone.sample_rate:
            raise TfaudioError(f"the waveform cache holds {self.cache.sample_rate} Hz clips; the backbone takes "
                               f"{self.backbone.sample_rate} Hz. Fix: WaveformCache({self.backbone.sample_rate}).")
        self.checkpoint_dir = pathlib.Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.precision, self.precision_note = precision_choice(self.config.precision)
        self.loss_scale: DynamicLossScale | None = None  # float16 only (built by fit)
        self.history: dict[str, list[float]] = {}
        self.epoch_seconds: list[float] = []  # wall time of each epoch this process ran
        self.plan: _Plan | None = None
        #: ``refit_head``: the classifier whose head (recipe "default", on the fine-tuned embeddings) the model keeps
        self.refit_: AudioClassifier | None = None
        #: ``interpolate``: the share of the way from the pretrained to the fine-tuned weights the backbone is at
        self.alpha_ = 1.0
        self._ends: tuple[list[np.ndarray], list[np.ndarray]] | None = None  # (pretrained, fine-tuned) weights
        #: ``interpolate="auto"``: each alpha's accuracy on the validation clips (empty otherwise)
        self.interpolation_scores_: dict[float, float] = {}

    def _build_head(self, stats: tuple[np.ndarray, np.ndarray] | None) -> None:
        """The head; with ``standardize``, its first layer standardises frame embeddings by ``stats``
        (mean, variance) of the training clips' frames under the pretrained backbone (identity when None)."""
        with self.strategy.scope():
            keras.utils.set_random_seed(self.train_config.seed)
            self.head = build_head(self.backbone.embedding_dim, len(self.labels), self.head_config, name="head",
                                   stats=stats)

    def _windows(self, plan: _Plan) -> tf.data.Dataset:
        """Batches ``(waveforms [B, S], lengths [B], labels [B])`` of the training clips in manifest order,
        each clip's window from its start (no augmentation): what the passes without gradients read."""

        def start(e):
            wave, n = augment.crop_or_pad(e["waveform"], e["length"], plan.crop_samples)
            return wave, n, e["label"]

        batch = plan.micro_batch or plan.batch_size
        return self._clips.map(start, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(2)

    def _frozen_pass(self, plan: _Plan) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray]:
        """One pass over the training clips' windows (their starts) under the backbone as it is now, no
        gradients: ((mean, variance) of the frame embeddings that count, each clip's mean frame embedding
        ``[N, D]``, each clip's label ``[N]``)."""

        @tf.function(autograph=False)
        def moments(w, n):
            emb, mask = self.backbone.finetune_frames(*self.backbone.finetune_features(w, n), training=False)
            m = tf.cast(self._counted_frames(w, n, mask), tf.float64)[..., None]
            e = tf.cast(emb, tf.float64) * m
            per_clip = tf.reduce_sum(e, 1) / tf.maximum(tf.reduce_sum(m, 1), 1.0)
            return tf.reduce_sum(e, [0, 1]), tf.reduce_sum(e * e, [0, 1]), tf.reduce_sum(m), per_clip

        total = total_sq = None
        count = 0.0
        clip_means, labels = [], []
        for w, n, y in self._windows(plan):
            s1, s2, c, per_clip = moments(w, n)
            total = s1 if total is None else total + s1
            total_sq = s2 if total_sq is None else total_sq + s2
            count += float(c)
            clip_means.append(per_clip.numpy().astype(np.float32))
            labels.append(y.numpy())
        mean = total.numpy() / max(count, 1.0)
        var = np.maximum(total_sq.numpy() / max(count, 1.0) - mean**2, 0.0)
        return (mean.astype(np.float32), var.astype(np.float32)), np.concatenate(clip_means), np.concatenate(labels)

    def _probe(self, clip_means: np.ndarray, labels: np.ndarray, plan: _Plan) -> dict[str, list[float]]:
        """Linear probing before fine-tuning (``probe_epochs``): the head trained on the pretrained
        backbone's clip embeddings. For the ``embedding_mean`` head a clip of one frame, its mean
        embedding, is the whole clip (its standardisation is per dimension, so it commutes with the mean);
        the other heads are probed on that one frame too (a frame head then starts from a head of mean
        embeddings, an approximation the fine-tuning then trains away)."""
        cfg, tc = self.config, self.train_config
        clips = ClipEmbeddings(embeddings=list(clip_means[:, None, :]), targets=np.asarray(labels, np.int32),
                               rows=np.arange(len(labels)), folds=np.full(len(labels), -1))
        data = TrainingData(clips, self.head_config, len(self.labels))
        probe = dataclasses.replace(tc, epochs=cfg.probe_epochs, batch_size=min(32, len(labels)), mixup=0.0,
                                    monitor="val_loss", verbose=0)
        plain = build_head(self.backbone.embedding_dim, len(self.labels), self.head_config, name="head")
        plain.set_weights(self.head.get_weights())  # a copy outside any distribution strategy: Adam on it, plainly
        history = train_head(plain, data, plan.class_weights, None, probe, multi_label=False)
        self.head.set_weights(plain.get_weights())
        log.info("linear probe: %d epochs, training accuracy %.3f", cfg.probe_epochs, history["accuracy"][-1])
        return history

    def _backbone_in_scope(self, backbone: Any):
        """The backbone; under a distribution strategy, built inside its scope (mirrored variables)."""
        if self.strategy.num_replicas_in_sync == 1 and not tf.distribute.has_strategy():
            return get_backbone(backbone)
        if not isinstance(backbone, (str, dict, os.PathLike)):  # an object: rebuild it in scope, same weights
            values = [v.numpy() for v in backbone.variables]
            built = get_backbone(backbone_spec(backbone))
            return built.assign_variables(values, source=f"{type(backbone).__name__} weights")
        return get_backbone(backbone)

    # ---- the model -------------------------------------------------------------------------------
    def _counted_frames(self, waveforms, lengths, mask):
        """The frames the head pools ``[B, F]`` (bool): the valid ones, minus silent ones when the head's
        silence gate is on (:mod:`tfaudio.signal.frame_energy`, as the clip scorer gates them at inference)."""
        if not self.head_config.silence_gate:
            return mask
        c = self.backbone.contract
        db = frame_energy_db(waveforms, lengths, c.frame_samples, c.hop_samples, tf.shape(mask)[1])
        return silence_gate(db, mask)

    def forward(self, waveforms, lengths, *, training: bool, seed=None):
        """Zero-padded ``waveforms [B, S]``, ``lengths [B]`` → class probabilities ``[B, C]``."""
        return self._scores(waveforms, lengths, training=training, seed=seed)[0]

    def _scores(self, waveforms, lengths, *, training: bool, seed=None):
        """(clip probabilities ``[B, C]``, None or, for a frame head (pooling ``"mean"``), (frame
        probabilities ``[B, F, C]``, the frames that count ``[B, F]`` as 0/1)): what the clip scorer computes
        at inference (:meth:`~tfaudio.tasks.clip_scorer.ClipScorer.pool_frames`), with the training
        augmentations when ``training``."""
        bb, cfg = self.backbone, self.config
        features, state = bb.finetune_features(waveforms, lengths)
        if training and bb.finetune_feature_kind == "log_mel" and (cfg.freq_mask or cfg.time_mask):
            features = augment.spec_mask(features, cfg.freq_mask, cfg.time_mask, augment.fold_seed(seed, 1))
        emb, mask = bb.finetune_frames(features, state, training)  # [B, F, D], [B, F]
        emb = tf.cast(emb, tf.float32)
        if training and cfg.dropout:  # one mask per clip, shared by its frames: dropout of their mean
            keep = 1.0 - cfg.dropout
            noise = tf.random.stateless_uniform([tf.shape(emb)[0], 1, tf.shape(emb)[2]], augment.fold_seed(seed, 2))
            emb = emb * tf.cast(noise < keep, tf.float32) / keep
        weights = tf.cast(self._counted_frames(waveforms, lengths, mask), tf.float32)
        if not self.head_config.clip_level:  # a frame head: every frame scored, the clip's score their mean
            frames = frame_head_scores(self.head, emb, bb.embedding_dim, len(self.labels), training=training)
            return masked_mean(frames, weights), (frames, weights)
        out = self.head({"frames": emb, "weights": weights}, training=training)
        return tf.cast(out["clip"], tf.float32), None

    # ---- planning --------------------------------------------------------------------------------
    def _plan(self, train: Manifest, durations: np.ndarray, targets: np.ndarray) -> _Plan:
        cfg, tc = self.config, self.train_config
        seconds = cfg.crop_seconds
        if seconds is None:
            seconds = float(np.percentile(durations, 95)) if len(durations) else cfg.max_crop_seconds
            seconds = min(max(seconds, self.backbone.contract.min_seconds), cfg.max_crop_seconds)
        crop = int(round(seconds * self.backbone.sample_rate))
        n = len(targets)
        batch = min(tc.batch_size, n)
        steps = n // batch  # whole batches only (batch norm and mirrored replicas see full batches)
        blocks = [(name, list(vs)) for name, vs in self.backbone.finetune_blocks() if vs]
        frozen = self.backbone.finetune_frozen_blocks if cfg.freeze_blocks is None else int(cfg.freeze_blocks)
        frozen = len(blocks) if frozen < 0 else min(frozen, len(blocks))
        weights = np.ones(len(self.labels), np.float32)
        if tc.class_weight == "balanced":
            counts = np.bincount(targets, minlength=len(self.labels)).astype(np.float32)
            present = counts > 0
            weights[present] = counts[present].sum() / (present.sum() * counts[present])
        return _Plan(self.labels, crop, steps, tc.epochs, batch, blocks, frozen, weights,
                     self._micro_batch(batch, crop))

    def _micro_batch(self, batch: int, crop: int) -> int:
        """Clips per forward/backward pass on one replica: the recipe's, or the largest divisor of the
        replica's batch whose training activations fit the memory budget (the backbone's estimate)."""
        replicas = self.strategy.num_replicas_in_sync
        per_replica = max(batch // replicas, 1)
        asked = self.config.micro_batch
        if asked is not None:
            if per_replica % asked:
                raise TfaudioError(f"micro_batch {asked} does not divide the batch of {per_replica} clips per "
                                   f"replica. Fix: a divisor of {per_replica} (e.g. --micro-batch "
                                   f"{_largest_divisor(per_replica, asked)}).")
            return asked
        clip_bytes = self.backbone.finetune_clip_bytes(crop)
        if not clip_bytes:
            return per_replica
        budget = memory_budget()
        fits = max(1, int(budget // clip_bytes))
        micro = _largest_divisor(per_replica, fits)
        if micro < per_replica:
            log.info("micro-batches of %d clips (about %.1f GB each of the %.1f GB budget): the batch of %d "
                     "in %d passes", micro, micro * clip_bytes / 1e9, budget / 1e9, per_replica, per_replica // micro)
        return micro

    def _optimizers(self, plan: _Plan) -> list[tuple[keras.optimizers.Optimizer, list[tf.Variable]]]:
        cfg, tc = self.config, self.train_config
        total = plan.steps_per_epoch * plan.epochs
        warmup = int(round(cfg.warmup_epochs * plan.steps_per_epoch))
        hold = int(cfg.head_epochs * plan.steps_per_epoch)

        def adamw(peak: float, hold_steps: int):
            lr = WarmupCosine(peak, total, warmup, hold_steps) if tc.schedule == "cosine" else peak
            return keras.optimizers.AdamW(learning_rate=lr, weight_decay=cfg.weight_decay)

        groups = [(adamw(tc.learning_rate, 0), list(self.head.trainable_variables))]
        trainable = plan.blocks[plan.frozen:]
        for i, (_, variables) in enumerate(trainable):
            scale = cfg.backbone_learning_rate * cfg.layer_decay ** (len(trainable) - 1 - i)
            if scale > 0:
                groups.append((adamw(tc.learning_rate * scale, hold), variables))
        return groups

    # ---- data ------------------------------------------------------------------------------------
    def _speed(self) -> float:
        """The speed perturbation in force: the recipe's, or (None there) the backbone's default."""
        return self.backbone.finetune_speed if self.config.speed is None else self.config.speed

    def _train_dataset(self, train: Manifest, plan: _Plan, epoch: int) -> tf.data.Dataset:
        cfg, tc = self.config, self.train_config
        seed = tc.seed
        crop, classes = plan.crop_samples, len(self.labels)
        shift = int(round(cfg.shift_seconds * self.backbone.sample_rate))
        speed = self._speed()
        smoothing = tc.label_smoothing
        class_weights = tf.constant(plan.class_weights)

        def crop_clip(e):
            wave, n = e["waveform"], e["length"]
            if speed:
                wave, n = augment.speed_perturb(wave, n, speed, augment.fold_seed([seed, epoch], 5, e["clip"]))
            wave, n = augment.crop_or_pad(wave, n, crop, augment.fold_seed([seed, epoch], 3, e["clip"]))
            return {"waveform": wave, "length": n, "label": e["label"]}

        def augment_batch(i, b):
            s = augment.fold_seed([seed, epoch], 4, i)
            y = tf.one_hot(b["label"], classes)
            y = y * (1.0 - smoothing) + smoothing / classes
            w, n = b["waveform"], b["length"]
            w = augment.random_gain(w, cfg.gain_db, augment.fold_seed(s, 0))
            w, n = augment.time_shift(w, n, shift, augment.fold_seed(s, 1))
            w, n, y = augment.mixup(w, n, y, tc.mixup, augment.fold_seed(s, 2))
            weight = tf.reduce_sum(y * class_weights, axis=-1)  # the mixed pair's class weights
            # the step number per clip: a distributed batch is split along its first axis
            return {"waveform": w, "length": n, "target": y, "weight": weight, "step": tf.fill(tf.shape(n), i)}

        # the epoch's order: a permutation of the stored clips by (seed, epoch), read in that order (not a
        # shuffle buffer over the shards' order: the same batches whatever the cache's layout, and whole-set
        # shuffling when the data set is larger than any buffer, e.g. a folder per class)
        order = np.random.default_rng([seed, epoch]).permutation(self._rows)
        ds = self.cache.dataset_in_order(train, order).map(crop_clip, num_parallel_calls=tf.data.AUTOTUNE,
                                                           deterministic=True)
        ds = ds.batch(plan.batch_size, drop_remainder=True)
        ds = ds.take(plan.steps_per_epoch).enumerate().map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(2)

    # ---- training --------------------------------------------------------------------------------
    def _train_step_fn(self, groups, plan: _Plan, epoch_var: tf.Variable, scaler: DynamicLossScale | None):
        variables = [v for _, vs in groups for v in vs]
        sizes = [len(vs) for _, vs in groups]
        global_batch = float(plan.batch_size)
        seed0 = int(self.train_config.seed)

        def apply(grads):
            start = 0
            for (opt, vs), k in zip(groups, sizes):
                pairs = [(g, v) for g, v in zip(grads[start : start + k], vs) if g is not None]
                start += k
                if pairs:
                    opt.apply_gradients(pairs)

        def apply_if_finite(strategy, grads):
            """Cross-replica (float16): apply the step only if every replica's gradients are finite."""
            finite = tf.reduce_all(tf.stack([DynamicLossScale.all_finite(strategy.experimental_local_results(g))
                                              for g in grads if g is not None]))

            def step_all():
                strategy.extended.call_for_each_replica(apply, args=(grads,))
                return tf.constant(True)

            tf.cond(finite, step_all, lambda: tf.constant(False))
            scaler.update(finite)

        def gradients(batch, seed):
            """(loss, hits, gradients of the scaled loss) of one pass over ``batch``."""
            with tf.GradientTape() as tape:
                probs, frames = self._scores(batch["waveform"], batch["length"], training=True, seed=seed)
                per_clip = _cross_entropy(batch["target"], probs, frames)
                loss = tf.reduce_sum(per_clip * batch["weight"]) / global_batch
                scaled = loss * scaler.scale if scaler is not None else loss
            hits = tf.cast(tf.equal(tf.argmax(probs, -1), tf.argmax(batch["target"], -1)), tf.float32)
            return loss, tf.reduce_sum(hits), tape.gradient(scaled, variables)

        per_replica = max(plan.batch_size // self.strategy.num_replicas_in_sync, 1)
        micro = plan.micro_batch or per_replica

        def accumulated(batch, seed):
            """:func:`gradients` summed over micro-batches, one pass at a time (a while loop: only one
            micro-batch's activations are alive at once)."""
            passes = per_replica // micro
            unused: set[int] = set()  # variables without a gradient (found when the body is traced)

            def body(i, loss, hits, acc):
                part = {k: v[i * micro : (i + 1) * micro] for k, v in batch.items()}
                part_loss, part_hits, grads = gradients(part, augment.fold_seed(seed, 9, i))
                unused.update(j for j, g in enumerate(grads) if g is None)
                return i + 1, loss + part_loss, hits + part_hits, [a if g is None else a + g for a, g in zip(acc, grads)]

            start = [tf.zeros_like(v) for v in variables]
            _, loss, hits, acc = tf.while_loop(lambda i, *_: i < passes, body,
                                               (tf.constant(0), tf.constant(0.0), tf.constant(0.0), start),
                                               parallel_iterations=1)
            return loss, hits, [None if j in unused else a for j, a in enumerate(acc)]

        def replica_step(batch):
            seed = augment.fold_seed([seed0, 7], epoch_var, batch["step"][0],
                                     tf.distribute.get_replica_context().replica_id_in_sync_group)
            if micro < per_replica:
                loss, hits, grads = accumulated(batch, seed)
            else:
                loss, hits, grads = gradients(batch, seed)
            if scaler is None:
                apply(grads)
            else:  # float16: unscale, then apply (or skip) on every replica at once
                grads = [g / scaler.scale if g is not None else None for g in grads]
                tf.distribute.get_replica_context().merge_call(apply_if_finite, args=(grads,))
            return loss, hits

        @tf.function(autograph=False)
        def step(batch):
            loss, hits = self.strategy.run(replica_step, args=(batch,))
            s = tf.distribute.ReduceOp.SUM
            return self.strategy.reduce(s, loss, axis=None), self.strategy.reduce(s, hits, axis=None)

        return step

    def _run_signature(self, train: Manifest, plan: _Plan) -> dict[str, Any]:
        rows = sorted(str(p) for p in train.paths)
        return {"labels": list(plan.labels), "recipe": self.recipe.to_dict(), "crop_samples": plan.crop_samples,
                "steps_per_epoch": plan.steps_per_epoch, "backbone": backbone_spec(self.backbone),
                "start_fingerprint": self._start_fingerprint, "clips": run_digest(rows),
                "precision": self.precision}

    def fit(self, train: Manifest, val: Manifest | None = None, *, progress: bool = True,
            on_error: str | None = None) -> FineTuneRun:
        """Fine-tune on the clips of ``train`` (decoded into the waveform cache first); ``val`` (optional)
        is scored after every epoch (clip accuracy in :attr:`history`, never used to stop; used to choose only
        by the recipe's ``interpolate="auto"``, which needs it).
        Resumes from ``checkpoint_dir`` when it holds a checkpoint of this same run. Returns self."""
        if tuple(train.labels) != self.labels:
            train = train.with_labels(self.labels)
        if getattr(train, "multi_label", False):
            raise ManifestError("fine-tuning trains single-label classifiers; this data has several labels per "
                                "clip. Fix: train a multi-label head on frozen embeddings (tfaudio train).")
        if self.config.interpolate == "auto" and not (val is not None and len(val)):
            raise ManifestError("interpolate 'auto' chooses how far to move back to the pretrained weights by the "
                                "accuracy on validation clips, and there are none. Fix: give validation folds "
                                "(tfaudio finetune --folds TRAIN:VAL:TEST) or a number (--interpolate 0.5).")
        report = self.cache.extract(train, on_error=on_error, progress=progress)
        self.skipped = list(report.skipped)
        if report.skipped and len(report.skipped) >= len(train):
            raise ManifestError(f"none of the {len(train)} training clips could be decoded; the first: "
                                f"{report.skipped[0][0]}: {report.skipped[0][1]}")
        if val is not None:
            self.skipped += self.cache.extract(val, on_error=on_error, progress=progress).skipped
        rows, durations = self.cache.stored(train)  # from the shard indexes: no waveform is loaded here
        targets = np.asarray(train.targets)[rows]
        self._check_counts(targets)
        self._start_fingerprint = self.backbone.fingerprint
        pretrained = [v.numpy() for v in self.backbone.variables] if self.config.interpolate != 1 else None
        plan = self.plan = self._plan(train, durations, targets)
        self._durations = np.asarray(durations, np.float64)
        self._rows = rows
        self._clips = self.cache.dataset_in_order(train, rows)  # manifest order (the statistics pass, the probe)
        probe = None
        if self.head_config.standardize or self.config.probe_epochs:
            stats, clip_means, labels = self._frozen_pass(plan)
            if self.head_config.standardize:  # (a resumed run gets the head's statistics from its checkpoint)
                self._build_head(stats)
            probe = (clip_means, labels)
        with self.strategy.scope():
            groups = self._optimizers(plan)
            epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.loss_scale = DynamicLossScale() if self.precision == "float16" else None
        batchnorms = _batchnorms(self.backbone)
        flags = [bn.trainable for bn in batchnorms]
        for bn in batchnorms:
            bn.trainable = self.config.batchnorm == "train"
        ckpt = manager = None
        start = 0
        if self.checkpoint_dir is not None:
            extra = {"loss_scale": self.loss_scale} if self.loss_scale is not None else {}
            ckpt = tf.train.Checkpoint(backbone=list(self.backbone.variables), head=self.head,
                                       optimizers=[opt for opt, _ in groups], epoch=epoch_var, **extra)
            manager = tf.train.CheckpointManager(ckpt, str(self.checkpoint_dir), max_to_keep=1)
            start = self._resume(train, plan, ckpt, manager, epoch_var)
        if probe is not None and self.config.probe_epochs and start == 0:  # (a resumed run has its probed head)
            self.probe_history = self._probe(*probe, plan)
        val_waves = self.cache.load(val, extract=False, progress=False) if val is not None else None
        step = self._train_step_fn(groups, plan, epoch_var, self.loss_scale)
        log.info("fine-tuning %s: %d clips, %d steps of %d per epoch, window %.2f s, %d of %d blocks train, "
                 "batch norm %s, %s (%s)", self.backbone.name, len(targets), plan.steps_per_epoch, plan.batch_size,
                 plan.crop_samples / self.backbone.sample_rate, len(plan.blocks) - plan.frozen, len(plan.blocks),
                 self.config.batchnorm, self.precision, self.precision_note)
        try:
            self._epochs(train, plan, step, start, epoch_var, manager, val_waves, progress)
        finally:
            for bn, flag in zip(batchnorms, flags):
                bn.trainable = flag
        self.backbone._fingerprint = None
        self._ends = (pretrained, [v.numpy() for v in self.backbone.variables]) if pretrained is not None else None
        if self.config.interpolate != "auto":
            return self.interpolate(self.config.interpolate)
        refits = {}
        for alpha in INTERPOLATE_GRID:
            scores = self.interpolate(alpha).classifier().scorer.scores(val_waves[0])
            self.interpolation_scores_[alpha] = float(np.mean(scores.argmax(1) == np.asarray(val_waves[1])))
            refits[alpha] = self.refit_
        best = max(INTERPOLATE_GRID, key=lambda a: (self.interpolation_scores_[a], a))  # ties: the larger alpha
        log.info("interpolate auto: validation accuracy %s: alpha %g", self.interpolation_scores_, best)
        self._move_weights(best)  # the chosen alpha's weights, with the head already refit on them
        self.refit_ = refits[best]
        return self

    def interpolate(self, alpha: float) -> FineTuneRun:
        """Weight-space ensembling (WiSE-FT; the recipe's ``interpolate``, which :meth:`fit` applies): the
        backbone's weights become ``pretrained + alpha * (fine-tuned - pretrained)`` and, for ``alpha`` < 1,
        the head is refit on them (recipe ``"default"``, as ``refit_head`` does). ``alpha`` 1: the fine-tuned
        weights with the head trained with them (or the refit one with ``refit_head``). It can be called
        again with another ``alpha`` when the recipe's ``interpolate`` is not 1 (then :meth:`fit` keeps
        both ends). Returns self."""
        if self.plan is None:
            raise TfaudioError("interpolate() moves the weights of a fine-tuned backbone. Fix: call fit() first.")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
        if self._ends is None and alpha < 1:
            raise TfaudioError("the pretrained weights were not kept for interpolate(). Fix: fine-tune with the "
                               "recipe's interpolate below 1 or 'auto' (--interpolate), which keeps them.")
        self._move_weights(alpha)
        self.refit_ = self._refit_head(self.plan) if alpha < 1 or self.config.refit_head else None
        return self

    def _move_weights(self, alpha: float) -> None:
        """The backbone's weights ``alpha`` of the way from the pretrained to the fine-tuned ones."""
        if self._ends is not None:
            for v, start, end in zip(self.backbone.variables, *self._ends):
                mixed = start + alpha * (end - start) if alpha < 1 and np.issubdtype(end.dtype, np.floating) else end
                v.assign(mixed.astype(end.dtype))
            self.backbone._fingerprint = None
        self.alpha_ = float(alpha)

    def _refit_head(self, plan: _Plan) -> AudioClassifier:
        """``refit_head``: the frozen default's head (recipe ``"default"``) trained on the training clips'
        frame embeddings under the fine-tuned backbone (each clip's window from its start, as the statistics
        pass reads it; with each frame's energy for the silence gate), as ``tfaudio train`` trains a head."""
        c = self.backbone.contract

        @tf.function(autograph=False)
        def frames(w, n):
            emb, mask = self.backbone.finetune_frames(*self.backbone.finetune_features(w, n), training=False)
            return tf.cast(emb, tf.float32), mask, frame_energy_db(w, n, c.frame_samples, c.hop_samples, tf.shape(mask)[1])

        embeddings, energies, labels = [], [], []
        for w, n, y in self._windows(plan):
            emb, mask, db = (t.numpy() for t in frames(w, n))
            for i in range(len(emb)):
                embeddings.append(emb[i][mask[i]])
                energies.append(db[i][mask[i]].astype(np.float32))
            labels.append(y.numpy())
        targets = np.concatenate(labels).astype(np.int32)
        clips = ClipEmbeddings(embeddings=embeddings, targets=targets, rows=np.arange(len(targets)),
                               folds=np.full(len(targets), -1), energies=energies)
        refit = AudioClassifier(self.backbone, labels=self.labels, recipe="default")
        refit.fit(clips, seed=self.train_config.seed, verbose=0)
        log.info("head refitted (recipe default) on %d clips: training accuracy %.3f", len(targets),
                 refit.history_["accuracy"][-1])
        return refit

    def _check_counts(self, targets: np.ndarray) -> None:
        counts = np.bincount(targets, minlength=len(self.labels))
        empty = [self.labels[i] for i, c in enumerate(counts) if c == 0]
        if empty:
            raise ManifestError(f"class(es) {empty} have no training clips. Fix: choose other folds or drop those "
                                "classes with --classes.")
        few = {self.labels[i]: int(c) for i, c in enumerate(counts) if c < self.train_config.min_clips_per_class}
        if few:
            raise ManifestError(f"too few clips per class to fine-tune: {few} (need at least "
                                f"{self.train_config.min_clips_per_class}). Fix: add clips or drop those classes.")

    def _resume(self, train, plan, ckpt, manager, epoch_var) -> int:
        signature = self._run_signature(train, plan)
        run_file = self.checkpoint_dir / RUN_FILE
        if manager.latest_checkpoint is None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(run_file, json.dumps(signature, indent=1, default=str))
            return 0
        try:
            saved = json.loads(run_file.read_text())
        except (OSError, ValueError):
            saved = None
        if saved != json.loads(json.dumps(signature, default=str)):
            raise TfaudioError(f"{self.checkpoint_dir} holds checkpoints of another run (other data, labels, recipe "
                               "or backbone). Fix: write to another folder, or delete that one to start over "
                               "(tfaudio finetune --restart).")
        ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        history = self.checkpoint_dir / "history.json"
        if history.is_file():
            self.history = json.loads(history.read_text())
        start = int(epoch_var.numpy())
        log.info("resuming from %s after epoch %d of %d", manager.latest_checkpoint, start, plan.epochs)
        print(f"resuming after epoch {start} of {plan.epochs} ({manager.latest_checkpoint})")
        return start

    def _epochs(self, train, plan, step, start, epoch_var, manager, val_waves, progress) -> None:
        times: list[float] = []
        for epoch in range(start, plan.epochs):
            t0 = time.perf_counter()
            bar = keras.utils.Progbar(plan.steps_per_epoch, stateful_metrics=["loss", "accuracy"],
                                      verbose=1 if progress else 0)
            losses, hits, seen = 0.0, 0.0, 0
            epoch_var.assign(epoch)
            ds = self._train_dataset(train, plan, epoch)
            if self.strategy.num_replicas_in_sync > 1:
                ds = self.strategy.experimental_distribute_dataset(ds)
            for i, batch in enumerate(ds):
                if epoch == start and i == 0:
                    with training_rewrite(self.precision):  # applies when the step's graph is first built
                        loss, hit = step(batch)
                else:
                    loss, hit = step(batch)
                losses += float(loss)
                hits += float(hit)
                seen += plan.batch_size
                bar.update(i + 1, [("loss", losses / (i + 1)), ("accuracy", hits / seen)])
            record = {"loss": losses / max(plan.steps_per_epoch, 1), "accuracy": hits / max(seen, 1)}
            if val_waves is not None:
                self._val_classifier = getattr(self, "_val_classifier", None) or self.classifier()
                scores = self._val_classifier.scorer.scores(val_waves[0])
                record["val_accuracy"] = float(np.mean(scores.argmax(1) == np.asarray(val_waves[1])))
            for k, v in record.items():
                self.history.setdefault(k, []).append(float(v))
            times.append(time.perf_counter() - t0)
            self.epoch_seconds.append(times[-1])
            left = plan.epochs - epoch - 1
            eta = f", about {np.mean(times) * left / 60:.1f} min left" if left else ""
            shown = " ".join(f"{k} {v:.4f}" for k, v in record.items())
            print(f"epoch {epoch + 1}/{plan.epochs}: {shown} ({times[-1]:.0f} s{eta})", flush=True)
            if manager is not None:
                epoch_var.assign(epoch + 1)
                manager.save(checkpoint_number=epoch + 1)
                atomic_write_text(self.checkpoint_dir / "history.json", json.dumps(self.history))

    # ---- the result ------------------------------------------------------------------------------
    def classifier(self) -> AudioClassifier:
        """The fine-tuned model as an :class:`AudioClassifier` (shares this run's backbone and head)."""
        refit = self.refit_
        clf = AudioClassifier(self.backbone, labels=self.labels, head=refit.head if refit else self.head_config,
                              recipe=self.recipe)
        clf.head_model_ = refit.head_model_ if refit else self.head
        clf.history_ = dict(self.history)
        clf.train_config_ = self.train_config
        if self.plan is not None and getattr(self, "_durations", None) is not None:
            # the windows it trained on (clips cropped to the plan's window): the TFLite export's default
            c = self.backbone.contract
            samples = np.minimum(np.round(self._durations * self.backbone.sample_rate), self.plan.crop_samples)
            frames = 1 + np.ceil(np.maximum(samples - c.frame_samples, 0) / c.hop_samples)
            clf.train_clips_ = training_clips(frames.astype(int).tolist(), c)
        clf.fine_tuned_ = {"recipe": self.recipe.to_dict(), "precision": self.precision,
                           "crop_seconds": (self.plan.crop_samples / self.backbone.sample_rate) if self.plan else None,
                           "frozen_blocks": self.plan.frozen if self.plan else None, "speed": self._speed(),
                           "interpolate": self.alpha_,
                           **({"interpolate_validation": {str(a): v for a, v in self.interpolation_scores_.items()}}
                              if self.interpolation_scores_ else {})}
        return clf

    def remove_checkpoints(self) -> None:
        """Deletes the checkpoint folder (after the model is saved)."""
        if self.checkpoint_dir is not None and self.checkpoint_dir.is_dir():
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)


def finetune(train: Manifest, backbone: Any = "yamnet", recipe: Recipe | str | None = None, *,
             val: Manifest | None = None, cache: WaveformCache | None = None,
             checkpoint_dir: str | os.PathLike | None = None, strategy: tf.distribute.Strategy | None = None,
             on_error: str | None = None, progress: bool = True) -> AudioClassifier:
    """Fine-tunes ``backbone`` with a new head on ``train`` and returns the classifier (see the module doc).

    Args:
        train: the training clips (labels from the manifest).
        backbone: a backbone or a spec (``"efficientat:mn04_as"``); an object is trained in place.
        recipe: a recipe with ``finetune`` settings, its name or JSON file (default ``"finetune"``).
        val: clips scored after every epoch (reported, never used to choose).
        cache: the waveform cache (default: at the backbone's rate in ``$TFAUDIO_CACHE``).
        checkpoint_dir: a checkpoint per epoch, and resume from it (None: neither).
        strategy: a ``tf.distribute.Strategy`` (default: the current one).
        on_error: ``"raise"`` or ``"skip"`` bad audio files (skipped ones are counted in ``clf.skipped_``).
        progress: progress bars.
    """
    run = FineTuneRun(backbone, train.labels, recipe, cache=cache, checkpoint_dir=checkpoint_dir, strategy=strategy)
    run.fit(train, val, progress=progress, on_error=on_error)
    clf = run.classifier()
    clf.skipped_ = run.skipped
    return clf


def evaluate_waveforms(clf: AudioClassifier, cache: WaveformCache, manifest: Manifest) -> dict[str, Any]:
    """The clip-level report of ``clf`` on the stored clips of ``manifest``: whole clips through the
    classifier's scorer (what the export computes)."""
    if tuple(manifest.labels) != tuple(clf.labels):
        manifest = manifest.with_labels(clf.labels)
    waves, targets, _ = cache.load(manifest, extract=True, progress=False)
    scores = clf.scorer.scores(waves)
    return classification_report(np.asarray(targets), scores, list(clf.labels), level="clip")
