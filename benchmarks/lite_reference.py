"""Lite's own low band against a WebP (VP8) thumbnail at the same bytes, through the same receiver.

For each image and budget, gsc's rate control picks the thumbnail's scale f and steps; the reference codes
the thumbnail at that f with WebP, at the highest quality whose file, less the container's fixed bytes
(RIFF header, VP8 chunk header, frame tag, start code and size: ``CONTAINER`` bytes), fits the band section's
bytes. Both thumbnails then go through the receiver's low band: bicubic, and g_s (with the caption, at the
stream's f and steps). No texture: this compares low bands: is g_s worth its bytes over
sending a WebP thumbnail?

    python benchmarks/lite_reference.py ../shared/data/kodak/*.png --captions ../shared/data/kodak/captions.json \
        --out benchmarks/results/lite_reference_kodak.json

Results: a JSON of per-image records and a markdown table on stdout (docs/lite-kodak.md, "Reference").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

CONTAINER = 27          # RIFF (12) + VP8 chunk header (8) + frame tag (3) + start code (3) + ... ≈ 27 B, per the issue
METRICS = ["psnr", "ms_ssim", "psnr_chroma", "colour_drift"]


def webp_thumbnail(x: torch.Tensor, geometry, budget: int):
    """The WebP-coded RGB thumbnail at the luma size, (1, 3, h, w) in [0, 1], and its bytes; None if none fits."""
    from gsc.eval.classical import best_quality_that_fits, get_codec
    from gsc.image import to_uint8
    from gsc.models.thumbnail import downscale

    webp = get_codec("webp")
    small = np.ascontiguousarray(to_uint8(downscale(x[None], geometry.luma)[0].clamp(0, 1)))
    found = best_quality_that_fits(webp, small, budget + CONTAINER)
    if found is None:
        return None
    q, data = found
    return torch.from_numpy(webp.decode(data)).permute(2, 0, 1)[None].float() / 255, len(data)


def thumbnail_planes(rgb: torch.Tensor, geometry) -> list[torch.Tensor]:
    """A decoded RGB thumbnail → the receiver's [Y, Cb, Cr] planes (Y centred, chroma at 4:2:0)."""
    from gsc.color import rgb_to_ycbcr
    from gsc.models.thumbnail import downscale

    ycc = rgb_to_ycbcr(rgb.double()) * 255
    c = downscale(ycc[:, 1:], geometry.chroma)
    return [(ycc[:, 0] - 128).float(), c[:, 0].float(), c[:, 1].float()]


def low_bands(gen, planes, size, latent, text) -> dict[str, torch.Tensor]:
    from gsc.models import thumbnail as T

    steps, scale = latent.settings()
    with torch.no_grad():
        return {"bicubic": T.from_planes([p.double() for p in planes], size)[0].clamp(0, 1).float(),
                "g_s": gen.g_s(planes, size, steps, scale, text)[0].clamp(0, 1)}


def measure(path: Path, caption: str, budgets: list[float], codec, gen) -> dict:
    from gsc.caption.embedding import embed_captions
    from gsc.eval.metrics import Reference, to_8bit
    from gsc.image import load_image
    from gsc.format.tables import ThumbnailGeometry

    x = load_image(path)
    h, w = x.shape[-2:]
    ref, text, out = Reference(x), embed_captions([caption]), {}
    for b in budgets:
        p = codec.read(codec.encode(x, caption=caption, max_bpp=b))
        geometry = ThumbnailGeometry(w, h, p.latent.scale)
        rec = {"latent_bytes": p.sizes["latent"], "scale": p.latent.scale}
        ours = low_bands(gen, p.latent.planes(h, w), (h, w), p.latent, text)
        found = webp_thumbnail(x, geometry, p.sizes["latent"])
        theirs = low_bands(gen, thumbnail_planes(found[0], geometry), (h, w), p.latent, text) if found else {}
        rec["webp_bytes"] = found[1] - CONTAINER if found else None
        for who, bands in (("bands", ours), ("webp", theirs)):
            for how, y in bands.items():
                rec[f"{who}_{how}"] = ref.score(to_8bit(y), METRICS)
        out[str(b)] = rec
    return out


def table(records: dict, budgets: list[float]) -> str:
    rows = ["| bpp | metric | bands, bicubic | bands, g_s | WebP thumbnail, bicubic | WebP thumbnail, g_s |",
            "|---|---|---|---|---|---|"]
    for b in budgets:
        recs = [r[str(b)] for r in records.values() if str(b) in r and r[str(b)].get("webp_g_s")]
        for m in METRICS:
            vals = [np.mean([r[k][m] for r in recs]) for k in ("bands_bicubic", "bands_g_s", "webp_bicubic", "webp_g_s")]
            rows.append(f"| {b} | {m} | " + " | ".join(f"{v:.4f}" if m == "ms_ssim" else f"{v:.2f}" for v in vals)
                        + f" |")
        rows.append(f"| {b} | images | {len(recs)} | | | |")
    return "\n".join(rows)


def main() -> None:
    from tqdm import tqdm

    from gsc.caption.captioners import load_captions
    from gsc.codec import Codec
    from gsc.generate.lite import LiteGenerator

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--captions", required=True)
    ap.add_argument("--budgets", default="0.005,0.01,0.02")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    budgets = [float(b) for b in a.budgets.split(",")]
    captions, codec, gen = load_captions(a.captions), Codec(), LiteGenerator()
    records = json.loads(a.out.read_text()) if a.out.exists() else {}
    for path in tqdm(sorted(a.images), desc="images"):
        if path.name not in records:
            records[path.name] = measure(path, captions[path.name], budgets, codec, gen)
            tmp = a.out.with_suffix(".tmp")
            tmp.write_text(json.dumps(records, indent=1))
            tmp.replace(a.out)
    print(table(records, budgets))


if __name__ == "__main__":
    main()
