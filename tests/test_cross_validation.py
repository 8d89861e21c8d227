import json

import numpy as np
import pytest

from tests.helpers import ToyBackbone, tone_dataset
from tfaudio.data.embedding_cache import EmbeddingCache
from tfaudio.tasks.cross_validation import cross_validate
from tfaudio.tasks.recipe import TrainConfig


@pytest.mark.slow
def test_cross_validate_every_fold_once_with_mean_and_std(tmp_path):
    data = tone_dataset(tmp_path / "audio", n_per_class=6, folds=3)
    bb = ToyBackbone()
    cache = EmbeddingCache(bb, tmp_path / "cache")
    summary = cross_validate(data, bb, train=TrainConfig(epochs=25, batch_size=8, learning_rate=3e-3),
                             cache=cache, output_dir=tmp_path / "cv", progress=False)
    folds = summary["folds"]
    assert [f["fold"] for f in folds] == [1, 2, 3]
    for f in folds:
        # the default recipe fits on every other fold (no validation fold held out)
        assert sorted(f["train_folds"]) == [k for k in (1, 2, 3) if k != f["fold"]] and f["val_folds"] == []
        assert f["clip"]["num_examples"] == 6
    acc = [f["clip"]["accuracy"] for f in folds]
    m = summary["metrics"]["accuracy"]
    assert np.isclose(m["mean"], np.mean(acc)) and np.isclose(m["std"], np.std(acc))
    assert m["mean"] > 0.8
    assert summary["frame_level"]["metrics"]["accuracy"]["mean"] > 0.7
    # one extraction serves all folds
    calls = bb.calls
    validated = cross_validate(data, bb, train=TrainConfig(epochs=2), cache=cache, validation=True, progress=False)
    assert bb.calls == calls
    for f in validated["folds"]:  # with validation, the fold after the test fold stops early
        assert f["val_folds"] == [f["fold"] % 3 + 1] and sorted(f["train_folds"] + f["val_folds"] + [f["fold"]]) == [1, 2, 3]
    out = tmp_path / "cv"
    assert json.loads((out / "cv.json").read_text())["metrics"]["accuracy"]["mean"] == m["mean"]
    for fold in (1, 2, 3):
        assert (out / f"fold{fold}" / "report.json").is_file()
        assert (out / f"fold{fold}" / "report_confusion.png").stat().st_size > 1000
        assert (out / f"fold{fold}" / "report_curves.png").is_file()
    assert (out / "cv_folds.png").is_file()
