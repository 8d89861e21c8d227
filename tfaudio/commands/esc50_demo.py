"""tfaudio esc50-demo: the YAMNet transfer-learning tutorial end to end, and better.

0. the backbone: YAMNet or EfficientAT mn04_as, whichever classifies all classes better on the
   validation fold 4 when trained on folds 1-3 (the test fold 5 is not looked at to choose);
1. ESC-50 dog vs cat with the tutorial's split (train folds 1-3, validate on 4, test on 5);
2. every class of the data cross-validated over its 5 folds (mean ± std);
3. reports (JSON + PNG) and models written under --output.
Data and weights come from ../shared when present, else from the cache, else they are downloaded.
"""
from __future__ import annotations

import pathlib
import time

from tfaudio.backbones import registry


def add_parser(sub):
    p = sub.add_parser("esc50-demo", help="the main job end to end on ESC-50 (what `make demo` runs)",
                       description=__doc__)
    p.add_argument("--data", help="ESC-50 folder (default: ../shared/data/esc50-subset, the cache, or download)")
    p.add_argument("--backbone", default="auto",
                   help="auto (default: YAMNet or EfficientAT mn04_as, the better on validation fold 4), or a "
                        "backbone to use without choosing: " + registry.help_text(default=None))
    p.add_argument("--output", "-o", default="saved_models")
    p.add_argument("--seed", type=int, default=0)
    return p


#: What ``--backbone auto`` chooses between (YAMNet first: it wins ties).
CANDIDATES = ("yamnet", "efficientat:mn04_as")
#: The tutorial's split: the choice and the all-classes model see folds 1-4 only.
TRAIN_FOLDS, VAL_FOLDS, TEST_FOLDS = [1, 2, 3], [4], [5]


def choose_backbone(manifest, candidates=CANDIDATES, *, train_config=None, train_folds=TRAIN_FOLDS,
                    val_folds=VAL_FOLDS, log=print) -> dict:
    """Trains an all-classes classifier on ``train_folds`` per candidate backbone and keeps the one
    with the best clip accuracy on ``val_folds`` (the first candidate on a tie). A candidate whose
    weights cannot be found is skipped with a note (the first one must load).

    Returns:
        ``{"name", "backbone", "cache", "classifier", "accuracy": {name: validation accuracy},
        "extraction": {name: report}}`` of the chosen backbone (``classifier``: trained on
        ``train_folds``, early-stopped on ``val_folds``).
    """
    from tfaudio.backbones.registry import get_backbone
    from tfaudio.data.embedding_cache import EmbeddingCache
    from tfaudio.errors import WeightsNotFoundError
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.recipe import TrainConfig

    train_config = train_config or TrainConfig()
    split = manifest.split(train=list(train_folds), val=list(val_folds))
    best, accuracy, extraction = None, {}, {}
    for i, spec in enumerate(candidates):
        try:
            backbone = get_backbone(spec)
        except WeightsNotFoundError as err:
            if i == 0:
                raise
            log(f"backbone {spec}: skipped ({str(err).splitlines()[0]})")
            continue
        cache = EmbeddingCache(backbone)
        extraction[spec] = cache.extract(manifest)
        clf = AudioClassifier(backbone, labels=manifest.labels, cache=cache).fit(split.train, split.val, train_config)
        accuracy[spec] = float(clf.evaluate(split.val)["clip"]["accuracy"])
        if best is None or accuracy[spec] > accuracy[best["name"]]:
            best = {"name": spec, "backbone": backbone, "cache": cache, "classifier": clf}
    return {**best, "accuracy": accuracy, "extraction": extraction}


def run(args) -> int:
    from tfaudio.data.manifest import Manifest
    from tfaudio.datasets import esc50
    from tfaudio.tasks.audio_classifier import AudioClassifier
    from tfaudio.tasks.cross_validation import cross_validate
    from tfaudio.tasks.recipe import TrainConfig
    from tfaudio.tasks.report import format_cv, format_report, write_report

    out = pathlib.Path(args.output)
    root = esc50(args.data)
    manifest = Manifest.from_source(root)
    print(f"data: {root} — {manifest}")
    t0 = time.time()
    train = TrainConfig(seed=args.seed, verbose=0)
    candidates = CANDIDATES if args.backbone == "auto" else (args.backbone,)
    choice = choose_backbone(manifest, candidates, train_config=train)
    backbone, cache = choice["backbone"], choice["cache"]
    for name, report in choice["extraction"].items():
        print(f"embeddings ({name}): {report}")
    if len(choice["accuracy"]) > 1:
        scores = ", ".join(f"{n} {a:.3f}" for n, a in choice["accuracy"].items())
        print(f"backbone: {choice['name']} (all classes, trained on folds {TRAIN_FOLDS}: validation fold "
              f"{VAL_FOLDS[0]} accuracy {scores}; chosen without looking at the test fold {TEST_FOLDS[0]}) "
              f"({time.time() - t0:.1f} s)")
    else:
        print(f"backbone: {choice['name']} (as asked) ({time.time() - t0:.1f} s)")

    def test_and_save(clf, split, name):
        rep = clf.evaluate(split.test)["clip"]
        model_dir = clf.save(out / name)
        write_report(rep, model_dir, name="test_report", history=clf.history_)
        return rep, model_dir

    # 1. The tutorial: dog vs cat, folds 1-3 / 4 / 5.
    pets = manifest.select(["dog", "cat"])
    split = pets.split(train=TRAIN_FOLDS, val=VAL_FOLDS, test=TEST_FOLDS)
    clf = AudioClassifier(backbone, labels=pets.labels, cache=cache).fit(split.train, split.val, train)
    rep, model_dir = test_and_save(clf, split, "esc50_dog_cat")
    print(f"\n== dog vs cat, test fold 5 (clip level)\n{format_report(rep)}\nsaved: {model_dir}")

    # 2. All classes, 5-fold cross-validation.
    summary = cross_validate(manifest, backbone, train=train, cache=cache, output_dir=out / "esc50_cv")
    print(f"\n== all {len(manifest.labels)} classes, {len(manifest.folds)}-fold cross-validation "
          f"({choice['name']})\n{format_cv(summary)}")

    # 3. The all-classes model of the choice (tutorial split), tested on fold 5, saved for export and serving.
    split = manifest.split(train=TRAIN_FOLDS, val=VAL_FOLDS, test=TEST_FOLDS)
    clf = choice["classifier"]
    rep, model_dir = test_and_save(clf, split, "esc50_all")
    print(f"\n== all classes, test fold 5: accuracy {rep['accuracy']:.3f} ({choice['name']})\nsaved: {model_dir}")
    _export(clf, model_dir)
    print(f"\ndone in {time.time() - t0:.0f} s with {choice['name']}; reports and models under {out}/")
    return 0


def _export(clf, model_dir) -> None:
    try:
        from tfaudio.export import saved_model  # noqa: F401
    except ImportError:
        return
    from tfaudio.export.saved_model import export_saved_model

    path = export_saved_model(clf, model_dir / "saved_model", overwrite=True)
    print(f"exported SavedModel (waveform in, scores out): {path}")
