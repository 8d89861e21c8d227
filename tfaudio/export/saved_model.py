"""Export a model as one SavedModel, raw waveform in, class scores out (TF Serving).

Graph of the ``serving_default`` signature (all pure TF, traced once; the functions are
:class:`~tfaudio.tasks.clip_scorer.ClipScorer`'s, which every eager path runs too)::

    audio [S] at input_rate
      → checks: non-empty, finite (INVALID_ARGUMENT otherwise)
      → resample to the model's rate (only when input_rate differs; tfaudio.signal.resample)     [S']
      → backbone.graph_outputs: embeddings [F, D] (YAMNet: one per 0.48 s patch)
      → head → frame scores [F, C] → mean over frames                             classifier [C]
        (a tagger: the backbone's own scores; a fine-tuned Wav2Vec2 / HuBERT model: softmax of its logits)
      → argmax → label                                                           label (string)

The ``batch`` signature runs the same steps on a zero-padded batch (``audio [B, S]``, ``lengths [B]``)
with each clip's valid length, so every row equals what ``serving_default`` gives for that clip alone;
``lengths`` must have one entry per row, each in ``1..S``. The ``metadata`` signature (no inputs)
returns the input rate, the model's rate, the labels and the whole description as JSON; the same
JSON is the asset ``assets/tfaudio.json`` (:func:`read_export_metadata`).

Loading needs TensorFlow only (no tfaudio, no Keras, no transformers)::

    model = tf.saved_model.load("export/saved_model")
    out = model.signatures["serving_default"](audio=tf.constant(waveform))
    out["classifier"], out["label"]
"""
from __future__ import annotations

import json
import os
import pathlib
import tempfile
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

import tfaudio
from tfaudio.backbones.registry import backbone_spec
from tfaudio.errors import TfaudioError
from tfaudio.io.atomic import atomic_directory
from tfaudio.signal.resample import Resample, resample, resampled_length
from tfaudio.tasks.clip_scorer import clip_scorer

__all__ = ["export_saved_model", "check_exportable", "read_export_metadata", "decision_metadata", "decision_rule",
           "SIGNATURES", "METADATA_FILE"]

#: Signature names of the exported SavedModel.
SIGNATURES = ("serving_default", "batch", "metadata")
LABELS_FILE = "labels.txt"
#: The export's self-description (an asset of the SavedModel; also packed into TFLite files).
METADATA_FILE = "tfaudio.json"
#: Version of the metadata layout.
METADATA_FORMAT = 1


def check_exportable(model: Any, labels: Sequence[str] | None = None) -> tuple[str, ...]:
    """Checks that ``model`` can be exported and returns its labels.

    Args:
        model: a trained AudioClassifier (YAMNet, Wav2Vec2 / HuBERT backbone) or a fine-tuned
            Wav2Vec2 / HuBERT model (see :func:`tfaudio.tasks.clip_scorer.clip_scorer`).
        labels: class names in score order (default: the model's).

    Raises:
        TfaudioError: it is untrained, its backbone cannot be traced into a graph, or its label list
            does not match its output units.
    """

    return clip_scorer(model, labels).labels


def export_metadata(scorer: Any, input_rate: int, **extra: Any) -> dict[str, Any]:
    """The self-description every export carries: what its input is, what its outputs mean and how
    to rebuild the model (read by ``tfaudio predict``, ``pipeline``, Beam and ``info``)."""

    c = scorer.contract
    return {
        "format": METADATA_FORMAT,
        "tfaudio_version": tfaudio.__version__,
        "kind": scorer.kind,
        "description": scorer.description,
        "labels": list(scorer.labels),
        "input_rate": int(input_rate),
        "sample_rate": int(scorer.sample_rate),
        "backbone": backbone_spec(scorer.backbone),
        "min_samples": int(c.min_samples),
        "window_samples": int(c.window_samples),
        "frame_seconds": float(c.frame_seconds),
        "hop_seconds": float(c.hop_seconds),
        "pooling": getattr(scorer, "pooling", "model") if scorer.kind != "finetune" else "model",
        "silence_gate": bool(getattr(scorer, "silence_gate", False)),
        **extra,
    }


def decision_metadata(classifier: Any) -> dict[str, Any]:
    """How a client turns the scores into decisions, for the metadata: a multi-label classifier's
    ``multi_label`` and per-class ``thresholds`` (labels above them), or a single-label one's
    ``rejection_threshold`` ("none of these" when the top score is below it); ``{}`` otherwise."""
    if getattr(getattr(classifier, "head", None), "multi_label", False):
        thresholds = getattr(classifier, "thresholds_", None)
        return {"multi_label": True, "thresholds": list(thresholds) if thresholds is not None else None}
    if getattr(classifier, "rejection_threshold_", None) is not None:
        return {"rejection_threshold": float(classifier.rejection_threshold_)}
    return {}


def decision_rule(metadata: dict[str, Any]) -> dict[str, Any]:
    """The decision rule a model's metadata states (a saved classifier's or an export's ``tfaudio.json``,
    written by :func:`decision_metadata`): ``{"thresholds": per-class
    thresholds or None, "rejection_threshold": float or None}``, the keyword arguments of
    :func:`tfaudio.heads.decode.decide`. A multi-label model's thresholds win: its rejection
    threshold, if any, is ignored (as ``tfaudio predict`` always did)."""
    thresholds = metadata.get("thresholds")
    thresholds = tuple(float(t) for t in thresholds) if thresholds else None
    reject = metadata.get("rejection_threshold")
    return {"thresholds": thresholds,
            "rejection_threshold": float(reject) if reject is not None and thresholds is None else None}


def read_export_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The :data:`METADATA_FILE` of an export (its folder, or the ``saved_model`` folder), or None for a
    SavedModel written before exports described themselves."""

    path = pathlib.Path(path)
    for candidate in (path / "assets" / METADATA_FILE, path / "saved_model" / "assets" / METADATA_FILE):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text(encoding="utf8"))
            except ValueError as err:
                raise TfaudioError(f"{candidate}: unreadable export metadata ({err}). Fix: export the model again "
                                   "with `tfaudio export`.") from None
    return None


class _ServingModule:
    """Builds the signatures as closures over a :class:`~tfaudio.tasks.clip_scorer.ClipScorer`.

    The saved object is a plain ``tf.Module`` that tracks only the variables and the assets: the
    Keras models are not attributes of it, so ``tf.saved_model.save`` does not trace every layer, and
    loading needs neither Keras nor tfaudio.
    """

    def __init__(self, scorer: Any, input_rate: int, frame_scores: bool, backbone_scores: bool,
                 assets: dict[str, pathlib.Path], metadata: dict[str, Any]):
        rate = scorer.sample_rate
        f32 = tf.float32
        self.module = tf.Module(name="tfaudio_classifier")
        self.module.variables_ = scorer.variables
        self.module.labels_file = tf.saved_model.Asset(str(assets[LABELS_FILE]))
        self.module.metadata_file = tf.saved_model.Asset(str(assets[METADATA_FILE]))
        label_list = list(scorer.labels)
        metadata_json = json.dumps(metadata, sort_keys=True)

        def to_model_rate(audio):
            return audio if input_rate == rate else resample(audio, input_rate, rate)

        def top_label(scores):  # [..., C] → [...] strings
            return tf.gather(tf.constant(label_list), tf.argmax(scores, axis=-1, output_type=tf.int32))

        def checked(audio, lengths):
            """INVALID_ARGUMENT for requests that have no right answer (TF Serving returns the message)."""
            batch, width = tf.shape(audio)[0], tf.shape(audio)[1]
            checks = [
                tf.debugging.assert_equal(tf.shape(lengths)[0], batch, message="lengths must have one entry per "
                                          "row of audio [B, S]"),
                tf.debugging.assert_greater(batch, 0, message="audio has no clips"),
                tf.debugging.assert_positive(lengths, message="empty audio: every clip needs at least one sample "
                                             "(lengths >= 1)"),
                tf.debugging.assert_less_equal(lengths, width, message="lengths[b] must be <= the padded width S "
                                               "of audio [B, S]"),
            ]
            with tf.control_dependencies(checks):
                # zero the padding: the resampler then sees what it sees for the clip alone
                audio = tf.where(tf.sequence_mask(lengths, width), audio, 0.0)
            finite = tf.debugging.assert_all_finite(audio, message="audio has NaN or Inf samples")
            with tf.control_dependencies([finite]):
                return tf.identity(audio)

        def serve(audio):
            audio = checked(audio[None], tf.shape(audio)[:1])[0]
            out = scorer.clip(to_model_rate(audio), frame_scores=frame_scores, backbone_scores=backbone_scores)
            out["label"] = top_label(out["classifier"])
            return out

        def serve_batch(audio, lengths):
            x = to_model_rate(checked(audio, lengths))  # [B, S']
            n = lengths if input_rate == rate else resampled_length(lengths, input_rate, rate)
            out = scorer.batch(x, n, backbone_scores=backbone_scores)
            out["label"] = top_label(out["classifier"])
            return out

        def serve_metadata():
            return {"input_rate": tf.constant(input_rate, tf.int32), "sample_rate": tf.constant(rate, tf.int32),
                    "labels": tf.constant(label_list), "metadata": tf.constant(metadata_json)}

        # autograph off: nothing branches on tensors, and converting Keras internals is slow
        self.module.serve = tf.function(
            serve, input_signature=[tf.TensorSpec([None], f32, name="audio")], autograph=False)
        self.module.serve_batch = tf.function(
            serve_batch,
            input_signature=[tf.TensorSpec([None, None], f32, name="audio"),
                             tf.TensorSpec([None], tf.int32, name="lengths")],
            autograph=False,
        )
        self.module.serve_metadata = tf.function(serve_metadata, input_signature=[], autograph=False)

    def signatures(self) -> dict:
        return {
            "serving_default": self.module.serve.get_concrete_function(),
            "batch": self.module.serve_batch.get_concrete_function(),
            "metadata": self.module.serve_metadata.get_concrete_function(),
        }


def export_saved_model(
    classifier: Any,
    path: str | os.PathLike,
    *,
    input_rate: int | None = None,
    frame_scores: bool = False,
    backbone_scores: bool = False,
    labels: Sequence[str] | None = None,
    overwrite: bool = False,
) -> pathlib.Path:
    """Writes ``classifier`` (backbone + head + mean over frames, a tagger backbone, or a fine-tuned
    model) as one SavedModel that describes itself.

    Signatures:
        ``serving_default``: ``audio`` float32 ``[samples]`` (mono, any length, at ``input_rate``) →
        ``classifier`` float32 ``[C]`` (clip scores: what :meth:`AudioClassifier.predict_scores`
        returns, the head's pooling of its frames: the mean of the frame scores over the frames that
        are not silent, with the silence gate; a fine-tuned model's softmax), ``label`` string ``[]``
        (the top class), and optionally ``frame_scores`` ``[frames, C]`` (one row per backbone hop:
        0.48 s for YAMNet, 20 ms for Wav2Vec2; row ``i`` covers ``[i * hop_seconds, i * hop_seconds +
        frame_seconds]`` seconds of the input, both in ``tfaudio.json``, so a client can turn them into
        events as ``tfaudio detect`` does) with ``frame_weights`` ``[frames]`` (1.0 for the frames
        the clip score counts, 0.0 for those the silence gate left out) and ``audioset`` ``[521]``
        (YAMNet's own clip scores).

        ``batch``: ``audio`` float32 ``[B, S]`` (padded, B >= 1) and ``lengths`` int32 ``[B]`` (valid
        samples per row, ``1..S``; samples past them are ignored) → ``classifier`` ``[B, C]``,
        ``label`` ``[B]`` and optionally ``audioset`` ``[B, K]``. Row ``b`` equals
        ``serving_default`` on ``audio[b, :lengths[b]]``.

        ``metadata`` (no inputs): ``input_rate``, ``sample_rate`` (int32), ``labels`` (string ``[C]``)
        and ``metadata`` (the JSON of :data:`METADATA_FILE`).

    Malformed requests (empty audio, NaN/Inf samples, ``lengths`` not matching the batch or out of
    range) fail with INVALID_ARGUMENT and a message saying what is wrong, never with an answer.

    The labels travel as the asset ``assets/labels.txt`` (one per line, in score order; after
    ``tf.saved_model.load`` its path is ``model.labels_file.asset_path``), as a constant inside the
    graph for ``label``, and in ``assets/tfaudio.json`` with the input rate, the backbone spec and the
    window (:func:`read_export_metadata`). The folder is written next to ``path`` under a temporary
    name and renamed into place.

    Args:
        classifier: a trained :class:`tfaudio.tasks.audio_classifier.AudioClassifier` (any backbone),
            a backbone with classes of its own (its tags), or a fine-tuned model from
            :func:`tfaudio.tasks.wav2vec2_finetune.build_finetune_model` / ``load_finetune_model``
            (see :func:`tfaudio.tasks.clip_scorer.clip_scorer`).
        path: the SavedModel folder to write.
        input_rate: sample rate of ``audio`` in Hz; when it differs from the backbone's (e.g. 16 kHz for
            YAMNet and Wav2Vec2, 32 kHz for EfficientAT) the graph resamples with :func:`tfaudio.signal.resample`. Default:
            the backbone's.
        frame_scores: add the ``frame_scores`` and ``frame_weights`` outputs to ``serving_default``
            (classifiers only).
        backbone_scores: add the ``audioset`` output (the backbone's own AudioSet clip scores).
        labels: class names in score order (default: the model's; a fine-tuned model built with
            ``build_finetune_model`` has none, so pass them).
        overwrite: replace an existing ``path``.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        TfaudioError: ``path`` exists without ``overwrite``; the model is untrained, has a label
            list that does not match its outputs, or a backbone that cannot be exported; an output
            the model does not have is asked for.

    Example:
        >>> clf = AudioClassifier.load("saved_models/dogs_vs_cats")
        >>> export_saved_model(clf, "export/saved_model", input_rate=44100)

        Then, from a shell (``--input_exprs`` takes a Python literal; ``--inputs`` a ``.npy`` file,
        e.g. ``np.save("clip.npy", waveform.astype(np.float32))``)::

            saved_model_cli run --dir export/saved_model --tag_set serve --signature_def serving_default \\
                --input_exprs 'audio=[0.0, 0.25, -0.25, 0.5]'
            saved_model_cli run --dir export/saved_model --tag_set serve --signature_def serving_default \\
                --inputs audio=clip.npy
    """

    scorer = clip_scorer(classifier, labels)
    scorer.check(frame_scores=frame_scores, backbone_scores=backbone_scores)
    rate = scorer.sample_rate
    input_rate = rate if input_rate is None else int(input_rate)
    if input_rate <= 0:
        raise TfaudioError(f"input_rate must be a positive rate in Hz, got {input_rate}.")
    if input_rate != rate:
        try:
            Resample(input_rate, rate)  # an impossible rate pair fails here, not in the graph
        except ValueError as err:
            raise TfaudioError(f"input_rate={input_rate}: {err}") from None
    outputs = ["classifier", "label"] + (["frame_scores", "frame_weights"] if frame_scores else []) + (
        ["audioset"] if backbone_scores else [])
    metadata = export_metadata(scorer, input_rate, outputs=outputs, signatures=list(SIGNATURES),
                               **decision_metadata(classifier))

    with tempfile.TemporaryDirectory(prefix="tfaudio-assets-") as scratch:
        assets = {LABELS_FILE: pathlib.Path(scratch) / LABELS_FILE, METADATA_FILE: pathlib.Path(scratch) / METADATA_FILE}
        assets[LABELS_FILE].write_text("\n".join(scorer.labels) + "\n", encoding="utf8")
        assets[METADATA_FILE].write_text(json.dumps(metadata, indent=1, ensure_ascii=False), encoding="utf8")
        serving = _ServingModule(scorer, input_rate, frame_scores, backbone_scores, assets, metadata)

        def write(tmp: pathlib.Path) -> None:
            tf.saved_model.save(serving.module, str(tmp), signatures=serving.signatures())

        return atomic_directory(path, write, overwrite=overwrite)
