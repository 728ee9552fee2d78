"""The lite sender: g_a (a YCbCr 4:2:0 thumbnail in 8×8 DCT bands) and its rate control.

::

    x ─► for each scale f: thumbnail planes ─► DCT bands ─► for each chroma ratio: the finest Δ_Y whose
         section fits the budget ─► candidate (f, Δ_Y, Δ_C, C = the last non-zero band + 1)
      ─► score every candidate on the bin-consistent thumbnail, upscaled, against x (colour-weighted YCbCr
         error) ─► the best, through g_s: the low band the receiver shows, against which the sender measures
         how much texture to ask for

The rate control measures bytes with the real entropy coder (``gsc.format.bands``), so a candidate that
"fits" fits. Everything the receiver reconstructs is reconstructed here the same way (``gsc.models``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import torch

from ..color import rgb_to_ycbcr
from ..format.bands import BandLatent, encode_bands
from ..format.tables import CHROMA_RATIOS, LUMA_STEPS, SCALES, ThumbnailGeometry
from ..models import thumbnail as T
from ..models.texture import texture_code

CHROMA_WEIGHT = 8.0          # the objective: MSE(Y) + CHROMA_WEIGHT · (MSE(Cb) + MSE(Cr)), on [0, 1] planes
CHROMA_CODES = (1, 2, 3)     # Δ_C / Δ_Y ∈ {0.71, 1, 1.41} tried by the rate control (BSDS500 val)
SHORTLIST = 1                # candidates g_s scores: reranking 3 by g_s gains 0.02 dB (BSDS500 test, 30 cases)
MIN_THUMBNAIL = 4            # pixels, the thumbnail's short side
BITS_PER_PIXEL = 1.2         # bits per thumbnail pixel where the best scale usually lies (BSDS500 val)
SCALE_WINDOW = 3             # scale codes tried on each side of that guess
START_CODE = 10              # the first luma step code tried


@dataclass
class Candidate:
    latent: BandLatent
    nbytes: int
    distortion: float = math.inf
    low_band: torch.Tensor | None = None     # what was scored, (3, H, W)


def colour_distortion(a: torch.Tensor, b: torch.Tensor) -> float:
    """MSE of Y plus ``CHROMA_WEIGHT`` times the MSE of Cb and Cr, images (…, 3, H, W) in [0, 1]."""
    d = (rgb_to_ycbcr(a.clamp(0, 1).double()) - rgb_to_ycbcr(b.double())) ** 2
    d = d.flatten(-2).mean(-1)
    return float(d[..., 0].mean() + CHROMA_WEIGHT * d[..., 1:].sum(-1).mean())


def analyse(x: torch.Tensor, geometry: ThumbnailGeometry) -> list[torch.Tensor]:
    """g_a: (3, H, W) → DCT bands of Y, Cb, Cr, each (64, hb, wb), float64."""
    return [T.block_dct(p)[0] for p in T.to_planes(x[None].double(), geometry)]


def quantize_bands(coefs: list[torch.Tensor], steps, channels: int | None) -> list[torch.Tensor]:
    q = [T.quantize(c[None], s)[0] for c, s in zip(coefs, steps)]
    nonzero = [int(torch.nonzero(p.flatten(1).abs().sum(1)).max()) + 1 if p.any() else 1 for p in q]
    c = channels if channels is not None else max(nonzero)
    return [p[:c].long() for p in q]


class LiteSender:
    """Picks (f, Δ_Y, Δ_C, C) for an image and a latent byte budget.

    ``synthesis``, when given, is g_s (``gsc.models.lite.LiteSynthesis``): the shortlisted candidates are
    scored through it, as the receiver shows them (its no-caption mode, trained by caption dropout: the
    sender does not load the caption encoder), else through the bicubic upscale of the thumbnail.
    """

    def __init__(self, synthesis: torch.nn.Module | None = None):
        self.synthesis = synthesis

    def low_band(self, latent: BandLatent, height: int, width: int) -> torch.Tensor:
        """What the receiver's g_s makes of ``latent`` without the caption, (3, H, W)."""
        steps, scale = latent.settings()
        return self.synthesis(latent.planes(height, width), (height, width), steps, scale, torch.zeros(1, 384))[0]

    def encode(self, x: torch.Tensor, scale_code: int, luma_code: int, chroma_code: int,
               channels: int | None = None, texture_code: int = 0) -> Candidate:
        h, w = x.shape[-2:]
        latent = self.latent(analyse(x, ThumbnailGeometry(w, h, SCALES[scale_code])), scale_code, luma_code,
                             chroma_code, channels, texture_code)
        return Candidate(latent, len(encode_bands(latent, w, h)))

    @staticmethod
    def latent(coefs, scale_code, luma_code, chroma_code, channels, texture_code=0) -> BandLatent:
        steps = (LUMA_STEPS[luma_code],) + (LUMA_STEPS[luma_code] * CHROMA_RATIOS[chroma_code],) * 2
        q = [p.numpy() for p in quantize_bands(coefs, steps, channels)]
        return BandLatent(scale_code, luma_code, chroma_code, texture_code, q)

    def finest_fit(self, coefs, x_size, scale_code: int, chroma_code: int, budget: int, channels,
                   start: int) -> Candidate | None:
        """The finest luma step code whose section fits ``budget`` bytes, walking from ``start`` (a good
        guess costs two or three encodes: the size only grows as the step gets finer)."""
        h, w = x_size
        memo: dict[int, Candidate | None] = {}

        def fit(code: int) -> Candidate | None:
            if code not in memo:
                latent = self.latent(coefs, scale_code, code, chroma_code, channels)
                n = len(encode_bands(latent, w, h))
                memo[code] = Candidate(latent, n) if n <= budget else None
            return memo[code]

        top = len(LUMA_STEPS) - 1
        code = min(max(start, 0), top)
        if fit(code) is None:
            while code < top and fit(code) is None:
                code += 1
            return fit(code)
        while code > 0 and fit(code - 1) is not None:
            code -= 1
        return fit(code)

    def _scale_candidates(self, x, budget, channels, scale_code, chroma_codes, start) -> list[Candidate]:
        h, w = x.shape[-2:]
        geometry = ThumbnailGeometry(w, h, SCALES[scale_code])
        if min(geometry.luma) < MIN_THUMBNAIL:
            return []
        coefs = analyse(x, geometry)
        out = [self.finest_fit(coefs, (h, w), scale_code, j, budget, channels, start) for j in chroma_codes]
        return [c for c in out if c is not None]

    def candidates(self, x: torch.Tensor, budget: int, channels: int | None = None,
                   progress=None) -> list[Candidate]:
        """The scales around the one a budget usually wants (≈ ``BITS_PER_PIXEL`` bits per thumbnail
        pixel), each at the finest step that fits; then the other chroma ratios at the best scale.
        ``progress(done, total)`` after each scale and after the other chroma ratios."""
        h, w = x.shape[-2:]
        guess = math.sqrt(h * w * BITS_PER_PIXEL / (8 * max(budget, 1)))
        centre = min(range(len(SCALES)), key=lambda s: abs(math.log(SCALES[s] / guess)))
        out, start = [], START_CODE
        scales = range(min(len(SCALES) - 1, centre + SCALE_WINDOW), max(-1, centre - SCALE_WINDOW - 1), -1)
        report = progress or (lambda done, total: None)
        for k, s in enumerate(scales):
            found = self._scale_candidates(x, budget, channels, s, (CHROMA_CODES[1],), start)
            if found:
                start = found[0].latent.luma_code + 1   # a larger thumbnail needs a coarser step
                out += found
                self._proxy(x, found[0])
            report(k + 1, len(scales) + 1)
        if not out:
            return []
        best = min(out, key=lambda c: c.distortion)
        fine = self._scale_candidates(x, budget, channels, best.latent.scale_code,
                                      (CHROMA_CODES[0], CHROMA_CODES[2]), best.latent.luma_code)
        for c in fine:
            self._proxy(x, c)
        report(len(scales) + 1, len(scales) + 1)
        return out + fine

    def _proxy(self, x: torch.Tensor, c: Candidate) -> None:
        h, w = x.shape[-2:]
        c.low_band = T.from_planes(c.latent.planes(h, w), (h, w))[0]
        c.distortion = colour_distortion(c.low_band, x)

    def score(self, x: torch.Tensor, cands: list[Candidate]) -> Candidate | None:
        """The best candidate: by the proxy, then the shortlist through g_s (when given)."""
        h, w = x.shape[-2:]
        cands = sorted(cands, key=lambda c: c.distortion)
        if self.synthesis is not None:
            for c in cands[:SHORTLIST]:
                c.low_band = self.low_band(c.latent, h, w)
                c.distortion = colour_distortion(c.low_band, x)
            cands = sorted(cands[:SHORTLIST], key=lambda c: c.distortion)
        return cands[0] if cands else None

    def rate_control(self, x: torch.Tensor, budget: int, channels: int | None = None,
                     progress=None) -> Candidate | None:
        """The best candidate within ``budget`` latent bytes, or None if none fits, with the texture the
        receiver should add to its low band (the texture code costs no byte: its 3 bits are always sent)."""
        best = self.score(x, self.candidates(x, budget, channels, progress))
        if best is not None:
            best.latent.texture_code = texture_code(x, best.low_band, best.latent.scale)
        return best
