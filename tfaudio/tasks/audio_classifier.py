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
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfaudio.data.embedding_cache import ClipEmbeddings, EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.errors import ManifestError, TfaudioError
from tfaudio.heads.classification_head import HeadConfig, build_head

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


def _softmax_mean(frame_scores: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Mean of frame scores per clip: [frames, C] and clip frame counts → [clips, C]."""
    bounds = np.concatenate([[0], np.cumsum(counts)])
    return np.stack([frame_scores[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])


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
        import tensorflow as tf
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
        y_enc = keras.utils.to_categorical(y, num_classes) if (multi or config.mixup) else y
        if multi:
            loss = keras.losses.BinaryCrossentropy()
            metrics = [keras.metrics.BinaryAccuracy(name="accuracy")]
        elif config.mixup:
            loss = keras.losses.CategoricalCrossentropy()
            metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        else:
            loss = keras.losses.SparseCategoricalCrossentropy()
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        self.head_model_.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, metrics=metrics)

        class_weight = None
        if config.class_weight == "balanced" and not multi:
            counts = np.bincount(y, minlength=num_classes).astype(float)
            present = counts > 0
            w = np.zeros(num_classes)
            w[present] = counts[present].sum() / (present.sum() * counts[present])
            class_weight = {i: float(w[i]) for i in range(num_classes)}

        train_ds = tf.data.Dataset.from_tensor_slices((x, y_enc)).shuffle(len(x), seed=config.seed)
        train_ds = train_ds.batch(config.batch_size)
        if config.mixup:
            train_ds = train_ds.map(_mixup_fn(config.mixup, config.seed))
        callbacks = []
        val_data = None
        if va is not None:
            vx, vy, _ = va.frames()
            vy_enc = keras.utils.to_categorical(vy, num_classes) if (multi or config.mixup) else vy
            val_data = (vx, vy_enc)
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=config.patience, restore_best_weights=True
                )
            )
        hist = self.head_model_.fit(
            train_ds.prefetch(tf.data.AUTOTUNE),
            validation_data=val_data,
            epochs=config.epochs,
            class_weight=class_weight,
            callbacks=callbacks,
            verbose=config.verbose,
        )
        self.history_ = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
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
                f"Fix: add clips, merge classes, or lower min_clips_per_class."
            )

    @property
    def is_trained(self) -> bool:
        return self.head_model_ is not None

    def _require_trained(self) -> None:
        if not self.is_trained:
            raise TfaudioError("this AudioClassifier is not trained. Fix: call fit() or load() first.")

    # ---- scoring ------------------------------------------------------------------------------
    def frame_scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Head scores of frame embeddings [frames, dim] → [frames, classes]."""
        self._require_trained()
        if len(embeddings) == 0:
            return np.zeros([0, len(self.labels)], np.float32)
        return np.asarray(self.head_model_(np.asarray(embeddings, np.float32), training=False))

    def clip_scores(self, clips: ClipEmbeddings) -> np.ndarray:
        """Mean frame scores per clip [clips, classes] (what the exported model computes)."""
        x, _, _ = clips.frames()
        scores = self.frame_scores(x)
        return _softmax_mean(scores, [e.shape[0] for e in clips.embeddings])

    def evaluate(self, data: Manifest | ClipEmbeddings) -> dict[str, dict]:
        """Reports at clip level (mean of frame scores) and at frame level."""
        from tfaudio.tasks.report import classification_report

        self._require_trained()
        clips = self._clips(data)
        x, y, _ = clips.frames()
        frame = self.frame_scores(x)
        clip = _softmax_mean(frame, [e.shape[0] for e in clips.embeddings])
        multi = self.head.multi_label
        labels = list(self.labels)

        def targets(t):
            return np.eye(len(labels), dtype=np.int64)[t] if multi else t

        return {
            "clip": classification_report(targets(clips.targets), clip, labels, multi_label=multi, level="clip"),
            "frame": classification_report(targets(y), frame, labels, multi_label=multi, level="frame"),
        }

    def _waveforms(self, inputs: Any, sample_rate: int | None) -> list[np.ndarray]:
        from tfaudio.io.decode import load_audio
        from tfaudio.signal.resample import resample

        target = self.backbone.contract.sample_rate
        if isinstance(inputs, (str, os.PathLike, np.ndarray)) or (
            isinstance(inputs, dict) and "array" in inputs
        ):
            inputs = [inputs]
        out = []
        for item in inputs:
            rate = sample_rate
            if isinstance(item, dict):
                item, rate = np.asarray(item["array"], np.float32), int(item["sampling_rate"])
            if isinstance(item, (str, os.PathLike)):
                item, rate = load_audio(item)
            else:
                item = np.asarray(item, np.float32)
                if item.ndim != 1:
                    raise TfaudioError(f"a waveform must be 1-D mono [samples], got shape {item.shape}")
                if rate is None:
                    rate = target
            if rate != target:
                item = np.asarray(resample(item, int(rate), target))
            out.append(item)
        return out

    def predict_scores(self, inputs: Any, *, sample_rate: int | None = None, batch_size: int = 16) -> np.ndarray:
        """Clip scores [n, classes] for file paths or waveforms (mono; at ``sample_rate``, default
        the backbone's rate)."""
        import tensorflow as tf

        self._require_trained()
        waves = self._waveforms(inputs, sample_rate)
        out = []
        for start in range(0, len(waves), batch_size):
            chunk = waves[start : start + batch_size]
            lengths = np.array([len(w) for w in chunk], np.int32)
            batch = np.zeros([len(chunk), max(lengths.max(), 1)], np.float32)
            for i, w in enumerate(chunk):
                batch[i, : len(w)] = w
            emb, mask = self.backbone.batch_frames(tf.constant(batch), tf.constant(lengths))
            emb, mask = np.asarray(emb), np.asarray(mask)
            for j in range(len(chunk)):
                out.append(self.frame_scores(emb[j][mask[j]]).mean(axis=0))
        return np.stack(out)

    def predict(self, inputs: Any, *, sample_rate: int | None = None, top_k: int = 5) -> list[list[dict]]:
        """Top-k ``[{"label", "score"}]`` per input (file paths or waveforms)."""
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
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
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


def top_k_labels(scores: np.ndarray, labels: Sequence[str], k: int = 5) -> list[dict]:
    """``[{"label", "score"}]`` of the ``k`` highest scores, best first."""
    order = np.argsort(-np.asarray(scores))[:k]
    return [{"label": labels[i], "score": float(scores[i])} for i in order]


def _mixup_fn(alpha: float, seed: int):
    import tensorflow as tf

    def mix(x, y):
        n = tf.shape(x)[0]
        g1 = tf.random.gamma([n], alpha, seed=seed)
        g2 = tf.random.gamma([n], alpha, seed=seed + 1)
        lam = g1 / (g1 + g2)
        perm = tf.random.shuffle(tf.range(n), seed=seed)
        lx = lam[:, None]
        return lx * x + (1 - lx) * tf.gather(x, perm), lx * y + (1 - lx) * tf.gather(y, perm)

    return mix
