"""Seconds per 768×512 image pair for each metric of gsc.eval.metrics (one torch thread).

    python benchmarks/metric_timing.py [IMAGE] [--repeats 3]

The pair is IMAGE (default kodim23) and its JPEG at quality 10. Each metric is run once to load its
model, then ``--repeats`` times; the median is reported as CPU seconds of this process (what the call
costs on an idle core; FLIP's C++ may use more than one thread) and as wall seconds, with the machine's
load average: these machines are shared, so wall time says more about the neighbours than the metric.
Writes benchmarks/results/metric_timing.json.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def timed(fn, repeats: int) -> dict:
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return {"cpu_s": statistics.median(cpu), "wall_s": statistics.median(wall)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", nargs="?", type=Path, default=ROOT.parent / "shared/data/kodak/kodim23.png")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/metric_timing.json")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from PIL import Image

    from gsc.eval.metrics import METRICS, Reference, available, metric_versions
    from gsc.eval.results import write_json

    torch.set_num_threads(1)
    with Image.open(args.image) as im:
        rgb = im.convert("RGB")
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=10)
    x = torch.from_numpy(np.asarray(rgb, dtype=np.float32)).permute(2, 0, 1) / 255
    y = torch.from_numpy(np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32)).permute(2, 0, 1) / 255
    names, missing = available(list(METRICS))
    rows = {}
    for n in names:
        t0 = time.perf_counter()
        value = METRICS[n].fn(y, x)
        first = time.perf_counter() - t0
        rows[METRICS[n].key] = {"value_jpeg_q10": value, "first_call_wall_s": first,
                                **timed(lambda: METRICS[n].fn(y, x), args.repeats)}
    # ST-LPIPS against a kept reference (bench-classical's candidates): one network pass per call
    ref = Reference(x)
    ref.score(y, ["st_lpips_alex"])
    rows["st-lpips-alex (reference kept)"] = timed(lambda: ref.score(y, ["st_lpips_alex"]), args.repeats)
    out = {"image": args.image.name, "size": list(x.shape[-2:]), "threads": 1, "load_average": os.getloadavg(),
           "cpus": os.cpu_count(), "versions": metric_versions(), "unavailable": missing, "metrics": rows}
    write_json(args.out, out)
    for k, r in rows.items():
        print(f"{k:32s} {r['cpu_s']:6.2f} s CPU {r['wall_s']:6.2f} s wall")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
