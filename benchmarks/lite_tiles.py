"""What tiles cost and whether their seams show: lite at 0.01 bpp on ~2 Mpx images, tiled (v4) and not (v3).

Kodak images upscaled 2.25× (bicubic) to 1728×1152 (1.99 Mpx, two tiles): measuring only, nothing is
fitted on them. For each: the stream's bytes and the decode's PSNR against the upscaled image, tiled and
untiled; for the first image, each decode's time and peak RSS (alone in a fresh process, 2 threads); the
largest change beyond 64 px of a tile whose layer 1 is damaged (it must be 0); the detail across the seam
(mean |Laplacian| of luma per 32-px column band, seam ± 192 px: blending two tiles' independent textures
could thin the grain there); and PNG crops across the seam (tiled | untiled | damaged), to look at.

    PYTHONPATH=src python benchmarks/lite_tiles.py [--images kodim01 kodim05 kodim23] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gsc.codec import Codec
from gsc.format import layered, tiles

KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"
SIZE = (1728, 1152)
BPP = 0.01
REACH = 64


def upscaled(name: str) -> torch.Tensor:
    img = Image.open(KODAK / f"{name}.png").convert("RGB")
    if img.height > img.width:
        img = img.transpose(Image.Transpose.ROTATE_90)
    img = img.resize(SIZE, Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(img).astype(np.float32) / 255).permute(2, 0, 1).contiguous()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    a8 = (a.clamp(0, 1) * 255).round()
    b8 = (b.clamp(0, 1) * 255).round()
    return float(10 * torch.log10(255 ** 2 / ((a8 - b8) ** 2).mean()))


def decode_in_fresh_process(data: bytes, path: Path) -> dict:
    """Time and peak RSS of one decode, alone in a new process."""
    path.write_bytes(data)
    code = ("import sys, time, resource, torch; from gsc.codec import Codec; d = open(sys.argv[1], 'rb').read();"
            "c = Codec('lite'); t = time.perf_counter(); c.decode(d); s = time.perf_counter() - t;"
            "print(s, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    path.unlink()
    seconds, rss_kb = out.stdout.split()
    return {"decode_s": round(float(seconds), 1), "peak_rss_mb": round(int(rss_kb) / 1024)}


def crop(y: torch.Tensor, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
    return (y[:, y0:y1, x0:x1].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def detail(y: torch.Tensor, seam: int) -> list[float]:
    """Mean |Laplacian| of luma (8-bit levels) per 32-px column band from seam − 192 to seam + 192."""
    g = (0.299 * y[0] + 0.587 * y[1] + 0.114 * y[2])[:, seam - 193:seam + 193] * 255
    lap = (4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]).abs().mean(0)
    return [round(float(lap[a:a + 32].mean()), 2) for a in range(0, 384, 32)]


def run(name: str, codec: Codec, out: Path, timing: bool) -> dict:
    x = upscaled(name)
    pixels = SIZE[0] * SIZE[1]
    t = time.perf_counter()
    tiled = codec.encode(x, max_bpp=BPP)
    encode_s = time.perf_counter() - t
    whole = codec.encode(x, max_bpp=BPP, version=3)
    path = out / f"tiles_{name}.gsc"
    cost = {}
    if timing:
        cost = {"tiled_decode": decode_in_fresh_process(tiled, path),
                "untiled_decode": decode_in_fresh_process(whole, path)}
    y_tiled, y_whole = codec.decode(tiled), codec.decode(whole)
    s = layered.read(tiled)
    start, end, _ = s.report.tiles[0][0]
    m = bytearray(tiled)
    m[(start + end) // 2] ^= 0x10
    y_damaged, report = codec.decode_report(bytes(m))
    grid = tiles.grid(*SIZE)
    x0, y0, x1, y1 = grid[0].box
    far = torch.ones(SIZE[1], SIZE[0], dtype=torch.bool)
    far[max(0, y0 - REACH):y1 + REACH, max(0, x0 - REACH):x1 + REACH] = False
    beyond = float((y_damaged - y_tiled).abs().amax(0)[far].max())
    seam = grid[0].box[2]
    rows = (SIZE[1] // 2 - 192, SIZE[1] // 2 + 192)
    strip = [crop(y, seam - 192, seam + 192, *rows) for y in (y_tiled, y_whole, y_damaged)]
    gap = np.full((rows[1] - rows[0], 8, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([strip[0], gap, strip[1], gap, strip[2]], 1)).save(out / f"tiles_seam_{name}.png")
    sender = codec.summary(tiled)
    return {"image": name, "size": list(SIZE), "tiles": len(grid), "tiled_bytes": len(tiled),
            "untiled_bytes": len(whole), "tiled_bpp": round(len(tiled) * 8 / pixels, 5),
            "untiled_bpp": round(len(whole) * 8 / pixels, 5), "tiled_psnr": round(psnr(y_tiled, x), 2),
            "untiled_psnr": round(psnr(y_whole, x), 2), "scale": sender["scale"], "step": sender["step"],
            "untiled_scale": codec.summary(whole)["scale"], "untiled_step": codec.summary(whole)["step"],
            "texture": sender["texture"], "encode_s": round(encode_s, 1), **cost,
            "damaged_tile_1": report.line(), "max_change_beyond_64px": beyond,
            "seam_detail_tiled": detail(y_tiled, seam), "seam_detail_untiled": detail(y_whole, seam)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", nargs="+", default=["kodim01", "kodim05", "kodim23"])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    codec = Codec("lite")
    rows = []
    for k, name in enumerate(args.images):
        rows.append(run(name, codec, args.out, timing=k == 0))
        print(json.dumps(rows[-1]), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    (args.out / "lite_tiles.json").write_text(json.dumps({"bpp": BPP, "rows": rows, "bench_peak_rss_mb": peak},
                                                          indent=1) + "\n")


if __name__ == "__main__":
    main()
