"""tfaudio detect: streaming a file in blocks (resampled per block with overlap) equals the whole file;
a tone burst at a known time is found within the collar, whatever the block size; the CLI writes its
tables, label tracks and timeline, and `evaluate` scores them against strong labels."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import ToyBackbone, noise, sine, write_audio
from tfaudio.io.audio_stream import stream_audio

BURST = (4.3, 6.8)  # seconds


def _burst_file(path, rate=44100, seconds=12.0, burst=BURST):
    audio = noise(seconds, rate, seed=1, amplitude=0.01)
    a, b = (int(t * rate) for t in burst)
    audio[a:b] += sine(1500.0, (b - a) / rate, rate, amplitude=0.3)
    return write_audio(path, audio, rate)


@pytest.fixture(scope="module")
def tone_scorer():
    """A frame scorer for 1.5 kHz tones: the toy backbone's log band energies (1 kHz bands, 0.2 s
    frames every 0.1 s) and a fixed logistic unit on band 1 against the mean of the others."""
    import tf_keras as keras

    from tfaudio.backbones.backbone import InputContract
    from tfaudio.tasks.clip_scorer import ClipScorer

    bb = ToyBackbone()
    bb.contract = InputContract(16000, 0.2, 0.1, 8, 0.2)
    head = keras.Sequential([keras.Input([8]), keras.layers.Dense(1, activation="sigmoid")])
    w = np.full([8, 1], -2.0 / 7, np.float32)
    w[1] = 2.0
    head.layers[-1].set_weights([w, np.array([-4.0], np.float32)])
    return ClipScorer(bb, head, ["tone"])


@pytest.mark.parametrize("rate, channels", [(44100, 1), (8000, 2), (16000, 1)])
def test_stream_blocks_equal_the_whole_file_resampled(tmp_path, rate, channels):
    from tfaudio.signal.resample import clip_resampler

    x = noise(7.3, rate, seed=2) + sine(440.0, 7.3, rate)
    audio = np.stack([x, 0.5 * x], 1) if channels == 2 else x
    path = write_audio(tmp_path / "a.wav", audio, rate, subtype="FLOAT")
    mono = x if channels == 1 else 0.75 * x
    whole = mono if rate == 16000 else clip_resampler(rate, 16000)(mono).numpy()
    blocks = list(stream_audio(path, 16000, block_seconds=1.0))
    assert len(blocks) == 8
    streamed = np.concatenate(blocks)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=2e-5)


def test_stream_reads_the_file_once_in_bounded_pieces(tmp_path, monkeypatch):
    import soundfile as sf

    rate = 44100
    path = write_audio(tmp_path / "long.flac", noise(30.0, rate, seed=3), rate)
    reads = []
    real = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        out = real(self, frames, *args, **kwargs)
        reads.append((frames, len(out)))
        return out

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    total = sum(len(b) for b in stream_audio(path, 16000, block_seconds=1.0))
    assert total == 30 * 16000
    assert all(0 < asked <= 1.05 * rate + 441 for asked, _ in reads)  # a block and its overlap, never the file
    assert sum(got for _, got in reads) == 30 * rate  # one pass over the file


def test_unreadable_file_is_named(tmp_path):
    from tfaudio.errors import AudioError

    bad = tmp_path / "x.wav"
    bad.write_bytes(b"RIFF but not really")
    with pytest.raises(AudioError, match="x.wav: not an audio file.*Fix:"):
        list(stream_audio(bad, 16000))


def test_tone_burst_is_found_within_the_collar_in_any_block_size(tmp_path, tone_scorer):
    from tfaudio.inference.detection import EventDetectionModel, detect_events

    path = _burst_file(tmp_path / "burst.wav")
    model = EventDetectionModel(tone_scorer)
    assert (model.mode, model.hop_seconds, model.window_seconds) == ("frames", 0.1, 0.2)
    seen = []
    score_chunk = model.score_chunk
    model.score_chunk = lambda chunk: seen.append(len(chunk)) or score_chunk(chunk)
    [small] = detect_events(path, model, block_seconds=1.3)  # ~10 chunks, each resampled separately
    assert len(seen) >= 9 and max(seen) <= 1.3 * 16000 + 3200  # the model never sees more than a chunk
    [big] = detect_events(path, model, block_seconds=100.0)  # the file in one chunk
    assert small.frames == big.frames == model.num_frames(12 * 16000)
    [ev] = small.events
    assert ev.label == "tone" and ev.score > 0.9
    assert abs(ev.onset - BURST[0]) <= 0.2
    assert abs(ev.offset - BURST[1]) <= max(0.2, 0.2 * (BURST[1] - BURST[0]))
    assert [(e.onset, e.offset) for e in big.events] == [(ev.onset, ev.offset)]
    # windows scored as clips (as for a model without frame scores) find it too
    [win] = detect_events(path, EventDetectionModel(tone_scorer, window_seconds=0.3, hop_seconds=0.1),
                          block_seconds=2.0)
    [ew] = win.events
    assert abs(ew.onset - BURST[0]) <= 0.2 and abs(ew.offset - BURST[1]) <= 0.5


def test_an_export_with_frame_scores_detects_the_same_events(tmp_path, tone_scorer):
    """The export's frame_scores and the grid in its tfaudio.json are all a client needs."""
    from tfaudio.export.saved_model import export_saved_model
    from tfaudio.inference.detection import EventDetectionModel, detect_events

    path = _burst_file(tmp_path / "burst.wav", rate=16000)
    export_saved_model(tone_scorer, tmp_path / "export", frame_scores=True)
    model = EventDetectionModel(str(tmp_path / "export"))
    assert (model.mode, model.hop_seconds, model.window_seconds) == ("export_frames", 0.1, 0.2)
    [exported] = detect_events(path, model, block_seconds=2.0)
    [direct] = detect_events(path, tone_scorer, block_seconds=2.0)
    assert exported.frames == direct.frames
    assert [(e.onset, e.offset) for e in exported.events] == [(e.onset, e.offset) for e in direct.events]
    assert [e.score for e in exported.events] == pytest.approx([e.score for e in direct.events], abs=1e-4)


def test_detect_cli_writes_tables_tracks_and_timeline_and_evaluate_scores_them(tmp_path, tone_scorer, monkeypatch,
                                                                               capsys):
    import tfaudio.inference.detection as detection
    from tfaudio.cli import main
    from tfaudio.inference.loader import LoadedModel

    real = detection.load_model
    monkeypatch.setattr(detection, "load_model", lambda source, **kw: LoadedModel(
        "classifier", tone_scorer, tone_scorer, ("tone",), 16000, "toy") if source == "toy" else real(source, **kw))
    audio = tmp_path / "audio"
    _burst_file(audio / "one.wav")
    _burst_file(audio / "two.wav", rate=16000, seconds=9.0, burst=(1.0, 2.0))
    out = tmp_path / "out"
    assert main(["detect", str(audio / "one.wav"), str(audio / "two.wav"), "--model", "toy", "-o", str(out),
                 "--block", "2"]) == 0
    printed = capsys.readouterr().out
    assert "one.wav" in printed and "tone" in printed
    rows = (out / "events.csv").read_text().splitlines()
    assert rows[0] == "filename,onset,offset,event_label,score" and len(rows) == 3
    track = (out / "one.labels.txt").read_text().splitlines()
    assert len(track) == 1 and track[0].split("\t")[2].startswith("tone (")
    assert abs(float(track[0].split("\t")[0]) - BURST[0]) <= 0.2
    assert (out / "one.timeline.png").read_bytes()[:4] == b"\x89PNG"
    [one, two] = json.loads((out / "events.json").read_text())
    assert one["hop_seconds"] == 0.1 and len(two["events"]) == 1

    ref = tmp_path / "ref.tsv"
    ref.write_text("filename\tonset\toffset\tevent_label\n"
                   f"one.wav\t{BURST[0]}\t{BURST[1]}\ttone\ntwo.wav\t1.0\t2.0\ttone\n")
    report_dir = tmp_path / "rep"
    assert main(["evaluate", "toy", str(ref), "--audio-dir", str(audio), "-o", str(report_dir), "--block", "3"]) == 0
    rep = json.loads((report_dir / "event_report.json").read_text())
    assert rep["event_based"]["overall"]["f1"] == 1.0
    # segments: what the metrics give for the detected events and the files' durations
    from tfaudio.io.strong_labels import read_strong_labels
    from tfaudio.tasks.event_metrics import segment_based_metrics

    detected = [e.__class__(e.onset, e.offset, e.label, e.score, e.file.rsplit("/", 1)[-1])
                for e in read_strong_labels(out / "events.tsv")]
    seg = segment_based_metrics(read_strong_labels(ref), detected, durations={"one.wav": 12.0, "two.wav": 9.0})
    assert rep["segment_based"]["overall"] == seg["overall"]
    assert (report_dir / "event_report.png").is_file()
    # the same from the detections table, without a model; and a wrong reference scores lower
    assert main(["evaluate", str(out / "events.tsv"), str(ref), "-o", str(report_dir)]) == 0
    assert json.loads((report_dir / "event_report.json").read_text())["event_based"]["overall"]["f1"] == 1.0
    ref.write_text("filename\tonset\toffset\tevent_label\none.wav\t0.5\t1.0\ttone\n")
    assert main(["evaluate", str(out / "events.tsv"), str(ref), "-o", str(report_dir)]) == 0
    assert json.loads((report_dir / "event_report.json").read_text())["event_based"]["overall"]["f1"] == 0.0
    capsys.readouterr()
    # a bad file among good ones: stop (default) or skip it and report it
    (audio / "bad.wav").write_bytes(b"not audio")
    argv = ["detect", str(audio / "two.wav"), str(audio / "bad.wav"), "--model", "toy"]
    assert main(argv) == 2 and "bad.wav" in capsys.readouterr().err
    assert main(argv + ["--on-error", "skip"]) == 0
    captured = capsys.readouterr()
    assert "two.wav" in captured.out and "skipped 1 of 2 files" in captured.err and "bad.wav" in captured.err


def test_cli_errors_are_one_line(tmp_path, capsys):
    from tfaudio.cli import main

    ref = tmp_path / "ref.tsv"
    ref.write_text("filename\tonset\toffset\tevent_label\nmissing.wav\t1\t2\tdog\n")
    assert main(["evaluate", "yamnet", str(ref)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--audio-dir" in err
    assert main(["detect", str(tmp_path / "nope.wav")]) == 2
    err = capsys.readouterr().err
    assert "nope.wav: file not found" in err and "Traceback" not in err
    assert main(["detect", str(tmp_path / "nope.wav"), "--low", "0.9", "--high", "0.5"]) == 2
    assert "--low 0.9 is above --high 0.5" in capsys.readouterr().err
