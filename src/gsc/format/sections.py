"""The latent section kinds, by name: what a receiver needs to bound, describe and decode any of them.

A preset names its kind (``Preset.coding``); the stream does not store it, the preset id implies it. Each
entry takes the section's bytes, the preset's latent channel count N and the image size, so the caller
never asks which kind it holds:

- ``read_header``: indices, step(s), the decoding work and the kind's own settings, from the section's
  first bytes alone (never refused for its work: what ``Codec.summary`` reports);
- ``decode``: the symbols, after ``coder.check_work`` against ``max_work``;
- ``max_channels``: the most channels a sender may put in the section, given N.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..registry import Registry
from . import bands, grid
from .tables import BANDS, CHROMA_RATIOS, LUMA_STEPS, SCALES, TEXTURE_ENERGY, ThumbnailGeometry


@dataclass(frozen=True)
class SectionHeader:
    """What a latent section's first bytes say."""

    indices: list[int]
    step: float | tuple | None     # quantization step Δ (bands: Δ_Y, Δ_C); None for an empty section
    work: int                      # decoding work, ≈ ns of CPU time (``gsc.budget``)
    settings: dict = field(default_factory=dict)   # the kind's own settings (bands: scale, texture)


@dataclass(frozen=True)
class Section:
    """A decoded latent section, as the receiver uses it."""

    indices: list[int]
    step: float | tuple | None
    q: np.ndarray | None = None    # grid: (C, h, w) integer symbols
    latent: object = None          # bands: the ``bands.BandLatent`` (None for an empty section)


@dataclass(frozen=True)
class SectionCoding:
    read_header: Callable[[bytes, int, int, int], SectionHeader]          # (data, N, width, height)
    decode: Callable[[bytes, int, int, int, "int | None"], Section]       # (data, N, width, height, max_work)
    max_channels: Callable[[int], int]                                    # N → most channels sent


SECTIONS: Registry[SectionCoding] = Registry("latent section kind")


def _grid_header(data: bytes, n_channels: int, width: int, height: int) -> SectionHeader:
    if not data:
        return SectionHeader([], None, 0)
    indices, step, mags, _ = grid.read_latent_header(data, n_channels)
    return SectionHeader(indices, step, grid.symbol_work(mags, *grid.grid_shape(width, height)))


def _grid_decode(data: bytes, n_channels: int, width: int, height: int, max_work: int | None) -> Section:
    q, indices, step = grid.decode_latent(data, n_channels, *grid.grid_shape(width, height), max_work=max_work)
    return Section(indices, step, q=q)


def _band_steps(luma_code: int, chroma_code: int) -> tuple[float, float]:
    return LUMA_STEPS[luma_code], round(LUMA_STEPS[luma_code] * CHROMA_RATIOS[chroma_code], 4)


def _band_header(data: bytes, _n_channels: int, width: int, height: int) -> SectionHeader:
    if not data:
        return SectionHeader([], None, 0)
    (scale, c, luma, chroma, texture), dc, ac, _ = bands.read_band_header(data)
    work = bands.band_work(ThumbnailGeometry(width, height, SCALES[scale]), c, dc, ac)
    settings = {"scale": SCALES[scale], "texture": float(f"{TEXTURE_ENERGY[texture]:.3g}")}
    return SectionHeader(list(range(c)), _band_steps(luma, chroma), work, settings)


def _band_decode(data: bytes, _n_channels: int, width: int, height: int, max_work: int | None) -> Section:
    latent = bands.decode_bands(data, width, height, max_work)
    if latent is None:
        return Section([], None)
    return Section(list(range(latent.channels)), _band_steps(latent.luma_code, latent.chroma_code), latent=latent)


SECTIONS.register("grid", SectionCoding(_grid_header, _grid_decode,
                                        lambda n: min(grid.MAX_CHANNELS_SENT, n)))
SECTIONS.register("bands", SectionCoding(_band_header, _band_decode, lambda _n: BANDS))
