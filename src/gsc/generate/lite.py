"""The lite receiver: caption + sent channels → image, through TAEF2's latent space.

::

    caption ─► all-MiniLM-L6-v2 ─► e ──────────────┬──────────────────────┐
    (indices, ŷ_sel) ─► grid ⊕ mask ─► g_s(·, e) ──┼─► m (the low band)   │
                                   └─► rectified flow (base + adapter)(·, e) ─► ẑ ─► TAEF2 decoder ─► g
    image = m + α · highpass_σ(g − m)

The generator's latent carries texture that the TAEF2 decoder renders; g_s (trained for MSE on the
same channels) carries the colours and shapes. The fusion keeps g's detail above the Gaussian cut σ and
m's content below it: decoding a latent that was regressed in latent space is desaturated and soft
(the mean of latents is not the latent of the mean image), so its low band is replaced by g_s's.
α = 0 gives the plain g_s image.

Decoding runs with a fixed number of torch threads (``DECODE_THREADS``), so that the same stream gives
the same PNG bytes whatever the machine's thread count (float reductions depend on the split).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import GSCError
from ..nn import load_model, read_metadata
from . import GENERATORS, GenerationRequest, Generator
from .lite_unet import LiteAdapter, LiteFlowUNet
from .rectified_flow import euler_sample

DECODE_THREADS = 2
WEIGHTS = ("synthesis", "base", "adapter")


def _weights_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "weights"


@contextmanager
def fixed_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian (radius 3σ, reflect padding) on (B, C, H, W)."""
    r = max(1, int(3 * sigma + 0.5))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype) ** 2) / (2 * sigma ** 2))
    k = (k / k.sum()).to(x)
    c = x.shape[1]
    pad_h, pad_w = min(r, x.shape[-2] - 1), min(r, x.shape[-1] - 1)
    x = F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect") if pad_w else x
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c, padding=(0, r - pad_w))
    x = F.pad(x, (0, 0, pad_h, pad_h), mode="reflect") if pad_h else x
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c, padding=(r - pad_h, 0))


def fuse(low: torch.Tensor, texture: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """m + α · highpass_σ(g − m): the low band of ``low``, the high band blended towards ``texture``."""
    d = texture - low
    return low + alpha * (d - gaussian_blur(d, sigma))


@GENERATORS.register("lite")
class LiteGenerator(Generator):
    """Args:
        weights: folder with lite_{synthesis,base,adapter}.safetensors (default: the shipped ones).
        taef2: folder with the upstream TAEF2 decoder (default: gsc.generate.taef2's search).
        alpha, sigma: the fusion's texture strength and Gaussian cut in pixels (default: the values the
            shipped weights were validated with, in the adapter's metadata).
    """

    def __init__(self, weights: str | Path | None = None, taef2: str | Path | None = None,
                 alpha: float | None = None, sigma: float | None = None):
        from ..latent.lite import LiteSynthesis
        from .taef2 import load_taef2_decoder

        root = Path(weights) if weights else _weights_dir()
        paths = {n: root / f"lite_{n}.safetensors" for n in WEIGHTS}
        for name, p in paths.items():
            if not p.exists():
                raise GSCError(f"lite {name} weights not found at {p}; run `gsc train-lite` or reinstall gsc")
        self.g_s = load_model(LiteSynthesis, paths["synthesis"])
        self.base = load_model(LiteFlowUNet, paths["base"])
        self.adapter = load_model(LiteAdapter, paths["adapter"])
        self.decoder = load_taef2_decoder(taef2)
        self.latent_channels = self.adapter.config["sent_channels"]
        meta = read_metadata(paths["adapter"])
        self.alpha = float(meta.get("alpha", 1.0)) if alpha is None else alpha
        self.sigma = float(meta.get("sigma", 4.0)) if sigma is None else sigma

    @torch.no_grad()
    def prepare(self, request: GenerationRequest):
        """Steps 1–2: the caption embedding, the sender's grid and mask, the noise from the stream's seed."""
        from ..caption.embedding import embed_captions

        # 1. caption → embedding (zero for no caption)
        text = embed_captions([request.caption])
        # 2. condition: the sender's grid (unsent channels zero) and the noise, drawn on the CPU
        grid, mask = request.condition()
        h16, w16 = grid.shape[-2:]
        noise = torch.randn((1, self.base.config["latent_channels"], 2 * h16, 2 * w16),
                            generator=torch.Generator().manual_seed(request.seed))
        return grid[None], mask.view(1, -1, 1, 1), noise, text

    @torch.no_grad()
    def generate(self, request: GenerationRequest, progress=None) -> torch.Tensor:
        with fixed_threads(DECODE_THREADS):
            grid, mask, noise, text = self.prepare(request)
            h16, w16 = grid.shape[-2:]
            image = torch.empty(3, 16 * h16, 16 * w16)
            # 3–6 per tile, so that memory stays bounded whatever the image size (one tile up to TILE cells)
            tiles = list(tile_grid(h16, w16))
            for k, (inner, outer) in enumerate(tiles):
                step_progress = progress if len(tiles) == 1 else None
                out = fuse(*self.layers(grid, mask, noise, text, request, outer, step_progress),
                           self.alpha, self.sigma)[0]
                (y0, y1, x0, x1), (oy0, _, ox0, _) = inner, outer
                image[:, 16 * y0:16 * y1, 16 * x0:16 * x1] = out[:, 16 * (y0 - oy0):16 * (y1 - oy0),
                                                                  16 * (x0 - ox0):16 * (x1 - ox0)]
                if progress is not None and len(tiles) > 1:
                    progress(k * request.steps // len(tiles))
            # 7. back to the true size
            return image[:, : request.height, : request.width].clamp_(0, 1)

    def layers(self, grid, mask, noise, text, request, box, progress=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 3–5 on one tile ``box`` of the grid: (g_s's low band m, TAEF2's rendering g)."""
        y0, y1, x0, x1 = box
        unit = self.base.stride // 2     # the U-Net's stride, in 1/16 cells (the latent is at 1/8)
        cells = F.pad(grid[..., y0:y1, x0:x1], (0, -(x1 - x0) % unit, 0, -(y1 - y0) % unit), mode="replicate")
        z1 = noise[..., 2 * y0:2 * y1, 2 * x0:2 * x1]
        z1 = F.pad(z1, (0, 2 * cells.shape[-1] - z1.shape[-1], 0, 2 * cells.shape[-2] - z1.shape[-2]),
                   mode="replicate")
        # 3. the low band: g_s on the sent channels
        low = self.g_s(cells, mask, text)
        # 4. the latent: Euler steps of the rectified flow, base + adapter (the base alone for C = 0)
        y_sent = cells * mask

        def velocity(z_t, t):
            if not request.indices:
                return self.base(z_t, t, text)
            return self.base(z_t, t, text, self.adapter(z_t, t, text, y_sent, mask))

        z0 = euler_sample(velocity, z1, request.steps, progress=progress)
        # 5. TAEF2 renders the latent (6., the fusion, keeps its texture over g_s's low band)
        return low, self.decoder(z0)


TILE = 48      # 1/16 cells: 768 px (a Kodak image is one tile); larger images are generated in overlapping tiles
MARGIN = 8     # cells of context on each side of a tile, cropped away


def tile_grid(h: int, w: int):
    """(inner, outer) boxes (y0, y1, x0, x1) in 1/16 cells covering an h × w grid: one box when it fits."""
    def spans(n):
        if n <= TILE:
            return [(0, n, 0, n)]
        starts = list(range(0, n, TILE))
        return [(s, min(s + TILE, n), max(0, s - MARGIN), min(n, s + TILE + MARGIN)) for s in starts]

    for iy0, iy1, oy0, oy1 in spans(h):
        for ix0, ix1, ox0, ox1 in spans(w):
            yield (iy0, iy1, ix0, ix1), (oy0, oy1, ox0, ox1)
