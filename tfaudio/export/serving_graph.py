"""ServingGraph: what an exported model computes, as pure-TF functions over a trained model's variables.

The SavedModel (:mod:`tfaudio.export.saved_model`) and TFLite (:mod:`tfaudio.export.tflite`) exports
both trace these functions, so the two cannot drift apart. Three kinds of model export:

- an :class:`~tfaudio.tasks.audio_classifier.AudioClassifier` on **YAMNet** (a backbone with an
  in-graph log-mel ``frontend`` / ``batch_frontend`` and a Keras ``body``; it also offers the
  backbone's own AudioSet scores)::

      audio [S] → frontend → patches [P, 96, 64] → body → embeddings [P, 1024] → head → [P, C] → mean → [C]

- an AudioClassifier on **any other backbone that declares its graph**: ``graph_frames(waveforms
  [B, S], lengths [B]) → (embeddings [B, F, D], bool mask [B, F])`` in plain TF ops (traceable by
  ``tf.function``: no NumPy, no eager checks) and ``variables`` (the ``tf.Variable`` s it reads), at
  the rate of its ``contract`` (Wav2Vec2 / HuBERT: one frame per 20 ms)::

      audio [B, S], lengths [B] → graph_frames → [B, F, D], mask [B, F] → head → [B, F, C]
        → mean over each clip's valid frames → [B, C]

- a fine-tuned **Wav2Vec2 / HuBERT Keras model** (:func:`tfaudio.tasks.wav2vec2_finetune.build_finetune_model`:
  ``{"waveform", "length" | "attention_mask"} → logits``)::

      audio [B, S], lengths [B] → model → logits [B, C] → softmax → [B, C]

Every kind answers ``clip(audio [S])`` (what ``serving_default`` returns), ``batch(audio [B, S],
lengths [B])`` (what the ``batch`` signature returns; row ``b`` equals ``clip`` of that clip alone)
and ``window(waveform [1, S]) → [1, C]`` (the TFLite graph).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tfaudio.errors import TfaudioError

__all__ = ["ServingGraph", "serving_graph", "FRONTEND_SCOPE"]

#: Name scope of YAMNet's log-mel frontend ops in exported graphs (kept float in int8 TFLite models).
FRONTEND_SCOPE = "frontend"


class ServingGraph:
    """Base class: the labels, the input contract and the variables an export tracks.

    Build one with :func:`serving_graph`. Subclasses implement :meth:`clip` and :meth:`batch` (pure TF,
    called inside ``tf.function``); :meth:`window` defaults to :meth:`batch` on one full-length clip.

    Attributes:
        labels: class names in score order.
        sample_rate: the rate the graph's input is at (Hz).
        min_samples: the shortest input that gives one frame.
        hop_samples: step between frames (samples).
        variables: every ``tf.Variable`` the functions read (the export tracks them).
        description: what the model is, for model metadata ("YAMNet backbone + tfaudio head").
        frame_scores: :meth:`clip` can return ``frame_scores`` ``[F, C]``.
        backbone_scores: :meth:`clip` and :meth:`batch` can return the backbone's ``audioset`` scores.
    """

    frame_scores = False
    backbone_scores = False

    def __init__(self, labels: Sequence[str], contract: Any, variables: list, description: str):
        self.labels = tuple(labels)
        self.sample_rate = int(contract.sample_rate)
        self.min_samples = int(contract.min_samples)
        self.hop_samples = int(contract.hop_samples)
        self.variables = list(variables)
        self.description = description

    def clip(self, audio, *, frame_scores: bool = False, backbone_scores: bool = False) -> dict:
        """One clip ``audio [S]`` at :attr:`sample_rate` → ``{"classifier": [C], "frame_scores": [F, C]?,
        "audioset": [521]?}``."""
        raise NotImplementedError

    def batch(self, audio, lengths, *, backbone_scores: bool = False) -> dict:
        """Zero-padded ``audio [B, S]`` with valid ``lengths [B]`` → ``{"classifier": [B, C], "audioset"?}``."""
        raise NotImplementedError

    def window(self, waveform):
        """TFLite: ``waveform [1, S]`` → scores ``[1, C]``."""
        import tensorflow as tf

        return self.batch(waveform, tf.shape(waveform)[1:2])["classifier"]

    def check(self, *, frame_scores: bool = False, backbone_scores: bool = False) -> None:
        """Raises TfaudioError when an optional output is asked of a model that has none."""
        if frame_scores and not self.frame_scores:
            raise TfaudioError(f"frame_scores: {self.description} scores whole clips, it has no frame scores. "
                               "Fix: export without frame_scores (--frame-scores).")
        if backbone_scores and not self.backbone_scores:
            raise TfaudioError(f"backbone_scores: {self.description} has no class scores of its own (only YAMNet "
                               "has, AudioSet's). Fix: export without backbone_scores (--audioset).")


def _masked_clip_mean(frames, mask):
    """Mean of ``frames [B, F, C]`` over each clip's valid frames ``mask [B, F]`` → ``[B, C]``."""
    import tensorflow as tf

    m = tf.expand_dims(tf.cast(mask, frames.dtype), -1)  # [B, F, 1]
    return tf.reduce_sum(frames * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)


class _YAMNetGraph(ServingGraph):
    """YAMNet: log-mel frontend, MobileNet body (embeddings and AudioSet scores), head, mean of patches."""

    frame_scores = True
    backbone_scores = True

    def __init__(self, classifier: Any, labels: Sequence[str]):
        backbone, self.head = classifier.backbone, classifier.head_model_
        self.backbone = backbone
        super().__init__(labels, backbone.contract, list(backbone.body.variables) + list(self.head.variables),
                         "YAMNet backbone + tfaudio head")

    def clip(self, audio, *, frame_scores=False, backbone_scores=False):
        import tensorflow as tf

        patches, _ = self.backbone.frontend(audio)  # [P, 96, 64]
        embeddings, audioset = self.backbone.body(patches, training=False)  # [P, 1024], [P, 521]
        frames = self.head(embeddings, training=False)  # [P, C]
        out = {"classifier": tf.reduce_mean(frames, axis=0)}  # [C]
        if frame_scores:
            out["frame_scores"] = frames
        if backbone_scores:
            out["audioset"] = tf.reduce_mean(audioset, axis=0)  # [521]
        return out

    def batch(self, audio, lengths, *, backbone_scores=False):
        import tensorflow as tf

        patches, mask = self.backbone.batch_frontend(audio, lengths)  # [N, 96, 64], [B, P]
        embeddings, audioset = self.backbone.body(patches, training=False)  # [N, 1024], [N, 521]
        frames = self.head(embeddings, training=False)  # [N, C]
        batch = tf.shape(mask)[0]
        clip_of_frame = tf.repeat(tf.range(batch), tf.reduce_sum(tf.cast(mask, tf.int32), axis=1))  # [N]
        out = {"classifier": tf.math.unsorted_segment_mean(frames, clip_of_frame, batch)}  # [B, C]
        if backbone_scores:
            out["audioset"] = tf.math.unsorted_segment_mean(audioset, clip_of_frame, batch)  # [B, 521]
        return out

    def window(self, waveform):
        import tensorflow as tf

        with tf.name_scope(FRONTEND_SCOPE):
            patches, _ = self.backbone.frontend(waveform[0])  # [P, 96, 64]
        embeddings, _ = self.backbone.body(patches, training=False)  # [P, 1024] (AudioSet branch pruned)
        frames = self.head(embeddings, training=False)  # [P, C]
        return tf.reduce_mean(frames, axis=0, keepdims=True)  # [1, C]


class _FrameGraph(ServingGraph):
    """A backbone with ``graph_frames`` (e.g. Wav2Vec2 / HuBERT) + the head on every frame + masked mean."""

    frame_scores = True

    def __init__(self, classifier: Any, labels: Sequence[str]):
        backbone, self.head = classifier.backbone, classifier.head_model_
        self.backbone = backbone
        name = getattr(backbone, "model_type", type(backbone).__name__.replace("Backbone", ""))
        super().__init__(labels, backbone.contract, list(backbone.variables) + list(self.head.variables),
                         f"{name} backbone + tfaudio head")

    def _frames(self, audio, lengths):
        import tensorflow as tf

        emb, mask = self.backbone.graph_frames(audio, lengths)  # [B, F, D], [B, F]
        shape = tf.shape(emb)
        flat = tf.reshape(emb, [shape[0] * shape[1], self.backbone.contract.embedding_dim])  # [B*F, D]
        frames = self.head(flat, training=False)  # [B*F, C]
        frames = tf.reshape(frames, [shape[0], shape[1], len(self.labels)])  # [B, F, C]
        return frames, mask

    def clip(self, audio, *, frame_scores=False, backbone_scores=False):
        import tensorflow as tf

        frames, mask = self._frames(tf.expand_dims(audio, 0), tf.shape(audio)[:1])  # one clip: every frame valid
        out = {"classifier": _masked_clip_mean(frames, mask)[0]}  # [C]
        if frame_scores:
            out["frame_scores"] = frames[0]  # [F, C]
        return out

    def batch(self, audio, lengths, *, backbone_scores=False):
        frames, mask = self._frames(audio, lengths)
        return {"classifier": _masked_clip_mean(frames, mask)}  # [B, C]


class _FineTuneGraph(ServingGraph):
    """A fine-tuned Keras model ``{"waveform", "length" | "attention_mask"} → logits`` + softmax."""

    def __init__(self, model: Any, labels: Sequence[str]):
        self.model = model
        backbone = model.backbone
        self.mask_input = "attention_mask" if "attention_mask" in model.input_names else "length"
        super().__init__(labels, backbone.contract, list(model.variables),
                         f"fine-tuned {backbone.model_type}")

    def _scores(self, audio, lengths):
        import tensorflow as tf

        if self.mask_input == "length":
            second = lengths
        else:
            second = tf.sequence_mask(lengths, tf.shape(audio)[1], tf.float32)  # [B, S]
        logits = self.model({"waveform": audio, self.mask_input: second}, training=False)  # [B, C]
        return tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)

    def clip(self, audio, *, frame_scores=False, backbone_scores=False):
        import tensorflow as tf

        return {"classifier": self._scores(tf.expand_dims(audio, 0), tf.shape(audio)[:1])[0]}

    def batch(self, audio, lengths, *, backbone_scores=False):
        return {"classifier": self._scores(audio, lengths)}


def _check_labels(labels: Sequence[str], units: int, fix: str) -> tuple[str, ...]:
    labels = tuple(labels or ())
    if len(labels) != units:
        shown = f"{list(labels)[:5]}{'...' if len(labels) > 5 else ''}"
        raise TfaudioError(f"the model has {len(labels)} labels {shown} but its head outputs {units} scores. "
                           f"Fix: {fix}")
    return labels


def serving_graph(model: Any, labels: Sequence[str] | None = None) -> ServingGraph:
    """The :class:`ServingGraph` of a trained model.

    Args:
        model: a trained :class:`~tfaudio.tasks.audio_classifier.AudioClassifier` (YAMNet, or a backbone
            with ``graph_frames`` and ``variables`` such as Wav2Vec2 / HuBERT), or a fine-tuned model
            from :func:`~tfaudio.tasks.wav2vec2_finetune.build_finetune_model` /
            :func:`~tfaudio.tasks.wav2vec2_finetune.load_finetune_model`.
        labels: class names in score order (default: the model's ``labels``).

    Raises:
        TfaudioError: the model is untrained, its labels do not match its outputs, or its backbone
            cannot be traced into a graph.
    """
    if hasattr(model, "head_model_"):  # an AudioClassifier
        if not getattr(model, "is_trained", False) or model.head_model_ is None:
            raise TfaudioError("cannot export an untrained AudioClassifier. Fix: call fit() first, or "
                               "AudioClassifier.load() a model saved by `tfaudio train`.")
        labels = _check_labels(labels if labels is not None else model.labels,
                               int(model.head_model_.output_shape[-1]),
                               "set classifier.labels to the class names the head was trained on, in score "
                               "order (see the model's labels.txt).")
        backbone = model.backbone
        if all(hasattr(backbone, a) for a in ("frontend", "batch_frontend", "body")):
            return _YAMNetGraph(model, labels)
        if callable(getattr(backbone, "graph_frames", None)) and hasattr(backbone, "variables"):
            return _FrameGraph(model, labels)
        raise TfaudioError(
            f"cannot export a classifier on a {type(backbone).__name__}: export traces the backbone into a "
            "TensorFlow graph, which needs either YAMNet's in-graph frontend and Keras body, or a "
            "graph_frames(waveforms, lengths) method in plain TF ops plus a `variables` list (Wav2Vec2Backbone, "
            "HuBERT). Fix: train on 'yamnet' or 'wav2vec2:<checkpoint>', or give the backbone those two members.")
    if hasattr(model, "backbone") and hasattr(model, "input_names") and "waveform" in model.input_names:
        labels = _check_labels(labels if labels is not None else getattr(model, "labels", None),
                               int(model.output_shape[-1]),
                               "pass labels= (the class names in logit order), or save the model with "
                               "save_finetune_model(model, folder, labels).")
        return _FineTuneGraph(model, labels)
    raise TfaudioError(f"cannot export a {type(model).__name__}: expected a trained AudioClassifier or a "
                       "fine-tuned model from tfaudio.tasks.wav2vec2_finetune.build_finetune_model.")
