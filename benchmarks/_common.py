"""Shared bits of the benchmark scripts: BENCHMARKS.md sections, peak memory, the machine."""
from __future__ import annotations

import os
import pathlib
import platform
import re
import resource
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCHMARKS = ROOT / "BENCHMARKS.md"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of BENCHMARKS.md, leaving the others alone."""
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n\nFigures written by the scripts in `benchmarks/`; each script owns one section.\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    tmp = BENCHMARKS.with_suffix(".md.tmp")
    tmp.write_text(text.rstrip() + "\n")
    os.replace(tmp, BENCHMARKS)


def shared_dir() -> pathlib.Path:
    from tfaudio.datasets import shared_dir as find

    d = find()
    if d is None:
        sys.exit("benchmarks need ../shared (see ../shared/ASSETS.md)")
    return d
