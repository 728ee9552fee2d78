"""The lite sender's learned analysis transform g_a (and the synthesis g_s used only to train it).

::

    x (3, H, W) ──g_a──► y (N, H/16, W/16) ──round──► ŷ      (sender: N ≥ 32 channels)
    ŷ ⊙ mask ──g_s──► x̂                                       (training only)

It is trained like a learned image codec (Ballé et al.), with a rate term on the *kept* channels and
random channel subsets, so that each channel alone describes the image and costs about a bit per
position. The receiver never uses g_s: the rectified-flow generator and its adapter rebuild the image.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from ..nn import ConfigMixin


def conv(c_in: int, c_out: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2)


class LiteAnalysis(nn.Module, ConfigMixin):
    """g_a: four stride-2 stages, image in [0, 1] → latent at 1/16 resolution."""

    stride = 16

    def __init__(self, latent_channels: int = 32, width: int = 96):
        super().__init__()
        self.register_config(latent_channels=latent_channels, width=width)
        self.g_a = nn.Sequential(
            conv(3, width), nn.GELU(),
            conv(width, width), nn.GELU(),
            conv(width, width), nn.GELU(),
            conv(width, latent_channels),
        )

    @property
    def latent_channels(self) -> int:
        return self.config["latent_channels"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.g_a(x * 2 - 1)


class LiteSynthesis(nn.Module, ConfigMixin):
    """g_s: mirror of g_a, takes the masked latent and the mask (training aid only)."""

    def __init__(self, latent_channels: int = 32, width: int = 96):
        super().__init__()
        self.register_config(latent_channels=latent_channels, width=width)
        up = lambda a, b: nn.ConvTranspose2d(a, b, 5, stride=2, padding=2, output_padding=1)  # noqa: E731
        self.g_s = nn.Sequential(
            up(2 * latent_channels, width), nn.GELU(),
            up(width, width), nn.GELU(),
            up(width, width), nn.GELU(),
            up(width, 3),
        )

    def forward(self, y_masked: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.g_s(torch.cat([y_masked, mask.expand_as(y_masked)], 1)) * 0.5 + 0.5


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

