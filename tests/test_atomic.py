"""Atomic writes and the sweeping of temporaries: what a dead writer left is removed by the next write,
what a live writer is writing is never touched."""
import os
import pathlib
import subprocess
import sys
import time

import pytest

from tests.helpers import warns
from tfaudio.io.atomic import STALE_AFTER, _host, atomic_write_bytes, sweep_stale, temp_path

DAY = 24 * 3600


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def temp(folder: pathlib.Path, target: str, pid: int, *, host: str | None = None, kind: str = "tmp",
         folder_temp: bool = False, age: float = 0.0) -> pathlib.Path:
    path = folder / f".{target}.{pid}@{host or _host()}.0123abcd.{kind}"
    if folder_temp:
        path.mkdir()
        (path / "saved_model.pb").write_bytes(b"half")
    else:
        path.write_bytes(b"half")
    if age:
        os.utime(path, (time.time() - age,) * 2)
    return path


@pytest.fixture()
def live_child():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_temp_names_carry_pid_and_host(tmp_path):
    t = temp_path(tmp_path / "model.tflite")
    assert t.parent == tmp_path and t.name.startswith(f".model.tflite.{os.getpid()}@{_host()}.")
    assert t.name.endswith(".tmp") and t != temp_path(tmp_path / "model.tflite")


def test_dead_writers_temporaries_go_live_ones_stay(tmp_path, live_child):
    dead_file = temp(tmp_path, "model.tflite", dead_pid())
    dead_dir = temp(tmp_path, "saved_model", dead_pid(), folder_temp=True)
    mine = temp(tmp_path, "model.tflite", os.getpid())
    other = temp(tmp_path, "saved_model", live_child, folder_temp=True)
    removed = sweep_stale(directory=tmp_path)
    assert sorted(removed) == sorted([dead_file, dead_dir])
    assert not dead_file.exists() and not dead_dir.exists()
    assert mine.exists() and other.exists()


@pytest.mark.skipif(not pathlib.Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_a_reused_pid_does_not_keep_a_temporary(tmp_path, live_child):
    # the temporary was last written two hours before the process now holding that pid started
    stale = temp(tmp_path, "model.tflite", live_child, age=2 * 3600)
    assert sweep_stale(tmp_path / "model.tflite") == [stale]


def test_unknown_owners_are_swept_by_age_only(tmp_path):
    young_remote = temp(tmp_path, "saved_model", 12345, host="another-host")
    old_remote = temp(tmp_path, "model.tflite", 12345, host="another-host", age=STALE_AFTER + 60)
    young_legacy = tmp_path / ".saved_model.1a2b3c4d.tmp"  # named by tfaudio before pids were recorded
    old_legacy = tmp_path / ".shard-0123456789abcdef.1a2b3c4d.tfrecord.tmp"
    young_legacy.mkdir()
    old_legacy.write_bytes(b"x")
    os.utime(old_legacy, (time.time() - STALE_AFTER - 60,) * 2)
    unrelated = tmp_path / ".bashrc"
    unrelated.write_text("x")
    os.utime(unrelated, (time.time() - 10 * DAY,) * 2)
    assert sorted(sweep_stale(directory=tmp_path)) == sorted([old_remote, old_legacy])
    assert young_remote.exists() and young_legacy.exists() and unrelated.exists()


def test_sweeping_a_path_touches_only_its_temporaries(tmp_path):
    mine = temp(tmp_path, "a.tflite", dead_pid())
    theirs = temp(tmp_path, "b.tflite", dead_pid())
    assert sweep_stale(tmp_path / "a.tflite") == [mine] and theirs.exists()


def test_previous_version_is_put_back_when_its_replacement_died(tmp_path, caplog):
    old = temp(tmp_path, "saved_model", dead_pid(), kind="old", folder_temp=True)
    new = temp(tmp_path, "saved_model", dead_pid(), folder_temp=True)
    with warns(caplog, "previous version was put back"):
        sweep_stale(tmp_path / "saved_model")
    assert (tmp_path / "saved_model" / "saved_model.pb").exists() and not old.exists() and not new.exists()
    # with the new version in place, a leftover previous version is simply removed
    old = temp(tmp_path, "saved_model", dead_pid(), kind="old", folder_temp=True)
    assert sweep_stale(tmp_path / "saved_model") == [old] and not old.exists()


def test_atomic_write_sweeps_its_target(tmp_path, live_child):
    dead = temp(tmp_path, "labels.txt", dead_pid())
    live = temp(tmp_path, "labels.txt", live_child)
    atomic_write_bytes(tmp_path / "labels.txt", b"dog\ncat\n")
    assert (tmp_path / "labels.txt").read_bytes() == b"dog\ncat\n"
    assert not dead.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["labels.txt", live.name])


def test_export_folder_is_swept_on_the_next_export(tmp_path, live_child):
    from tfaudio.io.atomic import atomic_directory

    dead = temp(tmp_path, "saved_model", dead_pid(), folder_temp=True)
    live = temp(tmp_path, "saved_model", live_child, folder_temp=True)
    atomic_directory(tmp_path / "saved_model", lambda d: (d / "saved_model.pb").write_bytes(b"pb"))
    assert not dead.exists() and live.exists()
    assert (tmp_path / "saved_model" / "saved_model.pb").read_bytes() == b"pb"


def test_classifier_save_sweeps_killed_saves(tmp_path, live_child):
    from tests.helpers import ToyBackbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.heads.classification_head import build_head
    from tfaudio.tasks.audio_classifier import AudioClassifier

    bb = ToyBackbone()
    clf = AudioClassifier(bb, labels=["low", "high"], cache=EmbeddingCache(bb, tmp_path / "cache"))
    clf.head_model_ = build_head(bb.contract.embedding_dim, 2)  # an untrained head saves alike
    out = tmp_path / "models"
    out.mkdir()
    dead = temp(out, "dogs", dead_pid(), folder_temp=True)
    live = temp(out, "dogs", live_child, folder_temp=True)
    clf.save(out / "dogs")
    assert not dead.exists() and live.exists() and (out / "dogs" / "tfaudio.json").exists()
