"""Channel selection: which C of the N latent channels the sender transmits.

The paper scores every channel by SSIM against the image's structure and keeps the C best; it gives no
formula. gsc's definition (``ssim``):

1. image structure = luma Y = 0.299 R + 0.587 G + 0.114 B, area-averaged down to the latent grid
   (H/16 × W/16), so that no upsampling invents detail the channel cannot have;
2. each dequantized channel map and Y are min–max normalised to [0, 1] (a constant map becomes 0);
3. SSIM with an 7×7 Gaussian window (σ = 1.5), C1 = 0.01², C2 = 0.03², reflect padding, mean over
   the grid;
4. keep the C channels with the highest score, ties broken by the lower index.

The second reading considered (``ssim-abs``): a channel that is the negative of the structure carries
the same information, so score max(SSIM(m, Y), SSIM(1 − m, Y)). A third (``ssim-full``) compares at
full image resolution, the channel upsampled bilinearly. ``energy`` (mean square of the quantized
values) and ``random`` (seeded) are baselines. The evaluation measures all of them.

Task-aware (``det-ssim``): the receiver runs a detector on the reconstruction, so the sender runs the same
detector (YOLOv3-tiny) on the original and weights ``ssim``'s map towards the detected objects' boxes. The
stream carries the indices, so the receiver never needs to know which rule chose them.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..color import luma, rgb_to_ycbcr
from ..registry import Registry

SELECTORS: Registry[Callable] = Registry("selection")  # name → scores(latent, image, seed=…) per channel
register = SELECTORS.register


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    return torch.where(hi > lo, (x - lo) / (hi - lo).clamp_min(1e-12), torch.zeros_like(x))


def _gaussian_window(size: int = 7, sigma: float = 1.5, dtype=torch.float32) -> torch.Tensor:
    r = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim_map_score(a: torch.Tensor, b: torch.Tensor, window: int = 7,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean SSIM between maps a and b of shape (..., 1, h, w), values in [0, 1]. Returns shape (...).

    ``weight`` (h, w), ≥ 0: a weighted mean over the grid instead of the plain mean."""
    lead = a.shape[:-3]
    a = a.reshape(-1, 1, *a.shape[-2:]).float()
    b = b.reshape(-1, 1, *b.shape[-2:]).float().expand_as(a)
    win = _gaussian_window(window)
    pad = window // 2
    h, w = a.shape[-2:]
    mode = "reflect" if min(h, w) > pad else "replicate"
    filt = lambda x: F.conv2d(F.pad(x, (pad, pad, pad, pad), mode=mode), win)  # noqa: E731
    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a ** 2
    var_b = filt(b * b) - mu_b ** 2
    cov = filt(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    if weight is not None:
        return (s * weight).sum(dim=(-3, -2, -1)).div(weight.sum()).reshape(lead)
    return s.mean(dim=(-3, -2, -1)).reshape(lead)


def _structure(image: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    return _minmax(F.adaptive_avg_pool2d(luma(image), grid))


@register("ssim")
def ssim_scores(latent: torch.Tensor, image: torch.Tensor, **_) -> torch.Tensor:
    """latent (N, h, w), image (3, H, W) → (N,) scores."""
    y = _structure(image[None], latent.shape[-2:])[0]
    return ssim_map_score(_minmax(latent[:, None].float()), y)


@register("ssim-abs")
def ssim_abs_scores(latent: torch.Tensor, image: torch.Tensor, **_) -> torch.Tensor:
    y = _structure(image[None], latent.shape[-2:])[0]
    m = _minmax(latent[:, None].float())
    return torch.maximum(ssim_map_score(m, y), ssim_map_score(1 - m, y))


@register("ssim-full")
def ssim_full_scores(latent: torch.Tensor, image: torch.Tensor, **_) -> torch.Tensor:
    y = _minmax(luma(image[None]))[0]
    up = F.interpolate(latent[:, None].float(), size=image.shape[-2:], mode="bilinear", align_corners=False)
    return ssim_map_score(_minmax(up), y, window=11)


@register("ssim-color")
def ssim_color_scores(latent: torch.Tensor, image: torch.Tensor, **_) -> torch.Tensor:
    """Colour structure: the best SSIM (either sign) of the channel against Y, Cb or Cr, each plane
    weighted by its contrast relative to the most contrasted one, so that a grey image ranks by luma
    and a colourful one lets a chroma-carrying channel in at small C.

    Batched too: latent (B, N, h, w) with image (B, 3, H, W) gives (B, N)."""
    batched = latent.dim() == 4
    latent, image = (latent, image) if batched else (latent[None], image[None])
    planes = F.adaptive_avg_pool2d(rgb_to_ycbcr(image.float()), latent.shape[-2:])        # (B, 3, h, w)
    contrast = planes.flatten(2).std(dim=2, unbiased=False)
    weight = contrast / contrast.amax(dim=1, keepdim=True).clamp_min(1e-12)                # (B, 3)
    m = _minmax(latent.float())[:, :, None, None]                                         # (B, N, 1, 1, h, w)
    p = _minmax(planes)[:, None, :, None]                                                  # (B, 1, 3, 1, h, w)
    shape = (m.shape[0], m.shape[1], 3, 1, *m.shape[-2:])
    both = torch.maximum(ssim_map_score(m.expand(shape), p.expand(shape)),
                         ssim_map_score((1 - m).expand(shape), p.expand(shape)))           # (B, N, 3)
    scores = (both * weight[:, None]).amax(dim=2)                                          # (B, N)
    return scores if batched else scores[0]


@register("ordered")
def ordered_scores(latent: torch.Tensor, image: torch.Tensor | None = None, **_) -> torch.Tensor:
    """The codec's own order: channel 0 first. The lite codec is trained on the first C channels (most
    useful first), as a nested representation, so this keeps exactly the sets it was trained to send."""
    return -torch.arange(latent.shape[-3], dtype=torch.float32).expand(latent.shape[:-2])


@register("energy")
def energy_scores(latent: torch.Tensor, image: torch.Tensor | None = None, **_) -> torch.Tensor:
    return latent.float().pow(2).mean(dim=(-2, -1))


@register("random")
def random_scores(latent: torch.Tensor, image: torch.Tensor | None = None, seed: int = 0, **_) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(latent.shape[0], generator=g)


# -- task-aware: what the receiver's detector needs ----------------------------------------------

DETECTION_BACKGROUND_WEIGHT = 0.1  # weight of a pixel outside every detected object (inside: 1 + its score)
_detection_memo: dict = {}


def detection_weight(image: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor | None:
    """(3, H, W) in [0, 1] → (h, w) weights: where YOLOv3-tiny finds objects on the original.

    Each pixel weighs ``DETECTION_BACKGROUND_WEIGHT``, plus 1 + the highest score of the detections with
    score ≥ ``gsc.detector.YOLO_REF_THRESHOLD`` (the objects detection agreement counts) whose box covers
    it; area-averaged down to the latent grid. None when no object is found. The last image's weights are
    kept: the encoder's ``max_bpp`` loop selects again at each step Δ.
    """
    import hashlib

    from ..detector import YOLO_REF_THRESHOLD, yolo_detector
    from ..image import to_uint8

    rgb = to_uint8(image)
    key = (hashlib.sha1(rgb.tobytes()).hexdigest(), rgb.shape, tuple(grid))
    if key not in _detection_memo:
        det = yolo_detector().detect(rgb)
        h, w = rgb.shape[:2]
        cover = torch.zeros(h, w)
        objects = [(b, s) for b, s in zip(det["boxes"].tolist(), det["scores"].tolist()) if s >= YOLO_REF_THRESHOLD]
        for (x0, y0, x1, y1), score in objects:
            box = cover[int(y0):int(round(y1)), int(x0):int(round(x1))]
            box.copy_(torch.maximum(box, torch.tensor(1.0 + score)))
        weight = None
        if objects:
            weight = F.adaptive_avg_pool2d((cover + DETECTION_BACKGROUND_WEIGHT)[None, None], grid)[0, 0]
        _detection_memo.clear()
        _detection_memo[key] = weight
    return _detection_memo[key]


@register("det-ssim")
def detection_ssim_scores(latent: torch.Tensor, image: torch.Tensor, **_) -> torch.Tensor:
    """``ssim``'s score with the SSIM map averaged under ``detection_weight``: the channels that best carry
    the structure of the objects the receiver's detector finds. With no object found, it equals ``ssim``."""
    weight = detection_weight(image, latent.shape[-2:])
    if weight is None:
        return ssim_scores(latent, image)
    y = _structure(image[None], latent.shape[-2:])[0]
    return ssim_map_score(_minmax(latent[:, None].float()), y, weight=weight)


def rank_channels(latent: torch.Tensor, image: torch.Tensor, method: str = "ssim", seed: int = 0) -> list[int]:
    """All N channels of ``latent`` (N, h, w), best first by ``method`` (ties: the lower index first)."""
    if method not in SELECTORS:
        raise ValueError(f"unknown selection {method!r}; choose from {', '.join(sorted(SELECTORS))}")
    scores = SELECTORS[method](latent, image, seed=seed).double()
    return sorted(range(latent.shape[0]), key=lambda i: (-float(scores[i]), i))


def select_channels(latent: torch.Tensor, image: torch.Tensor, count: int, method: str = "ssim",
                    seed: int = 0) -> list[int]:
    """Indices (sorted ascending) of the ``count`` best channels of ``latent`` (N, h, w) by ``method``: the
    first ``count`` of ``rank_channels``, so a larger count only adds channels (the stream's layers)."""
    n = latent.shape[0]
    if not 0 <= count <= n:
        raise ValueError(f"channels must be in 0..{n}, got {count}")
    return sorted(rank_channels(latent, image, method, seed)[:count]) if count else []
