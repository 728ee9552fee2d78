"""A gallery for docs/results.md: Kodak images side by side at a few budgets, gsc against classical codecs.

    python benchmarks/gallery.py [--images kodim03,kodim05,kodim13,kodim23] [--bpp 0.005,0.01]
                                 [--codecs webp,jxl,avif] [--select psnr] [--tile-width 192] [--channels C]

For each budget B, one sheet (``docs/img/gallery_<B>.png``): a row per image with the original, gsc encoded
with ``max_bpp=B`` (and ``--channels`` only when given: a preset whose encoder picks C needs none), and each
classical codec at ≤ gsc's bytes with the setting best on ``--select`` (``gsc compare``'s rows). Where gsc
cannot meet B, its tile says so and the classical codecs get B's budget. The numbers go to a section of
docs/results.md with the sheets.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", type=Path, default=ROOT.parent / "shared/data/kodak")
    ap.add_argument("--images", default="kodim03,kodim05,kodim13,kodim23")
    ap.add_argument("--bpp", default="0.005,0.01")
    ap.add_argument("--codecs", default="webp,jxl,avif")
    ap.add_argument("--select", default="psnr")
    ap.add_argument("--tile-width", type=int, default=192)
    ap.add_argument("--channels", type=int, default=None, help="gsc: C (default: the encoder's choice)")
    ap.add_argument("--preset", default="lite")
    ap.add_argument("--captions", type=Path, default=None, help="default: KODAK/captions.json")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/img")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs/results.md", help="'-' to leave docs alone")
    args = ap.parse_args(argv)

    import torch
    from tqdm import tqdm

    from gsc.caption.captioners import load_captions
    from gsc.codec import Codec
    from gsc.eval.classical import parse_codecs, parse_selects, parse_targets
    from gsc.eval.compare import build_row, render, write_sheet
    from gsc.eval.metrics import METRICS
    from gsc.eval.results import markdown_table, update_section

    torch.set_num_threads(1)
    captions = load_captions(args.captions or args.kodak / "captions.json")
    codec = Codec(preset=args.preset)
    codecs = parse_codecs(args.codecs)
    (select,) = parse_selects(args.select)
    paths = [args.kodak / f"{n.strip()}.png" for n in args.images.split(",") if n.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    sections = []
    budgets = parse_targets(args.bpp)
    for bpp in budgets:
        encode = {"max_bpp": bpp, **({"channels": args.channels} if args.channels is not None else {})}
        rows, table = [], []
        for p in tqdm(paths, desc=f"gallery at {bpp:g} bpp"):
            from PIL import Image

            with Image.open(p) as im:
                budget = math.floor(bpp * im.width * im.height / 8)
            tiles = build_row(p, codec, encode, codecs, select, caption=captions.get(p.name), budget_bytes=budget)
            rows.append(tiles)
            table += [[p.stem, t.label, t.nbytes, t.bpp, t.psnr, t.st_lpips] for t in tiles[1:]]
        sheet = render(rows, tile_width=args.tile_width,
                       title=f"Kodak at <= {bpp:g} bpp: original | gsc {args.preset} | classical codecs at <= gsc's "
                             f"bytes (best {METRICS[select].label})")
        name = f"gallery_{bpp:g}.png"
        write_sheet(sheet, args.out / name)
        print(f"{args.out / name}: {sheet.width}×{sheet.height}, {(args.out / name).stat().st_size} bytes")
        rel = os.path.relpath(args.out / name, args.doc.parent) if str(args.doc) != "-" else args.out / name
        sections.append(f"**≤ {bpp:g} bpp** ![gallery at {bpp:g} bpp]({rel})\n\n" + markdown_table(
            ["image", "tile", "bytes", "bpp", "PSNR (dB)", "ST-LPIPS (alex) ↓"], table))
    command = " ".join(["python", "benchmarks/gallery.py", *(argv if argv is not None else sys.argv[1:])])
    body = f"`{command}`\n\n" + "\n".join(sections)
    if str(args.doc) != "-":
        update_section(args.doc, "gallery", body,
                       title=f"Gallery: Kodak at {' and '.join(f'{b:g}' for b in budgets)} bpp")
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
