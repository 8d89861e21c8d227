"""Pieces shared by the Beam jobs: the decode step with its dead-letter output, pipeline options and
metrics. Importing this module imports Beam (an error says how to install it)."""
from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from tfaudio.beam.clips import prepare_clip
from tfaudio.beam.files import local_copy
from tfaudio.data.pipeline import PipelineConfig
from tfaudio.errors import AudioError, TfaudioError

try:
    import apache_beam as beam
except ImportError as _err:
    raise TfaudioError(
        f"the Beam jobs need Apache Beam ({_err}). Fix: pip install 'tfaudio[beam]' "
        "(or pip install -c constraints.txt 'apache-beam>=2.70,<2.71')."
    ) from None

#: Beam metrics namespace of every tfaudio counter.
METRICS = "tfaudio"
#: Tag of the dead-letter output of :class:`DecodeClip`.
DEAD = "dead_letters"


def pipeline_options(runner: str | None, options: Sequence[str] | dict[str, Any] | Any = None):
    """Beam ``PipelineOptions`` from a runner name and pass-through options.

    Args:
        runner: "DirectRunner", "PortableRunner", "DataflowRunner", "FlinkRunner", "SparkRunner",
            "DaskRunner"... (None: DirectRunner).
        options: command-line style flags (``["--direct_num_workers=2", "--project=p"]``), a dict
            (``{"direct_num_workers": 2, "direct_running_mode": "multi_processing"}``) or a
            ``PipelineOptions`` (used as is, ``runner`` set on it when given).
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    if isinstance(options, PipelineOptions):
        if runner:
            options.view_as(StandardOptions).runner = runner
        return options
    flags, kwargs = [], {}
    if isinstance(options, dict):
        kwargs = dict(options)
    elif options:
        flags = list(options)
    opts = PipelineOptions(flags, **kwargs)
    std = opts.view_as(StandardOptions)
    if runner or not std.runner:
        std.runner = runner or "DirectRunner"
    return opts


def quiet_workers(flags: Sequence[str]) -> list[str]:
    """``flags`` plus ``--default_sdk_harness_log_level=WARNING`` unless they set it: the command line
    shows the workers' warnings, not their INFO chatter."""
    flags = list(flags)
    if not any(f.startswith("--default_sdk_harness_log_level") for f in flags):
        flags.append("--default_sdk_harness_log_level=WARNING")
    return flags


def make_pipeline(options):
    """A ``beam.Pipeline`` for ``options``.

    For the DirectRunner it is built on the runner the DirectRunner itself uses for batch pipelines
    (the FnApiRunner, with the same provision info): Beam 2.70's DirectRunner first tries the Prism
    runner, which downloads a binary from GitHub (a network call on every job, and a leaked temporary
    folder when offline) and does not honour ``direct_running_mode``. The DaskRunner goes through
    :func:`tfaudio.beam.runners.dask_pipeline`; other runners are used as given.
    """
    from tfaudio.beam.runners import dask_pipeline, is_dask

    if is_dask(runner_name(options)):
        return dask_pipeline(options)
    if runner_name(options) not in ("DirectRunner", "direct"):
        return beam.Pipeline(options=options)
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return beam.Pipeline(runner=fn_runner.FnApiRunner(provision_info=provision), options=options)


def runner_name(options) -> str:
    from apache_beam.options.pipeline_options import StandardOptions

    return str(options.view_as(StandardOptions).runner)


class DecodeClip(beam.DoFn):
    """``(tag, path)`` → ``((tag, path, key), (audio, length))`` with the clip prepared by
    :func:`~tfaudio.beam.clips.prepare_clip` (a ``gs://``-style path read through Beam's ``FileSystems``,
    :func:`~tfaudio.beam.files.local_copy`); a bad file goes to the :data:`DEAD` output as
    ``(tag, path, error)`` instead of failing the bundle. Apply it with
    :func:`tfaudio.beam.runners.split_outputs` (``.with_outputs(DEAD)``, or its Dask fallback).

    Args:
        config: how to prepare clips (rate, duration, decoder backend).
        with_key: compute the file's content hash (the embedding cache's key); else the key is None.
    """

    def __init__(self, config: PipelineConfig, with_key: bool):
        self.config = config
        self.with_key = with_key

    def setup(self):
        from apache_beam.metrics import Metrics

        self.decoded = Metrics.counter(METRICS, "clips_decoded")
        self.dead = Metrics.counter(METRICS, "dead_letters")
        self.micros = Metrics.counter(METRICS, "decode_micros")
        self.cpu_micros = Metrics.counter(METRICS, "decode_cpu_micros")

    def process(self, element):
        from tfaudio.data.embedding_cache import file_key

        tag, path = element
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            with local_copy(path) as local:  # gs://... through Beam's FileSystems
                try:
                    key = file_key(local) if self.with_key else None
                    audio, length = prepare_clip(local, self.config)
                except AudioError as err:
                    if local != path:
                        raise AudioError(path, err.problem, err.fix) from None
                    raise
        except AudioError as err:
            self.dead.inc()
            why = f"{err.problem} Fix: {err.fix}" if err.fix else err.problem
            yield beam.pvalue.TaggedOutput(DEAD, (tag, path, why))
        else:
            self.micros.inc(int((time.perf_counter() - t0) * 1e6))
            self.cpu_micros.inc(int((time.process_time() - c0) * 1e6))
            self.decoded.inc()
            yield (tag, path, key), (audio, length)


def counters(result, names: Sequence[str]) -> dict[str, int | None]:
    """Committed values of tfaudio's counters after a run (0 when never incremented; None for all
    when the runner reports no metrics)."""
    from apache_beam.metrics.metric import MetricsFilter

    try:
        query = result.metrics().query(MetricsFilter().with_namespace(METRICS))
    except Exception:  # some runners do not report metrics
        return dict.fromkeys(names)
    out: dict[str, int | None] = dict.fromkeys(names, 0)
    for c in query.get("counters", []):
        name = c.key.metric.name
        if name in out:
            value = c.committed if c.committed is not None else c.attempted
            out[name] += int(value or 0)
    return out
