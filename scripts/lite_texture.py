"""The texture share (``gsc.models.texture.TEXTURE_SHARE``), chosen on BSDS500 val, never Kodak.

One encode and one generation per (image, budget); the generator's detail is fused at each share and scored
against WebP's setting picked on each metric at ≤ the same bytes (``gsc.eval.codecs.ClassicalBench``, as the
benchmarks pick it). Resumable (records in --out); then the table:

    python scripts/lite_texture.py --offset 40 --n 3 --out runs/lite_texture.json
    python scripts/lite_texture.py --report runs/lite_texture.json
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["psnr", "ms_ssim", "psnr_chroma", "colour_drift", "st_lpips_alex", "flip"]


def webp_best(picture, ref, budget: int, cache) -> dict:
    """Per metric, WebP's setting at ≤ ``budget`` bytes picked on it (the bench's ``ClassicalBench``), scored."""
    from gsc.eval.classical import as_tensor
    from gsc.eval.codecs import ClassicalBench, NoFit

    out = {}
    for n in NAMES:  # one search per image and budget: the picks share it through the cache
        webp = ClassicalBench("webp", n, cache=cache)
        try:
            out[n] = ref.score(as_tensor(webp.decode(webp.encode(picture, budget), picture.size)), [n])[n]
        except NoFit:
            out[n] = None
    return out


def measure(x, picture, caption, budget, shares, codec, gen, sender, cache) -> dict:
    from gsc.caption.embedding import embed_captions
    from gsc.eval.metrics import Reference, to_8bit
    from gsc.generate import GenerationRequest
    from gsc.models.texture import fuse, texture_code
    from gsc.format.tables import TEXTURE_ENERGY

    h, w = x.shape[-2:]
    data = codec.encode(x, caption=caption, max_bpp=budget)
    p = codec.read(data)
    latent, text, ref = p.latent, embed_captions([p.caption]), Reference(x)
    steps, scale = latent.settings()
    planes = latent.planes(h, w)
    with torch.no_grad():
        low = gen.g_s(planes, (h, w), steps, scale, text)
        request = GenerationRequest(p.caption, p.channels, p.indices, 64, h, w, p.seed, p.steps, latent)
        g = gen.texture(planes, steps, scale, text, request)
        sender_low = sender.low_band(latent, h, w)
    rec = {"bytes": len(data), "scale": latent.scale, "shares": {},
           "webp_best": webp_best(picture, ref, len(data), cache)}
    for s in shares:
        code = texture_code(x, sender_low, latent.scale, s) if s > 0 else 0
        y = low if code == 0 else fuse(low, g, TEXTURE_ENERGY[code], latent.scale)
        rec["shares"][str(s)] = {"code": code, **ref.score(to_8bit(y[0]), NAMES)}
    return rec


def report(path: Path) -> None:
    from gsc.eval.metrics import METRICS

    by = collections.defaultdict(list)
    for tag, r in json.loads(path.read_text()).items():
        by[tag.split("@")[1]].append(r)
    for b, rs in sorted(by.items()):
        print(f"budget {b} bpp, {len(rs)} images: gsc − WebP's best per metric (gsc better on)")
        for s in rs[0]["shares"]:
            row = []
            for n in NAMES:
                d = [r["shares"][s][n] - r["webp_best"][n] for r in rs if r["webp_best"][n] is not None]
                wins = sum((v > 0) == METRICS[n].higher_is_better for v in d)
                row.append(f"{n} {sum(d) / len(d):+.3f} ({wins}/{len(d)})")
            print(f"  share {s}: " + " | ".join(row))


def main() -> None:
    from gsc.caption.captioners import load_captions
    from gsc.codec import Codec
    from gsc.eval.codecs import load_picture
    from gsc.eval.results import RecordCache
    from gsc.generate.lite import LiteGenerator
    from gsc.image import load_image
    from gsc.latent.lite import LiteSender

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/bsds500")
    ap.add_argument("--offset", type=int, default=40)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--shares", default="0,0.05,0.1,0.15,0.25,0.5")
    ap.add_argument("--budgets", default="0.005,0.01,0.02")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--report", type=Path)
    a = ap.parse_args()
    if a.report:
        return report(a.report)
    captions = load_captions(ROOT / "data/captions/bsds500.json")
    keys = sorted(k for k in captions if k.startswith("val/"))[a.offset:a.offset + a.n]
    codec, gen = Codec(), LiteGenerator()
    sender, shares = LiteSender(gen.g_s), [float(s) for s in a.shares.split(",")]
    out = json.loads(a.out.read_text()) if a.out.exists() else {}
    cache = RecordCache(a.out.with_suffix(".cache"))  # WebP's searches, beside the records
    for k in keys:
        x, picture = load_image(a.data / k), load_picture(a.data / k)
        for b in (float(b) for b in a.budgets.split(",")):
            if f"{k}@{b}" not in out:
                out[f"{k}@{b}"] = measure(x, picture, captions[k], b, shares, codec, gen, sender, cache)
                a.out.write_text(json.dumps(out, indent=1))
                print(f"{k} at {b}", flush=True)


if __name__ == "__main__":
    main()
