"""Check `bench-classical --select`'s coarse-to-fine walk against scoring every candidate.

    python benchmarks/select_check.py [DATASET] [--limit 6] [--codecs webp,jxl] [--target-bpp 0.01]
                                      [--select st-lpips,flip]

For each image, codec and target: all candidates (per downscaled size, the highest quality that fits),
then for each metric the walk's pick and the exhaustive pick. Reports how often they agree, how far the
walk's value is from the best, how many candidates each scored, and the seconds spent. Run on BSDS500
val (the default), never on Kodak: the walk's stride is a search setting, and Kodak is for measuring.
Writes benchmarks/results/select_check.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", type=Path, default=ROOT.parent / "shared/data/bsds500/val")
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--codecs", default="webp,jxl")
    ap.add_argument("--target-bpp", type=float, default=0.01)
    ap.add_argument("--select", default="st-lpips,flip")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/select_check.json")
    args = ap.parse_args(argv)

    import math

    import numpy as np
    import torch
    from tqdm import tqdm

    from gsc.eval.classical import (SearchGrid, as_tensor, candidates, get_codec, parse_codecs, parse_selects,
                                    pick)
    from gsc.image import list_dataset
    from gsc.eval.metrics import METRICS, Reference, metric_versions
    from gsc.eval.results import write_json
    from gsc.image import load_image, to_uint8

    torch.set_num_threads(1)
    selects = parse_selects(args.select)
    rows = []
    jobs = [(p, c) for p in list_dataset(args.dataset, args.limit) for c in parse_codecs(args.codecs)]
    for path, name in tqdm(jobs, desc="select check"):
        image = np.ascontiguousarray(to_uint8(load_image(path)))
        budget = math.floor(args.target_bpp * image.shape[0] * image.shape[1] / 8)
        t0 = time.perf_counter()
        cands = candidates(get_codec(name), image, budget, SearchGrid())
        t_search = time.perf_counter() - t0
        if not cands:
            continue
        ref = Reference(as_tensor(image))
        for sel in selects:
            values: dict[int, float] = {}
            t_score: list[float] = []

            def value(i, _sel=sel, _values=values):
                if i not in _values:
                    t = time.perf_counter()
                    _values[i] = ref.score(as_tensor(cands[i].recon), [_sel])[_sel]
                    t_score.append(time.perf_counter() - t)
                return _values[i]

            walk = pick(cands, sel, value)
            walked = len(values)
            full = pick(cands, sel, value, exhaustive=True)
            psnr_pick = pick(cands, "psnr", lambda i: cands[i].psnr)
            rows.append({"image": path.name, "codec": name, "select": sel, "candidates": len(cands),
                         "scored_by_walk": walked, "walk": walk, "exhaustive": full,
                         "walk_value": values[walk], "best_value": values[full],
                         "best_psnr_pick_value": values[psnr_pick],
                         "seconds_per_score": sum(t_score) / len(t_score), "search_s": t_search})
    summary = {}
    for sel in selects:
        rs = [r for r in rows if r["select"] == sel]
        if not rs:
            continue
        sign = 1 if METRICS[sel].higher_is_better else -1
        summary[METRICS[sel].key] = {
            "triples": len(rs), "walk_is_exhaustive_best": sum(r["walk"] == r["exhaustive"] for r in rs),
            "mean_gap_to_best": sum(sign * (r["best_value"] - r["walk_value"]) for r in rs) / len(rs),
            "max_gap_to_best": max(sign * (r["best_value"] - r["walk_value"]) for r in rs),
            "mean_gain_over_best_psnr_pick": sum(sign * (r["walk_value"] - r["best_psnr_pick_value"])
                                                 for r in rs) / len(rs),
            "mean_candidates": sum(r["candidates"] for r in rs) / len(rs),
            "mean_scored_by_walk": sum(r["scored_by_walk"] for r in rs) / len(rs),
            "mean_seconds_per_score": sum(r["seconds_per_score"] for r in rs) / len(rs),
        }
    out = {"dataset": str(args.dataset), "target_bpp": args.target_bpp, "codecs": args.codecs,
           "versions": metric_versions(), "summary": summary, "rows": rows}
    write_json(args.out, out)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
