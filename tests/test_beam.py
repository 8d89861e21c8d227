"""The Beam jobs (tfaudio embed, tfaudio predict --runner) on the DirectRunner, in memory and with two
worker processes, over real clips from ../shared: Beam's shards equal the local cache, training reads
them alike, bad files end as dead letters, and a re-run skips finished shards."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("apache_beam")

from tests.helpers import ROOT, ToyBackbone, shared, warns  # noqa: E402
from tfaudio.cli import main  # noqa: E402
from tfaudio.data.embedding_cache import EmbeddingCache, complete_shards  # noqa: E402
from tfaudio.data.manifest import Manifest  # noqa: E402

TWO_PROCESSES = {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}


# ---- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def h5():
    return shared("models", "yamnet", "yamnet.h5")


@pytest.fixture(scope="module")
def yamnet(h5):
    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone

    return YAMNetBackbone.from_h5(h5)


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    """Nine real clips, three classes: dog (44.1 kHz FLAC), cat (16 kHz FLAC), 'yes' (1 s 16 kHz WAV),
    as an ESC-50-style CSV with absolute file names."""
    esc = Manifest.from_source(shared("data", "esc50-subset"))
    rows = []
    for label in ("dog", "cat"):
        for i, path in enumerate(esc.frame[esc.frame.label == label].path[:3]):
            rows.append({"filename": path, "fold": i + 1, "category": label})
    yes = sorted(shared("data", "speech-commands-mini", "yes").glob("*.wav"))[:3]
    rows += [{"filename": str(p), "fold": i + 1, "category": "yes"} for i, p in enumerate(yes)]
    path = tmp_path_factory.mktemp("data") / "clips.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def manifest(csv):
    return Manifest.from_csv(csv)


@pytest.fixture(scope="module")
def local(yamnet, manifest, tmp_path_factory):
    """The reference: the local pipeline's cache."""
    cache = EmbeddingCache(yamnet, tmp_path_factory.mktemp("local"), shard_size=4, batch_size=4)
    return cache, cache.load(manifest, progress=False)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """Planted bad files: empty, corrupt, not audio, missing."""
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.wav").write_bytes(b"")
    (d / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk")
    (d / "notes.flac").write_text("these are my notes, not a recording\n")
    return [str(d / "empty.wav"), str(d / "corrupt.wav"), str(d / "notes.flac"), str(d / "missing.wav")]


def assert_same_embeddings(cache: EmbeddingCache, manifest: Manifest, reference) -> None:
    assert cache.missing(manifest) == [], "Beam must have embedded every good clip"
    got = cache.load(manifest, extract=False, progress=False)
    assert list(got.rows) == list(reference.rows)
    for a, b in zip(got.embeddings, reference.embeddings):
        assert a.shape == b.shape and a.shape[1] == 1024
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


# ---- embed -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_embed_in_memory_equals_local_cache_and_trains_the_same_head(csv, h5, yamnet, manifest, local,
                                                                        tmp_path, capsys):
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    out = tmp_path / "beam"
    assert main(["embed", str(csv), "--output", str(out), "--backbone", f"yamnet:{h5}", "--shard-size", "4",
                 "--batch-size", "3", "--runner", "DirectRunner", "--direct_running_mode=in_memory",
                 "--engine", "float32"]) == 0  # the library cache's engine (the command's default is auto)
    text = capsys.readouterr().out
    assert "9 clips in 3 shards: 0 already complete, 3 written (9 clips embedded)" in text
    # `tfaudio train --cache OUT` reads OUT/embeddings: the same namespace as the local cache
    beam_cache = EmbeddingCache(yamnet, out / "embeddings")
    assert beam_cache.directory.name == local[0].directory.name
    assert all(s.startswith("beam") for s in complete_shards(beam_cache.directory))
    assert_same_embeddings(beam_cache, manifest, local[1])

    config = TrainConfig(epochs=8, batch_size=16, seed=3)
    heads = [AudioClassifier(yamnet, labels=manifest.labels, cache=c).fit(manifest, config=config)
             for c in (beam_cache, local[0])]
    assert all(s.startswith("beam") for s in complete_shards(beam_cache.directory)), "fit extracted nothing"
    for wa, wb in zip(heads[0].head_model_.get_weights(), heads[1].head_model_.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-4)
    np.testing.assert_allclose(heads[0].clip_scores(local[1]), heads[1].clip_scores(local[1]), atol=1e-4)


@pytest.mark.slow
def test_dead_letters_and_rerun_skips_finished_shards(manifest, bad_files, tmp_path):
    from tfaudio.beam.embed import run_embed

    files = manifest.paths + bad_files
    root = tmp_path / "cache"
    first = run_embed(files, ToyBackbone, root, shard_size=4, batch_size=3, options=["--direct_running_mode=in_memory"])
    # the job completed; every bad file is a counted, written dead letter naming the file and the problem
    assert (first.shards, first.shards_skipped, first.shards_written) == (4, 0, 4)
    assert first.clips_embedded == len(manifest) and first.failed_total == len(bad_files)
    assert sorted(f for f, _ in first.dead_letters) == sorted(bad_files)
    records = [json.loads(line) for line in first.dead_letters_path.read_text().splitlines()]
    why = {r["file"]: r["error"] for r in records}
    assert sorted(why) == sorted(bad_files)
    assert "empty" in why[bad_files[0]] and "not an audio file" in why[bad_files[2]]
    assert "cannot be read" in why[bad_files[3]] and all("Fix:" in e for e in why.values())
    assert "4 bad file(s)" in str(first)
    cache = EmbeddingCache(ToyBackbone(), root)
    assert cache.missing(manifest) == []
    job = json.loads(first.job_index.read_text())
    assert job["clips"] == len(manifest) and job["failed"] == len(bad_files) and len(job["shards"]) == 4
    assert not list(cache.directory.glob(".*"))  # no temporary files left

    def stamps():
        return {f.name: (f.stat().st_mtime_ns, f.stat().st_ino) for f in cache.directory.glob("shard-*")}

    before = stamps()
    again = run_embed(files[::-1], ToyBackbone, root, shard_size=4, batch_size=3)  # any order: same shards
    assert (again.shards_skipped, again.shards_written, again.clips_embedded) == (4, 0, 0)
    assert stamps() == before and again.failed_total == len(bad_files)

    # an interrupted shard (records without index) is redone, and only that one
    victim = sorted(i for i, s in complete_shards(cache.directory).items() if s["keys"])[0]
    n = len(complete_shards(cache.directory)[victim]["keys"])
    (cache.directory / f"shard-{victim}.index.json").unlink()
    third = run_embed(files, ToyBackbone, root, shard_size=4, batch_size=3)
    assert (third.shards_skipped, third.shards_written, third.clips_embedded) == (3, 1, n)
    after = stamps()
    assert {k: v for k, v in after.items() if victim not in k} == {k: v for k, v in before.items() if victim not in k}
    assert cache.missing(manifest) == []


@pytest.mark.slow
def test_cache_checks_beams_shards_and_a_damaged_one_is_redone(manifest, tmp_path, caplog):
    from tfaudio.beam.embed import run_embed

    root = tmp_path / "cache"
    run_embed(manifest.paths, ToyBackbone, root, shard_size=4, batch_size=3, options=["--direct_running_mode=in_memory"])
    shards = complete_shards(EmbeddingCache(ToyBackbone(), root).directory)
    assert all(s["bytes"] > 0 and len(s["sha256"]) == 64 for s in shards.values()), "Beam writes the checksums"
    before = EmbeddingCache(ToyBackbone(), root).load(manifest, extract=False, progress=False)
    victim = sorted(shards)[0]
    records = root / EmbeddingCache(ToyBackbone(), root).directory.name / f"shard-{victim}.tfrecord"
    records.write_bytes(records.read_bytes()[:-10])
    bb = ToyBackbone()
    with warns(caplog, f"shard-{victim}.tfrecord is truncated"):
        after = EmbeddingCache(bb, root).load(manifest, progress=False)
    assert bb.calls == 1, "only the damaged shard's clips are extracted again (one batch)"
    for a, b in zip(after.embeddings, before.embeddings):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    now = complete_shards(records.parent)
    assert set(shards) - {victim} <= set(now) and victim not in now, "Beam's other shards are left alone"
    again = run_embed(manifest.paths, ToyBackbone, root, shard_size=4, batch_size=3)
    assert (again.shards_skipped, again.shards_written) == (len(shards) - 1, 1)


@pytest.mark.slow
def test_embed_with_two_worker_processes_equals_local_cache(h5, yamnet, manifest, local, bad_files, tmp_path):
    from tfaudio.beam.embed import run_embed

    root = tmp_path / "cache"
    # workers rebuild the backbone from its spec in their own processes
    result = run_embed(manifest.paths + bad_files[:2], f"yamnet:{h5}", root, shard_size=3, batch_size=2,
                       options=TWO_PROCESSES)
    assert result.shards_written == 4 and result.clips_embedded == len(manifest)
    assert sorted(f for f, _ in result.dead_letters) == sorted(bad_files[:2])
    assert_same_embeddings(EmbeddingCache(yamnet, root), manifest, local[1])


# ---- predict -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(yamnet, manifest, local, tmp_path_factory):
    from tfaudio.export.saved_model import export_saved_model
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    clf = AudioClassifier(yamnet, labels=manifest.labels, cache=local[0]).fit(manifest, config=TrainConfig(epochs=5))
    out = tmp_path_factory.mktemp("export")
    export_saved_model(clf, out / "saved_model")
    return clf, out


@pytest.mark.slow
def test_cli_predict_saved_model_to_jsonl_with_dead_letters(exported, manifest, csv, bad_files, tmp_path, capsys):
    clf, export = exported
    out = tmp_path / "scores.jsonl"
    assert main(["predict", str(export), str(csv), *bad_files, "--output", str(out), "--top-k", "2",
                 "--direct_running_mode=in_memory"]) == 0
    assert "9 of 13 files scored by DirectRunner" in capsys.readouterr().out
    rows = {r["file"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(rows) == sorted(manifest.paths)
    want = clf.predict_scores(manifest.paths)
    for path, scores in zip(manifest.paths, want):
        got = np.array([rows[path]["scores"][lab] for lab in manifest.labels])
        np.testing.assert_allclose(got, scores, atol=1e-4)
        assert [p["label"] for p in rows[path]["predictions"]] == [manifest.labels[i] for i in np.argsort(-scores)[:2]]
    dead = [json.loads(line) for line in (tmp_path / "scores.dead_letters.jsonl").read_text().splitlines()]
    assert sorted(d["file"] for d in dead) == sorted(bad_files)


@pytest.mark.slow
def test_predict_csv_with_two_worker_processes(exported, manifest, tmp_path):
    from tfaudio.beam.predict import run_predict

    clf, export = exported
    out = tmp_path / "scores.csv"
    result = run_predict(export, manifest.paths, out, top_k=1, options=TWO_PROCESSES)
    assert result.scored == len(manifest) and not result.dead_letters
    table = pd.read_csv(out)
    assert list(table.columns) == ["file", "label_1", "score_1"] and sorted(table.file) == sorted(manifest.paths)
    want = clf.predict_scores(list(table.file))
    assert list(table.label_1) == [manifest.labels[i] for i in want.argmax(1)]
    np.testing.assert_allclose(table.score_1, want.max(1), atol=1e-4)


@pytest.mark.slow
def test_clear_errors(exported, csv, tmp_path, capsys):
    clf, export = exported
    saved = tmp_path / "trained"
    clf.save(saved)
    assert main(["predict", str(saved), str(csv), "--runner", "DirectRunner", "-o", str(tmp_path / "x.jsonl")]) == 2
    assert "tfaudio export" in capsys.readouterr().err
    # without --output / --runner an export is scored here, at the rate it states (like the trained model)
    assert main(["predict", str(export), str(csv), "--json", "--top-k", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    local = clf.predict_scores([r["file"] for r in rows])
    assert [r["predictions"][0]["label"] for r in rows] == [clf.labels[i] for i in local.argmax(axis=1)]
    assert [r["predictions"][0]["score"] for r in rows] == pytest.approx(local.max(axis=1), abs=1e-4)
    assert main(["predict", str(tmp_path), str(csv), "--runner", "DirectRunner", "-o", str(tmp_path / "x.jsonl")]) == 2
    assert "no SavedModel" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # other commands still refuse unknown options
        main(["evaluate", str(saved), str(csv), "--direct_num_workers=2"])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_workers_refuse_a_backbone_other_than_the_drivers():
    from tfaudio.beam.embed import BackboneModelHandler
    from tfaudio.errors import TfaudioError

    assert BackboneModelHandler(ToyBackbone, ToyBackbone().fingerprint, 4).load_model().contract.embedding_dim == 8
    with pytest.raises(TfaudioError, match="other weights"):
        BackboneModelHandler(ToyBackbone, "yamnet-0123456789abcdef", 4).load_model()


def test_direct_runner_runs_offline_on_the_fn_api_runner():
    # Beam 2.70's DirectRunner would first try to download the Prism runner from GitHub
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from tfaudio.beam._common import make_pipeline, pipeline_options

    p = make_pipeline(pipeline_options("DirectRunner", ["--direct_num_workers=2"]))
    assert isinstance(p.runner, FnApiRunner)


def test_import_tfaudio_does_not_import_beam():
    code = ("import sys, tfaudio, tfaudio.beam, tfaudio.commands.embed, tfaudio.commands.predict; "
            "from tfaudio.cli import build_parser; build_parser(); "
            "assert 'apache_beam' not in sys.modules, 'beam imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
