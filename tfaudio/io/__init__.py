"""Audio in: decoding WAV (pure TF), FLAC/OGG/MP3 (tensorflow-io or soundfile), mono mixing."""
from tfaudio._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "decode_wav": ".wav_decoder",
        "load_audio": ".decode",
        "audio_info": ".audio_info",
        "mix_to_mono": ".wav_decoder",
        "AudioInfo": ".audio_info",
    },
)
