"""``tfaudio.pipeline``: one call from audio to ``[{"score", "label"}]``, like transformers' pipelines.

    >>> from tfaudio import pipeline
    >>> classify = pipeline("audio-classification", model="saved_models/dogcat")
    >>> classify("bark.wav")                                     # a file (any format and rate)
    [{'score': 0.97, 'label': 'dog'}, {'score': 0.03, 'label': 'cat'}]
    >>> classify(samples, sampling_rate=44100, top_k=1)         # a numpy array and its rate
    >>> classify(dataset[0]["audio"])                            # {"array", "sampling_rate"} (HF datasets)
    >>> classify(["a.wav", "b.flac"])                            # a batch → one list per input
    >>> tag = pipeline("audio-tagging")                          # YAMNet's 521 AudioSet classes
    >>> tag("street.wav", top_k=3)

Each input goes ``preprocess`` (decode or check the array, mix to mono, scale integer PCM to [-1, 1],
resample to the model's rate) → ``_forward`` (a batch of clips through the model; clip scores are the
mean of the frame scores) → ``postprocess`` (the ``top_k`` labels, best first). A model with a decision
rule (a multi-label model's per-class thresholds, a single-label model's "none of these" threshold; see
:func:`tfaudio.heads.decode.decide`) marks each label ``"accepted"`` as ``tfaudio predict`` decides:

    >>> tagger = pipeline("audio-classification", model="saved_models/multilabel", top_k=None)
    >>> [d["label"] for d in tagger("street.wav") if d["accepted"]]      # the labels above their thresholds
    ['car', 'rain']                                                      # none accepted: "none of these"

Inputs are checked
before the model runs, and a bad one raises :class:`~tfaudio.errors.AudioError` naming it and the fix.

Models: for ``"audio-classification"``, a folder saved by ``tfaudio train`` / ``AudioClassifier.save``,
an export folder (``tfaudio export``; its SavedModel), a transformers ``save_pretrained`` folder of an
audio classifier (e.g. a fine-tuned ``TFWav2Vec2ForSequenceClassification``), or an
``AudioClassifier`` object (models are recognised by :func:`tfaudio.inference.loader.load_model`). For
``"audio-tagging"``: ``None`` / ``"yamnet"`` (the weights are found like ``tfaudio tag`` finds them:
$TFAUDIO_YAMNET, ``../shared``, the cache, TF Hub), ``"efficientat:mn04_as"``, a ``yamnet.h5`` or
EfficientAT ``.pt``, a YAMNet SavedModel folder or TF Hub handle, or a backbone object.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from tfaudio.data.audio_converter import describe, is_pair
from tfaudio.errors import TfaudioError
from tfaudio.heads import decode
from tfaudio.inference.loader import load_model

__all__ = ["pipeline", "AudioClassificationPipeline", "TASKS"]

#: The tasks :func:`pipeline` knows, with what each answers.
TASKS = {
    "audio-classification": "the classes of a trained tfaudio classifier (or an exported / transformers one)",
    "audio-tagging": "a backbone's own AudioSet classes (YAMNet's 521, EfficientAT's 527; no training needed)",
}


def _is_single(inputs: Any) -> bool:
    return not isinstance(inputs, list) and not (isinstance(inputs, tuple) and not is_pair(inputs))


# ---- the pipeline --------------------------------------------------------------------------------
class AudioClassificationPipeline:
    """A callable from audio to ``[{"score", "label"}]``, best first. Build it with :func:`pipeline`.

    Args:
        model: a :class:`~tfaudio.inference.loader.LoadedModel` (``labels``, ``sample_rate``, ``scorer``).
        task: the task name.
        top_k: labels per input by default (None: all).
        batch_size: clips per model call.

    Attributes:
        labels: the class names, in score order.
        sample_rate: the rate the model runs at; inputs at other rates are resampled to it.
    """

    def __init__(self, model: Any, task: str, *, top_k: int | None = 5, batch_size: int = 16):
        self.model = model
        self.converter = model.converter()
        self.task = task
        self.top_k = _check_top_k(top_k)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise TfaudioError(f"batch_size must be an int >= 1, got {batch_size!r}.")
        self.batch_size = batch_size

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.labels

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    def __repr__(self) -> str:
        return (f"AudioClassificationPipeline(task={self.task!r}, labels={len(self.labels)}, "
                f"sample_rate={self.sample_rate}, model={self.model.kind})")

    def __call__(self, inputs: Any, *, top_k: int | None | str = "default", sampling_rate: int | None = None,
                 batch_size: int | None = None) -> list[dict] | list[list[dict]]:
        """Classify one input or a list of inputs.

        Args:
            inputs: a file path; a numpy array of samples (``[samples]`` or ``[samples, channels]``,
                float in [-1, 1] or int16/int32 PCM) with ``sampling_rate``; a ``(samples, rate)``
                tuple; a dict ``{"array", "sampling_rate"}`` (Hugging Face datasets' audio column;
                ``"raw"`` is read like ``"array"``, a dict with only ``"path"`` like a path); or a
                list of these.
            top_k: labels per input (None: all; default: the pipeline's).
            sampling_rate: the rate of bare arrays in ``inputs`` (paths, dicts and tuples carry their own).
            batch_size: clips per model call (default: the pipeline's).

        Returns:
            ``[{"score", "label"}, ...]`` sorted by score for one input; a list of those for a list.
            A model with thresholds adds ``"accepted"`` (see :meth:`postprocess`).

        Raises:
            AudioError: an input cannot be used (unreadable file, no sampling rate, NaN samples,
                empty, wrong shape or dtype); it is named (file path or ``<input #i>``).
        """
        k = self.top_k if top_k == "default" else _check_top_k(top_k)
        single = _is_single(inputs)
        items = [inputs] if single else list(inputs)
        size = self.batch_size if batch_size is None else batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise TfaudioError(f"batch_size must be an int >= 1, got {size!r}.")
        results: list[list[dict]] = []
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            waves = [self.preprocess(item, sampling_rate, where=describe(item, start + i, single))
                     for i, item in enumerate(chunk)]
            scores = self._forward(waves)
            results += [self.postprocess(s, k) for s in scores]
        return results[0] if single else results

    def preprocess(self, item: Any, sampling_rate: int | None = None, *, where: str = "<input>") -> np.ndarray:
        """One input → float32 mono ``[samples]`` at :attr:`sample_rate`: the model's
        :class:`~tfaudio.data.audio_converter.AudioConverter` (see :meth:`__call__`)."""
        return self.converter(item, sampling_rate, where=where)

    def _forward(self, waves: list[np.ndarray]) -> np.ndarray:
        """Clip scores ``[len(waves), C]`` for waveforms at :attr:`sample_rate` (the model's scorer)."""
        return self.model.scorer.scores(waves, batch_size=len(waves) or 1)

    def postprocess(self, scores: np.ndarray, top_k: int | None) -> list[dict]:
        """``[{"score", "label"}]`` of the ``top_k`` best classes (all when None), best first; a model
        with a decision rule adds ``"accepted"`` to each (:meth:`LoadedModel.decide
        <tfaudio.inference.loader.LoadedModel.decide>`: above its class threshold, or the top label
        when not "none of these"). A multi-label model's accepted labels may rank below ``top_k``:
        pass ``top_k=None`` to see them all."""
        decision = self.model.decide(scores)
        accepted = set(decision["labels"]) if decision else None
        return [{"score": t["score"], "label": t["label"], **({"accepted": t["label"] in accepted} if decision else {})}
                for t in decode.top_k(scores, self.labels, top_k)]


def _check_top_k(top_k: Any) -> int | None:
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
        raise TfaudioError(f"top_k must be an int >= 1 (or None for every label), got {top_k!r}.")
    return int(top_k)


def pipeline(task: str, model: Any = None, *, top_k: int | None = 5, batch_size: int = 16,
             input_rate: int | None = None, backbone: Any = None) -> AudioClassificationPipeline:
    """An audio classification pipeline: audio in, ``[{"score", "label"}]`` out.

    Args:
        task: ``"audio-classification"`` (a trained model's classes) or ``"audio-tagging"`` (YAMNet's
            521 AudioSet classes).
        model: for ``"audio-classification"``: a folder saved by ``tfaudio train`` / ``AudioClassifier.save``,
            an export folder from ``tfaudio export`` (or its ``saved_model``), a transformers audio
            classifier folder, or an ``AudioClassifier`` (YAMNet weights give its AudioSet classes, as
            ``"audio-tagging"`` does). For ``"audio-tagging"``: None / ``"yamnet"``
            (found like ``tfaudio tag``: $TFAUDIO_YAMNET, ``../shared``, the cache, TF Hub), a
            ``yamnet.h5``, a SavedModel folder, a TF Hub handle, or a ``YAMNetBackbone``.
        top_k: labels per input (None: all); each call may override it.
        batch_size: clips per model call.
        input_rate: for an export written before exports described themselves: the rate it takes.
            Current exports state their rate (``assets/tfaudio.json``) and need nothing.
        backbone: a backbone to load a saved classifier with (instead of re-creating it from its spec).

    Raises:
        TfaudioError: an unknown task, or a model that cannot be found or recognised.

    Example:
        >>> pipe = pipeline("audio-classification", model="saved_models/dogcat", top_k=1)
        >>> pipe({"array": samples, "sampling_rate": 44100})
        [{'score': 0.98, 'label': 'dog'}]
    """

    if task not in TASKS:
        known = "; ".join(f"{name!r}: {what}" for name, what in TASKS.items())
        raise TfaudioError(f"unknown task {task!r}. Known tasks: {known}.")
    if task == "audio-classification" and model is None:
        raise TfaudioError(
            "pipeline('audio-classification') needs model=: a folder saved by `tfaudio train` (or "
            "AudioClassifier.save), an export folder, or a transformers audio classifier folder. Fix: pass "
            "model='saved_models/NAME', or use pipeline('audio-tagging') for AudioSet classes."
        )
    loaded = load_model(model, input_rate=input_rate, backbone=backbone, tagging=task == "audio-tagging")
    if task == "audio-tagging" and loaded.kind != "tagger":
        raise TfaudioError(f"audio-tagging runs a backbone's own classes; {loaded.source} is a {loaded.kind}. Fix: "
                           "use pipeline('audio-classification', model=...) for it, or pass 'yamnet' / "
                           "'efficientat:mn04_as'.")
    if input_rate is not None and loaded.kind != "export":
        raise TfaudioError("input_rate= is for exported SavedModels only; other models know their rate. Fix: drop it.")
    return AudioClassificationPipeline(loaded, task, top_k=top_k, batch_size=batch_size)
