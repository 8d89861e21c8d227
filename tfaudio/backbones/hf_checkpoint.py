"""Transformers checkpoints for tfaudio's backbones (Wav2Vec2/HuBERT, Whisper): where they come from and how
they load.

A checkpoint is a folder written by ``save_pretrained`` or a Hugging Face hub id. Hub ids go through the
Hugging Face cache (``cache_dir``, else ``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``);
with ``$HF_HUB_OFFLINE`` / ``$TRANSFORMERS_OFFLINE`` / ``$TFAUDIO_OFFLINE`` set, or
``local_files_only=True``, nothing is downloaded. Every failure is a
:class:`~tfaudio.errors.WeightsNotFoundError` or :class:`~tfaudio.errors.TfaudioError` that says what
was tried and how to fix it.

Example:
    >>> src = CheckpointSource.resolve("openai/whisper-tiny", example="whisper:openai/whisper-tiny")
    >>> config = src.config()
    >>> model = src.load_model(transformers.TFWhisperModel, config)
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import pathlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from tfaudio.errors import TfaudioError, WeightsNotFoundError

__all__ = ["CheckpointSource", "check_layer", "config_weights_digest", "hf_cache_dir", "offline_env"]

_TRUE = ("1", "true", "yes", "on")


def offline_env() -> bool:
    """True when ``$HF_HUB_OFFLINE``, ``$TRANSFORMERS_OFFLINE`` or ``$TFAUDIO_OFFLINE`` is set (1/true/yes/on)."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TFAUDIO_OFFLINE"))


def hf_cache_dir() -> pathlib.Path:
    """Where huggingface_hub keeps downloads, read from the environment now (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return pathlib.Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return pathlib.Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".cache") / "huggingface" / "hub"


def looks_like_path(source: str) -> bool:
    """A source that can only be a folder (a hub id is ``name`` or ``owner/name``)."""
    return (source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1
            or os.path.isabs(source))


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def check_layer(layer: Any, num_layers: int) -> str | int:
    """A backbone's ``layer`` argument, checked: ``"last"``, ``"weighted"`` or an int hidden-state index
    (``"3"`` is read as 3; negative counts from the end) → ``"last"``, ``"weighted"`` or ``0..num_layers``.

    Raises:
        TfaudioError: an index out of range or another value.
    """
    if isinstance(layer, str) and layer.lstrip("-").isdigit():
        layer = int(layer)
    if layer in ("last", "weighted"):
        return layer
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        if -(num_layers + 1) <= layer <= num_layers:
            return int(layer) % (num_layers + 1)
        raise TfaudioError(f"layer={layer} is out of range: this model has hidden states 0..{num_layers} "
                           f"(0 = transformer input, {num_layers} = last layer).")
    raise TfaudioError(f"layer must be 'last', 'weighted' or an int, got {layer!r}.")


def config_weights_digest(prefix: str, config: dict[str, Any], settings: dict[str, Any], weights: Iterable[Any]) -> str:
    """``prefix-`` + 16 hex digits of sha256 over ``config``, ``settings`` (JSON, sorted keys) and every
    weight's shape and value in order (names aside: they depend on Keras' naming counters)."""
    digest = hashlib.sha256(json.dumps([config, settings], sort_keys=True, default=str).encode())
    for w in weights:
        value = np.ascontiguousarray(np.asarray(w))
        digest.update(str(value.shape).encode())
        digest.update(value.tobytes())
    return f"{prefix}-{digest.hexdigest()[:16]}"


@dataclasses.dataclass(frozen=True)
class CheckpointSource:
    """A checkpoint to load: a local folder or a hub id through the Hugging Face cache.

    Build it with :meth:`resolve`, then read :meth:`config`, :meth:`feature_extractor` and
    :meth:`load_model`; their errors all say what was tried (:attr:`where`) and how to fix it (:attr:`fix`).

    Args:
        source: what the user gave (kept for specs and messages).
        load_from: the folder's path or the hub id handed to transformers.
        local: ``load_from`` is a local folder.
        offline: nothing may be downloaded (cache only).
        cache: the Hugging Face cache folder.
        where: what is tried, for messages.
        fix: how to fix a missing checkpoint, for messages.
    """

    source: str
    load_from: str
    local: bool
    offline: bool
    cache: pathlib.Path
    where: str
    fix: str

    @classmethod
    def resolve(cls, model_id_or_path: str | os.PathLike, *, example: str, cache_dir: str | os.PathLike | None = None,
                local_files_only: bool | None = None) -> CheckpointSource:
        """Decides between a local folder and a hub id.

        Args:
            model_id_or_path: a folder written by ``save_pretrained`` or a hub id.
            example: a hub id to show in messages (e.g. ``"facebook/wav2vec2-base"``).
            cache_dir: the Hugging Face cache (None: the environment's, see :func:`hf_cache_dir`).
            local_files_only: never download (None: True when :func:`offline_env`).

        Raises:
            WeightsNotFoundError: ``model_id_or_path`` is a file, or a path that does not exist.
        """
        source = os.fspath(model_id_or_path)
        offline = offline_env() if local_files_only is None else bool(local_files_only)
        cache = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else hf_cache_dir()
        path = pathlib.Path(source).expanduser()
        local = path.is_dir()
        fix = (f"Fix: pass a folder that has config.json and model.safetensors or tf_model.h5 (e.g. written by "
               f"model.save_pretrained(folder) and feature_extractor.save_pretrained(folder)), or a hub id such as "
               f"'{example}' with network access (unset HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE / "
               f"TFAUDIO_OFFLINE), or download it once with `huggingface-cli download <id>` into {cache}.")
        if not local and (path.exists() or looks_like_path(source)):
            what = "a file, not a folder" if path.exists() else "no such folder"
            raise WeightsNotFoundError(f"{source}: {what}. Tried: the local folder {path.resolve()}. {fix}")
        where = f"the local folder {path.resolve()}" if local else (
            f"the Hugging Face hub id {source!r} in the cache {cache}" + (" (offline: cache only)" if offline else ""))
        return cls(source=source, load_from=str(path) if local else source, local=local, offline=offline,
                   cache=cache, where=where, fix=fix)

    @property
    def kwargs(self) -> dict[str, Any]:
        """``cache_dir`` and ``local_files_only`` for transformers' ``from_pretrained``."""
        return {"cache_dir": str(self.cache), "local_files_only": self.offline}

    def config(self):
        """The checkpoint's ``config.json`` through ``transformers.AutoConfig``.

        Raises:
            WeightsNotFoundError: no config found (not in the folder, not in the cache while offline,
                no such hub id).
        """
        import transformers

        try:
            return transformers.AutoConfig.from_pretrained(self.load_from, **self.kwargs)
        except (OSError, ValueError) as err:
            raise WeightsNotFoundError(f"{self.source}: no model config (config.json) found. Tried: {self.where}. "
                                       f"transformers said: {err} {self.fix}") from err

    def feature_extractor(self, extractor_cls):
        """The checkpoint's ``preprocessor_config.json`` read by ``extractor_cls``, or None without one."""
        try:
            return extractor_cls.from_pretrained(self.load_from, **self.kwargs)
        except (OSError, ValueError):
            return None

    def load_model(self, model_cls, config, from_pt: bool | None = None, *,
                   ignore_missing: Callable[[str], bool] = lambda name: False):
        """``model_cls.from_pretrained`` with what tfaudio needs to know when it fails.

        Weights are read in this order: ``model.safetensors`` (TF or PyTorch layout: no torch needed),
        ``tf_model.h5``, then PyTorch ``pytorch_model.bin`` (needs torch).

        Args:
            model_cls: a transformers TF model class (e.g. ``TFWhisperModel``).
            config: the checkpoint's config (:meth:`config`).
            from_pt: True: PyTorch weights (needs torch); False: TF/safetensors only; None: TF or
                safetensors if present, else PyTorch when torch is installed.
            ignore_missing: weights the checkpoint may lack without harm, by name with "/" separators
                (e.g. ``"decoder" in name``: a decoder the backbone never runs); any other missing weight
                is an error (it would stay random).

        Raises:
            WeightsNotFoundError: no usable weights, or weights the model needs are missing.
            TfaudioError: only PyTorch weights and torch is not installed.
        """
        def pt_hint(reason):
            return TfaudioError(
                f"{self.source}: {reason}, and loading PyTorch weights needs torch, which is not installed. "
                f"Fix: pip install torch (CPU wheels are enough), or give TF weights: a folder with "
                f"model.safetensors or tf_model.h5 (e.g. convert once where torch is installed with "
                f"TF{model_cls.__name__[2:]}.from_pretrained(src, from_pt=True).save_pretrained(dst)).")

        if from_pt and not torch_available():
            raise pt_hint("from_pt=True asks for PyTorch weights")
        attempts = [bool(from_pt)] if from_pt is not None else [False]
        errors = []
        for pt in attempts:
            try:
                try:
                    model, info = model_cls.from_pretrained(self.load_from, config=config, from_pt=pt,
                                                            output_loading_info=True, **self.kwargs)
                except TypeError as err:
                    if pt or "safe_open" not in str(err):
                        raise
                    model, info = self._load_pytorch_safetensors(model_cls, config)
                break
            except OSError as err:
                errors.append(f"{'PyTorch' if pt else 'TF/safetensors'} weights: {err}")
                only_pt = "pytorch" in str(err).lower() and "from_pt" in str(err)
                if from_pt is None and not pt and only_pt:
                    if not torch_available():
                        raise pt_hint("it only has PyTorch weights (pytorch_model.bin)") from err
                    attempts.append(True)
                    continue
        else:
            raise WeightsNotFoundError(f"{self.source}: no usable weights. Tried: {self.where}; "
                                       + "; ".join(errors) + f" {self.fix}")
        # TF names ("model/encoder/layers.0/fc1/kernel:0") or, from PyTorch weights, PyTorch ones
        # ("model.encoder.layers.0.fc1.weight"): ignore_missing sees both with "/" separators
        missing = [k for k in info.get("missing_keys", []) if not ignore_missing(k.replace(".", "/"))]
        if missing:
            raise WeightsNotFoundError(
                f"{self.source}: the weights file lacks {len(missing)} of the model's weights (e.g. "
                f"{', '.join(sorted(missing)[:3])}), so they would be random. Tried: {self.where}. Fix: check that "
                f"the checkpoint is a {config.model_type} base model of this config.")
        return model

    def _load_pytorch_safetensors(self, model_cls, config):
        """A ``model.safetensors`` in PyTorch layout (the hub's usual file) into a TF model, without torch.

        transformers 4.57's TF loader iterates over the open safetensors file, which safetensors >= 0.7
        no longer allows ("TypeError: 'builtins.safe_open' object is not iterable"); this runs the same
        conversion (``load_pytorch_state_dict_in_tf2_model``) on an iterable view of the file.

        Returns:
            (model, loading info with ``missing_keys``) like ``from_pretrained(output_loading_info=True)``.
        """
        from safetensors import safe_open
        from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model
        from transformers.utils import cached_file

        try:
            files = [cached_file(self.load_from, "model.safetensors", **self.kwargs)]
        except OSError:
            index = cached_file(self.load_from, "model.safetensors.index.json", **self.kwargs)
            shards = sorted(set(json.loads(pathlib.Path(index).read_text())["weight_map"].values()))
            files = [cached_file(self.load_from, shard, **self.kwargs) for shard in shards]
        model = model_cls(config)
        model.build_in_name_scope()
        missing = None
        for file in files:
            with safe_open(file, framework="tf") as archive:
                _, info = load_pytorch_state_dict_in_tf2_model(model, _IterableArchive(archive), tf_inputs=False,
                                                               allow_missing_keys=True, output_loading_info=True)
            # missing only if missing from every shard
            missing = set(info["missing_keys"]) if missing is None else missing & set(info["missing_keys"])
        return model, {"missing_keys": sorted(missing or ())}


class _IterableArchive:
    """An open safetensors file that iterates over its tensor names (what transformers' loader expects)."""

    def __init__(self, archive):
        self._archive = archive

    def __iter__(self):
        return iter(self._archive.keys())

    def get_tensor(self, name: str):
        return self._archive.get_tensor(name)
