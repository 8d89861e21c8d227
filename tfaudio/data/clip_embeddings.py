"""What a head trains on: the cached embeddings of a manifest's clips (:class:`ClipEmbeddings`), and
what an extraction did (:class:`ExtractionReport`)."""
from __future__ import annotations

import dataclasses

import numpy as np

from tfaudio.signal.frame_energy import silence_gate

__all__ = ["ClipEmbeddings", "ExtractionReport"]


@dataclasses.dataclass
class ClipEmbeddings:
    """Embeddings of the clips of a manifest, in manifest order (bad clips left out).

    Attributes:
        embeddings: one float32 [frames, dim] array per clip.
        targets: int32 [clips] class index (from the manifest's label list).
        rows: int [clips] row of each clip in the manifest.
        folds: int [clips] fold (-1 when none).
        energies: one float32 [frames] array per clip, each frame's energy in dB (None for a clip cached
            without them: all its frames count as sound).
    """

    embeddings: list[np.ndarray]
    targets: np.ndarray
    rows: np.ndarray
    folds: np.ndarray
    energies: list[np.ndarray | None] | None = None

    def __len__(self) -> int:
        return len(self.embeddings)

    def gates(self) -> list[np.ndarray]:
        """Per clip, bool [frames]: the frames :func:`~tfaudio.signal.frame_energy.silence_gate` keeps
        (every frame of a clip without energies)."""
        out = []
        for i, emb in enumerate(self.embeddings):
            db = self.energies[i] if self.energies is not None else None
            if db is None or len(db) != len(emb) or not len(emb):
                out.append(np.ones(len(emb), bool))
            else:
                out.append(np.asarray(silence_gate(np.asarray(db, np.float32)[None]))[0])
        return out

    def frames(self, *, gate: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame-level arrays: (embeddings [N, dim], targets [N], clip index [N]) — one record per
        frame carrying its clip's label, as in the YAMNet transfer-learning tutorial; with ``gate``
        only the frames the silence gate keeps (silence does not carry its clip's label)."""
        keep = self.gates() if gate else [np.ones(len(e), bool) for e in self.embeddings]
        counts = np.array([int(k.sum()) for k in keep])
        x = np.concatenate([e[k] for e, k in zip(self.embeddings, keep)]).astype(np.float32, copy=False)
        return x, np.repeat(self.targets, counts, axis=0), np.repeat(np.arange(len(self)), counts)

    def subset(self, mask: np.ndarray) -> ClipEmbeddings:
        idx = np.flatnonzero(mask)
        energies = [self.energies[i] for i in idx] if self.energies is not None else None
        return ClipEmbeddings([self.embeddings[i] for i in idx], self.targets[idx], self.rows[idx], self.folds[idx],
                              energies)


@dataclasses.dataclass
class ExtractionReport:
    total: int
    cached: int
    extracted: int
    skipped: list[tuple[str, str]]

    def __str__(self) -> str:
        s = f"{self.total} clips: {self.cached} from the cache, {self.extracted} extracted"
        if self.skipped:
            s += f", {len(self.skipped)} skipped:\n" + "\n".join(f"  {p}: {why}" for p, why in self.skipped)
        return s
