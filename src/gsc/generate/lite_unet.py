"""The lite receiver: a small rectified-flow U-Net (the base) and its zero-init adapter.

The paper's adapter is a trainable copy of some FLUX blocks whose outputs pass through zero-initialised
linear layers into the frozen base. In miniature::

    x_t ─► patchify ─► conv_in ─► down[0] ─► down[1] ─► down[2] ─► mid ─► up[2] ─► up[1] ─► up[0] ─► v
                                     ▲ +         ▲ +        ▲ +      ▲ +
    adapter: copy of conv_in/down/mid, fed ŷ_sel ⊙ mask ⊕ mask at every level, each output through a
             zero-init 1×1 conv (``zero_convs``) and added to the base's skip features and mid block.

At initialisation the adapter adds exactly zero, so base + adapter equals the base.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
import torch.nn.functional as F

from ..nn import ConfigMixin, ResBlock, timestep_embedding, zero_module


class LiteFlowUNet(nn.Module, ConfigMixin):
    """Velocity model v(x_t, t) on pixels, working on 4×4 patches for speed on CPU.

    The network's raw output is the image estimate x̂_0 (``predict_x0``); the velocity is derived from
    it, v̂ = (x_t − x̂_0) / t. A small network cannot afford to copy the noise through itself, which a
    raw velocity output at t ≈ 1 (v = ε − x_0) would demand.
    """

    def __init__(self, channels: tuple[int, ...] = (64, 128, 192), patch: int = 4, t_dim: int = 128):
        super().__init__()
        channels = tuple(channels)
        self.register_config(channels=list(channels), patch=patch, t_dim=t_dim)
        self.patch = patch
        self.t_dim = t_dim
        self.t_mlp = nn.Sequential(nn.Linear(t_dim, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        self.conv_in = nn.Conv2d(3 * patch * patch, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = channels[0]
        for i, c in enumerate(channels):
            self.down.append(ResBlock(c_prev, c, t_dim))
            self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1) if i < len(channels) - 1 else nn.Identity())
            c_prev = c
        self.mid = nn.ModuleList([ResBlock(c_prev, c_prev, t_dim), ResBlock(c_prev, c_prev, t_dim)])
        self.up = nn.ModuleList()
        for i in reversed(range(len(channels))):
            c = channels[i]
            self.up.append(ResBlock(c_prev + c, c, t_dim))
            c_prev = c
        self.norm_out = nn.GroupNorm(8, channels[0])
        self.conv_out = nn.Conv2d(channels[0], 3 * patch * patch, 3, padding=1)

    @property
    def stride(self) -> int:
        return self.patch * 2 ** (len(self.config["channels"]) - 1)

    def embed_t(self, t: torch.Tensor) -> torch.Tensor:
        return self.t_mlp(timestep_embedding(t, self.t_dim))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, residuals: dict | None = None) -> torch.Tensor:
        x0 = self.predict_x0(x_t, t, residuals)
        return (x_t - x0) / t.clamp_min(1e-3).view(-1, 1, 1, 1)

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, residuals: dict | None = None) -> torch.Tensor:
        t_emb = self.embed_t(t)
        h = self.conv_in(F.pixel_unshuffle(x_t, self.patch))
        skips = []
        for i, (block, down) in enumerate(zip(self.down, self.downsample)):
            h = block(h, t_emb)
            if residuals is not None:
                h = h + residuals["down"][i]
            skips.append(h)
            h = down(h)
        for block in self.mid:
            h = block(h, t_emb)
        if residuals is not None:
            h = h + residuals["mid"]
        for i, block in enumerate(self.up):
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:
                h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], 1), t_emb)
        return F.pixel_shuffle(self.conv_out(F.silu(self.norm_out(h))), self.patch)


class LiteAdapter(nn.Module, ConfigMixin):
    """Trainable copy of the base's input and down path, conditioned on the selected channels.

    The condition is the full latent grid with unselected channels zeroed, concatenated with the
    0/1 channel mask, so that one adapter serves every C and every index set.
    """

    def __init__(self, latent_channels: int = 32, channels: tuple[int, ...] = (64, 128, 192), patch: int = 4,
                 t_dim: int = 128, cond_width: int = 128):
        super().__init__()
        channels = tuple(channels)
        self.register_config(latent_channels=latent_channels, channels=list(channels), patch=patch, t_dim=t_dim,
                             cond_width=cond_width)
        base_like = LiteFlowUNet(channels, patch, t_dim)
        self.t_mlp = base_like.t_mlp
        self.conv_in = base_like.conv_in
        self.down = base_like.down
        self.downsample = base_like.downsample
        self.mid = base_like.mid
        self.patch = patch
        self.t_dim = t_dim
        self.cond_in = nn.Sequential(
            nn.Conv2d(2 * latent_channels, cond_width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(cond_width, cond_width, 3, padding=1), nn.SiLU(),
        )
        # The condition enters each level through its own zero-init projection (ControlNet's "hint").
        level_in = (channels[0],) + channels[:-1]
        self.cond_proj = nn.ModuleList([zero_module(nn.Conv2d(cond_width, c, 1)) for c in level_in])
        self.zero_convs = nn.ModuleList([zero_module(nn.Conv2d(c, c, 1)) for c in channels])
        self.zero_mid = zero_module(nn.Conv2d(channels[-1], channels[-1], 1))

    @classmethod
    def from_base(cls, base: LiteFlowUNet, latent_channels: int, cond_width: int = 128) -> "LiteAdapter":
        cfg = base.config
        adapter = cls(latent_channels, tuple(cfg["channels"]), cfg["patch"], cfg["t_dim"], cond_width)
        for name in ("t_mlp", "conv_in", "down", "downsample", "mid"):
            getattr(adapter, name).load_state_dict(copy.deepcopy(getattr(base, name).state_dict()))
        return adapter

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, mask: torch.Tensor) -> dict:
        """cond: (B, N, h, w) selected channels (others zero); mask: (B, N, 1, 1) or (B, N, h, w)."""
        t_emb = self.t_mlp(timestep_embedding(t, self.t_dim))
        mask = mask.expand_as(cond)
        c = self.cond_in(torch.cat([cond, mask], 1))
        h = self.conv_in(F.pixel_unshuffle(x_t, self.patch))
        down_res = []
        for i, (block, down) in enumerate(zip(self.down, self.downsample)):
            h = h + self.cond_proj[i](F.interpolate(c, size=h.shape[-2:], mode="nearest"))
            h = block(h, t_emb)
            down_res.append(self.zero_convs[i](h))
            h = down(h)
        for block in self.mid:
            h = block(h, t_emb)
        return {"down": down_res, "mid": self.zero_mid(h)}
