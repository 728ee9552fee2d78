"""Entropy coding of the selected channels: an adaptive integer context model + constriction's range coder.

Latent section layout (``gsc.stream`` carries it as the rest of the stream; empty means C = 0)::

    C − 1 (4 bits) | step code (2 bits) | C ascending indices, ceil(log2 N) bits each
    | per channel: m_c = max |ŷ_c| as Exp-Golomb order 1 | zero bits to the byte boundary
    | range-coder words (little-endian u32), trailing zero bytes dropped

Model. Channel c's symbols ŷ ∈ [−m_c, m_c] are coded in raster order, predictively (LOCO-I): the
prediction p is the median edge detector of the decoded neighbours (left a, up b, up-left c):
min(a, b) if c ≥ max(a, b), max(a, b) if c ≤ min(a, b), a + b − c otherwise (first row: a; first
column: b; origin: 0). The context is the local activity |a − c| + |b − c| in 4 buckets (0, 1, 2–3,
≥ 4). Each context holds an integer frequency table over residuals r = ŷ − p ∈ [−2m, 2m] that starts
from a fixed integer prior peaked at 0, adds ``INCREMENT`` to the coded residual and halves when its
total passes ``LIMIT``. The symbol is coded with the table's slice for ŷ ∈ [−m, m] (residuals
[−m − p, m − p]), so the alphabet stays 2m + 1. The coder gets ``counts / total`` as float64; both
are integers below 2^53, so the division is exact IEEE arithmetic and constriction's fixed-point
quantization of it (Rust, single threaded) sees the same input everywhere. Encoder and decoder
therefore compute bit-identical models on any machine and with any thread count; no float from a
neural network touches the probabilities.

Why predictive: the lite analysis transform is trained against this predictor's residuals
(``gsc.latent.lite.med_residual``), so its channels may be smooth, wide-range maps (thumbnail-like),
which carry far more of the image per bit than sparse ones.
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


N_CONTEXTS = 4


def med_predict(a: int, b: int, c: int) -> int:
    """LOCO-I's median edge detector (a = left, b = up, c = up-left)."""
    if c >= max(a, b):
        return min(a, b)
    if c <= min(a, b):
        return max(a, b)
    return a + b - c


class AdaptiveContextModel:
    """Integer residual frequency tables for one channel with alphabet [−m, m]."""

    def __init__(self, m: int):
        self.m = m
        prior = np.array([max(1, 16 >> min(abs(v), 4)) for v in range(-2 * m, 2 * m + 1)], dtype=np.int64)
        self.tables = np.tile(prior, (N_CONTEXTS, 1))

    @staticmethod
    def predict(q: np.ndarray, y: int, x: int) -> tuple[int, int]:
        """(prediction, context) for position (y, x) from the already coded neighbours."""
        if y == 0:
            return (int(q[0, x - 1]) if x > 0 else 0), 0
        if x == 0:
            return int(q[y - 1, 0]), 0
        a, b, c = int(q[y, x - 1]), int(q[y - 1, x]), int(q[y - 1, x - 1])
        activity = abs(a - c) + abs(b - c)
        ctx = 0 if activity == 0 else 1 if activity == 1 else 2 if activity <= 3 else 3
        return med_predict(a, b, c), ctx

    def probabilities(self, ctx: int, pred: int) -> np.ndarray:
        """P(ŷ = v) for v in [−m, m], i.e. residual table entries v − pred + 2m."""
        lo = self.m - pred
        t = self.tables[ctx, lo: lo + 2 * self.m + 1]
        return t.astype(np.float64) / float(t.sum())

    def update(self, ctx: int, pred: int, value: int) -> None:
        t = self.tables[ctx]
        t[value - pred + 2 * self.m] += INCREMENT
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
                pred, ctx = model.predict(ch, y, x)
                v = int(ch[y, x])
                enc.encode(v + m, cat(model.probabilities(ctx, pred), perfect=False))
                model.update(ctx, pred, v)
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
                pred, ctx = model.predict(ch, y, x)
                v = int(dec.decode(cat(model.probabilities(ctx, pred), perfect=False))) - m
                ch[y, x] = v
                model.update(ctx, pred, v)
    return q
