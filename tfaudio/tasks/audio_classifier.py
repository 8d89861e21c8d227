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
from tfaudio.heads.classification_head import HeadConfig, average_heads, build_head
from tfaudio.io.atomic import sweep_stale, temp_path

FORMAT_VERSION = 1
CONFIG_FILE = "tfaudio.json"
#: Share of the correctly classified validation clips the "none of these" threshold keeps accepted.
REJECTION_KEEP = 0.95
HEAD_FILE = "head.keras"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How the head is trained (the named recipes in :mod:`tfaudio.tasks.recipe` set these).

    Args:
        epochs: epochs of the schedule (with a validation set, at most this many: early stopping).
        batch_size: frames (or clips, for clip-level heads) per step.
        learning_rate: Adam's (initial) learning rate.
        schedule: ``"cosine"`` (decay to 0 over ``epochs``) or ``"constant"``.
        label_smoothing: spread this much of each target's probability over the other classes.
        mixup: alpha of mixup on pairs of frame embeddings (0: off; frame-level heads only).
        patience: epochs without improvement of ``monitor`` before stopping (best weights restored);
            used when there is a validation set, or when ``monitor`` is ``"loss"``.
        monitor: ``"val_loss"`` (the validation set's loss) or ``"loss"`` (the training loss, as the
            TF Hub tutorial does).
        class_weight: "balanced" (inverse class frequency) or None.
        seed: makes initialisation and shuffling reproducible.
        min_clips_per_class: refuse training when a class has fewer clips than this.
        verbose: progress output (0 silent, 1 bar, 2 a line per epoch with that epoch's values).
    """

    epochs: int = 40
    batch_size: int = 128
    learning_rate: float = 1e-3
    schedule: str = "cosine"
    label_smoothing: float = 0.1
    mixup: float = 0.4
    patience: int = 8
    monitor: str = "val_loss"
    class_weight: str | None = "balanced"
    seed: int = 0
    min_clips_per_class: int = 2
    verbose: int = 0

    def __post_init__(self):
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.monitor not in ("val_loss", "loss"):
            raise ValueError(f"monitor must be 'val_loss' or 'loss', got {self.monitor!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.learning_rate > 0:
            raise ValueError(f"epochs, batch_size and learning_rate must be positive, got {self.epochs}, "
                             f"{self.batch_size}, {self.learning_rate}")
        if not 0.0 <= self.label_smoothing < 1.0 or self.mixup < 0:
            raise ValueError(f"label_smoothing must be in [0, 1) and mixup >= 0, got {self.label_smoothing}, "
                             f"{self.mixup}")


class AudioClassifier:
    """Backbone + head + pooling over a clip's frames: files or waveforms in, class scores out.

    Args:
        backbone: a :class:`tfaudio.backbones.Backbone`, or a name/spec for
            :func:`tfaudio.backbones.get_backbone` ("yamnet").
        labels: class names, in score order.
        head: the head's configuration (default: the recipe's).
        cache: an :class:`EmbeddingCache` (default: one in ``$TFAUDIO_CACHE``).
        recipe: a :class:`~tfaudio.tasks.recipe.Recipe` or its name (default ``"default"``): the head
            and the training settings :meth:`fit` uses unless given.

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
        head: HeadConfig | None = None,
        *,
        cache: EmbeddingCache | None = None,
        recipe: Any = None,
    ):
        from tfaudio.tasks.recipe import get_recipe

        self.recipe = get_recipe(recipe)
        if not hasattr(backbone, "contract"):
            from tfaudio.backbones.registry import get_backbone

            backbone = get_backbone(backbone)
        self.backbone = backbone
        self.labels = tuple(labels) if labels is not None else None
        self.head = head if head is not None else self.recipe.head
        self.cache = cache if cache is not None else EmbeddingCache(backbone)
        self.head_model_ = None
        self.history_: dict[str, list[float]] = {}
        self.train_config_: TrainConfig | None = None
        #: multi-label heads: per-class thresholds chosen by :meth:`fit` on training / validation clips
        self.thresholds_: list[float] | None = None
        #: single-label heads fitted with validation clips: the top score below which a clip is "none of
        #: these" (keeps :data:`REJECTION_KEEP` of the correctly classified validation clips)
        self.rejection_threshold_: float | None = None
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
        config: TrainConfig | None = None,
        **overrides: Any,
    ) -> AudioClassifier:
        """Train the head on ``train`` (its frames, or its clips for clip-level heads); early-stop on
        ``val`` when given. ``config`` defaults to the recipe's. Returns self."""
        import tf_keras as keras

        config = dataclasses.replace(config or self.recipe.train, **overrides)
        if isinstance(train, Manifest) and self.labels is None:
            self.labels = tuple(train.labels)
        if self.labels is None:
            raise TfaudioError("AudioClassifier needs labels= when trained from ClipEmbeddings")
        if _is_multi_label(train) and not self.head.multi_label:  # several labels per clip: sigmoid + BCE
            self.head = dataclasses.replace(self.head, multi_label=True)
        if isinstance(train, Manifest):
            self._check_trainable(train.targets, config, where=f"the training folds {train.folds}")
        tr = self._clips(train)
        self._check_trainable(tr.targets, config, where="the training clips")
        va = self._clips(val) if val is not None else None
        head, multi = self.head, self.head.multi_label
        num_classes = len(self.labels)
        data = _TrainingData(tr, head, num_classes)
        val_data = _TrainingData(va, head, num_classes) if va is not None else None
        weights = np.ones(num_classes, np.float32)
        if config.class_weight == "balanced" and not multi:
            counts = np.bincount(data.y, minlength=num_classes).astype(np.float32)
            present = counts > 0
            weights[present] = counts[present].sum() / (present.sum() * counts[present])
        members, histories = [], []
        for m in range(int(head.ensemble)):
            keras.utils.set_random_seed(config.seed + 1000 * m)
            model = build_head(tr.embeddings[0].shape[1], num_classes, head, name=f"head_{m}", stats=data.stats)
            member_config = dataclasses.replace(config, seed=config.seed + 1000 * m,
                                                verbose=config.verbose if m == 0 else 0)
            histories.append(_train_head(model, data, weights, val_data, member_config, multi))
            members.append(model)
        self.head_model_ = average_heads(members)
        self.history_ = histories[0]
        self.train_config_ = config
        self.thresholds_ = None
        self.rejection_threshold_ = None
        if not multi and va is not None:  # "none of these": a top score below this on new clips
            from tfaudio.tasks.multilabel_metrics import rejection_threshold

            try:
                self.rejection_threshold_ = rejection_threshold(self.clip_scores(va), va.targets, keep=REJECTION_KEEP)
            except TfaudioError:  # no validation clip classified correctly: no threshold to choose
                self.rejection_threshold_ = None
        if multi:  # per-class decision thresholds, from the validation folds when given, else the training folds
            from tfaudio.tasks.multilabel_metrics import choose_thresholds

            chosen_on = va if va is not None else tr
            y = np.asarray(chosen_on.targets)
            y = y if y.ndim == 2 else np.eye(num_classes, dtype=np.float32)[y]  # one label per clip, sigmoid head
            self.thresholds_ = [float(t) for t in choose_thresholds(y, self.clip_scores(chosen_on))]
        return self

    def _check_trainable(self, targets: np.ndarray, config: TrainConfig, where: str) -> None:
        if len(self.labels) < 2 and not self.head.multi_label:
            raise ManifestError(
                f"a classifier needs at least 2 classes, got {list(self.labels)}. Fix: select more classes."
            )
        targets = np.asarray(targets)
        n = targets.sum(axis=0) if targets.ndim == 2 else np.bincount(targets.astype(np.int64), minlength=len(self.labels))
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
            self._scorer = ClipScorer(self.backbone, self.head_model_, self.labels, head_config=self.head)
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
        return self.scorer.scores_from_embeddings(clips.embeddings, clips.gates() if self.head.silence_gate else None)

    def evaluate(self, data: Manifest | ClipEmbeddings) -> dict[str, dict | None]:
        """Reports at clip level (the scorer's pooled scores) and at frame level (frame heads: every
        frame the silence gate keeps, with its clip's label; None for clip-level heads)."""
        from tfaudio.tasks.report import classification_report

        self._require_trained()
        clips = self._clips(data)
        clip = self.clip_scores(clips)
        multi = self.head.multi_label
        labels = list(self.labels)

        def targets(t):
            t = np.asarray(t)
            return t.astype(np.int64) if t.ndim == 2 else np.eye(len(labels), dtype=np.int64)[t] if multi else t

        frame_report = None
        if not self.head.clip_level:
            x, y, _ = clips.frames(gate=self.head.silence_gate)
            frame_report = classification_report(targets(y), self.frame_scores(x), labels, multi_label=multi,
                                                  level="frame")
        clip_report = classification_report(targets(clips.targets), clip, labels, multi_label=multi, level="clip")
        if multi and self.thresholds_ is not None:  # F1 at the thresholds chosen on training / validation folds
            from tfaudio.tasks.multilabel_metrics import f1_at_thresholds

            at = f1_at_thresholds(targets(clips.targets), clip, self.thresholds_)
            clip_report.update(thresholds=list(self.thresholds_), micro_f1_at_thresholds=at["micro_f1"],
                               macro_f1_at_thresholds=at["macro_f1"])
        return {"clip": clip_report, "frame": frame_report}

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
            **({"thresholds": self.thresholds_} if self.thresholds_ is not None else {}),
            **({"rejection_threshold": self.rejection_threshold_} if self.rejection_threshold_ is not None else {}),
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
        clf.thresholds_ = cfg.get("thresholds")
        clf.rejection_threshold_ = cfg.get("rejection_threshold")
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


def _is_multi_label(data: Any) -> bool:
    """Multi-label data: a manifest with several labels per clip, or embeddings with multi-hot targets."""
    if isinstance(data, Manifest):
        return bool(getattr(data, "multi_label", False))
    return np.asarray(getattr(data, "targets", np.zeros(0))).ndim == 2


class _TrainingData:
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


def _train_head(model, data: _TrainingData, class_weights: np.ndarray, val: _TrainingData | None,
                config: TrainConfig, multi_label: bool) -> dict[str, list[float]]:
    """Mini-batch Adam on frames (or clips) with per-example class weights, label smoothing, optional
    mixup of frame pairs, a cosine or constant learning rate, and early stopping on ``config.monitor``
    when there is something to monitor (best weights restored). Returns each epoch's values (not
    running averages), Keras-history style.

    A plain loop around one traced step (autograph off) instead of ``Model.fit``: for heads this
    small, Keras' per-model tracing costs more than the training itself (8 s vs ~1 s per fold).
    """
    import tensorflow as tf
    import tf_keras as keras

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
