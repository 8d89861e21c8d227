"""The CLI's boundary: bad arguments, malformed CSVs and bad files give one clear line (exit 2) or, with
--on-error skip, a counted and reported skip; never a traceback. TensorFlow's log noise stays hidden."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT, shared, sine, tone_dataset, write_audio
from tfaudio.cli import main


def _csv(tmp_path, rows: str, name: str = "meta.csv"):
    (tmp_path / "a.wav").write_bytes(b"")
    path = tmp_path / name
    path.write_text(rows)
    return path


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, match", [
    (["cv", "{csv}", "--folds", "x", "-o", "{out}"], "--folds 'x'.*whole number >= 2"),
    (["evaluate", "{out}", "{csv}", "--folds", "x"], "--folds 'x'.*separated by commas"),
    (["train", "{csv}", "--folds", "1,a:2:3", "-o", "{out}"], "fold numbers must be integers"),
])
def test_bad_fold_arguments(argv, match, tmp_path, capsys):
    csv = _csv(tmp_path, "filename,fold,category\na.wav,1,dog\n")
    argv = [a.format(csv=csv, out=tmp_path / "out") for a in argv]
    assert main(argv) == 2
    import re

    assert re.search(match, _error(capsys))


@pytest.mark.parametrize("rows, match", [
    ("filename,fold,category\na.wav,1,dog\nb.wav,3.5,cat\n", "folds must be whole numbers.*'3.5' at line 3"),
    ("filename,fold,category\na.wav,1,dog\nb.wav,x,cat\n", "folds must be whole numbers.*'x' at line 3"),
    ("filename,fold,category\na.wav,1,dog\nb.wav,,cat\n", "blank fold at line 3 while other rows have folds"),
    ("filename,fold,category\na.wav,1,dog\nb.wav,2,\n", "blank label at line 3"),
    ("filename,fold,category\na.wav,1,dog\n,2,cat\n", "blank file name at line 3"),
    ("filename,fold,category\na.wav,1,dog\nb.wav,2,cat\na.wav,3,dog\n", "duplicate row.*a.wav \\(lines 2, 4\\).*--duplicates drop"),
    ("filename,fold\na.wav,1\n", "no column 'category'.*--label-column"),
    ('filename,fold,category\n"a.wav,1,dog\n', "cannot be read as a CSV"),
])
def test_malformed_csvs_name_the_line_and_the_fix(rows, match, tmp_path, capsys):
    csv = _csv(tmp_path, rows)
    assert main(["train", str(csv), "-o", str(tmp_path / "out")]) == 2
    import re

    err = _error(capsys)
    assert re.search(match, err), err
    assert "Fix:" in err


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    import tfaudio.commands.tag as tag

    def boom(*args, **kwargs):
        raise RuntimeError("something internal broke")

    monkeypatch.setattr(tag, "tag_files", boom)
    wav = write_audio(tmp_path / "x.wav", sine(440, 1.0, 16000), 16000)
    assert main(["tag", str(wav)]) == 2
    err = _error(capsys)
    assert "tfaudio tag: error: RuntimeError: something internal broke" in err and "--debug" in err
    with pytest.raises(RuntimeError):
        main(["--debug", "tag", str(wav)])


@pytest.fixture(scope="module")
def good_and_bad(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    good = [write_audio(root / f"tone{i}.wav", sine(300 * (i + 1), 1.0, 16000), 16000) for i in range(2)]
    text = root / "notes.wav"
    text.write_text("not audio")
    return [str(good[0]), str(text), str(root / "missing.flac"), str(good[1])]


@pytest.mark.slow
def test_tag_skips_bad_files_and_keeps_every_good_result(good_and_bad, capsys):
    shared("models", "yamnet", "yamnet.h5")
    assert main(["tag", *good_and_bad, "--json", "--top-k", "2"]) == 2  # default: stop at the first bad file
    assert "notes.wav" in _error(capsys)
    assert main(["tag", *good_and_bad, "--json", "--top-k", "2", "--on-error", "skip"]) == 0
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["file"] for r in rows] == [good_and_bad[0], good_and_bad[3]]
    assert all(len(r["events"]) == 2 for r in rows)
    assert "skipped 2 of 4 files" in captured.err and "notes.wav" in captured.err and "missing.flac" in captured.err
    assert captured.err.count("notes.wav") == 1  # listed once, as one line, not as a Python warning
    assert "warnings.warn" not in captured.err and "UserWarning" not in captured.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    shared("models", "yamnet", "yamnet.h5")
    root = tmp_path_factory.mktemp("data")
    m = tone_dataset(root / "audio", n_per_class=4, folds=2)
    bad = root / "audio" / "low" / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    rows = [f"{p.split('/audio/')[1]},{f},{lab}" for p, f, lab in zip(m.paths, m.frame.fold, m.frame.label)]
    rows.append("low/broken.wav,1,low")
    (root / "meta").mkdir()
    csv = root / "meta" / "tones.csv"
    csv.write_text("filename,fold,category\n" + "\n".join(rows) + "\n")
    out = root / "model"
    code = main(["train", str(csv), "--folds", "1:2", "--epochs", "3", "--on-error", "skip",
                 "--cache", str(root / "cache"), "-o", str(out)])
    return code, csv, out


@pytest.mark.slow
def test_train_counts_and_reports_skipped_clips(trained, capsys):
    code, csv, out = trained
    assert code == 0
    report = json.loads((out / "val_report.json").read_text())
    assert [s["file"] for s in report["skipped"]] == []  # the broken file is in fold 1 (training)
    assert report["num_examples"] == 6


@pytest.mark.slow
def test_predict_skips_bad_files(trained, good_and_bad, capsys):
    _, _, out = trained
    assert main(["predict", str(out), *good_and_bad, "--json", "--on-error", "skip"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["file"] for line in captured.out.splitlines()] == [good_and_bad[0], good_and_bad[3]]
    assert "skipped 2 of 4 files" in captured.err
    assert main(["predict", str(out), good_and_bad[1], "--on-error", "skip"]) == 1  # nothing usable: exit 1


@pytest.mark.slow
def test_quiet_by_default_and_verbose_on_request(good_and_bad):
    """A fresh `tfaudio tag` prints its answer and nothing of TensorFlow's start-up lines."""
    shared("models", "yamnet", "yamnet.h5")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "tfaudio.cli", "tag", good_and_bad[0], "--top-k", "1"]
    quiet = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.strip() == "", quiet.stderr
    assert quiet.stdout.startswith(good_and_bad[0])


@pytest.mark.slow
def test_export_hides_converter_chatter(trained, tmp_path):
    """`tfaudio export --tflite` in a fresh process prints what it wrote and nothing of the converter's
    absl log lines ("W0000 ... tf_tfl_flatbuffer_helpers.cc ..."); --verbose lets them through."""
    _, _, model = trained
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "tfaudio.cli", "export", str(model), "-o", str(tmp_path / "e"), "--tflite", "float32"]
    quiet = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.strip() == "", quiet.stderr
    assert "model_float32.tflite" in quiet.stdout
    loud = subprocess.run([sys.executable, "-m", "tfaudio.cli", "--verbose", *cmd[3:-4], "-o", str(tmp_path / "v"),
                           "--tflite", "float32"], capture_output=True, text=True, env=env, timeout=600)
    assert loud.returncode == 0 and "tf_tfl_flatbuffer_helpers" in loud.stderr
