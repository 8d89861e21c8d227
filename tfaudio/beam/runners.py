"""What the Beam jobs do differently per runner: the DirectRunner, portable runners (PortableRunner,
FlinkRunner, DataflowRunner) and Beam's DaskRunner.

The DaskRunner (``apache_beam.runners.dask``) covers a subset of Beam, and tfaudio works around the parts
its jobs meet, so a job fails early with a fix instead of late or silently:

- it is not in Beam's runner table: ``--runner DaskRunner`` is mapped to its class here;
- it hands every non-default pipeline option to ``dask.distributed.Client`` (which refuses the
  unknown ones), so the pipeline gets only the ``--dask_*`` options; the others are dropped with a
  warning naming them;
- it has no translation for Beam's ``Read`` (so ``ReadFromText`` yields nothing): the job's list of
  files goes into the graph instead (:func:`read_lines`, ``beam.Create``);
- its ``beam.Create`` makes partitions of 128 elements, so a small job lands on one worker: pass
  ``--dask_npartitions=N`` (:class:`~tfaudio.beam.local_services.LocalDaskCluster` passes twice its
  workers) to spread it;
- its multi-output ParDo hands every output to every consumer, so the main and the tagged
  (dead-letter) outputs would mix: :func:`split_outputs` runs such a DoFn with plain ``(tag, value)``
  outputs and splits them with two FlatMaps;
- its ParDo drops what a DoFn emits in ``finish_bundle``, which is where Beam's ``BatchElements`` (inside
  ``RunInference``) emits each bundle's last batch: :func:`run_inference` groups the clips into
  batches with a GroupByKey instead and calls the same model handler (model loaded once per process);
- it computes only the last transform of the graph, so a job with two sinks (shards and dead letters)
  ends in :func:`join_sinks`, a step that depends on every sink;
- it reports no metrics: counts and timings come from what the job wrote (shard indexes, output
  files), and the worker timings are None;
- it has no streaming, no splittable reads and no state or timers (tfaudio's jobs use none of them).
"""
from __future__ import annotations

import logging
import threading

import apache_beam as beam

from tfaudio.errors import TfaudioError

_LOG = logging.getLogger(__name__)

DASK_RUNNER_CLASS = "apache_beam.runners.dask.dask_runner.DaskRunner"
#: DaskOptions' destinations (``--dask_client_address`` → ``address``...): what the runner passes to Client.
_DASK_OPTIONS = {"address", "timeout", "scheduler_file", "name", "connection_limit", "npartitions",
                 "partition_size"}


#: Options dropped for the DaskRunner without a warning: the runner itself, and the SDK workers' log level
#: that ``tfaudio embed`` / ``predict`` always add (there are no SDK workers on Dask).
_SILENTLY_DROPPED = {"runner", "default_sdk_harness_log_level"}


def is_dask(runner: str | None) -> bool:
    return str(runner) in ("DaskRunner", DASK_RUNNER_CLASS, "dask")


def dask_pipeline(options):
    """A ``beam.Pipeline`` on Beam's DaskRunner for ``options`` (a ``PipelineOptions`` whose runner is
    DaskRunner): the runner instance and the ``--dask_*`` options only.

    Raises:
        TfaudioError: dask.distributed is not installed.
    """
    try:
        import distributed  # noqa: F401
        from apache_beam.runners.dask.dask_runner import DaskRunner
    except ImportError as err:
        raise TfaudioError(f"the Dask runner needs dask and distributed ({err}). Fix: pip install 'tfaudio[dask]' "
                           "(or pip install 'apache-beam[dask]').") from None
    given = options.get_all_options(drop_default=True)
    dropped = sorted(k for k in given if k not in _DASK_OPTIONS and k not in _SILENTLY_DROPPED)
    if dropped:
        _LOG.warning("the Dask runner takes only its --dask_* options; ignoring %s", ", ".join(dropped))
    return beam.Pipeline(runner=_closing_dask_runner(DaskRunner)(), options=dask_options_only(options))


def dask_options_only(options):
    """A ``PipelineOptions`` with only the ``--dask_*`` options of ``options``: what the DaskRunner
    passes on to ``dask.distributed.Client``. (Beam 2.77 also sets ``save_main_session`` on validation,
    which the Client would refuse, so the runner filters again when the job starts.)"""
    from apache_beam.options.pipeline_options import PipelineOptions

    given = options.get_all_options(drop_default=True)
    return PipelineOptions([], **{k: v for k, v in given.items() if k in _DASK_OPTIONS})


def _closing_dask_runner(base):
    class ClosingDaskRunner(base):
        """The DaskRunner, given only its own options, closing the client it opened when translating the
        pipeline fails."""

        def run_pipeline(self, pipeline, options):
            try:
                return super().run_pipeline(pipeline, dask_options_only(options))
            except BaseException:
                import distributed

                try:
                    distributed.default_client().close()
                except ValueError:  # no client was opened
                    pass
                raise

    return ClosingDaskRunner


def read_lines(p, path: str, lines: list[str], runner: str, label: str):
    """The lines of the text file ``path`` (whose content is ``lines``) as a PCollection: read by the
    workers with ``ReadFromText``, or, on the DaskRunner (no ``Read``), sent in the graph."""
    import apache_beam as beam

    if is_dask(runner):
        return p | label >> beam.Create(lines)
    return p | label >> beam.io.ReadFromText(path)


def join_sinks(*sinks):
    """One last step that depends on every sink, so a runner that computes only the graph's last
    transform (the DaskRunner) runs all of them. Elsewhere it costs one tiny step."""

    return tuple(sinks) | "JoinSinks" >> beam.Flatten() | "Done" >> beam.Map(_nothing)


def _nothing(_):
    return None


def finish(result) -> None:
    """Waits for a job and frees what its runner holds in this process (the DaskRunner's client)."""
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)
        if client is not None:
            client.close()


def split_outputs(pcoll, label: str, dofn, tag: str, runner: str):
    """``pcoll | label >> ParDo(dofn).with_outputs(tag)`` as ``(main output, tagged output)``.

    On the DaskRunner, whose multi-output ParDo mixes the outputs, the DoFn's outputs are tagged in
    the elements (:class:`_TagInElement`) and split by two FlatMaps; each element is still decoded once
    (both branches read the same Dask partitions in one computation).
    """
    if not is_dask(runner):
        out = pcoll | label >> beam.ParDo(dofn).with_outputs(tag, main="main")
        return out.main, out[tag]
    both = pcoll | label >> beam.ParDo(_TagInElement(dofn))
    return (both | f"{label}Main" >> beam.FlatMap(_with_tag, None),
            both | f"{label}{tag.title().replace('_', '')}" >> beam.FlatMap(_with_tag, tag))


def _with_tag(element, tag):
    if element[0] == tag:
        yield element[1]


class _TagInElement(beam.DoFn):
    """Runs ``inner`` and yields ``(tag, value)`` (tag None for the main output) instead of tagged outputs."""

    def __init__(self, inner):
        self.inner = inner

    def setup(self):
        self.inner.setup()

    def start_bundle(self):
        self.inner.start_bundle()

    def process(self, element):
        for out in self.inner.process(element) or ():
            if isinstance(out, beam.pvalue.TaggedOutput):
                yield out.tag, out.value
            else:
                yield None, out

    def finish_bundle(self):
        for out in self.inner.finish_bundle() or ():
            raise TfaudioError(f"{type(self.inner).__name__}.finish_bundle emits {out!r}; the Dask fallback "
                               "supports DoFns that emit from process only.")

    def teardown(self):
        self.inner.teardown()


def run_inference(pcoll, label: str, handler, runner: str, expected: int):
    """``pcoll`` of ``(key, example)`` → ``(key, prediction)`` through ``handler`` (a RunInference
    ``ModelHandler`` of unkeyed examples that sizes its batches with ``batch_size``).

    Elsewhere this is ``RunInference(KeyedModelHandler(handler))``. On the DaskRunner the examples are
    put in ``ceil(expected / batch_size)`` buckets by a hash of their key, grouped, and each group is run
    in batches of ``batch_size`` by :class:`_InferInBatches`.
    """
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

    if not is_dask(runner):
        return pcoll | label >> RunInference(KeyedModelHandler(handler))
    buckets = max(1, -(-expected // handler.batch_size))
    return (pcoll
            | f"{label}Bucket" >> beam.Map(_bucket, buckets)
            | f"{label}Group" >> beam.GroupByKey()
            | label >> beam.ParDo(_InferInBatches(handler)))


def _bucket(element, buckets: int):
    import hashlib

    digest = hashlib.sha256(repr(element[0]).encode()).digest()
    return int.from_bytes(digest[:8], "big") % buckets, element


#: Models loaded by :class:`_InferInBatches` in this process, by handler.
_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


class _InferInBatches(beam.DoFn):
    """``(bucket, [(key, example)])`` → ``(key, prediction)``: the handler's ``run_inference`` on batches of
    ``batch_size``, its model loaded once per process (the DaskRunner calls ``setup`` per partition)."""

    def __init__(self, handler):
        self.handler = handler

    def setup(self):
        key = f"{type(self.handler).__module__}.{type(self.handler).__qualname__}:{sorted(vars(self.handler).items())!r}"
        with _MODELS_LOCK:
            if key not in _MODELS:
                _MODELS[key] = self.handler.load_model()
            self.model = _MODELS[key]

    def process(self, element):
        _, items = element
        items = sorted(items, key=lambda kv: repr(kv[0]))
        size = self.handler.batch_size
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            predictions = self.handler.run_inference([x for _, x in batch], self.model)
            yield from zip((k for k, _ in batch), predictions)
