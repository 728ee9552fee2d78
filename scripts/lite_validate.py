"""Validate the lite preset on BSDS500's test split (never Kodak): bpp, PSNR, MS-SSIM per C.

    python scripts/lite_validate.py [--limit 50] [--channels 1,2,3]

The test suite's quality floors for the lite preset are set from these numbers (docs/models.md), so
that nothing is tuned on Kodak. No captions exist for BSDS500's test split: the streams carry none.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/bsds500/test")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--channels", default="1,2,3")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/lite_bsds_test.json")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from tqdm import tqdm

    from gsc.codec import Codec
    from gsc.eval.metrics import ms_ssim, psnr
    from gsc.image import load_image, to_uint8

    torch.set_num_threads(args.threads)
    codec = Codec()
    paths = sorted(args.data.glob("*.jpg"))[: args.limit]
    out = {}
    for c in [int(v) for v in args.channels.split(",")]:
        rows = []
        for p in tqdm(paths, desc=f"C={c}"):
            x = load_image(p)
            data = codec.encode(x, channels=c)
            y = torch.from_numpy(to_uint8(codec.decode(data))).permute(2, 0, 1).float() / 255
            rows.append((len(data) * 8 / (x.shape[1] * x.shape[2]), psnr(y, x), ms_ssim(y, x)))
        a = np.array(rows)
        out[f"C={c}"] = {"bpp": a[:, 0].mean(), "psnr": a[:, 1].mean(), "psnr_min": a[:, 1].min(),
                         "ms_ssim": a[:, 2].mean(), "ms_ssim_min": a[:, 2].min(), "images": len(rows)}
    text = json.dumps(out, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
