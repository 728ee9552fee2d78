"""The lite sender for a tiled image (``gsc.format.tiles``): one setting for every tile.

::

    x ─► the whole image's rate control (``LiteSender``), under the budget scaled to the area the tiles
         code ─► (f, Δ_Y, Δ_C, C, texture) per layer
    x ─► each tile's coded box ─► its DCT bands ─► quantized at those settings ─► its section, per layer
      ─► a layer whose tiles' sections together overflow the prefix's budget takes the next coarser Δ_Y

Every tile shares the thumbnail's scale, steps and texture target, so no seam shows a change of sharpness,
colour step or grain; only the content of the two thumbnails differs across a seam, and the receiver
blends it over the overlap.
"""

from __future__ import annotations

import torch

from ..errors import StreamError
from ..format.band_layers import check_refines, encode_layer, settings
from ..format.bands import BandLatent, encode_bands
from ..format.tables import ThumbnailGeometry
from .lite import LiteSender, analyse, finest_code

SECTION_HEADER = 6           # bytes of a bands section's header, about: each tile after the first repeats it


def crop(x: torch.Tensor, tile) -> torch.Tensor:
    x0, y0, x1, y1 = tile.coded
    return x[..., y0:y1, x0:x1]


def whole_budget(budget: int, grid, width: int, height: int) -> int:
    """The budget the whole image's rate control gets so that its settings fit the tiles' ``budget``:
    scaled to the area the tiles code (their overlaps twice), less the tiles' repeated section headers."""
    area = sum(t.size[0] * t.size[1] for t in grid)
    return int((budget - SECTION_HEADER * (len(grid) - 1)) * width * height / area)


def _section(prev: BandLatent | None, latent: BandLatent, size: tuple[int, int]) -> bytes:
    return encode_bands(latent, *size) if prev is None else encode_layer(prev, latent, *size)


def tile_sections(x: torch.Tensor, grid, chosen: list[BandLatent], budgets: list[int]) -> list[list[bytes]] | None:
    """sections[layer][tile] of ``x`` at the settings of ``chosen`` (a latent per layer, of the whole image),
    each layer at the finest luma step from the whole image's on whose sections fit ``budgets[layer]``
    bytes with the layers before, coarser ones tried when that does not fit; None when no step fits (or
    none that still refines the layer before)."""
    coefs = [analyse(crop(x, t), ThumbnailGeometry(*t.size, chosen[0].scale)) for t in grid]
    out, used, prev = [], 0, [None] * len(grid)
    for c, budget in zip(chosen, budgets):
        channels = max(c.channels, prev[0].channels if prev[0] is not None else 0)
        memo = {}

        def fit(luma: int):
            """(latents, sections) at ``luma`` when they fit the budget and refine the layer before, else None."""
            if luma not in memo:
                layer = [LiteSender.latent(k, c.scale_code, luma, c.chroma_code, channels, c.texture_code)
                         for k in coefs]
                memo[luma] = None
                if prev[0] is None or _refines(prev[0], layer[0]):
                    sections = [_section(p, a, t.size) for p, a, t in zip(prev, layer, grid)]
                    memo[luma] = (layer, sections) if used + sum(map(len, sections)) <= budget else None
            return memo[luma]

        luma = finest_code(fit, c.luma_code)
        if luma is None:
            return None
        prev, sections = fit(luma)
        out.append(sections)
        used += sum(map(len, sections))
    return out


def _refines(prev: BandLatent, latent: BandLatent) -> bool:
    try:
        check_refines(settings(prev), settings(latent))
    except StreamError:
        return False
    return True
