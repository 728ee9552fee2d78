"""The lite receiver's generator: a rectified-flow U-Net in TAEF2's latent space and its zero-init adapter.

The paper's FLUX works in its VAE's latent space; the adapter is a trainable copy of some of its blocks
whose outputs pass through zero-initialised layers into the frozen base. In miniature::

    z_t (32, H/8, W/8) ─► conv_in ─► down[0] ─► down[1] ─► down[2] ─► mid ─► up[2] ─► up[1] ─► up[0] ─► ẑ_0
                                       ▲ +        ▲ +        ▲ +       ▲ +
    adapter: copy of conv_in/down/mid, fed ŷ_sel ⊙ mask ⊕ mask (1/16, upsampled to 1/8) at every level,
             each output through a zero-init 1×1 conv (``zero_convs``) into the base's skips and mid.

Both read the time t and the caption embedding (all-MiniLM-L6-v2, 384-d; zero = no caption) through
scale-and-shift of every block. At initialisation the adapter adds exactly zero.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
import torch.nn.functional as F

from ..nn import ConfigMixin, timestep_embedding, zero_module

LATENT_CHANNELS = 32  # TAEF2
TEXT_DIM = 384


class CondResBlock(nn.Module):
    """GroupNorm → SiLU → conv, twice; the condition (time + caption) scales and shifts the middle."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.cond = nn.Linear(cond_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.cond(cond)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class Conditioning(nn.Module):
    """Time and caption embedding → one vector per sample."""

    def __init__(self, dim: int, text_dim: int):
        super().__init__()
        self.dim = dim
        self.t_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.text = nn.Sequential(nn.Linear(text_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return F.silu(self.t_mlp(timestep_embedding(t, self.dim)) + self.text(text))


class LiteFlowUNet(nn.Module, ConfigMixin):
    """Rectified-flow base on TAEF2 latents: predicts ẑ_0; the velocity is v̂ = (z_t − ẑ_0) / t.

    A small network cannot afford to copy the noise through itself, which a raw velocity output at
    t ≈ 1 (v = ε − z_0) would demand; x̂_0 prediction with the t²-weighted loss avoids it.
    """

    def __init__(self, channels: tuple[int, ...] = (96, 160, 224), cond_dim: int = 256,
                 latent_channels: int = LATENT_CHANNELS, text_dim: int = TEXT_DIM):
        super().__init__()
        channels = tuple(channels)
        self.register_config(channels=list(channels), cond_dim=cond_dim, latent_channels=latent_channels,
                             text_dim=text_dim)
        self.conditioning = Conditioning(cond_dim, text_dim)
        self.conv_in = nn.Conv2d(latent_channels, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = channels[0]
        for i, c in enumerate(channels):
            self.down.append(CondResBlock(c_prev, c, cond_dim))
            self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1) if i < len(channels) - 1 else nn.Identity())
            c_prev = c
        self.mid = nn.ModuleList([CondResBlock(c_prev, c_prev, cond_dim), CondResBlock(c_prev, c_prev, cond_dim)])
        self.up = nn.ModuleList()
        for i in reversed(range(len(channels))):
            self.up.append(CondResBlock(c_prev + channels[i], channels[i], cond_dim))
            c_prev = channels[i]
        self.norm_out = nn.GroupNorm(8, channels[0])
        self.conv_out = nn.Conv2d(channels[0], latent_channels, 3, padding=1)

    @property
    def stride(self) -> int:
        """The latent grid must be a multiple of this (2 per downsampling)."""
        return 2 ** (len(self.config["channels"]) - 1)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor, residuals: dict | None = None):
        z0 = self.predict_x0(z_t, t, text, residuals)
        return (z_t - z0) / t.clamp_min(1e-3).view(-1, 1, 1, 1)

    def predict_x0(self, z_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor,
                   residuals: dict | None = None) -> torch.Tensor:
        cond = self.conditioning(t, text)
        h = self.conv_in(z_t)
        skips = []
        for i, (block, down) in enumerate(zip(self.down, self.downsample)):
            h = block(h, cond)
            if residuals is not None:
                h = h + residuals["down"][i]
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, cond)
        if residuals is not None:
            h = h + residuals["mid"]
        for block in self.up:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], 1), cond)
        return self.conv_out(F.silu(self.norm_out(h)))


class LiteAdapter(nn.Module, ConfigMixin):
    """Trainable copy of the base's conditioning, input, down path and mid blocks, reading the channels.

    The condition is the sender's full latent grid with unsent channels zeroed, concatenated with the
    0/1 channel mask, so that one adapter serves every C and every index set.
    """

    def __init__(self, sent_channels: int = 32, channels: tuple[int, ...] = (96, 160, 224), cond_dim: int = 256,
                 latent_channels: int = LATENT_CHANNELS, text_dim: int = TEXT_DIM, hint_width: int = 128):
        super().__init__()
        channels = tuple(channels)
        self.register_config(sent_channels=sent_channels, channels=list(channels), cond_dim=cond_dim,
                             latent_channels=latent_channels, text_dim=text_dim, hint_width=hint_width)
        base_like = LiteFlowUNet(channels, cond_dim, latent_channels, text_dim)
        self.conditioning = base_like.conditioning
        self.conv_in = base_like.conv_in
        self.down = base_like.down
        self.downsample = base_like.downsample
        self.mid = base_like.mid
        self.hint = nn.Sequential(
            nn.Conv2d(2 * sent_channels, hint_width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hint_width, hint_width, 3, padding=1), nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),   # 1/16 → the latent's 1/8
            nn.Conv2d(hint_width, hint_width, 3, padding=1), nn.SiLU(),
        )
        # The hint enters each level through its own zero-init projection (ControlNet's "hint").
        level_in = (channels[0],) + channels[:-1]
        self.hint_proj = nn.ModuleList([zero_module(nn.Conv2d(hint_width, c, 1)) for c in level_in])
        self.zero_convs = nn.ModuleList([zero_module(nn.Conv2d(c, c, 1)) for c in channels])
        self.zero_mid = zero_module(nn.Conv2d(channels[-1], channels[-1], 1))

    @classmethod
    def from_base(cls, base: LiteFlowUNet, sent_channels: int) -> "LiteAdapter":
        cfg = base.config
        adapter = cls(sent_channels, tuple(cfg["channels"]), cfg["cond_dim"], cfg["latent_channels"], cfg["text_dim"])
        for name in ("conditioning", "conv_in", "down", "downsample", "mid"):
            getattr(adapter, name).load_state_dict(copy.deepcopy(getattr(base, name).state_dict()))
        return adapter

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor, y_sent: torch.Tensor,
                mask: torch.Tensor) -> dict:
        """y_sent: (B, N, h, w) sent channels (others zero) at 1/16; mask: (B, N, 1, 1) or (B, N, h, w)."""
        cond = self.conditioning(t, text)
        hint = self.hint(torch.cat([y_sent, mask.expand_as(y_sent)], 1))
        h = self.conv_in(z_t)
        down_res = []
        for i, (block, down) in enumerate(zip(self.down, self.downsample)):
            h = h + self.hint_proj[i](F.interpolate(hint, size=h.shape[-2:], mode="bilinear", align_corners=False))
            h = block(h, cond)
            down_res.append(self.zero_convs[i](h))
            h = down(h)
        for block in self.mid:
            h = block(h, cond)
        return {"down": down_res, "mid": self.zero_mid(h)}
