"""The lite codec: analysis g_a (sender) and synthesis g_s (receiver's low band), a thumbnail at heart.

::

    x (3, H, W) ──g_a──► y (N, H/16, W/16) ──round(y / Δ)──► ŷ        sender, N = 32 channels
    ŷ ⊙ mask, mask, caption embedding ──g_s──► x̂ (3, H, W)          receiver: the image's low band

Both start where a hand-made thumbnail codec is: channels 0, 1, 2 of y are the image's Y, Cb, Cr
(BT.601) area-averaged to 1/16 and scaled by ``scale`` (Δ = 1 is then 1/16 of the range), channels
3, 4, 5 the Haar details that lift Y to 1/8 (same scale: an orthonormal step). The learned channels
6..N−1 start at 0 (zero-init last layer), and g_s starts as the bicubic decoder of the 1/16 thumbnail
plus a zero-init learned residual that reads every sent channel, so training starts from the thumbnail
codec and adds to it.
g_s reads the caption (all-MiniLM-L6-v2, FiLM) so that colour can come from words when few channels
are sent; a zero embedding means no caption.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from ..nn import ConfigMixin, zero_module

STRIDE = 16
TEXT_DIM = 384  # all-MiniLM-L6-v2
THUMBNAIL_CHANNELS = 6  # Y, Cb, Cr at 1/16 and Y's Haar details H, V, D (Y at 1/8)

# BT.601 full range (JPEG): rows Y, Cb, Cr.
_RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                              [-0.168736, -0.331264, 0.5],
                              [0.5, -0.418688, -0.081312]])
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] → Y in [0, 1], Cb and Cr in [−0.5, 0.5]."""
    return torch.einsum("kc,bchw->bkhw", _RGB_TO_YCBCR.to(x), x)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("kc,bchw->bkhw", _YCBCR_TO_RGB.to(x), x)


def conv(c_in: int, c_out: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2)


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.GELU(), nn.Conv2d(c, c, 3, padding=1), nn.GELU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Up(nn.Sequential):
    """×2 bilinear upsampling, then a 3×3 conv: no transposed conv, so no checkerboard or block grid."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(c_in, c_out, 3, padding=1), nn.GELU())


class LiteAnalysis(nn.Module, ConfigMixin):
    """g_a: a YCbCr thumbnail pyramid (channels 0–5, times ``scale``), then learned channels 6..N−1.

    Channels 0–2 are Y, Cb, Cr at 1/16; 3–5 the Haar details (H, V, D) that lift Y to 1/8. They stay
    exact: training only adds learned channels on top of what a thumbnail codec already sends."""

    stride = STRIDE

    def __init__(self, latent_channels: int = 32, width: int = 64, scale: float = 16.0):
        super().__init__()
        self.register_config(latent_channels=latent_channels, width=width, scale=scale)
        self.scale = scale
        self.g_a = nn.Sequential(
            conv(3, width), nn.GELU(),
            conv(width, width), nn.GELU(),
            conv(width, width), nn.GELU(),
            zero_module(conv(width, latent_channels - THUMBNAIL_CHANNELS)),
        )

    @property
    def latent_channels(self) -> int:
        return self.config["latent_channels"]

    def thumbnail(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) → (B, 6, H/16, W/16): Y − 0.5, Cb, Cr block means and Y's Haar details, × scale."""
        ycc = rgb_to_ycbcr(x)
        y16 = F.avg_pool2d(ycc, STRIDE) - torch.tensor([0.5, 0.0, 0.0]).to(x).view(1, 3, 1, 1)
        y8 = F.avg_pool2d(ycc[:, :1], STRIDE // 2)
        a, b, c, d = y8[..., 0::2, 0::2], y8[..., 0::2, 1::2], y8[..., 1::2, 0::2], y8[..., 1::2, 1::2]
        haar = torch.cat([a - b + c - d, a + b - c - d, a - b - c + d], 1) / 4
        return torch.cat([y16, haar], 1) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.thumbnail(x), self.g_a(x * 2 - 1)], 1)


class LiteSynthesis(nn.Module, ConfigMixin):
    """g_s: the bicubic thumbnail from channels 0–2 + a learned residual from every sent channel.

    Input: ŷ ⊙ mask ⊕ mask at 1/16 (unsent channels are 0 and flagged so), caption embedding (FiLM).
    """

    def __init__(self, latent_channels: int = 32, width: int = 128, scale: float = 16.0,
                 text_dim: int = TEXT_DIM, up_widths: tuple[int, ...] = (96, 64, 32)):
        super().__init__()
        up_widths = tuple(up_widths)
        self.register_config(latent_channels=latent_channels, width=width, scale=scale, text_dim=text_dim,
                             up_widths=list(up_widths))
        self.scale = scale
        self.stem = nn.Conv2d(2 * latent_channels, width, 3, padding=1)
        self.film = zero_module(nn.Linear(text_dim, 2 * width))  # zero: no caption effect at init
        self.body = nn.Sequential(ResBlock(width), ResBlock(width))
        widths = (width,) + up_widths
        self.up = nn.Sequential(*[Up(a, b) for a, b in zip(widths[:-1], widths[1:])])
        # The residual stops at 1/2 resolution and is upsampled bicubically: the low band needs no more,
        # and full-resolution convolutions would dominate the training cost.
        self.out = zero_module(nn.Conv2d(widths[-1], 3, 3, padding=1))

    def thumbnail(self, y_hat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The thumbnail codec's decoder: Y, Cb, Cr at 1/16, bicubic to ``size``. The Haar details reach
        the image through the learned residual only: added here, coarsely quantized, they draw 8-pixel
        blocks that the residual would first have to learn to undo."""
        ycc = y_hat[:, :3] / self.scale + torch.tensor([0.5, 0.0, 0.0]).to(y_hat).view(1, 3, 1, 1)
        return ycbcr_to_rgb(F.interpolate(ycc, size=size, mode="bicubic", align_corners=False))

    def forward(self, y_hat: torch.Tensor, mask: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """y_hat: (B, N, h, w) dequantized latent; mask: (B, N, 1, 1) 0/1; text: (B, 384) or None.
        Returns (B, 3, 16h, 16w), not clamped (the loss sees the overshoot)."""
        mask = mask.expand(-1, -1, *y_hat.shape[-2:])
        y_hat = y_hat * mask
        h = self.stem(torch.cat([y_hat, mask], 1))
        if text is not None:
            gamma, beta = self.film(text).chunk(2, dim=1)
            h = h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        h = self.out(self.up(self.body(h)))
        size = (STRIDE * y_hat.shape[-2], STRIDE * y_hat.shape[-1])
        return self.thumbnail(y_hat, size) + F.interpolate(h, size=size, mode="bicubic", align_corners=False)


def quantize(y: torch.Tensor, mode: str) -> torch.Tensor:
    """'noise' for the rate estimate, 'ste' (straight-through rounding) for the decoder, 'round' at test."""
    if mode == "noise":
        return y + torch.empty_like(y).uniform_(-0.5, 0.5)
    if mode == "ste":
        return y + (torch.round(y) - y).detach()
    return torch.round(y)


def med_residual(q: torch.Tensor) -> torch.Tensor:
    """Residuals of (B, N, h, w) integer maps against the entropy coder's predictor (vectorised).

    Same predictor as ``gsc.latent.coding`` (LOCO-I median edge detector; first row: left, first
    column: up, origin: 0), so that the training rate term prices what the stream really codes.
    """
    a = F.pad(q, (1, 0, 0, 0))[..., :, :-1]          # left
    b = F.pad(q, (0, 0, 1, 0))[..., :-1, :]          # up
    c = F.pad(q, (1, 0, 1, 0))[..., :-1, :-1]        # up-left
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    pred = torch.where(c >= hi, lo, torch.where(c <= lo, hi, a + b - c))
    pred[..., 1:, 0] = q[..., :-1, 0]
    pred[..., 0, :] = a[..., 0, :]
    return q - pred


def random_channel_mask(batch: int, channels: int, max_kept: int, generator=None) -> torch.Tensor:
    """(B, N, 1, 1) masks keeping a random subset of 1..max_kept channels per sample."""
    kept = torch.randint(1, max_kept + 1, (batch,), generator=generator)
    scores = torch.rand(batch, channels, generator=generator)
    rank = scores.argsort(dim=1).argsort(dim=1)
    return (rank < kept[:, None]).float()[:, :, None, None]
