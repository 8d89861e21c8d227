"""Lazy attribute export: a package names its public API without importing TensorFlow up front."""
from __future__ import annotations

import importlib
from typing import Any


def lazy_exports(package: str, table: dict[str, str]):
    """Returns ``(__getattr__, __dir__)`` for a package whose names live in submodules.

    Args:
        package: the package's ``__name__``.
        table: public name → submodule (relative, e.g. ``".resample"``).
    """

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(table[name], package), name)
        globals_ = importlib.import_module(package).__dict__
        globals_[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(table)

    return __getattr__, __dir__
