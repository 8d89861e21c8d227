"""Events from frame scores (median filter, hysteresis, merging), event / segment metrics against
hand-computed values, and the DCASE strong-label table. Pure numpy: no TensorFlow."""
from __future__ import annotations

import numpy as np
import pytest

from tfaudio.io.strong_labels import Event, StrongLabelError, format_strong_labels, read_strong_labels
from tfaudio.tasks.event_metrics import event_based_metrics, segment_based_metrics
from tfaudio.tasks.events import EventConfig, EventDetector, events_from_scores, median_filter

E = Event
PLAIN = EventConfig(high=0.5, low=0.3, median_seconds=0.0, min_gap_seconds=0.0)


def test_median_filter_removes_single_frame_spikes_and_keeps_runs():
    x = np.array([0, 0, 1, 0, 0, 1, 1, 1, 0], np.float32)[:, None]
    np.testing.assert_array_equal(median_filter(x, 3)[:, 0], [0, 0, 0, 0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(median_filter(x, 1), x)


def test_hysteresis_starts_at_high_and_lasts_while_above_low():
    # hop 1 s, window 1 s: frame i stands for [i, i + 1]
    s = np.array([0.1, 0.4, 0.6, 0.35, 0.2, 0.4, 0.1], np.float32)[:, None]
    [ev] = events_from_scores(s, ["dog"], 1.0, 1.0, PLAIN, file="a.wav")
    assert (ev.onset, ev.offset, ev.label, ev.file) == (1.0, 4.0, "dog", "a.wav")  # frame 5 (0.4) never reached 0.5
    assert ev.score == pytest.approx(0.6)
    # plain thresholding (low = high) keeps only frame 2
    [ev] = events_from_scores(s, ["dog"], 1.0, 1.0, EventConfig(high=0.5, low=None, median_seconds=0))
    assert (ev.onset, ev.offset) == (2.0, 3.0)


def test_merging_and_minimum_duration():
    s = np.array([0.9, 0.9, 0.0, 0.9, 0.0, 0.0, 0.0, 0.9], np.float32)[:, None]
    apart = events_from_scores(s, ["x"], 1.0, 1.0, PLAIN, duration=8.0)
    assert [(e.onset, e.offset) for e in apart] == [(0.0, 2.0), (3.0, 4.0), (7.0, 8.0)]
    merged = events_from_scores(s, ["x"], 1.0, 1.0, EventConfig(0.5, 0.3, 0.0, min_gap_seconds=1.0), duration=8.0)
    assert [(e.onset, e.offset) for e in merged] == [(0.0, 4.0), (7.0, 8.0)]  # a 1 s gap merges, 3 s does not
    long = events_from_scores(s, ["x"], 1.0, 1.0, EventConfig(0.5, 0.3, 0.0, 0.0, min_duration_seconds=1.5))
    assert [(e.onset, e.offset) for e in long] == [(0.0, 2.0)]


def test_frame_times_follow_the_frame_centres():
    # hop 0.5 s, window 1 s: frame i is centred at i * 0.5 + 0.5 and stands for ±0.25 s (the first from 0)
    s = np.zeros([10, 2], np.float32)
    s[4:6, 1] = 0.9
    s[0, 0] = 0.9
    evs = events_from_scores(s, ["a", "b"], 0.5, 1.0, PLAIN, duration=5.2)
    assert [(e.label, e.onset, e.offset) for e in evs] == [("a", 0.0, 0.75), ("b", 2.25, 3.25)]


@pytest.mark.parametrize("seed", [0, 1])
def test_streaming_in_any_blocks_equals_one_array(seed):
    rng = np.random.default_rng(seed)
    x = rng.random((400, 3)).astype(np.float32)
    cfg = EventConfig(high=0.8, low=0.5, median_seconds=5.0, min_gap_seconds=2.0, min_duration_seconds=1.0)
    whole = events_from_scores(x, list("abc"), 1.0, 1.0, cfg, duration=400.0)
    det = EventDetector(list("abc"), 1.0, 1.0, cfg)
    streamed, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 30))
        streamed += det.feed(x[i : i + n])
        i += n
    streamed += det.finish(400.0)
    assert len(whole) > 5
    assert sorted(streamed, key=lambda e: (e.onset, e.label)) == whole


def test_low_above_high_is_refused():
    with pytest.raises(Exception, match="low threshold"):
        events_from_scores(np.zeros([3, 1]), ["a"], 1.0, 1.0, EventConfig(high=0.3, low=0.5))


# ---- metrics: hand-computed ---------------------------------------------------------------------
def test_event_based_f1_by_hand():
    ref = [E(1, 3, "dog", file="a"), E(5, 10, "dog", file="a"), E(2, 2.5, "cat", file="a")]
    est = [E(1.15, 3.3, "dog", file="a"),  # onset 0.15 <= 0.2, offset 0.3 <= max(0.2, 20 % of 2 s = 0.4): hit
           E(5.3, 10, "dog", file="a"),  # onset 0.3 > 0.2: miss
           E(2.1, 2.75, "cat", file="a"),  # offset 0.25 > max(0.2, 0.1): miss
           E(20, 21, "dog", file="a"),  # nothing there
           E(1.0, 3.0, "dog", file="b")]  # right times, wrong file
    m = event_based_metrics(ref, est)
    assert (m["overall"]["tp"], m["overall"]["fp"], m["overall"]["fn"]) == (1, 4, 2)
    assert m["overall"]["f1"] == pytest.approx(2 / 8)
    assert m["overall"]["precision"] == pytest.approx(1 / 5) and m["overall"]["recall"] == pytest.approx(1 / 3)
    assert m["class_wise"]["dog"]["f1"] == pytest.approx(2 / (2 + 3 + 1))
    assert m["class_wise"]["cat"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx(1 / 3 / 2)


def test_event_matching_is_optimal_not_greedy():
    # e1 fits both references, e2 only the second: a greedy pass in this order pairs e1 with r1 and
    # leaves e2 alone (1 hit); the best matching has 2
    ref = [E(0.3, 1.3, "x"), E(0.0, 1.0, "x")]
    est = [E(0.15, 1.15, "x"), E(0.45, 1.45, "x")]
    assert event_based_metrics(ref, est)["overall"]["tp"] == 2
    once = event_based_metrics(ref[:1], [E(0.15, 1.15, "x")] * 3)["overall"]  # a reference is hit once
    assert (once["tp"], once["fp"], once["fn"]) == (1, 2, 0)


def test_segment_based_f1_and_error_rate_by_hand():
    ref = [E(0.5, 1.5, "dog", file="a"), E(2.2, 2.8, "cat", file="a")]
    est = [E(1.2, 2.1, "dog", file="a"), E(3.1, 3.5, "cat", file="a")]
    # 1 s segments of a 4 s file: 0 ref dog / -  (D); 1 dog / dog (TP); 2 cat / dog (S); 3 - / cat (I)
    m = segment_based_metrics(ref, est, durations={"a": 4.0})
    o = m["overall"]
    assert (o["tp"], o["fp"], o["fn"], o["n_ref"], o["segments"]) == (1, 2, 2, 3, 4)
    assert o["f1"] == pytest.approx(1 / 3)
    assert o["error_rate"] == pytest.approx(1.0)
    assert (o["substitution_rate"], o["deletion_rate"], o["insertion_rate"]) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert m["class_wise"]["dog"]["f1"] == pytest.approx(0.5) and m["class_wise"]["dog"]["error_rate"] == 1.0
    assert m["class_wise"]["cat"]["error_rate"] == 2.0
    # a file listed with a duration but no events adds empty segments only
    assert segment_based_metrics(ref, est, durations={"a": 4.0, "b": 10.0})["overall"]["segments"] == 14
    perfect = segment_based_metrics(ref, ref)["overall"]
    assert perfect["f1"] == 1.0 and perfect["error_rate"] == 0.0


# ---- strong labels -------------------------------------------------------------------------------
def test_read_desed_tsv_with_header_and_empty_files(tmp_path):
    p = tmp_path / "labels.tsv"
    p.write_text("filename\tonset\toffset\tevent_label\n"
                 "a.wav\t0.5\t2.25\tDog\n"
                 "a.wav\t1.0\t9.0\tRain\n"
                 "b.wav\t\t\t\n"
                 "c.wav\n")
    events, files = read_strong_labels(p, with_files=True)
    assert events == [E(0.5, 2.25, "Dog", 1.0, "a.wav"), E(1.0, 9.0, "Rain", 1.0, "a.wav")]
    assert files == ["a.wav", "b.wav", "c.wav"]
    # round trip through the writer (with scores), and a headerless comma-separated table
    q = tmp_path / "out.tsv"
    q.write_text(format_strong_labels([E(0.5, 2.25, "Dog", 0.75, "a.wav")], files=["a.wav", "b.wav"]))
    assert read_strong_labels(q, with_files=True) == ([E(0.5, 2.25, "Dog", 0.75, "a.wav")], ["a.wav", "b.wav"])
    r = tmp_path / "plain.csv"
    r.write_text("x.wav,1,2,Cat\n")
    assert read_strong_labels(r) == [E(1.0, 2.0, "Cat", 1.0, "x.wav")]


@pytest.mark.parametrize("body, match", [
    ("a.wav\t1.0\t2.0\n", "line 2|:2: expected 4 fields"),
    ("a.wav\tsoon\t2.0\tDog\n", r":2: onset 'soon' is not a number"),
    ("a.wav\t3.0\t2.0\tDog\n", r":2: offset 2.0 is before onset 3.0"),
    ("a.wav\t-1\t2.0\tDog\n", r":2: onset -1.0 is negative"),
    ("\t1\t2\tDog\n", ":2: the row has no filename"),
])
def test_malformed_rows_name_the_file_and_line(tmp_path, body, match):
    p = tmp_path / "bad.tsv"
    p.write_text("filename\tonset\toffset\tevent_label\n" + body)
    with pytest.raises(StrongLabelError, match=match) as err:
        read_strong_labels(p)
    assert "bad.tsv" in str(err.value) and "Fix:" in str(err.value)


def test_missing_columns_and_missing_file(tmp_path):
    p = tmp_path / "h.tsv"
    p.write_text("filename\tstart\tend\tevent_label\na.wav\t1\t2\tDog\n")
    with pytest.raises(StrongLabelError, match=r"lacks the column\(s\) \['onset', 'offset'\]"):
        read_strong_labels(p)
    with pytest.raises(StrongLabelError, match="no such strong-label file"):
        read_strong_labels(tmp_path / "nope.tsv")
