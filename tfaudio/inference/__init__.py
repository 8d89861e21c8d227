"""The inference layer: everything that consumes a saved model goes through it.

:func:`load_model` recognises any model tfaudio writes or scores with (a trained classifier, an export,
a backbone with classes of its own, a transformers classifier) and gives a :class:`LoadedModel` whose
``scorer`` implements :class:`Scorer`; :func:`model_info` profiles a model (parameters, MACs, memory).
The commands, the pipeline API, the demo page and Beam's batch prediction load through here, and
:func:`detect_events` finds events in recordings of any length through the same scorers.
"""
from tfaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "load_model": ".loader",
        "LoadedModel": ".loader",
        "Scorer": ".scorer",
        "frame_times": ".scorer",
        "model_info": ".model_info",
        "detect_events": ".detection",
    },
)
