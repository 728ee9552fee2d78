"""AV1 layers as residual intra frames against AV1 one-shot, bicubic PSNR (docs/low-band.md, "Measured: AV1
layers through the bindings we have").

imagecodecs (libavif) encodes still frames only, so a later layer is an intra frame of the residual: the
thumbnail at its scale minus the previous layer's reconstruction upsampled, offset by 128. Layer 1 is AV1's
own best scale × quality at the first budget (``lite_reference.av1_best``); each later layer the best scale
(no coarser than the previous) × quality whose frame fits what the prefix's budget leaves::

    python benchmarks/av1_layers.py ../shared/data/kodak/kodim0[1-4].png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))

from lite_reference import av1_best, bicubic_psnr  # noqa: E402

HEADER, RECORD = 8, 4          # a v4 header; a later layer's record
SCALES = sorted({round(2 ** (k / 4), 4) for k in range(24)}, reverse=True)


def residual_layer(coder, x: torch.Tensor, prev: torch.Tensor, budget: int):
    """(PSNR, scale, reconstruction, bytes) of the best residual frame within ``budget`` bytes, or None."""
    from gsc.eval.classical import best_quality_that_fits
    from gsc.format.tables import ThumbnailGeometry
    from gsc.models.thumbnail import downscale

    h, w = x.shape[-2:]
    best = None
    for f in SCALES:
        g = ThumbnailGeometry(w, h, f)
        if g.luma[0] * g.luma[1] < prev.shape[-1] * prev.shape[-2]:
            continue
        pred = torch.round(F.interpolate(prev, size=g.luma, mode="bicubic", align_corners=False).clamp(0, 1) * 255)
        target = torch.round(downscale(x[None], g.luma).clamp(0, 1) * 255)
        residual = (target - pred + 128).clamp(0, 255)[0].permute(1, 2, 0).numpy().astype(np.uint8)
        found = best_quality_that_fits(coder, np.ascontiguousarray(residual), budget)
        if found is None:
            if best is not None:
                break
            continue
        decoded = torch.from_numpy(coder.decode(found[1])).permute(2, 0, 1)[None].float()
        rec = (pred + decoded - 128).clamp(0, 255) / 255
        p = bicubic_psnr(rec, g, x)
        if best is None or p > best[0]:
            best = (p, f, rec, len(found[1]))
    return best


def measure(coder, x: torch.Tensor, bpps: list[float]) -> dict:
    h, w = x.shape[-2:]
    budgets = [int(b * h * w / 8) for b in bpps]
    rec = {}
    for b, budget in zip(bpps, budgets):
        o = av1_best(x, budget - HEADER, coder)
        rec[f"one_shot_{b}"] = bicubic_psnr(o["rgb"], o["geometry"], x)
    first = av1_best(x, budgets[0] - HEADER, coder)
    used, prev = HEADER + first["bytes"], first["rgb"]
    rec[f"layers_{bpps[0]}"] = rec[f"one_shot_{bpps[0]}"]
    for b, budget in zip(bpps[1:], budgets[1:]):
        r = residual_layer(coder, x, prev, budget - used - RECORD)
        if r is None:
            break
        used, prev = used + RECORD + r[3], r[2]
        rec[f"layers_{b}"] = r[0]
    return rec


def main() -> None:
    from gsc.eval import av1
    from gsc.image import load_image

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--budgets", default="0.005,0.01,0.02")
    a = ap.parse_args()
    bpps = [float(b) for b in a.budgets.split(",")]
    coder = av1.codec(6)
    records = {p.name: measure(coder, load_image(p), bpps) for p in a.images}
    for b in bpps:
        d = [r[f"layers_{b}"] - r[f"one_shot_{b}"] for r in records.values() if f"layers_{b}" in r]
        print(f"{b} bpp: layers − one-shot {np.mean(d):+.2f} dB ({min(d):+.2f} … {max(d):+.2f}), {len(d)} images")


if __name__ == "__main__":
    main()
