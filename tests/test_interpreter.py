"""The one TFLite interpreter helper: LiteRT, else tflite-runtime, else tf.lite; each backend that is
installed runs the cross-lane fixture's float32 model and gives its recorded scores."""
from __future__ import annotations

import importlib
import pathlib

import numpy as np
import pytest

from tfaudio.errors import TfaudioError
from tfaudio.interpreter import BACKENDS, interpreter_backend, tflite_interpreter

FIXTURE = pathlib.Path(__file__).parent / "golden" / "cross_lane" / "tf2.16"


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False


# Each lane has its interpreter (tflite-runtime or LiteRT) and tf.lite: the installed ones are tested.
INSTALLED = [(name, module) for name, module in BACKENDS if _installed(module)]


def test_the_preferred_installed_backend_is_chosen():
    assert len(INSTALLED) >= 2 and INSTALLED[-1][0] == "tensorflow"
    assert interpreter_backend() == INSTALLED[0][0]


@pytest.mark.parametrize("default_delegates", [True, False])
@pytest.mark.parametrize("backend,module", INSTALLED)
def test_every_installed_backend_gives_the_recorded_scores(backend, module, default_delegates):
    with np.load(FIXTURE / "expected.npz") as z:
        name = str(z["names"][0])
        audio, expected = z[f"audio/{name}"].astype(np.float32) / 32768, z["tflite_float32"][0]
    it = tflite_interpreter(FIXTURE / "model_float32.tflite", prefer=backend, num_threads=1,
                            default_delegates=default_delegates)
    assert type(it).__module__ == module
    window = np.zeros([1, 15600], np.float32)
    window[0, : len(audio)] = audio[:15600]
    it.set_tensor(it.get_input_details()[0]["index"], window)
    it.invoke()
    np.testing.assert_allclose(it.get_tensor(it.get_output_details()[0]["index"])[0], expected, atol=1e-5)


def test_a_missing_backend_is_named_with_the_fix(monkeypatch):
    monkeypatch.setenv("TFAUDIO_TFLITE_BACKEND", "no-such-runtime")
    with pytest.raises(TfaudioError, match="no TFLite interpreter.*pip install ai-edge-litert"):
        tflite_interpreter(FIXTURE / "model_float32.tflite")
