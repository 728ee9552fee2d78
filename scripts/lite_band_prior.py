"""Fit the lite band coder's prior tables (``src/gsc/latent/band_prior.json``) on BSDS500 train.

    python scripts/lite_band_prior.py [--data ../shared/data/bsds500/train] [--total 512] [-o src/gsc/latent/band_prior.json]

Each training image is analysed at an operating point of ``data/lite_operating_points.json`` (the i-th image
takes point 7·i mod n) and chroma ratio 1; every AC magnitude is counted in the context the coder gives it
(``gsc.format.bands``). A context's prior is its histogram scaled to ``total`` counts (at least 1 each;
magnitudes ≥ 16 share the last entry); unseen contexts keep the flat default. The file is part of the
stream format: a stream decodes only with the prior it was coded with.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from gsc.image import load_image
from gsc.latent import bands as B
from gsc.latent.lite import LiteSender, analyse
from gsc.format.tables import SCALES, ThumbnailGeometry
from gsc.image import list_dataset


def count(files: list[Path], points: list[dict]) -> np.ndarray:
    counts = np.zeros((2, B.N_CONTEXTS, B.PRIOR_SYMBOLS))
    for i, f in enumerate(tqdm(files, desc="band statistics")):
        x = load_image(f)
        h, w = x.shape[-2:]
        p = points[(7 * i) % len(points)]
        coefs = analyse(x, ThumbnailGeometry(w, h, SCALES[p["scale_code"]]))
        a = [np.abs(q) for q in LiteSender.latent(coefs, p["scale_code"], p["luma_code"], 2, None).q]
        for k in range(1, a[0].shape[0]):
            for kind, planes in enumerate(B.KINDS):
                ctx = np.concatenate([B._contexts(a, plane, k) for plane in planes])
                sym = np.minimum(np.concatenate([a[plane][k].ravel() for plane in planes]), B.PRIOR_SYMBOLS - 1)
                np.add.at(counts[kind], (ctx, sym), 1)
    return counts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/bsds500/train")
    ap.add_argument("--points", default="data/lite_operating_points.json")
    ap.add_argument("--total", type=int, default=512)
    ap.add_argument("-o", "--output", default="src/gsc/latent/band_prior.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    counts = count(list_dataset(args.data), json.loads(Path(args.points).read_text())["points"])
    seen = counts.sum(2, keepdims=True)
    prior = np.maximum(1, np.round(counts / np.maximum(seen, 1) * args.total)).astype(int)
    prior[seen[..., 0] == 0] = B.default_prior(B.PRIOR_SYMBOLS - 1)
    out = {"_about": f"Initial counts of the lite band coder's magnitude tables, [kind][context][magnitude], "
                     f"fitted on BSDS500 train by scripts/lite_band_prior.py --total {args.total}. Part of the "
                     f"stream format.", "prior": prior.tolist()}
    tmp = Path(args.output).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, separators=(",", ":")))
    tmp.replace(args.output)
    print(f"{int(seen.sum())} magnitudes in {int((seen > 0).sum())} contexts → {args.output}")


if __name__ == "__main__":
    main()
