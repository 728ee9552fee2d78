"""What stream v4's containment costs and buys, on Kodak-shaped streams (docs/stream-format.md, "Version 4").

    python benchmarks/header_protection.py [--trials 20000] [--ber-trials 400] [--cache DIR]
        [--out benchmarks/results/header_protection.json]

For each Kodak caption (coded by the caption coder) a one-layer stream of 491 bytes (0.01 bpp at 768×512)
is built in version 3 and version 4 with the same caption and random latent bytes (sizes only depend on
lengths), and once more without a caption; then version 4's header is damaged: every single byte to every
other value (all must be repaired), and ``--trials`` random pairs of header bytes (refused, repaired to the
true header, or read as a wrong header: a miscorrection), and random pairs anywhere in the stream.

Then the 24 Kodak images are encoded by lite at 0.01 bpp in version 4 (``--cache``: keep them there) and
damaged: every byte of layer 1 to one random other value, and ``--ber-trials`` times each at a bit error
rate of 1e-4 and 1e-3 (each bit flipped independently). Each read is sorted into ``whole`` (every section
as sent), ``partial`` (something dropped, nothing wrong), ``nothing`` (refused, or nothing of the picture
left), ``wrong`` (a header or section unlike the one sent). For the bit errors the same flip patterns are
also judged against what other layouts could correct at best (``ideal``: no miscorrection counted): one
flipped bit of layer 1 located by its CRC-16, two by a 24-bit BCH code, or k interleaved Reed–Solomon
codewords (2 parity bytes each) over the whole stream correcting one byte each.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

KODAK = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kodak" / "captions.json"
TOTAL = 491


def streams(with_caption: bool = True):
    from gsc.format import container as v3
    from gsc.format import layered
    from gsc.format.caption import encode_caption

    rng = random.Random(0)
    header = v3.Header(3, 768, 512)
    for name, text in sorted(json.loads(KODAK.read_text()).items()):
        if name.startswith("_"):
            continue
        caption = encode_caption(text) if with_caption else b""
        latent = bytes(rng.randrange(256) for _ in range(TOTAL - 6 - len(caption)))
        yield name, v3.pack(header, caption, latent), layered.pack(header, caption, [latent])


def outcome(data: bytes, damaged: bytes) -> str:
    """refused | repaired (the true header, sections as the original's or dropped) | wrong"""
    kind = content(data, damaged)
    return {"whole": "repaired", "partial": "repaired", "nothing": "repaired"}.get(kind, kind)


def content(data: bytes, damaged: bytes) -> str:
    """refused | wrong | whole (every section as sent) | partial (some dropped, the rest as sent) | nothing
    (read, but neither a layer nor the caption left)"""
    from gsc.errors import StreamError
    from gsc.format import layered

    a = layered.read(data)
    try:
        b = layered.read(damaged)
    except StreamError:
        return "refused"
    if b.header != a.header or b.caption_data not in (a.caption_data, b"") or b.layers != a.layers[:len(b.layers)]:
        return "wrong"
    if (b.caption_data, b.layers) == (a.caption_data, a.layers):
        return "whole"
    return "partial" if b.layers or b.caption_data else "nothing"


def lite_streams(cache: Path | None) -> dict[str, bytes]:
    """Kodak encoded by lite at 0.01 bpp in version 4 (lite drops the caption at this budget)."""
    from gsc.codec import Codec

    codec, out = Codec(), {}
    for name in sorted(n for n in json.loads(KODAK.read_text()) if not n.startswith("_")):
        saved = cache / f"{name}.v4.gsc" if cache else None
        if saved and saved.exists():
            out[name] = saved.read_bytes()
            continue
        out[name] = codec.encode(KODAK.parent / name, caption="", max_bpp=0.01, version=4)
        if saved:
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_bytes(out[name])
    return out


def layer_one_bytes(lite: dict[str, bytes], rng: random.Random) -> dict:
    """Every byte of layer 1 of each stream to one random other value."""
    from gsc.format import layered

    tally = {}
    for data in lite.values():
        start, end, _ = layered.read(data).report.layers[0]
        for i in range(start, end):
            k = content(data, data[:i] + bytes([data[i] ^ rng.randrange(1, 256)]) + data[i + 1:])
            tally[k] = tally.get(k, 0) + 1
    return tally


IDEAL = {"crc16_one_bit": "header ≤ 1 damaged byte and ≤ 1 flipped bit in layer 1",
         "bch_two_bits": "header ≤ 1 damaged byte and ≤ 2 flipped bits in layer 1",
         "rs_interleaved_k2": "≤ 1 damaged byte in each of 2 interleaved codewords",
         "rs_interleaved_k3": "≤ 1 damaged byte in each of 3", "rs_interleaved_k4": "≤ 1 damaged byte in each of 4"}


def _ideal(flips, head: int, first: tuple[int, int]) -> dict[str, bool]:
    """Whether each layout of ``IDEAL`` could correct these flipped bits (bit offsets), at best."""
    damaged = {int(b) // 8 for b in flips}
    head_ok = sum(i < head for i in damaged) <= 1
    in_first = sum(first[0] * 8 <= int(b) < first[1] * 8 for b in flips)
    out = {"crc16_one_bit": head_ok and in_first <= 1, "bch_two_bits": head_ok and in_first <= 2}
    for k in (2, 3, 4):
        out[f"rs_interleaved_k{k}"] = all(sum(i % k == j for i in damaged) <= 1 for j in range(k))
    return out


def bit_errors(lite: dict[str, bytes], ber: float, trials: int, seed: int) -> dict:
    """``trials`` flip patterns per stream at bit error rate ``ber``: what this layout reads, and the share
    of patterns each ``IDEAL`` layout could correct."""
    import numpy as np

    from gsc.format import layered

    rng, tally, ideal, n = np.random.default_rng(seed), {}, dict.fromkeys(IDEAL, 0), 0
    for data in lite.values():
        s = layered.read(data)
        for _ in range(trials):
            flips = np.flatnonzero(rng.random(len(data) * 8) < ber)
            m = bytearray(data)
            for b in flips:
                m[b // 8] ^= 0x80 >> (b % 8)
            k = content(data, bytes(m)) if len(flips) else "whole"
            tally[k] = tally.get(k, 0) + 1
            for name, ok in _ideal(flips, s.header_bytes, s.report.layers[0][:2]).items():
                ideal[name] += ok
            n += 1
    something = tally.get("whole", 0) + tally.get("partial", 0)
    return {"patterns": n, "read": tally, "decodes_something": round(something / n, 4),
            "ideal_share_corrected": {k: round(v / n, 4) for k, v in ideal.items()}}


def header_damage(built, trials: int, rng: random.Random) -> tuple[list, dict, dict, dict]:
    """Sizes per image; every single damaged header byte; random pairs in the header and anywhere."""
    from gsc.format import layered

    sizes, single, pairs, anywhere = [], {}, {}, {}
    bare = {name: len(new) - len(old) for name, old, new in streams(with_caption=False)}
    for name, old, new in built:
        head = layered.read(new).header_bytes
        sizes.append({"image": name, "v3_header": len(old) - TOTAL + 6, "v4_header": head,
                      "v4_extra_bytes": len(new) - len(old), "v4_extra_bytes_without_caption": bare[name]})
        for i in range(head):
            for v in range(256):
                if v != new[i]:
                    k = outcome(new, new[:i] + bytes([v]) + new[i + 1:])
                    single[k] = single.get(k, 0) + 1
    for t in range(trials):
        _, _, new = built[t % len(built)]
        head = layered.read(new).header_bytes
        for where, tally in ((range(head), pairs), (range(len(new)), anywhere)):
            m = bytearray(new)
            for i in rng.sample(where, 2):
                m[i] ^= rng.randrange(1, 256)
            k = outcome(new, bytes(m))
            tally[k] = tally.get(k, 0) + 1
    return sizes, single, pairs, anywhere


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20_000)
    ap.add_argument("--ber-trials", type=int, default=400)
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    rng = random.Random(1)
    sizes, single, pairs, anywhere = header_damage(list(streams()), args.trials, rng)
    lite = lite_streams(args.cache)
    extra = [s["v4_extra_bytes"] for s in sizes]
    bare = [s["v4_extra_bytes_without_caption"] for s in sizes]
    result = {"images": len(sizes), "v4_extra_bytes_min_max": [min(extra), max(extra)],
              "v4_extra_bytes_without_caption_min_max": [min(bare), max(bare)],
              "v4_header_min_max": [min(s["v4_header"] for s in sizes), max(s["v4_header"] for s in sizes)],
              "single_damaged_header_byte": single, "two_damaged_header_bytes": pairs,
              "two_damaged_bytes_anywhere": anywhere,
              "lite_kodak_bytes_min_max": [min(map(len, lite.values())), max(map(len, lite.values()))],
              "lite_single_damaged_layer1_byte": layer_one_bytes(lite, rng),
              "lite_bit_errors": {str(ber): bit_errors(lite, ber, args.ber_trials, k)
                                  for k, ber in enumerate((1e-4, 1e-3))},
              "ideal_layouts": IDEAL, "per_image": sizes}
    print(json.dumps({k: v for k, v in result.items() if k != "per_image"}, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if single.get("wrong") or single.get("refused") else 0


if __name__ == "__main__":
    sys.exit(main())
