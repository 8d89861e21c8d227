"""AudioClassifier: a backbone + a small Keras head + mean pooling of frame scores over a clip.

The head is trained on frame embeddings (one 0.96 s patch each for YAMNet, as in the TensorFlow
tutorial) read from the embedding cache; a clip's scores are the mean of its frame scores, which is
exactly what the exported model computes.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfaudio.data.embedding_cache import ClipEmbeddings, EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.errors import ManifestError, TfaudioError
from tfaudio.heads.classification_head import HeadConfig, build_head
from tfaudio.io.atomic import sweep_stale, temp_path

FORMAT_VERSION = 1
CONFIG_FILE = "tfaudio.json"
HEAD_FILE = "head.keras"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How the head is trained.

    Args:
        epochs: maximum epochs (early stopping on the validation loss ends sooner).
        batch_size: frames per step.
        learning_rate: Adam's learning rate.
        patience: epochs without validation improvement before stopping (best weights restored).
        class_weight: "balanced" (inverse class frequency) or None.
        seed: makes initialisation and shuffling reproducible.
        mixup: alpha of mixup on embedding pairs (0: off).
        min_clips_per_class: refuse training when a class has fewer clips than this.
        verbose: Keras progress output (0 silent, 1 bar, 2 a line per epoch).
    """

    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 8
    class_weight: str | None = "balanced"
    seed: int = 0
    mixup: float = 0.0
    min_clips_per_class: int = 2
    verbose: int = 0


class AudioClassifier:
    """Backbone + head + mean over frames: files or waveforms in, class scores out.

    Args:
        backbone: a :class:`tfaudio.backbones.Backbone`, or a name/spec for
            :func:`tfaudio.backbones.get_backbone` ("yamnet").
        labels: class names, in score order.
        head: the head's configuration (default: the tutorial's Dense 512 ReLU MLP).
        cache: an :class:`EmbeddingCache` (default: one in ``$TFAUDIO_CACHE``).

    Example:
        >>> clf = AudioClassifier("yamnet", labels=train.labels).fit(train, val)
        >>> clf.evaluate(test)["clip"]["accuracy"]
        >>> clf.predict("bark.wav", top_k=2)   # [[{"label": "dog", "score": 0.97}, ...]]
        >>> clf.save("saved_models/dogs_vs_cats")
    """

    def __init__(
        self,
        backbone: Any = "yamnet",
        labels: Sequence[str] | None = None,
        head: HeadConfig = HeadConfig(),
        *,
        cache: EmbeddingCache | None = None,
    ):
        if not hasattr(backbone, "contract"):
            from tfaudio.backbones.registry import get_backbone

            backbone = get_backbone(backbone)
        self.backbone = backbone
        self.labels = tuple(labels) if labels is not None else None
        self.head = head
        self.cache = cache if cache is not None else EmbeddingCache(backbone)
        self.head_model_ = None
        self.history_: dict[str, list[float]] = {}
        self.train_config_: TrainConfig | None = None
        self._scorer = None

    # ---- data ---------------------------------------------------------------------------------
    def _clips(self, data: Manifest | ClipEmbeddings, progress: bool = True) -> ClipEmbeddings:
        if isinstance(data, ClipEmbeddings):
            return data
        if self.labels is not None and tuple(data.labels) != self.labels:
            data = data.with_labels(self.labels)
        return self.cache.load(data, progress=progress)

    # ---- training -----------------------------------------------------------------------------
    def fit(
        self,
        train: Manifest | ClipEmbeddings,
        val: Manifest | ClipEmbeddings | None = None,
        config: TrainConfig = TrainConfig(),
        **overrides: Any,
    ) -> AudioClassifier:
        """Train the head on the frames of ``train``; early-stop on ``val`` when given. Returns self."""
        import tf_keras as keras

        config = dataclasses.replace(config, **overrides)
        if isinstance(train, Manifest) and self.labels is None:
            self.labels = tuple(train.labels)
        if self.labels is None:
            raise TfaudioError("AudioClassifier needs labels= when trained from ClipEmbeddings")
        if isinstance(train, Manifest):
            self._check_trainable(train.targets, config, where=f"the training folds {train.folds}")
        tr = self._clips(train)
        self._check_trainable(tr.targets, config, where="the training clips")
        va = self._clips(val) if val is not None else None
        x, y, _ = tr.frames()
        num_classes = len(self.labels)
        keras.utils.set_random_seed(config.seed)
        self.head_model_ = build_head(x.shape[1], num_classes, self.head)
        multi = self.head.multi_label
        one_hot = multi or bool(config.mixup)
        y_enc = keras.utils.to_categorical(y, num_classes) if one_hot else y
        weights = np.ones(num_classes, np.float32)
        if config.class_weight == "balanced" and not multi:
            counts = np.bincount(y, minlength=num_classes).astype(np.float32)
            present = counts > 0
            weights[present] = counts[present].sum() / (present.sum() * counts[present])
        val_data = None
        if va is not None:
            vx, vy, _ = va.frames()
            val_data = (vx, keras.utils.to_categorical(vy, num_classes) if one_hot else vy)
        self.history_ = _train_head(self.head_model_, x, y_enc, weights[y], val_data, config, multi)
        self.train_config_ = config
        return self

    def _check_trainable(self, targets: np.ndarray, config: TrainConfig, where: str) -> None:
        if len(self.labels) < 2 and not self.head.multi_label:
            raise ManifestError(
                f"a classifier needs at least 2 classes, got {list(self.labels)}. Fix: select more classes."
            )
        n = np.bincount(np.asarray(targets, np.int64), minlength=len(self.labels))
        counts = {lab: int(n[i]) for i, lab in enumerate(self.labels)}
        empty = [c for c, k in counts.items() if k == 0]
        if empty:
            raise ManifestError(
                f"class(es) {empty} have no clips in {where}. "
                f"Fix: choose other folds or drop those classes with --classes."
            )
        few = {c: k for c, k in counts.items() if k < config.min_clips_per_class}
        if few:
            raise ManifestError(
                f"too few clips per class to train: {few} (need at least {config.min_clips_per_class}). "
                f"Fix: add clips, merge or drop those classes (--classes), or lower the minimum "
                f"(TrainConfig.min_clips_per_class; on the command line --min-clips-per-class)."
            )

    @property
    def is_trained(self) -> bool:
        return self.head_model_ is not None

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise TfaudioError("this AudioClassifier is not trained. Fix: call fit() or load() first.")

    # ---- scoring ------------------------------------------------------------------------------
    @property
    def scorer(self):
        """The :class:`~tfaudio.tasks.clip_scorer.ClipScorer` of this classifier: what every scoring
        path (predict, evaluate, pipeline, export) runs."""
        from tfaudio.tasks.clip_scorer import ClipScorer

        self._require_trained()
        if self._scorer is None or self._scorer.head is not self.head_model_ or self._scorer.labels != tuple(self.labels):
            self._scorer = ClipScorer(self.backbone, self.head_model_, self.labels)
        return self._scorer

    def frame_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Head scores of frame embeddings [frames, dim] → [frames, classes]."""
        self._require_trained()
        if len(embeddings) == 0:
            return np.zeros([0, len(self.labels)], np.float32)
        return np.asarray(self.head_model_(np.asarray(embeddings, np.float32), training=False))

    def clip_scores(self, clips: ClipEmbeddings) -> np.ndarray:
        """Clip scores [clips, classes] of cached embeddings: the scorer's head and pooling (what the
        exported model computes)."""
        return self.scorer.scores_from_embeddings(clips.embeddings)

    def evaluate(self, data: Manifest | ClipEmbeddings) -> dict[str, dict]:
        """Reports at clip level (the scorer's pooled scores) and at frame level."""
        from tfaudio.tasks.report import classification_report

        self._require_trained()
        clips = self._clips(data)
        x, y, _ = clips.frames()
        frame = self.frame_scores(x)
        clip = self.clip_scores(clips)
        multi = self.head.multi_label
        labels = list(self.labels)

        def targets(t):
            return np.eye(len(labels), dtype=np.int64)[t] if multi else t

        return {
            "clip": classification_report(targets(clips.targets), clip, labels, multi_label=multi, level="clip"),
            "frame": classification_report(targets(y), frame, labels, multi_label=multi, level="frame"),
        }

    def predict_scores(self, inputs: Any, *, sample_rate: int | None = None, batch_size: int = 16) -> np.ndarray:
        """Clip scores [n, classes] for one input or a list: file paths, file bytes, arrays (any int or
        float dtype, mono or multi-channel, at ``sample_rate``; default the backbone's rate) or audio
        dicts — prepared by the one :class:`~tfaudio.data.audio_converter.AudioConverter`."""
        from tfaudio.data.audio_converter import AudioConverter

        scorer = self.scorer
        convert = AudioConverter.for_backbone(self.backbone)
        rate = self.backbone.contract.sample_rate if sample_rate is None else sample_rate
        items = _as_list(inputs)
        waves = convert.convert_many(items, rate).waves
        return scorer.scores(waves, batch_size=batch_size)

    def predict(self, inputs: Any, *, sample_rate: int | None = None, top_k: int = 5) -> list[list[dict]]:
        """Top-k ``[{"label", "score"}]`` per input (see :meth:`predict_scores`)."""
        scores = self.predict_scores(inputs, sample_rate=sample_rate)
        return [top_k_labels(s, self.labels, top_k) for s in scores]

    # ---- persistence --------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        from tfaudio.backbones.registry import backbone_spec

        return {
            "format": FORMAT_VERSION,
            "labels": list(self.labels or ()),
            "head": self.head.to_dict(),
            "backbone": backbone_spec(self.backbone),
            "sample_rate": self.backbone.contract.sample_rate,
            "train": dataclasses.asdict(self.train_config_) if self.train_config_ else None,
            "history": self.history_,
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> pathlib.Path:
        """Write ``tfaudio.json`` (labels, head, backbone spec), ``labels.txt`` and ``head.keras``
        into ``path``, atomically (a temporary folder renamed into place)."""
        self._require_trained()
        path = pathlib.Path(path)
        if path.exists() and not overwrite:
            raise TfaudioError(f"{path} exists. Fix: pass overwrite=True or choose another folder.")
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(path)  # temporaries of saves that were killed
        tmp = temp_path(path)
        tmp.mkdir()
        try:
            self.head_model_.save(tmp / HEAD_FILE)
            (tmp / CONFIG_FILE).write_text(json.dumps(self.config(), indent=1))
            (tmp / "labels.txt").write_text("\n".join(self.labels) + "\n")
            if path.exists():
                # keep what else lives there (reports, exports); replace only our files
                for f in tmp.iterdir():
                    os.replace(f, path / f.name)
                tmp.rmdir()
            else:
                os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, backbone: Any = None, cache: EmbeddingCache | None = None) -> AudioClassifier:
        """Load a classifier saved by :meth:`save` (the backbone is re-created from its spec)."""
        import tf_keras as keras

        path = pathlib.Path(path)
        cfg_file = path / CONFIG_FILE
        if not cfg_file.is_file():
            raise TfaudioError(f"{path} is not a saved tfaudio classifier (no {CONFIG_FILE}).")
        cfg = json.loads(cfg_file.read_text())
        if backbone is None:
            from tfaudio.backbones.registry import get_backbone

            backbone = get_backbone(cfg["backbone"])
        clf = cls(backbone, labels=cfg["labels"], head=HeadConfig.from_dict(cfg["head"]), cache=cache)
        clf.head_model_ = keras.models.load_model(path / HEAD_FILE, compile=False)
        clf.history_ = cfg.get("history") or {}
        if cfg.get("train"):
            clf.train_config_ = TrainConfig(**cfg["train"])
        return clf


def _as_list(inputs: Any) -> list:
    """One input (a path, bytes, an array, a dict, a ``(samples, rate)`` tuple) → ``[inputs]``; a list as is."""
    from tfaudio.data.audio_converter import is_pair

    if isinstance(inputs, list) or (isinstance(inputs, tuple) and not is_pair(inputs)):
        return list(inputs)
    return [inputs]


def top_k_labels(scores: np.ndarray, labels: Sequence[str], k: int = 5) -> list[dict]:
    """``[{"label", "score"}]`` of the ``k`` highest scores, best first."""
    order = np.argsort(-np.asarray(scores))[:k]
    return [{"label": labels[i], "score": float(scores[i])} for i in order]


def _train_head(model, x, y, sample_weight, val, config: TrainConfig, multi_label: bool) -> dict[str, list[float]]:
    """Mini-batch Adam on frames with per-frame weights, optional embedding mixup, early stopping on
    the validation loss (best weights restored). Returns the Keras-style history.

    A plain loop around one traced step (autograph off) instead of ``Model.fit``: for heads this
    small, Keras' per-model tracing costs more than the training itself (8 s vs ~1 s per fold).
    """
    import tensorflow as tf
    import tf_keras as keras

    if multi_label:
        loss_fn = keras.losses.BinaryCrossentropy(reduction="none")
    elif y.ndim == 2:
        loss_fn = keras.losses.CategoricalCrossentropy(reduction="none")
    else:
        loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction="none")
    optimizer = keras.optimizers.Adam(config.learning_rate)
    one_hot = y.ndim == 2

    def accuracy(yt, yp):
        if multi_label:
            return tf.reduce_mean(tf.cast(tf.equal(yt > 0.5, yp > 0.5), tf.float32), axis=-1)
        truth = tf.argmax(yt, -1) if one_hot else tf.cast(yt, tf.int64)
        return tf.cast(tf.equal(truth, tf.argmax(yp, -1)), tf.float32)

    def step(xb, yb, wb):
        with tf.GradientTape() as tape:
            pred = model(xb, training=True)
            loss = tf.reduce_sum(loss_fn(yb, pred) * wb) / tf.reduce_sum(wb)
            total = loss + tf.add_n(model.losses) if model.losses else loss
        grads = tape.gradient(total, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss, tf.reduce_mean(accuracy(yb, pred))

    def evaluate(xb, yb):
        pred = model(xb, training=False)
        return tf.reduce_mean(loss_fn(yb, pred)), tf.reduce_mean(accuracy(yb, pred))

    y_spec = tf.TensorSpec([None, *y.shape[1:]], tf.float32 if y.ndim == 2 else tf.int64)
    x_spec = tf.TensorSpec([None, x.shape[1]], tf.float32)
    step = tf.function(step, input_signature=[x_spec, y_spec, tf.TensorSpec([None], tf.float32)], autograph=False)
    evaluate = tf.function(evaluate, input_signature=[x_spec, y_spec], autograph=False)
    cast = (lambda a: a.astype(np.float32)) if y.ndim == 2 else (lambda a: a.astype(np.int64))
    y, sample_weight = cast(y), sample_weight.astype(np.float32)
    if val is not None:
        val = (val[0].astype(np.float32), cast(val[1]))
    rng = np.random.default_rng(config.seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    best, best_weights, waited = np.inf, None, 0
    bar = keras.utils.Progbar(config.epochs, unit_name="epoch") if config.verbose else None
    for epoch in range(config.epochs):
        order = rng.permutation(len(x))
        losses, accs, sizes = [], [], []
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, yb, wb = x[idx], y[idx], sample_weight[idx]
            if config.mixup:
                lam = rng.beta(config.mixup, config.mixup, size=(len(idx), 1)).astype(np.float32)
                perm = rng.permutation(len(idx))
                xb, yb = lam * xb + (1 - lam) * xb[perm], lam * yb + (1 - lam) * yb[perm]
            loss, acc = step(xb, yb, wb)
            losses.append(float(loss))
            accs.append(float(acc))
            sizes.append(len(idx))
        history["loss"].append(float(np.average(losses, weights=sizes)))
        history["accuracy"].append(float(np.average(accs, weights=sizes)))
        logs = [("loss", history["loss"][-1]), ("accuracy", history["accuracy"][-1])]
        if val is not None:
            vl, va = (float(v) for v in evaluate(*val))
            history.setdefault("val_loss", []).append(vl)
            history.setdefault("val_accuracy", []).append(va)
            logs += [("val_loss", vl), ("val_accuracy", va)]
            if vl < best:
                best, best_weights, waited = vl, model.get_weights(), 0
            else:
                waited += 1
        if bar is not None:
            bar.update(epoch + 1, values=logs)
        if val is not None and waited > config.patience:
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    return history
