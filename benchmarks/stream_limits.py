"""Measure the entropy decoder's speed and the decode budget's worst cases (docs/stream-format.md, "Limits").

    python benchmarks/stream_limits.py [--out benchmarks/results/stream_limits.json]

1. Symbols per second of ``decode_latent`` on real-shaped sections (Kodak-sized C = 2, 4K C = 4 and C = 16).
2. For several grid shapes, the slowest section the default limit admits (largest m that fits, uniformly
   random symbols, the slowest payload to decode): its symbol work and read time.
3. The hand-built hostile streams (``gsc.testing.fuzz.hostile_streams``):
   time until ``Codec.info`` / ``Codec.decode`` refuse them.
Times are CPU seconds (``time.process_time``, the best of three), so that other jobs on the machine do
not count; the refusals are also timed on the wall clock.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def best_of(fn, n: int = 3) -> float:
    """The least CPU time of n runs."""
    best = float("inf")
    for _ in range(n):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def smooth_symbols(c: int, h: int, w: int, scale: float, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.normal(0, scale, (c, h + 2, w + 2))
    return np.round((base[:, 1:-1, 1:-1] + base[:, :-2, 1:-1] + base[:, 1:-1, :-2]) / 1.5).astype(np.int64)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    import numpy as np

    from gsc.budget import DecodeLimits
    from gsc.codec import Codec
    from gsc.errors import BudgetError
    from gsc.testing.fuzz import hostile_streams, sample_stream
    from gsc.format.grid import MAX_MAGNITUDE, decode_latent, encode_latent, symbol_work

    result = {"load_average_1min": os.getloadavg()[0], "speed": [], "worst_admitted": [], "hostile": []}
    for name, (c, h, w, scale) in {"768×512, C = 2": (2, 32, 48, 1.5), "4K, C = 4": (4, 135, 240, 1.5),
                                   "4K, C = 16": (16, 135, 240, 1.5)}.items():
        q = smooth_symbols(c, h, w, scale)
        data = encode_latent(q, list(range(c)), 32)
        t = best_of(lambda: decode_latent(data, 32, h, w))
        result["speed"].append({"case": name, "symbols": q.size, "max_m": int(np.abs(q).max()), "bytes": len(data),
                                "cpu_seconds": round(t, 4), "symbols_per_s": round(q.size / t)})
    limit = DecodeLimits().max_symbol_work
    for c, h, w in [(16, 135, 240), (16, 64, 1024), (16, 256, 256), (1, 256, 1024), (16, 32, 32), (1, 1, 1024)]:
        m = max(k for k in range(1, MAX_MAGNITUDE + 1) if symbol_work([k] * c, h, w) <= limit)
        q = np.random.default_rng(0).integers(-m, m + 1, (c, h, w))
        data = encode_latent(q, list(range(c)), 32)
        t = best_of(lambda: decode_latent(data, 32, h, w, max_work=limit))
        result["worst_admitted"].append({"C": c, "grid": [h, w], "m": m, "work": symbol_work([m] * c, h, w),
                                         "limit": limit, "bytes": len(data), "cpu_seconds": round(t, 3)})
    codec = Codec()
    codec.info(sample_stream())   # load the caption coder's tables: a start-up cost, not a stream's
    for name, data in hostile_streams().items():
        row = {"stream": name, "bytes": len(data)}
        for what, fn in (("info", codec.info), ("decode", codec.decode)):
            t0 = time.perf_counter()
            try:
                fn(data)
                row[what] = "accepted"
            except BudgetError as e:
                row[what] = str(e)
            row[f"{what}_ms"] = round(1000 * (time.perf_counter() - t0), 2)
        result["hostile"].append(row)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
