"""What layer 1's Reed–Solomon parity repairs and what it lets through, at the container (docs/stream-format.md,
"Repairing layer 1").

    python benchmarks/layer1_parity.py [--trials 20000] [--values 20] [--seed 7]
        [--out benchmarks/results/layer1_parity.json]

On two layered streams built without model weights (``gsc.testing.fuzz``: a three-layer lite stream of
synthetic bands and a three-layer flux-tiny grid stream), each byte of layer 1 and its parity is damaged to
``--values`` seeded other values (each must be repaired to the layers sent), then ``--trials`` times two
bytes of one codeword (beyond its repair) are damaged at random. Each read is ``repaired`` (every layer as
sent, layer 1 corrected), ``dropped`` (layer 1 refused: no layer read), ``partial`` (fewer layers, all as
sent) or ``wrong`` (a layer unlike the one sent), and ``repair`` says whether the parity corrected a byte.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def judge(sent, data: bytes) -> str:
    """How the reader took ``data``, a damaged copy of the stream ``sent`` (its parse)."""
    from gsc.errors import StreamError
    from gsc.format import layered

    try:
        s = layered.read(data)
    except StreamError:
        return "dropped"
    if s.layers != sent.layers[:len(s.layers)]:
        return "wrong" + (" after a repair" if s.report.layer_fixed else "")
    if not s.layers:
        return "dropped"
    return "repaired" if s.layers == sent.layers and s.report.layer_fixed else "partial"


def measure(data: bytes, trials: int, values: int, seed: int) -> dict:
    from gsc.format import layered

    sent = layered.read(data)
    start, end, _ = sent.report.layers[0]
    n, k = len(sent.layers[0]), layered.words(len(sent.layers[0]))
    rng, single, pairs = random.Random(seed), {}, {}
    for i in range(start, end):
        for v in rng.sample(range(1, 256), values):
            m = bytearray(data)
            m[i] ^= v
            got = judge(sent, bytes(m))
            single[got] = single.get(got, 0) + 1
    for _ in range(trials):
        c = rng.randrange(k)
        a, b = rng.sample([*range(c, n, k), n + c, n + k + c], 2)
        m = bytearray(data)
        m[start + a] ^= rng.randrange(1, 256)
        m[start + b] ^= rng.randrange(1, 256)
        got = judge(sent, bytes(m))
        pairs[got] = pairs.get(got, 0) + 1
    return {"stream_bytes": len(data), "layer_1_bytes": n, "codewords": k, "one_byte": single,
            "two_bytes_in_one_codeword": pairs}


def main(argv=None) -> int:
    from gsc.eval.results import write_json
    from gsc.testing.fuzz import sample_layered_stream, sample_lite_layers

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=20_000)
    ap.add_argument("--values", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "layer1_parity.json")
    args = ap.parse_args(argv)
    seeds = {"lite, 3 layers": sample_lite_layers(), "flux-tiny, 3 layers": sample_layered_stream()}
    results = {"trials": args.trials, "values": args.values, "seed": args.seed,
               "streams": {name: measure(data, args.trials, args.values, args.seed) for name, data in seeds.items()}}
    write_json(args.out, results)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
