"""tfaudio's messages (one clear line each) and TensorFlow's log noise.

Warnings go to the ``tfaudio`` logger as one line (never Python's ``warnings`` module, which prints
tfaudio's source line instead of the message): in a program without logging set up, Python prints the
message itself on stderr; the CLI prints ``tfaudio: warning: <message>`` (:func:`cli_handler`). :func:`quiet_tensorflow` hides TensorFlow's C++/absl start-up lines (CUDA,
oneDNN, cuDNN factories) and converter chatter; the CLI calls it unless ``--verbose``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys

__all__ = ["logger", "warn", "info", "cli_handler", "quiet_tensorflow", "native_stderr_silenced", "verbose"]

logger = logging.getLogger("tfaudio")


class _Format(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "warning: " if record.levelno >= logging.WARNING else ""
        return f"tfaudio: {level}{record.getMessage()}"


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (tests and notebooks swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def cli_handler() -> None:
    """Print tfaudio's messages as ``tfaudio: warning: ...`` / ``tfaudio: ...`` lines on stderr (the CLI)."""
    if not any(getattr(h, "_tfaudio", False) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(_Format())
        handler._tfaudio = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def warn(message: str) -> None:
    """One warning line naming what is wrong (a skipped file, a padded clip, a re-extracted shard)."""
    logger.warning(message)


def info(message: str) -> None:
    """One information line (printed by the CLI; silent in a library unless logging is set to INFO)."""
    logger.info(message)


def verbose() -> bool:
    """Whether TensorFlow's own output was asked for (``tfaudio --verbose`` / ``TFAUDIO_VERBOSE=1``)."""
    return os.environ.get("TFAUDIO_VERBOSE", "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def native_stderr_silenced():
    """Hide what C++ code writes to file descriptor 2 meanwhile (the TFLite converter's absl log lines,
    which no TensorFlow setting silences), unless :func:`verbose`. Python's own ``sys.stderr`` is
    untouched; errors still arrive as exceptions."""
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (an embedded interpreter): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def quiet_tensorflow(verbose: bool = False) -> None:
    """Hide TensorFlow's log noise unless ``verbose``.

    Before TensorFlow is imported this sets ``TF_CPP_MIN_LOG_LEVEL=3`` (C++ info/warning/error lines:
    CUDA, cuDNN, oneDNN notices) and ``GRPC_VERBOSITY``/``GLOG_minloglevel``; afterwards it lowers the
    Python loggers of TensorFlow and absl. A user's own settings of these variables are kept.
    """
    if verbose:
        os.environ["TFAUDIO_VERBOSE"] = "1"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    for name, value in (("TF_CPP_MIN_LOG_LEVEL", "3"), ("GRPC_VERBOSITY", "ERROR"), ("GLOG_minloglevel", "3")):
        os.environ.setdefault(name, value)
    for name in ("tensorflow", "absl", "h5py", "jax", "transformers", "apache_beam", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import absl.logging  # here: quieting must not import TensorFlow (absl comes with it)

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass
