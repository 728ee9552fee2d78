"""The lite receiver: frozen rectified-flow base + zero-init adapter, few Euler steps on pixels.

The caption is carried in every stream but this generator does not read it: BSDS500, the only
training data here, has no captions, so the lite models never learned to use one (docs/models.md).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import GSCError
from ..nn import load_model
from . import GENERATORS, GenerationRequest, Generator
from .lite_unet import LiteAdapter, LiteFlowUNet
from .rectified_flow import euler_sample


def _weights_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "weights"


@GENERATORS.register("lite")
class LiteGenerator(Generator):
    def __init__(self, weights: str | Path | None = None, threads: int | None = None):
        root = Path(weights) if weights else _weights_dir()
        paths = {n: root / f"lite_{n}.safetensors" for n in ("base", "adapter")}
        for name, p in paths.items():
            if not p.exists():
                raise GSCError(f"lite {name} weights not found at {p}; run `gsc train-lite` or reinstall gsc")
        self.base = load_model(LiteFlowUNet, paths["base"])
        self.adapter = load_model(LiteAdapter, paths["adapter"])
        self.latent_channels = self.adapter.config["latent_channels"]
        self.stride = self.base.stride
        if threads:
            torch.set_num_threads(threads)

    @torch.no_grad()
    def generate(self, request: GenerationRequest, progress=None) -> torch.Tensor:
        # 1. condition: the full latent grid (unselected channels zero) and the channel mask
        grid, mask = request.condition()
        h16, w16 = grid.shape[-2:]
        height, width = h16 * 16, w16 * 16
        # 2. noise from the stream's seed, on the CPU, so the same stream gives the same image
        g = torch.Generator().manual_seed(request.seed)
        noise = torch.randn((1, 3, height, width), generator=g)
        cond, mask = grid[None], mask.view(1, -1, 1, 1)

        # 3. velocity: base alone for C = 0 ("Directly Gen."), base + adapter otherwise
        def velocity(x_t, t):
            if not request.indices:
                return self.base(x_t, t)
            return self.base(x_t, t, self.adapter(x_t, t, cond, mask))

        # 4. few-step Euler integration from t = 1 to t = 0
        x0 = euler_sample(velocity, noise, request.steps, progress=progress)
        # 5. back to [0, 1], cropped to the true size
        image = (x0[0] * 0.5 + 0.5).clamp(0, 1)
        return image[:, : request.height, : request.width]

