"""One place that gives a TFLite interpreter: LiteRT, else tflite-runtime, else TensorFlow's own.

LiteRT (``ai-edge-litert``) is the successor of ``tflite-runtime`` (which stopped at 2.14 and Python
3.11); TensorFlow's ``tf.lite.Interpreter`` is deprecated in its favour but always present. Every
test, benchmark and command that runs a ``.tflite`` file calls :func:`tflite_interpreter`.
"""
from __future__ import annotations

import importlib
import os
from typing import Any

from tfaudio.errors import TfaudioError

__all__ = ["tflite_interpreter", "interpreter_backend", "BACKENDS"]

#: Import paths of the interpreter classes, in order of preference.
BACKENDS = (
    ("ai-edge-litert", "ai_edge_litert.interpreter"),
    ("tflite-runtime", "tflite_runtime.interpreter"),
    # tf.lite.Interpreter's own module: "tensorflow.lite" imported by path is the source package,
    # not the tf.lite API, and has no Interpreter.
    ("tensorflow", "tensorflow.lite.python.interpreter"),
)


def _interpreter_class(prefer: str | None = None) -> tuple[str, Any]:
    prefer = prefer or os.environ.get("TFAUDIO_TFLITE_BACKEND") or None
    tried = []
    for name, module in BACKENDS:
        if prefer and name != prefer:
            continue
        try:
            return name, importlib.import_module(module).Interpreter
        except (ImportError, AttributeError) as err:
            tried.append(f"{name} ({type(err).__name__}: {err})")

    raise TfaudioError("no TFLite interpreter could be imported: " + "; ".join(tried)
                       + ". Fix: pip install ai-edge-litert (or 'tfaudio[tflite]').")


def interpreter_backend(prefer: str | None = None) -> str:
    """The package :func:`tflite_interpreter` uses: ``"ai-edge-litert"``, ``"tflite-runtime"`` or
    ``"tensorflow"`` (``$TFAUDIO_TFLITE_BACKEND`` or ``prefer`` picks one)."""
    return _interpreter_class(prefer)[0]


def tflite_interpreter(model_path: str | os.PathLike | None = None, *, model_content: bytes | None = None,
                       num_threads: int | None = None, prefer: str | None = None, allocate: bool = True,
                       default_delegates: bool = True, **kwargs: Any):
    """A TFLite ``Interpreter`` for a file or for bytes, with tensors allocated (unless ``allocate=False``).

    Args:
        model_path: a ``.tflite`` file.
        model_content: the model's bytes (instead of ``model_path``).
        num_threads: interpreter threads (None: the runtime's default).
        prefer: ``"ai-edge-litert"``, ``"tflite-runtime"`` or ``"tensorflow"`` to force one.
        allocate: call ``allocate_tensors()``; False for a model whose default input shape cannot be
            allocated (e.g. ``[1, 1]`` samples for a frontend that needs a window): resize first.
        default_delegates: False runs the builtin kernels only (no XNNPack). LiteRT and TF >= 2.18
            hand dynamic-range (hybrid int8) ops to XNNPack, whose arithmetic differs from the
            builtin kernels by up to ~0.07 in YAMNet's scores; tflite-runtime 2.14 did not.
        **kwargs: passed to the interpreter (e.g. ``experimental_preserve_all_tensors=True``).

    Example:
        >>> it = tflite_interpreter("model_int8.tflite", num_threads=1)
        >>> it.set_tensor(it.get_input_details()[0]["index"], window[None]); it.invoke()
    """
    name, cls = _interpreter_class(prefer)
    if not default_delegates:
        resolver = importlib.import_module(dict(BACKENDS)[name]).OpResolverType
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if model_path is not None:
        kwargs["model_path"] = os.fspath(model_path)
    if model_content is not None:
        kwargs["model_content"] = model_content
    if num_threads is not None:
        kwargs["num_threads"] = int(num_threads)
    interpreter = cls(**kwargs)
    if allocate:
        interpreter.allocate_tensors()
    return interpreter
