"""Errors raised by tfaudio. Each names the file or value at fault and says how to fix it."""
from __future__ import annotations


class TfaudioError(Exception):
    """Base class of every error tfaudio raises on purpose."""


class AudioError(TfaudioError, ValueError):
    """A clip that cannot be used: missing, empty, corrupt, not audio, NaN samples, bad rate.

    Args:
        path: the file at fault (or ``"<array>"`` for in-memory audio).
        problem: what is wrong, with the expected and the actual value.
        fix: what the user can do about it.
    """

    def __init__(self, path: str, problem: str, fix: str = ""):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        msg = f"{self.path}: {problem}"
        if fix:
            msg += f" Fix: {fix}"
        super().__init__(msg)

    def __reduce__(self):  # picklable across processes (tf.data, Beam workers)
        return (type(self), (self.path, self.problem, self.fix))


class ManifestError(TfaudioError, ValueError):
    """A manifest, label, class or fold request that cannot be satisfied."""


class WeightsNotFoundError(TfaudioError, FileNotFoundError):
    """Pretrained weights could not be found or downloaded; the message lists what was tried."""
