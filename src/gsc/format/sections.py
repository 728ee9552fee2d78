"""The latent section kinds, by name: what a receiver needs to bound, describe and decode any of them.

A preset names its kind (``Preset.coding``); the stream does not store it, the preset id implies it. Each
entry takes the section's bytes, the preset's latent channel count N and the image size, so the caller
never asks which kind it holds:

- ``read_header``: indices, step(s), the decoding work and the kind's own settings, from the section's
  first bytes alone (never refused for its work: what ``Codec.summary`` reports);
- ``decode``: the symbols, after ``coder.check_work`` against ``max_work``;
- ``max_channels``: the most channels a sender may put in the section, given N;
- ``join`` / ``extend``: a later layer added to the merged header / the merged section (StreamError when it
  does not stack): the grid's layers are disjoint channel groups at one step; the bands' later layers refine
  the same bands at finer steps (``gsc.format.band_layers``);
- ``max_layers``: how many layers of the kind a stream may stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import StreamError
from ..registry import Registry
from . import band_layers, bands, grid
from .coder import check_work
from .tables import BANDS, CHROMA_RATIOS, LUMA_STEPS, SCALES, TEXTURE_ENERGY, ThumbnailGeometry


@dataclass(frozen=True)
class SectionHeader:
    """What a latent section's first bytes say."""

    indices: list[int]
    step: float | tuple | None     # quantization step Δ (bands: Δ_Y, Δ_C); None for an empty section
    work: int                      # decoding work, ≈ ns of CPU time (``gsc.budget``)
    settings: dict = field(default_factory=dict)   # the kind's own settings (bands: scale, texture)
    state: tuple = ()              # what the next layer's header is checked against (bands: its codes)


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
    join: Callable[[SectionHeader, bytes, int, int, int], SectionHeader]  # (merged, data, N, width, height)
    extend: Callable[[Section, bytes, int, int, int], Section]            # (merged, data, N, width, height)
    max_layers: int = 1


SECTIONS: Registry[SectionCoding] = Registry("latent section kind")


def _grid_header(data: bytes, n_channels: int, width: int, height: int) -> SectionHeader:
    if not data:
        return SectionHeader([], None, 0)
    indices, step, mags, _ = grid.read_latent_header(data, n_channels)
    return SectionHeader(indices, step, grid.symbol_work(mags, *grid.grid_shape(width, height)))


def _grid_decode(data: bytes, n_channels: int, width: int, height: int, max_work: int | None) -> Section:
    q, indices, step = grid.decode_latent(data, n_channels, *grid.grid_shape(width, height), max_work=max_work)
    return Section(indices, step, q=q)


def _grid_join(merged: SectionHeader, data: bytes, n_channels: int, width: int, height: int) -> SectionHeader:
    return _joins(merged, _grid_header(data, n_channels, width, height), min(grid.MAX_CHANNELS_SENT, n_channels))


def _grid_extend(merged: Section, data: bytes, n_channels: int, width: int, height: int) -> Section:
    """The channels of ``merged`` and of the layer ``data``, in ascending index order."""
    s = _grid_decode(data, n_channels, width, height, None)
    indices = merged.indices + s.indices
    order = np.argsort(indices, kind="stable")
    return Section(sorted(indices), merged.step if merged.indices else s.step,
                   q=np.concatenate([merged.q, s.q])[order])


def _band_steps(luma_code: int, chroma_code: int) -> tuple[float, float]:
    return LUMA_STEPS[luma_code], round(LUMA_STEPS[luma_code] * CHROMA_RATIOS[chroma_code], 4)


def _band_header(data: bytes, _n_channels: int, width: int, height: int) -> SectionHeader:
    if not data:
        return SectionHeader([], None, 0)
    (scale, c, luma, chroma, texture), dc, ac, _ = bands.read_band_header(data)
    work = bands.band_work(ThumbnailGeometry(width, height, SCALES[scale]), c, dc, ac)
    return SectionHeader(list(range(c)), _band_steps(luma, chroma), work, _band_settings(scale, texture),
                         state=(scale, luma, chroma, c))


def _band_settings(scale_code: int, texture_code: int) -> dict:
    return {"scale": SCALES[scale_code], "texture": float(f"{TEXTURE_ENERGY[texture_code]:.3g}")}


def _band_join(merged: SectionHeader, data: bytes, _n_channels: int, width: int, height: int) -> SectionHeader:
    if not merged.state:
        raise StreamError("a later bands layer follows an empty one")
    (scale, luma, chroma, c), texture, work = band_layers.layer_settings(data, merged.state, width, height)
    return SectionHeader(list(range(c)), _band_steps(luma, chroma), merged.work + work,
                         _band_settings(scale, texture), state=(scale, luma, chroma, c))


def _band_decode(data: bytes, _n_channels: int, width: int, height: int, max_work: int | None) -> Section:
    latent = bands.decode_bands(data, width, height, max_work)
    if latent is None:
        return Section([], None)
    return _band_section(latent)


def _band_section(latent) -> Section:
    return Section(list(range(latent.channels)), _band_steps(latent.luma_code, latent.chroma_code), latent=latent)


def _band_extend(merged: Section, data: bytes, _n_channels: int, width: int, height: int) -> Section:
    if merged.latent is None:
        raise StreamError("a later bands layer follows an empty one")
    return _band_section(band_layers.decode_layer(data, merged.latent, width, height))


SECTIONS.register("grid", SectionCoding(_grid_header, _grid_decode, lambda n: min(grid.MAX_CHANNELS_SENT, n),
                                        _grid_join, _grid_extend, max_layers=16))
SECTIONS.register("bands", SectionCoding(_band_header, _band_decode, lambda _n: BANDS, _band_join, _band_extend,
                                         max_layers=16))


def _joins(merged: SectionHeader, layer: SectionHeader, most: int) -> SectionHeader:
    """``merged`` with ``layer`` added; StreamError when they do not stack (another step, a channel twice,
    too many channels)."""
    if layer.indices and merged.indices and layer.step != merged.step:
        raise StreamError(f"a layer's step {layer.step} differs from the stream's {merged.step}")
    indices = merged.indices + layer.indices
    if len(set(indices)) < len(indices) or len(indices) > most:
        raise StreamError(f"layers repeat a channel or send over {most} channels: {indices}")
    return SectionHeader(indices, merged.step if merged.indices else layer.step, merged.work + layer.work,
                         {**merged.settings, **layer.settings})


def read_layers(kind: str, layers: list[bytes], n_channels: int, width: int,
                height: int) -> tuple[SectionHeader, int]:
    """The leading layers' headers merged (works summed; grid: indices in layer order), and how many layers
    that is: a layer whose header is malformed or does not stack ends the count."""
    coding, merged, count = SECTIONS[kind], None, 0
    for data in layers[:coding.max_layers]:
        try:
            merged = (coding.read_header(data, n_channels, width, height) if merged is None
                      else coding.join(merged, data, n_channels, width, height))
        except StreamError:
            break
        count += 1
    return merged or SectionHeader([], None, 0), count


def decode_layers(kind: str, layers: list[bytes], n_channels: int, width: int, height: int,
                  max_work: int | None) -> tuple[Section, int]:
    """The leading layers decoded as one section (grid: channels in ascending index order; bands: the last
    layer's latent), and how many layers went into it. BudgetError when their work together exceeds
    ``max_work``, before any decoding."""
    coding = SECTIONS[kind]
    header, count = read_layers(kind, layers, n_channels, width, height)
    check_work(header.work, max_work)
    section, decoded = None, 0
    for data in layers[:count]:
        try:
            section = (coding.decode(data, n_channels, width, height, None) if section is None
                       else coding.extend(section, data, n_channels, width, height))
        except StreamError:
            break
        decoded += 1
    return section or coding.decode(b"", n_channels, width, height, None), decoded


def read_tiles(kind: str, tile_layers, n_channels: int, grid) -> list[tuple[SectionHeader, int]]:
    """``read_layers`` of each tile's verified layers (``gsc.format.tiles``), at its coded box's size."""
    return [read_layers(kind, list(layers), n_channels, *tile.size) for layers, tile in zip(tile_layers, grid)]


def decode_tiles(kind: str, tile_layers, n_channels: int, grid, max_work: int | None) -> list[tuple[Section, int]]:
    """``decode_layers`` of each tile's verified layers; BudgetError when the tiles' work together exceeds
    ``max_work``, before any decoding."""
    heads = read_tiles(kind, tile_layers, n_channels, grid)
    check_work(sum(h.work for h, _ in heads), max_work)
    return [decode_layers(kind, list(layers[:count]), n_channels, *tile.size, None)
            for layers, tile, (_, count) in zip(tile_layers, grid, heads)]
