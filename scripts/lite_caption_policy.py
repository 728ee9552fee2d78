"""Is the caption worth its bytes at low budgets? Keep vs drop on BSDS500 val (never Kodak).

For each image and budget the stream is made twice: with its caption (``--caption-policy keep``) and
without it (``drop``: the caption's bytes go to the bands). Scored on PSNR, chroma PSNR, colour drift and
ST-LPIPS; resumable, then a table:

    python scripts/lite_caption_policy.py --n 12 --out runs/lite_caption_policy.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
NAMES = ["psnr", "psnr_chroma", "colour_drift", "st_lpips_alex"]


def main() -> None:
    from gsc.caption.captioners import load_captions
    from gsc.codec import Codec
    from gsc.eval.metrics import METRICS, Reference, to_8bit
    from gsc.image import load_image

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/bsds500")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--budgets", default="0.005,0.01")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    captions, codec = load_captions(ROOT / "data/captions/bsds500.json"), Codec()
    keys = sorted(k for k in captions if k.startswith("val/"))[: a.n]
    budgets = [float(b) for b in a.budgets.split(",")]
    out = json.loads(a.out.read_text()) if a.out.exists() else {}
    for k in keys:
        x = load_image(a.data / k)
        ref = Reference(x)
        for b in budgets:
            if f"{k}@{b}" in out:
                continue
            rec = {}
            for policy in ("keep", "drop"):
                data = codec.encode(x, caption=captions[k], max_bpp=b, caption_policy=policy)
                rec[policy] = {"caption_bytes": codec.info(data)["caption_bytes"], "bytes": len(data),
                               **ref.score(to_8bit(codec.decode(data)), NAMES)}
            out[f"{k}@{b}"] = rec
            a.out.write_text(json.dumps(out, indent=1))
            print(k, b, {p: round(r["st_lpips_alex"], 3) for p, r in rec.items()}, flush=True)
    for b in budgets:
        recs = [r for t, r in out.items() if t.endswith(f"@{b}")]
        print(f"\n{b} bpp, {len(recs)} images: keep − drop (keep better on)")
        for n in NAMES:
            d = [r["keep"][n] - r["drop"][n] for r in recs]
            better = sum((v > 0) == METRICS[n].higher_is_better for v in d)
            print(f"  {n}: {sum(d) / len(d):+.3f} ({better}/{len(d)})")
        share = sum(r["keep"]["caption_bytes"] / r["keep"]["bytes"] for r in recs) / len(recs)
        print(f"  caption share of the stream: {share:.0%}")


if __name__ == "__main__":
    main()
