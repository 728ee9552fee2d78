"""A tiled image's receiver (``gsc.format.tiles``): each tile generated apart, then blended over the overlaps.

::

    tile t's sections (+ caption, seed + t) ─► the preset's generator at its coded box's size ─► patch t
    patches ─► weight each by ramps across its inner borders ─► Σ w·patch / Σ w ─► image

A tile's weight falls linearly from 1 to 0 across the 2 · OVERLAP px band centred on each of its inner
borders (separable, so the weights of the tiles at a corner sum to one). A tile's pixels are weighted
zero beyond its coded box, which ends OVERLAP px past its nominal box: nothing a tile's bytes make reaches
farther, so the rest of the image comes out bit for bit the same whatever happens to them.

A tile with no verified section is filled with the mean colour its neighbours show inside its coded box
(the blend bands), or the mean of every decoded tile where no neighbour reaches, or mid-grey where none
decoded: a neutral patch that owes nothing to its bad bytes and meets its neighbours without an edge.
"""

from __future__ import annotations

import torch

from ..format.tiles import OVERLAP
from .base import tile_progress


def _ramp(c0: int, c1: int, b0: int, b1: int, n: int) -> torch.Tensor:
    """A tile's weights along one axis over its coded span [c0, c1) (nominal [b0, b1), image side n)."""
    x = torch.arange(c0, c1, dtype=torch.float32) + 0.5
    w = torch.ones(c1 - c0)
    if b0 > 0:
        w = w * ((x - (b0 - OVERLAP)) / (2 * OVERLAP)).clamp(0, 1)
    if b1 < n:
        w = w * (((b1 + OVERLAP) - x) / (2 * OVERLAP)).clamp(0, 1)
    return w


def weights(tile, width: int, height: int) -> torch.Tensor:
    """(1, h, w) blend weights of ``tile`` over its coded box."""
    x0, y0, x1, y1 = tile.coded
    bx0, by0, bx1, by1 = tile.box
    return (_ramp(y0, y1, by0, by1, height)[:, None] * _ramp(x0, x1, bx0, bx1, width)[None])[None]


def generate_tiles(generator, requests: list, grid, width: int, height: int, progress=None) -> torch.Tensor:
    """(3, H, W): ``requests[t]`` (a ``GenerationRequest`` at tile t's coded size, or None: nothing of it
    verified) generated and blended. ``progress(i)`` as a generator's, over all the tiles."""
    out, total = torch.zeros(3, height, width), torch.zeros(1, height, width)
    missing = []
    for k, (request, tile) in enumerate(zip(requests, grid)):
        if request is None:
            missing.append(tile)
            continue
        patch = generator.generate(request, progress=tile_progress(progress, k, len(grid), request.steps))
        _add(out, total, patch, tile, width, height)
    shown = out.sum((1, 2)) / total.sum().clamp(min=1e-12) if total.any() else torch.full((3,), 0.5)
    fills = [_fill(out, total, tile, shown) for tile in missing]
    for tile, colour in zip(missing, fills):
        w, h = tile.size
        _add(out, total, colour[:, None, None].expand(3, h, w), tile, width, height)
    return out / total


def _add(out, total, patch, tile, width: int, height: int) -> None:
    x0, y0, x1, y1 = tile.coded
    w = weights(tile, width, height)
    out[:, y0:y1, x0:x1] += w * patch
    total[:, y0:y1, x0:x1] += w


def _fill(out, total, tile, shown: torch.Tensor) -> torch.Tensor:
    """The mean colour the decoded tiles show inside ``tile``'s coded box, or ``shown`` where they show none."""
    x0, y0, x1, y1 = tile.coded
    weight = total[:, y0:y1, x0:x1].sum()
    return out[:, y0:y1, x0:x1].sum((1, 2)) / weight if weight > 0 else shown
