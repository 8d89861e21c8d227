"""The ``tfaudio demo`` web page: upload or record a clip, see its top labels, waveform, log-mel
spectrogram and frame-level scores over time.

The page is a thin Gradio shell around pure functions that can be tested without a browser::

    file ──load_audio──▶ waveform, rate ──analyze──▶ Analysis ──*_figure──▶ matplotlib figures
                                                     └──▶ top labels (the same as AudioClassifier.predict)

A model is anything :func:`tfaudio.inference.loader.load_model` recognises: a trained classifier, an export,
or a backbone used as an AudioSet tagger (YAMNet's 521 classes, EfficientAT's 527). The clip goes
through the model's one front door (:class:`~tfaudio.data.audio_converter.AudioConverter`) and its
one clip scorer, so the page shows exactly what ``predict`` and the export return.
Gradio and matplotlib are imported only when a page or a figure is built, so ``import tfaudio`` stays
free of them; without Gradio, :func:`build_demo` raises a :class:`~tfaudio.errors.TfaudioError` with
the install line.

Example:
    >>> from tfaudio.apps.gradio_demo import build_demo, load_model
    >>> demo = build_demo(load_model("saved_models/dogcat"), top_k=3)   # doctest: +SKIP
    >>> demo.launch(server_name="127.0.0.1", server_port=7860)          # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from tfaudio.backbones.registry import split_spec
from tfaudio.errors import AudioError, TfaudioError
from tfaudio.heads import decode

__all__ = [
    "Analysis",
    "analyze",
    "analyze_file",
    "build_demo",
    "figures",
    "frame_scores_figure",
    "import_gradio",
    "load_model",
    "log_mel_figure",
    "model_description",
    "waveform_figure",
]

INSTALL_HINT = "pip install 'tfaudio[demo]'"
#: At most this many classes are drawn over time (YAMNet has 521: the best ones by clip score).
MAX_PLOTTED_CLASSES = 8
#: A long clip's waveform is drawn as a min/max envelope of this many columns.
_WAVEFORM_COLUMNS = 2000
_log = logging.getLogger(__name__)


def import_gradio():
    """Imports Gradio with its telemetry off.

    Raises:
        TfaudioError: Gradio is not installed (the message gives the install line).
    """
    # Read when gradio builds a page; without it a Blocks starts a version check over the network.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import gradio as gr
    except ImportError as err:
        raise TfaudioError(f"the demo page needs Gradio, which is not installed ({err}). Fix: {INSTALL_HINT}") from err
    return gr


# ---- models --------------------------------------------------------------------------------------
def load_model(spec: Any, *, weights: str | None = None):
    """The model behind a page (:func:`tfaudio.inference.loader.load_model`): a folder saved by
    ``tfaudio train``, an export folder, or a backbone name (``"yamnet"``, ``"yamnet:/path/yamnet.h5"``,
    ``"efficientat:mn04_as"``) to tag AudioSet events; objects are wrapped as they are.

    Args:
        spec: a model folder, a backbone name / spec, or a model object.
        weights: YAMNet weights for ``"yamnet"`` (default: $TFAUDIO_YAMNET, ../shared, the cache).

    Raises:
        TfaudioError: ``spec`` is not a model (the message says what is expected).
    """
    from tfaudio.inference.loader import LoadedModel
    from tfaudio.inference.loader import load_model as load

    if isinstance(spec, LoadedModel):
        return spec
    if weights and isinstance(spec, str) and split_spec(spec) == ("yamnet", None):
        spec = f"yamnet:{weights}"
    return load(spec, tagging=isinstance(spec, str) and not pathlib.Path(spec).exists())


def model_description(model: Any) -> str:
    """One line saying what the model recognises, for the page's header."""
    model = load_model(model)
    labels = list(model.labels)
    shown = ", ".join(labels[:12]) + (f", … ({len(labels)} in all)" if len(labels) > 12 else "")
    if model.kind == "tagger":
        return f"{model.scorer.description}: tagging AudioSet events ({len(labels)} classes)."
    return f"A tfaudio {model.kind} ({model.scorer.description}) with {len(labels)} classes: {shown}."


# ---- analysis ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Analysis:
    """What the page shows for one clip.

    Args:
        waveform: float32 ``[samples]``, mono at ``sample_rate`` (the model's rate).
        sample_rate: the model's rate in Hz.
        input_rate: the rate the clip came in at, in Hz.
        log_mel: float32 ``[frames, mel_bins]``, log-mel spectrogram of ``waveform``.
        log_mel_hop_seconds: seconds between log-mel frames.
        frame_scores: float32 ``[frames, classes]``: scores of each model frame.
        frame_seconds: span of one model frame (YAMNet: 0.96 s).
        frame_hop_seconds: step between model frames (YAMNet: 0.48 s).
        clip_scores: float32 ``[classes]``, the mean of ``frame_scores`` (what ``predict`` returns).
        labels: class names in score order.
        top: the top-k ``[{"label", "score"}]``, best first.
        decision: the model's decision (:func:`tfaudio.heads.decode.decide`: ``{"labels",
            "none_of_these"}``, the labels above a multi-label model's thresholds or a single-label
            model's top label unless below its rejection threshold), None for a model without one.
    """

    waveform: np.ndarray
    sample_rate: int
    input_rate: int
    log_mel: np.ndarray
    log_mel_hop_seconds: float
    frame_scores: np.ndarray
    frame_seconds: float
    frame_hop_seconds: float
    clip_scores: np.ndarray
    labels: tuple[str, ...]
    top: list[dict]
    decision: dict | None = None

    @property
    def seconds(self) -> float:
        """Duration of the clip."""
        return len(self.waveform) / self.sample_rate

    @property
    def frame_starts(self) -> np.ndarray:
        """Start time of each model frame in seconds ``[frames]``."""
        return np.arange(len(self.frame_scores)) * self.frame_hop_seconds

    def summary(self) -> str:
        """Markdown: the model's decision (when it has a rule), then duration, rates and frame count."""
        rate = f"{self.input_rate} Hz" + (
            f" (resampled to {self.sample_rate} Hz)" if self.input_rate != self.sample_rate else "")
        said = ""
        if self.decision is not None:
            said = ("**None of these** (no label above its threshold).\n\n" if self.decision["none_of_these"]
                    else f"**Decision: {', '.join(self.decision['labels'])}** (above the threshold).\n\n")
        return (f"{said}{self.seconds:.2f} s at {rate}; {len(self.frame_scores)} frames of {self.frame_seconds:g} s "
                f"every {self.frame_hop_seconds:g} s; clip score = mean of the frame scores.")


def analyze(model: Any, waveform: Any, sample_rate: int, top_k: int = 5, *, where: str = "<array>") -> Analysis:
    """Scores one clip with ``model`` and collects what the page draws.

    Args:
        model: anything :func:`load_model` takes (a loaded model, a classifier, a backbone).
        waveform: ``[samples]`` or ``[samples, channels]``, any int or float dtype.
        sample_rate: rate of ``waveform`` in Hz (the model's front door resamples it).
        top_k: how many labels ``top`` holds.
        where: how the clip is named in errors.

    Returns:
        an :class:`Analysis`; ``top`` equals ``AudioClassifier.predict(waveform, sample_rate=...)``.

    Raises:
        AudioError: an empty clip, NaN/Inf samples, or an unusable rate.

    Example:
        >>> a = analyze(clf, np.zeros(16000, np.float32), 16000, top_k=2)   # doctest: +SKIP
        >>> a.top, a.frame_scores.shape                     # [{"label": ..., "score": ...}, ...], (2, C)
    """

    if int(top_k) < 1:
        raise TfaudioError(f"top_k must be >= 1, got {top_k}.")
    model = load_model(model)
    wave = model.converter()(waveform, sample_rate, where=where)
    out = model.scorer.outputs([wave])[0]
    clip = np.asarray(out["classifier"], np.float32)  # [C]: the scorer's pooled clip scores
    frames = np.asarray(out.get("frame_scores", clip[None]), np.float32)  # [F, C]
    contract = model.backbone.contract if model.backbone is not None else None
    hop = float(contract.hop_seconds) if contract else float(model.metadata.get("hop_seconds") or 0.48)
    span = float(contract.frame_seconds) if contract else float(model.metadata.get("frame_seconds") or hop)
    if "frame_scores" not in out:  # a model that scores whole clips (EfficientAT's tags): one clip-long row
        span = hop = max(len(wave) / model.sample_rate, span)
    # here, not at the top: the CLI imports this module to build its parser, without TensorFlow
    from tfaudio.backbones.backbone import display_log_mel

    log_mel, mel_hop = (model.backbone.display_log_mel(wave) if model.backbone is not None
                        else display_log_mel(wave, model.sample_rate))
    return Analysis(
        waveform=wave, sample_rate=model.sample_rate, input_rate=int(sample_rate), log_mel=log_mel,
        log_mel_hop_seconds=mel_hop, frame_scores=frames, frame_seconds=span,
        frame_hop_seconds=hop, clip_scores=clip, labels=tuple(model.labels),
        top=decode.top_k(clip, model.labels, int(top_k)), decision=model.decide(clip),
    )


def analyze_file(model: Any, path: str | os.PathLike, top_k: int = 5) -> Analysis:
    """:func:`analyze` of an audio file (WAV, FLAC, OGG, MP3; any rate), through the model's front door.

    Raises:
        AudioError: the file cannot be used (missing, empty, corrupt, not audio); names the file.
    """
    model = load_model(model)
    audio, rate = model.converter().decode_file(path)
    return analyze(model, audio, rate, top_k, where=os.fspath(path))


# ---- figures -------------------------------------------------------------------------------------
#: Where the axes sit in every figure (left, right, bottom, top as fractions), the same for all three
#: so their time axes line up on the page; the right margin holds a colour bar or a legend.
_AXES_BOX = (0.075, 0.79, 0.2, 0.87)


def _figure(height: float = 2.6):
    """A figure with one axes in :data:`_AXES_BOX`."""
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in server threads

    fig = Figure(figsize=(9, height), dpi=100)
    left, right, bottom, top = _AXES_BOX
    fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top)
    return fig, fig.add_subplot()


def waveform_figure(waveform: np.ndarray, sample_rate: int):
    """The waveform over time (a min/max envelope when it is long).

    Args:
        waveform: float ``[samples]``.
        sample_rate: Hz.

    Returns:
        a ``matplotlib.figure.Figure`` with one axes.
    """
    wave = np.asarray(waveform, np.float32)
    fig, ax = _figure(2.2)
    if len(wave) > 2 * _WAVEFORM_COLUMNS:
        edges = np.linspace(0, len(wave), _WAVEFORM_COLUMNS + 1).astype(int)
        lo = np.minimum.reduceat(wave, edges[:-1])
        hi = np.maximum.reduceat(wave, edges[:-1])
        ax.fill_between(edges[:-1] / sample_rate, lo, hi, color="tab:blue", linewidth=0)
    else:
        ax.plot(np.arange(len(wave)) / sample_rate, wave, color="tab:blue", linewidth=0.8)
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    ax.set_xlim(0, max(len(wave), 1) / sample_rate)
    ax.set_ylim(-max(peak, 1e-3) * 1.05, max(peak, 1e-3) * 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_title(f"Waveform ({sample_rate} Hz)")
    return fig


def log_mel_figure(log_mel: np.ndarray, hop_seconds: float):
    """The log-mel spectrogram as an image (time across, mel bands up).

    Args:
        log_mel: ``[frames, mel_bins]``.
        hop_seconds: seconds between frames.
    """
    log_mel = np.asarray(log_mel, np.float32)
    fig, ax = _figure(2.6)
    frames, bins = log_mel.shape
    image = ax.imshow(log_mel.T, origin="lower", aspect="auto", cmap="magma",
                      extent=(0, max(frames, 1) * hop_seconds, 0, bins), interpolation="nearest")
    left, right, bottom, top = _AXES_BOX
    fig.colorbar(image, cax=fig.add_axes((right + 0.01, bottom, 0.015, top - bottom)), label="log mel")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    ax.set_title("Log-mel spectrogram")
    return fig


def frame_scores_figure(frame_scores: np.ndarray, labels: Sequence[str], hop_seconds: float,
                        frame_seconds: float, classes: Sequence[int] | None = None,
                        seconds: float | None = None):
    """Each class's frame score over time: one step line per class, each frame's score drawn one
    hop wide around the frame's centre.

    Args:
        frame_scores: ``[frames, classes]``.
        labels: class names, ``[classes]``.
        hop_seconds: step between frames.
        frame_seconds: span of one frame.
        classes: which classes to draw (default: the best :data:`MAX_PLOTTED_CLASSES` by mean score).
        seconds: the clip's duration, the end of the time axis (default: the last frame's end).
    """
    scores = np.asarray(frame_scores, np.float32)
    if classes is None:
        classes = np.argsort(-scores.mean(axis=0), kind="stable")[:MAX_PLOTTED_CLASSES]
    fig, ax = _figure(2.8)
    centres = np.arange(len(scores)) * hop_seconds + frame_seconds / 2
    edges = np.append(centres - hop_seconds / 2, centres[-1] + hop_seconds / 2 if len(scores) else 0.0)
    for c in classes:
        ax.stairs(scores[:, c], edges, label=str(labels[c]), linewidth=1.6, baseline=None)
    end = seconds if seconds is not None else (len(scores) - 1) * hop_seconds + frame_seconds
    ax.set_xlim(0, max(end, 1e-3))
    ax.set_ylim(0, 1.02 if scores.size == 0 or scores.max() <= 1 else float(scores.max()) * 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    ax.set_title(f"Frame scores ({frame_seconds:g} s frames every {hop_seconds:g} s)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    return fig


def figures(analysis: Analysis) -> tuple[Any, Any, Any]:
    """(waveform, log-mel, frame scores) figures of an :class:`Analysis`."""
    top = [analysis.labels.index(t["label"]) for t in analysis.top][:MAX_PLOTTED_CLASSES]
    return (
        waveform_figure(analysis.waveform, analysis.sample_rate),
        log_mel_figure(analysis.log_mel, analysis.log_mel_hop_seconds),
        frame_scores_figure(analysis.frame_scores, analysis.labels, analysis.frame_hop_seconds,
                            analysis.frame_seconds, classes=top, seconds=analysis.seconds),
    )


# ---- the page ------------------------------------------------------------------------------------
def _page_error(err: Exception, path: str | None) -> str:
    """The message shown in the page: the uploaded file's own name, not Gradio's temp path."""
    if isinstance(err, AudioError):
        name = pathlib.Path(path).name if path else "the clip"
        return f"{name}: {err.problem}" + (f" Fix: {err.fix}" if err.fix else "")
    return str(err)


def build_demo(model: Any, top_k: int = 5, *, title: str = "tfaudio demo"):
    """The Gradio page of ``model``: an audio input (upload or microphone), the top-k labels, the
    waveform, the log-mel spectrogram and the frame scores over time.

    Args:
        model: a trained ``AudioClassifier`` or a YAMNet backbone (see :func:`load_model`).
        top_k: labels shown.
        title: the page's title.

    Returns:
        a ``gr.Blocks``; call ``.launch(server_name=..., server_port=...)`` on it.

    Raises:
        TfaudioError: Gradio is not installed, or ``top_k`` < 1.
    """
    gr = import_gradio()
    if int(top_k) < 1:
        raise TfaudioError(f"top_k must be >= 1, got {top_k}.")
    top_k = int(top_k)
    model = load_model(model)

    def classify(path):
        if not path:
            raise gr.Error("No audio yet: upload a file or record a clip first.", print_exception=False)
        try:
            a = analyze_file(model, path, top_k)
            plots = figures(a)
        except TfaudioError as err:  # the user's audio: a message in the page, one line in the log
            _log.warning("%s", err)
            raise gr.Error(_page_error(err, path), duration=None, print_exception=False) from err
        except Exception as err:  # a bug: a message in the page, the traceback in the log
            _log.exception("analysis of %s failed", path)
            raise gr.Error(f"the analysis failed: {type(err).__name__}: {err}", duration=None) from err
        return ({t["label"]: t["score"] for t in a.top}, a.summary(), *plots)

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"# {title}\n{model_description(model)} Upload or record a clip: the page shows the "
                    f"top {top_k} labels, the waveform, the log-mel spectrogram and the frame scores over time.")
        with gr.Row():
            with gr.Column(scale=1):
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio",
                                 elem_id="audio")
                button = gr.Button("Classify", variant="primary", elem_id="classify")
            with gr.Column(scale=1):
                label = gr.Label(num_top_classes=top_k, label=f"Top {top_k} labels", elem_id="labels")
                summary = gr.Markdown(elem_id="summary")
        wave_plot = gr.Plot(label="Waveform", elem_id="waveform-plot")
        mel_plot = gr.Plot(label="Log-mel spectrogram", elem_id="log-mel-plot")
        score_plot = gr.Plot(label="Frame scores over time", elem_id="frame-scores-plot")
        outputs = [label, summary, wave_plot, mel_plot, score_plot]

        def reset():
            return None, "", None, None, None

        # Clear the old results first, so a clip that fails never sits beside another clip's labels.
        gr.on([audio.upload, audio.stop_recording, button.click], reset, outputs=outputs, queue=False,
              api_visibility="private").then(classify, inputs=audio, outputs=outputs, api_name="classify")
        audio.clear(reset, outputs=outputs, queue=False, api_visibility="private")
    return demo
