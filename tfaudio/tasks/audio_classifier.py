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
from collections.abc import Sequence
from typing import Any

import numpy as np
import tf_keras as keras

from tfaudio.backbones.registry import backbone_spec, get_backbone
from tfaudio.data.audio_converter import AudioConverter, is_pair
from tfaudio.data.embedding_cache import ClipEmbeddings, EmbeddingCache
from tfaudio.data.manifest import Manifest
from tfaudio.errors import ManifestError, TfaudioError
from tfaudio.heads import decode
from tfaudio.heads.classification_head import HeadConfig, average_heads, build_head
from tfaudio.io.atomic import atomic_directory
from tfaudio.tasks.clip_scorer import ClipScorer
from tfaudio.tasks.head_training import TrainingData, train_head
from tfaudio.tasks.recipe import TrainConfig, get_recipe
from tfaudio.tasks.report import classification_report

FORMAT_VERSION = 1
CONFIG_FILE = "tfaudio.json"
#: Share of the correctly classified validation clips the "none of these" threshold keeps accepted.
REJECTION_KEEP = 0.95
HEAD_FILE = "head.keras"
#: The fine-tuned backbone's weights (``tfaudio finetune``): one array per ``backbone.variables``, in order.
BACKBONE_WEIGHTS_FILE = "backbone_weights.npz"


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
        self.recipe = get_recipe(recipe)
        self.backbone = backbone = get_backbone(backbone)
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
        #: set when the backbone itself was trained (:mod:`tfaudio.tasks.finetune`): how; its weights are
        #: then saved with the model
        self.fine_tuned_: dict[str, Any] | None = None
        #: set by :meth:`fit`: the training clips' number, median frame count and the seconds those frames
        #: span (the TFLite export's default window, :mod:`tfaudio.export.window`); None for old models
        self.train_clips_: dict[str, Any] | None = None
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
        data = TrainingData(tr, head, num_classes)
        val_data = TrainingData(va, head, num_classes) if va is not None else None
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
            histories.append(train_head(model, data, weights, val_data, member_config, multi))
            members.append(model)
        self.head_model_ = average_heads(members)
        self.history_ = histories[0]
        self.train_config_ = config
        self.train_clips_ = training_clips([len(e) for e in tr.embeddings], self.backbone.contract)
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

        scorer = self.scorer
        convert = AudioConverter.for_backbone(self.backbone)
        rate = self.backbone.contract.sample_rate if sample_rate is None else sample_rate
        items = _as_list(inputs)
        waves = convert.convert_many(items, rate).waves
        return scorer.scores(waves, batch_size=batch_size)

    def predict(self, inputs: Any, *, sample_rate: int | None = None, top_k: int = 5) -> list[list[dict]]:
        """Top-k ``[{"label", "score"}]`` per input (see :meth:`predict_scores`)."""
        scores = self.predict_scores(inputs, sample_rate=sample_rate)
        return [decode.top_k(s, self.labels, top_k) for s in scores]

    # ---- persistence --------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
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
            **({"train_clips": self.train_clips_} if self.train_clips_ is not None else {}),
            **({"fine_tuned": {**self.fine_tuned_, "weights": BACKBONE_WEIGHTS_FILE,
                               "fingerprint": self.backbone.fingerprint}} if self.fine_tuned_ is not None else {}),
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> pathlib.Path:
        """Write ``tfaudio.json`` (labels, head, backbone spec), ``labels.txt`` and ``head.keras``
        into ``path``, atomically (a temporary folder renamed into place)."""
        self._require_trained()

        def write(tmp: pathlib.Path) -> None:
            self.head_model_.save(tmp / HEAD_FILE)
            if self.fine_tuned_ is not None:
                with open(tmp / BACKBONE_WEIGHTS_FILE, "wb") as f:
                    np.savez(f, **{f"w{i:04d}": v.numpy() for i, v in enumerate(self.backbone.variables)})
            (tmp / CONFIG_FILE).write_text(json.dumps(self.config(), indent=1, ensure_ascii=False), encoding="utf8")
            (tmp / "labels.txt").write_text("\n".join(self.labels) + "\n", encoding="utf8")

        # keep what else lives there (reports, exports): replace only our files
        return atomic_directory(path, write, overwrite=overwrite, merge=True)

    @classmethod
    def load(cls, path: str | os.PathLike, *, backbone: Any = None, cache: EmbeddingCache | None = None) -> AudioClassifier:
        """Load a classifier saved by :meth:`save` (the backbone is re-created from its spec)."""

        path = pathlib.Path(path)
        cfg_file = path / CONFIG_FILE
        if not cfg_file.is_file():
            raise TfaudioError(f"{path} is not a saved tfaudio classifier (no {CONFIG_FILE}).")
        cfg = json.loads(cfg_file.read_text())
        if backbone is None:
            backbone = get_backbone(cfg["backbone"])
        tuned = cfg.get("fine_tuned")
        if tuned is not None:  # the backbone's own weights were trained: they live in the folder
            weights = path / tuned.get("weights", BACKBONE_WEIGHTS_FILE)
            try:
                with np.load(weights) as data:
                    values = [data[k] for k in sorted(data.files)]
            except (OSError, ValueError) as err:
                raise TfaudioError(f"{weights}: cannot read the fine-tuned backbone's weights ({err}). Fix: save "
                                   "the model again (tfaudio finetune writes it).") from None
            backbone = get_backbone(backbone).assign_variables(values, source=str(weights))
        clf = cls(backbone, labels=cfg["labels"], head=HeadConfig.from_dict(cfg["head"]), cache=cache)
        clf.fine_tuned_ = {k: v for k, v in tuned.items() if k not in ("weights", "fingerprint")} if tuned else None
        clf.head_model_ = keras.models.load_model(path / HEAD_FILE, compile=False)
        clf.history_ = cfg.get("history") or {}
        clf.thresholds_ = cfg.get("thresholds")
        clf.rejection_threshold_ = cfg.get("rejection_threshold")
        clf.train_clips_ = cfg.get("train_clips")  # absent in models saved before it was recorded
        if cfg.get("train"):
            clf.train_config_ = TrainConfig(**cfg["train"])
        return clf


def training_clips(frame_counts: Sequence[int], contract: Any) -> dict[str, Any] | None:
    """What :meth:`AudioClassifier.fit` records about its training clips (None without clips): their
    number, the median frame count and the seconds those frames span (``min_seconds + (frames - 1) *
    hop_seconds``: 5.295 s for YAMNet on 5 s clips, whose last patch is zero-padded)."""

    counts = np.asarray(list(frame_counts), np.int64)
    if counts.size == 0:
        return None
    frames = max(1, int(np.round(np.median(counts))))
    return {"clips": int(counts.size), "median_frames": frames,
            "median_seconds": round(float(contract.min_seconds + (frames - 1) * contract.hop_seconds), 4)}


def _as_list(inputs: Any) -> list:
    """One input (a path, bytes, an array, a dict, a ``(samples, rate)`` tuple) → ``[inputs]``; a list as is."""

    if isinstance(inputs, list) or (isinstance(inputs, tuple) and not is_pair(inputs)):
        return list(inputs)
    return [inputs]


def _is_multi_label(data: Any) -> bool:
    """Multi-label data: a manifest with several labels per clip, or embeddings with multi-hot targets."""
    if isinstance(data, Manifest):
        return bool(getattr(data, "multi_label", False))
    return np.asarray(getattr(data, "targets", np.zeros(0))).ndim == 2
