"""The lite preset's latent: a YCbCr 4:2:0 thumbnail in 8×8 DCT bands (sender's g_a, receiver's first step).

::

    x (3, H, W) ─► YCbCr ─► Y at (H/f, W/f), Cb and Cr at half that ─► 8×8 DCT ─► bands (64, h/8, w/8)
    per plane, zig-zag order: band 0 is the block mean, band k the k-th frequency; a channel of the latent
    is one band of all three planes (a colour group), and C channels are bands 0..C−1.

    q = sign(c) · ⌊|c| / Δ_k + r⌋     dead-zone quantizer (r = ``ROUNDING``; the DC band rounds to nearest
                                      at Δ_0 = ``DC_STEP`` · Δ; Δ_k = Δ for the other bands)
    ĉ ∈ bin(q)                         the receiver knows each coefficient up to its bin

The scale f, the luma step Δ_Y and the chroma step Δ_C are chosen by the sender per image from the tables
of ``gsc.format.tables``.

Coarse steps in this domain blur instead of posterising, as long as the receiver does not draw the
blocks: ``reconstruct_plane`` fills the unknowns smoothly by alternating a blur with the projection of each
block's coefficients back into their received bins (POCS), so the thumbnail it returns is smooth and
consistent with everything the stream says.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..bits import ceil_div
from ..color import rgb_to_ycbcr, ycbcr_to_rgb
from ..format.tables import BANDS, BLOCK, DC_STEP, ROUNDING, ThumbnailGeometry

# The POCS blurs, coarse to fine (σ in thumbnail pixels): the wide ones spread a block's mean across its
# neighbours (a ramp, not a staircase, where only DCs were sent), the narrow ones keep what edges the bins pin.
POCS_SIGMAS = (2.0,) * 10 + (1.0,) * 10


def _zigzag() -> torch.Tensor:
    cells = sorted(((u, v) for u in range(BLOCK) for v in range(BLOCK)),
                   key=lambda p: (p[0] + p[1], p[0] if (p[0] + p[1]) % 2 else p[1]))
    return torch.tensor([u * BLOCK + v for u, v in cells])


ZIGZAG = _zigzag()                                     # band k → raster position in the 8×8 block


def _dct_matrix() -> torch.Tensor:
    k = torch.arange(BLOCK, dtype=torch.float64)
    m = torch.cos(math.pi * (2 * k[None] + 1) * k[:, None] / (2 * BLOCK)) * math.sqrt(2 / BLOCK)
    m[0] /= math.sqrt(2)
    return m                                           # orthonormal: rows are frequencies


DCT = _dct_matrix()


def downscale(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) → (B, C, *size), antialiased bicubic (a thumbnail without aliasing)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)


def to_planes(x: torch.Tensor, geometry: ThumbnailGeometry) -> list[torch.Tensor]:
    """(B, 3, H, W) in [0, 1] → [Y (B, h, w), Cb, Cr (B, h/2, w/2)] in 8-bit levels, Y centred on 0."""
    ycc = rgb_to_ycbcr(x) * 255
    y = downscale(ycc[:, :1], geometry.luma)[:, 0] - 128
    c = downscale(ycc[:, 1:], geometry.chroma)
    return [y, c[:, 0], c[:, 1]]


def block_dct(plane: torch.Tensor) -> torch.Tensor:
    """(B, h, w) → (B, 64, h/8, w/8) zig-zag bands; the plane is padded to whole blocks by replication."""
    b, h, w = plane.shape
    hb, wb = ceil_div(h, BLOCK), ceil_div(w, BLOCK)
    p = F.pad(plane[:, None], (0, wb * BLOCK - w, 0, hb * BLOCK - h), mode="replicate")[:, 0]
    blocks = p.reshape(b, hb, BLOCK, wb, BLOCK).transpose(2, 3)
    d = DCT.to(plane)
    c = (d @ blocks @ d.T).reshape(b, hb, wb, BANDS)[..., ZIGZAG.to(plane.device)]
    return c.permute(0, 3, 1, 2)


def block_idct(bands: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, K, hb, wb) bands 0..K−1 (the rest zero) → (B, h, w) plane cropped to ``size``."""
    b, k, hb, wb = bands.shape
    full = bands.new_zeros(b, BANDS, hb, wb)
    full[:, ZIGZAG[:k].to(bands.device)] = bands
    blocks = full.permute(0, 2, 3, 1).reshape(b, hb, wb, BLOCK, BLOCK)
    d = DCT.to(bands)
    p = (d.T @ blocks @ d).transpose(2, 3).reshape(b, hb * BLOCK, wb * BLOCK)
    return p[:, : size[0], : size[1]]


def rounding(k: int, device=None) -> torch.Tensor:
    """(K, 1, 1) rounding offsets r: 1/2 for the DC band, ``ROUNDING`` for the others."""
    r = torch.full((k, 1, 1), ROUNDING, dtype=torch.float64, device=device)
    r[0] = 0.5
    return r


def band_steps(step, k: int, like: torch.Tensor) -> torch.Tensor:
    """The step of each of bands 0..K−1, (…, K, 1, 1): ``DC_STEP`` · Δ for the DC band, Δ for the others.
    ``step``: a float or a (B, 1, 1, 1) tensor."""
    f = torch.ones(k, 1, 1, dtype=like.dtype, device=like.device)
    f[0] = DC_STEP
    return f * step


def quantize(bands: torch.Tensor, step: torch.Tensor | float) -> torch.Tensor:
    """Dead-zone quantizer: (B, K, hb, wb) coefficients, step (B, 1, 1, 1) or a float → integers."""
    r = rounding(bands.shape[1], bands.device).to(bands.dtype)
    return torch.floor(bands.abs() / band_steps(step, bands.shape[1], bands) + r) * bands.sign()


def bins(q: torch.Tensor, step: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """The interval [lo, hi] of coefficients that quantize to q."""
    r = rounding(q.shape[1], q.device).to(q.dtype)
    s = band_steps(step, q.shape[1], q)
    mag_lo = (q.abs() - r).clamp_min(0) * s
    mag_hi = (q.abs() + 1 - r) * s
    lo = torch.where(q > 0, mag_lo, torch.where(q < 0, -mag_hi, -mag_hi))
    hi = torch.where(q > 0, mag_hi, torch.where(q < 0, -mag_lo, mag_hi))
    return lo, hi


def dequantize(q: torch.Tensor, step: torch.Tensor | float) -> torch.Tensor:
    """The starting estimate: |q|·Δ_k, inside the bin and near a Laplacian's conditional mean."""
    return q * band_steps(step, q.shape[1], q)


def _blur(p: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(2 * sigma + 0.5))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=p.dtype, device=p.device) ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    x = F.pad(p[:, None], (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1))[:, 0]


def reconstruct_plane(q: torch.Tensor, step, size: tuple[int, int], within=None) -> torch.Tensor:
    """Received bands (B, K, hb, wb) → a smooth (B, h, w) plane consistent with every received bin.

    POCS: blur, then put every coefficient back where the stream pins it: a non-zero one at |q|·Δ, a zero
    one inside the dead zone; the bands that were not sent are free. The blurs (``POCS_SIGMAS``) fill the
    freedom with a smooth continuation across block borders instead of flat 8×8 plateaus. ``step``: a float or (B, 1, 1, 1).
    ``within``: (lo, hi) like q, where earlier layers pin the coefficients more narrowly than q's bins
    (``nested``): every bin is cut to it, and a non-zero coefficient pinned at the point of its cut bin that
    |q|·Δ is of its whole bin (the fraction r from its small end).
    """
    lo, hi = bins(q, step)
    k = q.shape[1]
    padded = (q.shape[2] * BLOCK, q.shape[3] * BLOCK)
    sent = dequantize(q, step)
    if within is not None:
        lo, hi = torch.maximum(lo, within[0]), torch.minimum(hi, within[1])
        r = rounding(k, q.device).to(q.dtype)
        sent = torch.where(q > 0, lo + r * (hi - lo), torch.where(q < 0, hi - r * (hi - lo), 0.0))
    plane = block_idct(sent, padded)
    for sigma in POCS_SIGMAS:
        c = block_dct(_blur(plane, sigma))
        c[:, :k] = torch.where(q != 0, sent, torch.minimum(torch.maximum(c[:, :k], lo), hi))
        plane = block_idct(c, padded)
    return plane[:, : size[0], : size[1]]


def nested(q_prev: torch.Tensor, step_prev, within_prev, q: torch.Tensor):
    """(lo, hi) like q: the bins of an earlier layer's q_prev (at step_prev, cut to ``within_prev`` when
    given) over q's bands, unbounded in the bands it did not send."""
    lo, hi = bins(q_prev, step_prev)
    if within_prev is not None:
        lo, hi = torch.maximum(lo, within_prev[0]), torch.minimum(hi, within_prev[1])
    out_lo = torch.full_like(q, -math.inf, dtype=lo.dtype)
    out_hi = torch.full_like(q, math.inf, dtype=hi.dtype)
    out_lo[:, : lo.shape[1]], out_hi[:, : hi.shape[1]] = lo, hi
    return out_lo, out_hi


def from_planes(planes: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """[Y, Cb, Cr] thumbnail planes in 8-bit levels → (B, 3, *size) RGB, bicubic (not clamped)."""
    y = F.interpolate((planes[0][:, None] + 128) / 255, size=size, mode="bicubic", align_corners=False)
    c = F.interpolate(torch.stack(planes[1:], 1) / 255, size=size, mode="bicubic", align_corners=False)
    return ycbcr_to_rgb(torch.cat([y, c], 1))
