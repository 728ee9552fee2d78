"""TAEF2: the tiny autoencoder of FLUX.2's latent space (Ollin Boer Bohan, MIT), the lite receiver's VAE.

The lite generator works in this latent space the way FLUX works in its VAE's: 32 channels at 1/8 of
the image, decoded to pixels by ``TAEF2Decoder``. The architecture is TAESD's; the three blocks next
to the latent carry an extra residual branch *before* the block (``Block.pool``)::

    encoder: conv 3→64 · Block · [stride-2 conv · 3 Blocks] × 3 (the last three with pool) · conv 64→32
    decoder: tanh clamp · conv 32→64 · ReLU · 3 Blocks with pool · [×2 up · conv · 3 Blocks] × 2
             · ×2 up · conv · Block · conv 64→3

Images are in [0, 1] on both sides. The weights are the upstream files (``taef2_encoder.pth``,
``taef2_decoder.pth``), read from a local folder, or from ``TAEF2_URL`` where a network exists; they
are never copied into this repository (docs/models.md carries their MIT notice). ``tiny_taef2_decoder``
builds a narrow one with seeded random weights, which needs no file (the ``lite-tiny`` preset).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import GSCError

TAEF2_URL = "https://github.com/madebyollin/taesd/raw/main/taef2_{part}.pth"
TAEF2_ENV = "GSC_TAEF2"  # a folder holding taef2_encoder.pth and taef2_decoder.pth
LATENT_CHANNELS = 32
STRIDE = 8


def _conv(c_in: int, c_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """TAESD's residual block (three 3×3 convs); ``pool`` adds TAEF2's 1×1 branch in front of it."""

    def __init__(self, c: int = 64, pool: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(c, c), nn.ReLU(), _conv(c, c), nn.ReLU(), _conv(c, c))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = nn.Sequential(nn.Conv2d(c, 4 * c, 1, bias=False), nn.GroupNorm(4, 4 * c), nn.ReLU(),
                                  nn.Conv2d(4 * c, c, 1, bias=False)) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


class TAEF2Encoder(nn.Sequential):
    def __init__(self, latent_channels: int = LATENT_CHANNELS):
        def stage(pool):
            return [_conv(64, 64, stride=2, bias=False), Block(64, pool), Block(64, pool), Block(64, pool)]

        super().__init__(_conv(3, 64), Block(64), *stage(False), *stage(False), *stage(True),
                         _conv(64, latent_channels))


class TAEF2Decoder(nn.Sequential):
    """``width`` 64 is TAEF2's (the upstream weights); a narrower one serves tests of the wiring."""

    def __init__(self, latent_channels: int = LATENT_CHANNELS, width: int = 64):
        def stage(pool):
            return [Block(width, pool), Block(width, pool), Block(width, pool), nn.Upsample(scale_factor=2),
                    _conv(width, width, bias=False)]

        super().__init__(Clamp(), _conv(latent_channels, width), nn.ReLU(), *stage(True), *stage(False),
                         *stage(False), Block(width), _conv(width, 3))


def _source(part: str, folder: str | Path | None):
    """Where the upstream ``taef2_{part}.pth`` comes from: a folder (argument, $GSC_TAEF2, or the
    shared models folder beside a checkout), else the public URL."""
    candidates = [folder, os.environ.get(TAEF2_ENV),
                  Path(__file__).resolve().parents[3].parent / "shared" / "models" / "taef2"]
    for c in candidates:
        if c and (Path(c) / f"taef2_{part}.pth").is_file():
            return Path(c) / f"taef2_{part}.pth"
    if folder:
        raise GSCError(f"{Path(folder) / f'taef2_{part}.pth'} not found")
    return TAEF2_URL.format(part=part)


def _load_state(part: str, folder: str | Path | None) -> dict:
    src = _source(part, folder)
    if isinstance(src, Path):
        return torch.load(src, map_location="cpu", weights_only=True)
    try:
        return torch.hub.load_state_dict_from_url(src, map_location="cpu", weights_only=True)
    except Exception as e:  # no network: say how to point at local files instead
        raise GSCError(f"TAEF2 weights not found locally and not downloadable ({type(e).__name__}); "
                       f"set {TAEF2_ENV}=FOLDER holding taef2_encoder.pth and taef2_decoder.pth") from None


def load_taef2_encoder(folder: str | Path | None = None) -> TAEF2Encoder:
    model = TAEF2Encoder()
    model.load_state_dict(_load_state("encoder", folder))
    return model.eval().requires_grad_(False)


def load_taef2_decoder(folder: str | Path | None = None) -> TAEF2Decoder:
    model = TAEF2Decoder()
    model.load_state_dict(_load_state("decoder", folder))
    return model.eval().requires_grad_(False)


def tiny_taef2_decoder(seed: int = 0, width: int = 8) -> TAEF2Decoder:
    """TAEF2's decoder at ``width`` channels with seeded random weights: the shape of the real one, no file."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TAEF2Decoder(width=width)
    return model.eval().requires_grad_(False)
