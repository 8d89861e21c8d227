"""int8 variants: the search keeps the fewest float ops that agree, its record is measured on windows that
did not choose it, and (real YAMNet, default recipe) each variant's recorded agreement holds on windows
the export never saw."""
from __future__ import annotations

import io
import json
import random
import zipfile

import numpy as np
import pytest

from tests.helpers import shared
from tfaudio.export import int8


# ---- the search (no TFLite model needed) -----------------------------------------------------------
def _fake_search(monkeypatch, needed_tail: int, needed_head: int = 0, ops: int = 20, quiet_tail: int = 0):
    """Patches the quantizer and the measure: a model 'agrees' when at least ``needed_head`` leading and
    ``needed_tail`` trailing ops stay float, and keeps the float scores (a score change under the
    target) once ``quiet_tail`` trailing ops are float too; records which windows each measure saw."""
    from tensorflow.lite.python import convert

    names = [[f"op{i}"] for i in range(ops)]
    weighted = [2, 4, 6, 8, 10]
    monkeypatch.setattr(int8, "quantizable_ops", lambda model, frontend: (names, weighted))
    monkeypatch.setattr(convert, "mlir_quantize", lambda model, denylisted_nodes=(), **kw: tuple(denylisted_nodes))
    seen = []

    def measure(model, windows, reference):
        seen.append([float(w[0, 0]) for w in windows])
        floats = set(model) - {"front"}
        head = next((i for i in range(ops) if f"op{i}" not in floats), ops)
        tail = next((i for i in range(ops) if f"op{ops - 1 - i}" not in floats), ops)
        return {"top1": 1.0 if head >= needed_head and tail >= needed_tail else 0.5,
                "score_error": 0.01 if tail >= quiet_tail else 0.2}

    monkeypatch.setattr(int8, "measure", measure)
    windows = [np.full([1, 4], float(i), np.float32) for i in range(40)]
    return windows, seen


def test_search_keeps_the_fewest_float_ops_that_agree(monkeypatch):
    windows, seen = _fake_search(monkeypatch, needed_tail=6)
    model, record, floats = int8.quantize_int8(b"", "int8", windows, lambda w: {"scores": w}, ["front"])
    # tails are tried at TAIL_FRACTIONS of 20 ops: 0, 2, 4, 6 -> 6 is the first that agrees
    assert record["float_tail_ops"] == 6 and record["float_head_ops"] == 0
    assert floats == [f"op{i}" for i in range(14, 20)]
    assert record["chosen_on"]["top1"] == 1.0 and record["target"] == int8.AGREEMENT_TARGET
    # chosen on the even windows, recorded on the odd ones: the record never saw the choice's windows
    assert set(seen[0]) == {float(i) for i in range(0, 40, 2)}
    assert set(seen[-1]) == {float(i) for i in range(1, 40, 2)}
    assert record["windows"] == 20


def test_search_tries_a_float_start_and_falls_back_to_the_best(monkeypatch):
    windows, _ = _fake_search(monkeypatch, needed_tail=2, needed_head=3)
    _, record, floats = int8.quantize_int8(b"", "int8", windows, lambda w: {"scores": w}, ["front"])
    # float starts end after a weighted op (indices 2, 6, 10 -> 3, 7, 11 ops); 3 ops + a tail of 2 is the
    # smallest candidate that agrees
    assert record["float_head_ops"] == 3 and record["float_tail_ops"] == 2
    assert floats == ["op0", "op1", "op2", "op18", "op19"]
    # nothing agrees: the best candidate is kept and the record says it missed
    windows, _ = _fake_search(monkeypatch, needed_tail=99)
    _, record, _ = int8.quantize_int8(b"", "int8", windows, lambda w: {"scores": w}, ["front"])
    assert record["chosen_on"]["top1"] == 0.5 and len(record["chosen_on"]["tried"]) > 10


def test_search_also_needs_the_scores_kept(monkeypatch):
    """A design that picks the float top class on every choice window but moves the scores more than
    SCORE_ERROR_TARGET is passed over (the training clips' confident answers hide int8 error)."""
    windows, _ = _fake_search(monkeypatch, needed_tail=2, quiet_tail=6)
    _, record, floats = int8.quantize_int8(b"", "int8", windows, lambda w: {"scores": w}, ["front"])
    tried = record["chosen_on"]["tried"]
    assert tried[0]["top1"] < 1.0 and any(t["top1"] == 1.0 and t["score_error"] > int8.SCORE_ERROR_TARGET
                                           for t in tried)
    assert record["float_tail_ops"] == 6 and floats == [f"op{i}" for i in range(14, 20)]
    assert record["score_error"] <= int8.SCORE_ERROR_TARGET == record["score_error_target"]


# ---- real YAMNet, the default recipe ----------------------------------------------------------------
LABELS = ("dog", "cat", "rooster", "crying_baby")
WINDOW = 15600


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest
    from tfaudio.tasks.audio_classifier import AudioClassifier

    m = Manifest.from_csv(shared("data", "esc50-subset", "meta", "esc50.csv")).select(list(LABELS))
    split = m.split(train=[1, 2], test=[5])
    backbone = YAMNetBackbone.from_h5(shared("models", "yamnet", "yamnet.h5"))
    cache = EmbeddingCache(backbone, tmp_path_factory.mktemp("cache"))
    clf = AudioClassifier(backbone, labels=LABELS, cache=cache).fit(split.train)  # the default recipe
    return clf, split


@pytest.fixture(scope="module")
def unseen_windows(trained):
    """Every window of the test clips (fold 5: unseen by training and calibration), cut as the export cuts
    its calibration clips (quiet windows included: the record is measured on such windows)."""
    from tfaudio.data.audio_converter import AudioConverter
    from tfaudio.export.tflite import _windows

    convert = AudioConverter(16000)
    return [w for path in trained[1].test.paths for w in _windows(convert(path, 16000), WINDOW)]


_MODELS: dict[tuple[str, int | None], tuple[bytes, list[str]]] = {}


def _export(trained, variant: str, caplog, window: int | None = WINDOW, clips: int = 24) -> tuple[bytes, list[str]]:
    """The variant's bytes and the warnings its export gave (exported once per module), calibrated on
    ``clips`` training clips; ``window``: the streaming window, or None for the export's default (the
    training clips' 5.295 s)."""
    from tfaudio.export.tflite import tflite_model

    if (variant, window) not in _MODELS:
        clf, split = trained
        calibration = list(split.train.paths)
        random.Random(0).shuffle(calibration)
        caplog.clear()
        with caplog.at_level("WARNING", logger="tfaudio"):
            model = tflite_model(clf, quantization=variant, window_samples=window,
                                 representative_data=calibration[:clips] if "int8" in variant else None)
        _MODELS[variant, window] = model, [r.getMessage() for r in caplog.records]
    return _MODELS[variant, window]


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["int8", "int8_full"])
def test_recorded_agreement_holds_on_unseen_windows(variant, trained, unseen_windows, caplog):
    from tfaudio.export.int8 import _run
    from tfaudio.interpreter import tflite_interpreter

    reference = _run(_export(trained, "float32", caplog)[0], unseen_windows)
    model, warnings = _export(trained, variant, caplog)
    record = json.loads(zipfile.ZipFile(io.BytesIO(model)).read("tfaudio.json"))["int8_agreement"]
    measured = float(np.mean(_run(model, unseen_windows).argmax(1) == reference.argmax(1)))
    print(f"{variant}: recorded {record['top1']:.3f} on {record['windows']} windows, unseen {measured:.3f} "
          f"on {len(unseen_windows)}, {len(model) / 1e6:.2f} MB, {record}")
    assert record["windows"] >= 30
    assert abs(record["top1"] - measured) <= 0.1, (record, measured)
    warned = [m for m in warnings if "int8: the quantized model" in m]
    assert bool(warned) == (record["top1"] < 0.95), warned
    inp = tflite_interpreter(model_content=model).get_input_details()[0]
    out = tflite_interpreter(model_content=model).get_output_details()[0]
    if variant == "int8":
        # the lever: float ends around an int8 middle keep the float model's answers
        assert measured >= 0.93, measured
        assert inp["dtype"] == np.float32 and out["dtype"] == np.float32
        assert record["quantized_ops"] > 0
    else:
        assert inp["dtype"] == np.int8 and out["dtype"] == np.int8  # full integer, for accelerators


@pytest.mark.slow
def test_default_window_int8_records_what_unseen_clips_show(trained, caplog):
    """At the export's default window (one 5.295 s window per 5 s clip), int8's recorded agreement and
    score change, measured on half of the training clips, hold on the unseen clips of fold 5."""
    from tfaudio.data.audio_converter import AudioConverter
    from tfaudio.export.int8 import SCORE_ERROR_TARGET, measure
    from tfaudio.export.tflite import _windows

    clf, split = trained
    model, warnings = _export(trained, "int8", caplog, window=None, clips=len(split.train))
    float32, _ = _export(trained, "float32", caplog, window=None)
    info = json.loads(zipfile.ZipFile(io.BytesIO(model)).read("tfaudio.json"))
    window = info["window_samples"]
    assert window == 15600 + 9 * 7680 and info["window_from"] == "training_clips"  # 10 patches
    convert = AudioConverter(16000)
    unseen = [w for path in split.test.paths for w in _windows(convert(path, 16000), window)]
    assert len(unseen) == len(split.test)  # one window per clip
    from tfaudio.export.int8 import _run

    got = measure(model, unseen, _run(float32, unseen))
    record = info["int8_agreement"]
    print(f"int8 at {window} samples: recorded {record['top1']:.3f} / {record['score_error']:.4f} on "
          f"{record['windows']} windows, unseen {got}, design {record.get('float_head_ops')} + "
          f"{record.get('float_tail_ops')} float ops")
    assert record["windows"] == len(split.train) // 2
    assert abs(record["top1"] - got["top1"]) <= 0.1 and got["top1"] >= 0.9, (record, got)
    assert record["chosen_on"]["score_error"] <= SCORE_ERROR_TARGET  # the search found a design that keeps scores
    assert record["score_error"] <= 2 * SCORE_ERROR_TARGET and not warnings, (record, warnings)
    assert got["score_error"] <= 2 * max(record["score_error"], SCORE_ERROR_TARGET), (record, got)


@pytest.mark.slow
def test_int8_agrees_in_mediapipe(trained, tmp_path, caplog):
    """MediaPipe's AudioClassifier runs the int8 file (float32 in and out) on unseen clips and picks the
    float32 file's top class on (nearly) every window, as the interpreter does."""
    pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import audio as mp_audio
    from mediapipe.tasks.python.components.containers.audio_data import AudioData
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from tfaudio.data.audio_converter import AudioConverter

    convert = AudioConverter(16000)
    clips = [convert(p, 16000) for p in trained[1].test.paths]
    tops = {}
    for variant in ("float32", "int8"):
        path = tmp_path / f"{variant}.tflite"
        path.write_bytes(_export(trained, variant, caplog)[0])
        options = mp_audio.AudioClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=1)
        with mp_audio.AudioClassifier.create_from_options(options) as classifier:
            tops[variant] = [r.classifications[0].categories[0].category_name
                             for clip in clips for r in classifier.classify(AudioData.create_from_array(clip, 16000))]
    assert len(tops["int8"]) == len(tops["float32"]) >= 4 * len(clips)
    agreement = float(np.mean([a == b for a, b in zip(tops["int8"], tops["float32"], strict=True)]))
    print(f"MediaPipe int8 vs float32: top-1 agreement {agreement:.3f} on {len(tops['int8'])} windows")
    assert agreement >= 0.93, agreement
