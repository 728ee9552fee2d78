"""Fuzz the stream reader: N mutations of real-shaped version-4 streams (a one-layer lite stream and a
three-layer flux-tiny stream, N/2 each), half of them sealed (their checks recomputed after the mutation).

    python benchmarks/fuzz_stream.py --n 100000 [--seed 0] [--out benchmarks/results/fuzz_stream.json]

Prints cases, refused, accepted (read by Codec.info), crashes (any exception other than StreamError),
hangs (a read over --timeout seconds of CPU time), leaks (a plain mutant read from a header or section
unlike the original's), the time taken and the slowest case (wall and CPU).
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

    from gsc.format.layered import VERSION
    from gsc.testing.fuzz import fuzz, sample_layered_stream, sample_lite_layers, sample_stream

    seeds = {"lite, 1 layer": sample_stream(channels=2, size=(768, 512)),
             "lite, 3 layers": sample_lite_layers(3),
             "flux-tiny, 3 layers": sample_layered_stream((2, 3, 1))}
    result = {"stream_version": VERSION, "mutations": args.n, "seeds": {}}
    bad = 0
    with tqdm(total=args.n, desc="fuzz", mininterval=1.0) as bar:
        for k, (name, data) in enumerate(seeds.items()):
            r = fuzz(data, args.n // len(seeds), seed=args.seed + k, timeout=args.timeout,
                     progress=lambda _: bar.update(1))
            result["seeds"][name] = {
                "stream_bytes": len(data), "cases": r.cases, "refused": r.refused, "accepted": r.accepted,
                "crashes": len(r.crashes), "hangs": len(r.hangs), "leaks": len(r.leaks),
                "seconds": round(r.seconds, 1), "slowest_case_ms": round(1000 * r.slowest, 2),
                "slowest_case_cpu_ms": round(1000 * r.slowest_cpu, 2)}
            bad += len(r.crashes) + len(r.hangs) + len(r.leaks)
            for m, err in r.crashes[:5]:
                print("crash:", err, m.hex(), file=sys.stderr)
            for m in r.leaks[:5]:
                print("leak:", m.hex(), file=sys.stderr)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
