"""Reports: metrics derived by hand on tiny cases, fold summaries against numpy, JSON + PNG writers."""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from tfaudio.io.atomic import atomic_write
from tfaudio.tasks.report import (
    classification_report,
    format_cv,
    format_report,
    summarize_folds,
    write_cv_report,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scores_for(pred, num_classes: int, seed: int = 0) -> np.ndarray:
    """Softmax-like scores whose arg-max is ``pred`` (seeded noise below the winning margin)."""
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.0, 0.1, (len(pred), num_classes)) + 0.8 * np.eye(num_classes)[pred]
    return s / s.sum(1, keepdims=True)


@pytest.fixture
def strict_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---- single-label -------------------------------------------------------------------------------
def test_known_confusion_three_classes(strict_warnings):
    y = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    pred = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    rep = classification_report(y, scores_for(pred, 3), ["a", "b", "c"])
    # rows = true, cols = predicted
    assert rep["confusion_matrix"] == [[3, 1, 0], [0, 2, 1], [0, 0, 3]]
    assert rep["accuracy"] == pytest.approx(8 / 10)
    pc = rep["per_class"]
    assert [pc[x]["recall"] for x in "abc"] == pytest.approx([3 / 4, 2 / 3, 1.0])
    assert [pc[x]["precision"] for x in "abc"] == pytest.approx([1.0, 2 / 3, 3 / 4])
    assert [pc[x]["f1"] for x in "abc"] == pytest.approx([6 / 7, 2 / 3, 6 / 7])
    assert [pc[x]["support"] for x in "abc"] == [4, 3, 3]
    assert rep["macro_f1"] == pytest.approx((6 / 7 + 2 / 3 + 6 / 7) / 3)
    assert rep["weighted_f1"] == pytest.approx((4 * 6 / 7 + 3 * 2 / 3 + 3 * 6 / 7) / 10)
    assert rep["num_examples"] == 10 and rep["labels"] == ["a", "b", "c"] and rep["level"] == "clip"
    assert "top_k_accuracy" not in rep  # only with more than 5 classes
    assert json.loads(json.dumps(rep)) == rep


def test_perfect_scores(strict_warnings):
    y = [0, 1, 2, 1, 0]
    rep = classification_report(y, scores_for(y, 3), ["a", "b", "c"], level="frame")
    assert rep["accuracy"] == rep["macro_f1"] == rep["weighted_f1"] == 1.0
    assert rep["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 1]]
    assert rep["level"] == "frame"


def test_class_never_predicted_has_precision_zero_without_warning(strict_warnings):
    y = [0, 1, 2, 2]
    pred = [0, 1, 1, 1]
    rep = classification_report(y, scores_for(pred, 3), ["a", "b", "c"])
    assert rep["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert rep["per_class"]["b"]["precision"] == pytest.approx(1 / 3)


def test_class_without_examples_is_in_the_confusion_matrix(strict_warnings):
    from sklearn.metrics import f1_score

    y, pred = [0, 0, 1, 2], [0, 1, 1, 2]
    rep = classification_report(y, scores_for(pred, 4), ["a", "b", "c", "d"])
    assert rep["confusion_matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert rep["per_class"]["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    # macro-F1 averages the classes seen in y_true or the predictions ("d" has no evidence)
    assert rep["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert rep["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_top5_accuracy_only_with_more_than_five_classes(strict_warnings):
    y = np.arange(6)
    s = np.eye(6) + 0.01
    s[0] = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]  # the true class 0 is ranked last
    rep = classification_report(y, s, list("abcdef"))
    assert rep["top_k_accuracy"] == {"5": pytest.approx(5 / 6)}
    assert rep["accuracy"] == pytest.approx(5 / 6)
    assert "top_k_accuracy" not in classification_report(y[:5], np.eye(5), list("abcde"))


# ---- multi-label --------------------------------------------------------------------------------
def test_multilabel_perfect_ranking_gives_map_one(strict_warnings):
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    rep = classification_report(y, 0.9 * y + 0.05, ["speech", "music"], multi_label=True)
    assert rep["mAP"] == 1.0 and rep["roc_auc"] == 1.0
    assert rep["accuracy"] == 1.0 and rep["micro_f1"] == 1.0
    assert rep["confusion_matrix"] == [[2, 0], [0, 2]]  # perfect predictions: diagonal only
    assert rep["per_class"]["speech"]["ap"] == 1.0
    assert json.loads(json.dumps(rep)) == rep


def test_multilabel_imperfect_ranking(strict_warnings):
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    s = np.array([[0.9, 0.1], [0.8, 0.9], [0.7, 0.8], [0.1, 0.2]])
    rep = classification_report(y, s, ["speech", "music"], multi_label=True)
    # speech ranks pos, neg, pos, neg: AP = (1/1 + 2/3) / 2; AUC: 3 of 4 pos/neg pairs ordered
    assert rep["per_class"]["speech"]["ap"] == pytest.approx(5 / 6)
    assert rep["per_class"]["speech"]["roc_auc"] == pytest.approx(3 / 4)
    assert rep["mAP"] == pytest.approx((5 / 6 + 1) / 2) and rep["mAP"] < 1
    assert rep["roc_auc"] == pytest.approx((3 / 4 + 1) / 2)


def test_multilabel_subset_accuracy_micro_f1_and_confusion(strict_warnings):
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    pred = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1], [1, 0, 0]])
    rep = classification_report(y, np.where(pred, 0.7, 0.2), ["a", "b", "c"], multi_label=True)
    assert rep["threshold"] == 0.5
    assert rep["accuracy"] == pytest.approx(1 / 4)  # only row 1 matches exactly
    tp, fp, fn = 4, 2, 2
    assert rep["micro_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # diagonal = hits; row 3 missed "c" while predicting "a" -> [c][a]
    assert rep["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [1, 0, 0]]
    assert rep["per_class"]["c"]["recall"] == 0.0 and rep["per_class"]["c"]["support"] == 2


def test_multilabel_roc_auc_none_without_negatives(strict_warnings):
    y = np.array([[1, 1], [0, 1], [1, 1], [0, 1]])  # "music" has no negatives
    s = np.array([[0.9, 0.8], [0.2, 0.7], [0.8, 0.9], [0.1, 0.6]])
    rep = classification_report(y, s, ["speech", "music"], multi_label=True)
    assert rep["per_class"]["music"]["roc_auc"] is None
    assert rep["roc_auc"] == rep["per_class"]["speech"]["roc_auc"] == 1.0
    all_pos = classification_report(np.ones((3, 2), int), np.full((3, 2), 0.7), ["a", "b"], multi_label=True)
    assert all_pos["roc_auc"] is None
    no_pos = classification_report(np.zeros((3, 2), int), np.full((3, 2), 0.2), ["a", "b"], multi_label=True)
    assert no_pos["mAP"] is None and no_pos["per_class"]["a"]["ap"] is None


# ---- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "y, scores, labels, multi, pattern",
    [
        ([0, 1], np.zeros((2, 3)), ["a", "b"], False, r"3 columns.*2 names"),
        ([0, 1, 1], np.zeros((2, 2)), ["a", "b"], False, r"3 examples.*2 rows"),
        ([0, 2], np.zeros((2, 2)), ["a", "b"], False, r"class index 2.*2 names"),
        ([[1, 0], [0, 1]], np.zeros((2, 2)), ["a", "b"], False, r"multi_label=True"),
        ([[1, 0, 0], [0, 1, 0]], np.zeros((2, 2)), ["a", "b"], True, r"\[2, 2\].*\[2, 3\]"),
        ([[2, 0], [0, 1]], np.zeros((2, 2)), ["a", "b"], True, r"only 0 and 1"),
        ([0, 1], [[np.nan, 0], [0, 1]], ["a", "b"], False, r"NaN"),
        ([], np.zeros((0, 2)), ["a", "b"], False, r"no examples"),
        ([0, 1], np.zeros((2, 2)), ["a", "a"], False, r"duplicate"),
        ([0, 1], np.zeros(2), ["a", "b"], False, r"2-D"),
    ],
)
def test_invalid_inputs_raise_clear_errors(y, scores, labels, multi, pattern):
    with pytest.raises(ValueError, match=pattern):
        classification_report(y, scores, labels, multi_label=multi)


# ---- fold summaries -----------------------------------------------------------------------------
def fold_reports(k: int = 3, n: int = 20, labels=("a", "b", "c")):
    reps = []
    for f in range(k):
        rng = np.random.default_rng(f)
        y = rng.integers(0, len(labels), n)
        pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, len(labels), n))
        rep = classification_report(y, scores_for(pred, len(labels), seed=f), list(labels))
        rep["fold"] = f + 1
        reps.append(rep)
    return reps


def test_summarize_folds_against_numpy():
    reps = fold_reports()
    summary = summarize_folds(reps)
    assert summary["num_folds"] == 3 and summary["fold_ids"] == [1, 2, 3] and summary["std_ddof"] == 0
    for key in ("accuracy", "macro_f1", "weighted_f1"):
        vals = [r[key] for r in reps]
        m = summary["metrics"][key]
        assert m["per_fold"] == vals
        assert m["mean"] == pytest.approx(np.mean(vals))
        assert m["std"] == pytest.approx(np.std(vals, ddof=0))
        assert m["std"] != pytest.approx(np.std(vals, ddof=1))
    assert "mAP" not in summary["metrics"]
    cm = np.sum([r["confusion_matrix"] for r in reps], axis=0)
    assert summary["confusion_matrix"] == cm.tolist()
    assert summary["per_class_recall"]["b"] == pytest.approx(cm[1, 1] / cm[1].sum())
    assert summary["num_examples"] == 60
    assert json.loads(json.dumps(summary)) == summary


def test_summarize_folds_multilabel_skips_undefined_roc_auc():
    y1 = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    r1 = classification_report(y1, 0.9 * y1 + 0.05, ["a", "b"], multi_label=True)
    y2 = np.ones((3, 2), int)
    r2 = classification_report(y2, np.full((3, 2), 0.7), ["a", "b"], multi_label=True)
    summary = summarize_folds([r1, r2])
    assert summary["metrics"]["roc_auc"] == {"per_fold": [1.0, None], "mean": 1.0, "std": 0.0, "n": 1}
    assert summary["metrics"]["mAP"]["n"] == 2
    assert summary["per_class_recall"] == {"a": 1.0, "b": 1.0}


def test_summarize_folds_rejects_different_labels():
    reps = fold_reports(2)
    reps[1] = classification_report([0, 1], np.eye(2), ["a", "x"])
    with pytest.raises(ValueError, match=r"fold 2 has labels"):
        summarize_folds(reps)
    with pytest.raises(ValueError, match="at least one"):
        summarize_folds([])


# ---- writers ------------------------------------------------------------------------------------
def check_png(path: str) -> tuple[int, int]:
    import matplotlib.image as mpimg

    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    return img.shape[:2]


def no_temp_files(folder) -> bool:
    return not [p for p in os.listdir(folder) if p.startswith(".") or p.endswith(".tmp")]


def test_write_report_json_and_pngs(tmp_path):
    rep = classification_report([0, 1, 1, 0], scores_for([0, 1, 0, 0], 2), ["dog", "cat"])
    paths = write_report(rep, tmp_path / "out", name="test")
    assert set(paths) == {"json", "confusion", "per_class"}  # no curves without history
    assert paths["json"] == str(tmp_path / "out" / "test.json")
    with open(paths["json"], encoding="utf-8") as f:
        assert json.load(f) == rep
    check_png(paths["confusion"])
    check_png(paths["per_class"])
    assert sorted(os.listdir(tmp_path / "out")) == ["test.json", "test_confusion.png", "test_per_class.png"]


@pytest.mark.slow
def test_write_report_curves_with_history(tmp_path):
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    rep = classification_report(y, 0.6 * y + 0.2, ["speech", "music", "dog"], multi_label=True)
    history = {"loss": [1.0, 0.6, 0.4], "val_loss": [1.1, 0.8, 0.7], "auc": [0.5, 0.7, 0.8],
               "val_auc": [0.5, 0.6, 0.7], "learning_rate": np.full(3, 1e-3, np.float32)}
    paths = write_report(rep, tmp_path, history=history)
    assert set(paths) == {"json", "confusion", "per_class", "curves"}
    h, w = check_png(paths["curves"])
    assert w > h  # three panels side by side
    assert no_temp_files(tmp_path)
    # an empty history has nothing to plot
    assert "curves" not in write_report(rep, tmp_path, name="empty", history={"loss": []})


def test_atomic_write_keeps_old_file_and_no_temp_on_failure(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")

    def fail(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_cv_report_and_format_cv(tmp_path):
    summary = summarize_folds(fold_reports())
    summary["folds"] = [{"fold": 1, "train_folds": (2, 3), "path": tmp_path}]  # what cross_validate adds
    paths = write_cv_report(summary, tmp_path)
    assert set(paths) == {"json", "folds"}
    check_png(paths["folds"])
    with open(paths["json"], encoding="utf-8") as f:
        saved = json.load(f)
    assert saved["metrics"] == summary["metrics"]
    assert saved["folds"] == [{"fold": 1, "train_folds": [2, 3], "path": str(tmp_path)}]
    assert no_temp_files(tmp_path)

    text = format_cv(summary)
    acc = summary["metrics"]["accuracy"]
    assert text.splitlines()[0] == f"accuracy {acc['mean']:.3f} ± {acc['std']:.3f} over 3 folds"
    assert "ddof=0" in text
    for v in acc["per_fold"]:
        assert f"{v:.3f}" in text


def test_format_report():
    y, pred = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2], [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    text = format_report(classification_report(y, scores_for(pred, 3), ["dog", "cat", "rain"]))
    assert "accuracy 0.800" in text and "10 examples" in text
    assert re.search(r"^cat\s+0\.667\s+0\.667\s+0\.667\s+3$", text, re.M)
    ml = format_report(classification_report(np.eye(2, dtype=int), np.eye(2), ["a", "b"], multi_label=True))
    assert "subset accuracy 1.000" in ml and "mAP 1.000" in ml


def test_import_does_not_load_tensorflow():
    code = "import sys, tfaudio.tasks.report; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_non_latin_class_names_keep_their_glyphs_or_say_why(tmp_path, caplog):
    """Cyrillic and Greek are drawn (DejaVu Sans has them); a script no installed font has is drawn as
    #index with one warning naming the font to install, and the JSON keeps every name."""
    import warnings

    from tests.helpers import warns
    from tfaudio.tasks.report_figures import _font_coverage, display_labels

    labels = ["собака", "γάτα", "猫"]
    has_cjk = any(ord("猫") in points for _, points in _font_coverage())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for a lost glyph
        if has_cjk:
            names, _ = display_labels(labels)
            assert names == labels
        else:
            with warns(caplog, "fonts-noto-cjk") as found:
                names, _ = display_labels(labels)
            assert names == ["собака", "γάτα", "#2"] and len(found) == 1
        rep = classification_report([0, 1, 2], scores_for([0, 1, 2], 3), labels)
        paths = write_report(rep, tmp_path)
    assert json.loads(pathlib.Path(paths["json"]).read_text())["labels"] == labels
    assert pathlib.Path(paths["confusion"]).read_bytes()[:8] == PNG_MAGIC
