"""Decode time and peak memory of the flux-tiny generator against the number of steps, on the CPU.

Each step count runs in a fresh process, so that the process's peak resident memory (ru_maxrss)
belongs to that run alone. Reported per step count: the median wall time of ``--repeats`` decodes
(after one warm-up decode), the resident memory once the model is built, and the peak. The numbers
describe the *tiny* random-weight model only (the wiring's overhead), not FLUX.1; see
docs/flux.md and benchmarks/flux_flops.py for the real model.

    python benchmarks/flux_decode.py --size 256 --steps 1 2 4 8 16 --json benchmarks/results/flux_decode.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def worker(steps: int, size: int, channels: int, repeats: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    import gsc.generate.flux_tiny  # noqa: F401
    from gsc.generate import GENERATORS, GenerationRequest

    t0 = time.perf_counter()
    generator = GENERATORS.create("flux-tiny")
    build_s = time.perf_counter() - t0
    loaded = rss_mib()
    h = -(-size // 16)
    g = torch.Generator().manual_seed(0)
    request = GenerationRequest(caption="a red door in an old stone wall",
                                channels=torch.randn(channels, h, h, generator=g),
                                indices=list(range(0, 320, 320 // channels))[:channels] if channels else [],
                                latent_channels=320, height=size, width=size, seed=0, steps=steps)
    generator.generate(request)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        generator.generate(request)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"steps": steps, "seconds": statistics.median(times), "seconds_all": times, "build_seconds": build_s,
            "rss_loaded_mib": loaded, "rss_peak_mib": peak}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--size", type=int, default=256, help="square image side in pixels")
    ap.add_argument("--channels", type=int, default=2, help="C, the channels sent")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker is not None:
        print(json.dumps(worker(args.worker, args.size, args.channels, args.repeats, args.threads)))
        return []
    rows = []
    for steps in args.steps:
        cmd = [sys.executable, __file__, "--worker", str(steps), "--size", str(args.size), "--channels",
               str(args.channels), "--repeats", str(args.repeats), "--threads", str(args.threads)]
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"steps {steps:>3}: {r['seconds'] * 1000:8.1f} ms   loaded {r['rss_loaded_mib']:7.1f} MiB   "
              f"peak {r['rss_peak_mib']:7.1f} MiB", flush=True)
    if args.json:
        import torch

        meta = {"machine": cpu_name(), "cpus": os.cpu_count(), "load_average_1min": os.getloadavg()[0],
                "torch": torch.__version__, "size": args.size, "channels": args.channels, "threads": args.threads,
                "repeats": args.repeats, "device": "cpu", "model": "flux-tiny (random weights)"}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
