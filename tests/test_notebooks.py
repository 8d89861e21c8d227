"""The notebooks in notebooks/ run top to bottom on the ../shared data, and their figures are sane.

Each notebook runs in a fresh kernel (nbclient) on this interpreter, from a kernel spec written to a
temporary folder (nothing is registered globally), with the notebooks folder as working directory.
Outputs go to a temporary folder ($TFAUDIO_NOTEBOOK_OUTPUT) and embeddings to a cache shared by the
three runs ($TFAUDIO_CACHE), so notebook 3 reuses what notebook 1 extracted. Every notebook ends with
a cell tagged ``summary`` that prints its figures as JSON; the checks below parse it.
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
import time

import pytest

from tests.helpers import ROOT, shared

pytestmark = pytest.mark.slow

NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT = 600  # seconds per cell; the longest cell takes well under a minute on 2 cores


# ---- checks of each notebook's summary --------------------------------------------------------------
def check_files(files: dict[str, str], output: pathlib.Path) -> None:
    for kind, path in files.items():
        path = pathlib.Path(path)
        assert path.exists(), f"{kind}: {path} was not written"
        assert output in path.parents, f"{kind}: {path} is outside the output folder {output}"


def check_yamnet_esc50(r: dict, output: pathlib.Path) -> None:
    assert "Dog" in r["tag_top5"]  # YAMNet itself hears the dog
    assert r["labels"] == ["dog", "cat"]
    assert 0.75 <= r["test_accuracy"] <= 1.0 and 0.75 <= r["test_macro_f1"] <= 1.0
    assert r["cv_folds"] == 5 and len(r["cv_classes"]) == 5
    assert 0.7 <= r["cv_accuracy_mean"] <= 1.0 and 0.0 <= r["cv_accuracy_std"] <= 0.2  # chance is 0.2
    assert r["export_max_abs_diff"] < 1e-4  # the SavedModel computes what the Keras model does
    check_files(r["files"], output)
    model = pathlib.Path(r["files"]["model"])
    assert json.loads((model / "tfaudio.json").read_text())["labels"] == ["dog", "cat"]
    assert (pathlib.Path(r["files"]["saved_model"]) / "saved_model.pb").is_file()
    cv = pathlib.Path(r["files"]["cv_summary"])
    assert json.loads(cv.read_text())["num_folds"] == 5
    assert sorted(p.name for p in cv.parent.iterdir()) == [
        "cv.json", "cv_folds.png", "fold1", "fold2", "fold3", "fold4", "fold5"]


def check_keyword_spotting(r: dict, output: pathlib.Path) -> None:
    checkpoint = pathlib.Path(r["checkpoint"])  # the tiny random model, written with save_pretrained
    assert checkpoint.name == "tiny-wav2vec2" and output in checkpoint.parents
    assert (checkpoint / "config.json").is_file() and (checkpoint / "preprocessor_config.json").is_file()
    assert r["labels"] == ["yes", "no", "up", "down"] and r["clips"] == 160
    assert r["speakers_in_several_folds"] == 0 and r["cv_folds"] == 4
    # a random tiny model: above chance (0.25), far from what a real checkpoint gives
    assert 0.25 < r["cv_accuracy_mean"] <= 1.0 and 0.0 <= r["cv_accuracy_std"] <= 0.25
    assert 0.0 <= r["head_test_accuracy"] <= 1.0 and 0.0 <= r["finetune_test_accuracy"] <= 1.0
    loss = r["finetune_loss"]
    assert len(loss) == 3 and loss[-1] < loss[0]  # fine-tuning learns
    check_files(r["files"], output)
    saved = json.loads((pathlib.Path(r["files"]["model"]) / "tfaudio.json").read_text())
    assert saved["backbone"]["name"] == "wav2vec2" and saved["backbone"]["source"] == str(checkpoint)


def check_export_and_serve(r: dict, output: pathlib.Path) -> None:
    assert r["labels"] == ["dog", "cat"]
    sigs = r["signatures"]
    assert set(sigs) == {"serving_default", "batch", "metadata"}
    assert sigs["serving_default"]["inputs"] == {"audio": ["float32", [None]]}
    assert sigs["serving_default"]["outputs"] == {"classifier": ["float32", [2]], "label": ["string", []]}
    assert sigs["batch"]["inputs"] == {"audio": ["float32", [None, None]], "lengths": ["int32", [None]]}
    # the REST body, fed to the signature as TF Serving does, gives the Keras model's scores
    request = json.loads(pathlib.Path(r["files"]["request"]).read_text())
    assert request["signature_name"] == "serving_default" and set(request["inputs"]) == {"audio"}
    assert len(request["inputs"]["audio"]) == 80000  # 5 s at 16 kHz
    assert r["rest_max_abs_diff"] < 1e-4 and r["rest_label"] in r["labels"]
    t = r["tflite"]
    assert set(t) == {"float32", "float16", "dynamic", "int8"}
    assert t["float32"]["max_abs_diff_vs_keras"] < 1e-3 and t["float32"]["agreement_with_keras"] == 1.0
    assert t["float16"]["max_abs_diff_vs_keras"] < 0.05
    for variant in ("float16", "dynamic", "int8"):
        assert t[variant]["kilobytes"] < 0.6 * t["float32"]["kilobytes"], (variant, t)
    for variant in ("float16", "dynamic"):
        assert t[variant]["agreement_with_keras"] >= 0.9, (variant, t)
    # int8 is lossy with YAMNet; the file states how lossy (on its calibration windows), truthfully
    assert abs(t["int8"]["recorded_agreement"] - t["int8"]["agreement_with_keras"]) <= 0.2, t["int8"]
    assert t["float32"]["window_accuracy"] >= 0.7
    assert r["mediapipe_windows"] >= 5  # one result per 0.975 s of a 5 s clip
    assert r["mediapipe_label"] == r["keras_label"]
    check_files(r["files"], output)


#: notebook → (the ../shared assets it needs, the check of its summary)
CASES = {
    "01_yamnet_transfer_learning_esc50.ipynb": (
        [("data", "esc50-subset"), ("models", "yamnet", "yamnet.h5")], check_yamnet_esc50),
    "02_keyword_spotting_wav2vec2.ipynb": ([("data", "speech-commands-mini")], check_keyword_spotting),
    "03_export_and_serve.ipynb": (
        [("data", "esc50-subset"), ("models", "yamnet", "yamnet.h5")], check_export_and_serve),
}


# ---- running a notebook ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> pathlib.Path:
    """A ``python3`` kernel spec that starts this interpreter (the venv's), in a temporary folder."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / "python3"
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "tfaudio tests", "language": "python",
    }))
    return root


@pytest.fixture(scope="module")
def embedding_cache(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("embedding-cache")


def run_notebook(name: str, kernel_dir: pathlib.Path) -> dict:
    """Executes ``notebooks/<name>`` (environment already set) and returns the JSON its ``summary``
    cell prints."""
    import nbclient
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{name}: commit it with outputs cleared"
    km = KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, allow_errors=False,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.monotonic()
    try:
        client.execute()  # raises CellExecutionError (with the cell and its traceback) on any error
    finally:
        if km.has_kernel:  # a kernel manager passed in is ours to shut down, not nbclient's
            km.shutdown_kernel(now=True)
    print(f"{name}: {time.monotonic() - start:.0f} s")

    summaries = [c for c in nb.cells if "summary" in c.metadata.get("tags", [])]
    assert len(summaries) == 1, f"{name}: expected one cell tagged 'summary'"
    text = "".join(o.get("text", "") for o in summaries[0].outputs if o.get("name") == "stdout")
    return json.loads(text)


@pytest.mark.parametrize("name", list(CASES))
def test_notebook_runs(name, kernel_dir, embedding_cache, tmp_path, monkeypatch):
    for module in ("nbformat", "nbclient", "ipykernel"):
        pytest.importorskip(module, reason="the notebook tests need the [test] extra (nbclient, ipykernel)")
    needs, check = CASES[name]
    for parts in needs:
        shared(*parts)  # skips with a reason when ../shared lacks it
    monkeypatch.setenv("TFAUDIO_SHARED", str(shared()))
    monkeypatch.setenv("TFAUDIO_CACHE", str(embedding_cache))
    monkeypatch.setenv("TFAUDIO_NOTEBOOK_OUTPUT", str(tmp_path))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")  # tests never download
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.delenv("TFAUDIO_W2V2_CHECKPOINT", raising=False)  # notebook 2 builds its tiny model
    # the venv's tools first, as in an activated venv (the kernel itself starts from sys.executable)
    monkeypatch.setenv("PATH", f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")

    summary = run_notebook(name, kernel_dir)
    check(summary, tmp_path)
