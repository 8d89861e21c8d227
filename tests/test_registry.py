"""The backbone registry: one table that names, builds and sniffs backbones for every command; a new
backbone is one entry, registered here from the test file alone and driven through the CLI."""
import json

import numpy as np
import pandas as pd
import pytest

from tests.helpers import ToyBackbone, tone_dataset, write_audio
from tfaudio.backbones import registry
from tfaudio.backbones.entry import BackboneEntry
from tfaudio.cli import build_parser, main
from tfaudio.errors import TfaudioError

# Labels as a user's CSV may hold them: non-ASCII, and one with a trailing space that must survive.
LABELS = {"low": "chat é🐱 ", "high": "dog"}


@pytest.fixture
def toy():
    """A backbone that exists only in this test file, registered for the test and removed after it."""
    entry = registry.register_backbone(BackboneEntry(
        name="toy", cls="tests.helpers:ToyBackbone", example="toy", summary="test-only, 8 kHz",
        build=lambda source, **kw: ToyBackbone(sample_rate=8000, tag=source or "toy", **kw),
        claims=lambda text: text.endswith(".toy")))
    yield entry
    registry.unregister_backbone("toy")


def _subcommand_help(name: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[name].format_help()


def test_every_backbone_help_lists_the_registry(toy):
    examples = [e.example for e in registry.entries()]
    assert "toy" in examples and "efficientat:mn04_as" in examples and "whisper:<model id or folder>" in examples
    for command in ("train", "cv", "tune", "embed"):
        text = " ".join(_subcommand_help(command).split())
        for example in examples:
            assert example in text, (command, example)
    tag = " ".join(_subcommand_help("tag").split())  # tagging lists only backbones with classes of their own
    assert "efficientat:mn04_as" in tag and "yamnet" in tag and "wav2vec2:" not in tag and "toy" not in tag


def test_specs_and_paths_resolve_through_the_table(tmp_path, toy):
    assert registry.split_spec("efficientat:mn04_as") == ("efficientat", "mn04_as")
    assert registry.split_spec("hubert:/models/h") == ("wav2vec2", "/models/h")  # an alias of the wav2vec2 folder
    assert registry.split_spec("/w/yamnet.h5") == ("yamnet", "/w/yamnet.h5")
    assert registry.split_spec("/w/mn10_as.pt") == ("efficientat", "/w/mn10_as.pt")
    assert registry.split_spec("openai/whisper-tiny") == ("whisper", "openai/whisper-tiny")
    assert registry.split_spec("facebook/wav2vec2-base") == ("wav2vec2", "facebook/wav2vec2-base")
    for model_type, name in (("whisper", "whisper"), ("hubert", "wav2vec2"), ("wav2vec2", "wav2vec2")):
        folder = tmp_path / model_type
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
        assert registry.split_spec(str(folder)) == (name, str(folder))
    (tmp_path / "kws").mkdir()
    (tmp_path / "kws" / "embedding_model.tflite").write_bytes(b"x")
    assert registry.split_spec(str(tmp_path / "kws"))[0] == "speech-embedding"
    assert registry.split_spec("/x/model.toy") == ("toy", "/x/model.toy")
    with pytest.raises(TfaudioError, match="unknown backbone 'nope'.*yamnet.*toy"):
        registry.get_backbone("nope")
    with pytest.raises(TfaudioError, match="no backbone recognises"):
        registry.split_spec(str(tmp_path / "no" / "such.bin"))
    with pytest.raises(TfaudioError, match="needs a model id or folder"):
        registry.get_backbone("whisper")
    with pytest.raises(TfaudioError, match="taken"):
        registry.register_backbone(BackboneEntry(name="toy2", cls="x:Y", example="toy2", aliases=("yamnet",)))
    built = registry.get_backbone("toy:abc")
    assert isinstance(built, ToyBackbone) and built.sample_rate == 8000 and registry.entry_of(built) is toy
    assert registry.spec_string(built) == "toy:abc"


def test_a_new_backbone_trains_exports_and_predicts_from_the_cli(tmp_path, toy, capsys):
    """One entry registered in this file is enough for train → export → predict → info on the CLI;
    labels come back exactly as the CSV has them (a trailing space, emoji)."""
    m = tone_dataset(tmp_path / "audio", n_per_class=5, folds=5)  # 16 kHz files: resampled to the toy's 8 kHz
    frame = m.frame[m.frame.label != "hiss"]
    csv = tmp_path / "clips.csv"
    pd.DataFrame({"filename": frame.path, "fold": frame.fold, "category": frame.label.map(LABELS)}).to_csv(
        csv, index=False)
    model, export = tmp_path / "model", tmp_path / "export"
    cache = str(tmp_path / "cache")
    assert main(["train", str(csv), "--backbone", "toy", "--folds", "1,2,3:4:5", "--epochs", "30",
                 "--cache", cache, "-o", str(model)]) == 0
    saved = json.loads((model / "tfaudio.json").read_text(encoding="utf8"))
    assert saved["backbone"]["name"] == "toy" and sorted(saved["labels"]) == sorted(LABELS.values())
    assert main(["export", str(model), "-o", str(export)]) == 0
    capsys.readouterr()
    clip = write_audio(tmp_path / "new" / "low.wav", np.sin(2 * np.pi * 300 * np.arange(16000) / 16000) * 0.5, 16000)
    for source in (model, export):  # the model folder (backbone rebuilt from the registry) and the export
        assert main(["predict", str(source), str(clip), "--top-k", "2", "--json"]) == 0
        row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert [p["label"] for p in row["predictions"]][0] == "chat é🐱 ", source
    assert main(["info", str(model), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backbone"] == "toy:toy" and info["sample_rate"] == 8000 and info["macs"]["per_second"] > 0
