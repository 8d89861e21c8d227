import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import shared
from tfaudio.data.manifest import Manifest, esc50_clip_id, speech_commands_speaker, stratified_group_folds
from tfaudio.errors import ManifestError


def esc50():
    return Manifest.from_csv(shared("data", "esc50-subset", "meta", "esc50.csv"))


def toy_frame(n_per_class=12, classes=("a", "b", "c"), speakers=4):
    rows = []
    for c in classes:
        for i in range(n_per_class):
            rows.append({"path": f"/x/{c}/{i % speakers:08x}_nohash_{i}.wav", "label": c})
    return pd.DataFrame(rows)


def test_esc50_csv_paths_labels_folds_groups():
    m = esc50()
    assert len(m) == 440 and len(m.labels) == 11
    assert m.folds == [1, 2, 3, 4, 5]
    row = m.frame.iloc[0]
    assert row.path.endswith("audio/1-100032-A-0.flac") and row.label == "dog"
    assert row.group == "100032"
    assert all(pd.io.common.file_exists(p) for p in m.paths[:5])
    assert set(m.class_counts().values()) == {40}


def test_select_orders_and_relabels_classes():
    m = esc50().select(["dog", "cat"])
    assert m.labels == ("dog", "cat") and len(m) == 80
    t = m.targets
    assert set(t[m.frame.label.to_numpy() == "dog"]) == {0} and set(t[m.frame.label.to_numpy() == "cat"]) == {1}
    merged = esc50().select(["dog", "cat", "rain"], relabel={"dog": "pet", "cat": "pet"})
    assert merged.labels == ("pet", "rain") and merged.class_counts() == {"pet": 80, "rain": 40}


def test_unknown_class_and_fold_errors_name_what_exists():
    with pytest.raises(ManifestError, match="unicorn.*Available classes"):
        esc50().select(["unicorn"])
    with pytest.raises(ManifestError, match=r"fold\(s\) \[9\] have no data"):
        esc50().split(train=[1, 2], test=[9])
    with pytest.raises(ManifestError, match="more than one"):
        esc50().split(train=[1, 2], val=[2])


def test_unknown_label_raises_or_is_counted_when_skipping():
    frame = pd.DataFrame({"path": ["a.wav", "b.wav", "c.wav"], "label": ["x", "y", "z"]})
    with pytest.raises(ManifestError, match=r"c\.wav \('z'\)"):
        Manifest(frame, labels=["x", "y"])
    m = Manifest(frame, labels=["x", "y"], on_unknown="skip")
    assert len(m) == 2 and m.skipped == [("c.wav", "unknown label 'z'")]


def test_tutorial_split_and_kfold_cover_every_fold_once():
    m = esc50().select(["dog", "cat"])
    train, val, test = m.split(train=[1, 2, 3], val=[4], test=[5])
    assert (len(train), len(val), len(test)) == (48, 16, 16)
    seen = []
    for fold, split in m.kfold():
        assert split.test.folds == [fold]
        assert fold not in split.train.folds and split.val.folds[0] not in split.train.folds
        assert len(split.train) + len(split.val) + len(split.test) == len(m)
        seen.append(fold)
    assert seen == [1, 2, 3, 4, 5]


def test_folder_manifest_groups_speech_commands_speakers():
    root = shared("data", "speech-commands-mini")
    m = Manifest.from_folder(root)
    assert len(m.labels) == 12 and len(m) == 480
    assert m.frame.group.notna().all()
    yes = m.frame[m.frame.label == "yes"].iloc[0]
    assert speech_commands_speaker(yes.path) == yes.group and len(yes.group) == 8
    unknown = m.frame[m.frame.label == "_unknown_"].iloc[0]  # backward_<speaker>_nohash_0.wav.wav
    assert len(unknown.group) == 8
    silence = m.frame[m.frame.label == "_silence_"].group
    assert silence.str.startswith("file:").all() and silence.nunique() == len(silence)
    k = m.assign_folds(5, seed=0)
    # no speaker in two folds
    assert (k.frame.groupby("group")["fold"].nunique() == 1).all()
    # stratified: every class in every fold, roughly 1/5 each
    per = pd.crosstab(k.frame.label, k.frame.fold)
    assert (per > 0).all().all() and per.to_numpy().max() <= 2 * per.to_numpy().min() + 2


def test_assign_folds_is_deterministic_grouped_and_balanced():
    frame = toy_frame(n_per_class=20, speakers=10)
    m = Manifest.from_dataframe(frame)
    a = m.assign_folds(5, seed=3).frame.fold.to_numpy()
    b = m.assign_folds(5, seed=3).frame.fold.to_numpy()
    assert (a == b).all()
    groups = m.frame.group.to_numpy()
    for g in np.unique(groups):
        assert len(set(a[groups == g])) == 1
    sizes = np.bincount(a)[1:]
    assert sizes.min() >= 0.6 * sizes.max()
    # ungrouped data: strict stratification
    folds = stratified_group_folds(np.repeat(["a", "b"], 10), np.arange(20).astype(str), 5)
    assert (pd.crosstab(np.repeat(["a", "b"], 10), folds).to_numpy() == 2).all()


def test_esc50_regrouping_keeps_takes_of_a_clip_together():
    m = esc50()
    k = m.assign_folds(4, overwrite=True)
    assert k.folds == [1, 2, 3, 4]
    assert (k.frame.groupby("group")["fold"].nunique() == 1).all()
    assert esc50_clip_id("1-100032-A-0.flac") == "100032"


def test_labels_saved_as_json(tmp_path):
    m = esc50().select(["dog", "cat"])
    m.save_labels(tmp_path / "labels.json")
    assert json.loads((tmp_path / "labels.json").read_text()) == ["dog", "cat"]


def test_missing_csv_or_column_is_explained(tmp_path):
    with pytest.raises(ManifestError, match="no such CSV"):
        Manifest.from_csv(tmp_path / "nope.csv")
    (tmp_path / "m.csv").write_text("file,cls\na.wav,x\n")
    with pytest.raises(ManifestError, match="no column 'filename'"):
        Manifest.from_csv(tmp_path / "m.csv")
    m = Manifest.from_csv(tmp_path / "m.csv", path_column="file", label_column="cls", fold_column=None)
    assert m.labels == ("x",) and not m.has_folds
