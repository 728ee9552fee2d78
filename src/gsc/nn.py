"""Small building blocks shared by the lite models, and config-carrying safetensors I/O.

Each lite model is a plain ``nn.Module`` whose constructor arguments are its config. ``save_model``
writes the weights and that config into one safetensors file (config in the metadata), so that
``load_model`` can rebuild the exact architecture without a separate JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F


class ConfigMixin:
    """Remembers the constructor's keyword arguments as ``self.config``."""

    config: dict

    def register_config(self, **kwargs) -> None:
        self.config = dict(kwargs)


def save_model(model: nn.Module, path: str | Path, extra: dict | None = None,
               dtype: torch.dtype | None = None) -> None:
    """Weights and config (safetensors metadata); ``dtype`` stores floats narrower (loaded back into fp32)."""
    from safetensors.torch import save_file

    meta = {"class": type(model).__name__, "config": json.dumps(model.config)}
    if extra:
        meta.update({k: json.dumps(v) for k, v in extra.items()})
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)


def read_metadata(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_model(cls, path: str | Path, strict: bool = True):
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta.get("class") != cls.__name__:
        raise ValueError(f"{path} holds a {meta.get('class')!r}, not a {cls.__name__!r}")
    model = cls(**json.loads(meta["config"]))
    model.load_state_dict(load_file(str(path)), strict=strict)
    return model.eval()


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000 as in diffusion models)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm → SiLU → conv, twice, with the time embedding added as a per-channel shift."""

    def __init__(self, c_in: int, c_out: int, t_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.t_proj = nn.Linear(t_dim, c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.t_proj(t_emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


def zero_module(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m
