"""The bands section (lite): C bands of a YCbCr 4:2:0 thumbnail's 8×8 DCT (``gsc.models.thumbnail``).

Latent section layout (the rest of the stream after the caption; empty means C = 0)::

    scale code (4) | C − 1 (6) | luma step code (5) | chroma ratio code (3) | texture code (3)
    | DC magnitude m of Y, Cb, Cr (Exp-Golomb order 1 each) | AC magnitude M of Y and of Cb/Cr (EG1 each)
    | zero bits to the byte boundary | range-coder words (little-endian u32), trailing zero bytes dropped

Order and model. One range coder carries, in this order:

1. the DC bands (block means): Y's map, then Cb's and Cr's together, each predicted from its left, up
   and up-left neighbours (LOCO-I's median predictor, ``gsc.format.grid.wavefront``);
2. the AC bands k = 1..C−1, band by band (a channel at a time, as the paper's channels), and within a
   band Y, then Cb and Cr together, every block in one vectorised coder call: the magnitude |q|
   (alphabet 0..M) with an adaptive frequency table chosen by a context, then a sign bit per non-zero.

Because a whole band is coded before the next, every context may use the lower bands of all blocks:

- ``own``: |q| of the same block in the two previous bands (0, 1, 2, 3–4, ≥ 5);
- ``near``: for Y, the four neighbouring blocks' |q| in the previous band; for Cb and Cr, the co-located
  2×2 Y blocks' |q| in this band (0, 1–2, ≥ 3): colour given luma;
- the band's frequency group (``GROUPS``), and luma or chroma.

Each table starts from a prior fitted on BSDS500 train (``band_prior.json``, part of the format: magnitudes
0..15 each, and one count shared by all larger ones) and is updated once per (band, kind) call with every symbol of it
(+``INCREMENT``; a table over ``LIMIT`` is halved, rounding up), so encoder and decoder keep bit-identical
integer tables on any machine; constriction quantizes them the same way everywhere (``gsc.format.coder``,
which also refuses any payload but the encoder's own output).

Work. ``band_work`` bounds the decoder's CPU time from the section header, before anything is allocated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..bits import BitReader, BitWriter
from ..errors import StreamError
from .coder import check_work, checked_decode, encode_with
from .grid import MAX_MAGNITUDE, symbol_work, wavefront
from .tables import BANDS, CHROMA_RATIOS, LUMA_STEPS, SCALES, TEXTURE_ENERGY, ThumbnailGeometry

GROUPS = (1, 3, 6, 10, 15, 21, 28, 36, BANDS)        # AC frequency groups: bands [GROUPS[g], GROUPS[g + 1])
OWN_EDGES = (1, 2, 3, 5)
NEAR_EDGES = (1, 3)
N_CONTEXTS = (len(GROUPS) - 1) * (len(OWN_EDGES) + 1) * (len(NEAR_EDGES) + 1)
INCREMENT = 24
LIMIT = 1 << 13
CHUNK = 1 << 20          # probability entries per coder call
# band_work's model, ≈ ns of CPU time: per probability entry, per symbol, per coder call, per table entry
# updated; fitted so that every measured section (docs/stream-format.md) is at or below its estimate.
WORK_PER_ENTRY, WORK_PER_SYMBOL, WORK_PER_CALL, WORK_PER_TABLE_ENTRY = 5, 200, 60_000, 6
WORK_FIXED = 5_000_000     # the coder's and the loop's set-up


@dataclass
class BandLatent:
    """What the lite latent section carries: codes of the format's tables and the integer bands."""

    scale_code: int
    luma_code: int
    chroma_code: int
    texture_code: int
    q: list[np.ndarray]            # [Y (C, hb, wb), Cb (C, hb', wb'), Cr (C, hb', wb')] integers
    before: BandLatent | None = None   # the layer before this one in its stream (``gsc.format.band_layers``)

    @property
    def channels(self) -> int:
        return self.q[0].shape[0]

    @property
    def scale(self) -> float:
        return SCALES[self.scale_code]

    @property
    def steps(self) -> tuple[float, float, float]:
        y = LUMA_STEPS[self.luma_code]
        c = y * CHROMA_RATIOS[self.chroma_code]
        return y, c, c

    @property
    def texture(self) -> float:
        """The target energy of the texture the receiver adds (0: none)."""
        return TEXTURE_ENERGY[self.texture_code]

    def planes(self, height: int, width: int) -> list:
        """The receiver's thumbnail: [Y, Cb, Cr], each (1, h, w) float32 in 8-bit levels, consistent with
        the bins of this layer and of every layer before it."""
        from ..models.thumbnail import reconstruct_plane

        geometry = ThumbnailGeometry(width, height, self.scale)
        within = self._within() or [None] * 3
        return [reconstruct_plane(self._tensor(i), s, size, w).float()
                for i, (s, size, w) in enumerate(zip(self.steps, geometry.plane_sizes(), within))]

    def _tensor(self, plane: int):
        import torch

        return torch.as_tensor(self.q[plane])[None].double()

    def _within(self) -> list | None:
        """Per plane, the (lo, hi) the layers before this one pin its coefficients to; None for a first layer."""
        if self.before is None:
            return None
        from ..models.thumbnail import nested

        outer = self.before._within() or [None] * 3
        return [nested(self.before._tensor(i), s, w, self._tensor(i))
                for i, (s, w) in enumerate(zip(self.before.steps, outer))]

    def settings(self) -> tuple:
        """(steps (1, 2): Δ_Y, Δ_C; scale (1,): f), as g_s and the adapter read them."""
        import torch

        return torch.tensor([self.steps[:2]], dtype=torch.float32), torch.tensor([self.scale], dtype=torch.float32)


def _magnitudes(q: list[np.ndarray]) -> tuple[list[int], list[int]]:
    dc = [int(np.abs(p[0]).max()) for p in q]
    ac = [int(np.abs(q[0][1:]).max()) if q[0].shape[0] > 1 else 0,
          max(int(np.abs(p[1:]).max()) if p.shape[0] > 1 else 0 for p in q[1:])]
    return dc, ac


def _bucket(v: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    return np.searchsorted(np.asarray(edges), v, side="right")


def _near(a: list[np.ndarray], plane: int, k: int) -> np.ndarray:
    """The ``near`` activity of every block of ``plane`` at band k (see the module docstring)."""
    if plane == 0:
        p = np.pad(a[0][k - 1], 1)
        return p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:]
    y = a[0][k]
    hb, wb = a[1].shape[1:]
    cover = np.zeros((2 * hb, 2 * wb), dtype=np.int64)
    cover[: min(2 * hb, y.shape[0]), : min(2 * wb, y.shape[1])] = y[: 2 * hb, : 2 * wb]
    return cover.reshape(hb, 2, wb, 2).sum(axis=(1, 3))


def _contexts(a: list[np.ndarray], plane: int, k: int) -> np.ndarray:
    own = a[plane][k - 1] + (a[plane][k - 2] if k >= 2 else 0)
    group = int(np.searchsorted(GROUPS, k, side="right")) - 1
    ctx = (group * (len(OWN_EDGES) + 1) + _bucket(own, OWN_EDGES)) * (len(NEAR_EDGES) + 1)
    return (ctx + _bucket(_near(a, plane, k), NEAR_EDGES)).ravel()


PRIOR_SYMBOLS = 17      # prior entries per context: magnitudes 0..15, and one shared by all ≥ 16
KINDS = ((0,), (1, 2))  # the planes coded together: Y; Cb and Cr


def default_prior(m: int) -> np.ndarray:
    """The flat prior over magnitudes 0..m: 32 for 0, then 16 >> min(s, 4) (at least 1)."""
    s = np.arange(m + 1)
    prior = np.maximum(1, 16 >> np.minimum(s, 4)).astype(np.float64)
    prior[0] = 32
    return prior


@lru_cache(maxsize=1)
def fitted_prior() -> np.ndarray:
    """(2, N_CONTEXTS, PRIOR_SYMBOLS) initial counts fitted on BSDS500 train (``scripts/lite_band_prior.py``):
    part of the format, so the file ships beside this module."""
    data = json.loads((Path(__file__).with_name("band_prior.json")).read_text())
    prior = np.asarray(data["prior"], dtype=np.float64)
    if prior.shape != (2, N_CONTEXTS, PRIOR_SYMBOLS) or prior.min() < 1:
        raise RuntimeError("band_prior.json does not match this coder (reinstall gsc)")
    return prior


class _Tables:
    """Adaptive integer frequency tables, one row per context, over magnitudes 0..M, starting from the
    fitted prior of their kind (luma or chroma)."""

    def __init__(self, m: int, kind: int, extra: np.ndarray | None = None):
        self.t = fitted_prior()[kind][:, np.minimum(np.arange(m + 1), PRIOR_SYMBOLS - 1)].copy()
        if extra is not None:       # more rows after the fitted contexts (their own priors)
            self.t = np.vstack([self.t, extra])

    def probs(self, ctx: np.ndarray) -> np.ndarray:
        return self.t[ctx]

    def update(self, ctx: np.ndarray, symbols: np.ndarray) -> None:
        n = self.t.shape[1]
        self.t += INCREMENT * np.bincount(ctx * n + symbols, minlength=self.t.size).reshape(self.t.shape)
        over = np.flatnonzero((np.bincount(ctx, minlength=len(self.t)) > 0) & (self.t.sum(axis=1) > LIMIT))
        self.t[over] = np.floor((self.t[over] + 1) / 2)


_SIGN = np.array([[1.0, 1.0]])


def _code_chunks(code, probs: np.ndarray, symbols: np.ndarray | None) -> np.ndarray:
    per_call = max(1, CHUNK // probs.shape[1])
    out = np.empty(len(probs), dtype=np.int64)
    for s in range(0, len(probs), per_call):
        out[s:s + per_call] = code(probs[s:s + per_call], None if symbols is None else symbols[s:s + per_call])
    return out


def _ac_loop(shapes: list[tuple[int, int, int]], ac_mags: list[int], code,
             truth: list[np.ndarray] | None) -> list[np.ndarray]:
    """The AC model loop that encoder and decoder share; fills and returns the magnitude-and-sign maps."""
    q = [np.zeros(s, dtype=np.int64) for s in shapes]
    a = [np.zeros(s, dtype=np.int64) for s in shapes]
    if truth is not None:
        for p in range(3):
            q[p][0] = truth[p][0]
    tables = [_Tables(ac_mags[0], 0), _Tables(ac_mags[1], 1)]
    for k in range(1, shapes[0][0]):
        for kind, planes in enumerate(KINDS):
            if ac_mags[kind] == 0:
                continue
            ctx = np.concatenate([_contexts(a, p, k) for p in planes])
            true = None if truth is None else np.concatenate([np.abs(truth[p][k]).ravel() for p in planes])
            mags = _code_chunks(code, tables[kind].probs(ctx), true)
            if np.any(mags > ac_mags[kind]):
                raise StreamError("latent section is corrupted (a magnitude outside its range)")
            tables[kind].update(ctx, mags)
            nz = np.flatnonzero(mags)
            signs = None if truth is None else (np.concatenate([truth[p][k].ravel() for p in planes])[nz] < 0)
            signs = _code_chunks(code, np.repeat(_SIGN, len(nz), axis=0),
                                 None if signs is None else signs.astype(np.int64))
            v = mags.copy()
            v[nz] *= 1 - 2 * signs
            start = 0
            for p in planes:
                n = a[p][k].size
                a[p][k] = mags[start:start + n].reshape(a[p][k].shape)
                q[p][k] = v[start:start + n].reshape(q[p][k].shape)
                start += n
    return q


def _shapes(geometry: ThumbnailGeometry, c: int) -> list[tuple[int, int, int]]:
    return [(c, *geometry.blocks(p)) for p in range(3)]


def _run(code, shapes, dc_mags, ac_mags, truth=None) -> list[np.ndarray]:
    """DC maps (wavefront), then AC bands, through one ``code(probs, symbols)``."""
    dc_y = wavefront(dc_mags[:1], *shapes[0][1:], code, None if truth is None else truth[0][:1])
    dc_c = wavefront(dc_mags[1:], *shapes[1][1:], code,
                     None if truth is None else np.stack([truth[1][0], truth[2][0]]))
    q = _ac_loop(shapes, ac_mags, code, truth)
    q[0][0], q[1][0], q[2][0] = dc_y[0], dc_c[0], dc_c[1]
    return q


def band_work(geometry: ThumbnailGeometry, c: int, dc_mags: list[int], ac_mags: list[int]) -> int:
    """Upper estimate of the decoder's CPU time (ns) for a section, from its header alone: the DC maps as
    ``gsc.format.grid.symbol_work`` prices them, then per AC band and kind (luma, chroma) its symbols'
    probability rows (M + 1 entries), their signs, the coder calls and the table update (the tables' size)."""
    shapes = _shapes(geometry, c)
    dc = (symbol_work(dc_mags[:1], *shapes[0][1:]) + symbol_work(dc_mags[1:], *shapes[1][1:]))
    symbols = (shapes[0][1] * shapes[0][2], 2 * shapes[1][1] * shapes[1][2])
    per_band = sum(n * (WORK_PER_ENTRY * (m + 1) + 2 * WORK_PER_SYMBOL)
                   + WORK_PER_TABLE_ENTRY * N_CONTEXTS * (m + 1) + 2 * WORK_PER_CALL
                   for n, m in zip(symbols, ac_mags) if m > 0)
    return WORK_FIXED + dc + (c - 1) * per_band


def _header(latent: BandLatent, dc: list[int], ac: list[int]) -> bytes:
    w = BitWriter()
    w.write(latent.scale_code, 4)
    w.write(latent.channels - 1, 6)
    w.write(latent.luma_code, 5)
    w.write(latent.chroma_code, 3)
    w.write(latent.texture_code, 3)
    for m in (*dc, *ac):
        w.write_eg(m, 1)
    return w.to_bytes()


def _check(latent: BandLatent, geometry: ThumbnailGeometry) -> None:
    c = latent.channels
    if not 1 <= c <= BANDS:
        raise ValueError(f"C must be 1..{BANDS} bands, got {c}")
    shapes = _shapes(geometry, c)
    if [p.shape for p in latent.q] != [tuple(s) for s in shapes]:
        raise ValueError(f"band maps {[p.shape for p in latent.q]} do not match the geometry {shapes}")
    if max(int(np.abs(p).max()) for p in latent.q) > MAX_MAGNITUDE:
        raise ValueError(f"a coefficient exceeds {MAX_MAGNITUDE} steps; use a larger step")


def encode_bands(latent: BandLatent, width: int, height: int) -> bytes:
    geometry = ThumbnailGeometry(width, height, latent.scale)
    q = [np.asarray(p, dtype=np.int64) for p in latent.q]
    latent = BandLatent(latent.scale_code, latent.luma_code, latent.chroma_code, latent.texture_code, q)
    _check(latent, geometry)
    dc, ac = _magnitudes(q)
    shapes = _shapes(geometry, latent.channels)
    return _header(latent, dc, ac) + encode_with(lambda code: _run(code, shapes, dc, ac, truth=q))


def band_bits(latent: BandLatent, width: int, height: int) -> float:
    """The ideal code length in bits of ``encode_bands``'s coded part (the header not included): what the
    sender's rate control prices without running the coder."""
    geometry = ThumbnailGeometry(width, height, latent.scale)
    q = [np.asarray(p, dtype=np.int64) for p in latent.q]
    dc, ac = _magnitudes(q)
    total = [0.0]

    def code(probs, symbols):
        total[0] -= float(np.log2(probs[np.arange(len(symbols)), symbols] / probs.sum(axis=1)).sum())
        return symbols

    _run(code, _shapes(geometry, latent.channels), dc, ac, truth=q)
    return total[0] + 8 * len(_header(latent, dc, ac))


def read_band_header(data: bytes):
    r = BitReader(data, "latent section")
    codes = [r.read(4), r.read(6) + 1, r.read(5), r.read(3), r.read(3)]
    dc = [r.read_eg(1, MAX_MAGNITUDE) for _ in range(3)]
    ac = [r.read_eg(1, MAX_MAGNITUDE) for _ in range(2)]
    return codes, dc, ac, r.align()


def decode_bands(data: bytes, width: int, height: int, max_work: int | None = None) -> BandLatent | None:
    """Inverse of ``encode_bands``; None for an empty section (C = 0). StreamError on malformed input,
    BudgetError when ``band_work`` exceeds ``max_work`` (checked before anything is allocated)."""
    if not data:
        return None
    (scale_code, c, luma, chroma, texture), dc, ac, start = read_band_header(data)
    geometry = ThumbnailGeometry(width, height, SCALES[scale_code])
    check_work(band_work(geometry, c, dc, ac), max_work)
    shapes = _shapes(geometry, c)
    q = checked_decode(data[start:], lambda code: _run(code, shapes, dc, ac))
    if any(int(np.abs(p[0]).max()) != m for p, m in zip(q, dc)) or _magnitudes(q)[1] != ac:
        raise StreamError("latent section is altered (its magnitudes disagree with its header)")
    return BandLatent(scale_code, luma, chroma, texture, q)
