"""Batch scoring of an exported SavedModel over many files on Apache Beam, to JSON lines or CSV.

Graph::

    file list → Reshuffle → DecodeClip (→ dead letters)  decode, resample to the model's input rate
      → RunInference(SavedModel "batch" signature)      padded batches; model loaded once per worker
      → top-k labels (and the export's decision) → WriteToText (JSONL or CSV)

The model is a folder written by ``tfaudio export`` (``OUTPUT/saved_model``, or ``OUTPUT`` itself):
its ``batch`` signature takes ``audio`` [B, S] at the rate the export states in its
``assets/tfaudio.json`` and ``lengths`` [B]; the labels come from the same file, and so do a
multi-label export's per-class thresholds or a single-label export's rejection threshold: rows then
carry the decision of :func:`tfaudio.heads.decode.decide` (``labels``, ``none_of_these``), as
``tfaudio predict`` prints it. Output rows come in no particular order.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import pathlib
import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from tfaudio.beam._common import (
    DEAD,
    METRICS,
    DecodeClip,
    beam,
    counters,
    make_pipeline,
    pipeline_options,
    runner_name,
)
from tfaudio.beam.clips import ClipBatchesMixin, dead_letter
from tfaudio.beam.runners import finish, join_sinks, read_lines, run_inference, split_outputs
from tfaudio.data.pipeline import PipelineConfig
from tfaudio.errors import TfaudioError
from tfaudio.export.saved_model import decision_rule
from tfaudio.heads import decode
from tfaudio.inference.loader import describe_export, load_model
from tfaudio.io.atomic import atomic_write_text

FORMATS = ("jsonl", "csv")


class SavedModelHandler(ClipBatchesMixin, ModelHandler):
    """RunInference handler: prepared clips ``(audio, length)`` → clip scores float32 [classes], through
    the export's scorer (:func:`tfaudio.inference.load_model`, the same loader every command uses;
    loaded once per worker process).

    Args:
        path: the export's SavedModel folder.
        batch_size: clips per call.
        input_rate: the rate its input is at (for exports that do not state it).
    """

    def __init__(self, path: str, batch_size: int, input_rate: int | None = None):
        super().__init__()
        self.path = path
        self.batch_size = batch_size
        self.input_rate = input_rate

    def load_model(self):
        return load_model(self.path, input_rate=self.input_rate).scorer

    def run_inference(self, batch, model, inference_args=None):
        waves = [np.asarray(a[:n], np.float32) for a, n in batch]  # the valid samples of each clip
        return list(model.scores(waves, batch_size=len(waves)))  # B x [C]

    def get_metrics_namespace(self) -> str:
        return f"{METRICS}.predict"


class FormatRow(beam.DoFn):
    """``((tag, path, key), scores)`` → one JSON line ``{"file", "predictions": [{"label", "score"}],
    "scores": {label: score}}`` or one CSV row ``file,label_1,score_1,...``. With a decision rule
    (``rule``: :func:`~tfaudio.export.saved_model.decision_rule` of the export's metadata; or a background
    class among ``labels``) the JSON line
    adds ``"labels"`` and ``"none_of_these"``, the CSV row the columns ``labels`` (``;``-joined) and
    ``none_of_these``."""

    def __init__(self, labels: Sequence[str], k: int, fmt: str, rule: dict[str, Any] | None = None):
        self.labels = list(labels)
        self.k = k
        self.fmt = fmt
        self.rule = rule or {}

    def setup(self):
        from apache_beam.metrics import Metrics

        self.scored = Metrics.counter(METRICS, "clips_scored")

    def process(self, element):
        (_, path, _), scores = element
        scores = np.asarray(scores, np.float64)
        best = [{"label": t["label"], "score": round(t["score"], 6)} for t in decode.top_k(scores, self.labels, self.k)]
        decision = decode.decide(scores, self.labels, **self.rule)
        self.scored.inc()
        if self.fmt == "jsonl":
            yield json.dumps({"file": path, "predictions": best, **(decision or {}),
                              "scores": {lab: round(float(s), 6) for lab, s in zip(self.labels, scores)}})
        else:
            said = [";".join(decision["labels"]), str(decision["none_of_these"]).lower()] if decision else []
            yield csv_line([path] + [x for b in best for x in (b["label"], f"{b['score']:.6f}")] + said)


def csv_line(fields: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(fields)
    return buf.getvalue()


def _parse_file(line: str) -> tuple[None, str]:
    return None, json.loads(line)


def _dead_line(d):
    return dead_letter(d[1], d[2])


@dataclasses.dataclass
class PredictResult:
    """What :func:`run_predict` did: the output file, how many files were scored, and the bad files
    (in ``dead_letters`` and the JSON lines file ``dead_letters_path``)."""

    output: pathlib.Path
    dead_letters_path: pathlib.Path
    files: int
    scored: int
    dead_letters: list[tuple[str, str]]
    runner: str
    seconds: float

    def __str__(self) -> str:
        s = (f"{self.scored} of {self.files} files scored by {self.runner} in {self.seconds:.1f} s → {self.output}")
        if self.dead_letters:
            s += f"\n{len(self.dead_letters)} bad file(s) → dead letters {self.dead_letters_path}:"
            s += "".join(f"\n  {f}: {e}" for f, e in self.dead_letters[:20])
            if len(self.dead_letters) > 20:
                s += f"\n  ... and {len(self.dead_letters) - 20} more"
        return s


def dead_letters_path_for(output: pathlib.Path) -> pathlib.Path:
    return output.with_name(f"{output.stem}.dead_letters.jsonl")


def run_predict(
    model: str | os.PathLike,
    files: Sequence[str],
    output: str | os.PathLike,
    *,
    top_k: int = 3,
    fmt: str | None = None,
    input_rate: int | None = None,
    batch_size: int = 16,
    runner: str | None = None,
    options: Sequence[str] | dict[str, Any] | Any = None,
    backend: str = "auto",
) -> PredictResult:
    """Scores ``files`` with an exported SavedModel on Beam and writes one row per file to ``output``.

    Args:
        model: a ``tfaudio export`` folder (or its ``saved_model`` sub-folder).
        files: audio paths.
        output: the JSONL or CSV file to write (bad files go to ``<stem>.dead_letters.jsonl`` beside it).
        top_k: labels per file.
        fmt: "jsonl" or "csv" (default: from the output's extension, JSONL unless ``.csv``).
        input_rate: only for an export written before exports described themselves: the rate it takes
            (what ``tfaudio export --input-rate`` was). Current exports state it.
        batch_size: clips per model call.
        runner, options: the Beam runner and pass-through options (see ``pipeline_options``).
        backend: decoder backend for compressed formats.
    """
    t0 = time.perf_counter()
    saved_model, labels, input_rate, meta = describe_export(model, input_rate)
    rule = decision_rule(meta)
    decides = decode.decide(np.zeros(len(labels)), labels, **rule) is not None  # rows carry a decision
    if top_k < 1:
        raise TfaudioError(f"top_k must be >= 1, got {top_k}.")
    output = pathlib.Path(output)
    fmt = fmt or ("csv" if output.suffix.lower() == ".csv" else "jsonl")
    if fmt not in FORMATS:
        raise TfaudioError(f"unknown output format {fmt!r}. Fix: use one of {', '.join(FORMATS)}.")
    files = [os.fspath(f) for f in files]
    if not files:
        raise TfaudioError("no files to score. Fix: check the manifest, folder or file names you passed.")
    output.parent.mkdir(parents=True, exist_ok=True)
    dead_path = dead_letters_path_for(output)
    opts = pipeline_options(runner, options)
    file_list = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.files.jsonl")
    lines = [json.dumps(f) for f in files]
    atomic_write_text(file_list, "".join(line + "\n" for line in lines))
    k = min(top_k, len(labels))
    header = csv_line(["file"] + [x for i in range(1, k + 1) for x in (f"label_{i}", f"score_{i}")]
                      + (["labels", "none_of_these"] if decides else []))
    config = PipelineConfig(sample_rate=int(input_rate), backend=backend)
    try:
        p = make_pipeline(opts)
        todo = (read_lines(p, str(file_list), lines, runner_name(opts), "ReadFiles")
                | "ParseFiles" >> beam.Map(_parse_file)
                | "Spread" >> beam.Reshuffle())
        decoded, dead = split_outputs(todo, "Decode", DecodeClip(config, with_key=False), DEAD, runner_name(opts))
        rows = (run_inference(decoded, "Score", SavedModelHandler(str(saved_model), batch_size, input_rate), runner_name(opts),
                              len(files))
                | "Format" >> beam.ParDo(FormatRow(labels, k, fmt, rule))
                | "Write" >> beam.io.WriteToText(str(output), shard_name_template="",
                                                 header=header if fmt == "csv" else None))
        dead_letters = (dead
                        | "DeadLetterLines" >> beam.Map(_dead_line)
                        | "WriteDeadLetters" >> beam.io.WriteToText(str(dead_path), shard_name_template=""))
        join_sinks(rows, dead_letters)
        result = p.run()
        finish(result)
    finally:
        file_list.unlink(missing_ok=True)
    dead = [(r["file"], r["error"]) for r in map(json.loads, dead_path.read_text().splitlines()) if r]
    scored = counters(result, ["clips_scored"])["clips_scored"]
    if scored is None:
        scored = len(files) - len(dead)
    return PredictResult(output, dead_path, len(files), scored, dead, runner_name(opts), time.perf_counter() - t0)
