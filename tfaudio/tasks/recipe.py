"""Training recipes: a head, how it is trained, and how the training folds are used — by name or file.

``default`` (what ``train``, ``cv`` and :class:`~tfaudio.tasks.audio_classifier.AudioClassifier`
use unless told otherwise) was chosen for many-class problems without looking at any test fold:

- every training fold is used for fitting, with a fixed schedule (cosine learning-rate decay over 40
  epochs of batches of 128 frames) instead of a held-out fold for early stopping: with 5 folds a
  held-out fold is a quarter of the training data, and early stopping on a frame-level validation loss
  stops too early (the loss rises while clip accuracy still improves);
- a regularised head: embeddings standardised by the training frames' statistics (inside the head,
  so exports carry it), input dropout 0.2, one hidden layer of 1024 ReLU units, dropout 0.5, label
  smoothing 0.1 and mixup (α = 0.4) of frame pairs — the usual remedies when a head with ~10⁶ weights
  learns from a few hundred clips;
- the silence gate: silent frames (:mod:`tfaudio.signal.frame_energy`) neither train the head with
  their clip's label nor dilute the clip's score.

``tutorial`` is the TensorFlow Hub YAMNet tutorial's recipe (Dense 512, Adam 1e-3, batches of 32,
up to 20 epochs, early stopping when the training loss stops improving for 3 epochs, the next fold
held out for validation), kept for comparison. ``tfaudio tune`` compares recipes by nested
cross-validation and writes the winner as a JSON file that ``--recipe FILE`` reads.

Example:
    >>> recipe = get_recipe("default")
    >>> clf = AudioClassifier("yamnet", labels, head=recipe.head).fit(train, config=recipe.train)
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

from tfaudio.errors import TfaudioError
from tfaudio.heads.classification_head import HeadConfig
from tfaudio.io.atomic import atomic_write_text

__all__ = ["Recipe", "RECIPE_NAMES", "TrainConfig", "FineTuneConfig", "get_recipe", "VALIDATIONS"]

#: How a recipe uses the training folds: ``"none"`` fits on all of them with its fixed schedule;
#: ``"fold"`` holds one out (in cross-validation the fold after the test fold) for early stopping.
VALIDATIONS = ("none", "fold")


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


@dataclasses.dataclass(frozen=True)
class FineTuneConfig:
    """How the backbone itself trains (:mod:`tfaudio.tasks.finetune`); the head's learning rate, the epochs,
    batch size, label smoothing, mixup and seed are the recipe's :class:`TrainConfig`. Times in seconds.

    Args:
        crop_seconds: the training window: longer clips are cropped at random, shorter ones padded. None:
            the 95th percentile of the training clips' durations, at most ``max_crop_seconds``.
        max_crop_seconds: the longest window ``crop_seconds=None`` chooses.
        backbone_learning_rate: the top block's learning rate as a share of the head's.
        layer_decay: each block below the top learns this much slower (1: all blocks alike).
        freeze_blocks: the first N blocks of the backbone stay frozen (None: the backbone's own default,
            ``Backbone.finetune_frozen_blocks``; -1: the whole backbone, a head on frozen features).
        batchnorm: ``"frozen"`` (AudioSet's statistics and training-mode-free batch norm) or ``"train"``
            (batch statistics while training, moving averages updated).
        weight_decay: AdamW's decoupled weight decay (on every weight).
        warmup_epochs: epochs of linear learning-rate warm-up before the cosine decay.
        head_epochs: epochs at the start in which only the head trains (the backbone waits).
        probe_epochs: linear probing, then fine-tuning (LP-FT): before the first epoch, the head is trained
            for this many epochs on the clip embeddings of the pretrained backbone (each training clip's
            window, no augmentation; batches of 32 at the recipe's learning rate, cosine decay), so
            fine-tuning starts from a converged head instead of a random one (0: off).
        dropout: dropout on the pooled embedding before the head.
        speed: speed perturbation: each training clip played up to this share faster or slower (pitch
            and tempo together; 0.1: one of 0.9, 0.95, 1, 1.05, 1.1; 0: off). None: the backbone's own
            default, ``Backbone.finetune_speed`` (0.1 for the speech backbones, off for the others).
        gain_db: random gain of each training clip, up to this many dB either way (0: off).
        shift_seconds: random time shift of each training clip, up to this either way (0: off).
        freq_mask: SpecAugment: up to this share of the mel bands masked, twice (0: off; log-mel backbones).
        time_mask: SpecAugment: up to this share of the frames masked, twice (0: off; log-mel backbones).
        precision: ``"float32"``, ``"bfloat16"`` (oneDNN's automatic bfloat16, on CPUs that have it
            natively), ``"float16"`` (automatic mixed precision with dynamic loss scaling, on GPUs with
            compute capability >= 7.0) or ``"auto"`` (float16 on such a GPU, else float32; see
            :mod:`tfaudio.tasks.precision`).
        refit_head: after fine-tuning, train the head again as the frozen default trains a head (recipe
            ``"default"``: a frame head, the mean of frame scores, the silence gate, embedding mixup, dropout;
            :meth:`~tfaudio.tasks.audio_classifier.AudioClassifier.fit`) on the frame embeddings of the
            training clips under the fine-tuned backbone (each clip's window from its start, no
            augmentation); the model keeps that head (off: the head trained with the backbone).
        interpolate: weight-space ensembling (WiSE-FT, Wortsman et al. 2022): after fine-tuning, the
            backbone's weights are moved back to ``pretrained + interpolate * (fine-tuned - pretrained)``
            and the head is refit on them as ``refit_head`` does (1: the fine-tuned weights, off; 0: the
            pretrained backbone with the frozen default's head). It helps where the pretrained features
            already fit the task (mn04 on ESC-50 clips) and hurts where fine-tuning has to change them
            (mn04 on keywords): ``"auto"`` chooses it among :data:`~tfaudio.tasks.finetune.INTERPOLATE_GRID`
            by the accuracy on the validation clips (``tfaudio finetune --folds TRAIN:VAL:TEST``).
        micro_batch: clips per forward and backward pass; the gradients of ``batch_size / micro_batch``
            of them are summed into one step (gradient accumulation: the same step in less memory, with
            frozen batch norm). None: the whole batch, or less where the backbone says a clip is large
            (Whisper's 30 s windows, long Wav2Vec2 clips) and the batch would not fit in half of the free
            memory (``TFAUDIO_FINETUNE_MEMORY_GB`` sets that budget). Must divide the batch.
    """

    crop_seconds: float | None = None
    max_crop_seconds: float = 10.0
    backbone_learning_rate: float = 1.0
    layer_decay: float = 0.85
    freeze_blocks: int | None = None
    batchnorm: str = "frozen"
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    head_epochs: int = 1
    probe_epochs: int = 0
    dropout: float = 0.0
    speed: float | None = None
    gain_db: float = 6.0
    shift_seconds: float = 0.2
    freq_mask: float = 0.15
    time_mask: float = 0.1
    precision: str = "auto"
    micro_batch: int | None = None
    refit_head: bool = False
    interpolate: float | str = 1.0

    def __post_init__(self):
        if not isinstance(self.refit_head, bool):
            raise ValueError(f"refit_head must be true or false, got {self.refit_head!r}")
        if self.interpolate != "auto" and (isinstance(self.interpolate, bool) or not isinstance(
                self.interpolate, (int, float)) or not 0 <= self.interpolate <= 1):
            raise ValueError(f"interpolate must be a number in [0, 1] or 'auto', got {self.interpolate!r}")
        if self.micro_batch is not None and self.micro_batch < 1:
            raise ValueError(f"micro_batch must be a positive number of clips, got {self.micro_batch!r}")
        if self.batchnorm not in ("frozen", "train"):
            raise ValueError(f"batchnorm must be 'frozen' or 'train', got {self.batchnorm!r}")
        if self.precision not in ("auto", "float32", "bfloat16", "float16"):
            raise ValueError(f"precision must be 'auto', 'float32', 'bfloat16' or 'float16', got {self.precision!r}")
        if self.crop_seconds is not None and not self.crop_seconds > 0:
            raise ValueError(f"crop_seconds must be positive, got {self.crop_seconds!r}")
        if not 0 < self.layer_decay <= 1 or self.backbone_learning_rate < 0 or self.weight_decay < 0:
            raise ValueError(f"layer_decay must be in (0, 1], backbone_learning_rate and weight_decay >= 0, got "
                             f"{self.layer_decay}, {self.backbone_learning_rate}, {self.weight_decay}")
        if not 0 <= self.dropout < 1 or not 0 <= self.freq_mask < 1 or not 0 <= self.time_mask < 1:
            raise ValueError(f"dropout, freq_mask and time_mask must be in [0, 1), got {self.dropout}, "
                             f"{self.freq_mask}, {self.time_mask}")
        if self.speed is not None and not 0 <= self.speed < 0.5:
            raise ValueError(f"speed must be in [0, 0.5), got {self.speed!r}")
        if min(self.warmup_epochs, self.head_epochs, self.probe_epochs, self.gain_db, self.shift_seconds) < 0:
            raise ValueError("warmup_epochs, head_epochs, probe_epochs, gain_db and shift_seconds must be >= 0")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A head, its training settings, and how the training folds are used.

    Args:
        name: what the recipe is called (in reports).
        head: the head (:class:`~tfaudio.heads.classification_head.HeadConfig`).
        train: the training settings (:class:`TrainConfig`).
        validation: one of :data:`VALIDATIONS`.
        finetune: the backbone's training (:class:`FineTuneConfig`), for recipes of ``tfaudio finetune``;
            None: a head on frozen embeddings.
    """

    name: str
    head: HeadConfig
    train: TrainConfig
    validation: str = "none"
    finetune: FineTuneConfig | None = None

    def __post_init__(self):
        if self.validation not in VALIDATIONS:
            raise TfaudioError(f"recipe {self.name!r}: validation must be one of {VALIDATIONS}, got "
                               f"{self.validation!r}.")

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "validation": self.validation, "head": self.head.to_dict(),
               "train": dataclasses.asdict(self.train)}
        if self.finetune is not None:
            out["finetune"] = dataclasses.asdict(self.finetune)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "the recipe") -> Recipe:
        try:
            train = dict(d.get("train") or {})
            known = {f.name for f in dataclasses.fields(TrainConfig)}
            unknown = sorted(set(train) - known)
            if unknown:
                raise ValueError(f"unknown training settings {unknown}; known: {sorted(known)}")
            finetune = d.get("finetune")
            if finetune is not None:
                known = {f.name for f in dataclasses.fields(FineTuneConfig)}
                unknown = sorted(set(finetune) - known)
                if unknown:
                    raise ValueError(f"unknown fine-tuning settings {unknown}; known: {sorted(known)}")
                finetune = FineTuneConfig(**finetune)
            return cls(str(d.get("name") or "custom"), HeadConfig.from_dict(d.get("head") or {}),
                       TrainConfig(**train), d.get("validation", "none"), finetune)
        except (TypeError, ValueError) as err:
            raise TfaudioError(f"{where}: not a valid recipe ({err}). Fix: write it with `tfaudio tune` or "
                               "Recipe.save().") from None

    def save(self, path: str | os.PathLike) -> pathlib.Path:
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recipe:
        path = pathlib.Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf8"))
        except (OSError, ValueError) as err:
            raise TfaudioError(f"{path}: cannot read the recipe ({err}). Fix: pass a recipe name "
                               f"({', '.join(RECIPE_NAMES)}) or a JSON file written by `tfaudio tune`.") from None
        return cls.from_dict(data, str(path))

    def replace(self, *, head: dict | None = None, train: dict | None = None, finetune: dict | None = None,
                **fields: Any) -> Recipe:
        """A copy with some head / training / fine-tuning settings changed (e.g. from command-line options)."""
        if finetune:
            fields["finetune"] = dataclasses.replace(self.finetune or FineTuneConfig(), **finetune)
        return dataclasses.replace(self, head=dataclasses.replace(self.head, **(head or {})),
                                   train=dataclasses.replace(self.train, **(train or {})), **fields)


def _recipes() -> dict[str, Recipe]:
    return {
        "default": Recipe(
            "default",
            HeadConfig(hidden_units=(1024,), dropout=0.5, input_dropout=0.2, standardize=True, silence_gate=True),
            TrainConfig(epochs=40, batch_size=128, learning_rate=1e-3, schedule="cosine", label_smoothing=0.1,
                        mixup=0.4),
            "none",
        ),
        "tutorial": Recipe(
            "tutorial",
            HeadConfig(hidden_units=(512,)),
            TrainConfig(epochs=20, batch_size=32, learning_rate=1e-3, schedule="constant", label_smoothing=0.0,
                        mixup=0.0, patience=3, monitor="loss", class_weight=None),
            "fold",
        ),
        "finetune": Recipe(
            "finetune",
            HeadConfig(hidden_units=(512,), pooling="embedding_mean", standardize=True),
            TrainConfig(epochs=20, batch_size=16, learning_rate=3e-3, schedule="cosine", label_smoothing=0.1,
                        mixup=0.3, class_weight="balanced"),
            "none",
            FineTuneConfig(),
        ),
    }


#: The recipes :func:`get_recipe` knows by name (``finetune``: the backbone trains too, ``tfaudio finetune``).
RECIPE_NAMES = ("default", "tutorial", "finetune")


def get_recipe(spec: str | os.PathLike | Recipe | None = None) -> Recipe:
    """A recipe by name (``"default"``, ``"tutorial"``), from a JSON file, or as given (None: default)."""
    if isinstance(spec, Recipe):
        return spec
    text = "default" if spec is None else os.fspath(spec)
    if text in RECIPE_NAMES:
        return _recipes()[text]
    if text.endswith(".json") or pathlib.Path(text).is_file():
        return Recipe.load(text)
    raise TfaudioError(f"unknown recipe {text!r}. Fix: use one of {', '.join(RECIPE_NAMES)} or a JSON file written by "
                       "`tfaudio tune`.")
