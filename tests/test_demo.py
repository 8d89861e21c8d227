"""The demo page (``tfaudio demo``, :mod:`tfaudio.apps.gradio_demo`): the analysis behind it, its
figures, the command, and the page itself served by the real command and driven in headless Chromium."""
import io
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from tests.helpers import ROOT, ToyBackbone, noise, same_computation, shared, sine, tone_dataset, write_audio
from tfaudio.apps.gradio_demo import (
    MAX_PLOTTED_CLASSES,
    analyze,
    analyze_file,
    build_demo,
    figures,
    frame_scores_figure,
    load_model,
    waveform_figure,
)
from tfaudio.cli import main
from tfaudio.data.embedding_cache import EmbeddingCache
from tfaudio.errors import AudioError, TfaudioError
from tfaudio.tasks.audio_classifier import AudioClassifier
from tfaudio.tasks.recipe import TrainConfig

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium tries Google's services and the closed network
# refuses them; --no-proxy-server keeps localhost direct whatever the environment says.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-proxy-server"]
FAST = TrainConfig(epochs=40, batch_size=16, learning_rate=3e-3, patience=5)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A classifier of 'low' / 'high' / 'hiss' tones on the tiny ToyBackbone (fast, no ../shared)."""
    data = tone_dataset(tmp_path_factory.mktemp("tones"), n_per_class=4)
    bb = ToyBackbone()
    return AudioClassifier(bb, cache=EmbeddingCache(bb, tmp_path_factory.mktemp("cache"))).fit(data, config=FAST)


# ---- analysis ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_analysis_equals_predict_at_another_rate(toy):
    clip = sine(3500, 2.3, 22050) + noise(2.3, 22050, seed=3, amplitude=0.01)
    a = analyze(toy, clip, 22050, top_k=2)
    expected = toy.predict(clip, sample_rate=22050, top_k=2)[0]
    assert [t["label"] for t in a.top] == [e["label"] for e in expected]
    np.testing.assert_allclose([t["score"] for t in a.top], [e["score"] for e in expected], rtol=1e-5)
    assert a.top[0]["label"] == "high"
    # resampled to the model's rate; one score row per backbone frame, clip score = their mean
    assert a.sample_rate == 16000 and a.input_rate == 22050
    assert len(a.waveform) == int(np.ceil(len(clip) * 16000 / 22050))
    assert a.frame_scores.shape == (toy.backbone.num_frames(len(a.waveform)), 3)
    np.testing.assert_allclose(a.clip_scores, a.frame_scores.mean(axis=0), **same_computation(a.clip_scores))
    np.testing.assert_allclose(a.frame_starts, np.arange(len(a.frame_scores)) * 0.48)
    # log-mel of the clip itself: 25 ms windows every 10 ms, 64 bands, the tone in a high band
    assert a.log_mel.shape == (1 + (len(a.waveform) - 400) // 160, 64)
    assert a.log_mel.mean(axis=0).argmax() > 40
    assert "2.30 s at 22050 Hz (resampled to 16000 Hz)" in a.summary()


@pytest.mark.slow
def test_file_and_integer_pcm_give_the_same_result(toy, tmp_path):
    stereo = np.stack([sine(300, 1.2, 16000), sine(300, 1.2, 16000, phase=0.3)], axis=1)
    pcm = np.round(stereo * 32767).astype(np.int16)  # what gr.Audio(type="numpy") hands over
    path = write_audio(tmp_path / "low.wav", pcm, 16000, subtype="PCM_16")
    from_file = analyze_file(toy, path, top_k=3)
    expected = toy.predict(str(path), top_k=3)[0]
    assert [t["label"] for t in from_file.top] == [e["label"] for e in expected]
    np.testing.assert_allclose([t["score"] for t in from_file.top], [e["score"] for e in expected], rtol=1e-5)
    from_pcm = analyze(toy, pcm, 16000, top_k=3)
    np.testing.assert_allclose(from_pcm.frame_scores, from_file.frame_scores, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(from_pcm.waveform, pcm.mean(axis=1) / 32768, atol=1e-6)


def test_bad_audio_is_a_clear_error(toy, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("these are my notes, not audio\n" * 20)
    with pytest.raises(AudioError, match="notes.wav: not an audio file"):
        analyze_file(toy, text)
    with pytest.raises(AudioError, match="no samples"):
        analyze(toy, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="NaN"):
        analyze(toy, np.full(16000, np.nan, np.float32), 16000)
    with pytest.raises(AudioError, match="sampling_rate must be a positive whole number of Hz, got 0"):
        analyze(toy, np.zeros(16000, np.float32), 0)
    with pytest.raises(TfaudioError, match="top_k"):
        analyze(toy, np.zeros(16000, np.float32), 16000, top_k=0)
    with pytest.raises(TfaudioError, match="no such model folder"):
        load_model(tmp_path / "missing")
    with pytest.raises(TfaudioError, match="not a model tfaudio recognises"):
        load_model(tmp_path)


# ---- figures -------------------------------------------------------------------------------------
def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_figures_draw_the_analysis(toy):
    clip = np.concatenate([sine(300, 1.5, 16000), noise(1.5, 16000, seed=1)])
    a = analyze(toy, clip, 16000, top_k=2)
    wave_fig, mel_fig, score_fig = figures(a)
    for fig in (wave_fig, mel_fig, score_fig):
        assert _png(fig).startswith(b"\x89PNG")
        assert fig.axes[0].get_xlim()[0] == 0 and fig.axes[0].get_xlabel() == "time (s)"
    # the three time axes span the clip
    assert wave_fig.axes[0].get_xlim()[1] == pytest.approx(3.0)
    assert score_fig.axes[0].get_xlim()[1] == pytest.approx(3.0)
    # the log-mel image is the log-mel, time across
    image = mel_fig.axes[0].images[0]
    np.testing.assert_array_equal(image.get_array(), a.log_mel.T)
    # one step line per top label, in order, carrying that class's frame scores
    ax = score_fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [t["label"] for t in a.top]
    steps = [p for p in ax.patches if type(p).__name__ == "StepPatch"]
    for step, top in zip(steps, a.top):
        np.testing.assert_allclose(step.get_data().values, a.frame_scores[:, a.labels.index(top["label"])])
    # the tone half then the hiss half: the class leading the frame scores changes over time
    lead = a.frame_scores.argmax(axis=1)
    assert a.labels[lead[0]] == "low" and a.labels[lead[-2]] == "hiss"


def test_long_waveforms_are_drawn_as_an_envelope_and_many_classes_are_capped():
    wave = noise(60, 16000, seed=2)
    ax = waveform_figure(wave, 16000).axes[0]
    assert not ax.lines and len(ax.collections) == 1  # a min/max envelope, not a million points
    ys = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(wave.min()) and ys.max() == pytest.approx(wave.max())
    scores = np.random.default_rng(0).uniform(size=(7, 521)).astype(np.float32)
    ax = frame_scores_figure(scores, [f"c{i}" for i in range(521)], 0.48, 0.96).axes[0]
    best = np.argsort(-scores.mean(axis=0), kind="stable")[:MAX_PLOTTED_CLASSES]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"c{i}" for i in best]


# ---- the page without a browser ------------------------------------------------------------------
def test_gradio_is_imported_only_for_the_page(toy, monkeypatch):
    code = ("import sys, tfaudio, tfaudio.apps.gradio_demo, tfaudio.commands.demo, tfaudio.cli; "
            "tfaudio.cli.build_parser(); print(sorted(m for m in ('gradio', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if it were not installed
    with pytest.raises(TfaudioError, match=r"pip install 'tfaudio\[demo\]'"):
        build_demo(toy)
    assert main(["demo", "yamnet"]) == 2  # the command stops before loading any model


@pytest.mark.slow
def test_the_page_calls_the_analysis(toy, tmp_path):
    gr = pytest.importorskip("gradio")
    demo = build_demo(toy, top_k=2)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert {"audio", "classify", "labels", "summary", "waveform-plot", "log-mel-plot",
            "frame-scores-plot"} <= ids
    path = write_audio(tmp_path / "hiss.wav", noise(2.0, 16000, seed=5), 16000)
    classify = next(f.fn for f in demo.fns.values() if f.api_name == "classify")
    label, summary, *plots = classify(str(path))
    expected = toy.predict(str(path), top_k=2)[0]
    assert list(label) == [e["label"] for e in expected] and expected[0]["label"] == "hiss"
    np.testing.assert_allclose(list(label.values()), [e["score"] for e in expected], rtol=1e-5)
    assert "2.00 s at 16000 Hz" in summary and len(plots) == 3
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")  # a cut-off header
    for arg, message in ((str(bad), "bad.wav: "), (None, "upload a file or record")):
        with pytest.raises(gr.Error, match=message) as err:
            classify(arg)
        assert "/tmp" not in str(err.value) and "Traceback" not in str(err.value)


# ---- real YAMNet, the command and the browser -----------------------------------------------------
@pytest.fixture(scope="module")
def dog_rooster(tmp_path_factory):
    """Dog vs rooster trained on ESC-50 fold 1 with the real YAMNet, saved like `tfaudio train`
    does; and a dog clip of fold 5 it has not seen."""
    from tfaudio.backbones.yamnet.backbone import YAMNetBackbone
    from tfaudio.data.manifest import Manifest

    weights = shared("models", "yamnet", "yamnet.h5")
    manifest = Manifest.from_csv(shared("data", "esc50-subset", "meta", "esc50.csv")).select(["dog", "rooster"])
    bb = YAMNetBackbone.from_pretrained(str(weights))
    clf = AudioClassifier(bb, cache=EmbeddingCache(bb, tmp_path_factory.mktemp("cache")))
    clf.fit(manifest.filter_folds([1]), config=FAST)
    folder = clf.save(tmp_path_factory.mktemp("models") / "dog_rooster")
    test = manifest.filter_folds([5])
    dog = next(p for p, t in zip(test.paths, test.targets) if test.labels[t] == "dog")
    return clf, folder, dog


@pytest.mark.slow
def test_real_clip_with_yamnet(dog_rooster):
    clf, _, dog = dog_rooster
    a = analyze_file(clf, dog, top_k=2)
    expected = clf.predict(dog, top_k=2)[0]
    assert [t["label"] for t in a.top] == [e["label"] for e in expected] and a.top[0]["label"] == "dog"
    np.testing.assert_allclose([t["score"] for t in a.top], [e["score"] for e in expected], rtol=1e-5)
    assert a.frame_scores.shape == (10, 2) and a.log_mel.shape == (498, 64)  # 5 s: 10 patches, 498 frames
    assert a.input_rate == 44100 and a.sample_rate == 16000


@pytest.mark.slow
def test_command_serves_the_page_on_the_given_address(dog_rooster, monkeypatch, capsys):
    gr = pytest.importorskip("gradio")
    _, folder, _ = dog_rooster
    calls = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: calls.append((self, kw)))
    assert main(["demo", str(folder), "--host", "127.0.0.1", "--port", "7999", "--top-k", "2"]) == 0
    (demo, kw), = calls
    assert kw["server_name"] == "127.0.0.1" and kw["server_port"] == 7999 and kw["share"] is False
    assert "dog_rooster" in demo.title and "http://127.0.0.1:7999" in capsys.readouterr().out
    assert main(["demo", str(folder), "--top-k", "0"]) == 2
    assert "--top-k must be >= 1" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_page(url: str, server: subprocess.Popen, log: pathlib.Path, timeout: float = 120.0) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"`tfaudio demo` exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with opener.open(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"`tfaudio demo` did not serve {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_page_in_headless_chromium(dog_rooster, tmp_path):
    """Starts `tfaudio demo MODEL` on a free localhost port, uploads a real dog clip in Chromium and
    checks that the page shows what AudioClassifier.predict gives; saves a screenshot."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"the browser test needs Debian's chromium at {CHROMIUM} (apt-get install chromium); "
                    "it is not installed here")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright "
                                   "(pip install -c constraints.txt -e '.[test]')")
    pytest.importorskip("gradio")
    clf, folder, dog = dog_rooster
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TFAUDIO_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "MPLBACKEND": "Agg", "NO_PROXY": "127.0.0.1,localhost"}
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "tfaudio.cli", "demo", str(folder), "--host", "127.0.0.1",
                                   "--port", str(port), "--top-k", "2"], stdout=out, stderr=subprocess.STDOUT,
                                  env=env, cwd=tmp_path)
    try:
        expected = clf.predict(dog, top_k=2)[0]  # while the server starts
        _wait_for_page(url, server, log)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            outside = []
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("data:", url)) else None)
            page.goto(url)
            page.locator("#audio input[type=file]").set_input_files(dog)
            page.wait_for_selector("#summary:has-text('frames')", timeout=60_000)
            page.wait_for_selector("#frame-scores-plot img", timeout=10_000)
            labels = page.locator("#labels")
            shown_top = labels.locator("[data-testid=label-output-value]").inner_text().strip()
            names = [t.strip() for t in labels.locator("dt").all_inner_texts()]
            scores = [float(m.get_attribute("value")) for m in labels.locator("meter").all()]
            percents = [t.strip() for t in labels.locator("dd").all_inner_texts()]
            summary = page.locator("#summary").inner_text()
            plots = {i: page.locator(f"#{i} img").count() for i in ("waveform-plot", "log-mel-plot", "frame-scores-plot")}
            shot = tmp_path / "demo_page.png"
            page.screenshot(path=str(shot), full_page=True)

            # then a file that is not audio: a message in the page (no stack trace), the dog's
            # results gone
            notes = tmp_path / "notes.wav"
            notes.write_text("these are my notes, not audio\n" * 20)
            page.locator("#audio button[aria-label='Clear']").first.click()
            page.locator("#audio input[type=file]").set_input_files(str(notes))
            toast = page.locator(".toast-body", has_text="not an audio file")
            toast.first.wait_for(timeout=30_000)
            error_text = toast.first.inner_text()
            page.wait_for_timeout(1000)  # the toast's fade-in, for the screenshot
            stale = labels.locator("dt").count() + page.locator("#waveform-plot img").count()
            page.screenshot(path=str(tmp_path / "demo_page_error.png"), full_page=True)
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    if os.environ.get("TFAUDIO_ARTIFACTS"):
        dest = pathlib.Path(os.environ["TFAUDIO_ARTIFACTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, dest / "demo_page.png")
        shutil.copy(tmp_path / "demo_page_error.png", dest / "demo_page_error.png")

    assert shown_top == expected[0]["label"] == "dog"
    assert names == [e["label"] for e in expected]
    np.testing.assert_allclose(scores, [e["score"] for e in expected], rtol=1e-4, atol=1e-6)
    assert percents == [f"{int(np.floor(e['score'] * 100 + 0.5))}%" for e in expected]  # JS Math.round
    assert "5.00 s at 44100 Hz (resampled to 16000 Hz); 10 frames" in summary
    assert plots == {"waveform-plot": 1, "log-mel-plot": 1, "frame-scores-plot": 1}
    assert "notes.wav: not an audio file" in error_text and "Traceback" not in error_text
    assert stale == 0
    assert outside == []  # the page works on a closed network: no fonts or scripts from elsewhere
    assert shot.stat().st_size > 20_000
