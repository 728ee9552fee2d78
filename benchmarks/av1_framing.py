"""What AV1's framing costs on the low band's thumbnails: each part of libavif's file, per image and budget.

For each image and budget, AV1's own best thumbnail (``lite_reference.av1_best`` at libaom speed
``lite_reference.AV1_SPEED``, bytes ≤ ``max_bpp · H · W / 8``) is encoded again as libavif's file and split
(``gsc.eval.av1.framing``): the container, the temporal delimiter, the sequence header OBU, the frame OBU's
header, the uncompressed frame header inside its payload, and the rest (the tile's data).

    python benchmarks/av1_framing.py $(ls ../shared/data/bsds500/val/*.jpg | sort | head -12) \
        --out benchmarks/results/av1_framing_bsds500_val12.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

PARTS = ("file", "container", "mdat", "temporal_delimiter", "sequence_header", "frame_obu_header",
         "frame_header", "frame_payload")


def main() -> None:
    from lite_reference import AV1_SPEED, av1_best

    from gsc.eval import av1
    from gsc.image import load_image, to_uint8
    from gsc.models.thumbnail import downscale

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", type=Path)
    ap.add_argument("--budgets", default="0.005,0.01,0.02")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    records, codec, enc = {}, av1.codec(AV1_SPEED), av1.avif_encoder(AV1_SPEED)
    for path in a.images:
        x = load_image(path)
        for b in a.budgets.split(","):
            found = av1_best(x, int(float(b) * x.shape[-1] * x.shape[-2] / 8), codec)
            if found is None:
                continue
            small = np.ascontiguousarray(to_uint8(downscale(x[None], found["geometry"].luma)[0].clamp(0, 1)))
            rec = av1.framing(enc(small, found["quality"]))
            rec.update(bare=found["bytes"], scale=found["scale"], quality=found["quality"])
            records.setdefault(path.name, {})[b] = rec
    tmp = a.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(a.out)
    print("| bpp | " + " | ".join(PARTS) + " | bare stream | base_q_idx |\n|---|" + "---|" * (len(PARTS) + 2))
    for b in a.budgets.split(","):
        recs = [r[b] for r in records.values() if b in r]
        cells = [f"{np.mean([r[k] for r in recs]):.1f}" for k in (*PARTS, "bare", "base_q_idx")]
        print(f"| {b} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
