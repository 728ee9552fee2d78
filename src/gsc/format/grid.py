"""The grid section (the flux presets): the selected channels, an adaptive integer context model + the range
coder (``gsc.format.coder``).

Latent section layout (``gsc.format.container`` carries it as the rest of the stream; empty means C = 0)::

    C − 1 (4 bits) | step code (4 bits) | C ascending indices, ceil(log2 N) bits each
    | per channel: m_c = max |ŷ_c| as Exp-Golomb order 1 | zero bits to the byte boundary
    | range-coder words (little-endian u32), trailing zero bytes dropped

Model (LOCO-I). The prediction p of ŷ[y, x] is the median edge detector of its left a, up b and
up-left c neighbours: min(a, b) if c ≥ max(a, b), max(a, b) if c ≤ min(a, b), a + b − c otherwise
(first row: a; first column: b; origin: 0). The context is the activity |a − c| + |b − c| in 4
buckets (0, 1, 2–3, ≥ 4; first row and column: 0). Each channel and context holds an integer
frequency table over residuals r = ŷ − p ∈ [−2m_c, 2m_c], starting from the prior
max(1, 16 >> min(|r|, 4)).

Order (a wavefront). Symbols are coded anti-diagonal by anti-diagonal (y + x = 0, 1, …): a position
depends only on earlier diagonals, so a whole diagonal of every channel is one vectorised coder call.
Within a diagonal: channel by channel, y ascending. The tables are updated once per diagonal with all
its residuals (+``INCREMENT`` each; then each table it touched whose total exceeds ``LIMIT`` is halved
once, rounding up). The coder sees, per symbol, the table's slice for ŷ ∈ [−M, M] (M = max m_c over the
coded channels), zero outside the channel's own [−m_c, m_c], as float64 integers (exact); constriction's
fixed-point quantization (Rust, single threaded) of those is the same everywhere. Encoder and decoder run one shared loop, so their models are bit-identical on any
machine and with any thread count; no float from a neural network touches the probabilities.

Canonical sections: ``gsc.format.coder.checked_decode`` refuses anything but the encoder's own output.

Work. Decoding costs about (coded positions) × (2M + 1) table entries plus fixed costs per symbol and
per diagonal; ``symbol_work`` estimates it (CPU nanoseconds) from the section's header before anything
is allocated, so a caller can refuse it.
"""

from __future__ import annotations

import math

import numpy as np

from ..bits import BitReader, BitWriter, ceil_div
from ..errors import StreamError
from .coder import check_work, checked_decode, encode_with
from .tables import STEPS

STEP_BITS = 4
MAX_CHANNELS_SENT = 16
MAX_MAGNITUDE = 4095
INCREMENT = 24
LIMIT = 1 << 13
N_CONTEXTS = 4
CHUNK_ENTRIES = 1 << 20     # probability entries per coder call: bounds memory at 8 MB of float64
# symbol_work's cost model, in ≈ ns of CPU time: per probability entry, per symbol, per diagonal, and per
# table entry and diagonal. Refitted on 16 sections (hostile shapes, m = 1..4095), each at or above its
# measure on the shared 2-core CPU (the first fit, 2026-11-30, under-estimated the large-m rows by 1.7×).
WORK_PER_ENTRY, WORK_PER_SYMBOL, WORK_PER_DIAGONAL, WORK_PER_TABLE_ENTRY = 7, 200, 160_000, 3
_BUCKET = np.array([0, 1, 2, 2, 3], dtype=np.int64)   # activity 0, 1, 2–3, ≥ 4 (clipped to 4)


def index_bits(n_channels: int) -> int:
    return max(1, math.ceil(math.log2(n_channels)))


def step_code(step: float) -> int:
    for i, s in enumerate(STEPS):
        if abs(s - step) < 1e-9:
            return i
    raise ValueError(f"quantization step {step} is not one of {STEPS}")


def med_predict(a, b, c):
    """LOCO-I's median edge detector (a = left, b = up, c = up-left); ints or integer arrays."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    return np.where(c >= hi, lo, np.where(c <= lo, hi, a + b - c))


def predictions(q: np.ndarray) -> np.ndarray:
    """The coder's prediction at every position of (..., h, w) integer maps (for tests and pricing)."""
    q = np.asarray(q, dtype=np.int64)
    pad = np.pad(q, [(0, 0)] * (q.ndim - 2) + [(1, 0), (1, 0)])
    # A zero border makes the MED give exactly a on the first row, b on the first column, 0 at the origin.
    return med_predict(pad[..., 1:, :-1], pad[..., :-1, 1:], pad[..., :-1, :-1])


def _diagonals(h: int, w: int):
    """(ys, xs) of each anti-diagonal y + x = d, y ascending."""
    for d in range(h + w - 1):
        ys = np.arange(max(0, d - w + 1), min(d, h - 1) + 1)
        yield ys, d - ys


def wavefront(mags: list[int], h: int, w: int, code, truth: np.ndarray | None = None) -> np.ndarray:
    """The model loop that encoder and decoder share. ``code(probs, symbols)`` codes one row of
    ``probs`` per symbol and returns the symbols: the encoder passes ``truth``'s, the decoder None and
    gets decoded ones. Returns q (C, h, w)."""
    from numpy.lib.stride_tricks import sliding_window_view

    q = np.zeros((len(mags), h + 1, w + 1), dtype=np.int64)   # zero border at top and left
    active = np.array([k for k, m in enumerate(mags) if m > 0], dtype=np.int64)
    if not len(active):
        return q[:, 1:, 1:]
    m = np.array([mags[k] for k in active], dtype=np.int64)
    big_m = int(m.max())
    n_alpha, n_res = 2 * big_m + 1, 4 * big_m + 1
    res = np.abs(np.arange(-2 * big_m, 2 * big_m + 1))
    prior = np.where(res[None, :] <= 2 * m[:, None], np.maximum(1, 16 >> np.minimum(res, 4)), 0)   # (A, n_res)
    # One row per (channel, context), float64 holding integers: exact, and what the coder takes.
    tables = np.repeat(prior, N_CONTEXTS, axis=0).astype(np.float64)
    totals = tables.sum(axis=1)
    windows = sliding_window_view(tables, n_alpha, axis=1)   # [row, j]: ŷ ∈ [−M, M] for p = M − j
    mixed = bool((m < big_m).any())
    valid = np.abs(np.arange(-big_m, big_m + 1))[None, :] <= m[:, None]                  # (A, n_alpha)
    per_call = max(1, CHUNK_ENTRIES // n_alpha)
    a_rows = np.arange(len(active))[:, None] * N_CONTEXTS
    for ys, xs in _diagonals(h, w):
        left = q[active[:, None], ys + 1, xs]          # (A, n)
        up = q[active[:, None], ys, xs + 1]
        upleft = q[active[:, None], ys, xs]
        pred = med_predict(left, up, upleft)
        ctx = _BUCKET[np.minimum(np.abs(left - upleft) + np.abs(up - upleft), 4)]
        ctx[:, (ys == 0) | (xs == 0)] = 0
        row = (a_rows + ctx).ravel()                   # channel-major, y ascending
        offset = (big_m - pred).ravel()
        true = None if truth is None else (truth[active[:, None], ys, xs] + big_m).ravel().astype(np.int32)
        symbols = np.empty(len(row), dtype=np.int64)
        for s in range(0, len(row), per_call):
            probs = windows[row[s:s + per_call], offset[s:s + per_call]]
            if mixed:   # a channel's own alphabet is [−m_c, m_c]
                probs *= valid[row[s:s + per_call] // N_CONTEXTS]
            symbols[s:s + per_call] = code(probs, None if true is None else true[s:s + per_call])
        v = symbols.reshape(pred.shape) - big_m
        if mixed and np.any(np.abs(v) > m[:, None]):
            raise StreamError("latent section is corrupted (a symbol outside its channel's range)")
        q[active[:, None], ys + 1, xs + 1] = v
        # One table update per diagonal, with all of its residuals.
        cell = row * n_res + (v - pred).ravel() + 2 * big_m
        if tables.size <= 8 * len(cell):
            tables += INCREMENT * np.bincount(cell, minlength=tables.size).reshape(tables.shape)
        else:   # large tables: touch only the coded cells
            cells, counts = np.unique(cell, return_counts=True)
            tables.reshape(-1)[cells] += INCREMENT * counts
        per_row = np.bincount(row, minlength=len(totals))
        totals += INCREMENT * per_row
        over = np.flatnonzero((per_row > 0) & (totals > LIMIT))
        if len(over):   # halve, rounding up (once per diagonal: the work stays bounded for any m)
            tables[over] = np.floor((tables[over] + 1) / 2)
            totals[over] = tables[over].sum(axis=1)
    return q[:, 1:, 1:]


def symbol_work(mags: list[int], h: int, w: int) -> int:
    """The entropy coder's work for a section, from its header: an upper estimate of the decode's CPU
    time in nanoseconds on one core of the reference 2-core CPU (docs/stream-format.md, "Limits").
    Per coded symbol its probability row (2M + 1 entries, M = max m_c) and a fixed cost; per diagonal a
    fixed cost and the table update (the tables' size)."""
    coded = [m for m in mags if m > 0]
    if not coded:
        return 0
    n_alpha, symbols = 2 * max(coded) + 1, len(coded) * h * w
    tables = len(coded) * N_CONTEXTS * (2 * n_alpha - 1)
    return (symbols * (WORK_PER_ENTRY * n_alpha + WORK_PER_SYMBOL)
            + (h + w - 1) * (WORK_PER_DIAGONAL + WORK_PER_TABLE_ENTRY * tables))


def _check_channels(q: np.ndarray, indices: list[int], n_channels: int) -> list[int]:
    c = len(indices)
    if not 1 <= c <= MAX_CHANNELS_SENT:
        raise ValueError(f"C must be 0..{MAX_CHANNELS_SENT}, got {c}")
    if list(indices) != sorted(set(indices)) or not all(0 <= i < n_channels for i in indices):
        raise ValueError(f"indices must be ascending, unique and in 0..{n_channels - 1}: {indices}")
    if q.shape[0] != c:
        raise ValueError(f"{q.shape[0]} channel maps for {c} indices")
    mags = [int(np.abs(ch).max()) if ch.size else 0 for ch in q]
    if max(mags) > MAX_MAGNITUDE:
        raise ValueError(f"latent magnitude {max(mags)} exceeds {MAX_MAGNITUDE}; use a larger quantization step")
    return mags


def _encode_symbols(q: np.ndarray, mags: list[int]) -> bytes:
    return encode_with(lambda code: wavefront(mags, *q.shape[1:], code, truth=q))


def encode_latent(q: np.ndarray, indices: list[int], n_channels: int, step: float = 1.0) -> bytes:
    """q: (C, h, w) integers (the selected channels, in index order). Returns the latent section."""
    if len(indices) == 0:
        return b""
    q = np.asarray(q, dtype=np.int64)
    mags = _check_channels(q, indices, n_channels)
    w = BitWriter()
    w.write(len(indices) - 1, 4)
    w.write(step_code(step), STEP_BITS)
    for i in indices:
        w.write(i, index_bits(n_channels))
    for m in mags:
        w.write_eg(m, 1)
    return w.to_bytes() + _encode_symbols(q, mags)


def read_latent_header(data: bytes, n_channels: int) -> tuple[list[int], float, list[int], int]:
    """(indices, step, m_c per channel, byte offset of the coded symbols); StreamError on malformed input."""
    r = BitReader(data, "latent section")
    c = r.read(4) + 1
    step = STEPS[r.read(STEP_BITS)]
    indices = [r.read(index_bits(n_channels)) for _ in range(c)]
    if indices != sorted(set(indices)) or indices[-1] >= n_channels:
        raise StreamError(f"latent section: invalid channel indices {indices} for {n_channels} channels")
    mags = [r.read_eg(1, MAX_MAGNITUDE) for _ in range(c)]
    return indices, step, mags, r.align()


def decode_latent(data: bytes, n_channels: int, h: int, w: int,
                  max_work: int | None = None) -> tuple[np.ndarray, list[int], float]:
    """Inverse of encode_latent for a grid of h × w. Raises StreamError on malformed input, and when the
    section's ``symbol_work`` exceeds ``max_work`` (checked before anything is allocated)."""
    if not data:
        return np.zeros((0, h, w), dtype=np.int64), [], 1.0
    indices, step, mags, start = read_latent_header(data, n_channels)
    check_work(symbol_work(mags, h, w), max_work)
    q = checked_decode(data[start:], lambda code: wavefront(mags, h, w, code))
    return np.ascontiguousarray(q), indices, step


def grid_shape(width: int, height: int) -> tuple[int, int]:
    """(h, w) of the channel grid for an image: one symbol per 16 × 16 pixels."""
    return ceil_div(height, 16), ceil_div(width, 16)
