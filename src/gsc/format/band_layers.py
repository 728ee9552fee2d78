"""The bands section's later layers (lite): the same thumbnail's bands again, at a finer step.

Layer 1 is a bands section (``gsc.format.bands``) at (f, Δ_1, C_1). Layer j ≥ 2 codes the bands at
(f, Δ_j, C_j) given the layer before it: layer 1's scale, luma and chroma steps no coarser than the layer
before's (one of them finer), C_j ≥ C_{j−1}. q_j are the image's bands quantized at Δ_j
(``gsc.models.thumbnail.quantize``), so the prefix up to layer j decodes to exactly the one-shot latent at
(f, Δ_j, C_j) and g_s and the texture run as for one layer, with layer j's texture code; the receiver
also cuts each bin of q_j to the bins of the layers before (``gsc.models.thumbnail.nested``). Dead-zone
quantizers do not nest, but the bins of q_{j−1} leave q_j few values: in band k (rounding r, ρ = Δ_{j−1}/Δ_j
of the plane), where m = |q_{j−1}| > 0, |q_j| lies in::

    lo = ⌊(m − r)·ρ + r + ε⌋ .. hi = ⌈(m + 1 − r)·ρ + r − ε⌉ − 1,   sign that of q_{j−1}

and where q_{j−1} = 0, |q_j| ≤ ⌈(1 − r)·ρ + r − ε⌉ − 1 (ε = ``EDGE``; in the bands new to layer j, any).

Section layout of layer j ≥ 2::

    luma step code (5) | chroma ratio code (3) | C − 1 (6) | texture code (3) | M of Y, of Cb/Cr (EG1 each)
    | R of Y, of Cb/Cr (EG1 each)
    | zero bits to the byte boundary | range-coder words (``gsc.format.coder``)

M: the largest |q_j| where q_{j−1} = 0 or is new; R: the largest |q_j| − lo where q_{j−1} ≠ 0.

Model. Band by band, Y then Cb and Cr together, as layer 1 (so a band's contexts see the lower bands of
this layer); a coefficient with one possible value codes nothing:

- where q_{j−1} = 0 or is new: |q_j| in 0..min(hi, M) with layer 1's contexts and fitted prior (the DC
  band: one more context, flat prior), one table set for the new bands and one for the rest, then a sign
  bit per non-zero;
- where q_{j−1} ≠ 0: |q_j| − lo in 0..min(hi − lo, R), in a context of the band's frequency group (the DC
  band its own), m = 1 or more, and hi − lo + 1 (2, 3, ≥ 4), from the prior 16, 8, 4, 2, 1, 1, …

Each coder call's rows are zero above each coefficient's top value (the coder gives those its least
probability); every table adapts as in layer 1. ``docs/stream-format.md`` measures what the layers cost against one-shot
streams of the same bytes (the scale is layer 1's for every layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bits import BitReader, BitWriter
from ..errors import StreamError
from .bands import (GROUPS, KINDS, N_CONTEXTS, WORK_FIXED, WORK_PER_CALL, WORK_PER_ENTRY, WORK_PER_SYMBOL,
                    WORK_PER_TABLE_ENTRY, BandLatent, _code_chunks, _contexts, _shapes, _SIGN, _Tables,
                    default_prior)
from .coder import check_work, checked_decode, encode_with
from .grid import MAX_MAGNITUDE
from .tables import CHROMA_RATIOS, LUMA_STEPS, SCALES, ThumbnailGeometry

WIDTH_EDGES = (3, 4)                      # a refined coefficient's number of candidate values: 2, 3, ≥ 4
N_REFINE = len(GROUPS) * 2 * (len(WIDTH_EDGES) + 1)   # frequency group × (|q_{j−1}| = 1 or more) × width
DC_CONTEXT = N_CONTEXTS                   # the DC band's row of the magnitude tables, after layer 1's contexts
EDGE = 1e-9                               # bin edges within this (in steps) of a value count as on it


def _steps(luma_code: int, chroma_code: int) -> tuple[float, float]:
    return LUMA_STEPS[luma_code], LUMA_STEPS[luma_code] * CHROMA_RATIOS[chroma_code]


@dataclass
class Parents:
    """What layer j knows of each coefficient from the layer before, per plane (C_j, hb, wb): the sign of
    q_{j−1} and the magnitudes lo..hi at the new step whose bins meet q_{j−1}'s bin (hi = −1: a band new
    to layer j, any magnitude)."""

    sign: list[np.ndarray]
    lo: list[np.ndarray]
    hi: list[np.ndarray]
    first: list[np.ndarray]      # |q_{j−1}| = 1


def parents(prev: BandLatent, luma_code: int, chroma_code: int, channels: int) -> Parents:
    """The ``Parents`` of every coefficient of each plane at the given steps, ``channels`` bands."""
    (y0, c0), (y1, c1) = _steps(prev.luma_code, prev.chroma_code), _steps(luma_code, chroma_code)
    from ..models.thumbnail import rounding

    out = Parents([], [], [], [])
    r = rounding(prev.channels).numpy()          # the band steps scale alike, so the ratio is the planes'
    for q, ratio in zip(prev.q, (y0 / y1, c0 / c1, c0 / c1)):
        m = np.abs(q)
        lo = np.where(m > 0, np.floor((m - r) * ratio + r + EDGE), 0)
        hi = np.ceil(np.where(m > 0, m + 1 - r, 1 - r) * ratio + r - EDGE) - 1
        shape = (channels, *q.shape[1:])
        parts = [np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64),
                 np.full(shape, -1, dtype=np.int64), np.zeros(shape, dtype=bool)]
        for a, v in zip(parts, (np.sign(q), lo, hi, m == 1)):
            a[: q.shape[0]] = v
        for field, a in zip((out.sign, out.lo, out.hi, out.first), parts):
            field.append(a)
    return out


def check_refines(prev: tuple[int, int, int, int], layer: tuple[int, int, int, int]) -> None:
    """StreamError unless ``layer`` = (scale code, luma code, chroma code, C) refines ``prev``: the same
    scale, luma and chroma steps no coarser (one finer), at least as many bands."""
    (scale, luma, chroma, c), (scale_j, luma_j, chroma_j, c_j) = prev, layer
    before, now = _steps(luma, chroma), _steps(luma_j, chroma_j)
    if scale_j != scale or c_j < c or now[0] > before[0] or now[1] > before[1] or now == before:
        raise StreamError(f"a bands layer (steps {now[0]:.4g}, {now[1]:.4g}, C={c_j}) does not refine the one "
                          f"before it (steps {before[0]:.4g}, {before[1]:.4g}, C={c})")


def settings(latent: BandLatent) -> tuple[int, int, int, int]:
    return latent.scale_code, latent.luma_code, latent.chroma_code, latent.channels


def _bounds(q: list[np.ndarray], par: Parents) -> tuple[list[int], list[int]]:
    """(M, R) of Y and of Cb/Cr: the largest magnitude where q_{j−1} = 0 or is new, and the largest
    refinement |q_j| − lo where q_{j−1} ≠ 0. ValueError when a value lies outside its parent's bin."""
    mags, rs = [], []
    for planes in KINDS:
        m, r = 0, 0
        for i in planes:
            a, lo, hi, new = np.abs(q[i]), par.lo[i], par.hi[i], par.hi[i] < 0
            if np.any(~new & ((a < lo) | (a > hi))) or np.any((par.sign[i] != 0) & (np.sign(q[i]) != par.sign[i])):
                raise ValueError("a coefficient lies outside its parent's bin (a value on a bin edge)")
            fresh, known = a[par.sign[i] == 0], (a - lo)[par.sign[i] != 0]
            m, r = max(m, int(fresh.max(initial=0))), max(r, int(known.max(initial=0)))
        mags.append(m)
        rs.append(r)
    return mags, rs


class _Rows(_Tables):
    """Adaptive tables from given rows (the refinements' prior)."""

    def __init__(self, t: np.ndarray):
        self.t = t


def _refine_rows(r: int) -> np.ndarray:
    return np.repeat(np.maximum(1, 16 >> np.arange(r + 1)).astype(np.float64)[None], N_REFINE, axis=0)


def _masked(probs: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Frequency rows with the symbols above each row's ``top`` at 0 (the coder gives them its least probability)."""
    return np.where(np.arange(probs.shape[1])[None] > top[:, None], 0.0, probs)


def _checked_code(code, probs, top, true, what: str) -> np.ndarray:
    s = _code_chunks(code, _masked(probs, top), true)
    if np.any(s > top):
        raise StreamError(f"latent layer is corrupted (a {what} outside its parent's bin)")
    return s


def _fresh(code, tables, ctx, new, top, true) -> np.ndarray:
    """Magnitude and sign of the coefficients whose parent is 0 (``new``: of a band new to this layer)."""
    fresh, zero = tables
    probs = np.where(new[:, None], fresh.probs(ctx), zero.probs(ctx))
    mags = _checked_code(code, probs, top, None if true is None else np.abs(true), "magnitude")
    fresh.update(ctx[new], mags[new])
    zero.update(ctx[~new], mags[~new])
    nz = np.flatnonzero(mags)
    signs = _code_chunks(code, np.repeat(_SIGN, len(nz), axis=0), None if true is None else
                         (true[nz] < 0).astype(np.int64))
    mags[nz] *= 1 - 2 * signs
    return mags


def _band(code, k, planes, par: Parents, a, tables, bounds, true):
    """One band of one kind: its values, from the parents and (encoding) the true values."""
    (fresh, zero, refine), (m, r) = tables, bounds
    sign, lo, hi, first = (np.concatenate([f[i][k].ravel() for i in planes])
                           for f in (par.sign, par.lo, par.hi, par.first))
    v = sign * lo
    new = hi < 0
    todo = np.flatnonzero((sign == 0) & (hi != 0))
    if len(todo) and m:
        ctx = (np.concatenate([_contexts(a, i, k) for i in planes]) if k else np.full(len(v), DC_CONTEXT))[todo]
        top = np.where(new[todo], m, np.minimum(hi[todo], m))
        v[todo] = _fresh(code, (fresh, zero), ctx, new[todo], top, None if true is None else true[todo])
    todo = np.flatnonzero((sign != 0) & (hi > lo))
    if len(todo) and r:
        width = hi[todo] - lo[todo] + 1
        group = int(np.searchsorted(GROUPS, k, side="right")) if k else 0
        ctx = (2 * group + first[todo]) * (len(WIDTH_EDGES) + 1) + np.searchsorted(WIDTH_EDGES, width, side="right")
        s = _checked_code(code, refine.probs(ctx), np.minimum(width - 1, r),
                          None if true is None else np.abs(true[todo]) - lo[todo], "refinement")
        refine.update(ctx, s)
        v[todo] = sign[todo] * (lo[todo] + s)
    return v


def _run(code, par: Parents, shapes, mags, rs, truth=None) -> list[np.ndarray]:
    """The model loop encoder and decoder share (module docstring)."""
    q = [np.zeros(s, dtype=np.int64) for s in shapes]
    a = [np.zeros(s, dtype=np.int64) for s in shapes]
    tables = [(_Tables(mags[kind], kind, default_prior(mags[kind])[None]),
               _Tables(mags[kind], kind, default_prior(mags[kind])[None]), _Rows(_refine_rows(rs[kind])))
              for kind in range(len(KINDS))]
    for k in range(shapes[0][0]):
        for kind, planes in enumerate(KINDS):
            true = None if truth is None else np.concatenate([truth[i][k].ravel() for i in planes])
            v = _band(code, k, planes, par, a, tables[kind], (mags[kind], rs[kind]), true)
            start = 0
            for i in planes:
                n = q[i][k].size
                q[i][k] = v[start:start + n].reshape(q[i][k].shape)
                a[i][k] = np.abs(q[i][k])
                start += n
    return q


def layer_work(geometry: ThumbnailGeometry, c: int, mags: list[int], rs: list[int]) -> int:
    """Upper estimate of a later layer's decoding CPU time (ns), from its header: per band and kind, every
    symbol's probability row (the wider alphabet) gathered, chosen and masked, its sign, three coder calls
    and the three tables' updates."""
    shapes = _shapes(geometry, c)
    symbols = (shapes[0][1] * shapes[0][2], 2 * shapes[1][1] * shapes[1][2])
    per_band = sum(n * (3 * WORK_PER_ENTRY * (max(m, r) + 1) + 2 * WORK_PER_SYMBOL) + 3 * WORK_PER_CALL
                   + WORK_PER_TABLE_ENTRY * (2 * (N_CONTEXTS + 1) * (m + 1) + N_REFINE * (r + 1))
                   for n, m, r in zip(symbols, mags, rs))
    return WORK_FIXED + c * per_band


def _header(latent: BandLatent, mags: list[int], rs: list[int]) -> bytes:
    w = BitWriter()
    w.write(latent.luma_code, 5)
    w.write(latent.chroma_code, 3)
    w.write(latent.channels - 1, 6)
    w.write(latent.texture_code, 3)
    for v in (*mags, *rs):
        w.write_eg(v, 1)
    return w.to_bytes()


def read_layer_header(data: bytes):
    """(luma code, chroma code, C, texture code), [M_Y, M_C], [R_Y, R_C] and where the coder's words start."""
    r = BitReader(data, "latent layer")
    codes = (r.read(5), r.read(3), r.read(6) + 1, r.read(3))
    bounds = [r.read_eg(1, MAX_MAGNITUDE) for _ in range(4)]
    return codes, bounds[:2], bounds[2:], r.align()


def encode_layer(prev: BandLatent, latent: BandLatent, width: int, height: int) -> bytes:
    """Layer j's section: ``latent`` (the one-shot bands at its step) given the layer before, ``prev``."""
    check_refines(settings(prev), settings(latent))
    q = [np.asarray(p, dtype=np.int64) for p in latent.q]
    if max(int(np.abs(p).max()) for p in q) > MAX_MAGNITUDE:
        raise ValueError(f"a coefficient exceeds {MAX_MAGNITUDE} steps; use a larger step")
    parents_ = parents(prev, latent.luma_code, latent.chroma_code, latent.channels)
    mags, rs = _bounds(q, parents_)
    shapes = _shapes(ThumbnailGeometry(width, height, latent.scale), latent.channels)
    return _header(latent, mags, rs) + encode_with(lambda code: _run(code, parents_, shapes, mags, rs, truth=q))


def layer_settings(data: bytes, prev: tuple[int, int, int, int], width: int, height: int):
    """(scale, luma, chroma codes, C), texture code and decoding work of the layer ``data`` after ``prev``'s
    settings, from its header alone; StreamError when it does not refine them."""
    return _checked(read_layer_header(data), prev, width, height)


def _checked(header, prev: tuple[int, int, int, int], width: int, height: int):
    (luma, chroma, c, texture), mags, rs, _ = header
    layer = (prev[0], luma, chroma, c)
    check_refines(prev, layer)
    return layer, texture, layer_work(ThumbnailGeometry(width, height, SCALES[prev[0]]), c, mags, rs)


def decode_layer(data: bytes, prev: BandLatent, width: int, height: int,
                 max_work: int | None = None) -> BandLatent:
    """Inverse of ``encode_layer``: the latent the prefix up to this layer stands for. StreamError when the
    section is malformed or does not refine ``prev``; BudgetError over ``max_work``, before decoding."""
    header = read_layer_header(data)
    _, texture, work = _checked(header, settings(prev), width, height)
    check_work(work, max_work)
    (luma, chroma, c, _), mags, rs, start = header
    parents_ = parents(prev, luma, chroma, c)
    shapes = _shapes(ThumbnailGeometry(width, height, prev.scale), c)
    q = checked_decode(data[start:], lambda code: _run(code, parents_, shapes, mags, rs))
    if _bounds(q, parents_) != (mags, rs):
        raise StreamError("latent layer is altered (its bounds disagree with its header)")
    return BandLatent(prev.scale_code, luma, chroma, texture, q, before=prev)
