"""AV1's encode speed for the low band: the whole scale × quality search per libaom speed, and its PSNR cost.

For each image and budget: AV1's own search (``lite_reference.av1_best``: coarse scales, a quality
bisection per scale, a quarter octave either side) at ``--search-speeds``, timed (CPU seconds of this
process, one encoder thread: the machine is shared, so wall time says little), with the bicubic PSNR it
reaches; then, at the scale the fastest search picked, the quality bisection alone at every speed of
``--speeds`` (bytes ≤ the same budget): the PSNR each speed buys at that thumbnail, and its CPU time.
The budget is the whole stream's, ``max_bpp · H · W / 8`` bytes.

    python benchmarks/av1_speed.py ../shared/data/kodak/kodim0[1-2].png $(ls ../shared/data/bsds500/val/*.jpg | head -4) \
        --out benchmarks/results/av1_speed.json
"""

from __future__ import annotations

import json
import time

import numpy as np


def timed(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def case(x, budget: int, search_speeds: list[int], speeds: list[int]) -> dict:
    from lite_reference import av1_best, bicubic_psnr, coded_thumbnail

    from gsc.eval import av1

    h, w = x.shape[-2:]
    rec = {"budget": budget, "search": {}, "bisection": {}}
    picked = None
    for s in search_speeds:
        found, cpu = timed(lambda: av1_best(x, budget, av1.codec(s)))
        rec["search"][str(s)] = {"cpu_s": cpu, "scale": found and found["scale"],
                                 "psnr": found and max(v for v in found["psnr_by_scale"].values() if v)}
        picked = picked or found
    if picked is None:
        return rec
    g = picked["geometry"]
    rec["scale"] = picked["scale"]
    for s in speeds:
        found, cpu = timed(lambda: coded_thumbnail(av1.codec(s), x, g, budget))
        rec["bisection"][str(s)] = {"cpu_s": cpu, "bytes": found and found[1],
                                    "psnr": found and bicubic_psnr(found[0], g, x)}
    return rec


def summary(records: dict, speeds: list[int], search_speeds: list[int]) -> str:
    rows = ["| budget (bpp) | what | " + " | ".join(f"speed {s}" for s in speeds) + " |",
            "|---|---|" + "---|" * len(speeds)]
    budgets = sorted({b for r in records.values() for b in r})
    for b in budgets:
        cases = [r[b] for r in records.values() if b in r and r[b].get("bisection")]
        big = [r[b] for n, r in records.items() if b in r and r[b].get("search") and r[b].get("pixels") == 768 * 512]

        def mean(where, s, key, cs=cases):
            v = [c[where][str(s)][key] for c in cs if str(s) in c[where] and c[where][str(s)][key] is not None]
            return f"{np.mean(v):.2f}" if v else "–"

        rows.append(f"| {b} | search CPU s, 768×512 (n={len(big)}) | "
                    + " | ".join(mean("search", s, "cpu_s", big) for s in speeds) + " |")
        rows.append(f"| {b} | search PSNR (n={len(cases)}) | " + " | ".join(mean("search", s, "psnr") for s in speeds) + " |")
        rows.append(f"| {b} | bisection at the picked f: PSNR | " + " | ".join(mean("bisection", s, "psnr") for s in speeds) + " |")
        rows.append(f"| {b} | bisection at the picked f: CPU s | " + " | ".join(mean("bisection", s, "cpu_s") for s in speeds) + " |")
    return "\n".join(rows)


def main() -> None:
    from lite_reference import arguments, save

    from gsc.image import load_image

    ap = arguments(__doc__)
    ap.add_argument("--speeds", default="0,2,4,6,8")
    ap.add_argument("--search-speeds", default="8,6,4")
    a = ap.parse_args()
    speeds = [int(s) for s in a.speeds.split(",")]
    search_speeds = [int(s) for s in a.search_speeds.split(",")]
    records = json.loads(a.out.read_text()) if a.out.exists() else {}
    for path in a.images:
        x = load_image(path)
        rec = records.setdefault(path.name, {})
        for b in a.budgets.split(","):
            if b not in rec:
                rec[b] = case(x, int(float(b) * x.shape[-1] * x.shape[-2] / 8), search_speeds, speeds)
                rec[b]["pixels"] = x.shape[-1] * x.shape[-2]
                save(records, a.out)
                print(path.name, b, json.dumps(rec[b]), flush=True)
    print(summary(records, speeds, search_speeds))


if __name__ == "__main__":
    main()
