"""Read the operators and constant tensors of a ``.tflite`` file, without TensorFlow.

A TFLite model is a FlatBuffer (schema: tensorflow/lite/schema/schema.fbs). This module decodes the
few tables a weight loader needs — operator codes, subgraph 0's tensors and operators with the
options of common ops, and the buffers — with :mod:`struct` and NumPy, checking every offset
against the file's size, so a truncated or foreign file gives a clear error instead of garbage.

Quantised constants are dequantised: an int8/uint8/int16 tensor with scales gives
``(q - zero_point) * scale`` (per axis when it has several scales), and a weight that reaches its
op through a ``DEQUANTIZE`` op (float16 or int8 storage) is returned as that op's float output.

Example:
    >>> model = TFLiteWeights.read("embedding_model.tflite")
    >>> [op.name for op in model.operators][:3]
    ['PAD', 'CONV_2D', 'LEAKY_RELU']
    >>> kernel = model.constant(model.operators[1].inputs[1])     # float32 [out, kh, kw, in]
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import struct
from typing import Any

import numpy as np

from tfaudio.errors import WeightsNotFoundError

__all__ = ["TFLiteWeights", "TFLiteOperator", "TFLiteTensor"]

#: BuiltinOperator names (schema.fbs) by code, 0..130; later codes read as BUILTIN_<n>.
OPERATOR_NAMES = (
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
    "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP", "L2_NORMALIZATION",
    "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL",
    "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH",
    "SVDF", "TANH", "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN",
    "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU",
    "MAXIMUM", "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL",
    "SELECT", "SLICE", "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL",
    "NOT_EQUAL", "LOG", "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD",
    "REDUCE_MAX", "PACK", "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN",
    "FLOOR_DIV", "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE",
    "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE",
    "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND", "COS", "WHERE", "RANK", "ELU", "REVERSE_SEQUENCE",
    "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF", "WHILE",
    "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2", "DENSIFY", "SEGMENT_SUM",
    "BATCH_MATMUL", "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM", "CALL_ONCE", "BROADCAST_TO",
)

#: TensorType (schema.fbs) → NumPy dtype.
_DTYPES = {
    0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16,
    9: np.int8, 10: np.float64,
}

# Option tables: (field name, struct format, default) in field order. Padding: 0 SAME, 1 VALID.
_CONV = (("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0),
         ("fused_activation_function", "b", 0), ("dilation_w_factor", "i", 1), ("dilation_h_factor", "i", 1))
_POOL = (("padding", "b", 0), ("stride_w", "i", 0), ("stride_h", "i", 0), ("filter_width", "i", 0),
         ("filter_height", "i", 0), ("fused_activation_function", "b", 0))
_OPTIONS = {
    "CONV_2D": _CONV,
    "DEPTHWISE_CONV_2D": (*_CONV[:3], ("depth_multiplier", "i", 0), *_CONV[3:]),
    "MAX_POOL_2D": _POOL,
    "AVERAGE_POOL_2D": _POOL,
    "LEAKY_RELU": (("alpha", "f", 0.0),),
    "FULLY_CONNECTED": (("fused_activation_function", "b", 0), ("weights_format", "b", 0),
                        ("keep_num_dims", "?", False)),
    "ADD": (("fused_activation_function", "b", 0),),
    "MUL": (("fused_activation_function", "b", 0),),
}
PADDING = {0: "same", 1: "valid"}


@dataclasses.dataclass(frozen=True)
class TFLiteTensor:
    """One tensor of subgraph 0: ``shape`` (static; 1 where the size is dynamic), ``signature`` (the
    shape with -1 where dynamic), NumPy ``dtype``, ``buffer`` index, ``name``, and its quantisation
    ``scale`` / ``zero_point`` / ``axis`` (empty when not quantised)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: Any
    buffer: int
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    axis: int = 0
    signature: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class TFLiteOperator:
    """One operator of subgraph 0: ``name`` (e.g. ``"CONV_2D"``), tensor indices ``inputs`` /
    ``outputs`` (-1: an omitted optional input) and its decoded builtin ``options``."""

    index: int
    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any]


class _Reader:
    """Bounds-checked FlatBuffer access over the bytes of one file."""

    def __init__(self, data: bytes, path: str):
        self.data = data
        self.path = path

    def fail(self, what: str):
        raise WeightsNotFoundError(
            f"{self.path}: not a complete TFLite model ({what}; {len(self.data)} bytes). Fix: download the "
            f"file again — it is truncated or damaged."
        )

    def unpack(self, fmt: str, pos: int):
        size = struct.calcsize("<" + fmt)
        if pos < 0 or pos + size > len(self.data):
            self.fail(f"an offset points past the end: byte {pos}")
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def field(self, table: int, i: int) -> int:
        """Absolute position of field ``i`` of the table at ``table``, or 0 when absent."""
        vtable = table - self.unpack("i", table)
        vsize = self.unpack("H", vtable)
        if 4 + 2 * i >= vsize:
            return 0
        off = self.unpack("H", vtable + 4 + 2 * i)
        return table + off if off else 0

    def scalar(self, table: int, i: int, fmt: str, default=0):
        pos = self.field(table, i)
        return self.unpack(fmt, pos) if pos else default

    def indirect(self, pos: int) -> int:
        return pos + self.unpack("I", pos)

    def table(self, table: int, i: int) -> int:
        pos = self.field(table, i)
        return self.indirect(pos) if pos else 0

    def vector(self, table: int, i: int) -> tuple[int, int]:
        """(position of the first element, length) of vector field ``i`` ((0, 0) when absent)."""
        pos = self.field(table, i)
        if not pos:
            return 0, 0
        vec = self.indirect(pos)
        n = self.unpack("I", vec)
        return vec + 4, n

    def tables(self, table: int, i: int) -> list[int]:
        start, n = self.vector(table, i)
        return [self.indirect(start + 4 * k) for k in range(n)]

    def array(self, table: int, i: int, dtype) -> np.ndarray:
        start, n = self.vector(table, i)
        if not n:
            return np.zeros([0], dtype)
        size = n * np.dtype(dtype).itemsize
        if start + size > len(self.data):
            self.fail(f"a vector of {size} bytes at byte {start} runs past the end")
        return np.frombuffer(self.data, np.dtype(dtype).newbyteorder("<"), n, start)

    def string(self, table: int, i: int) -> str:
        raw = self.array(table, i, np.uint8)
        return raw.tobytes().decode("utf8", "replace")


class TFLiteWeights:
    """The operators and constants of a TFLite model's first subgraph (see the module docstring).

    Build it with :meth:`read` (a file) or :meth:`from_bytes`.

    Attributes:
        path: where the model was read from (for messages).
        tensors: every tensor of subgraph 0, by index.
        operators: the operators of subgraph 0, in execution order.
        inputs, outputs: the subgraph's input and output tensor indices.
    """

    def __init__(self, data: bytes, path: str = "<bytes>"):
        self.path = path
        r = _Reader(data, path)
        if len(data) < 8 or data[4:8] != b"TFL3":
            raise WeightsNotFoundError(
                f"{path}: not a TFLite model (no 'TFL3' FlatBuffer identifier at byte 4; {len(data)} bytes). "
                f"Fix: point to a .tflite file; an empty or HTML file means the download failed."
            )
        self._r = r
        try:
            root = r.indirect(0)
            codes = []
            for t in r.tables(root, 1):
                # builtin_code is the larger of the deprecated int8 field and the int32 one (schema v3a)
                code = max(int(r.scalar(t, 0, "b", 0)), int(r.scalar(t, 3, "i", 0)))
                codes.append(code)
            subgraphs = r.tables(root, 2)
            if not subgraphs:
                r.fail("no subgraph")
            self._buffers = r.tables(root, 4)
            g = subgraphs[0]
            self.inputs = tuple(int(x) for x in r.array(g, 1, np.int32))
            self.outputs = tuple(int(x) for x in r.array(g, 2, np.int32))
            self.tensors = [self._tensor(k, t) for k, t in enumerate(r.tables(g, 0))]
            self.operators = [self._operator(k, op, codes) for k, op in enumerate(r.tables(g, 3))]
        except (struct.error, ValueError, IndexError, OverflowError) as err:
            r.fail(f"{type(err).__name__}: {err}")
        self._producer = {o: op for op in self.operators for o in op.outputs}

    @classmethod
    def read(cls, path: str | os.PathLike) -> TFLiteWeights:
        """Reads ``path``.

        Raises:
            WeightsNotFoundError: no such file, or not a (complete) TFLite model.
        """
        path = pathlib.Path(path)
        if not path.is_file():
            raise WeightsNotFoundError(f"{path}: no such file.")
        return cls(path.read_bytes(), str(path))

    @classmethod
    def from_bytes(cls, data: bytes, path: str = "<bytes>") -> TFLiteWeights:
        return cls(bytes(data), path)

    # ---- decoding ----------------------------------------------------------------------------
    def _tensor(self, k: int, t: int) -> TFLiteTensor:
        r = self._r
        shape = tuple(int(x) for x in r.array(t, 0, np.int32))
        type_code = int(r.scalar(t, 1, "b", 0))
        q = r.table(t, 4)
        scale, zero, axis = (), (), 0
        if q:
            scale = tuple(float(x) for x in r.array(q, 2, np.float32))
            zero = tuple(int(x) for x in r.array(q, 3, np.int64))
            axis = int(r.scalar(q, 6, "i", 0))
        signature = tuple(int(x) for x in r.array(t, 7, np.int32)) or shape
        return TFLiteTensor(k, r.string(t, 3), shape, _DTYPES.get(type_code, None), int(r.scalar(t, 2, "I", 0)),
                            scale, zero, axis, signature)

    def _operator(self, k: int, op: int, codes: list[int]) -> TFLiteOperator:
        r = self._r
        code = codes[int(r.scalar(op, 0, "I", 0))]
        name = OPERATOR_NAMES[code] if 0 <= code < len(OPERATOR_NAMES) else f"BUILTIN_{code}"
        options: dict[str, Any] = {}
        table = r.table(op, 4)  # the builtin_options union's value (field 3 is its type)
        for i, (field, fmt, default) in enumerate(_OPTIONS.get(name, ())):
            options[field] = r.scalar(table, i, fmt, default) if table else default
        if "alpha" in options:
            options["alpha"] = float(np.float32(options["alpha"]))
        return TFLiteOperator(k, name, tuple(int(x) for x in r.array(op, 1, np.int32)),
                              tuple(int(x) for x in r.array(op, 2, np.int32)), options)

    def _raw(self, tensor: TFLiteTensor) -> np.ndarray | None:
        """The stored values of a constant tensor (None for activations)."""
        r = self._r
        if tensor.dtype is None or not 0 < tensor.buffer < len(self._buffers):
            return None
        buf = self._buffers[tensor.buffer]
        offset, size = int(r.scalar(buf, 1, "Q", 0)), int(r.scalar(buf, 2, "Q", 0))
        if offset > 1:  # models over 2 GB keep buffers after the FlatBuffer
            if offset + size > len(r.data):
                r.fail(f"tensor {tensor.name!r} lies past the end")
            raw = np.frombuffer(r.data, np.uint8, size, offset)
        else:
            raw = r.array(buf, 0, np.uint8)
        if raw.size == 0:
            return None
        dtype = np.dtype(tensor.dtype).newbyteorder("<")
        count = int(np.prod(tensor.shape)) if tensor.shape else 1
        if raw.size != count * dtype.itemsize:
            r.fail(f"tensor {tensor.name!r} holds {raw.size} bytes, its shape {list(tensor.shape)} needs "
                   f"{count * dtype.itemsize}")
        return np.frombuffer(raw.tobytes(), dtype).reshape(tensor.shape)

    # ---- public -------------------------------------------------------------------------------
    def constant(self, index: int) -> np.ndarray:
        """Tensor ``index``'s value: float32 for float and quantised tensors (dequantised, also through
        a ``DEQUANTIZE`` op that makes it), the stored integers for plain integer tensors.

        Raises:
            WeightsNotFoundError: the tensor is not a constant (an activation or a model input).
        """
        tensor = self.tensors[index]
        raw = self._raw(tensor)
        if raw is None:
            producer = self._producer.get(index)
            if producer is not None and producer.name == "DEQUANTIZE":
                return self.constant(producer.inputs[0])
            raise WeightsNotFoundError(f"{self.path}: tensor {index} ({tensor.name!r}) is not a constant.")
        if tensor.scale and np.issubdtype(raw.dtype, np.integer) and tensor.dtype is not np.int32:
            scale = np.asarray(tensor.scale, np.float32)
            zero = np.asarray(tensor.zero_point or [0] * len(scale), np.float32)
            if scale.size > 1:  # per-axis (per output channel) quantisation
                shape = [1] * raw.ndim
                shape[tensor.axis] = scale.size
                scale, zero = scale.reshape(shape), zero.reshape(shape)
            return ((raw.astype(np.float32) - zero) * scale).astype(np.float32)
        if np.issubdtype(raw.dtype, np.integer) or raw.dtype == np.bool_:
            return raw.copy()  # shapes, paddings, axes: kept as integers
        return raw.astype(np.float32)

    def is_constant(self, index: int) -> bool:
        """Whether tensor ``index`` holds stored values (a weight or a constant; not an activation)."""
        return self._raw(self.tensors[index]) is not None

    def op_names(self) -> list[str]:
        """The operator names in execution order (e.g. ``["PAD", "CONV_2D", ...]``)."""
        return [op.name for op in self.operators]

    def input_shape(self, k: int = 0) -> tuple[int, ...]:
        """Shape of the ``k``-th model input, -1 where dynamic (e.g. ``(-1, 76, 32, 1)``)."""
        return self.tensors[self.inputs[k]].signature
