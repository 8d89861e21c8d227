"""The Beam jobs beyond the DirectRunner: Beam's PortableRunner against a local job service with an
external SDK worker pool, and Beam's DaskRunner on a local dask.distributed cluster of two worker
processes. Every service is started here on 127.0.0.1 (ports picked free, checked to listen nowhere else),
bounded in time, and stopped with all its processes (checked on teardown).

Workers are other processes: they unpickle the DoFns, rebuild the backbone from its factory (which
records each load in $TFAUDIO_TEST_LOADS), read the audio and write the shards themselves. Results
must equal the local EmbeddingCache; dead letters appear once; a re-run redoes only unfinished shards.
"""
import json
import logging
import os
import pathlib
import uuid

import numpy as np
import pytest

pytest.importorskip("apache_beam")

from tests.helpers import ROOT, ToyBackbone, tone_dataset  # noqa: E402
from tfaudio.data.embedding_cache import EmbeddingCache, complete_shards  # noqa: E402

LOADS_VAR = "TFAUDIO_TEST_LOADS"
RUNNERS = {"portable": "PortableRunner", "dask": "DaskRunner"}


def counting_toy():
    """The ToyBackbone, recording one file per build (``<pid>-<random>``) in $TFAUDIO_TEST_LOADS when set
    (it is set for the workers only)."""
    folder = os.environ.get(LOADS_VAR)
    if folder:
        pathlib.Path(folder, f"{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
    return ToyBackbone()


def loads_per_process(folder: pathlib.Path) -> dict[int, int]:
    counts: dict[int, int] = {}
    for f in folder.iterdir():
        pid = int(f.name.split("-")[0])
        counts[pid] = counts.get(pid, 0) + 1
    return counts


# ---- data ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Six generated 1 s clips (three classes) and two bad files (empty, not audio)."""
    root = tmp_path_factory.mktemp("clips")
    manifest = tone_dataset(root, n_per_class=2, seconds=1.0)
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.flac").write_text("these are my notes, not a recording\n")
    return manifest, [str(root / "empty.wav"), str(root / "notes.flac")]


@pytest.fixture(scope="module")
def local(data, tmp_path_factory):
    """The reference: the local pipeline's cache of the same clips."""
    manifest, _ = data
    cache = EmbeddingCache(ToyBackbone(), tmp_path_factory.mktemp("local"), shard_size=3, batch_size=2)
    return cache, cache.load(manifest, progress=False)


# ---- clusters --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loads_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("loads")


@pytest.fixture(scope="module")
def worker_env(loads_dir):
    """The services' environment: this worktree first on the path (workers import tfaudio and this file)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({LOADS_VAR: str(loads_dir), "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    return env


def service_processes(cluster) -> list:
    """The cluster's service processes and all their children (psutil; [] without it)."""
    psutil = _psutil()
    if psutil is None:
        return []
    procs = [psutil.Process(s.proc.pid) for s in cluster.services]
    return procs + [child for p in procs for child in p.children(recursive=True)]


def _psutil():
    try:
        import psutil
    except ImportError:  # comes with dask.distributed; without it the process checks are left out
        return None
    return psutil


def assert_loopback_only(cluster) -> None:
    psutil = _psutil()
    if psutil is None:
        return
    listening = [c.laddr for p in service_processes(cluster) for c in p.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    # gRPC's dual-stack sockets show 127.0.0.1 as ::ffff:127.0.0.1
    assert listening and all(a.ip in ("127.0.0.1", "::ffff:127.0.0.1") for a in listening), listening


def running_cluster(kind, env, log_dir):
    """Starts ``kind`` (2 workers) for the module; on teardown, checks that it left no process behind."""
    with kind(workers=2, log_dir=log_dir, env=env) as c:
        procs = service_processes(c)
        yield c
    alive = [p for p in procs if p.is_running() and p.status() != "zombie"]
    assert not alive, f"{kind.__name__} left {alive} running"


@pytest.fixture(scope="module")
def portable(worker_env, tmp_path_factory):
    from tfaudio.beam.local_services import LocalPortableCluster

    yield from running_cluster(LocalPortableCluster, worker_env, str(tmp_path_factory.mktemp("portable-logs")))


@pytest.fixture(scope="module")
def dask(worker_env, tmp_path_factory):
    pytest.importorskip("distributed", reason="the Dask runner needs `pip install 'tfaudio[dask]'`")
    from tfaudio.beam.local_services import LocalDaskCluster

    yield from running_cluster(LocalDaskCluster, worker_env, str(tmp_path_factory.mktemp("dask-logs")))


@pytest.fixture(params=sorted(RUNNERS))
def cluster(request, loads_dir):
    """(runner name, running cluster); the load records start empty."""
    for f in loads_dir.iterdir():
        f.unlink()
    return RUNNERS[request.param], request.getfixturevalue(request.param)


def assert_same_as_local(cache: EmbeddingCache, manifest, reference) -> None:
    assert cache.missing(manifest) == [], "the workers embedded every good clip"
    got = cache.load(manifest, extract=False, progress=False)
    assert list(got.rows) == list(reference.rows)
    for a, b in zip(got.embeddings, reference.embeddings):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# ---- embed -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_embed_equals_local_cache_dead_letters_once_and_rerun_redoes_only_unfinished(cluster, data, local, loads_dir,
                                                                                   tmp_path):
    from tfaudio.beam.embed import run_embed

    runner, services = cluster
    manifest, bad = data
    root = tmp_path / "cache"
    files = manifest.paths + bad
    first = run_embed(files, counting_toy, root, shard_size=3, batch_size=2, runner=runner,
                      options=services.options())
    assert (first.shards, first.shards_written, first.clips_embedded) == (3, 3, len(manifest))
    cache = EmbeddingCache(ToyBackbone(), root)
    assert_same_as_local(cache, manifest, local[1])
    # each bad file is one dead letter: in the result, in the file, and in the job index
    assert sorted(f for f, _ in first.dead_letters) == sorted(bad)
    lines = first.dead_letters_path.read_text().splitlines()
    assert sorted(json.loads(line)["file"] for line in lines) == sorted(bad)
    assert first.failed_total == len(bad) and json.loads(first.job_index.read_text())["failed"] == len(bad)
    # the model was built in worker processes, once in each, never per clip or batch
    loads = loads_per_process(loads_dir)
    assert loads and os.getpid() not in loads and set(loads.values()) == {1}, loads
    assert len(loads) <= services.workers
    assert_loopback_only(services)  # the job service, the pool, the scheduler, the workers

    def stamps():
        return {f.name: (f.stat().st_mtime_ns, f.stat().st_ino) for f in cache.directory.glob("shard-*")}

    before = stamps()
    again = run_embed(files, counting_toy, root, shard_size=3, batch_size=2, runner=runner, options=services.options())
    assert (again.shards_skipped, again.shards_written, again.dead_letters) == (3, 0, [])
    assert stamps() == before
    # an interrupted shard (records without index) is redone on the workers, and only that one
    victim = sorted(complete_shards(cache.directory))[0]
    n = len(complete_shards(cache.directory)[victim]["keys"])
    (cache.directory / f"shard-{victim}.index.json").unlink()
    one_worker = [*services.options(), "--direct_num_workers=1"]  # fewer TensorFlow imports on the portable runner
    third = run_embed(files, counting_toy, root, shard_size=3, batch_size=2, runner=runner, options=one_worker)
    assert (third.shards_skipped, third.shards_written, third.clips_embedded) == (2, 1, n)
    after = stamps()
    assert {k: v for k, v in after.items() if victim not in k} == {k: v for k, v in before.items() if victim not in k}
    assert_same_as_local(cache, manifest, local[1])


# ---- predict -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(data, local, tmp_path_factory):
    """A classifier on the ToyBackbone, exported as a SavedModel."""
    from tfaudio.export.saved_model import export_saved_model
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    manifest, _ = data
    clf = AudioClassifier(ToyBackbone(), labels=manifest.labels, cache=local[0]).fit(
        manifest, config=TrainConfig(epochs=2, seed=1))
    out = tmp_path_factory.mktemp("export")
    export_saved_model(clf, out / "saved_model")
    return clf, out


@pytest.mark.slow
def test_predict_equals_local_scores_with_dead_letters_once(cluster, data, exported, tmp_path):
    from tfaudio.beam.predict import run_predict

    runner, services = cluster
    manifest, bad = data
    clf, export = exported
    out = tmp_path / "scores.jsonl"
    result = run_predict(export, manifest.paths + bad, out, top_k=2, batch_size=2, runner=runner,
                         options=[*services.options(), "--direct_num_workers=1"])  # one TF import (portable)
    assert (result.files, result.scored) == (len(manifest) + len(bad), len(manifest))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["file"] for r in rows) == sorted(manifest.paths), "one row per good file"
    want = dict(zip(manifest.paths, clf.predict_scores(manifest.paths)))
    for r in rows:
        np.testing.assert_allclose([r["scores"][lab] for lab in manifest.labels], want[r["file"]], atol=1e-4)
    dead = [json.loads(line)["file"] for line in result.dead_letters_path.read_text().splitlines()]
    assert sorted(dead) == sorted(bad) and sorted(f for f, _ in result.dead_letters) == sorted(bad)


# ---- the services ----------------------------------------------------------------------------------
def test_dask_runner_gets_only_its_options_and_a_clear_error_without_dask(caplog, monkeypatch):
    pytest.importorskip("distributed", reason="the Dask runner needs `pip install 'tfaudio[dask]'`")
    from apache_beam.runners.dask.dask_runner import DaskOptions, DaskRunner

    from tfaudio.beam._common import make_pipeline, pipeline_options, quiet_workers
    from tfaudio.beam.runners import dask_options_only

    opts = pipeline_options("DaskRunner", quiet_workers(["--dask_client_address=tcp://127.0.0.1:1",
                                                         "--dask_npartitions=4", "--project=p"]))
    with caplog.at_level(logging.WARNING, logger="tfaudio.beam.runners"):
        p = make_pipeline(opts)
    assert isinstance(p.runner, DaskRunner)
    # what the runner hands to dask.distributed.Client: its own options, not the runner or log level
    given = dask_options_only(p._options).view_as(DaskOptions).get_all_options(drop_default=True)
    assert given == {"address": "tcp://127.0.0.1:1", "npartitions": 4}
    # the options that mean nothing to Dask are named, except the log level the CLI always adds
    assert "ignoring project" in caplog.text and "default_sdk_harness_log_level" not in caplog.text

    import sys

    from tfaudio.errors import TfaudioError

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(TfaudioError, match=r"tfaudio\[dask\]"):
        make_pipeline(opts)


# ---- paths on other file systems -------------------------------------------------------------------
_KEEP: list = []  # Beam finds file systems among the live subclasses: keep the test's alive


def _mirror_filesystem():
    from apache_beam.io.filesystem import FileMetadata
    from apache_beam.io.localfilesystem import LocalFileSystem

    prefix = "mirror://"

    def local(path):
        return path[len(prefix):] if path.startswith(prefix) else path

    class MirrorFileSystem(LocalFileSystem):
        """``mirror:///abs/path``: the local file /abs/path, as a Beam file system with its own scheme (how
        gs:// or s3:// paths reach the workers), registered by being defined. Every path it is given loses
        the scheme, every path it lists gets it back."""

        @classmethod
        def scheme(cls):
            return "mirror"

        def split(self, path):
            head, tail = os.path.split(local(path))
            return prefix + head, tail

        def mkdirs(self, path):
            return super().mkdirs(local(path))

        def _list(self, dir_or_prefix):
            for m in super()._list(local(dir_or_prefix)):
                yield FileMetadata(prefix + m.path, m.size_in_bytes, m.last_updated_in_seconds)

        def create(self, path, *args, **kwargs):
            return super().create(local(path), *args, **kwargs)

        def open(self, path, *args, **kwargs):
            return super().open(local(path), *args, **kwargs)

        def copy(self, sources, destinations):
            return super().copy([local(p) for p in sources], [local(p) for p in destinations])

        def rename(self, sources, destinations):
            return super().rename([local(p) for p in sources], [local(p) for p in destinations])

        def exists(self, path):
            return super().exists(local(path))

        def size(self, path):
            return super().size(local(path))

        def last_updated(self, path):
            return super().last_updated(local(path))

        def checksum(self, path):
            return super().checksum(local(path))

        def metadata(self, path):
            m = super().metadata(local(path))
            return FileMetadata(path, m.size_in_bytes, m.last_updated_in_seconds)

        def delete(self, paths):
            return super().delete([local(p) for p in paths])

    _KEEP.append(MirrorFileSystem)
    return MirrorFileSystem


@pytest.mark.slow
def test_paths_with_a_scheme_are_read_through_beams_file_systems(data, local, tmp_path):
    from tfaudio.beam.embed import run_embed

    if not _KEEP:
        _mirror_filesystem()
    manifest, _ = data
    remote = [f"mirror://{p}" for p in manifest.paths]
    missing = "mirror:///nowhere/gone.wav"
    result = run_embed(remote + [missing], ToyBackbone, tmp_path / "cache", shard_size=3, batch_size=2,
                       options=["--direct_running_mode=in_memory"])
    assert result.clips_embedded == len(manifest), repr(result)
    # the same content hashes as the local files: the local cache finds every clip, with equal embeddings
    assert_same_as_local(EmbeddingCache(ToyBackbone(), tmp_path / "cache"), manifest, local[1])
    [(path, why)] = result.dead_letters
    assert path == missing and "cannot be read through Beam's file systems" in why and "Fix:" in why


def test_dask_batches_load_the_model_once_per_process_and_keep_every_clip():
    # the DaskRunner calls setup() per partition and drops finish_bundle outputs: the fallback's DoFn
    # caches the model per process and emits every batch, the last smaller one too, from process()
    from tfaudio.beam.runners import _InferInBatches

    class Handler:
        batch_size = 2
        loads = 0

        def __init__(self, tag):
            self.tag = tag

        def load_model(self):
            Handler.loads += 1
            return f"model-{self.tag}"

        def run_inference(self, batch, model):
            return [(model, x, len(batch)) for x in batch]

    outputs = []
    for _ in range(3):  # three partitions on one worker process
        fn = _InferInBatches(Handler("a"))
        fn.setup()
        outputs += list(fn.process((0, [(f"k{i}", i) for i in range(5)])))
    assert Handler.loads == 1
    other = _InferInBatches(Handler("b"))  # another model (other settings) is loaded on its own
    other.setup()
    assert Handler.loads == 2 and other.model == "model-b"
    assert outputs[:5] == [(f"k{i}", ("model-a", i, 2 if i < 4 else 1)) for i in range(5)]


def _files(folder: pathlib.Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.name.startswith(("shard-", "settings"))}


@pytest.mark.slow
def test_output_with_a_scheme_is_written_through_beams_file_systems_as_the_local_cache(data, local, tmp_path):
    from tfaudio.beam.embed import run_embed

    if not _KEEP:
        _mirror_filesystem()
    manifest, bad = data
    files = manifest.paths + bad
    kwargs = {"shard_size": 3, "batch_size": 2, "options": ["--direct_running_mode=in_memory"]}
    first = run_embed(files, ToyBackbone, f"mirror://{tmp_path}/remote", **kwargs)
    assert (first.shards, first.shards_written, first.clips_embedded) == (3, 3, len(manifest))
    assert str(first.directory).startswith(f"mirror://{tmp_path}/remote/")
    out = pathlib.Path(str(first.directory)[len("mirror://"):])
    # each bad file is one dead letter: in the result, in the file and in the job index (written through Beam)
    assert sorted(f for f, _ in first.dead_letters) == sorted(bad)
    assert str(first.dead_letters_path).startswith("mirror://") and str(first.job_index).startswith("mirror://")
    lines = (out / pathlib.Path(first.dead_letters_path).name).read_text().splitlines()
    assert sorted(json.loads(line)["file"] for line in lines) == sorted(bad)
    assert first.failed_total == len(bad) and json.loads((out / f"{pathlib.Path(first.job_index).name}").read_text())[
        "failed"] == len(bad)
    assert not [f.name for f in out.iterdir() if f.name.startswith(".")], "no temporaries or plan file left"

    # a local run of the same job writes the same bytes (records, indexes, settings)
    here = run_embed(files, ToyBackbone, tmp_path / "local", **kwargs)
    assert pathlib.Path(here.directory).name == out.name
    assert _files(out) == _files(pathlib.Path(here.directory)) and len(_files(out)) == 7

    # copied to a local disk, the folder is a cache the local code reads without extracting
    copy = tmp_path / "copy"
    (copy / out.name).mkdir(parents=True)
    for name, content in _files(out).items():
        (copy / out.name / name).write_bytes(content)
    toy = ToyBackbone()
    assert_same_as_local(EmbeddingCache(toy, copy), manifest, local[1])
    EmbeddingCache(toy, copy).load(manifest, progress=False)
    assert toy.calls == 0, "nothing extracted"

    def stamps():
        return {f.name: (f.stat().st_mtime_ns, f.stat().st_ino) for f in out.glob("shard-*")}

    # a re-run lists the finished shards through Beam and skips them all
    before = stamps()
    again = run_embed(files, ToyBackbone, f"mirror://{tmp_path}/remote", **kwargs)
    assert (again.shards_skipped, again.shards_written, again.dead_letters) == (3, 0, [])
    assert again.failed_total == len(bad) and stamps() == before

    # a shard whose index is missing (a writer that died before it) is redone, and only that one
    shards = complete_shards(out)
    victim = sorted(i for i, s in shards.items() if s["keys"])[0]
    (out / f"shard-{victim}.index.json").unlink()
    third = run_embed(files, ToyBackbone, f"mirror://{tmp_path}/remote", **kwargs)
    assert (third.shards_skipped, third.shards_written, third.clips_embedded) == (2, 1, len(shards[victim]["keys"]))
    after = stamps()
    assert {k: v for k, v in after.items() if victim not in k} == {k: v for k, v in before.items() if victim not in k}
    assert after[f"shard-{victim}.index.json"] != before[f"shard-{victim}.index.json"]
    assert _files(out) == _files(pathlib.Path(here.directory))


def test_cli_embed_keeps_an_output_with_a_scheme_a_beam_path(data, monkeypatch, capsys):
    # pathlib would turn gs://bucket/cache into gs:/bucket/cache; the job must get the path as given
    import tfaudio.beam.embed as embed
    from tfaudio.cli import main

    folder = str(pathlib.Path(data[0].paths[0]).parent.parent)
    # a scheme no installed Beam file system handles (gs:// without apache-beam[gcp]): a one-line error
    assert main(["embed", folder, "--output", "nofs://bucket/cache", "--backbone", "yamnet"]) == 2
    err = capsys.readouterr().err
    assert "nofs://bucket/cache/embeddings" in err and "apache-beam[gcp]" in err and "unexpected" not in err

    roots = []
    monkeypatch.setattr(embed, "run_embed", lambda manifest, backbone, root, **kwargs: roots.append(root) or "ok")
    assert main(["embed", folder, "--output", "mirror:///bucket/cache/", "--backbone", "yamnet"]) == 0
    assert main(["embed", folder, "--output", "/tmp/cache", "--backbone", "yamnet"]) == 0
    assert roots == ["mirror:///bucket/cache/embeddings", pathlib.Path("/tmp/cache/embeddings")]
