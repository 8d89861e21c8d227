"""TFLite flatbuffers: one packing helper for the files the exporter rewrites (metadata, int8 float ends)."""
from __future__ import annotations

import flatbuffers

__all__ = ["pack_model"]


def pack_model(model) -> bytes:
    """A ``schema.ModelT`` (TensorFlow's generated TFLite schema) → the bytes of a ``.tflite`` file."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
