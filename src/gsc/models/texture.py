"""Texture above the thumbnail's cut-off: how much the sender asks for, and how the receiver adds it.

The sender measures the detail its low band m lacks, E = mean(highpass_σ(x − m)²), and sends a share of it
as a target energy (``gsc.format.tables.TEXTURE_ENERGY``, 3 bits). The receiver scales the generator's
detail d = highpass_σ(g − m) to that energy: image = m + α·d, α = min(1, √(E* / mean(d²))). Smooth images
get none (their missing detail is small), textured ones get texture in proportion.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..format.tables import TEXTURE_ENERGY

SIGMA_PER_SCALE = 0.35    # the Gaussian cut, in pixels per unit of the downscale factor f
TEXTURE_SHARE = 0.05      # the share of the missing detail energy the sender asks for (BSDS500 val, docs/models.md)


def cut(scale: float) -> float:
    return SIGMA_PER_SCALE * scale


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


def highpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return x - gaussian_blur(x, sigma)


def texture_code(image: torch.Tensor, low: torch.Tensor, scale: float, share: float = TEXTURE_SHARE) -> int:
    """The sender's code: the table's nearest energy (in log) to ``share`` of the detail ``low`` lacks;
    0 (no texture) below half the smallest entry. image, low: (3, H, W)."""
    e = share * float(highpass((image - low)[None].float(), cut(scale)).pow(2).mean())
    if e < TEXTURE_ENERGY[1] / 2:
        return 0
    return min(range(1, len(TEXTURE_ENERGY)), key=lambda t: abs(math.log(e / TEXTURE_ENERGY[t])))


def fuse(low: torch.Tensor, generated: torch.Tensor, energy: float, scale: float) -> torch.Tensor:
    """m + α·highpass_σ(g − m), α scaling the generator's detail to the target ``energy`` (at most 1)."""
    d = highpass(generated - low, cut(scale))
    alpha = min(1.0, math.sqrt(energy / max(float(d.pow(2).mean()), 1e-12)))
    return low + alpha * d
