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
mean of the frame scores) → ``postprocess`` (the ``top_k`` labels, best first). Inputs are checked
before the model runs, and a bad one raises :class:`~tfaudio.errors.AudioError` naming it and the fix.

Models: for ``"audio-classification"``, a folder saved by ``tfaudio train`` / ``AudioClassifier.save``,
an export folder (``tfaudio export``; its SavedModel), a transformers ``save_pretrained`` folder of an
audio classifier (e.g. a fine-tuned ``TFWav2Vec2ForSequenceClassification``), or an
``AudioClassifier`` object. For ``"audio-tagging"``: ``None`` / ``"yamnet"`` (the weights are found like
``tfaudio tag`` finds them: $TFAUDIO_YAMNET, ``../shared``, the cache, TF Hub), a ``yamnet.h5``, a
SavedModel folder or TF Hub handle, or a ``YAMNetBackbone``.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import pathlib
from typing import Any

import numpy as np

from tfaudio.errors import AudioError, TfaudioError

__all__ = ["pipeline", "AudioClassificationPipeline", "TASKS"]

#: The tasks :func:`pipeline` knows, with what each answers.
TASKS = {
    "audio-classification": "the classes of a trained tfaudio classifier (or an exported / transformers one)",
    "audio-tagging": "YAMNet's 521 AudioSet classes (no training needed)",
}
_YAMNET_NAMES = ("yamnet", "yamnet:")
#: Most channels a 2-D array may have; a longer axis is taken as the samples.
_MAX_CHANNELS = 8
_INT_SCALE = {np.dtype(np.int8): 2.0**7, np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}


# ---- models --------------------------------------------------------------------------------------
def _is_yamnet_source(model: Any) -> bool:
    if not isinstance(model, (str, os.PathLike)):
        return False
    text = os.fspath(model)
    if text.lower() == "yamnet" or text.lower().startswith("yamnet:"):
        return True
    if text.endswith(".h5") or "tfhub.dev" in text or "kaggle.com/models/google/yamnet" in text:
        return True
    path = pathlib.Path(text)
    return path.is_dir() and (path / "yamnet.h5").is_file()


def _yamnet(model: Any):
    from tfaudio.backbones.yamnet_backbone import YAMNetBackbone

    if model is None:
        return YAMNetBackbone.from_pretrained()
    text = os.fspath(model)
    if text.lower() == "yamnet":
        return YAMNetBackbone.from_pretrained()
    if text.lower().startswith("yamnet:"):
        text = text.split(":", 1)[1]
    return YAMNetBackbone.from_pretrained(text)


def _saved_model_dir(path: pathlib.Path) -> pathlib.Path | None:
    if (path / "saved_model.pb").is_file():
        return path
    if (path / "saved_model" / "saved_model.pb").is_file():
        return path / "saved_model"
    return None


def _transformers_config(path: pathlib.Path) -> dict | None:
    config = path / "config.json"
    if not config.is_file():
        return None
    try:
        cfg = json.loads(config.read_text(encoding="utf8"))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) and "model_type" in cfg else None


def _load_model(model: Any, task: str, **kwargs: Any) -> dict[str, Any]:
    """Recognise ``model`` → ``{"kind", "model", "source"}``; kinds: ``classifier``
    (AudioClassifier), ``tagger`` (a backbone with class names), ``export`` (the SavedModel folder),
    ``transformers`` (the folder)."""
    from_backbone = kwargs.pop("backbone", None)
    if kwargs:
        raise TfaudioError(f"unexpected options {sorted(kwargs)} for model {model!r}.")
    if hasattr(model, "head_model_") and hasattr(model, "predict_scores"):
        return {"kind": "classifier", "model": model, "source": f"<{type(model).__name__}>"}
    if hasattr(model, "contract") and hasattr(model, "batch_scores"):
        return {"kind": "tagger", "model": model, "source": getattr(model, "source", None) or f"<{type(model).__name__}>"}
    if model is None or _is_yamnet_source(model):
        if task == "audio-classification" and model is None:
            raise TfaudioError(
                "pipeline('audio-classification') needs model=: a folder saved by `tfaudio train` (or "
                "AudioClassifier.save), an export folder, or a transformers audio classifier folder. Fix: pass "
                "model='saved_models/NAME', or use pipeline('audio-tagging') for YAMNet's AudioSet classes."
            )
        backbone = _yamnet(model)
        return {"kind": "tagger", "model": backbone, "source": os.fspath(model) if model is not None else "yamnet"}
    if not isinstance(model, (str, os.PathLike)):
        raise TfaudioError(f"model must be a path, a model name or an AudioClassifier, got {type(model).__name__}.")
    path = pathlib.Path(model).expanduser()
    if not path.exists():
        raise TfaudioError(
            f"{path}: no such model folder. Fix: pass a folder saved by `tfaudio train` (it holds tfaudio.json and "
            f"head.keras), an export folder (`tfaudio export -o`), 'yamnet' or a yamnet.h5 file."
        )
    from tfaudio.tasks.audio_classifier import CONFIG_FILE

    if (path / CONFIG_FILE).is_file():
        from tfaudio.tasks.audio_classifier import AudioClassifier

        clf = AudioClassifier.load(path, backbone=from_backbone)
        return {"kind": "classifier", "model": clf, "source": str(path)}
    saved = _saved_model_dir(path) if path.is_dir() else None
    if saved is not None:
        return {"kind": "export", "model": saved, "source": str(path)}
    cfg = _transformers_config(path) if path.is_dir() else None
    if cfg is not None:
        return {"kind": "transformers", "model": path, "source": str(path)}
    if path.suffix == ".tflite":
        raise TfaudioError(
            f"{path}: a TFLite file takes fixed 0.975 s windows and is meant for Android (MediaPipe). Fix: pass the "
            "export folder (its saved_model/ runs whole clips), or the model folder saved by `tfaudio train`."
        )
    weights_only = path.is_dir() and (any(path.glob("*.index")) or (path / "checkpoint").is_file())
    if weights_only or path.suffix in (".h5", ".keras", ".index"):
        raise TfaudioError(
            f"{path}: Keras weights alone (e.g. save_weights of a fine-tuned Wav2Vec2 model) do not say how to "
            "rebuild the model, its labels or its sample rate. Fix: save the classifier with AudioClassifier.save "
            "(`tfaudio train`), export it with `tfaudio export`, or save a transformers classifier with "
            "save_pretrained (config.json with id2label + preprocessor_config.json)."
        )
    raise TfaudioError(
        f"{path}: not a model tfaudio recognises (no tfaudio.json, saved_model.pb or transformers config.json). "
        "Fix: pass a folder saved by `tfaudio train`, an export folder from `tfaudio export`, or 'yamnet'."
    )


class _ClassifierModel:
    """A tfaudio AudioClassifier: backbone embeddings → head → mean over frames."""

    def __init__(self, clf: Any, batch_size: int):
        if not clf.is_trained:
            raise TfaudioError("this AudioClassifier is not trained. Fix: call fit() or AudioClassifier.load() first.")
        self.clf = clf
        self.labels = tuple(clf.labels)
        self.sample_rate = int(clf.backbone.contract.sample_rate)
        self.batch_size = batch_size

    def scores(self, waves: list[np.ndarray]) -> np.ndarray:
        return np.asarray(self.clf.predict_scores(waves, batch_size=self.batch_size))


class _TaggerModel:
    """YAMNet's own AudioSet scores, the mean over each clip's patches (as ``tfaudio tag``)."""

    def __init__(self, backbone: Any):
        self.backbone = backbone
        self.labels = tuple(backbone.class_names)
        self.sample_rate = int(backbone.contract.sample_rate)

    def scores(self, waves: list[np.ndarray]) -> np.ndarray:
        lengths = np.array([len(w) for w in waves], np.int32)
        batch = np.zeros([len(waves), max(int(lengths.max()), 1)], np.float32)
        for i, w in enumerate(waves):
            batch[i, : len(w)] = w
        scores, mask = self.backbone.batch_scores(batch, lengths)
        scores, mask = np.asarray(scores), np.asarray(mask)
        return np.stack([scores[i][mask[i]].mean(axis=0) for i in range(len(waves))])


class _SavedModelModel:
    """An exported SavedModel (``tfaudio export``): its ``batch`` signature, or ``serving_default``
    clip by clip."""

    def __init__(self, path: pathlib.Path, input_rate: int | None):
        import tensorflow as tf

        self.path = path
        self.loaded = tf.saved_model.load(str(path))
        labels_file = path / "assets" / "labels.txt"
        if not labels_file.is_file():
            raise TfaudioError(f"{path}: no assets/labels.txt, so the scores cannot be named. Fix: export the model "
                               "with `tfaudio export` (it writes the labels), or pass its model folder.")
        self.labels = tuple(line for line in labels_file.read_text(encoding="utf8").splitlines() if line.strip())
        # the SavedModel does not record its input rate: `tfaudio export` uses 16 kHz unless --input-rate
        self.sample_rate = int(input_rate or 16000)
        self.batch = self.loaded.signatures.get("batch")
        self.single = self.loaded.signatures.get("serving_default")
        if self.batch is None and self.single is None:
            raise TfaudioError(f"{path}: the SavedModel has neither a 'batch' nor a 'serving_default' signature. "
                               "Fix: export it with `tfaudio export`.")

    def scores(self, waves: list[np.ndarray]) -> np.ndarray:
        import tensorflow as tf

        if self.batch is not None:
            lengths = np.array([len(w) for w in waves], np.int32)
            batch = np.zeros([len(waves), int(lengths.max())], np.float32)
            for i, w in enumerate(waves):
                batch[i, : len(w)] = w
            out = self.batch(audio=tf.constant(batch), lengths=tf.constant(lengths))
            return np.asarray(out["classifier"])
        return np.stack([np.asarray(self.single(audio=tf.constant(w))["classifier"]) for w in waves])


class _TransformersModel:
    """A transformers ``save_pretrained`` folder of an audio classifier (``TF…ForSequenceClassification``
    / ``TF…ForAudioClassification``): its feature extractor, logits → softmax (sigmoid for
    multi-label configs)."""

    def __init__(self, path: pathlib.Path):
        try:
            import transformers
        except ImportError as err:
            raise TfaudioError(f"{path} is a transformers model folder: loading it needs transformers. Fix: "
                               "pip install 'tfaudio[transformers]'.") from err
        cfg = _transformers_config(path) or {}
        archs = [a for a in cfg.get("architectures") or [] if a.endswith(("ForSequenceClassification",
                                                                          "ForAudioClassification"))]
        if cfg.get("architectures") and not archs:
            raise TfaudioError(
                f"{path}: a transformers {cfg.get('model_type')} checkpoint without a classification head "
                f"(architectures {cfg.get('architectures')}). Fix: use it as a backbone (`tfaudio train --backbone "
                f"wav2vec2:{path}`) and pass the trained model folder, or save a fine-tuned "
                "TFWav2Vec2ForSequenceClassification with save_pretrained."
            )
        try:
            self.model = transformers.TFAutoModelForAudioClassification.from_pretrained(str(path))
        except Exception as err:  # missing TF weights, unknown architecture...
            raise TfaudioError(f"{path}: transformers could not load it as a TF audio classifier "
                               f"({type(err).__name__}: {err}).") from err
        try:
            self.extractor = transformers.AutoFeatureExtractor.from_pretrained(str(path))
        except (OSError, ValueError):  # no preprocessor_config.json: Wav2Vec2's defaults (16 kHz)
            self.extractor = transformers.Wav2Vec2FeatureExtractor()
        config = self.model.config
        self.labels = tuple(config.id2label[i] for i in range(config.num_labels))
        self.sample_rate = int(self.extractor.sampling_rate)
        self.multi_label = getattr(config, "problem_type", None) == "multi_label_classification"

    def scores(self, waves: list[np.ndarray]) -> np.ndarray:
        import tensorflow as tf

        out = []
        for w in waves:  # one clip per call: padding would change group-norm models' outputs
            inputs = self.extractor(w, sampling_rate=self.sample_rate, return_tensors="tf")
            logits = self.model(**inputs, training=False).logits[0]
            out.append(np.asarray(tf.sigmoid(logits) if self.multi_label else tf.nn.softmax(logits)))
        return np.stack(out)


# ---- inputs --------------------------------------------------------------------------------------
def _check_rate(rate: Any, where: str) -> int:
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real) or not math.isfinite(rate) \
            or rate <= 0 or int(rate) != rate:
        raise AudioError(where, f"sampling_rate must be a positive whole number of Hz, got {rate!r}.",
                         "pass the rate the samples were recorded at, e.g. sampling_rate=16000.")
    return int(rate)


def _as_mono_float(array: Any, where: str) -> np.ndarray:
    """Any array-like of samples → float32 mono ``[samples]`` in [-1, 1] for integer PCM."""
    if hasattr(array, "numpy") and not isinstance(array, np.ndarray):
        array = array.numpy()
    try:
        a = np.asarray(array)
    except (TypeError, ValueError) as err:
        raise AudioError(where, f"cannot be read as an array of samples ({err}).",
                         "pass a 1-D numpy array of float samples, or [samples, channels].") from None
    if a.dtype.kind == "O" and a.size:
        raise AudioError(where, "is a ragged / object array, not samples.",
                         "pass one clip as a 1-D float array; pass several clips as a list of arrays.")
    if a.dtype.kind not in "iuf" and a.size:
        raise AudioError(where, f"has samples of dtype {a.dtype}.",
                         "pass float samples in [-1, 1] (float32) or integer PCM (int16 / int32).")
    if a.ndim == 0 or a.ndim > 2:
        raise AudioError(where, f"has shape {a.shape}; expected [samples] or [samples, channels].",
                         "pass one clip per item (a list of arrays for a batch).")
    if a.size == 0:
        raise AudioError(where, f"is empty (shape {a.shape}, no samples).", "pass a clip with at least one sample.")
    if a.ndim == 2:
        rows, cols = a.shape
        if cols <= _MAX_CHANNELS and rows > cols:
            pass  # [samples, channels] (soundfile's layout)
        elif rows <= _MAX_CHANNELS and cols > rows:
            a = a.T  # [channels, samples] (torchaudio's layout)
        else:
            raise AudioError(where, f"has shape {a.shape}: neither axis looks like channels (at most "
                             f"{_MAX_CHANNELS}).", "pass [samples] or [samples, channels]; a batch as a list of clips.")
    if a.dtype.kind in "iu":
        if a.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
            a = (a.astype(np.float32) - 128.0) / 128.0
        elif a.dtype in _INT_SCALE:
            a = a.astype(np.float32) / np.float32(_INT_SCALE[a.dtype])
        else:
            raise AudioError(where, f"has integer samples of dtype {a.dtype}, whose full scale is ambiguous.",
                             "convert to float32 in [-1, 1] (or to int16 PCM) first.")
    else:
        bad = int(np.count_nonzero(~np.isfinite(a)))
        if bad:
            raise AudioError(where, f"has {bad} NaN/Inf sample(s) of {a.size}.",
                             "fix or drop the clip (e.g. np.nan_to_num(samples)) before classifying it.")
        a = a.astype(np.float32, copy=False)
    if a.ndim == 2:
        from tfaudio.io.decode import mix_to_mono

        a = np.asarray(mix_to_mono(a))
    return a


def _resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """The band-limited TF resampler; scipy's ``resample_poly`` for a rate pair whose kernel would
    be too large for it (a tiny gcd, e.g. 44099 Hz)."""
    if rate == target:
        return audio
    from tfaudio.signal.resample import resample

    try:
        return np.asarray(resample(audio, rate, target))
    except ValueError:
        from scipy.signal import resample_poly

        g = math.gcd(rate, target)
        return resample_poly(audio, target // g, rate // g).astype(np.float32)


def _is_pair(item: Any) -> bool:
    """``(samples, rate)``: a tuple of an array-like and a number."""
    return (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], numbers.Real)
            and not isinstance(item[1], bool) and not isinstance(item[0], (str, os.PathLike, numbers.Real)))


def _is_single(inputs: Any) -> bool:
    return not isinstance(inputs, list) and not (isinstance(inputs, tuple) and not _is_pair(inputs))


# ---- the pipeline --------------------------------------------------------------------------------
class AudioClassificationPipeline:
    """A callable from audio to ``[{"score", "label"}]``, best first. Build it with :func:`pipeline`.

    Args:
        model: the wrapped model (it has ``labels``, ``sample_rate`` and ``scores(waves) -> [n, C]``).
        task: the task name.
        top_k: labels per input by default (None: all).
        batch_size: clips per model call.

    Attributes:
        labels: the class names, in score order.
        sample_rate: the rate the model runs at; inputs at other rates are resampled to it.
    """

    def __init__(self, model: Any, task: str, *, top_k: int | None = 5, batch_size: int = 16):
        self.model = model
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
                f"sample_rate={self.sample_rate}, model={type(self.model).__name__.strip('_')})")

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
            waves = [self.preprocess(item, sampling_rate, where=self._where(item, start + i, single))
                     for i, item in enumerate(chunk)]
            scores = self._forward(waves)
            results += [self.postprocess(s, k) for s in scores]
        return results[0] if single else results

    @staticmethod
    def _where(item: Any, index: int, single: bool) -> str:
        if isinstance(item, (str, os.PathLike)):
            return os.fspath(item)
        if isinstance(item, dict) and item.get("path") and not any(k in item for k in ("array", "raw")):
            return str(item["path"])
        return "<input>" if single else f"<input #{index}>"

    def preprocess(self, item: Any, sampling_rate: int | None = None, *, where: str = "<input>") -> np.ndarray:
        """One input → float32 mono ``[samples]`` at :attr:`sample_rate` (see :meth:`__call__`)."""
        from tfaudio.io.decode import load_audio

        rate: Any = sampling_rate
        if isinstance(item, (bytes, bytearray)):
            raise AudioError(where, "is raw bytes; tfaudio decodes files by path.",
                             "write the bytes to a file and pass its path, or decode them (soundfile.read) and pass "
                             "the samples with their sampling_rate.")
        if isinstance(item, (str, os.PathLike)):
            audio, rate = load_audio(item)  # AudioError naming the file
            return _resample(audio, int(rate), self.sample_rate)
        if isinstance(item, dict):
            key = next((k for k in ("array", "raw") if k in item), None)
            if key is None:
                if item.get("path"):
                    audio, rate = load_audio(item["path"])
                    return _resample(audio, int(rate), self.sample_rate)
                raise AudioError(where, f"is a dict with keys {sorted(item)}; expected 'array' and 'sampling_rate'.",
                                 "pass {'array': samples, 'sampling_rate': rate} (a Hugging Face datasets audio "
                                 "value) or a file path.")
            if "sampling_rate" not in item:
                raise AudioError(where, f"has {key!r} but no 'sampling_rate'.",
                                 f"add the rate, e.g. {{'{key}': samples, 'sampling_rate': 16000}}.")
            item, rate = item[key], item["sampling_rate"]
        elif _is_pair(item):
            item, rate = item
        if rate is None:
            raise AudioError(where, "is an array of samples without a sampling rate, so it cannot be resampled to "
                             f"the model's {self.sample_rate} Hz.",
                             f"pass sampling_rate=RATE (e.g. pipe(samples, sampling_rate={self.sample_rate})), a "
                             "(samples, rate) tuple, or {'array': samples, 'sampling_rate': rate}.")
        rate = _check_rate(rate, where)
        audio = _as_mono_float(item, where)
        return _resample(audio, rate, self.sample_rate)

    def _forward(self, waves: list[np.ndarray]) -> np.ndarray:
        """Clip scores ``[len(waves), C]`` for waveforms at :attr:`sample_rate`."""
        return self.model.scores(waves)

    def postprocess(self, scores: np.ndarray, top_k: int | None) -> list[dict]:
        """``[{"score", "label"}]`` of the ``top_k`` best classes (all when None), best first."""
        scores = np.asarray(scores, np.float64)
        order = np.argsort(-scores, kind="stable")
        if top_k is not None:
            order = order[:top_k]
        return [{"score": float(scores[i]), "label": self.labels[i]} for i in order]


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
        input_rate: an exported SavedModel's input rate when it was exported with ``--input-rate``
            (the SavedModel does not record it; default 16000).
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
    if task == "audio-tagging" and not (hasattr(model, "contract") and hasattr(model, "batch_scores")):
        if model is not None and not isinstance(model, (str, os.PathLike)):
            raise TfaudioError(f"audio-tagging runs YAMNet; model= must be None, 'yamnet', a yamnet.h5, a SavedModel "
                               f"folder, a TF Hub handle or a YAMNetBackbone, got {type(model).__name__}.")
        model = _yamnet(model)  # WeightsNotFoundError lists where it looked and how to fix it
    loaded = _load_model(model, task, backbone=backbone)
    kind, obj = loaded["kind"], loaded["model"]
    if kind == "classifier":
        wrapped: Any = _ClassifierModel(obj, batch_size)
    elif kind == "tagger":
        if not obj.class_names:
            raise TfaudioError(f"{loaded['source']}: YAMNet loaded without its class map, so its scores have no names. "
                               "Fix: put yamnet_class_map.csv next to the weights.")
        wrapped = _TaggerModel(obj)
    elif kind == "export":
        wrapped = _SavedModelModel(obj, input_rate)
    else:
        wrapped = _TransformersModel(obj)
    if input_rate is not None and kind != "export":
        raise TfaudioError("input_rate= is for exported SavedModels only; other models know their rate. Fix: drop it.")
    return AudioClassificationPipeline(wrapped, task, top_k=top_k, batch_size=batch_size)

