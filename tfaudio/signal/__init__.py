"""Pure-TensorFlow signal steps (resample, pad/crop/frame, log-mel), shared by tf.data and exports."""
from tfaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "resample": ".resample",
        "resample_any": ".resample",
        "Resample": ".resample",
        "SUPPORTED_RATES": ".resample",
        "seconds_to_samples": ".framing",
        "pad_or_crop": ".framing",
        "pad_to_min_length": ".framing",
        "frame": ".framing",
        "frame_samples": ".framing",
        "pad_or_crop_samples": ".framing",
        "stft_magnitude": ".melspec",
        "log_mel_spectrogram": ".melspec",
        "LogMelConfig": ".melspec",
        "stft_power": ".melspec",
    },
)
