"""The lite preset's networks: g_s (the low band) and the rectified-flow U-Net with its zero-init adapter.

Shared by the sender (whose rate control runs g_s on its candidates), the receiver and the trainer.

g_s, the learned upsampler of the decoded thumbnail (``gsc.models.thumbnail``)::

    thumbnail (Y, Cb, Cr at 1/f) ─► bicubic ─────────────────────────────────────────────► x̃ (3, H, W)
                                 └► bicubic to 1/4 ⊕ (log Δ_Y, log Δ_C, log f) ─► stem ─► down ─► 4 blocks ─►
                                    up ⊕ stem ─► 2 blocks ─► zero-init conv ─► pixel shuffle ×4 ─► + x̃ ─► x̂
    every block reads (log Δ_Y, log Δ_C, log f, caption embedding) by scale and shift.

At initialisation g_s is the bicubic upscale of the thumbnail; training adds what a learned upsampler of
coded thumbnails can (edges, deblocking, the colour a coarse chroma step lost).

The generator::

The paper's FLUX works in its VAE's latent space; the adapter is a trainable copy of some of its blocks
whose outputs pass through zero-initialised layers into the frozen base. In miniature::

    z_t (32, H/8, W/8) ─► conv_in ─► down[0] ─► down[1] ─► down[2] ─► mid ─► up[2] ─► up[1] ─► up[0] ─► ẑ_0
                                       ▲ +        ▲ +        ▲ +       ▲ +
    adapter: copy of conv_in/down/mid, fed the decoded thumbnail at 1/8 ⊕ (log Δ_Y, log Δ_C, log f) at every
             level, each output through a zero-init 1×1 conv (``zero_convs``) into the base's skips and mid.

Both read the time t and the caption embedding (all-MiniLM-L6-v2, 384-d; zero = no caption) through
scale-and-shift of every block. At initialisation the adapter adds exactly zero.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
import torch.nn.functional as F

from ..bits import ceil_div
from ..nn import ConfigMixin, timestep_embedding, zero_module
from . import thumbnail

LATENT_CHANNELS = 32  # TAEF2
TEXT_DIM = 384


N_SETTINGS = 3   # log Δ_Y, log Δ_C, log f


def settings_vector(steps: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(B, 3): the receiver's knowledge of how coarse the thumbnail is, roughly centred on 0."""
    return torch.stack([torch.log(steps[:, 0] / 32), torch.log(steps[:, 1] / 32), torch.log(scale / 12)], 1)


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
        self.register_to_config(channels=list(channels), cond_dim=cond_dim, latent_channels=latent_channels,
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
    """Trainable copy of the base's conditioning, input, down path and mid blocks, reading the low band.

    The condition (``adapter_hint``) is the decoded thumbnail rendered at the latent's 1/8 with how coarse
    it is (log Δ_Y, log Δ_C, log f as constant maps): one adapter for every scale and step.
    """

    def __init__(self, channels: tuple[int, ...] = (96, 160, 224), cond_dim: int = 256,
                 latent_channels: int = LATENT_CHANNELS, text_dim: int = TEXT_DIM, hint_width: int = 128):
        super().__init__()
        channels = tuple(channels)
        self.register_to_config(channels=list(channels), cond_dim=cond_dim, latent_channels=latent_channels,
                             text_dim=text_dim, hint_width=hint_width)
        base_like = LiteFlowUNet(channels, cond_dim, latent_channels, text_dim)
        self.conditioning = base_like.conditioning
        self.conv_in = base_like.conv_in
        self.down = base_like.down
        self.downsample = base_like.downsample
        self.mid = base_like.mid
        self.hint = nn.Sequential(
            nn.Conv2d(3 + N_SETTINGS, hint_width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hint_width, hint_width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hint_width, hint_width, 3, padding=1), nn.SiLU(),
        )
        # The hint enters each level through its own zero-init projection (ControlNet's "hint").
        level_in = (channels[0],) + channels[:-1]
        self.hint_proj = nn.ModuleList([zero_module(nn.Conv2d(hint_width, c, 1)) for c in level_in])
        self.zero_convs = nn.ModuleList([zero_module(nn.Conv2d(c, c, 1)) for c in channels])
        self.zero_mid = zero_module(nn.Conv2d(channels[-1], channels[-1], 1))

    @classmethod
    def from_base(cls, base: LiteFlowUNet) -> "LiteAdapter":
        cfg = base.config
        adapter = cls(tuple(cfg["channels"]), cfg["cond_dim"], cfg["latent_channels"], cfg["text_dim"])
        for name in ("conditioning", "conv_in", "down", "downsample", "mid"):
            getattr(adapter, name).load_state_dict(copy.deepcopy(getattr(base, name).state_dict()))
        return adapter

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, text: torch.Tensor, hint: torch.Tensor) -> dict:
        """hint: (B, 6, h, w) from ``adapter_hint``, at the latent's resolution."""
        cond = self.conditioning(t, text)
        hint = self.hint(hint)
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


def adapter_hint(planes: list[torch.Tensor], size, steps: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The adapter's condition: the thumbnail rendered at ``size`` (the latent's grid) in [−1, 1], and the
    settings vector as constant maps. (B, 6, *size)."""
    low = thumbnail.from_planes(planes, tuple(size)) * 2 - 1
    s = settings_vector(steps, scale)[:, :, None, None].expand(-1, -1, *low.shape[-2:])
    return torch.cat([low, s], 1)


class LiteSynthesis(nn.Module, ConfigMixin):
    """g_s: decoded thumbnail planes (+ the steps, the scale and the caption) → the image's low band."""

    def __init__(self, width: int = 48, inner_width: int = 96, inner_blocks: int = 4, outer_blocks: int = 1,
                 cond_dim: int = 128, text_dim: int = TEXT_DIM):
        super().__init__()
        self.register_to_config(width=width, inner_width=inner_width, inner_blocks=inner_blocks,
                             outer_blocks=outer_blocks, cond_dim=cond_dim, text_dim=text_dim)
        self.cond = nn.Sequential(nn.Linear(N_SETTINGS + text_dim, cond_dim), nn.SiLU(),
                                  nn.Linear(cond_dim, cond_dim), nn.SiLU())
        self.stem = nn.Conv2d(3 + N_SETTINGS, width, 3, padding=1)
        self.down = nn.Conv2d(width, inner_width, 3, stride=2, padding=1)
        self.inner = nn.ModuleList([CondResBlock(inner_width, inner_width, cond_dim) for _ in range(inner_blocks)])
        self.up = nn.Conv2d(inner_width, width, 3, padding=1)
        self.outer = nn.ModuleList([CondResBlock(2 * width if i == 0 else width, width, cond_dim)
                                    for i in range(outer_blocks)])
        self.out = zero_module(nn.Conv2d(width, 3 * 16, 3, padding=1))   # ×4 by pixel shuffle

    def forward(self, planes: list[torch.Tensor], size: tuple[int, int], steps: torch.Tensor,
                scale: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """planes: [Y (B, h, w), Cb, Cr (B, h/2, w/2)] in 8-bit levels; size: (H, W);
        steps: (B, 2) Δ_Y, Δ_C; scale: (B,) f; text: (B, 384). Returns (B, 3, H, W), not clamped."""
        s = settings_vector(steps, scale)
        cond = self.cond(torch.cat([s, text], 1))
        base = thumbnail.from_planes(planes, size)
        work = thumbnail.from_planes(planes, (ceil_div(size[0], 4), ceil_div(size[1], 4)))
        h0 = self.stem(torch.cat([work * 2 - 1, s[:, :, None, None].expand(-1, -1, *work.shape[-2:])], 1))
        h = F.silu(self.down(F.silu(h0)))
        for block in self.inner:
            h = block(h, cond)
        h = F.interpolate(self.up(h), size=h0.shape[-2:], mode="bilinear", align_corners=False)
        h = torch.cat([h, h0], 1)
        for block in self.outer:
            h = block(h, cond)
        return base + F.pixel_shuffle(self.out(F.silu(h)), 4)[..., : size[0], : size[1]]


# The lite-tiny preset's configs: every network at width 8, for tests of the wiring (like flux-tiny's).
TINY_SYNTHESIS = dict(width=8, inner_width=8, inner_blocks=1, outer_blocks=1, cond_dim=8)
TINY_FLOW = dict(channels=(8, 8), cond_dim=8)
TINY_HINT_WIDTH = 8


def tiny_models(seed: int = 0) -> tuple[LiteSynthesis, LiteFlowUNet, LiteAdapter]:
    """g_s, the flow base and its adapter in the tiny configs, seeded, in eval mode.

    The zero-initialised layers (g_s's output, the adapter's projections) get seeded random weights too:
    at zero they would close the paths a test of the wiring has to see (g_s would be the bicubic upscale,
    the adapter would add nothing).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        models = (LiteSynthesis(**TINY_SYNTHESIS), LiteFlowUNet(**TINY_FLOW),
                  LiteAdapter(**TINY_FLOW, hint_width=TINY_HINT_WIDTH))
        with torch.no_grad():
            for m in models:
                for layer in m.modules():
                    if isinstance(layer, nn.Conv2d) and not layer.weight.any():
                        layer.weight.normal_(0, 0.01)
    return tuple(m.eval().requires_grad_(False) for m in models)
