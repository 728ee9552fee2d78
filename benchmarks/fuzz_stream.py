"""Fuzz the stream reader: N mutations of a real-shaped stream, half of them re-sealed with a valid CRC.

    python benchmarks/fuzz_stream.py --n 100000 [--seed 0] [--out benchmarks/results/fuzz_stream.json]

Prints cases, refused, accepted (read by Codec.info), crashes (any exception other than StreamError),
hangs (a read over --timeout seconds of CPU time), the time taken and the slowest case (wall and CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from tqdm import tqdm

    from gsc.testing.fuzz import fuzz, sample_stream
    from gsc.format.container import VERSION

    data = sample_stream(channels=2, size=(768, 512))
    with tqdm(total=args.n, desc="fuzz", mininterval=1.0) as bar:
        r = fuzz(data, args.n, seed=args.seed, timeout=args.timeout, progress=lambda k: bar.update(1))
    result = {"stream_version": VERSION, "mutations": args.n, "cases": r.cases, "refused": r.refused,
              "accepted": r.accepted, "crashes": len(r.crashes), "hangs": len(r.hangs), "seconds": round(r.seconds, 1),
              "slowest_case_ms": round(1000 * r.slowest, 2), "slowest_case_cpu_ms": round(1000 * r.slowest_cpu, 2),
              "stream_bytes": len(data)}
    print(json.dumps(result, indent=2))
    for m, err in r.crashes[:5]:
        print("crash:", err, m.hex(), file=sys.stderr)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if r.crashes or r.hangs else 0


if __name__ == "__main__":
    sys.exit(main())
