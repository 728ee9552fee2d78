"""What stream v4's containment costs and buys, on Kodak-shaped streams (docs/stream-format.md, "Version 4").

    python benchmarks/header_protection.py [--trials 20000] [--out benchmarks/results/header_protection.json]

For each Kodak caption (coded by the caption coder) a one-layer stream of 491 bytes (0.01 bpp at 768×512)
is built in version 3 and version 4 with the same caption and random latent bytes (sizes only depend on
lengths); then version 4's header is damaged: every single byte to every other value (all must be
repaired), and ``--trials`` random pairs of header bytes (refused, repaired to the true header, or read as
a wrong header: a miscorrection), and random pairs anywhere in the stream.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

KODAK = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kodak" / "captions.json"
TOTAL = 491


def streams():
    from gsc.format import container as v3
    from gsc.format import layered
    from gsc.format.caption import encode_caption

    rng = random.Random(0)
    header = v3.Header(3, 768, 512)
    for name, text in sorted(json.loads(KODAK.read_text()).items()):
        if name.startswith("_"):
            continue
        caption = encode_caption(text)
        latent = bytes(rng.randrange(256) for _ in range(TOTAL - 6 - len(caption)))
        yield name, v3.pack(header, caption, latent), layered.pack(header, caption, [latent])


def outcome(data: bytes, damaged: bytes) -> str:
    """refused | repaired (the true header, sections as the original's or dropped) | wrong"""
    from gsc.errors import StreamError
    from gsc.format import layered

    a = layered.read(data)
    try:
        b = layered.read(damaged)
    except StreamError:
        return "refused"
    same = (b.header == a.header and b.caption_data in (a.caption_data, b"")
            and b.layers == a.layers[:len(b.layers)])
    return "repaired" if same else "wrong"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20_000)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from gsc.format import layered

    rng = random.Random(1)
    sizes, single, pairs, anywhere = [], {}, {}, {}
    built = list(streams())
    for name, old, new in built:
        head = layered.read(new).header_bytes
        sizes.append({"image": name, "v3_header": len(old) - TOTAL + 6, "v4_header": head,
                      "v4_extra_bytes": len(new) - len(old)})
        for i in range(head):
            for v in range(256):
                if v != new[i]:
                    k = outcome(new, new[:i] + bytes([v]) + new[i + 1:])
                    single[k] = single.get(k, 0) + 1
    for t in range(args.trials):
        _, _, new = built[t % len(built)]
        head = layered.read(new).header_bytes
        for where, tally in ((range(head), pairs), (range(len(new)), anywhere)):
            m = bytearray(new)
            for i in rng.sample(where, 2):
                m[i] ^= rng.randrange(1, 256)
            k = outcome(new, bytes(m))
            tally[k] = tally.get(k, 0) + 1
    extra = [s["v4_extra_bytes"] for s in sizes]
    result = {"images": len(sizes), "v4_extra_bytes_min_max": [min(extra), max(extra)],
              "v4_header_min_max": [min(s["v4_header"] for s in sizes), max(s["v4_header"] for s in sizes)],
              "single_damaged_header_byte": single, "two_damaged_header_bytes": pairs,
              "two_damaged_bytes_anywhere": anywhere, "per_image": sizes}
    print(json.dumps({k: v for k, v in result.items() if k != "per_image"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if single.get("wrong") or single.get("refused") else 0


if __name__ == "__main__":
    sys.exit(main())
