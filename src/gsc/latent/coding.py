"""Entropy coding of the selected channels: an adaptive integer context model + constriction's range coder.

Latent section layout (``gsc.stream`` carries it as the rest of the stream; empty means C = 0)::

    C − 1 (4 bits) | step code (2 bits) | C ascending indices, ceil(log2 N) bits each
    | per channel: m_c = max |ŷ_c| as Exp-Golomb order 1 | zero bits to the byte boundary
    | range-coder words (little-endian u32), trailing zero bytes dropped

Model. Channel c's symbols ŷ ∈ [−m_c, m_c] are coded in raster order. The context is
(min(|left|, 2), min(|up|, 2)), 9 contexts per channel, each an integer frequency table that starts
from a fixed integer prior peaked at 0 and adds ``INCREMENT`` to the coded symbol, halving when the
total passes ``LIMIT``. The coder gets ``counts / total`` as float64; both are integers below 2^53, so
the division is exact IEEE arithmetic and constriction's fixed-point quantization of it (Rust, single
threaded) sees the same input everywhere. Encoder and decoder therefore compute bit-identical models
on any machine and with any thread count; no float from a neural network touches the probabilities.
"""

from __future__ import annotations

import math

import numpy as np

from ..bits import BitReader, BitWriter
from ..errors import StreamError

STEPS = (1.0, 1.5, 2.0, 2.5)      # quantization step codes (2 bits)
MAX_CHANNELS_SENT = 16
MAX_MAGNITUDE = 4095
INCREMENT = 24
LIMIT = 1 << 13


def index_bits(n_channels: int) -> int:
    return max(1, math.ceil(math.log2(n_channels)))


def step_code(step: float) -> int:
    for i, s in enumerate(STEPS):
        if abs(s - step) < 1e-9:
            return i
    raise ValueError(f"quantization step {step} is not one of {STEPS}")


class AdaptiveContextModel:
    """Integer frequency tables for one channel with alphabet [−m, m]."""

    def __init__(self, m: int):
        self.m = m
        size = 2 * m + 1
        prior = np.array([max(1, 16 >> min(abs(v), 4)) for v in range(-m, m + 1)], dtype=np.int64)
        self.tables = np.tile(prior, (9, 1))
        assert self.tables.shape == (9, size)

    @staticmethod
    def context(q: np.ndarray, y: int, x: int) -> int:
        left = min(abs(int(q[y, x - 1])), 2) if x > 0 else 0
        up = min(abs(int(q[y - 1, x])), 2) if y > 0 else 0
        return left + 3 * up

    def probabilities(self, ctx: int) -> np.ndarray:
        t = self.tables[ctx]
        return t.astype(np.float64) / float(t.sum())

    def update(self, ctx: int, symbol: int) -> None:
        t = self.tables[ctx]
        t[symbol] += INCREMENT
        if t.sum() > LIMIT:
            self.tables[ctx] = (t + 1) // 2


def encode_latent(q: np.ndarray, indices: list[int], n_channels: int, step: float = 1.0) -> bytes:
    """q: (C, h, w) integers (the selected channels, in index order). Returns the latent section."""
    import constriction

    c = len(indices)
    if c == 0:
        return b""
    if not 1 <= c <= MAX_CHANNELS_SENT:
        raise ValueError(f"C must be 0..{MAX_CHANNELS_SENT}, got {c}")
    if list(indices) != sorted(set(indices)) or not all(0 <= i < n_channels for i in indices):
        raise ValueError(f"indices must be ascending, unique and in 0..{n_channels - 1}: {indices}")
    q = np.asarray(q, dtype=np.int64)
    if q.shape[0] != c:
        raise ValueError(f"{q.shape[0]} channel maps for {c} indices")
    w = BitWriter()
    w.write(c - 1, 4)
    w.write(step_code(step), 2)
    for i in indices:
        w.write(i, index_bits(n_channels))
    mags = []
    for ch in q:
        m = int(np.abs(ch).max()) if ch.size else 0
        if m > MAX_MAGNITUDE:
            raise ValueError(f"latent magnitude {m} exceeds {MAX_MAGNITUDE}; use a larger quantization step")
        mags.append(m)
        w.write_eg(m, 1)
    enc = constriction.stream.queue.RangeEncoder()
    cat = constriction.stream.model.Categorical
    for ch, m in zip(q, mags):
        if m == 0:
            continue
        model = AdaptiveContextModel(m)
        h, wd = ch.shape
        for y in range(h):
            for x in range(wd):
                ctx = model.context(ch, y, x)
                s = int(ch[y, x]) + m
                enc.encode(s, cat(model.probabilities(ctx), perfect=False))
                model.update(ctx, s)
    words = enc.get_compressed().astype("<u4").tobytes()
    return w.to_bytes() + words.rstrip(b"\x00")


def decode_latent(data: bytes, n_channels: int, h: int, w: int) -> tuple[np.ndarray, list[int], float]:
    """Inverse of encode_latent for a grid of h × w. Raises StreamError on malformed input."""
    import constriction

    if not data:
        return np.zeros((0, h, w), dtype=np.int64), [], 1.0
    r = BitReader(data, "latent section")
    c = r.read(4) + 1
    step = STEPS[r.read(2)]
    indices = [r.read(index_bits(n_channels)) for _ in range(c)]
    if indices != sorted(set(indices)) or indices[-1] >= n_channels:
        raise StreamError(f"latent section: invalid channel indices {indices} for {n_channels} channels")
    mags = [r.read_eg(1, MAX_MAGNITUDE) for _ in range(c)]
    start = r.align()
    payload = data[start:]
    payload = payload + b"\x00" * (-len(payload) % 4)
    if any(mags) and not payload:
        raise StreamError("latent section is truncated (no coded symbols)")
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    try:
        q = _decode_symbols(dec, mags, h, w)
    except (AssertionError, ValueError, RuntimeError) as e:  # constriction's complaint about invalid data
        raise StreamError(f"latent section is corrupted ({e})") from None
    if not dec.maybe_exhausted():
        raise StreamError("latent section has trailing data")
    return q, indices, step


def _decode_symbols(dec, mags: list[int], h: int, w: int) -> np.ndarray:
    import constriction

    cat = constriction.stream.model.Categorical
    q = np.zeros((len(mags), h, w), dtype=np.int64)
    for k, m in enumerate(mags):
        if m == 0:
            continue
        model = AdaptiveContextModel(m)
        ch = q[k]
        for y in range(h):
            for x in range(w):
                ctx = model.context(ch, y, x)
                s = int(dec.decode(cat(model.probabilities(ctx), perfect=False)))
                ch[y, x] = s - m
                model.update(ctx, s)
    return q
