"""Export a trained classifier as one SavedModel, raw waveform in, class scores out (TF Serving).

Graph of the ``serving_default`` signature (all pure TF, traced once; see
:mod:`tfaudio.export.serving_graph` for each kind of model)::

    audio [S] at input_rate
      → resample to the model's rate (only when input_rate differs; tfaudio.signal.resample)     [S']
      YAMNet classifier:
      → log-mel patches [P, 96, 64] → body: embeddings [P, 1024], AudioSet [P, 521] → head [P, C]
      Wav2Vec2 / HuBERT classifier (any backbone with graph_frames):
      → backbone: embeddings [F, D] (one per 20 ms) → head                                 [F, C]
      → mean over frames                                                         classifier [C]
      fine-tuned Wav2Vec2 / HuBERT model:
      → model: logits [C] → softmax                                              classifier [C]
      → argmax → label                                                           label (string)

The ``batch`` signature runs the same steps on a zero-padded batch (``audio [B, S]``, ``lengths [B]``)
with each clip's valid length, so every row equals what ``serving_default`` gives for that clip alone.

Loading needs TensorFlow only (no tfaudio, no Keras, no transformers)::

    model = tf.saved_model.load("export/saved_model")
    out = model.signatures["serving_default"](audio=tf.constant(waveform_16k))
    out["classifier"], out["label"]
"""
from __future__ import annotations

import math
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

from tfaudio.errors import TfaudioError
from tfaudio.io.atomic import sweep_stale, temp_path

__all__ = ["export_saved_model", "check_exportable", "atomic_directory", "SIGNATURES"]

#: Signature names of the exported SavedModel.
SIGNATURES = ("serving_default", "batch")
LABELS_FILE = "labels.txt"


def check_exportable(model: Any, labels: Sequence[str] | None = None) -> tuple[str, ...]:
    """Checks that ``model`` can be exported and returns its labels.

    Args:
        model: a trained AudioClassifier (YAMNet, Wav2Vec2 / HuBERT backbone) or a fine-tuned
            Wav2Vec2 / HuBERT model (see :func:`tfaudio.export.serving_graph.serving_graph`).
        labels: class names in score order (default: the model's).

    Raises:
        TfaudioError: it is untrained, its backbone cannot be traced into a graph, or its label list
            does not match its output units.
    """
    from tfaudio.export.serving_graph import serving_graph

    return serving_graph(model, labels).labels


def atomic_directory(path: str | os.PathLike, write: Callable[[pathlib.Path], Any], *,
                     overwrite: bool = False) -> pathlib.Path:
    """Runs ``write(tmp)`` on a fresh temporary folder next to ``path``, then renames it to ``path``.

    An interrupted export leaves no half-written ``path`` (and its temporary folder is removed, by this
    call or, after a kill, by the next export to ``path``).

    Raises:
        TfaudioError: ``path`` exists and ``overwrite`` is False.
    """
    path = pathlib.Path(path)
    sweep_stale(path)  # what an export killed mid-write left (its previous version is put back)
    if path.exists() and not overwrite:
        raise TfaudioError(f"{path} already exists. Fix: pass overwrite=True (--overwrite) or choose another "
                           "destination.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = temp_path(path), temp_path(path, "old")
    try:
        tmp.mkdir()
        write(tmp)
        if path.exists():
            os.replace(path, old)  # a rename cannot replace a non-empty folder: move it aside first
        try:
            os.replace(tmp, path)
        except BaseException:
            if old.exists() and not path.exists():
                os.replace(old, path)  # put the previous export back
            raise
    finally:
        for leftover in (tmp, old):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            elif leftover.exists():
                leftover.unlink()
    return path


def _output_length(n, orig_rate: int, new_rate: int):
    """``ceil(n * new_rate / orig_rate)`` in integers (the length :func:`resample` returns)."""
    g = math.gcd(orig_rate, new_rate)
    up, down = new_rate // g, orig_rate // g
    return (n // down) * up + ((n % down) * up + down - 1) // down


class _ServingModule:
    """Builds the two signatures as closures over a :class:`ServingGraph`.

    The saved object is a plain ``tf.Module`` that tracks only the variables and the label asset: the
    Keras models are not attributes of it, so ``tf.saved_model.save`` does not trace every layer, and
    loading needs neither Keras nor tfaudio.
    """

    def __init__(self, graph: Any, input_rate: int, frame_scores: bool, backbone_scores: bool,
                 labels_path: pathlib.Path):
        import tensorflow as tf

        from tfaudio.signal.resample import resample

        rate = graph.sample_rate
        f32 = tf.float32
        self.module = tf.Module(name="tfaudio_classifier")
        self.module.variables_ = graph.variables
        self.module.labels_file = tf.saved_model.Asset(str(labels_path))
        label_list = list(graph.labels)

        def to_model_rate(audio):
            return audio if input_rate == rate else resample(audio, input_rate, rate)

        def top_label(scores):  # [..., C] → [...] strings
            return tf.gather(tf.constant(label_list), tf.argmax(scores, axis=-1, output_type=tf.int32))

        def serve(audio):
            out = graph.clip(to_model_rate(audio), frame_scores=frame_scores, backbone_scores=backbone_scores)
            out["label"] = top_label(out["classifier"])
            return out

        def serve_batch(audio, lengths):
            width = tf.shape(audio)[1]
            tf.debugging.assert_less_equal(lengths, width, message="batch: every lengths[b] must be <= the "
                                           "padded width of audio [B, S]")
            # zero the padding: the resampler then sees what it sees for the clip alone
            audio = tf.where(tf.sequence_mask(lengths, width), audio, 0.0)
            x = to_model_rate(audio)  # [B, S']
            n = lengths if input_rate == rate else _output_length(lengths, input_rate, rate)
            out = graph.batch(x, n, backbone_scores=backbone_scores)
            out["label"] = top_label(out["classifier"])
            return out

        # autograph off: nothing branches on tensors, and converting Keras internals is slow
        self.module.serve = tf.function(
            serve, input_signature=[tf.TensorSpec([None], f32, name="audio")], autograph=False)
        self.module.serve_batch = tf.function(
            serve_batch,
            input_signature=[tf.TensorSpec([None, None], f32, name="audio"),
                             tf.TensorSpec([None], tf.int32, name="lengths")],
            autograph=False,
        )

    def signatures(self) -> dict:
        return {
            "serving_default": self.module.serve.get_concrete_function(),
            "batch": self.module.serve_batch.get_concrete_function(),
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
    """Writes ``classifier`` (backbone + head + mean over frames, or a fine-tuned model) as one SavedModel.

    Signatures:
        ``serving_default``: ``audio`` float32 ``[samples]`` (mono, any length, at ``input_rate``) →
        ``classifier`` float32 ``[C]`` (clip scores: what :meth:`AudioClassifier.predict_scores`
        returns, the mean of the frame scores; a fine-tuned model's softmax), ``label`` string ``[]``
        (the top class), and optionally ``frame_scores`` ``[frames, C]`` (one row per backbone hop:
        0.48 s for YAMNet, 20 ms for Wav2Vec2) and ``audioset`` ``[521]`` (YAMNet's own clip scores).

        ``batch``: ``audio`` float32 ``[B, S]`` (padded, B >= 1) and ``lengths`` int32 ``[B]`` (valid
        samples per row; samples past them are ignored) → ``classifier`` ``[B, C]``, ``label`` ``[B]``
        and optionally ``audioset`` ``[B, 521]``. Row ``b`` equals ``serving_default`` on
        ``audio[b, :lengths[b]]``.

    The labels travel as the asset ``assets/labels.txt`` (one per line, in score order; after
    ``tf.saved_model.load`` its path is ``model.labels_file.asset_path``) and as a constant inside
    the graph for ``label``. The folder is written next to ``path`` under a
    temporary name and renamed into place.

    Args:
        classifier: a trained :class:`tfaudio.tasks.audio_classifier.AudioClassifier` on YAMNet or
            Wav2Vec2 / HuBERT (any backbone with ``graph_frames``, see
            :mod:`tfaudio.export.serving_graph`), or a fine-tuned model from
            :func:`tfaudio.tasks.wav2vec2_finetune.build_finetune_model` / ``load_finetune_model``.
        path: the SavedModel folder to write.
        input_rate: sample rate of ``audio`` in Hz; when it differs from the backbone's (16 kHz for
            YAMNet and Wav2Vec2) the graph resamples with :func:`tfaudio.signal.resample`. Default:
            the backbone's.
        frame_scores: add the ``frame_scores`` output to ``serving_default`` (classifiers only).
        backbone_scores: add the ``audioset`` output (YAMNet's AudioSet scores, clip mean).
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
        >>> # saved_model_cli run --dir export/saved_model --signature_def serving_default \\
        >>> #     --input_exprs 'audio=np.zeros(44100, np.float32)'
    """
    import tensorflow as tf

    from tfaudio.export.serving_graph import serving_graph

    graph = serving_graph(classifier, labels)
    graph.check(frame_scores=frame_scores, backbone_scores=backbone_scores)
    rate = graph.sample_rate
    input_rate = rate if input_rate is None else int(input_rate)
    if input_rate <= 0:
        raise TfaudioError(f"input_rate must be a positive rate in Hz, got {input_rate}.")
    if input_rate != rate:
        from tfaudio.signal.resample import Resample

        try:
            Resample(input_rate, rate)  # an impossible rate pair fails here, not in the graph
        except ValueError as err:
            raise TfaudioError(f"input_rate={input_rate}: {err}") from None

    with tempfile.TemporaryDirectory(prefix="tfaudio-labels-") as scratch:
        labels_path = pathlib.Path(scratch) / LABELS_FILE
        labels_path.write_text("\n".join(graph.labels) + "\n", encoding="utf8")
        serving = _ServingModule(graph, input_rate, frame_scores, backbone_scores, labels_path)

        def write(tmp: pathlib.Path) -> None:
            tf.saved_model.save(serving.module, str(tmp), signatures=serving.signatures())

        return atomic_directory(path, write, overwrite=overwrite)
