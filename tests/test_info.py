"""Model info: MAC counts against hand counts and TensorFlow's own FLOP statistics, activation memory
against a hand-worked liveness example, parameters against Keras, file sizes against the file system,
and the `tfaudio info` command (text and JSON)."""
from __future__ import annotations

import contextlib
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.helpers import shared
from tfaudio.cli import main
from tfaudio.inference.model_info import (
    count_macs,
    export_files,
    frontend_macs_per_frame,
    graph_macs,
    model_info,
    peak_activation_bytes,
)

LABELS = ("low", "high", "hiss")


def traced(model, shape):
    """The model's graph for one example of ``shape`` (static shapes, as the FLOP statistics need)."""
    return tf.function(lambda x: model(x, training=False), autograph=False).get_concrete_function(
        tf.TensorSpec([1, *shape]))


# ---- MACs ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    L = keras.layers
    inp = keras.Input([10, 8, 3])
    x = L.Conv2D(4, 3, strides=2, padding="same", use_bias=False, name="conv")(inp)  # [5, 4, 4]
    x = L.BatchNormalization(name="bn")(x)
    x = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="depthwise")(x)  # [5, 4, 8]
    x = L.Conv2D(6, 1, name="pointwise")(x)  # [5, 4, 6]
    x = L.SeparableConv2D(4, 3, name="separable")(x)  # [3, 2, 4] (valid padding)
    x = L.Dense(5, name="dense3d")(x)  # [3, 2, 5]: Dense on the last axis
    x = L.GlobalAveragePooling2D(name="pool")(x)  # [5]
    out = L.Dense(2, name="out")(x)  # [2]
    return keras.Model(inp, out)


def test_macs_of_a_tiny_model_by_hand(tiny):
    hand = {
        "conv": 5 * 4 * 4 * (3 * 3 * 3),  # out positions x out channels x kernel x in channels
        "bn": 0,
        "depthwise": 5 * 4 * 8 * (3 * 3),  # out positions x (in channels x multiplier) x kernel
        "pointwise": 5 * 4 * 6 * 8,
        "separable": 3 * 2 * 6 * 9 + 3 * 2 * 6 * 4,  # depthwise on 6 channels + 1x1 to 4
        "dense3d": 3 * 2 * 4 * 5,
        "pool": 0,
        "out": 5 * 2,
    }
    counts = count_macs(tiny)
    assert {k: v for k, v in counts.items() if k in hand} == hand
    # TensorFlow's own statistics (what tf.compat.v1.profiler sums) agree op by op
    by_op = graph_macs(traced(tiny, [10, 8, 3]))
    assert by_op["Conv2D"] == hand["conv"] + hand["pointwise"] + 3 * 2 * 6 * 4
    assert by_op["DepthwiseConv2dNative"] == hand["depthwise"] + 3 * 2 * 6 * 9
    assert by_op["MatMul"] == hand["dense3d"] + hand["out"]
    assert sum(by_op.values()) == sum(hand.values())


@pytest.fixture(scope="module")
def yamnet():
    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone

    return YAMNetBackbone()  # random weights: costs do not depend on them


def test_yamnet_body_macs_hand_count_and_tf_statistics(yamnet):
    """YAMNet's body per 0.96 s patch, three ways: the layer table by hand, count_macs, TF's FLOPs."""
    params = yamnet.params
    h, w, channels, hand = params.frontend.patch_frames, params.frontend.num_mel_bins, 1, 0
    for spec in params.layers:  # "same" padding: the output is ceil(input / stride)
        h, w = math.ceil(h / spec.stride), math.ceil(w / spec.stride)
        if spec.kind == "conv":
            hand += h * w * spec.filters * 9 * channels
        else:
            hand += h * w * channels * 9 + h * w * channels * spec.filters
        channels = spec.filters
    hand += channels * params.num_classes  # the AudioSet layer on the pooled embedding
    counted = sum(v for v in count_macs(yamnet.body).values())
    assert counted == hand
    assert 68e6 < hand < 70e6  # the ~69 M MACs per patch usually quoted for YAMNet, now checked
    assert sum(graph_macs(traced(yamnet.body, [96, 64])).values()) == hand


def test_frontend_macs_match_tf_statistics():
    from tfaudio.signal import melspec

    config = melspec.LogMelConfig()
    per_frame = frontend_macs_per_frame(config)
    # the DFT-matmul form of the STFT (the TFLite exports'); plain TF graphs may use an RFFT instead
    matmul_form = getattr(melspec, "tflite_compatible", contextlib.nullcontext)
    with matmul_form():
        fn = tf.function(lambda x: melspec.log_mel_spectrogram(x, config), autograph=False).get_concrete_function(
            tf.TensorSpec([config.min_samples]))
    frames = 1 + (config.min_samples - config.window_samples) // config.hop_samples  # 96
    assert graph_macs(fn) == {"MatMul": frames * (per_frame["dft"] + per_frame["mel"])}


# ---- activation memory ---------------------------------------------------------------------------
def test_peak_activation_follows_tensor_liveness():
    L = keras.layers
    inp = keras.Input([16], name="x")
    a = L.Dense(32, name="a")(inp)
    b = L.Dense(8, name="b")(a)
    c = L.Concatenate(name="c")([inp, b])  # x stays alive until here
    out = L.Dense(4, name="out")(c)
    model = keras.Model(inp, out)
    # live while each layer runs (float32, per example): a: x+a = 48, b: x+a+b = 56, c: x+b+c = 48,
    # out: c+out = 28 values
    peak, where = peak_activation_bytes(model, batch=3)
    assert (peak, where) == (3 * (16 + 32 + 8) * 4, "b")


# ---- the report ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def classifier(yamnet):
    from tfaudio.heads.classification_head import build_head
    from tfaudio.tasks.audio_classifier import AudioClassifier

    keras.utils.set_random_seed(0)
    clf = AudioClassifier(yamnet, labels=LABELS)
    clf.head_model_ = build_head(1024, len(LABELS))
    return clf


def test_model_info_of_a_yamnet_classifier(classifier, yamnet):
    info = model_info(classifier)
    body, head = yamnet.body.count_params(), classifier.head_model_.count_params()
    assert info["parameters"]["backbone"] == body and info["parameters"]["head"] == head
    assert info["parameters"]["total"] == body + head
    assert info["labels"] == list(LABELS) and info["num_labels"] == 3 and info["sample_rate"] == 16000
    macs = info["macs"]
    assert macs["backbone_per_patch"] == sum(count_macs(yamnet.body).values())
    assert macs["head_per_patch"] == 1024 * 512 + 512 * 3  # the default head: Dense 512, Dense 3
    by_part = macs["per_second_by_part"]
    assert by_part["frontend"] == round(sum(frontend_macs_per_frame().values()) * 100)  # 100 frames/s
    assert by_part["backbone"] == round(macs["backbone_per_patch"] / 0.48)  # a patch every 0.48 s
    assert macs["per_second"] == sum(by_part.values()) and not macs["uncounted"]
    # 10 s: padded to 15600 + 19 * 7680 samples → 20 patches and 1008 STFT frames
    assert macs["per_clip"] == 1008 * sum(frontend_macs_per_frame().values()) + 20 * (
        macs["backbone_per_patch"] + macs["head_per_patch"])
    act = info["activations"]
    # the largest layer pair: layer2's pointwise conv output [48, 32, 64] and its batch norm, 20 patches
    assert act["patches"] == 20 and act["peak_bytes"] == 2 * 20 * 48 * 32 * 64 * 4
    assert act["peak_at"] == "layer2/pointwise_conv/bn"
    assert model_info(classifier, clip_seconds=2.0)["activations"]["peak_bytes"] == 2 * 4 * 48 * 32 * 64 * 4


@pytest.fixture(scope="module")
def folders(classifier, tmp_path_factory):
    """A saved model folder and an export folder (a real SavedModel, a stand-in .tflite)."""
    from tfaudio.export.saved_model import export_saved_model

    root = tmp_path_factory.mktemp("info")
    model = classifier.save(root / "model")
    export = root / "export"
    export_saved_model(classifier, export / "saved_model")
    (export / "model_float16.tflite").write_bytes(b"\0" * 12345)  # sizes only; not a real model
    return model, export


@pytest.mark.slow
def test_export_file_sizes_equal_the_file_system(folders):
    model, export = folders
    files = {f["path"]: f for f in export_files(export)}
    assert files["model_float16.tflite"] == {"path": "model_float16.tflite", "kind": "tflite", "bytes": 12345}
    saved = export / "saved_model"
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(saved) for f in fs)
    assert files["saved_model"] == {"path": "saved_model", "kind": "saved_model", "bytes": total}
    in_model = {f["path"]: f["bytes"] for f in export_files(model)}
    assert in_model["head.keras"] == os.path.getsize(model / "head.keras")
    assert in_model["tfaudio.json"] == os.path.getsize(model / "tfaudio.json")


@pytest.mark.slow
def test_export_folder_info(folders, classifier, yamnet):
    _, export = folders
    info = model_info(export)
    assert info["kind"] == "export" and info["labels"] == list(LABELS)
    assert info["parameters"]["total"] == yamnet.body.count_params() + classifier.head_model_.count_params()
    assert info["macs"] is None and "model folder" in info["note"]


@pytest.mark.slow
def test_info_command_text_and_json(folders, classifier, capsys):
    shared("models", "yamnet", "yamnet.h5")  # loading the saved folder re-creates YAMNet from its weights
    model, export = folders
    assert main(["info", str(model), "--exports", str(export), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    expected = model_info(classifier, exports=[export])
    assert info["parameters"] == expected["parameters"] and info["macs"] == expected["macs"]
    assert info["activations"] == expected["activations"]
    sizes = {f["path"]: f["bytes"] for f in info["files"]}
    assert sizes[str(model / "head.keras")] == os.path.getsize(model / "head.keras")
    assert sizes[str(export / "model_float16.tflite")] == 12345
    assert main(["info", str(model), "--exports", str(export)]) == 0
    text = capsys.readouterr().out
    assert f"parameters   {info['parameters']['total']:,}" in text
    assert "per second of audio" in text and "peak 15.73 MB for a 10 s clip" in text
    assert "labels       3: low | high | hiss" in text
    assert str(export / "model_float16.tflite") in text and "saved_model" in text


def test_info_errors(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope")]) == 2
    assert "no such model folder" in capsys.readouterr().err
    assert main(["info", str(tmp_path), "--clip-seconds", "0"]) == 2
    assert "--clip-seconds" in capsys.readouterr().err


def test_info_of_yamnet_itself(yamnet):
    info = model_info(yamnet)
    assert info["kind"] == "audio-tagging" and info["parameters"]["total"] == yamnet.body.count_params()
    assert info["parameters"]["head"] == 0 and info["macs"]["per_second_by_part"]["head"] == 0
    assert np.isclose(info["macs"]["patches_per_second"], 1 / 0.48)
