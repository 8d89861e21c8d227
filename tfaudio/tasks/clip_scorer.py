"""ClipScorer: the one road from a batch of waveforms to clip scores.

Every path that scores audio runs these functions: the exported SavedModel's signatures and TFLite
graph trace them (:mod:`tfaudio.export`), and the eager paths (:meth:`AudioClassifier.predict_scores`,
``tfaudio.pipeline``, ``tfaudio tag`` / ``predict``, the Gradio demo) call the same traced
:meth:`ClipScorer.batch`; evaluation on cached embeddings calls the same head and :meth:`pool`. So
"what the export computes" is true by construction::

    audio [B, S], lengths [B] at the backbone's rate
      → backbone.graph_outputs → embeddings [B, F, D], mask [B, F] (+ the backbone's own scores)
      → head on every frame → frame scores [B, F, C]
      → pool over each clip's valid frames → classifier [B, C]

Three kinds (see :func:`clip_scorer`): a trained classifier (backbone + head), a tagger (a backbone's
own classes, e.g. YAMNet's / EfficientAT's AudioSet scores, no head) and a fine-tuned Wav2Vec2 /
HuBERT Keras model (``{"waveform", "length" | "attention_mask"} → logits`` → softmax).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfaudio.backbones.registry import backbone_name, is_backbone
from tfaudio.data.audio_converter import pad_batch
from tfaudio.errors import TfaudioError
from tfaudio.heads.classification_head import POOLED_EMBEDDING_POOLINGS
from tfaudio.signal.frame_energy import frame_energy_db, silence_gate
from tfaudio.signal.pooling import masked_mean

__all__ = ["ClipScorer", "FineTunedScorer", "clip_scorer", "frame_head_scores", "pool"]

#: Clips per eager call of :meth:`ClipScorer.scores`.
BATCH_SIZE = 16


def frame_head_scores(head, embeddings, embedding_dim: int, num_classes: int, *, training: bool = False):
    """A frame head ``[N, D] → [N, C]`` on every frame of ``embeddings [B, F, D]`` → ``[B, F, C]`` float32
    (shared by the clip scorer and the fine-tuning road, :mod:`tfaudio.tasks.finetune`)."""
    shape = tf.shape(embeddings)
    flat = tf.reshape(embeddings, [shape[0] * shape[1], embedding_dim])  # [B*F, D]
    scores = head(flat, training=training)  # [B*F, C]
    return tf.reshape(tf.cast(scores, tf.float32), [shape[0], shape[1], num_classes])


def pool(frame_scores, mask=None):
    """Clip scores from frame scores: the mean over each clip's valid frames.

    Args:
        frame_scores: float ``[B, F, C]``.
        mask: bool ``[B, F]`` (valid frames), or None when every frame is valid (a fixed window).

    Returns:
        ``[B, C]``; a clip without valid frames scores 0.
    """
    return masked_mean(frame_scores, mask)


def _counted(weights, frames):
    """Which of ``frames [B, F, ...]`` a clip score counts, as float ``[B, F]``: ``weights`` (bool or
    float), or every frame when None."""

    return tf.ones(tf.shape(frames)[:2]) if weights is None else tf.cast(weights, tf.float32)


class _WaveformScorer:
    """What :class:`ClipScorer` and :class:`FineTunedScorer` share: the eager roads (``outputs``,
    ``scores``, ``clip``) over a subclass's pure-TF ``batch(audio, lengths, ...)``. Implements
    :class:`tfaudio.inference.scorer.Scorer`."""

    kind: str
    labels: tuple[str, ...]
    sample_rate: int
    description: str
    contract: Any
    frame_scores: bool = False
    backbone_scores: bool = False

    @property
    def frame_hop_seconds(self) -> float | None:
        """Seconds between frame scores (None: the model has none)."""
        return float(self.contract.hop_seconds) if self.frame_scores else None

    @property
    def frame_seconds(self) -> float | None:
        """Seconds of audio one frame score sees (None: the model has none)."""
        return float(self.contract.frame_seconds) if self.frame_scores else None

    def check(self, *, frame_scores: bool = False, backbone_scores: bool = False) -> None:
        """Raises TfaudioError when an optional output is asked of a model that has none."""
        if frame_scores and not self.frame_scores:
            raise TfaudioError(f"frame_scores: {self.description} scores whole clips, it has no frame scores. "
                               "Fix: export without frame_scores (--frame-scores).")
        if backbone_scores and not self.backbone_scores:
            raise TfaudioError(f"backbone_scores: {self.description} has no class scores of its own beside the "
                               "head (YAMNet and EfficientAT have AudioSet's). Fix: export without --audioset.")

    def batch(self, audio, lengths, *, frame_scores: bool = False, backbone_scores: bool = False) -> dict:
        raise NotImplementedError

    def clip(self, audio, *, frame_scores: bool = False, backbone_scores: bool = False) -> dict:
        """One clip ``audio [S]`` → ``{"classifier": [C], "frame_scores": [F, C]?, "frame_weights": [F]?,
        "audioset": [K]?}``."""

        out = self.batch(tf.expand_dims(audio, 0), tf.shape(audio)[:1], frame_scores=frame_scores,
                         backbone_scores=backbone_scores)
        out.pop("mask", None)  # one clip alone: every frame is valid
        return {k: v[0] for k, v in out.items()}

    def window(self, waveform):
        """TFLite: one fixed window ``[1, S]`` (no padding) → scores ``[1, C]``."""

        return self.batch(waveform, tf.shape(waveform)[1:2])["classifier"]

    # ---- eager --------------------------------------------------------------------------------
    def _fn(self, name: str):
        """The traced ``batch`` (free batch and length) or, in subclasses, another named graph."""

        fn = self._traced.get(name)
        if fn is None:
            fn = self._traced[name] = tf.function(*self._graph(name), autograph=False)
        return fn

    def _graph(self, name: str):
        """``(python function, input signature)`` of the graph called ``name``."""

        def run(audio, lengths):
            return self.batch(audio, lengths, frame_scores=self.frame_scores)

        return run, [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)]

    def outputs(self, waves: Sequence[np.ndarray], *, batch_size: int = BATCH_SIZE) -> list[dict[str, np.ndarray]]:
        """Per clip (float32 ``[samples]`` at :attr:`sample_rate`): ``{"classifier": [C],
        "frame_scores": [F, C], "frame_weights": [F]}`` (frame scores when the model has them, and which
        of them the clip score counts), through the traced :meth:`batch`."""

        results: list[dict[str, np.ndarray]] = []
        for start in range(0, len(waves), batch_size):
            audio, lengths = pad_batch(waves[start : start + batch_size])
            out = {k: np.asarray(v) for k, v in self._fn("batch")(audio, lengths).items()}
            for i in range(len(lengths)):
                row = {"classifier": out["classifier"][i]}
                if "frame_scores" in out:
                    row["frame_scores"] = out["frame_scores"][i][out["mask"][i]]
                    row["frame_weights"] = out["frame_weights"][i][out["mask"][i]]
                results.append(row)
        return results

    def scores(self, waves: Sequence[np.ndarray], *, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Clip scores ``[n, C]`` of waveforms at :attr:`sample_rate` (what the export returns)."""
        if not len(waves):
            return np.zeros([0, len(self.labels)], np.float32)
        return np.stack([o["classifier"] for o in self.outputs(waves, batch_size=batch_size)])


class ClipScorer(_WaveformScorer):
    """A backbone, an optional head on its frames, and pooling over each clip's frames.

    Args:
        backbone: a :class:`~tfaudio.backbones.backbone.Backbone`.
        head: a Keras model ``[N, D] → [N, C]`` on frame embeddings (``pooling="mean"``), or a clip-level
            head ``{"frames", "weights"} → {"clip", "frames"?}`` (:mod:`tfaudio.heads.classification_head`);
            None scores the backbone's own classes (``backbone.class_names``).
        labels: class names in score order (default: ``backbone.class_names`` without a head).
        description: what the model is, for metadata and messages.
        head_config: the head's :class:`~tfaudio.heads.classification_head.HeadConfig` (its pooling and
            silence gate; default: a frame head, mean over every valid frame).

    Attributes:
        kind: ``"classifier"`` or ``"tagger"``.
        labels, sample_rate, contract, variables (every ``tf.Variable`` the graph reads).
        frame_scores: :meth:`batch` can return frame scores.
        backbone_scores: :meth:`batch` can return the backbone's own (AudioSet) clip scores.
    """

    def __init__(self, backbone: Any, head: Any = None, labels: Sequence[str] | None = None, *,
                 description: str | None = None, head_config: Any = None):
        self.backbone = backbone
        self.head = head
        #: how the head pools a clip (``pooling``) and whether silent frames count (``silence_gate``)
        self.pooling = getattr(head_config, "pooling", "mean") if head is not None else "mean"
        self.silence_gate = bool(getattr(head_config, "silence_gate", False)) and head is not None
        self.kind = "tagger" if head is None else "classifier"
        own = tuple(backbone.class_names or ())
        if head is None:
            if not own:
                raise TfaudioError(f"{type(backbone).__name__} has no classes of its own; a tagger needs them "
                                   "(YAMNet, EfficientAT). Fix: train a head on it (tfaudio train).")
            labels = own if labels is None else labels
            units = len(own)
        else:
            shape = head.output_shape
            units = int((shape["clip"] if isinstance(shape, dict) else shape)[-1])
        self.labels = _check_labels(labels, units, "set the labels to the class names the head was trained on, "
                                                   "in score order (see the model's labels.txt).")
        self.contract = backbone.contract
        self.sample_rate = int(backbone.contract.sample_rate)
        name = backbone_name(backbone)
        self.description = description or (f"{name} backbone + tfaudio head" if head is not None
                                           else f"{name} ({len(self.labels)} classes of its own)")
        self.backbone_scores = bool(own) and head is not None
        self._traced: dict[str, Any] = {}

    @property
    def frame_scores(self) -> bool:
        """Whether :meth:`batch` can return frame scores (a tagger whose backbone pools whole clips,
        e.g. EfficientAT's AudioSet scores, or a head on pooled statistics cannot)."""
        if self.head is not None:
            if self.pooling in POOLED_EMBEDDING_POOLINGS:  # heads saved before these had frame scores
                return isinstance(self.head.output, dict) and "frames" in self.head.output
            return True
        return not getattr(self.backbone, "clip_level_scores", False)

    @property
    def frontend_scope(self) -> str | None:
        return getattr(self.backbone, "frontend_scope", None)

    @property
    def variables(self) -> list:
        return list(self.backbone.variables) + (list(self.head.variables) if self.head is not None else [])

    # ---- the graph (pure TF; traced by exports and by the eager paths) ---------------------------
    def head_frames(self, embeddings):
        """A frame head on every frame: ``[B, F, D]`` → ``[B, F, C]``."""
        return frame_head_scores(self.head, embeddings, self.contract.embedding_dim, len(self.labels))

    def weights(self, audio, lengths, mask):
        """The frames that count ``[B, F]``: the valid ones (``mask``), minus silent ones when the
        silence gate is on (energies from the waveform, :mod:`tfaudio.signal.frame_energy`)."""
        if not self.silence_gate:
            return mask

        c = self.contract
        scope = self.frontend_scope or "silence_gate"
        # "scope/" re-enters the backbone's top-level frontend scope: a plain name_scope(scope) after the
        # backbone's own would become "frontend_1", which int8 TFLite exports would quantize
        with tf.name_scope(scope + "/"):  # with the frontend: kept float in int8 TFLite models
            db = frame_energy_db(audio, lengths, c.frame_samples, c.hop_samples, tf.shape(mask)[1])
            return silence_gate(db, mask)

    def pool_frames(self, embeddings, weights) -> dict:
        """The head on frame ``embeddings [B, F, D]`` and its pooling over ``weights [B, F]`` (bool; None:
        all frames) → ``{"classifier": [B, C], "frame_scores": [B, F, C]?, "frame_weights": [B, F]?}``
        (``frame_weights``: 1.0 for the frames the clip score counts, 0.0 for silent ones): the one
        implementation the waveform road and the cached-embedding road share."""

        if self.pooling == "mean":
            frames = self.head_frames(embeddings)  # [B, F, C]
            return {"classifier": pool(frames, weights), "frame_scores": frames,
                    "frame_weights": _counted(weights, frames)}
        if weights is None:
            weights = tf.ones(tf.shape(embeddings)[:2], tf.bool)
        out = self.head({"frames": embeddings, "weights": tf.cast(weights, tf.float32)}, training=False)
        result = {"classifier": tf.cast(out["clip"], tf.float32)}
        if "frames" in out:
            result["frame_scores"] = tf.cast(out["frames"], tf.float32)
            result["frame_weights"] = _counted(weights, embeddings)
        return result

    def _score(self, out: dict, audio, lengths, mask_is_full: bool) -> dict:
        if self.head is None:
            mask = None if mask_is_full else out["mask"]
            if "clip_scores" in out:
                return {"classifier": out["clip_scores"]}
            return {"classifier": pool(out["scores"], mask), "frame_scores": out["scores"],
                    "frame_weights": _counted(mask, out["scores"])}
        weights = self.weights(audio, lengths, out["mask"]) if (self.silence_gate or not mask_is_full) else None
        result = self.pool_frames(out["embeddings"], weights)
        if self.backbone_scores:
            mask = None if mask_is_full else out["mask"]
            result["audioset"] = out["clip_scores"] if "clip_scores" in out else pool(out["scores"], mask)
        return result

    def batch(self, audio, lengths, *, frame_scores: bool = False, backbone_scores: bool = False) -> dict:
        """Zero-padded ``audio [B, S]`` at :attr:`sample_rate` with valid ``lengths [B]`` →
        ``{"classifier": [B, C]}`` (+ ``"frame_scores": [B, F, C]``, ``"frame_weights": [B, F]`` and
        ``"mask": [B, F]``,
        ``"audioset": [B, K]`` on request). Row ``b`` equals the clip ``audio[b, :lengths[b]]`` alone."""
        out = self.backbone.graph_outputs(audio, lengths)
        result = self._score(out, audio, lengths, mask_is_full=False)
        keep = {"classifier": result["classifier"]}
        if frame_scores:
            if "frame_scores" not in result:
                raise TfaudioError(f"frame_scores: {self.description} scores whole clips, it has no frame scores.")
            keep["frame_scores"] = result["frame_scores"]
            keep["frame_weights"] = result["frame_weights"]
            keep["mask"] = out["mask"]
        if backbone_scores:
            keep["audioset"] = result["audioset"]
        return keep

    def window(self, waveform):
        """TFLite: one fixed window ``[1, S]`` (no padding) → scores ``[1, C]``.

        Runs the backbone's ``graph_window`` when it has one (a simpler graph for a single unpadded
        clip: YAMNet's frontend and body without the batch bookkeeping), else :meth:`batch`.
        """

        graph_window = getattr(self.backbone, "graph_window", None)
        if graph_window is None:
            return self.batch(waveform, tf.shape(waveform)[1:2])["classifier"]
        return self._score(graph_window(waveform), waveform, tf.shape(waveform)[1:2], mask_is_full=True)["classifier"]

    def _graph(self, name: str):
        if name != "embeddings":
            return super()._graph(name)

        def run(embeddings, mask):  # cached frame embeddings [B, F, D] + the frames that count → clip scores
            return {"classifier": self.pool_frames(embeddings, mask)["classifier"]}

        return run, [tf.TensorSpec([None, None, self.contract.embedding_dim], tf.float32),
                     tf.TensorSpec([None, None], tf.bool)]

    def scores_from_embeddings(self, embeddings: Sequence[np.ndarray], gates: Sequence[np.ndarray] | None = None, *,
                               batch_size: int = 256) -> np.ndarray:
        """Clip scores ``[n, C]`` of cached frame embeddings (one ``[F_i, D]`` array per clip): the
        head and pooling of :meth:`batch`, without the backbone. ``gates``: per clip, bool ``[F_i]``,
        the frames that count (the silence gate on the cached frame energies; default all)."""
        if self.head is None:
            raise TfaudioError("a tagger scores waveforms with its backbone, not embeddings.")
        out = []
        for start in range(0, len(embeddings), batch_size):
            chunk = embeddings[start : start + batch_size]
            counts = np.array([len(e) for e in chunk])
            emb = np.zeros([len(chunk), max(int(counts.max(initial=0)), 1), self.contract.embedding_dim], np.float32)
            mask = np.zeros(emb.shape[:2], bool)
            for i, e in enumerate(chunk):
                emb[i, : len(e)] = e
                mask[i, : len(e)] = True if gates is None else gates[start + i]
            out.append(np.asarray(self._fn("embeddings")(emb, mask)["classifier"]))
        return np.concatenate(out) if out else np.zeros([0, len(self.labels)], np.float32)


class FineTunedScorer(_WaveformScorer):
    """A fine-tuned Wav2Vec2 / HuBERT Keras model ``{"waveform", "length" | "attention_mask"} → logits``
    + softmax, scored like :class:`ClipScorer` (no frame scores)."""

    kind = "finetune"
    frame_scores = False
    backbone_scores = False
    frontend_scope = None

    def __init__(self, model: Any, labels: Sequence[str] | None):
        self.model = model
        self.backbone = model.backbone
        self.mask_input = "attention_mask" if "attention_mask" in model.input_names else "length"
        self.labels = _check_labels(labels, int(model.output_shape[-1]),
                                    "pass labels= (the class names in logit order), or save the model with "
                                    "save_finetune_model(model, folder, labels).")
        self.contract = self.backbone.contract
        self.sample_rate = int(self.contract.sample_rate)
        self.description = f"fine-tuned {self.backbone.name}"
        self._traced: dict[str, Any] = {}

    @property
    def variables(self) -> list:
        return list(self.model.variables)

    def batch(self, audio, lengths, *, frame_scores: bool = False, backbone_scores: bool = False) -> dict:
        self.check(frame_scores=frame_scores, backbone_scores=backbone_scores)
        second = lengths if self.mask_input == "length" else tf.sequence_mask(lengths, tf.shape(audio)[1], tf.float32)
        logits = self.model({"waveform": audio, self.mask_input: second}, training=False)  # [B, C]
        return {"classifier": tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)}


def _check_labels(labels: Sequence[str] | None, units: int, fix: str) -> tuple[str, ...]:
    labels = tuple(labels or ())
    if len(labels) != units:
        shown = f"{list(labels)[:5]}{'...' if len(labels) > 5 else ''}"
        raise TfaudioError(f"the model has {len(labels)} labels {shown} but outputs {units} scores. Fix: {fix}")
    return labels


def clip_scorer(model: Any, labels: Sequence[str] | None = None) -> ClipScorer | FineTunedScorer:
    """The scorer of a model: a trained :class:`~tfaudio.tasks.audio_classifier.AudioClassifier`, a
    backbone with classes of its own (a tagger), or a fine-tuned Wav2Vec2 / HuBERT model.

    Raises:
        TfaudioError: the model is untrained, its labels do not match its outputs, or it is not one of
            these.
    """
    if isinstance(model, (ClipScorer, FineTunedScorer)):
        return model
    if hasattr(model, "head_model_"):  # an AudioClassifier
        if not getattr(model, "is_trained", False) or model.head_model_ is None:
            raise TfaudioError("this AudioClassifier is untrained. Fix: call fit() first, or AudioClassifier.load() "
                               "a model saved by `tfaudio train`.")
        return model.scorer if labels is None else ClipScorer(model.backbone, model.head_model_, labels,
                                                              head_config=model.head)
    if is_backbone(model):
        return ClipScorer(model, None, labels)
    if hasattr(model, "backbone") and hasattr(model, "input_names") and "waveform" in model.input_names:
        return FineTunedScorer(model, labels if labels is not None else getattr(model, "labels", None))
    raise TfaudioError(f"cannot score with a {type(model).__name__}: expected a trained AudioClassifier, a backbone "
                       "with classes of its own, or a fine-tuned model from tfaudio.tasks.wav2vec2_finetune.")
