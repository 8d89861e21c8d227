"""One loader for everything tfaudio writes or scores with: ``load_model(source) → LoadedModel``.

Used by ``tfaudio.pipeline``, ``tfaudio predict`` / ``evaluate`` / ``export`` / ``info`` / ``demo`` and
the Beam jobs, so a model is recognised the same way everywhere:

========================  ==================================================================
kind                      source
========================  ==================================================================
``classifier``            a folder saved by ``tfaudio train`` / ``AudioClassifier.save``, or the object
``finetune``              a fine-tuned Wav2Vec2 / HuBERT folder (``save_finetune_model``), or the model
``tagger``                a backbone with classes of its own: ``"yamnet"``, ``"efficientat:mn04_as"``,
                          ``yamnet.h5``, an EfficientAT ``.pt``, a ``get_backbone`` spec, or the object
``export``                an export folder of ``tfaudio export`` (or its ``saved_model``), which
                          describes itself (``assets/tfaudio.json``: input rate, labels, backbone)
``transformers``          a transformers ``save_pretrained`` folder of an audio classifier
``backbone``              a backbone object without classes of its own (it embeds; ``scorer`` is None)
========================  ==================================================================

Every :class:`LoadedModel` answers ``labels``, ``sample_rate`` (the rate its inputs must be at) and
``scorer`` (``scores(waves) → [n, C]``), and gives the :class:`~tfaudio.data.audio_converter.AudioConverter`
that prepares its inputs. Its ``thresholds`` / ``rejection_threshold`` (read from its metadata by
:func:`tfaudio.export.saved_model.decision_rule`) and ``decide(scores)`` turn scores into its decision.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np
import tensorflow as tf

from tfaudio.backbones import registry
from tfaudio.backbones.entry import transformers_config
from tfaudio.data.audio_converter import AudioConverter, pad_batch
from tfaudio.errors import TfaudioError
from tfaudio.export.saved_model import decision_metadata, decision_rule, read_export_metadata
from tfaudio.heads import decode
from tfaudio.tasks.audio_classifier import AudioClassifier
from tfaudio.tasks.clip_scorer import clip_scorer
from tfaudio.tasks.wav2vec2_finetune import is_finetune_folder, load_finetune_model

__all__ = ["LoadedModel", "load_model", "KINDS"]

KINDS = ("classifier", "finetune", "tagger", "export", "transformers", "backbone")


@dataclasses.dataclass
class LoadedModel:
    """A model recognised by :func:`load_model`.

    Attributes:
        kind: one of :data:`KINDS`.
        model: the object (AudioClassifier, fine-tuned Keras model, backbone, loaded SavedModel,
            transformers model).
        scorer: ``scores(waves) -> [n, C]`` (and ``outputs(waves)`` with frame scores where the model
            has them) for float32 mono waveforms at :attr:`sample_rate`.
        labels: class names in score order.
        sample_rate: the rate the model's input must be at (an export's ``input_rate``).
        source: where it came from (a path or a name), for messages.
        metadata: what the model says about itself (an export's ``tfaudio.json``; a saved
            classifier's ``tfaudio.json``).
    """

    kind: str
    model: Any
    scorer: Any
    labels: tuple[str, ...]
    sample_rate: int
    source: str
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def thresholds(self) -> tuple[float, ...] | None:
        """A multi-label model's per-class thresholds (labels above them are its answer); None otherwise."""
        return decision_rule(self.metadata)["thresholds"]

    @property
    def rejection_threshold(self) -> float | None:
        """A single-label model's "none of these" threshold (on the top score); None otherwise."""
        return decision_rule(self.metadata)["rejection_threshold"]

    def decide(self, scores) -> dict | None:
        """:func:`tfaudio.heads.decode.decide` of one clip's ``scores [C]`` with this model's thresholds:
        ``{"labels", "none_of_these"}``, or None for a model without a decision rule."""
        return decode.decide(scores, self.labels, **decision_rule(self.metadata))

    @property
    def backbone(self) -> Any:
        """The backbone (None for exports and transformers classifiers)."""
        if self.kind in ("classifier", "finetune"):
            return self.model.backbone
        return self.model if self.kind in ("tagger", "backbone") else None

    @property
    def min_samples(self) -> int:
        backbone = self.backbone
        if backbone is not None:
            return int(backbone.contract.min_samples)
        n = int(self.metadata.get("min_samples") or 0)
        rate = int(self.metadata.get("sample_rate") or self.sample_rate)
        return int(np.ceil(n * self.sample_rate / rate)) if n else 0

    def converter(self, **kwargs: Any):
        """The :class:`~tfaudio.data.audio_converter.AudioConverter` for this model's inputs."""

        return AudioConverter(self.sample_rate, min_samples=self.min_samples, **kwargs)

    def describe(self) -> str:
        """One line: what it is and what it recognises."""
        shown = ", ".join(self.labels[:8]) + (f", … ({len(self.labels)} in all)" if len(self.labels) > 8 else "")
        what = getattr(self.scorer, "description", None) or self.kind
        return f"{what} at {self.sample_rate / 1000:g} kHz, {len(self.labels)} classes: {shown}"


# ---- recognising a source ------------------------------------------------------------------------
def saved_model_dir(path: pathlib.Path) -> pathlib.Path | None:
    """The SavedModel folder of an export: ``path`` itself or ``path/saved_model`` (None: neither)."""
    if (path / "saved_model.pb").is_file():
        return path
    if (path / "saved_model" / "saved_model.pb").is_file():
        return path / "saved_model"
    return None


def _backbone_source(text: str) -> bool:
    """A backbone name or ``name:source`` spec, or weights that a backbone with classes of its own
    claims (the registry's sniffers: ``.h5``, ``.pt``, a TF Hub handle; tagging)."""
    try:
        name, _ = registry.split_spec(text)
    except TfaudioError:
        return False
    return text.partition(":")[0].lower() in registry.names() or registry.entry(name).tags


def load_model(source: Any = None, *, input_rate: int | None = None, backbone: Any = None,
               tagging: bool = False) -> LoadedModel:
    """Recognise and load ``source`` (see the module docstring for what it may be).

    Args:
        source: a path, a backbone name / spec, or a model object; None with ``tagging`` → YAMNet.
        input_rate: for an export written before exports described themselves: the rate it takes
            (what ``tfaudio export --input-rate`` was). Refused when the export states its own rate
            and it differs.
        backbone: a backbone to load a saved classifier with (instead of re-creating it from its spec).
        tagging: a backbone name is expected (the backbone's own classes); None means YAMNet.

    Raises:
        TfaudioError: nothing there, or not a model tfaudio recognises (the message says what is expected).
    """

    if source is None:
        if not tagging:
            raise TfaudioError("no model given. Fix: pass a folder saved by `tfaudio train`, an export folder from "
                               "`tfaudio export`, or a backbone name such as 'yamnet' to tag AudioSet events.")
        source = "yamnet"
    if not isinstance(source, (str, os.PathLike)):
        return _from_object(source, clip_scorer)
    text = os.fspath(source)
    path = pathlib.Path(text).expanduser()
    looks_like_path = os.sep in text or "/" in text or text.startswith(".")
    if not path.exists() and (_backbone_source(text) or (tagging and not looks_like_path)):
        return _tagger(text)  # a backbone name (get_backbone says when it does not know it)
    if not path.exists():
        raise TfaudioError(
            f"{path}: no such model folder or file. Fix: pass a folder saved by `tfaudio train` (it holds tfaudio.json and "
            "head.keras), an export folder (`tfaudio export -o`), or a backbone name ('yamnet', "
            "'efficientat:mn04_as') to tag AudioSet events."
        )
    if path.is_dir() and (path / "tfaudio.json").is_file():
        if is_finetune_folder(path):
            return _from_object(load_finetune_model(path), clip_scorer, str(path))

        clf = AudioClassifier.load(path, backbone=backbone)
        meta = json.loads((path / "tfaudio.json").read_text(encoding="utf8"))
        return _from_object(clf, clip_scorer, str(path), meta)
    saved = saved_model_dir(path) if path.is_dir() else None
    if saved is not None:
        if tagging and read_export_metadata(saved) is None:
            return _tagger(text)  # a backbone's own SavedModel (YAMNet from TF Hub), not a tfaudio export
        return _export(saved, str(path), input_rate)
    cfg = transformers_config(path) if path.is_dir() else None
    if cfg is not None:
        return _transformers(path, cfg)
    if _backbone_source(text):
        return _tagger(text)
    if path.suffix == ".tflite":
        raise TfaudioError(
            f"{path}: a TFLite file takes fixed windows and is meant for Android (MediaPipe) or a TFLite "
            "interpreter (tfaudio.interpreter.tflite_interpreter). Fix: pass the export folder (its "
            "saved_model/ runs whole clips), or the model folder saved by `tfaudio train`."
        )
    weights_only = path.is_dir() and (any(path.glob("*.index")) or (path / "checkpoint").is_file())
    if weights_only or path.suffix in (".keras", ".index"):
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


def _from_object(obj: Any, clip_scorer, source: str | None = None, meta: dict | None = None) -> LoadedModel:
    where = source or getattr(obj, "source", None) or f"<{type(obj).__name__}>"
    if registry.is_backbone(obj) and not getattr(obj, "class_names", None):
        # a backbone without classes of its own: it embeds, it does not score (info, export of a head on it)
        return LoadedModel("backbone", obj, None, (), int(obj.contract.sample_rate), str(where), meta or {})
    scorer = clip_scorer(obj)
    kind = scorer.kind
    if meta is None and kind == "classifier":  # an object in memory: its thresholds as a saved one states them
        meta = decision_metadata(obj)
    if kind == "classifier":
        model = obj
    elif kind == "finetune":
        model = obj
    else:
        model = scorer.backbone
    return LoadedModel(kind, model, scorer, tuple(scorer.labels), int(scorer.sample_rate), str(where), meta or {})


def _tagger(text: str) -> LoadedModel:
    backbone = registry.get_backbone(text)
    if not getattr(backbone, "class_names", None):
        raise TfaudioError(f"{text}: this backbone has no class names of its own to tag with (YAMNet needs "
                           "yamnet_class_map.csv next to its weights). Fix: put the class map there, or train a "
                           "head on it with `tfaudio train`.")
    return _from_object(backbone, clip_scorer, text)


# ---- exports -------------------------------------------------------------------------------------
class _ExportScorer:
    """An exported SavedModel's ``batch`` signature (``serving_default`` clip by clip for old exports)."""

    kind = "export"
    frame_hop_seconds = None  # the batch signature returns clip scores only
    frame_seconds = None

    def __init__(self, loaded: Any, labels: tuple[str, ...], description: str, sample_rate: int):
        self.loaded = loaded
        self.labels = labels
        self.description = description
        self.sample_rate = int(sample_rate)
        self.batch = loaded.signatures.get("batch")
        self.single = loaded.signatures.get("serving_default")

    def scores(self, waves, *, batch_size: int = 16) -> np.ndarray:
        if not len(waves):
            return np.zeros([0, len(self.labels)], np.float32)
        if self.batch is None:
            return np.stack([np.asarray(self.single(audio=tf.constant(w))["classifier"]) for w in waves])
        out = []
        for start in range(0, len(waves), batch_size):
            audio, lengths = pad_batch(waves[start : start + batch_size])
            out.append(np.asarray(self.batch(audio=tf.constant(audio), lengths=tf.constant(lengths))["classifier"]))
        return np.concatenate(out)

    def outputs(self, waves, *, batch_size: int = 16) -> list[dict[str, np.ndarray]]:
        return [{"classifier": s} for s in self.scores(waves, batch_size=batch_size)]


def export_input_rate(saved: pathlib.Path, input_rate: int | None, source: str, meta: dict | None = None) -> int:
    """The rate an export takes: what its ``tfaudio.json`` says; ``input_rate`` only for an export
    without one (and refused when it contradicts the export)."""

    meta = read_export_metadata(saved) if meta is None else meta
    stated = (meta or {}).get("input_rate")
    if stated is not None and input_rate is not None and int(input_rate) != int(stated):
        raise TfaudioError(f"{source}: this export takes {stated} Hz audio (it says so in its tfaudio.json), not "
                           f"{input_rate} Hz. Fix: drop --input-rate; inputs at any rate are resampled to {stated} Hz.")
    rate = stated if stated is not None else input_rate
    if rate is None:
        raise TfaudioError(
            f"{source}: this SavedModel does not say which sample rate it takes (it was exported before exports "
            "described themselves, or not by tfaudio). Fix: pass the rate it was exported with (--input-rate / "
            "input_rate=; `tfaudio export` used 16000 unless --input-rate), or export it again with `tfaudio export`."
        )
    return int(rate)


def describe_export(path: str | os.PathLike, input_rate: int | None = None) -> tuple[pathlib.Path, tuple[str, ...], int, dict]:
    """What an export says about itself, without loading it: (its SavedModel folder, labels, the rate
    its input must be at, its ``tfaudio.json``). For drivers that hand the path to workers (Beam).

    Raises:
        TfaudioError: no SavedModel there, no labels, or no known input rate (each with the fix).
    """
    source = os.fspath(path)
    saved = saved_model_dir(pathlib.Path(source).expanduser())
    if saved is None:
        raise TfaudioError(
            f"{source}: no SavedModel here (no saved_model.pb in it or in {pathlib.Path(source) / 'saved_model'}). "
            f"Fix: export the classifier first (`tfaudio export MODEL -o {source}`) and pass that folder."
        )
    meta = read_export_metadata(saved) or {}
    labels_file = saved / "assets" / "labels.txt"
    if meta.get("labels"):
        labels = tuple(meta["labels"])
    elif labels_file.is_file():
        labels = tuple(line for line in labels_file.read_text(encoding="utf8").splitlines() if line.strip())
    else:
        raise TfaudioError(f"{saved}: no assets/tfaudio.json or labels.txt, so the scores cannot be named. Fix: "
                           "export the model with `tfaudio export` (it writes both), or pass its model folder.")
    return saved, labels, export_input_rate(saved, input_rate, source, meta), meta


def _export(saved: pathlib.Path, source: str, input_rate: int | None) -> LoadedModel:
    saved, labels, rate, meta = describe_export(saved, input_rate)
    loaded = tf.saved_model.load(str(saved))
    if "batch" not in loaded.signatures and "serving_default" not in loaded.signatures:
        raise TfaudioError(f"{saved}: the SavedModel has neither a 'batch' nor a 'serving_default' signature. Fix: "
                           "export it with `tfaudio export`.")
    scorer = _ExportScorer(loaded, labels, meta.get("description") or "exported SavedModel", rate)
    return LoadedModel("export", loaded, scorer, labels, int(rate), source, meta)


# ---- transformers classifiers --------------------------------------------------------------------
class _TransformersScorer:
    """A transformers ``save_pretrained`` audio classifier (``TF…ForSequenceClassification`` /
    ``TF…ForAudioClassification``): its feature extractor, logits → softmax (sigmoid for multi-label)."""

    kind = "transformers"
    frame_hop_seconds = None
    frame_seconds = None

    def __init__(self, path: pathlib.Path, cfg: dict):
        try:
            import transformers
        except ImportError as err:
            raise TfaudioError(f"{path} is a transformers model folder: loading it needs transformers. Fix: "
                               "pip install 'tfaudio[transformers]'.") from err
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
        self.description = f"transformers {config.model_type} classifier"

    def scores(self, waves, *, batch_size: int = 16) -> np.ndarray:
        out = []
        for w in waves:  # one clip per call: padding would change group-norm models' outputs
            inputs = self.extractor(w, sampling_rate=self.sample_rate, return_tensors="tf")
            logits = self.model(**inputs, training=False).logits[0]
            out.append(np.asarray(tf.sigmoid(logits) if self.multi_label else tf.nn.softmax(logits)))
        return np.stack(out) if out else np.zeros([0, len(self.labels)], np.float32)

    def outputs(self, waves, *, batch_size: int = 16) -> list[dict[str, np.ndarray]]:
        return [{"classifier": s} for s in self.scores(waves)]


def _transformers(path: pathlib.Path, cfg: dict) -> LoadedModel:
    scorer = _TransformersScorer(path, cfg)
    return LoadedModel("transformers", scorer.model, scorer, scorer.labels, scorer.sample_rate, str(path),
                       {"config": cfg})
