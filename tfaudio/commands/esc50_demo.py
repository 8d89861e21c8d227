"""tfaudio esc50-demo: the YAMNet transfer-learning tutorial end to end, and better.

1. ESC-50 dog vs cat with the tutorial's split (train folds 1-3, validate on 4, test on 5);
2. every class of the data cross-validated over its 5 folds (mean ± std);
3. reports (JSON + PNG) and models written under --output.
Data and weights come from ../shared when present, else from the cache, else they are downloaded.
"""
from __future__ import annotations

import pathlib
import time


def add_parser(sub):
    p = sub.add_parser("esc50-demo", help="the main job end to end on ESC-50 (what `make demo` runs)",
                       description=__doc__)
    p.add_argument("--data", help="ESC-50 folder (default: ../shared/data/esc50-subset, the cache, or download)")
    p.add_argument("--backbone", default="yamnet")
    p.add_argument("--output", "-o", default="saved_models")
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args) -> int:
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.data.manifest import Manifest
    from tfaudio.datasets import esc50
    from tfaudio.tasks.audio_classifier import AudioClassifier, TrainConfig
    from tfaudio.tasks.cross_validation import cross_validate
    from tfaudio.tasks.report import format_cv, format_report, write_report

    out = pathlib.Path(args.output)
    root = esc50(args.data)
    manifest = Manifest.from_source(root)
    print(f"data: {root} — {manifest}")
    t0 = time.time()
    backbone = get_backbone(args.backbone)
    cache = EmbeddingCache(backbone)
    report = cache.extract(manifest)
    print(f"embeddings: {report} ({time.time() - t0:.1f} s)")
    train = TrainConfig(seed=args.seed, verbose=0)

    # 1. The tutorial: dog vs cat, folds 1-3 / 4 / 5.
    def train_and_save(data, name):
        split = data.split(train=[1, 2, 3], val=[4], test=[5])
        clf = AudioClassifier(backbone, labels=data.labels, cache=cache).fit(split.train, split.val, train)
        rep = clf.evaluate(split.test)["clip"]
        model_dir = clf.save(out / name)
        write_report(rep, model_dir, name="test_report", history=clf.history_)
        return clf, rep, model_dir

    _, rep, model_dir = train_and_save(manifest.select(["dog", "cat"]), "esc50_dog_cat")
    print(f"\n== dog vs cat, test fold 5 (clip level)\n{format_report(rep)}\nsaved: {model_dir}")

    # 2. All classes, 5-fold cross-validation.
    summary = cross_validate(manifest, backbone, train=train, cache=cache, output_dir=out / "esc50_cv")
    print(f"\n== all {len(manifest.labels)} classes, {len(manifest.folds)}-fold cross-validation\n{format_cv(summary)}")

    # 3. A model of all classes on the tutorial's split, saved for export and serving.
    clf, rep, model_dir = train_and_save(manifest, "esc50_all")
    print(f"\n== all classes, test fold 5: accuracy {rep['accuracy']:.3f}\nsaved: {model_dir}")
    _export(clf, model_dir)
    print(f"\ndone in {time.time() - t0:.0f} s; reports and models under {out}/")
    return 0


def _export(clf, model_dir) -> None:
    try:
        from tfaudio.export import saved_model  # noqa: F401
    except ImportError:
        return
    from tfaudio.export.saved_model import export_saved_model

    path = export_saved_model(clf, model_dir / "saved_model", overwrite=True)
    print(f"exported SavedModel (waveform in, scores out): {path}")
