"""Training a head: what it trains on (:class:`TrainingData`: frames, or bags of frames for clip-level
heads, with targets and the embedding statistics) and the loop (:func:`train_head`) that
:class:`~tfaudio.tasks.audio_classifier.AudioClassifier` runs for each member of its ensemble."""
from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfaudio.data.embedding_cache import ClipEmbeddings
from tfaudio.heads.classification_head import HeadConfig
from tfaudio.tasks.recipe import TrainConfig

__all__ = ["TrainingData", "train_head"]


class TrainingData:
    """What a head trains on: frames (frame-level heads; silent frames left out with the silence gate)
    or padded bags of frames with weights (clip-level heads), their targets, and the embedding
    statistics a standardising head starts from."""

    def __init__(self, clips: ClipEmbeddings, head: HeadConfig, num_classes: int):
        gates = clips.gates() if head.silence_gate else [np.ones(len(e), bool) for e in clips.embeddings]
        self.multi = head.multi_label
        self.num_classes = num_classes
        frames = np.concatenate([e[g] for e, g in zip(clips.embeddings, gates)]).astype(np.float32, copy=False)
        self.stats = (frames.mean(axis=0), frames.var(axis=0))
        if not head.clip_level:
            counts = np.array([int(g.sum()) for g in gates])
            self.x: Any = frames
            self.y = np.repeat(clips.targets, counts, axis=0)
        else:
            width = max(len(e) for e in clips.embeddings)
            bags = np.zeros([len(clips), width, frames.shape[1]], np.float32)
            w = np.zeros([len(clips), width], np.float32)
            for i, (e, g) in enumerate(zip(clips.embeddings, gates)):
                bags[i, : len(e)] = e
                w[i, : len(e)] = g
            self.x = {"frames": bags, "weights": w}
            self.y = np.asarray(clips.targets)
        self.clip_level = head.clip_level

    def __len__(self) -> int:
        return len(self.y)

    def targets(self, idx: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
        """One-hot (smoothed) targets of rows ``idx``, float32 ``[n, C]`` (multi-label data: its multi-hot
        rows, smoothed towards 0.5)."""
        if self.y.ndim == 2:
            y = self.y[idx].astype(np.float32)
            return y * (1.0 - smoothing) + smoothing / 2 if smoothing else y
        y = np.eye(self.num_classes, dtype=np.float32)[self.y[idx]]
        if smoothing and not self.multi:
            y = y * (1.0 - smoothing) + smoothing / self.num_classes
        return y

    def rows(self, idx: np.ndarray):
        if self.clip_level:
            return {k: v[idx] for k, v in self.x.items()}
        return self.x[idx]


def train_head(model, data: TrainingData, class_weights: np.ndarray, val: TrainingData | None,
                config: TrainConfig, multi_label: bool) -> dict[str, list[float]]:
    """Mini-batch Adam on frames (or clips) with per-example class weights, label smoothing, optional
    mixup of frame pairs, a cosine or constant learning rate, and early stopping on ``config.monitor``
    when there is something to monitor (best weights restored). Returns each epoch's values (not
    running averages), Keras-history style.

    A plain loop around one traced step (autograph off) instead of ``Model.fit``: for heads this
    small, Keras' per-model tracing costs more than the training itself (8 s vs ~1 s per fold).
    """
    bce = keras.losses.BinaryCrossentropy(reduction="none")
    cce = keras.losses.CategoricalCrossentropy(reduction="none")
    loss_fn = bce if multi_label else cce
    steps_per_epoch = max(1, -(-len(data) // config.batch_size))
    if config.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps_per_epoch * config.epochs)
    else:
        rate = config.learning_rate
    optimizer = keras.optimizers.Adam(rate)

    def output(pred):
        return pred["clip"] if isinstance(pred, dict) else pred

    def accuracy(yt, yp):
        if multi_label:
            return tf.reduce_mean(tf.cast(tf.equal(yt > 0.5, yp > 0.5), tf.float32), axis=-1)
        return tf.cast(tf.equal(tf.argmax(yt, -1), tf.argmax(yp, -1)), tf.float32)

    def step(xb, yb, wb):
        with tf.GradientTape() as tape:
            pred = output(model(xb, training=True))
            loss = tf.reduce_sum(loss_fn(yb, pred) * wb) / tf.reduce_sum(wb)
            total = loss + tf.add_n(model.losses) if model.losses else loss
        grads = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, tf.reduce_mean(accuracy(yb, pred))

    def evaluate(xb, yb):
        pred = output(model(xb, training=False))
        return tf.reduce_mean(loss_fn(yb, pred)), tf.reduce_mean(accuracy(yb, pred))

    y_spec = tf.TensorSpec([None, data.num_classes], tf.float32)
    if data.clip_level:
        x_spec: Any = {"frames": tf.TensorSpec([None, None, data.x["frames"].shape[2]], tf.float32),
                       "weights": tf.TensorSpec([None, None], tf.float32)}
    else:
        x_spec = tf.TensorSpec([None, data.x.shape[1]], tf.float32)
    step = tf.function(step, input_signature=[x_spec, y_spec, tf.TensorSpec([None], tf.float32)], autograph=False)
    evaluate = tf.function(evaluate, input_signature=[x_spec, y_spec], autograph=False)
    sample_weight = class_weights[data.y] if not multi_label else np.ones(len(data), np.float32)
    mix = config.mixup and not data.clip_level
    val_xy = (val.rows(np.arange(len(val))), val.targets(np.arange(len(val)))) if val is not None else None
    rng = np.random.default_rng(config.seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    watch = config.monitor if (val is not None or config.monitor == "loss") else None
    best, best_weights, waited = np.inf, None, 0
    names = ["loss", "accuracy", "val_loss", "val_accuracy"]
    bar = (keras.utils.Progbar(config.epochs, verbose=config.verbose, unit_name="epoch", stateful_metrics=names)
           if config.verbose else None)
    for epoch in range(config.epochs):
        order = rng.permutation(len(data))
        losses, accs, sizes = [], [], []
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, yb, wb = data.rows(idx), data.targets(idx, config.label_smoothing), sample_weight[idx]
            if mix:
                lam = rng.beta(config.mixup, config.mixup, size=(len(idx), 1)).astype(np.float32)
                perm = rng.permutation(len(idx))
                xb, yb = lam * xb + (1 - lam) * xb[perm], lam * yb + (1 - lam) * yb[perm]
                wb = lam[:, 0] * wb + (1 - lam[:, 0]) * wb[perm]
            loss, acc = step(xb, yb, wb.astype(np.float32))
            losses.append(float(loss))
            accs.append(float(acc))
            sizes.append(len(idx))
        history["loss"].append(float(np.average(losses, weights=sizes)))
        history["accuracy"].append(float(np.average(accs, weights=sizes)))
        logs = [("loss", history["loss"][-1]), ("accuracy", history["accuracy"][-1])]
        if val_xy is not None:
            vl, va = (float(v) for v in evaluate(*val_xy))
            history.setdefault("val_loss", []).append(vl)
            history.setdefault("val_accuracy", []).append(va)
            logs += [("val_loss", vl), ("val_accuracy", va)]
        if bar is not None:
            bar.update(epoch + 1, values=logs)
        if watch is not None:
            value = history[watch][-1]
            if value < best:
                best, best_weights, waited = value, model.get_weights(), 0
            else:
                waited += 1
                if waited > config.patience:
                    break
    if best_weights is not None:
        model.set_weights(best_weights)
    return history
