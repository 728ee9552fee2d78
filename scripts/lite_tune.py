"""Choose the lite receiver's texture fusion (α, σ) and sampling steps on BSDS500 test, never on Kodak.

    python scripts/lite_tune.py [--images 16] [--max-bpp 0.01] [--max-drop 0.3] [--write]

For each image: the sender's stream at ``--max-bpp`` (rate control, reference caption), then for each
number of Euler steps the receiver's two layers (g_s's low band m, TAEF2's rendering g) once, and every
fusion m + α·highpass_σ(g − m) of the grid scored by PSNR, ST-LPIPS (alex) and FLIP. The choice: the
lowest mean ST-LPIPS among the settings whose mean PSNR is at most ``--max-drop`` dB below plain g_s
(α = 0). ``--write`` stores α and σ in the adapter's metadata (the receiver's defaults); the steps are
the preset's default in ``gsc/presets.py``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    from tqdm import tqdm

    from gsc.codec import Codec
    from gsc.eval.metrics import flip, psnr, st_lpips
    from gsc.generate import GenerationRequest
    from gsc.generate.lite import fixed_threads, fuse, DECODE_THREADS
    from gsc.image import load_image
    from gsc.nn import read_metadata
    from gsc.train.lite_data import load_caption_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/bsds500/test"))
    ap.add_argument("--captions", default=str(ROOT / "data/captions/bsds500_test.json"))
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--max-bpp", type=float, default=0.01)
    ap.add_argument("--steps", default="1,2,4")
    ap.add_argument("--alphas", default="0,0.5,0.75,1")
    ap.add_argument("--sigmas", default="2,4,8")
    ap.add_argument("--max-drop", type=float, default=0.3)
    ap.add_argument("--write", action="store_true", help="store α and σ in lite_adapter.safetensors")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/lite_tune.json"))
    args = ap.parse_args(argv)

    steps = [int(s) for s in args.steps.split(",")]
    grid = list(itertools.product([float(a) for a in args.alphas.split(",")], [float(s) for s in args.sigmas.split(",")]))
    captions = load_caption_table(args.captions)
    paths = sorted(Path(args.data).glob("*.jpg"))[: args.images]
    codec = Codec()
    gen = codec.generator(codec.preset)
    scores: dict[tuple, list] = {}
    for path in tqdm(paths, desc="lite tune"):
        x = load_image(path)
        data = codec.encode(x, caption=captions.get(f"test/{path.name}", ""), max_bpp=args.max_bpp)
        p = codec.read(data)
        for s in steps:
            req = GenerationRequest(p.caption, p.channels, p.indices, 32, p.height, p.width, p.seed, s)
            with fixed_threads(DECODE_THREADS):
                g, mask, noise, text = gen.prepare(req)
                low, tex = gen.layers(g, mask, noise, text, req, (0, g.shape[-2], 0, g.shape[-1]))
            for alpha, sigma in grid:
                if alpha == 0 and sigma != grid[0][1]:
                    continue  # α = 0 is plain g_s whatever σ
                y = fuse(low, tex, alpha, sigma)[0, :, : p.height, : p.width].clamp(0, 1)
                scores.setdefault((s, alpha, sigma), []).append((psnr(y, x), st_lpips(y, x), flip(y, x)))
    table = {k: np.mean(v, axis=0).tolist() for k, v in scores.items()}
    plain = max(v[0] for (s, a, _), v in table.items() if a == 0)
    ok = {k: v for k, v in table.items() if v[0] >= plain - args.max_drop}
    best = min(ok, key=lambda k: ok[k][1])
    for k, v in sorted(table.items()):
        mark = " <- chosen" if k == best else ""
        print(f"steps {k[0]} α {k[1]:<4} σ {k[2]:<3}  PSNR {v[0]:.2f}  ST-LPIPS {v[1]:.4f}  FLIP {v[2]:.4f}{mark}")
    record = {"images": len(paths), "max_bpp": args.max_bpp, "max_drop_db": args.max_drop,
              "chosen": {"steps": best[0], "alpha": best[1], "sigma": best[2]},
              "table": [{"steps": k[0], "alpha": k[1], "sigma": k[2], "psnr": v[0], "st-lpips-alex": v[1],
                         "flip": v[2]} for k, v in sorted(table.items())]}
    Path(args.out).write_text(json.dumps(record, indent=1))
    if args.write:
        from safetensors.torch import load_file, save_file

        path = ROOT / "src/gsc/weights/lite_adapter.safetensors"
        meta = read_metadata(path)
        meta.update(alpha=json.dumps(best[1]), sigma=json.dumps(best[2]), tuned=json.dumps(record["chosen"]))
        save_file(load_file(str(path)), str(path), metadata=meta)
        print(f"wrote α = {best[1]}, σ = {best[2]} into {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
