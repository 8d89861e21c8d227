"""Band-limited polyphase resampling in plain TensorFlow ops.

One private helper, :func:`_polyphase_kernel`, designs the filter once per rate pair (numpy, cached);
:func:`resample`, :func:`resample_any` and the :class:`Resample` layer all apply it the same way, so
``tf.data``, Keras and the exported TFLite graph cannot drift apart.

How it works: with ``up / down = new_rate / orig_rate`` reduced by their gcd, every block of ``up``
output samples is a weighted sum of one window of ``W`` input samples starting at ``block * down``:
a ``[W, up]`` weight matrix. Each phase needs only the filter's taps around its own position, so
the phases are split into groups of at most ``_PHASES_PER_GROUP`` consecutive phases, each reading
only its taps (44.1 → 16 kHz: 3 groups of ~53 phases over ~362 of the 659 taps). When ``up`` is small
(48 → 16 kHz: 1) several blocks form one step, so that a group still has enough phases (matmul
columns). A group's frames, one per step, are the input reshaped into rows of one step: a slice,
a reshape and a ``MatMul`` per ``step_in`` taps, summed (no gathered im2col copy, no convolution).

Bounded memory (issue #16): a ``tf.while_loop`` runs over fixed-size chunks of the input (a few
hundred steps, ~1 MB of frames), zero-padding each chunk at the clip's ends itself, and writes each
chunk's output into a ``TensorArray``. Nothing but the output is as long as the input: the peak
over the caller's input is about twice the output (the chunks and their stacked copy) plus a few
MB, for any length. The formulation before #16 ran one strided ``Conv2D`` per group over the whole
padded input (``[1, 1, samples, 1]``: 1 input channel, kernels of 100-1300 taps, strides up to
1280). With oneDNN's convolution (TensorFlow's ``_MklNativeConv2D``, on by default on CPUs with
AVX-512-class features) that conv was reported to ask for a 28 GB scratch buffer for 60 s at
44.1 kHz and abort the process; without oneDNN it still held a padded copy of the input and
full-length conv outputs (2-4.6x the input, ``benchmarks/resample_memory.py``). Matmuls on
chunk-sized operands leave no full-length problem to any CPU kernel.

The loop (``WHILE``), ``SLICE``/``STRIDED_SLICE``, ``PAD``, ``RESHAPE``, ``FULLY_CONNECTED``,
``ADD``/``ADD_N`` and ``CONCATENATION`` are TFLite builtins, and the converter lowers the
``TensorArray`` (static element shape) to builtins: no Flex ops are needed.

The filter is a Kaiser-windowed sinc evaluated at each output phase's exact fractional position
(zero phase delay): passband flat to 0.9 of the lower Nyquist, stopband from the lower Nyquist on,
65 dB design attenuation. Measured: tone error below -66 dB against an ideal sine up to 0.9 Nyquist,
at least 70 dB rejection of tones above the output Nyquist.

One file of ~500 lines on purpose: the kernel design, the chunked loop and the layer share private
helpers (as torchaudio's functional and transform share one kernel helper); apart they would have to
expose them.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

#: Rates :func:`resample_any` handles out of the box (Hz).
SUPPORTED_RATES: tuple[int, ...] = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000)

# Filter design, as fractions of the lower of the two Nyquist frequencies. The passband edge 0.9 and
# the 65 dB attenuation give < -60 dB tone error and > 60 dB alias rejection with ~3-5 dB to spare;
# every extra dB or narrower transition lengthens the kernel and slows the pipeline.
_PASSBAND_EDGE = 0.9
_STOPBAND_EDGE = 1.0
_ATTENUATION_DB = 65.0
# W * up above this means a rate pair with a tiny gcd (e.g. 44100 -> 44099): the dense kernel would
# take tens of MB and the matmuls would be slower than a two-step conversion through a common rate.
_MAX_KERNEL_SIZE = 4_000_000
# Phases per matmul. Fewer phases per group skip more zero taps but give each matmul fewer output
# columns, which the CPU kernels run less efficiently.
_PHASES_PER_GROUP = 64
# A piece of frames shorter than a step by at most this fraction is zero-padded rather than cut.
_MAX_PADDED_TAPS = 0.1
# Frame values per chunk (all groups, 4 bytes each): sizes the loop's chunks, so its working memory
# (~1-3 MB). Smaller chunks mean more iterations: at 2**17 the per-iteration cost showed (1.2-1.3x
# the CPU time of 2**18 for 44.1 -> 32 kHz and 88.2 -> 8 kHz here); 2**19 gained little more.
_CHUNK_FRAME_FLOATS = 1 << 18
# Loop iterations in flight at once: each holds its own frames, and the matmuls use both cores anyway.
_PARALLEL_CHUNKS = 1


@dataclasses.dataclass(frozen=True)
class _Kernel:
    """A designed polyphase filter.

    Attributes:
        weights: float32 ``[W, up]``; column ``j`` makes output ``block * up + j`` from the input
            window ``[block * down - left_pad, block * down - left_pad + W)``. Read-only.
        up: output samples per block (``new_rate / gcd``).
        down: input samples per block (``orig_rate / gcd``).
        left_pad: zeros in front of the input, so the first window is centred on sample 0.
    """

    weights: np.ndarray
    up: int
    down: int
    left_pad: int

    @property
    def width(self) -> int:
        return int(self.weights.shape[0])


def _check_rate(name: str, rate) -> int:
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ValueError(
            f"{name} must be a positive int number of Hz, got {rate!r}. "
            "Fix: pass the rate as a Python int, e.g. 16000 (for a rate known only at run time use "
            "resample_any)."
        )
    return int(rate)


@functools.lru_cache(maxsize=128)
def _polyphase_kernel(orig_rate: int, new_rate: int) -> _Kernel:
    """Designs the Kaiser-windowed sinc polyphase matrix for ``orig_rate -> new_rate`` (cached)."""
    g = math.gcd(orig_rate, new_rate)
    up, down = new_rate // g, orig_rate // g
    # Work in input-sample units: the lower Nyquist is 0.5 cycles/sample when upsampling and
    # 0.5 * up / down when downsampling.
    nyquist = 0.5 * min(1.0, up / down)
    cutoff = 0.5 * (_PASSBAND_EDGE + _STOPBAND_EDGE) * nyquist
    transition = (_STOPBAND_EDGE - _PASSBAND_EDGE) * nyquist
    beta = 0.1102 * (_ATTENUATION_DB - 8.7)  # Kaiser's formula for attenuation > 50 dB
    half_width = (_ATTENUATION_DB - 7.95) / (2.285 * 2 * np.pi * transition) / 2
    left_pad = math.ceil(half_width)
    # The last phase is centred (up - 1) * down / up samples after the block start.
    width = left_pad + math.ceil((up - 1) * down / up + half_width) + 1
    if width * up > _MAX_KERNEL_SIZE:
        raise ValueError(
            f"Resampling {orig_rate} Hz -> {new_rate} Hz needs a {width} x {up} polyphase kernel "
            f"({width * up:,} weights, limit {_MAX_KERNEL_SIZE:,}) because gcd({orig_rate}, {new_rate}) "
            f"= {g} is small. Fix: use a common rate such as one of {SUPPORTED_RATES}, or resample in "
            "two steps through one."
        )
    taps = np.arange(width, dtype=np.float64)[:, None]
    centres = left_pad + np.arange(up, dtype=np.float64)[None, :] * down / up
    tau = centres - taps  # [W, up]: distance of each tap from its output's exact position
    inside = np.abs(tau) <= half_width
    ratio = np.clip(1.0 - (tau / half_width) ** 2, 0.0, None)
    window = np.where(inside, np.i0(beta * np.sqrt(ratio)) / np.i0(beta), 0.0)
    weights = 2 * cutoff * np.sinc(2 * cutoff * tau) * window
    # Each phase samples the continuous filter at a different offset, so their DC gains differ by
    # the ripple; normalising each makes DC exact and removes a faint modulation at the block rate.
    weights /= weights.sum(axis=0, keepdims=True)
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return _Kernel(weights=weights, up=up, down=down, left_pad=left_pad)


def _output_length(num_samples, up: int, down: int):
    """``ceil(num_samples * up / down)`` without the int32 overflow of ``num_samples * up``.

    Works on Python ints and on int32 tensors alike.
    """
    return (num_samples // down) * up + ((num_samples % down) * up + down - 1) // down


def resampled_length(num_samples, orig_rate: int, new_rate: int):
    """How many samples :func:`resample` returns for ``num_samples`` at ``orig_rate``:
    ``ceil(num_samples * new_rate / orig_rate)`` in integers (Python ints or int32 tensors)."""
    g = math.gcd(int(orig_rate), int(new_rate))
    return _output_length(num_samples, int(new_rate) // g, int(orig_rate) // g)


def _as_float32(waveform) -> tf.Tensor:
    x = tf.convert_to_tensor(waveform)
    if not x.dtype.is_floating:
        raise TypeError(
            f"resample expects a float waveform in [-1, 1], got dtype {x.dtype.name}. "
            "Fix: convert integer PCM first, e.g. tf.cast(pcm, tf.float32) / 32768.0."
        )
    return tf.cast(x, tf.float32) if x.dtype != tf.float32 else x


@dataclasses.dataclass(frozen=True)
class _Group:
    """Consecutive output phases of a :class:`_Plan` step and the taps they use.

    The taps are read in pieces of at most ``step_in``: piece ``r`` of the frame of step ``s`` is
    ``input[s * step_in + first + r * step_in :][:len(weights[r])]``, so each piece's frames are the
    input from ``first + r * step_in`` on reshaped into rows of ``step_in`` (and cut to length).

    Attributes:
        first: offset of the group's first tap from the step's start in the zero-padded input.
        weights: per piece, float32 ``[taps, phases]`` (``taps <= step_in``); the group's output is the
            sum of the pieces' matmuls. Read-only.
    """

    first: int
    weights: tuple[np.ndarray, ...]


@dataclasses.dataclass(frozen=True)
class _Plan:
    """How :func:`resample` applies a :class:`_Kernel`: steps, phase groups and chunks.

    A step is ``blocks`` kernel blocks: ``step_in = blocks * down`` input samples give
    ``step_out = blocks * up`` output samples, as consecutive groups of phases. A chunk is
    ``steps`` steps: one loop iteration, one matmul per group and piece.

    Attributes:
        step_in: input samples per step.
        step_out: output samples per step.
        left_pad: zeros in front of the input (the kernel's).
        groups: the step's phases in order.
        steps: steps per chunk.
        chunk_in: input samples one chunk reads, from its first step's start.
    """

    step_in: int
    step_out: int
    left_pad: int
    groups: tuple[_Group, ...]
    steps: int
    chunk_in: int


@functools.lru_cache(maxsize=128)
def _plan(orig_rate: int, new_rate: int) -> _Plan:
    """Splits the kernel into phase groups, picks how each is framed and sizes the chunks (cached)."""
    kernel = _polyphase_kernel(orig_rate, new_rate)
    # Few phases per block (e.g. 48 -> 16 kHz: 1) would make matrix-vector products; stacking blocks
    # into one step gives the matmul enough columns, at the cost of the taps its phases don't share.
    blocks = max(1, _PHASES_PER_GROUP // kernel.up)
    step_in, step_out = blocks * kernel.down, blocks * kernel.up
    step = np.zeros([kernel.width + (blocks - 1) * kernel.down, step_out], np.float32)
    for b in range(blocks):  # block b of the step: the kernel b * down samples later
        step[b * kernel.down : b * kernel.down + kernel.width, b * kernel.up : (b + 1) * kernel.up] = kernel.weights
    count = -(-step_out // _PHASES_PER_GROUP)
    edges = np.linspace(0, step_out, count + 1).round().astype(int)
    groups, reach, width = [], 0, 0
    for start, stop in zip(edges[:-1], edges[1:]):  # a group: phases start .. stop - 1
        used = np.flatnonzero(np.abs(step[:, start:stop]).sum(axis=1))
        first, taps = int(used[0]), int(used[-1]) + 1 - int(used[0])
        pieces = []
        for offset in range(0, taps, step_in):
            length = min(step_in, taps - offset)
            if length >= (1 - _MAX_PADDED_TAPS) * step_in:
                length = step_in  # multiplying a few zero taps is cheaper than cutting the rows short
            piece = np.zeros([length, stop - start], np.float32)
            used_rows = step[first + offset : first + min(offset + length, taps), start:stop]
            piece[: len(used_rows)] = used_rows
            piece.flags.writeable = False
            pieces.append(piece)
        groups.append(_Group(first=first, weights=tuple(pieces)))
        reach = max(reach, first + len(pieces) * step_in)
        width += len(pieces) * step_in
    # The pieces' frames take `width` floats per step: chunks of a fixed working memory.
    steps = max(1, _CHUNK_FRAME_FLOATS // width)
    return _Plan(step_in=step_in, step_out=step_out, left_pad=kernel.left_pad, groups=tuple(groups),
                 steps=steps, chunk_in=(steps - 1) * step_in + reach)


def resample(waveform, orig_rate: int, new_rate: int) -> tf.Tensor:
    """Resamples a waveform or a batch of waveforms with a band-limited polyphase filter.

    Output sample ``n`` is at time ``n / new_rate`` (no delay), the input is taken as zero beyond its
    ends, and the output has ``ceil(samples * new_rate / orig_rate)`` samples, as in
    ``scipy.signal.resample_poly``. Tones below 0.9 of the lower Nyquist come through with < -60 dB
    error; content above the output Nyquist is attenuated by > 60 dB. Works eagerly, in
    ``tf.function`` / ``tf.data`` with an unknown number of samples, and converts to TFLite builtins.
    Memory beyond the output stays bounded (a few MB) whatever the length: the input is processed in
    chunks (see the module docstring).

    Args:
        waveform: float ``[..., samples]`` (a clip ``[samples]`` or a batch ``[batch, samples]``),
            values in [-1, 1]. The rank must be known; the lengths may be dynamic.
        orig_rate: rate of ``waveform`` in Hz (Python int).
        new_rate: wanted rate in Hz (Python int).

    Returns:
        float32 ``[..., ceil(samples * new_rate / orig_rate)]``. Equal rates return the input.

    Raises:
        ValueError: a rate is not a positive int, or the pair's kernel would be unreasonably large.

    Example:
        >>> clip = tf.zeros([44100])                 # 1 s at 44.1 kHz
        >>> resample(clip, 44100, 16000).shape
        TensorShape([16000])
    """
    orig_rate = _check_rate("orig_rate", orig_rate)
    new_rate = _check_rate("new_rate", new_rate)
    x = _as_float32(waveform)
    if x.shape.rank is None or x.shape.rank == 0:
        raise ValueError(
            f"resample needs a waveform of known rank >= 1 ([samples] or [batch, samples]), got shape "
            f"{x.shape}. Fix: tf.ensure_shape(waveform, [None]) or [None, None]."
        )
    if orig_rate == new_rate:
        return x
    kernel = _polyphase_kernel(orig_rate, new_rate)
    # Python int when the length is static keeps the output shape static (Keras, TFLite buffers).
    num_samples = x.shape[-1]
    num_out = _output_length(num_samples, kernel.up, kernel.down) if num_samples is not None else None

    leading = tf.shape(x)[:-1]
    if x.shape.rank == 1:
        flat = x
    else:
        batch = tf.reduce_prod(leading)  # not -1: reshape cannot infer it when a clip is empty
        flat = tf.reshape(x, [batch, tf.shape(x)[-1]])  # [batch, samples]
    if tf.executing_eagerly():  # one traced graph per rate pair: eager ops per chunk were slower
        out = _traced_resampler(orig_rate, new_rate, flat.shape.rank)(flat)
    else:  # in a tf.function, tf.data map or export, the loop becomes part of that graph
        out = _resample_chunks(flat, orig_rate, new_rate)
    if x.shape.rank > 2:
        out = tf.reshape(out, tf.concat([leading, tf.shape(out)[-1:]], axis=0))  # [..., samples']
    out.set_shape(x.shape[:-1].concatenate([num_out]))
    return out


def _chunk_output(plan: _Plan, piece: tf.Tensor) -> tf.Tensor:
    """``plan.steps * plan.step_out`` output samples from one chunk ``[plan.chunk_in]`` of padded input."""
    steps, step_in = plan.steps, plan.step_in
    parts = []
    for group in plan.groups:
        products = []
        for r, weights in enumerate(group.weights):
            begin = group.first + r * step_in
            frames = tf.reshape(piece[begin : begin + steps * step_in], [steps, step_in])  # rows of one step
            if len(weights) < step_in:
                frames = frames[:, : len(weights)]
            products.append(tf.matmul(frames, tf.constant(weights)))  # [steps, phases]
        parts.append(products[0] if len(products) == 1 else tf.add_n(products))
    blocks = parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)  # [steps, step_out]
    return tf.reshape(blocks, [steps * plan.step_out])


def _resample_chunks(x: tf.Tensor, orig_rate: int, new_rate: int) -> tf.Tensor:
    """:func:`resample` of ``[samples]`` or ``[batch, samples]``: a loop over fixed-size chunks.

    A ``tf.while_loop`` over (row, chunk) pairs: each iteration slices one chunk of one row (zero
    padding it at the row's ends), computes its output with :func:`_chunk_output` and writes it to a
    ``TensorArray`` of fixed-size elements (a static element shape, which TFLite lowers to builtins).
    Only the elements and their stacked copy are as long as the output; the rest is per chunk.
    """
    kernel = _polyphase_kernel(orig_rate, new_rate)
    plan = _plan(orig_rate, new_rate)
    chunk_out = plan.steps * plan.step_out
    flat = x if x.shape.rank == 2 else tf.expand_dims(x, 0)  # [batch, samples]
    batch, num_samples = tf.shape(flat)[0], tf.shape(flat)[1]
    num_out = _output_length(num_samples, kernel.up, kernel.down)
    num_chunks = (num_out + chunk_out - 1) // chunk_out  # per row

    def body(i, outputs):
        row, chunk = i // num_chunks, i % num_chunks
        start = chunk * (plan.steps * plan.step_in) - plan.left_pad  # may be < 0 or run past the end
        lo = tf.clip_by_value(start, 0, num_samples)
        hi = tf.clip_by_value(start + plan.chunk_in, 0, num_samples)
        piece = tf.reshape(tf.slice(flat, tf.stack([row, lo]), tf.stack([1, hi - lo])), [-1])
        piece = tf.pad(piece, [tf.stack([lo - start, start + plan.chunk_in - hi])])
        piece = tf.reshape(piece, [plan.chunk_in])  # a static shape (EnsureShape is not a TFLite op)
        return i + 1, outputs.write(i, _chunk_output(plan, piece))

    total = batch * num_chunks
    outputs = tf.TensorArray(tf.float32, size=total, element_shape=[chunk_out])
    _, outputs = tf.while_loop(lambda i, _: i < total, body, [tf.constant(0), outputs],
                               parallel_iterations=_PARALLEL_CHUNKS)
    if x.shape.rank == 1:
        # A leading slice from 0 shares the stacked buffer instead of copying it: one copy less.
        return tf.reshape(outputs.stack(), [-1])[:num_out]
    return tf.reshape(outputs.stack(), [batch, num_chunks * chunk_out])[:, :num_out]


@functools.lru_cache(maxsize=64)
def _traced_resampler(orig_rate: int, new_rate: int, rank: int):
    """:func:`_resample_chunks` traced for ``[samples]`` (rank 1) or ``[batch, samples]`` (rank 2) (cached).

    For long inputs in eager mode: one graph run instead of a Python iteration per chunk. A concrete
    function: calling it never retraces (nor warns about retracing one closure per rate pair).
    """
    spec = tf.TensorSpec([None] * rank, tf.float32)
    fn = tf.function(lambda x: _resample_chunks(x, orig_rate, new_rate), autograph=False, input_signature=[spec])
    return fn.get_concrete_function()


@functools.lru_cache(maxsize=32)
def clip_resampler(orig_rate: int, new_rate: int):
    """:func:`resample` for one rate pair, traced once for clips ``[samples]`` of any length (cached).

    For a per-file rate found in Python (e.g. after decoding): calling this traced function costs one
    graph run, where picking the rate inside a graph (:func:`resample_any`) pays ``tf.switch_case``,
    which inside ``tf.data`` made resampling ~1.7x slower here.

    Raises:
        ValueError: as :func:`resample`, for a pair whose kernel would be unreasonably large.

    Example:
        >>> clip_resampler(44100, 16000)(np.zeros(44100, np.float32)).shape
        TensorShape([16000])
    """
    orig_rate, new_rate = _check_rate("orig_rate", orig_rate), _check_rate("new_rate", new_rate)
    if orig_rate != new_rate:
        _polyphase_kernel(orig_rate, new_rate)  # refuse an impossible pair now, in Python
    fn = tf.function(lambda x: resample(x, orig_rate, new_rate), autograph=False,
                     input_signature=[tf.TensorSpec([None], tf.float32)])
    return fn.get_concrete_function()


def resamplable_rates(rates: Sequence[int], new_rate: int) -> tuple[int, ...]:
    """The entries of ``rates`` (other than ``new_rate``) that can be resampled to ``new_rate``: a pair
    the resampler refuses is left out, so its files take a path that names them in the error."""
    out = []
    for r in rates:
        if int(r) == int(new_rate):
            continue
        try:
            _polyphase_kernel(_check_rate("rate", r), _check_rate("new_rate", new_rate))
        except ValueError:
            continue
        out.append(int(r))
    return tuple(out)


def switch_rates(waveform, index, rates: Sequence[int], new_rate: int) -> tf.Tensor:
    """``waveform`` resampled from ``rates[index - 1]`` to ``new_rate`` (``index`` 0: passed through):
    the one place a rate known only at run time picks its resampler (``tf.switch_case``; each branch
    is the cached :func:`clip_resampler` graph for ``[samples]`` inputs, :func:`resample` otherwise)."""
    x = _as_float32(waveform)
    one = x.shape.rank == 1
    branches = [lambda: x] + [
        functools.partial(clip_resampler(r, new_rate), x) if one else functools.partial(resample, x, r, new_rate)
        for r in rates]
    return tf.switch_case(tf.cast(index, tf.int32), branches)


def resample_any(waveform, rate, new_rate: int, rates: Sequence[int] = SUPPORTED_RATES) -> tf.Tensor:
    """Resamples from a rate known only at run time (e.g. per file in a mixed-rate ``tf.data`` set).

    Builds one static-rate :func:`resample` branch per entry of ``rates`` and picks one with
    ``tf.switch_case``; a rate equal to ``new_rate`` passes through unchanged.

    Args:
        waveform: float ``[..., samples]``, as for :func:`resample`.
        rate: scalar int tensor (or int): the rate of ``waveform`` in Hz.
        new_rate: wanted rate in Hz (Python int).
        rates: the source rates to support (Python ints). Each adds a kernel to the graph.

    Returns:
        float32 ``[..., new_samples]``; inside a ``tf.function`` the last dimension is ``None``.

    Raises:
        tf.errors.InvalidArgumentError: at run time, when ``rate`` is not in ``rates``.

    Example:
        >>> ds = ds.map(lambda audio, rate: resample_any(audio, rate, 16000))  # doctest: +SKIP
    """
    new_rate = _check_rate("new_rate", new_rate)
    rates = tuple(_check_rate("rates entry", r) for r in rates)
    if not rates:
        raise ValueError("resample_any needs at least one rate in `rates`. Fix: leave the default.")
    for r in rates:
        if r != new_rate:
            _polyphase_kernel(r, new_rate)  # fail now, in Python, on an impossible pair
    x = _as_float32(waveform)
    rate = tf.cast(tf.convert_to_tensor(rate), tf.int32)
    table = [r for r in rates if r != new_rate]
    matches = tf.equal(tf.constant(rates, tf.int32), rate)
    message = tf.strings.format(
        "resample_any: sample rate {} Hz is not one of the supported rates "
        f"{list(rates)}. Fix: pass rates=(..., that rate) to resample_any, or convert the file to a "
        "supported rate.",
        rate,
    )
    check = tf.debugging.Assert(tf.reduce_any(matches), [message])
    with tf.control_dependencies([check]):
        # 0 when rate == new_rate, else 1 + its place in table
        index = tf.reduce_sum(tf.cast(tf.equal(tf.constant(table or [0], tf.int32), rate), tf.int32)
                              * tf.range(1, max(len(table), 1) + 1))
    return switch_rates(x, index, table, new_rate)


@keras.utils.register_keras_serializable(package="tfaudio")
class Resample(keras.layers.Layer):
    """Keras layer that resamples ``[..., samples]`` waveforms from ``orig_rate`` to ``new_rate``.

    Calls :func:`resample`, so a model that starts with this layer resamples exactly like the
    ``tf.data`` pipeline, and exports to TFLite with builtin ops only.

    Args:
        orig_rate: input rate in Hz.
        new_rate: output rate in Hz.
        **kwargs: passed to ``keras.layers.Layer`` (``name``, ``dtype``...).

    Example:
        >>> inputs = keras.Input([None])                 # [batch, samples] at 44.1 kHz
        >>> outputs = Resample(44100, 16000)(inputs)     # [batch, samples'] at 16 kHz
    """

    def __init__(self, orig_rate: int, new_rate: int, **kwargs):
        super().__init__(**kwargs)
        self.orig_rate = _check_rate("orig_rate", orig_rate)
        self.new_rate = _check_rate("new_rate", new_rate)
        if self.orig_rate != self.new_rate:
            _polyphase_kernel(self.orig_rate, self.new_rate)  # refuse an impossible pair at build time

    def call(self, inputs):
        return resample(inputs, self.orig_rate, self.new_rate)

    def compute_output_shape(self, input_shape):
        input_shape = tf.TensorShape(input_shape)
        samples = input_shape[-1]
        if samples is not None and self.orig_rate != self.new_rate:
            kernel = _polyphase_kernel(self.orig_rate, self.new_rate)
            samples = _output_length(samples, kernel.up, kernel.down)
        return input_shape[:-1].concatenate([samples])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"orig_rate": self.orig_rate, "new_rate": self.new_rate})
        return config
