"""Where data and weights come from: local copies first (../shared, the cache), downloads last.

Downloads are atomic (a temporary file renamed into place), cached under ``$TFAUDIO_CACHE`` (default
``~/.cache/tfaudio``), verified against a SHA-256 when one is known, and refused when
``TFAUDIO_OFFLINE=1``. For archives without a published checksum (ESC-50 is served from a moving
branch), the SHA-256 of the first download is recorded beside it and checked on every later use.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import urllib.request
import uuid
import zipfile

from tqdm.auto import tqdm

from tfaudio.errors import TfaudioError

ESC50_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def is_offline() -> bool:
    return os.environ.get("TFAUDIO_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("TFAUDIO_CACHE") or pathlib.Path.home() / ".cache" / "tfaudio")


def shared_dir() -> pathlib.Path | None:
    """The project's ``../shared`` assets folder (or ``$TFAUDIO_SHARED``), when present."""
    env = os.environ.get("TFAUDIO_SHARED")
    for candidate in ([pathlib.Path(env)] if env else []) + [REPO_ROOT.parent / "shared", pathlib.Path.cwd().parent / "shared"]:
        if candidate.is_dir():
            return candidate
    return None


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, dest: str | os.PathLike, *, sha256: str | None = None, progress: bool = True) -> pathlib.Path:
    """Download ``url`` to ``dest`` atomically, unless a verified copy is already there.

    Args:
        url: what to download.
        dest: the file to create.
        sha256: the expected checksum; None records the first download's checksum in
            ``<dest>.sha256`` and checks later uses against it.
    """
    dest = pathlib.Path(dest)
    record = dest.with_name(dest.name + ".sha256")
    expected = sha256 or (record.read_text().strip() if record.is_file() else None)
    if dest.is_file():
        actual = sha256_of(dest)
        if expected is None or actual == expected:
            return dest
        dest.unlink()  # damaged or replaced: fetch again
    if is_offline():
        raise TfaudioError(f"{dest} is not cached and TFAUDIO_OFFLINE=1 forbids downloading {url}. "
                           f"Fix: put a copy at {dest} or unset TFAUDIO_OFFLINE.")

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
        actual = sha256_of(tmp)
        if expected is not None and actual != expected:
            raise TfaudioError(f"{url}: checksum {actual} does not match the expected {expected}. "
                               f"Fix: retry; if it persists the file changed upstream.")
        os.replace(tmp, dest)
        if sha256 is None and not record.is_file():
            record.write_text(actual + "\n")
    except OSError as err:
        raise TfaudioError(f"could not download {url} ({err}). Fix: check the network, or put a copy at {dest}.") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def esc50(root: str | os.PathLike | None = None, *, download: bool = True) -> pathlib.Path:
    """The ESC-50 folder (with ``meta/esc50.csv`` and ``audio/``).

    Looks in: ``root``; ``$TFAUDIO_ESC50``; ``../shared/data/esc50-subset``; the cache; then downloads
    the official archive into the cache (unless offline).
    """
    tried = []
    candidates = [root, os.environ.get("TFAUDIO_ESC50")]
    shared = shared_dir()
    if shared:
        candidates.append(shared / "data" / "esc50-subset")
    candidates.append(cache_dir() / "datasets" / "ESC-50-master")
    for c in candidates:
        if c is None:
            continue
        c = pathlib.Path(c)
        tried.append(str(c))
        if (c / "meta" / "esc50.csv").is_file():
            return c
    if not download or is_offline():
        raise TfaudioError("ESC-50 was not found (looked in: " + ", ".join(tried) + "). Fix: pass its folder, "
                           "set TFAUDIO_ESC50, or allow the download (unset TFAUDIO_OFFLINE).")
    target = cache_dir() / "datasets"
    archive = fetch(ESC50_URL, target / "ESC-50-master.zip")
    tmp = target / f".extract-{uuid.uuid4().hex[:8]}"
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        os.replace(tmp / "ESC-50-master", target / "ESC-50-master")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = target / "ESC-50-master"
    (out / "tfaudio-source.json").write_text(json.dumps({"url": ESC50_URL, "sha256": sha256_of(archive)}))
    return out
