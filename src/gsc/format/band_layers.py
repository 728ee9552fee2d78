"""The bands section's later layers (lite): the same thumbnail's bands again, at a finer step.

Layer 1 is a bands section (``gsc.format.bands``) at (f, Δ_1, C_1). Layer j ≥ 2 codes the bands at
(f, Δ_j, C_j) given the layer before it: layer 1's scale, luma and chroma steps no coarser than the layer
before's (one of them finer), C_j ≥ C_{j−1}. Each coefficient has a parent::

    p = sign(q_{j−1}) · ⌊|q_{j−1}| · Δ_{j−1} / Δ_j + ½⌋        (0 in the bands new to layer j; Δ of its plane)

where q are the image's bands quantized at each step (``gsc.models.thumbnail.quantize``). Halving the step
(four luma codes) leaves q_j − p ∈ {−1, 0, 1} wherever p ≠ 0. The prefix up to layer j decodes to exactly the
one-shot latent at (f, Δ_j, C_j), so g_s and the texture run as for one layer, with layer j's texture code.

Section layout of layer j ≥ 2::

    luma step code (5) | chroma ratio code (3) | C − 1 (6) | texture code (3) | M of Y, of Cb/Cr (EG1 each)
    | R of Y, of Cb/Cr (EG1 each)
    | zero bits to the byte boundary | range-coder words (``gsc.format.coder``)

Model. Band by band, Y then Cb and Cr together, as layer 1 (so a band's contexts see the lower bands of
this layer):

- where p = 0 (a fresh coefficient): |q_j| in 0..M with layer 1's contexts and fitted prior (the DC band:
  one more context, flat prior), then a sign bit per non-zero;
- where p ≠ 0: (q_j − p) · sign(p) in −R..R, in a context of the band's frequency group and |p| (1, 2–3,
  ≥ 4), from a prior peaked at 0.

Every table adapts as in layer 1. ``docs/stream-format.md`` measures what the layers cost against one-shot
streams of the same bytes (the scale is layer 1's for every layer).
"""

from __future__ import annotations

import numpy as np

from ..bits import BitReader, BitWriter
from ..errors import StreamError
from .bands import (GROUPS, KINDS, N_CONTEXTS, WORK_FIXED, WORK_PER_CALL, WORK_PER_ENTRY, WORK_PER_SYMBOL,
                    WORK_PER_TABLE_ENTRY, BandLatent, _code_chunks, _contexts, _shapes, _SIGN, _Tables,
                    default_prior)
from .coder import check_work, checked_decode, encode_with
from .grid import MAX_MAGNITUDE
from .tables import CHROMA_RATIOS, LUMA_STEPS, SCALES, ThumbnailGeometry

PARENT_EDGES = (2, 4)                     # |p| buckets: 1, 2–3, ≥ 4
N_REFINE = len(GROUPS) * (len(PARENT_EDGES) + 1)   # frequency groups (the DC band its own) × |p| buckets
DC_CONTEXT = N_CONTEXTS                   # the fresh DC coefficients' row, after layer 1's contexts


def _steps(luma_code: int, chroma_code: int) -> tuple[float, float]:
    return LUMA_STEPS[luma_code], LUMA_STEPS[luma_code] * CHROMA_RATIOS[chroma_code]


def parent(prev: BandLatent, luma_code: int, chroma_code: int, channels: int) -> list[np.ndarray]:
    """The parent p of every coefficient of each plane at the given steps, ``channels`` bands."""
    (y0, c0), (y1, c1) = _steps(prev.luma_code, prev.chroma_code), _steps(luma_code, chroma_code)
    out = []
    for q, ratio in zip(prev.q, (y0 / y1, c0 / c1, c0 / c1)):
        p = np.zeros((channels, *q.shape[1:]), dtype=np.int64)
        p[: q.shape[0]] = np.sign(q) * np.floor(np.abs(q) * ratio + 0.5).astype(np.int64)
        out.append(p)
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


def _bounds(q: list[np.ndarray], p: list[np.ndarray]) -> tuple[list[int], list[int]]:
    """(M, R) of Y and of Cb/Cr: the largest fresh magnitude, and the largest correction."""
    mags, rs = [], []
    for planes in KINDS:
        fresh = [np.abs(q[i])[p[i] == 0] for i in planes]
        corr = [np.abs(q[i] - p[i])[p[i] != 0] for i in planes]
        mags.append(max((int(a.max()) for a in fresh if a.size), default=0))
        rs.append(max((int(a.max()) for a in corr if a.size), default=0))
    return mags, rs


class _Rows(_Tables):
    """Adaptive tables from given rows (the corrections' prior)."""

    def __init__(self, t: np.ndarray):
        self.t = t


def _refine_rows(r: int) -> np.ndarray:
    s = np.abs(np.arange(-r, r + 1))
    return np.repeat(np.maximum(1, 16 >> np.minimum(2 * s, 4))[None].astype(np.float64), N_REFINE, axis=0)


def _refine_context(k: int, p: np.ndarray) -> np.ndarray:
    group = int(np.searchsorted(GROUPS, k, side="right")) if k else 0
    return group * (len(PARENT_EDGES) + 1) + np.searchsorted(np.asarray(PARENT_EDGES), np.abs(p), side="right")


def _signed(code, tables: _Tables, ctx: np.ndarray, true: np.ndarray | None, m: int) -> np.ndarray:
    mags = _code_chunks(code, tables.probs(ctx), None if true is None else np.abs(true))
    if np.any(mags > m):
        raise StreamError("latent section is corrupted (a magnitude outside its range)")
    tables.update(ctx, mags)
    nz = np.flatnonzero(mags)
    signs = _code_chunks(code, np.repeat(_SIGN, len(nz), axis=0), None if true is None else
                         (true[nz] < 0).astype(np.int64))
    mags[nz] *= 1 - 2 * signs
    return mags


def _band(code, k, planes, parents, a, tables, bounds, true):
    """One band of one kind: its values, from the parents and (encoding) the true values."""
    (fresh, refine), (m, r) = tables, bounds
    p = np.concatenate([parents[i][k].ravel() for i in planes])
    v = p.copy()
    zero, nz = np.flatnonzero(p == 0), np.flatnonzero(p)
    if len(zero) and m:
        ctx = (np.concatenate([_contexts(a, i, k) for i in planes]) if k else np.full(len(p), DC_CONTEXT))[zero]
        v[zero] = _signed(code, fresh, ctx, None if true is None else true[zero], m)
    if len(nz) and r:
        sign, ctx = np.sign(p[nz]), _refine_context(k, p[nz])
        s = _code_chunks(code, refine.probs(ctx), None if true is None else (true[nz] - p[nz]) * sign + r)
        if np.any(s > 2 * r):
            raise StreamError("latent section is corrupted (a correction outside its range)")
        refine.update(ctx, s)
        v[nz] = p[nz] + (s - r) * sign
    return v


def _run(code, parents, shapes, mags, rs, truth=None) -> list[np.ndarray]:
    """The model loop encoder and decoder share (module docstring)."""
    q = [np.zeros(s, dtype=np.int64) for s in shapes]
    a = [np.zeros(s, dtype=np.int64) for s in shapes]
    tables = [(_Tables(mags[kind], kind, default_prior(mags[kind])[None]), _Rows(_refine_rows(rs[kind])))
              for kind in range(len(KINDS))]
    for k in range(shapes[0][0]):
        for kind, planes in enumerate(KINDS):
            true = None if truth is None else np.concatenate([truth[i][k].ravel() for i in planes])
            v = _band(code, k, planes, parents, a, tables[kind], (mags[kind], rs[kind]), true)
            start = 0
            for i in planes:
                n = q[i][k].size
                q[i][k] = v[start:start + n].reshape(q[i][k].shape)
                a[i][k] = np.abs(q[i][k])
                start += n
    return q


def layer_work(geometry: ThumbnailGeometry, c: int, mags: list[int], rs: list[int]) -> int:
    """Upper estimate of a later layer's decoding CPU time (ns), from its header: per band and kind, every
    symbol's probability row (the wider alphabet), its sign, three coder calls and both tables' updates."""
    shapes = _shapes(geometry, c)
    symbols = (shapes[0][1] * shapes[0][2], 2 * shapes[1][1] * shapes[1][2])
    per_band = sum(n * (WORK_PER_ENTRY * (max(m, 2 * r) + 1) + 2 * WORK_PER_SYMBOL) + 3 * WORK_PER_CALL
                   + WORK_PER_TABLE_ENTRY * ((N_CONTEXTS + 1) * (m + 1) + N_REFINE * (2 * r + 1))
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
    parents = parent(prev, latent.luma_code, latent.chroma_code, latent.channels)
    mags, rs = _bounds(q, parents)
    shapes = _shapes(ThumbnailGeometry(width, height, latent.scale), latent.channels)
    return _header(latent, mags, rs) + encode_with(lambda code: _run(code, parents, shapes, mags, rs, truth=q))


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
    parents = parent(prev, luma, chroma, c)
    shapes = _shapes(ThumbnailGeometry(width, height, prev.scale), c)
    q = checked_decode(data[start:], lambda code: _run(code, parents, shapes, mags, rs))
    if _bounds(q, parents) != (mags, rs):
        raise StreamError("latent layer is altered (its bounds disagree with its header)")
    return BandLatent(prev.scale_code, luma, chroma, texture, q)
