"""How far one coded symbol reaches in the whole-image lite receiver: the case for generating tiles apart.

One quantized coefficient of a Kodak image's 0.01 bpp stream (the luma DC of the block at the image's
centre) is raised by one; each stage of the receiver runs on both latents, and the reach is the farthest
pixel (Chebyshev distance from the block's footprint in the image, px) where the stage's output changed at
all, and by more than 1/255. The stages: the bin-consistent thumbnail (POCS) upscaled; g_s's low band; the
texture (the flow on TAEF2's latent and TAEF2's decoder); the fused image.

    PYTHONPATH=src python benchmarks/lite_receptive_field.py [--image kodim23]
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gsc.bits import ceil_div
from gsc.codec import Codec
from gsc.format.tables import BLOCK
from gsc.generate.base import GenerationRequest
from gsc.generate.lite import LATENT_STRIDE, fixed_threads
from gsc.models.lite import adapter_hint
from gsc.models.texture import fuse
from gsc.models.thumbnail import from_planes

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def stages(gen, latent, h: int, w: int, seed: int) -> dict:
    text = gen.embed([""])
    planes = latent.planes(h, w)
    steps, scale = latent.settings()
    low = gen.g_s(planes, (h, w), steps, scale, text)
    hint = adapter_hint(planes, (ceil_div(h, LATENT_STRIDE), ceil_div(w, LATENT_STRIDE)), steps, scale)
    request = GenerationRequest("", torch.zeros(0, 0, 0), [], 64, h, w, seed, 8, latent)
    texture = gen.sample(text, request, hint)
    return {"thumbnail": from_planes(planes, (h, w))[0], "g_s": low[0], "texture": texture[0],
            "fused": fuse(low, texture, max(latent.texture, 1e-4), latent.scale)[0].clamp(0, 1)}


def reach(diff: torch.Tensor, box: tuple[int, int, int, int], threshold: float) -> int:
    """The farthest pixel (Chebyshev distance from ``box``, px) where |diff| > threshold; -1 if none."""
    ys, xs = torch.nonzero(diff.abs().amax(0) > threshold, as_tuple=True)
    if not len(ys):
        return -1
    y0, x0, y1, x1 = box
    dy = torch.clamp(torch.maximum(y0 - ys, ys - (y1 - 1)), min=0)
    dx = torch.clamp(torch.maximum(x0 - xs, xs - (x1 - 1)), min=0)
    return int(torch.maximum(dy, dx).max())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", default="kodim23")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lite_receptive_field.json")
    args = p.parse_args(argv)
    img = Image.open(KODAK / f"{args.image}.png").convert("RGB")
    x = torch.from_numpy(np.asarray(img).astype(np.float32) / 255).permute(2, 0, 1).contiguous()
    h, w = x.shape[-2:]
    codec = Codec("lite")
    payload = codec.read(codec.encode(x, max_bpp=0.01))
    latent = payload.latent
    hb, wb = latent.q[0].shape[1:]
    bi, bj = hb // 2, wb // 2
    moved = copy.deepcopy(latent)
    moved.q[0][0, bi, bj] += 1
    f = latent.scale
    box = (int(bi * BLOCK * f), int(bj * BLOCK * f), int((bi + 1) * BLOCK * f), int((bj + 1) * BLOCK * f))
    gen = codec.generator(codec.preset)
    with fixed_threads(2), torch.no_grad():
        a, b = stages(gen, latent, h, w, payload.seed), stages(gen, moved, h, w, payload.seed)
    out = {"image": args.image, "size": [w, h], "scale": f, "block_box_px": box,
           "reach_px": {k: {"any": reach(b[k] - a[k], box, 0.0), "over_1_255": reach(b[k] - a[k], box, 1 / 255)}
                        for k in a}}
    print(json.dumps(out, indent=1))
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
