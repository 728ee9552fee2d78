"""Distortion metrics, measured on what a user gets: 8-bit RGB.

- ``psnr``: 10·log10(1 / MSE) on RGB in [0, 1] after rounding both images to 8 bits (the decoder writes
  8-bit PNGs), MSE over all pixels and channels.
- ``ms_ssim``: ``pytorch_msssim.ms_ssim`` on the same 8-bit RGB, ``data_range=1``, its default 11×11
  Gaussian window and 5 scales. It needs a shorter side > 160 px; smaller images get ``None``.
- ``PerceptualMetrics``: LPIPS, DISTS, FID and KID through torchmetrics, each only where its backbone
  loads. A metric that cannot load is reported on one line and left out; nothing is ever filled in.
"""

from __future__ import annotations

import math

import torch

MS_SSIM_MIN_SIDE = 161  # pytorch_msssim: the side must exceed (win_size − 1) · 2⁴ = 160


def to_8bit(image: torch.Tensor) -> torch.Tensor:
    """Round a [0, 1] float image to the nearest 8-bit level (half up, as ``gsc.image.to_uint8``)."""
    return (image.clamp(0, 1) * 255 + 0.5).floor() / 255


def _pair(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    a, b = a.double(), b.double()
    if a.dim() == 3:
        a, b = a[None], b[None]
    return to_8bit(a), to_8bit(b)


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = _pair(a, b)
    return float((a - b).pow(2).mean())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two (3, H, W) images in [0, 1]; ``inf`` for identical 8-bit images."""
    m = mse(a, b)
    return math.inf if m == 0 else 10 * math.log10(1.0 / m)


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """MS-SSIM of two (3, H, W) images in [0, 1]; None when the image is too small for 5 scales."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    a, b = _pair(a, b)
    if min(a.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return None
    return float(_ms_ssim(a.float(), b.float(), data_range=1.0, size_average=True))


# --------------------------------------------------------------------------------------------------
# Learned metrics. Each factory builds a torchmetrics object or raises; ``kind`` says whether it scores
# one image pair ("pair") or compares the set of reconstructions with the set of originals ("set").


def _lpips():
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)


def _dists():
    from torchmetrics.image.dists import DeepImageStructureAndTextureSimilarity

    return DeepImageStructureAndTextureSimilarity()


def _fid():
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=2048, normalize=True)


def _kid():
    from torchmetrics.image.kid import KernelInceptionDistance

    # subset_size is set per set in ``compute`` (it must not exceed the number of images)
    return KernelInceptionDistance(feature=2048, normalize=True, subset_size=2)


LEARNED = {
    # name: (factory, kind, needs)
    "lpips": (_lpips, "pair", "torchvision + AlexNet/LPIPS weights"),
    "dists": (_dists, "pair", "torchvision + VGG16/DISTS weights"),
    "fid": (_fid, "set", "torch-fidelity + Inception weights"),
    "kid": (_kid, "set", "torch-fidelity + Inception weights"),
}


def _reason(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    msg = msg.split(". ")[0].rstrip(".")  # the first sentence says what is missing; the rest is advice
    return f"{type(e).__name__}: {msg[:200]}"


class PerceptualMetrics:
    """The learned metrics that load here. ``unavailable`` maps each one that does not to one line."""

    def __init__(self, names: list[str] | None = None):
        self.pair: dict[str, object] = {}
        self.set: dict[str, object] = {}
        self.unavailable: dict[str, str] = {}
        for name in names if names is not None else list(LEARNED):
            factory, kind, needs = LEARNED[name]
            try:
                metric = factory()
                if kind == "pair":  # some build their backbone on first use (DISTS): probe once
                    probe = torch.linspace(0, 1, 3 * 64 * 64).reshape(1, 3, 64, 64)
                    metric(probe, probe.flip(-1))
                    metric.reset()
            except Exception as e:  # any failure to build (import, download, weights) = unavailable
                self.unavailable[name] = f"{name.upper()} unavailable (needs {needs}): {_reason(e)}"
                continue
            (self.pair if kind == "pair" else self.set)[name] = metric

    @property
    def names(self) -> list[str]:
        return list(self.pair) + list(self.set)

    @torch.no_grad()
    def score_pair(self, recon: torch.Tensor, original: torch.Tensor) -> dict[str, float]:
        out = {}
        for name, metric in self.pair.items():
            metric.reset()
            out[name] = float(metric(to_8bit(recon)[None].float(), to_8bit(original)[None].float()))
        return out

    @torch.no_grad()
    def score_sets(self, recons: list[torch.Tensor], originals: list[torch.Tensor]) -> dict[str, float]:
        """Set-level metrics (FID, KID) of reconstructions against originals; needs ≥ 2 images."""
        out = {}
        if len(recons) < 2:
            return out
        for name, metric in self.set.items():
            metric.reset()
            if hasattr(metric, "subset_size"):
                metric.subset_size = min(50, len(recons))
            for r, o in zip(recons, originals, strict=True):
                metric.update(to_8bit(o)[None].float(), real=True)
                metric.update(to_8bit(r)[None].float(), real=False)
            value = metric.compute()
            out[name] = float(value[0] if isinstance(value, tuple) else value)
        return out
