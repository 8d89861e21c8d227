"""The train / cv / evaluate / predict commands end to end with the real YAMNet weights."""
import json

import pytest

from tests.helpers import shared, tone_dataset
from tfaudio.cli import main


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    shared("models", "yamnet", "yamnet.h5")
    root = tmp_path_factory.mktemp("data")
    m = tone_dataset(root / "audio", n_per_class=6, folds=3)
    frame = m.frame.assign(filename=[p.split("/audio/")[1] for p in m.paths], category=m.frame.label)
    (root / "meta").mkdir()
    frame[["filename", "fold", "category"]].to_csv(root / "meta" / "tones.csv", index=False)
    return root / "meta" / "tones.csv"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.mark.slow
def test_train_evaluate_predict(csv, cache, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["train", str(csv), "--folds", "1:2:3", "--epochs", "30", "--cache", cache, "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "training on folds [1]" in text and "accuracy" in text
    for f in ("tfaudio.json", "head.keras", "labels.txt", "test_report.json", "test_report_confusion.png",
              "test_report_curves.png", "val_report.json"):
        assert (out / f).is_file(), f
    assert json.loads((out / "test_report.json").read_text())["accuracy"] >= 0.8
    assert main(["evaluate", str(out), str(csv), "--folds", "3", "--cache", cache]) == 0
    assert "accuracy" in capsys.readouterr().out and (out / "eval_report.json").is_file()
    wav = csv.parent.parent / "audio" / "high" / "high_0.wav"
    assert main(["predict", str(out), str(wav), "--top-k", "2", "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["file"] == str(wav) and line["predictions"][0]["label"] == "high"
    assert len(line["predictions"]) == 2
    assert main(["predict", str(out), str(csv.parent.parent / "audio"), "--ensemble", str(out)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 18


@pytest.mark.slow
def test_cv_reports_mean_and_std(csv, cache, tmp_path, capsys):
    out = tmp_path / "cv"
    assert main(["cv", str(csv), "--epochs", "20", "--cache", cache, "-o", str(out)]) == 0
    assert "±" in capsys.readouterr().out
    summary = json.loads((out / "cv.json").read_text())
    assert summary["num_folds"] == 3 and (out / "fold1" / "report.json").is_file()


@pytest.mark.slow
def test_clear_cli_errors(csv, cache, tmp_path, capsys):
    assert main(["train", str(csv), "--classes", "low", "unicorn", "--cache", cache, "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unicorn" in err and "Available classes" in err
    assert main(["train", str(csv), "--folds", "1:2:7", "--cache", cache, "-o", str(tmp_path / "x")]) == 2
    assert "fold(s) [7] have no data" in capsys.readouterr().err
    assert main(["train", str(csv), "--folds", "1:2:3", "--classes", "low", "--cache", cache,
                 "-o", str(tmp_path / "x")]) == 2
    assert "at least 2 classes" in capsys.readouterr().err


@pytest.mark.slow
def test_csv_with_own_column_names_and_no_folds(csv, cache, tmp_path, capsys):
    import pandas as pd

    frame = pd.read_csv(csv)
    own = tmp_path / "own.csv"  # no fold column; other names; paths relative to the audio folder
    frame.rename(columns={"filename": "file", "category": "sound"})[["file", "sound"]].to_csv(own, index=False)
    audio = str(csv.parent.parent / "audio")
    assert main(["cv", str(own), "--audio-dir", audio, "--folds", "3", "--epochs", "5", "--cache", cache,
                 "-o", str(tmp_path / "cv")]) == 2
    err = capsys.readouterr().err
    assert "no column 'filename'" in err and "--path-column" in err
    args = ["--audio-dir", audio, "--path-column", "file", "--label-column", "sound", "--cache", cache]
    assert main(["cv", str(own), *args, "--folds", "3", "--epochs", "5", "-o", str(tmp_path / "cv")]) == 0
    summary = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert summary["num_folds"] == 3  # folds assigned, as the CSV has none
    assert main(["train", str(own), *args, "--fold-column", "nope", "-o", str(tmp_path / "x")]) == 2
    assert "no column 'nope'" in capsys.readouterr().err
