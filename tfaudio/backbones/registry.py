"""Backbones by name: one table that the CLI help, the loaders, ``tfaudio info`` and the demo read.

A backbone is one folder under ``tfaudio/backbones/`` whose ``__init__.py`` defines ``ENTRY``
(a :class:`BackboneEntry`), plus one line in :data:`BUILTIN` naming that folder. Code outside the
package (a plugin, a test) calls :func:`register_backbone` with an entry of its own instead.

Nothing here imports TensorFlow: an entry names its class as ``"module:Class"``, imported on first build.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

from tfaudio.backbones.entry import BackboneEntry, transformers_model_type
from tfaudio.errors import TfaudioError

__all__ = ["BUILTIN", "BackboneEntry", "register_backbone", "unregister_backbone", "entries", "names", "entry",
           "help_text", "is_backbone", "split_spec", "backbone_name", "backbone_spec", "spec_string", "entry_of",
           "get_backbone", "transformers_model_type"]

#: The built-in backbones, one folder each (``ENTRY`` in the folder's ``__init__.py``), in help order.
BUILTIN = (
    "tfaudio.backbones.yamnet",
    "tfaudio.backbones.efficientat",
    "tfaudio.backbones.speech_embedding",
    "tfaudio.backbones.wav2vec2",
    "tfaudio.backbones.whisper",
)


_ENTRIES: dict[str, BackboneEntry] = {}
_ALIASES: dict[str, str] = {}
_loaded = False


def register_backbone(entry: BackboneEntry, *, replace: bool = False) -> BackboneEntry:
    """Adds ``entry`` to the table (after the built-in ones). Returns it.

    Raises:
        TfaudioError: the name or an alias is taken (``replace=True`` replaces an entry of that name).
    """
    _load_builtin()
    return _add(entry, replace=replace)


def unregister_backbone(name: str) -> None:
    """Removes a registered entry (tests; plugins that unload)."""
    _load_builtin()
    entry = _ENTRIES.pop(name.lower(), None)
    if entry is not None:
        for alias in (entry.name, *entry.aliases):
            _ALIASES.pop(alias.lower(), None)


def _add(entry: BackboneEntry, *, replace: bool = False) -> BackboneEntry:
    names = [entry.name.lower(), *(a.lower() for a in entry.aliases)]
    for n in names:
        owner = _ALIASES.get(n)
        if owner is not None and not (replace and owner == entry.name.lower()):
            raise TfaudioError(f"backbone name {n!r} is taken by {owner!r}. Fix: choose another name, or "
                               "register_backbone(entry, replace=True) to replace that entry.")
    if replace and entry.name.lower() in _ENTRIES:
        unregister_backbone(entry.name)
    _ENTRIES[entry.name.lower()] = entry
    for n in names:
        _ALIASES[n] = entry.name.lower()
    return entry


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN:
        _add(importlib.import_module(module).ENTRY)


def entries() -> list[BackboneEntry]:
    """Every registered entry, built-in ones first, in table order."""
    _load_builtin()
    return list(_ENTRIES.values())


def names() -> tuple[str, ...]:
    """Every registered name and alias."""
    _load_builtin()
    return tuple(_ALIASES)


def entry(name: str) -> BackboneEntry:
    """The entry of ``name`` (or an alias).

    Raises:
        TfaudioError: unknown name (the message lists the known ones).
    """
    _load_builtin()
    key = _ALIASES.get(str(name).lower())
    if key is None:
        raise TfaudioError(f"unknown backbone {name!r}. Known: {', '.join(e.name for e in entries())}.")
    return _ENTRIES[key]


def help_text(*, tags_only: bool = False, default: str | None = "yamnet") -> str:
    """The ``--backbone`` help of every command: each entry's example and summary, from the table."""
    rows = [e for e in entries() if e.tags or not tags_only]
    parts = [f"{e.example}{' (default)' if default and e.name == default else ''}"
             + (f" [{e.summary}]" if e.summary else "") for e in rows]
    return "; ".join(parts)


def is_backbone(obj: Any) -> bool:
    """True for a backbone object (anything with an input ``contract`` and ``graph_outputs``)."""
    return hasattr(obj, "contract") and hasattr(obj, "graph_outputs")


def split_spec(text: str) -> tuple[str, str | None]:
    """``"efficientat:mn04_as"`` → ``("efficientat", "mn04_as")``; a bare path or hub id →
    (the entry that claims it, the path); a bare name → (name, None).

    Raises:
        TfaudioError: nothing claims a bare path.
    """
    text = os.fspath(text)
    name, _, source = text.partition(":")
    if name.lower() in names():
        return entry(name).name, (source or None)
    if os.path.exists(text) or "/" in text or "\\" in text:
        for e in entries():
            if e.claims is not None and e.claims(text):
                return e.name, text
        raise TfaudioError(f"{text}: no backbone recognises this path or id. Fix: name the backbone, e.g. "
                           f"{', '.join(e.example for e in entries())}.")
    return entry(name).name, None  # not a registered name: entry() raises, listing the known ones


def backbone_name(backbone: Any) -> str:
    """The registry name of a backbone object (its ``spec()["name"]``; else its class's entry)."""
    spec = backbone.spec() if hasattr(backbone, "spec") else {}
    if spec.get("name"):
        return str(spec["name"])
    for e in entries():
        if e.cls.rpartition(":")[2] == type(backbone).__name__:
            return e.name
    return type(backbone).__name__.replace("Backbone", "").lower()


def backbone_spec(backbone: Any) -> dict[str, Any]:
    """What :func:`get_backbone` needs to build ``backbone`` again."""
    if hasattr(backbone, "spec"):
        return dict(backbone.spec())
    source = getattr(backbone, "source", None)
    return {"name": backbone_name(backbone), "source": os.fspath(source) if isinstance(source, os.PathLike) else source}


def spec_string(backbone: Any) -> str:
    """``name`` or ``name:source`` of a backbone (what ``--backbone`` takes)."""
    spec = backbone_spec(backbone)
    return f"{spec['name']}:{spec['source']}" if spec.get("source") else str(spec["name"])


def entry_of(backbone: Any) -> BackboneEntry | None:
    """The registry entry of a backbone object, or None for an unregistered one."""
    try:
        return entry(backbone_name(backbone))
    except TfaudioError:
        return None


def get_backbone(spec: Any = "yamnet", **kwargs: Any):
    """A backbone from a name, a ``name:source`` string, a spec dict, or a backbone (returned as is).

    Examples: ``"yamnet"`` (weights found by YAMNetBackbone.from_pretrained), ``"yamnet:/path/yamnet.h5"``,
    ``"wav2vec2:facebook/wav2vec2-base"``, ``"hubert:/models/distilhubert"``, ``"whisper:openai/whisper-tiny"``,
    ``"efficientat"`` / ``"efficientat:mn10_as"`` (an EfficientAT release),
    ``"efficientat:/path/mn04_as_mAP_432.pt"`` or a bare ``.pt`` path,
    ``"speech-embedding"`` (Google's speech embedding model, found or downloaded), ``"speech-embedding:/folder"``
    (a folder with openWakeWord's ``embedding_model.tflite``),
    ``{"name": "wav2vec2", "source": "/models/w2v", "layer": 6}``. Every name: :func:`names`.
    """
    if is_backbone(spec):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        name, source = split_spec(os.fspath(spec))
        spec = {"name": name, "source": source}
    spec = {**spec, **kwargs}
    name = str(spec.pop("name", "yamnet"))
    source = spec.pop("source", None)
    return entry(name).create(source, **spec)
