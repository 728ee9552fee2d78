"""Lite's own low band against AV1 intra and WebP (VP8) thumbnails, through the same receiver.

For each image and budget, gsc's rate control picks the thumbnail's scale f and steps. The references:

- WebP and AV1 **at lite's f and bytes**: the thumbnail at that f, at the highest quality that fits the band
  section's bytes. WebP's file less the container's fixed bytes (RIFF header, VP8 chunk header, frame tag,
  start code and size: ``CONTAINER`` bytes); AV1's bare stream (``gsc.eval.av1``: the frame OBU's payload
  and a 6-byte header; the receiver rebuilds the sequence header and the container).
- AV1 **at its own f**: the best scale (1 … 54, full size included) × quality whose bare stream fits the
  bytes the stream leaves the latent section (the budget less header and caption), by bicubic PSNR.
- **WebP's best**: the best downscale × quality on a coarse grid at those bytes, bicubic.

Every thumbnail then goes through the receiver's low band: bicubic, and g_s (with the caption, told the
stream's steps and f; an AV1 thumbnail at its own f is told that f, clamped into the format's range
4 … 54 that g_s was trained on). No texture: this compares low bands. Without ``--captions`` the
images are coded with no caption (BSDS500 has none).

    python benchmarks/lite_reference.py ../shared/data/kodak/kodim0[1-8].png \
        --captions ../shared/data/kodak/captions.json --out benchmarks/results/low_band_kodak8.json

Results: a JSON of per-image records and a markdown table on stdout (docs/low-band.md; the earlier
``lite_reference_kodak.json``, without the AV1 columns, prints the columns it has).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

CONTAINER = 27          # RIFF (12) + VP8 chunk header (8) + frame tag (3) + start code (3) + ... ≈ 27 B
METRICS = ["psnr", "ms_ssim", "psnr_chroma", "colour_drift"]
AV1_SPEED = 6           # docs/low-band.md: the whole search stays under 4 s on 2 cores for 768×512
# AV1's own scales: 2^(k/2), 1 … 45 (coarse), then a quarter octave either side of the best; bicubic PSNR picks
AV1_SCALES = tuple(round(2 ** (k / 2), 4) for k in range(12))
REFINE = 2 ** 0.25
WEBP_GRID = (64.0, 4)   # WebP's best: sizes 1/64 … 1, 4 per octave (gsc.eval.classical.SearchGrid)


def coded_thumbnail(codec, x: torch.Tensor, geometry, budget: int, overhead: int = 0):
    """The thumbnail at ``geometry``'s luma size coded by ``codec`` (a ``gsc.eval.classical.ClassicalCodec``)
    at the highest quality whose bytes less ``overhead`` fit ``budget``: the decoded RGB (1, 3, h, w) in
    [0, 1], the bytes counted and the quality; None if none fits."""
    from gsc.eval.classical import best_quality_that_fits
    from gsc.image import to_uint8
    from gsc.models.thumbnail import downscale

    small = np.ascontiguousarray(to_uint8(downscale(x[None], geometry.luma)[0].clamp(0, 1)))
    found = best_quality_that_fits(codec, small, budget + overhead)
    if found is None:
        return None
    q, data = found
    return torch.from_numpy(codec.decode(data)).permute(2, 0, 1)[None].float() / 255, len(data) - overhead, q


def thumbnail_planes(rgb: torch.Tensor, geometry) -> list[torch.Tensor]:
    """A decoded RGB thumbnail → the receiver's [Y, Cb, Cr] planes (Y centred, chroma at 4:2:0)."""
    from gsc.color import rgb_to_ycbcr
    from gsc.models.thumbnail import downscale

    ycc = rgb_to_ycbcr(rgb.double()) * 255
    c = downscale(ycc[:, 1:], geometry.chroma)
    return [(ycc[:, 0] - 128).float(), c[:, 0].float(), c[:, 1].float()]


def low_bands(gen, planes, size, settings, text) -> dict[str, torch.Tensor]:
    """The receiver's low band of thumbnail planes: bicubic, and g_s told ``settings`` = (steps, scale)."""
    from gsc.models import thumbnail as T

    steps, scale = settings
    with torch.no_grad():
        return {"bicubic": T.from_planes([p.double() for p in planes], size)[0].clamp(0, 1).float(),
                "g_s": gen.g_s(planes, size, steps, scale, text)[0].clamp(0, 1)}


def bicubic_psnr(rgb: torch.Tensor, geometry, x: torch.Tensor) -> float:
    from gsc.eval.metrics import psnr, to_8bit
    from gsc.models import thumbnail as T

    return psnr(to_8bit(T.from_planes(thumbnail_planes(rgb, geometry), tuple(x.shape[-2:]))[0].clamp(0, 1)), x)


def av1_best(x: torch.Tensor, budget: int, codec) -> dict | None:
    """AV1's own best scale × quality within ``budget`` bytes, by bicubic PSNR: the coarse scales from the
    smallest thumbnail up (stopping once one does not fit: larger ones cost more), then a quarter octave
    either side of the best. Returns the geometry, decoded RGB, bytes, quality, scale and every scale's PSNR."""
    from gsc.format.tables import ThumbnailGeometry

    h, w = x.shape[-2:]
    tried: dict[float, tuple | None] = {}

    def at(f: float):
        if f not in tried and f >= 1:
            g = ThumbnailGeometry(w, h, f)
            found = coded_thumbnail(codec, x, g, budget)
            tried[f] = None if found is None else (bicubic_psnr(found[0], g, x), g, *found)
        return tried.get(f)

    for f in reversed(AV1_SCALES):
        if at(f) is None and any(tried.values()):
            break
    fits = {f: t for f, t in tried.items() if t is not None}
    if not fits:
        return None
    best = max(fits, key=lambda f: fits[f][0])
    for f in (round(best / REFINE, 4), round(best * REFINE, 4)):
        at(f)
    fits = {f: t for f, t in tried.items() if t is not None}
    best = max(fits, key=lambda f: fits[f][0])
    _, g, rgb, nbytes, q = fits[best]
    return {"geometry": g, "rgb": rgb, "bytes": nbytes, "quality": q, "scale": best,
            "psnr_by_scale": {str(f): (t[0] if t else None) for f, t in sorted(tried.items())}}


def webp_best(x: torch.Tensor, budget: int):
    """WebP's best downscale × quality (bicubic PSNR) whose file less ``CONTAINER`` fits ``budget``: the
    full-size reconstruction (1, 3, H, W) and the bytes counted, or None."""
    from gsc.eval.classical import SearchGrid, as_tensor, get_codec, search
    from gsc.image import to_uint8

    found = search(get_codec("webp"), np.ascontiguousarray(to_uint8(x)), budget + CONTAINER, SearchGrid(*WEBP_GRID))
    return None if found is None else (as_tensor(found.recon)[None].float(), found.nbytes - CONTAINER)


def clamp_scale(f: float) -> float:
    """g_s was trained on the format's scales: an AV1 thumbnail's f is clamped into their range."""
    from gsc.format.tables import SCALES

    return min(max(f, SCALES[0]), SCALES[-1])


def measure(path: Path, caption: str, budgets: list[float], codec, gen, av1) -> dict:
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
        spare = int(b * h * w / 8) - (p.sizes["total"] - p.sizes["latent"])     # the section's budget
        rec = {"latent_bytes": p.sizes["latent"], "latent_budget": spare, "scale": p.latent.scale}
        settings = p.latent.settings()
        bands = {"bands": low_bands(gen, p.latent.planes(h, w), (h, w), settings, text)}
        webp = coded_thumbnail(webp_codec(), x, geometry, p.sizes["latent"], CONTAINER)
        same = coded_thumbnail(av1, x, geometry, p.sizes["latent"])
        own = av1_best(x, spare, av1)
        for who, found, g, f in (("webp", webp, geometry, None), ("av1", same, geometry, None),
                                 ("av1_own", own and (own["rgb"], own["bytes"]), own and own["geometry"],
                                  own and own["scale"])):
            rec[f"{who}_bytes"] = found[1] if found else None
            if found:
                told = settings if f is None else (settings[0], torch.tensor([clamp_scale(f)]))
                bands[who] = low_bands(gen, thumbnail_planes(found[0], g), (h, w), told, text)
        if own:
            rec["av1_own_scale"], rec["av1_own_psnr_by_scale"] = own["scale"], own["psnr_by_scale"]
        for who, ys in bands.items():
            for how, y in ys.items():
                rec[f"{who}_{how}"] = ref.score(to_8bit(y), METRICS)
        best = webp_best(x, spare)
        rec["webp_best_bytes"] = best[1] if best else None
        if best:
            rec["webp_best_bicubic"] = ref.score(best[0][0], METRICS)
        out[str(b)] = rec
    return out


def webp_codec():
    from gsc.eval.classical import get_codec

    return get_codec("webp")


COLUMNS = (("bands_bicubic", "bands, bicubic"), ("bands_g_s", "bands, g_s"),
           ("av1_bicubic", "AV1 at lite's f and bytes, bicubic"), ("av1_g_s", "AV1 at lite's f and bytes, g_s"),
           ("av1_own_bicubic", "AV1 own f, bicubic"), ("av1_own_g_s", "AV1 own f, g_s"),
           ("webp_bicubic", "WebP at lite's f and bytes, bicubic"), ("webp_g_s", "WebP at lite's f and bytes, g_s"),
           ("webp_best_bicubic", "WebP's best, bicubic"))


SIZES = ("latent_bytes", "scale", "latent_budget", "av1_own_bytes", "av1_own_scale", "webp_best_bytes")


def table(records: dict, budgets: list[float]) -> str:
    """Means over the images where every column has a value (the images row says how many)."""
    columns = [(k, label) for k, label in COLUMNS if any(k in rs.get(str(b), {}) for rs in records.values()
                                                           for b in budgets)]
    rows = ["| bpp | metric | " + " | ".join(label for _, label in columns) + " |",
            "|---|---|" + "---|" * len(columns)]
    for b in budgets:
        recs = [r[str(b)] for r in records.values() if all(r.get(str(b), {}).get(k) for k, _ in columns)]
        for m in METRICS:
            vals = [np.mean([r[k][m] for r in recs]) if recs else float("nan") for k, _ in columns]
            rows.append(f"| {b} | {m} | " + " | ".join(f"{v:.4f}" if m == "ms_ssim" else f"{v:.2f}" for v in vals)
                        + " |")
        mean = {k: np.mean([r[k] for r in recs]) if recs and k in recs[0] else float("nan") for k in SIZES}
        rows.append(f"| {b} | bytes, f | {len(recs)} images; lite {mean['latent_bytes']:.0f} B at f "
                    f"{mean['scale']:.1f}; AV1 own {mean['av1_own_bytes']:.0f} B (of {mean['latent_budget']:.0f}) "
                    f"at f {mean['av1_own_scale']:.1f}; WebP best {mean['webp_best_bytes']:.0f} B |"
                    + " |" * (len(columns) - 1))
    return "\n".join(rows)


def arguments(doc: str) -> argparse.ArgumentParser:
    """The options the low-band benchmarks share: images, budgets, and the records file they resume from."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--budgets", default="0.005,0.01,0.02")
    ap.add_argument("--out", type=Path, required=True)
    return ap


def save(records: dict, out: Path) -> None:
    """Write the records whole or not at all, so an interrupted run resumes from the last image."""
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(out)


def main() -> None:
    from tqdm import tqdm

    from gsc.caption.captioners import load_captions
    from gsc.codec import Codec
    from gsc.eval import av1
    from gsc.generate.lite import LiteGenerator

    ap = arguments(__doc__)
    ap.add_argument("--captions", help="captions.json (default: no captions)")
    ap.add_argument("--av1-speed", type=int, default=AV1_SPEED)
    a = ap.parse_args()
    budgets = [float(b) for b in a.budgets.split(",")]
    captions = load_captions(a.captions) if a.captions else {}
    codec, gen, coder = Codec(), LiteGenerator(), av1.codec(a.av1_speed)
    records = json.loads(a.out.read_text()) if a.out.exists() else {}
    for path in tqdm(sorted(a.images), desc="images"):
        if path.name not in records:
            records[path.name] = measure(path, captions.get(path.name, ""), budgets, codec, gen, coder)
            save(records, a.out)
    print(table(records, budgets))


if __name__ == "__main__":
    main()
