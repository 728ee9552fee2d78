"""Validate the lite preset on BSDS500's test split (never Kodak): the numbers the test floors come from.

    python scripts/lite_validate.py [--limit 50] [--channels 2] [--max-bpp 0.01]

Each image is encoded as tests/test_lite.py does (C channels, its BSDS500 test caption, under --max-bpp)
and decoded; the JSON gives per-C means and the worst image for PSNR and ST-LPIPS (alex). The floors in
tests/test_lite.py are those worst values, rounded outwards (docs/models.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/bsds500")
    ap.add_argument("--captions", type=Path, default=ROOT / "data/captions/bsds500_test.json")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--channels", default="2")
    ap.add_argument("--max-bpp", type=float, default=0.01)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/lite_bsds_test.json")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from tqdm import tqdm

    from gsc.caption.captioners import load_captions
    from gsc.codec import Codec
    from gsc.eval.metrics import psnr, st_lpips
    from gsc.image import load_image, to_uint8

    torch.set_num_threads(args.threads)
    codec = Codec()
    captions = load_captions(args.captions)
    keys = sorted(k for k in captions if k.startswith("test/"))[: args.limit]
    out = {"max_bpp": args.max_bpp, "images": len(keys)}
    for c in [int(v) for v in args.channels.split(",")]:
        rows = []
        for key in tqdm(keys, desc=f"C={c}"):
            x = load_image(args.data / key)
            data = codec.encode(x, channels=c, caption=captions[key], max_bpp=args.max_bpp)
            y = torch.from_numpy(to_uint8(codec.decode(data))).permute(2, 0, 1).float() / 255
            rows.append((len(data) * 8 / (x.shape[1] * x.shape[2]), psnr(y, x), st_lpips(y, x)))
        a = np.array(rows)
        worst = int(a[:, 1].argmin())
        out[f"C={c}"] = {"bpp": a[:, 0].mean(), "psnr": a[:, 1].mean(), "psnr_min": a[:, 1].min(),
                         "psnr_min_image": keys[worst], "st_lpips_alex": a[:, 2].mean(),
                         "st_lpips_alex_max": a[:, 2].max(), "st_lpips_alex_max_image": keys[int(a[:, 2].argmax())]}
    text = json.dumps(out, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
