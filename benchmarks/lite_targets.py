"""Issue 16's targets: lite against WebP's best setting per metric at ≤ the same bytes, per image and budget.

    python benchmarks/lite_targets.py run ../shared/data/kodak/*.png --captions ../shared/data/kodak/captions.json \\
        --out benchmarks/results/lite_targets_kodak.json [--shard 0/2] [--recon DIR]
    python benchmarks/lite_targets.py report benchmarks/results/lite_targets_kodak.json [more shards …]
    python benchmarks/lite_targets.py cli ../shared/data/kodak/kodim0{1,5}.png --captions ../shared/data/kodak/captions.json

``run`` encodes each image with ``--max-bpp B`` and its caption, decodes it, and scores it; WebP's
downscale × quality candidates at ≤ the stream's bytes are scored too, and the best one per metric is kept
(exhaustively for the cheap metrics, by ``gsc.eval.classical.pick``'s walk for ST-LPIPS and FLIP). Records
are written after every (image, budget), so a run resumes; ``--shard i/n`` splits the images between
processes. ``report`` prints the markdown tables of docs/lite-kodak.md; ``cli`` times the command line
(fresh processes, model loading included) and checks that decoding twice gives the same PNG bytes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

BUDGETS = (0.005, 0.0075, 0.01, 0.015, 0.02)
NAMES = ["psnr", "ms_ssim", "psnr_chroma", "colour_drift", "st_lpips_alex", "flip", "haarpsi", "ms_gmsd"]
CHEAP = ["psnr", "ms_ssim", "psnr_chroma", "colour_drift"]
WEBP_PICKS = CHEAP + ["st_lpips_alex", "flip"]
INFO = ("scale", "step", "texture", "channels", "caption_bytes", "latent_bytes")


def webp_best(x: torch.Tensor, ref, budget: int, save: Path | None = None) -> dict:
    """WebP's best candidate at ≤ ``budget`` bytes, per metric: value, bytes, size, quality."""
    from PIL import Image

    from gsc.eval.classical import as_tensor, candidates, get_codec, pick
    from gsc.image import to_uint8

    cands = candidates(get_codec("webp"), to_uint8(x), budget)
    scores = [ref.score(as_tensor(c.recon), CHEAP) for c in cands]
    best = {}
    for m in WEBP_PICKS:
        if not cands:
            best[m] = None
            continue

        def value(i, m=m):
            if m not in scores[i]:
                scores[i].update(ref.score(as_tensor(cands[i].recon), [m]))
            return scores[i][m]

        j = pick(cands, m, value, exhaustive=m in CHEAP)
        best[m] = {"value": value(j), "bytes": cands[j].nbytes, "size": cands[j].size, "quality": cands[j].quality}
        if m == "psnr" and save:
            Image.fromarray(cands[j].recon).save(save)
    return best


def measure(codec, x: torch.Tensor, caption: str, budget: float, recon: Path | None) -> dict:
    from PIL import Image

    from gsc.eval.metrics import Reference, to_8bit
    from gsc.image import to_uint8

    h, w = x.shape[-2:]
    t0 = time.time()
    data = codec.encode(x, caption=caption, max_bpp=budget)
    t1 = time.time()
    y = codec.decode(data)
    t2 = time.time()
    if recon:
        Image.fromarray(to_uint8(y)).save(f"{recon}_{budget}.png")
    ref, info = Reference(x), codec.info(data)
    return {"bytes": len(data), "bpp": len(data) * 8 / (h * w), "encode_s": t1 - t0, "decode_s": t2 - t1,
            "info": {k: info.get(k) for k in INFO}, "gsc": ref.score(to_8bit(y), NAMES),
            "webp_best": webp_best(x, ref, len(data), Path(f"{recon}_{budget}_webp.png") if recon else None)}


def run(a) -> None:
    from gsc.caption.captioners import load_captions
    from gsc.codec import Codec
    from gsc.image import load_image

    i, n = map(int, a.shard.split("/"))
    captions, codec = load_captions(a.captions), Codec()
    out = json.loads(a.out.read_text()) if a.out.exists() else {}
    for path in sorted(a.images)[i::n]:
        x = load_image(path)
        for b in a.budgets:
            tag = f"{path.name}@{b}"
            if tag not in out:
                recon = a.recon / path.stem if a.recon else None
                out[tag] = measure(codec, x, captions[a.keyfmt.format(name=path.name)], b, recon)
                a.out.with_suffix(".tmp").write_text(json.dumps(out, indent=1))
                a.out.with_suffix(".tmp").replace(a.out)
                print(tag, {k: round(v, 3) for k, v in out[tag]["gsc"].items() if v is not None}, flush=True)


def mean(v):
    return sum(v) / len(v)


def report(records: dict) -> str:
    """The targets table: per budget, gsc's mean against WebP's best per metric, and the wins."""
    from gsc.eval.metrics import METRICS

    budgets = sorted({float(t.split("@")[1]) for t in records})
    rows = ["| bpp | images | gsc bpp | PSNR dB gsc / WebP | MS-SSIM gsc / WebP | chroma PSNR gsc / WebP | "
            "colour drift ΔE ↓ gsc / WebP | FLIP ↓ gsc / WebP | ST-LPIPS ↓ gsc / WebP (wins) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for b in budgets:
        recs = [r for t, r in records.items() if float(t.split("@")[1]) == b and r["webp_best"]["psnr"]]
        cells = []
        for m, fmt in (("psnr", ".2f"), ("ms_ssim", ".4f"), ("psnr_chroma", ".2f"), ("colour_drift", ".2f"),
                       ("flip", ".4f"), ("st_lpips_alex", ".4f")):
            g, w = mean([r["gsc"][m] for r in recs]), mean([r["webp_best"][m]["value"] for r in recs])
            wins = sum((r["gsc"][m] > r["webp_best"][m]["value"]) == METRICS[m].higher_is_better for r in recs)
            cells.append(f"{g:{fmt}} / {w:{fmt}}" + (f" ({wins}/{len(recs)})" if m == "st_lpips_alex" else ""))
        rows.append(f"| {b} | {len(recs)} | {mean([r['bpp'] for r in recs]):.4f} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def targets(records: dict) -> str:
    """Issue 16's targets, ✓ or ✗ per budget, with the margin."""
    from gsc.eval.metrics import METRICS

    budgets = sorted({float(t.split("@")[1]) for t in records})
    rows = ["| bpp | PSNR ≥ WebP − 0.5 | MS-SSIM ≥ WebP | chroma ≥ WebP − 1 | drift ≤ WebP | FLIP ≤ WebP | "
            "ST-LPIPS wins ≥ 20/24 | PSNR +≥ 0.3 dB over the previous budget |", "|---|---|---|---|---|---|---|---|"]
    previous = None
    for b in budgets:
        recs = [r for t, r in records.items() if float(t.split("@")[1]) == b and r["webp_best"]["psnr"]]

        def gap(m):
            return mean([r["gsc"][m] for r in recs]) - mean([r["webp_best"][m]["value"] for r in recs])

        def mark(ok, text):
            return ("✓ " if ok else "✗ ") + text

        wins = sum(r["gsc"]["st_lpips_alex"] < r["webp_best"]["st_lpips_alex"]["value"] for r in recs)
        psnr = mean([r["gsc"]["psnr"] for r in recs])
        cells = [mark(gap("psnr") >= -0.5, f"{gap('psnr'):+.2f}"), mark(gap("ms_ssim") >= 0, f"{gap('ms_ssim'):+.4f}"),
                 mark(gap("psnr_chroma") >= -1, f"{gap('psnr_chroma'):+.2f}"),
                 mark(gap("colour_drift") <= 0, f"{gap('colour_drift'):+.2f}"), mark(gap("flip") <= 0, f"{gap('flip'):+.4f}"),
                 mark(wins >= len(recs) * 20 / 24, f"{wins}/{len(recs)}"),
                 "–" if previous is None else mark(psnr - previous >= 0.3, f"{psnr - previous:+.2f}")]
        previous = psnr
        rows.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def cli(a) -> None:
    """``gsc encode`` and twice ``gsc decode`` in fresh processes: wall seconds, peak RSS, same PNG bytes."""
    import hashlib
    import resource
    import subprocess
    import sys
    import tempfile

    print("| image | encode s | decode s | peak RSS MB | same PNG twice |\n|---|---|---|---|---|")
    for path in a.images:
        with tempfile.TemporaryDirectory() as tmp:
            stream, times, hashes = Path(tmp) / "s.gsc", [], []
            for args in (["encode", str(path), "-o", str(stream), "--max-bpp", str(a.bpp), "--captions", a.captions],
                         ["decode", str(stream), "-o", f"{tmp}/a.png", "-q"], ["decode", str(stream), "-o", f"{tmp}/b.png", "-q"]):
                t0 = time.time()
                subprocess.run([sys.executable, "-m", "gsc", *args], check=True, capture_output=True)
                times.append(time.time() - t0)
            hashes = [hashlib.sha256(Path(f"{tmp}/{n}.png").read_bytes()).hexdigest() for n in "ab"]
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"| {path.name} | {times[0]:.2f} | {min(times[1:]):.2f} | {rss:.0f} | {hashes[0] == hashes[1]} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("images", nargs="+", type=Path)
    r.add_argument("--captions", required=True)
    r.add_argument("--keyfmt", default="{name}", help="caption key from the file name, e.g. test/{name}")
    r.add_argument("--budgets", type=lambda s: [float(v) for v in s.split(",")], default=list(BUDGETS))
    r.add_argument("--shard", default="0/1")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--recon", type=Path, default=None)
    p = sub.add_parser("report")
    p.add_argument("records", nargs="+", type=Path)
    c = sub.add_parser("cli")
    c.add_argument("images", nargs="+", type=Path)
    c.add_argument("--captions", required=True)
    c.add_argument("--bpp", type=float, default=0.01)
    a = ap.parse_args()
    if a.cmd == "run":
        return run(a)
    if a.cmd == "cli":
        return cli(a)
    records = {}
    for f in a.records:
        records.update(json.loads(f.read_text()))
    print(report(records) + "\n\n" + targets(records))


if __name__ == "__main__":
    main()
