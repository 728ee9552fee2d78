"""The lite receiver: caption + C DCT bands of a thumbnail → image, through TAEF2's latent space.

::

    bands (C, Δ_Y, Δ_C, f) ─► bin-consistent thumbnail ─► g_s(·, steps, f, e) ─► m (the low band)
    caption ─► all-MiniLM-L6-v2 ─► e                  └─► hint at 1/8 ─┐
    seed ─► noise ─► rectified flow (base + adapter)(·, e, hint) ─► ẑ ─► TAEF2 decoder ─► g
    image = m + α · highpass_σ(g − m),  σ ∝ f, α scaling the detail to the sender's target energy

g_s (trained for MSE on coded thumbnails) carries colours and shapes; the generator carries texture,
which the fusion keeps only above the thumbnail's cut-off, in the amount the sender measured the low
band lacks (``gsc.models.texture``). A target of 0 skips the generator (and TAEF2): the plain low band,
in a fraction of the time.

Decoding runs with a fixed number of torch threads (``DECODE_THREADS``), so that the same stream gives
the same PNG bytes whatever the machine's thread count (float reductions depend on the split).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from ..bits import ceil_div
from ..models import zoo
from ..models.lite import adapter_hint
from ..models.texture import fuse
from .base import GENERATORS, GenerationRequest, Generator, tile_progress
from .rectified_flow import euler_sample

DECODE_THREADS = 2
WEIGHTS = ("synthesis", "base", "adapter")
LATENT_STRIDE = 8         # TAEF2
TILE = 96                 # latent cells (768 px): a Kodak image is one tile; larger images go in overlapping tiles
MARGIN = 16               # latent cells of context on each side of a tile, cropped away


@contextmanager
def fixed_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def tiles(h: int, w: int):
    """(inner, outer) boxes (y0, y1, x0, x1) in latent cells covering an h × w grid: one box when it fits."""
    def spans(n):
        if n <= TILE:
            return [(0, n, 0, n)]
        return [(s, min(s + TILE, n), max(0, s - MARGIN), min(n, s + TILE + MARGIN)) for s in range(0, n, TILE)]

    for iy0, iy1, oy0, oy1 in spans(h):
        for ix0, ix1, ox0, ox1 in spans(w):
            yield (iy0, iy1, ix0, ix1), (oy0, oy1, ox0, ox1)


@GENERATORS.register("lite")
class LiteGenerator(Generator):
    """Args:
        weights: folder with lite_{synthesis,base,adapter}.safetensors (default: the shipped ones).
        taef2: folder with the upstream TAEF2 decoder (default: gsc.generate.taef2's search).
    """

    def __init__(self, weights: str | Path | None = None, taef2: str | Path | None = None):
        self.paths = {n: zoo.weights_path(f"lite-{n}", weights) for n in WEIGHTS}   # all three checked up front
        self.g_s = _channels_last(zoo.load("lite-synthesis", path=self.paths["synthesis"]))
        self.taef2 = taef2
        self._flow = None

    def flow(self):
        """Base, adapter and TAEF2's decoder, loaded when a stream first asks for texture."""
        if self._flow is None:
            from .taef2 import load_taef2_decoder

            self._flow = tuple(map(_channels_last, (zoo.load("lite-base", path=self.paths["base"]),
                                                    zoo.load("lite-adapter", path=self.paths["adapter"]),
                                                    load_taef2_decoder(self.taef2))))
        return self._flow

    def embed(self, captions: list[str]) -> torch.Tensor:
        """The captions' embeddings (all-MiniLM-L6-v2), (B, 384); zero for no caption."""
        from ..caption.embedding import embed_captions

        return embed_captions(captions)

    @torch.no_grad()
    def generate(self, request: GenerationRequest, progress=None) -> torch.Tensor:
        with fixed_threads(DECODE_THREADS):
            latent, h, w = request.latent, request.height, request.width
            # 1. caption → embedding (zero for no caption)
            text = self.embed([request.caption])
            if latent is None:   # a caption-only stream (C = 0): the base flow alone draws the whole image
                return self.sample(text, request, None, progress)[0].clamp_(0, 1)
            # 2. the bands → the bin-consistent thumbnail
            planes = latent.planes(h, w)
            steps, scale = latent.settings()
            # 3. g_s: the low band
            low = self.g_s(planes, (h, w), steps, scale, text)
            # 4–6. texture from the generator, fused above the thumbnail's cut-off
            if latent.texture > 0:
                hint = adapter_hint(planes, (ceil_div(h, LATENT_STRIDE), ceil_div(w, LATENT_STRIDE)), steps, scale)
                texture = self.sample(text, request, hint, progress)
                low = fuse(low, texture, latent.texture, latent.scale)
            # 7. clamp
            return low[0].clamp_(0, 1)

    def sample(self, text, request: GenerationRequest, hint=None, progress=None) -> torch.Tensor:
        """Steps 4–5: the rectified flow on the latent grid, per tile, and TAEF2's rendering of it,
        (1, 3, H, W). ``hint`` (the thumbnail at 1/8) drives the adapter; None runs the base alone."""
        base, adapter, decoder = self.flow()
        cells = ceil_div(request.height, LATENT_STRIDE), ceil_div(request.width, LATENT_STRIDE)
        gh, gw = (ceil_div(n, base.stride) * base.stride for n in cells)
        noise = torch.randn((1, base.config["latent_channels"], gh, gw),
                            generator=torch.Generator().manual_seed(request.seed))
        if hint is not None:
            hint = F.pad(hint, (0, gw - hint.shape[-1], 0, gh - hint.shape[-2]), mode="replicate")
        z0 = torch.empty_like(noise)
        boxes = list(tiles(gh, gw))
        for index, (inner, outer) in enumerate(boxes):
            (y0, y1, x0, x1), (oy0, oy1, ox0, ox1) = inner, outer
            z1 = _pad_to(noise[..., oy0:oy1, ox0:ox1], base.stride)
            cond = None if hint is None else _pad_to(hint[..., oy0:oy1, ox0:ox1], base.stride)

            def velocity(z_t, t, cond=cond):
                return base(z_t, t, text, None if cond is None else adapter(z_t, t, text, cond))

            part = tile_progress(progress, index, len(boxes), request.steps)
            out = euler_sample(velocity, z1, request.steps, progress=part)
            z0[..., y0:y1, x0:x1] = out[..., y0 - oy0:y1 - oy0, x0 - ox0:x1 - ox0]
        return decoder(z0)[..., : request.height, : request.width]


@GENERATORS.register("lite-tiny")
class TinyLiteGenerator(LiteGenerator):
    """The lite receiver in miniature, for tests of the wiring: seeded random tiny g_s, base and adapter
    (``gsc.models.lite.tiny_models``), a narrow random TAEF2 decoder and the hashed caption embedding. It
    needs no weights file, no TAEF2 download and no caption model; the sender's ``lite-tiny`` latent encoder
    builds the same g_s from the same seed."""

    def __init__(self, seed: int = 0):
        from ..models.lite import tiny_models
        from .taef2 import tiny_taef2_decoder

        self.g_s, base, adapter = tiny_models(seed)
        self.taef2 = None
        self._flow = (base, adapter, tiny_taef2_decoder(seed))

    def embed(self, captions: list[str]) -> torch.Tensor:
        from ..caption.embedding import hashed_embedding

        return hashed_embedding(captions)


def _channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """The CPU's convolutions (oneDNN) run ≈ 1.3× faster on channels-last weights; the outputs differ from
    the contiguous layout's only by float rounding."""
    return model.to(memory_format=torch.channels_last)


def _pad_to(x: torch.Tensor, unit: int) -> torch.Tensor:
    return F.pad(x, (0, -x.shape[-1] % unit, 0, -x.shape[-2] % unit), mode="replicate")
