"""Colour spaces, once: BT.601 full-range YCbCr (JFIF, what the lite thumbnail sends and chroma PSNR
reads) and CIELAB (what colour drift reads). Tensors are (…, 3, H, W) RGB in [0, 1]."""
from __future__ import annotations

import torch
import torch.nn.functional as F

RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                             [-0.168736, -0.331264, 0.5],
                             [0.5, -0.418688, -0.081312]], dtype=torch.float64)
YCBCR_TO_RGB = torch.linalg.inv(RGB_TO_YCBCR)

# sRGB (D65) → XYZ, and the D65 white: the usual IEC 61966-2-1 numbers.
_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)
_WHITE = (0.95047, 1.0, 1.08883)

DRIFT_BLOCK = 32


def _apply(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("kc,...chw->...khw", m.to(x), x)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB → Y in [0, 1], Cb and Cr in [−0.5, 0.5] (BT.601 full range, centred on 0)."""
    return _apply(RGB_TO_YCBCR, x)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    return _apply(YCBCR_TO_RGB, x)


def luma(x: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) → (…, 1, H, W): BT.601 Y."""
    return _apply(RGB_TO_YCBCR[:1], x)


def chroma(x: torch.Tensor) -> torch.Tensor:
    """(…, 3, H, W) → (…, 2, H, W): Cb and Cr, centred on 0."""
    return _apply(RGB_TO_YCBCR[1:], x)


def rgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] → CIELAB (D65): L in [0, 100]."""
    x = x.double().clamp(0, 1)
    linear = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    xyz = _apply(_RGB_TO_XYZ, linear) / torch.tensor(_WHITE, dtype=x.dtype).view(3, 1, 1)
    f = torch.where(xyz > (6 / 29) ** 3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.stack([116 * f[..., 1, :, :] - 16,
                        500 * (f[..., 0, :, :] - f[..., 1, :, :]),
                        200 * (f[..., 1, :, :] - f[..., 2, :, :])], -3)


def block_drift(a: torch.Tensor, b: torch.Tensor, block: int = DRIFT_BLOCK) -> float:
    """Colour drift: the mean CIELAB ΔE76 between the block×block means of a and b (partial edge blocks
    count as they are). What a viewer sees as a cast or a wrong patch colour, blind to texture."""
    ma = F.avg_pool2d(a.double().reshape(-1, 3, *a.shape[-2:]), block, ceil_mode=True)
    mb = F.avg_pool2d(b.double().reshape(-1, 3, *b.shape[-2:]), block, ceil_mode=True)
    return float((rgb_to_lab(ma) - rgb_to_lab(mb)).norm(dim=-3).mean())
