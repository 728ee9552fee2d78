"""Rectified flow: the interpolation, the training loss, timestep sampling and the Euler sampler.

Convention (as FLUX): x_t = (1 − t)·x_0 + t·ε, with t = 0 the image and t = 1 pure noise. The model
predicts the velocity v = ε − x_0, so one Euler step from t = 1 to 0 returns ε − v̂ = E[x_0 | cond]:
the conditional mean, best for PSNR. More steps trade PSNR for detail.
"""

from __future__ import annotations

from typing import Callable

import torch


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - t) * x0 + t * noise


def flow_matching_loss(v_pred: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return torch.mean((v_pred - (noise - x0)) ** 2)


def flow_matching_loss_x0(x0_pred: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """The flow-matching loss of a model that predicts x̂_0 (v̂ = (x_t − x̂_0)/t), weighted by t²:
    t²·‖v̂ − v‖² = ‖x̂_0 − x_0‖². The weight keeps t → 0 from dominating a small model's training."""
    return torch.mean((x0_pred - x0) ** 2)


def sample_timesteps(n: int, shift: float = 3.0, p_one: float = 0.0, generator=None) -> torch.Tensor:
    """FLUX-style timesteps: logit-normal, then shifted towards noise by ``shift``.

    ``p_one`` puts that share of the batch at exactly t = 1, the one-step (conditional mean) case that
    the lite preset decodes with most often.
    """
    u = torch.sigmoid(torch.randn(n, generator=generator))
    t = shift * u / (1 + (shift - 1) * u)
    if p_one > 0:
        t = torch.where(torch.rand(n, generator=generator) < p_one, torch.ones_like(t), t)
    return t


def sigma_schedule(steps: int, shift: float = 3.0) -> torch.Tensor:
    """Decreasing t from 1 to 0 in ``steps`` Euler steps, with FLUX's time shift."""
    u = torch.linspace(1.0, 0.0, steps + 1)
    return shift * u / (1 + (shift - 1) * u)


@torch.no_grad()
def euler_sample(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], noise: torch.Tensor, steps: int,
                 shift: float = 3.0, progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Integrate dx/dt = v from t = 1 (noise) to t = 0 (image) with ``steps`` Euler steps."""
    ts = sigma_schedule(steps, shift)
    x = noise
    for i in range(steps):
        t, t_next = ts[i], ts[i + 1]
        v = velocity(x, t.expand(x.shape[0]))
        x = x + (t_next - t) * v
        if progress is not None:
            progress(i)
    return x
