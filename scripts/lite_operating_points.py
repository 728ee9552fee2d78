"""The operating points (scale, luma step, chroma ratio) the lite sender picks on BSDS500 train+val: the
distribution g_s and the adapter are trained on (``gsc train-lite``, ``data/lite_operating_points.json``).

    python scripts/lite_operating_points.py [--every 3] [--limit 41] [--per-image 3] [-o data/lite_operating_points.json]

For every ``every``-th image of train + val (sorted), ``per-image`` budgets drawn log-uniformly in 0.003–0.03
bpp (seed 0), less 30 bytes for the header and a caption, through the rate control without g_s (the
bicubic proxy: g_s is what will be trained on these). The shipped file: ``--every 3 --limit 41`` (123 points).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gsc.image import load_image
from gsc.image import list_dataset
from gsc.latent.lite import LiteSender

ABOUT = ("Operating points (scale, luma step, chroma ratio codes) that the lite sender's rate control picks on "
         "BSDS500 train+val at budgets drawn log-uniformly in 0.003-0.03 bpp, less 30 bytes for header and caption: "
         "the training distribution of g_s and the adapter. Made by scripts/lite_operating_points.py {args}.")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/bsds500")
    ap.add_argument("--every", type=int, default=3)
    ap.add_argument("--limit", type=int, default=41)
    ap.add_argument("--per-image", type=int, default=3)
    ap.add_argument("-o", "--output", default="data/lite_operating_points.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    files = [p for split in ("train", "val") for p in list_dataset(Path(args.data) / split)][1::args.every]
    sender, points = LiteSender(), []
    for f in tqdm(files[: args.limit], desc="operating points"):
        x = load_image(f)
        h, w = x.shape[-2:]
        for bpp in np.exp(rng.uniform(math.log(0.003), math.log(0.03), args.per_image)):
            best = sender.score(x, sender.candidates(x, int(bpp * h * w / 8) - 30))
            if best is not None:
                lat = best.latent
                points.append({"image": f.name, "bpp": float(bpp), "scale_code": lat.scale_code,
                               "luma_code": lat.luma_code, "chroma_code": lat.chroma_code, "channels": lat.channels})
    about = ABOUT.format(args=f"--every {args.every} --limit {args.limit} --per-image {args.per_image}")
    tmp = Path(args.output).with_suffix(".tmp")
    tmp.write_text(json.dumps({"_about": about, "points": points}, indent=0))
    tmp.replace(args.output)
    print(f"{len(points)} points → {args.output}")


if __name__ == "__main__":
    main()
