"""What the registry holds about one backbone family (:class:`BackboneEntry`), and the helpers the
entries' path sniffers share. Imports nothing heavy: each backbone folder's ``__init__`` builds its entry."""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pathlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from tfaudio.errors import TfaudioError


@dataclasses.dataclass(frozen=True)
class BackboneEntry:
    """One backbone family in the registry.

    Args:
        name: the registry name (``spec()["name"]``, the part before ``:`` in a spec string).
        cls: ``"module:Class"`` of a :class:`~tfaudio.backbones.backbone.Backbone` subclass whose
            ``from_pretrained(source, **kwargs)`` builds it.
        example: how to name it on the command line (help lists), e.g. ``"efficientat:mn04_as"``.
        summary: a few words for help lists.
        aliases: more names for the same entry.
        needs_source: True when the name alone is not enough (a model id or folder must follow ``:``).
        claims: ``claims(text) -> bool``: True when a bare path or hub id (no ``name:``) is this
            backbone's weights (``.h5`` for YAMNet, ``.pt`` for EfficientAT, a transformers folder by
            its ``config.json``); entries are asked in table order.
        presets: ``presets() -> names`` of the sources that need no path (EfficientAT releases).
        tags: True when the backbone has classes of its own (``tfaudio tag``, AudioSet).
        build: optional ``build(source, **kwargs)`` used instead of ``cls.from_pretrained``.
        engines: the extraction engines that can run this backbone (:mod:`tfaudio.backbones.engines`;
            ``float32`` always).
        auto_engine: what ``--engine auto`` runs on a CPU with native bfloat16 (``bfloat16`` where that
            was measured faster with the same downstream accuracy), else ``float32``.
        cost_model: how ``tfaudio info`` counts MACs: ``"graph"`` (TensorFlow's statistics of the traced
            graph, any backbone) or ``"patches"`` (a Keras ``body`` run once per log-mel patch of
            ``params.frontend``: counted layer by layer, with activation memory).
    """

    name: str
    cls: str
    example: str
    summary: str = ""
    aliases: tuple[str, ...] = ()
    needs_source: bool = False
    claims: Callable[[str], bool] | None = None
    presets: Callable[[], Sequence[str]] | None = None
    tags: bool = False
    build: Callable[..., Any] | None = None
    cost_model: str = "graph"
    engines: tuple[str, ...] = ("float32",)
    auto_engine: str = "float32"

    def backbone_class(self) -> type:
        module, _, attr = self.cls.partition(":")
        return getattr(importlib.import_module(module), attr)

    def create(self, source: str | None, **kwargs: Any):
        if self.needs_source and not source:
            raise TfaudioError(f"the {self.name} backbone needs a model id or folder, e.g. '{self.example}'")
        if self.build is not None:
            return self.build(source, **kwargs)
        return self.backbone_class().from_pretrained(source, **kwargs)


def is_hub_id(text: str) -> bool:
    """``org/name`` (a model hub id, not a local path): one slash, no leading ``/``, ``.`` or ``~``."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", text) is not None and not os.path.exists(text)


def transformers_config(path: str | os.PathLike) -> dict[str, Any] | None:
    """A transformers folder's ``config.json`` (a dict with ``model_type``), or None (no folder, no
    config, not transformers')."""
    config = pathlib.Path(path) / "config.json"
    try:
        cfg = json.loads(config.read_text(encoding="utf8"))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) and "model_type" in cfg else None


def transformers_model_type(path: str | os.PathLike) -> str | None:
    """``model_type`` of a transformers folder's ``config.json``, or None."""
    cfg = transformers_config(path)
    return cfg["model_type"] if cfg else None
