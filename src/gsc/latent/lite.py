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

from ..color import block_drift, rgb_to_ycbcr
from ..errors import StreamError
from ..format.band_layers import check_refines, encode_layer, settings
from ..format.bands import BandLatent, encode_bands
from ..format.tables import CHROMA_RATIOS, LUMA_STEPS, SCALES, ThumbnailGeometry
from ..models import thumbnail as T
from ..models.texture import texture_code

CHROMA_WEIGHT = 8.0          # the objective: MSE(Y) + CHROMA_WEIGHT · (MSE(Cb) + MSE(Cr)), on [0, 1] planes
CHROMA_CODES = (1, 2, 3)     # Δ_C / Δ_Y ∈ {0.71, 1, 1.41} tried by the rate control (BSDS500 val)
MIN_THUMBNAIL = 4            # pixels, the thumbnail's short side
BITS_PER_PIXEL = 1.2         # bits per thumbnail pixel where the best scale usually lies (BSDS500 val)
SCALE_WINDOW = 3             # scale codes tried on each side of that guess
START_CODE = 10              # the first luma step code tried
LAYER_LOSS = (0.3, 0.15)     # dB a prefix, and the whole stream, may lose against a one-shot stream
LAYER_DRIFT = 0.3            # colour drift (ΔE) a prefix may add to a one-shot stream's


def _cost(found) -> tuple[float, float]:
    return (math.inf, math.inf) if found is None else found[0]


@dataclass
class ThumbnailCandidate:
    """One setting (f, Δ_Y, Δ_C, C) of the thumbnail's bands: its section's bytes and how far it is from the image."""

    latent: BandLatent
    nbytes: int
    distortion: float = math.inf
    low_band: torch.Tensor | None = None     # what was scored, (3, H, W)

    def drift(self, x: torch.Tensor) -> float:
        """The colour drift (ΔE, ``gsc.color.block_drift``) of what was scored against ``x``."""
        return block_drift(self.low_band.clamp(0, 1), x)


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


def finest_code(fit, start: int) -> int | None:
    """The finest luma step code at which ``fit(code)`` (memoised by the caller) is truthy, walking from
    ``start``: coarser until it is, then finer while it is; None when no code is."""
    top = len(LUMA_STEPS) - 1
    code = min(max(start, 0), top)
    while code < top and not fit(code):
        code += 1
    if not fit(code):
        return None
    while code > 0 and fit(code - 1):
        code -= 1
    return code


class LiteSender:
    """Picks (f, Δ_Y, Δ_C, C) for an image and a latent byte budget.

    ``synthesis``, when given, is g_s (``gsc.models.lite.LiteSynthesis``): the best candidate's low band is
    made through it, as the receiver shows it (its no-caption mode, trained by caption dropout: the sender
    does not load the caption encoder), else it is the bicubic upscale of the thumbnail. The texture is
    measured against that low band. Candidates are ranked by the upscale alone: reranking the best three
    through g_s gained 0.02 dB (BSDS500 test, 30 cases) for three times g_s's time.
    """

    def __init__(self, synthesis: torch.nn.Module | None = None):
        self.synthesis = synthesis

    def low_band(self, latent: BandLatent, height: int, width: int) -> torch.Tensor:
        """What the receiver's g_s makes of ``latent`` without the caption, (3, H, W)."""
        steps, scale = latent.settings()
        return self.synthesis(latent.planes(height, width), (height, width), steps, scale, torch.zeros(1, 384))[0]

    def encode(self, x: torch.Tensor, scale_code: int, luma_code: int, chroma_code: int,
               channels: int | None = None, texture_code: int = 0) -> ThumbnailCandidate:
        h, w = x.shape[-2:]
        latent = self.latent(analyse(x, ThumbnailGeometry(w, h, SCALES[scale_code])), scale_code, luma_code,
                             chroma_code, channels, texture_code)
        return ThumbnailCandidate(latent, len(encode_bands(latent, w, h)))

    @staticmethod
    def latent(coefs, scale_code, luma_code, chroma_code, channels, texture_code=0) -> BandLatent:
        steps = (LUMA_STEPS[luma_code],) + (LUMA_STEPS[luma_code] * CHROMA_RATIOS[chroma_code],) * 2
        q = [p.numpy() for p in quantize_bands(coefs, steps, channels)]
        return BandLatent(scale_code, luma_code, chroma_code, texture_code, q)

    def finest_fit(self, coefs, x_size, scale_code: int, chroma_code: int, budget: int, channels,
                   start: int) -> ThumbnailCandidate | None:
        """The finest luma step code whose section fits ``budget`` bytes, walking from ``start`` (a good
        guess costs two or three encodes: the size only grows as the step gets finer)."""
        h, w = x_size
        memo: dict[int, ThumbnailCandidate | None] = {}

        def fit(code: int) -> ThumbnailCandidate | None:
            if code not in memo:
                latent = self.latent(coefs, scale_code, code, chroma_code, channels)
                n = len(encode_bands(latent, w, h))
                memo[code] = ThumbnailCandidate(latent, n) if n <= budget else None
            return memo[code]

        code = finest_code(fit, start)
        return None if code is None else fit(code)

    def _scale_candidates(self, x, budget, channels, scale_code, chroma_codes, start) -> list[ThumbnailCandidate]:
        h, w = x.shape[-2:]
        geometry = ThumbnailGeometry(w, h, SCALES[scale_code])
        if min(geometry.luma) < MIN_THUMBNAIL:
            return []
        coefs = analyse(x, geometry)
        out = [self.finest_fit(coefs, (h, w), scale_code, j, budget, channels, start) for j in chroma_codes]
        return [c for c in out if c is not None]

    def candidates(self, x: torch.Tensor, budget: int, channels: int | None = None,
                   progress=None) -> list[ThumbnailCandidate]:
        """The scales around the one a budget usually wants (≈ ``BITS_PER_PIXEL`` bits per thumbnail
        pixel), each at the finest step that fits; then the other chroma ratios at the best scale.
        ``progress(done, total)`` after each scale and after the other chroma ratios."""
        h, w = x.shape[-2:]
        centre = self._centre(h, w, budget)
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

    def _proxy(self, x: torch.Tensor, c: ThumbnailCandidate) -> None:
        h, w = x.shape[-2:]
        c.low_band = T.from_planes(c.latent.planes(h, w), (h, w))[0]
        c.distortion = colour_distortion(c.low_band, x)

    def score(self, x: torch.Tensor, cands: list[ThumbnailCandidate]) -> ThumbnailCandidate | None:
        """The best candidate by the proxy, with its low band (and distortion) through g_s when given."""
        best = min(cands, key=lambda c: c.distortion, default=None)
        if best is not None and self.synthesis is not None:
            best.low_band = self.low_band(best.latent, *x.shape[-2:])
            best.distortion = colour_distortion(best.low_band, x)
        return best

    def rate_control(self, x: torch.Tensor, budget: int, channels: int | None = None,
                     progress=None) -> ThumbnailCandidate | None:
        """The best candidate within ``budget`` latent bytes, or None if none fits, with the texture the
        receiver should add to its low band (the texture code costs no byte: its 3 bits are always sent)."""
        best = self.score(x, self.candidates(x, budget, channels, progress))
        if best is not None:
            self._texture(x, best)
        return best

    def _texture(self, x: torch.Tensor, c: ThumbnailCandidate) -> None:
        c.latent.texture_code = texture_code(x, c.low_band, c.latent.scale)

    # -- layers: the same scale, finer steps (``gsc.format.band_layers``) ---------------------------------
    def more_layers(self, x: torch.Tensor, prev: BandLatent, used: int, budgets: list[int],
                    channels: int | None = None) -> list[ThumbnailCandidate] | None:
        """The layers after ``prev`` (whose layers take ``used`` latent bytes), at its scale: layer j, for
        each chroma ratio, the finest luma step that refines the layer before and keeps the latent bytes
        within ``budgets[j]``; of those, the one whose upscale is nearest the image. None when a layer adds
        nothing (no finer step fits)."""
        h, w = x.shape[-2:]
        coefs = analyse(x, ThumbnailGeometry(w, h, prev.scale))
        out = []
        for budget in budgets:
            found = [c for c in (self._finest_layer(coefs, prev, j, budget - used, channels, (h, w))
                                 for j in CHROMA_CODES) if c is not None]
            if not found:
                return None
            for c in found:
                self._proxy(x, c)
            best = min(found, key=lambda c: c.distortion)
            used, prev = used + best.nbytes, best.latent
            out.append(best)
        return out

    def _finest_layer(self, coefs, prev: BandLatent, chroma_code: int, budget: int, channels,
                      size) -> ThumbnailCandidate | None:
        """The finest luma step, at ``chroma_code``, of a layer after ``prev`` within ``budget`` bytes."""
        h, w = size
        best = None
        for code in range(prev.luma_code, -1, -1):
            latent = self.latent(coefs, prev.scale_code, code, chroma_code, channels)
            if latent.channels < prev.channels:
                latent = self.latent(coefs, prev.scale_code, code, chroma_code, prev.channels)
            latent.before = prev
            try:
                check_refines(settings(prev), settings(latent))
                n = len(encode_layer(prev, latent, w, h))
            except StreamError:
                continue      # a chroma step coarser than the layer before's, or no step finer
            except ValueError:
                continue      # a coefficient on a bin edge of the layer before
            if n > budget:
                break
            best = ThumbnailCandidate(latent, n)
        return best

    @torch.no_grad()
    def layered(self, x: torch.Tensor, budgets: list[int], channels: int | None = None,
                progress=None) -> list[ThumbnailCandidate] | None:
        """A layer per budget (the latent bytes of each prefix), at one scale: for each scale between the
        ones the first and the last budget usually want, layer 1 the finest step that fits and each later
        layer the next finest (``more_layers``). Each prefix's loss against the one-shot stream of its budget
        is the larger of its upscale's distortion in dB over its allowance (``LAYER_LOSS``: the whole stream
        is held closer than the prefixes) and its colour drift's excess over ``LAYER_DRIFT``. The scale and
        chroma ratio whose prefixes exceed their allowances least in sum win (then the least summed loss):
        a prefix that no plan brings within its allowance does not buy more loss in the others, as the worst
        prefix's loss would (BSDS500 val, 8 images, through g_s: the plans differ on 2; there the first prefix
        is −0.26 dB and +0.34 ΔE from its one-shot stream where it was −0.70 and +0.63, and +0.24 and −0.58
        where +0.10 and −0.21, the later prefixes within 0.3 dB and 0.15 ΔE of before). Each layer's texture
        is measured on its prefix's low band (through g_s when given). None when nothing fits."""
        h, w = x.shape[-2:]
        report = progress or (lambda done, total: None)
        one_shot = [min(self.candidates(x, b, channels), key=lambda c: c.distortion, default=None) for b in budgets]
        if None in one_shot:
            return None
        allowance = [LAYER_LOSS[0]] * (len(budgets) - 1) + [LAYER_LOSS[1]]
        drifts = [c.drift(x) for c in one_shot]

        def loss(found):
            if found is None:
                return None
            each = [max(10 * math.log10(c.distortion / o.distortion) / a, (c.drift(x) - d) / LAYER_DRIFT)
                    for c, o, d, a in zip(found, one_shot, drifts, allowance)]
            return (sum(max(e - 1, 0.0) for e in each), sum(each)), found

        lo, hi = (self._centre(h, w, b) for b in (budgets[-1], budgets[0]))
        scales = list(range(min(len(SCALES) - 1, hi + 1), max(-1, lo - 2), -1))
        best = None
        for k, s in enumerate(scales):
            best = min(best, loss(self._layers_at(x, s, CHROMA_CODES[1], budgets, channels)), key=_cost)
            report(k + 1, len(scales) + 1)
        if best is not None:
            s = best[1][0].latent.scale_code
            for j in (CHROMA_CODES[0], CHROMA_CODES[2]):
                best = min(best, loss(self._layers_at(x, s, j, budgets, channels)), key=_cost)
        report(len(scales) + 1, len(scales) + 1)
        return None if best is None else self._textured(x, best[1])

    def _layers_at(self, x, scale_code: int, chroma_code: int, budgets: list[int], channels):
        """The layers at one scale and chroma ratio (their upscales' distortions measured), or None."""
        found = self._scale_candidates(x, budgets[0], channels, scale_code, (chroma_code,), START_CODE)
        rest = self.more_layers(x, found[0].latent, found[0].nbytes, budgets[1:], channels) if found else None
        if rest is None:
            return None
        self._proxy(x, found[0])
        return found[:1] + rest

    def _textured(self, x: torch.Tensor, layers: list[ThumbnailCandidate]) -> list[ThumbnailCandidate]:
        for c in layers:      # each already measured by its upscale (``_proxy``)
            self._texture(x, self.score(x, [c]))
        return layers

    @torch.no_grad()
    def refined(self, x: torch.Tensor, prev: BandLatent, used: int, budgets: list[int],
                channels: int | None = None) -> list[ThumbnailCandidate] | None:
        """``more_layers`` with each layer's texture measured, as ``layered`` makes them."""
        found = self.more_layers(x, prev, used, budgets, channels)
        return None if found is None else self._textured(x, found)

    def resend(self, x: torch.Tensor, latents: list[BandLatent]) -> list[BandLatent]:
        """What this sender makes of ``x`` at each of ``latents``' settings (their texture codes kept): a
        stream of them was made from ``x`` when they code alike."""
        h, w = x.shape[-2:]
        coefs = analyse(x, ThumbnailGeometry(w, h, latents[0].scale))
        return [self.latent(coefs, a.scale_code, a.luma_code, a.chroma_code, a.channels, a.texture_code)
                for a in latents]

    @staticmethod
    def _centre(h: int, w: int, budget: int) -> int:
        """The scale code a budget usually wants (≈ ``BITS_PER_PIXEL`` bits per thumbnail pixel)."""
        guess = math.sqrt(h * w * BITS_PER_PIXEL / (8 * max(budget, 1)))
        return min(range(len(SCALES)), key=lambda s: abs(math.log(SCALES[s] / guess)))
