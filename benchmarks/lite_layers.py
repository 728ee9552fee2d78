"""What lite's layers cost: each prefix of a layered stream against a one-shot stream at the same budget.

For each image, one v4 stream with ``--layers`` (default 0.005, 0.01, 0.02 bpp) and one one-shot v4 stream
per budget; every prefix (the stream cut after layer j) and every one-shot stream decoded by the whole lite
receiver. Records PSNR, colour drift (ΔE) and bytes; the table gives the means and the prefix − one-shot
differences (issue target: within 0.3 dB and 0.3 ΔE for each prefix, 0.15 dB for the whole stream)::

    python benchmarks/lite_layers.py ../shared/data/kodak/*.png --out benchmarks/results/lite_layers_kodak.json

``--one-shot-from RECORDS`` takes the one-shot streams' records from an earlier run instead of coding them
again (half the time): only valid while the one-shot encoder and the receiver are unchanged since it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from lite_reference import arguments, save  # noqa: E402


def measure(path: Path, budgets: list[float], codec, one_shot: dict | None = None) -> dict:
    from gsc.eval.metrics import colour_drift, psnr, to_8bit
    from gsc.format import layered

    from gsc.image import load_image

    x = load_image(path)
    full = codec.encode(x, layers=budgets, version=4)
    ends = [end for _, end, _ in layered.read(full).report.layers]
    rec = {}
    for b, end in zip(budgets, ends):
        streams = [("prefix", lambda: full[:end])]
        if one_shot is None:
            streams.append(("one_shot", lambda: codec.encode(x, max_bpp=b, version=4)))
        else:
            rec[f"one_shot_{b}"] = one_shot[f"one_shot_{b}"]
        for who, make in streams:
            data = make()
            y = to_8bit(codec.decode(data))
            rec[f"{who}_{b}"] = {"psnr": psnr(y, x), "colour_drift": colour_drift(y, x), "bytes": len(data)}
    return rec


def table(records: dict, budgets: list[float]) -> str:
    import numpy as np

    rows = ["| bpp | prefix PSNR | one-shot PSNR | Δ PSNR (worst) | prefix ΔE | one-shot ΔE | Δ ΔE | prefix bytes | "
            "one-shot bytes |", "|---|---|---|---|---|---|---|---|---|"]
    for b in budgets:
        p = [r[f"prefix_{b}"] for r in records.values()]
        o = [r[f"one_shot_{b}"] for r in records.values()]
        d = np.array([a["psnr"] - c["psnr"] for a, c in zip(p, o)])
        e = np.array([a["colour_drift"] - c["colour_drift"] for a, c in zip(p, o)])

        def mean(rs, k):
            return float(np.mean([r[k] for r in rs]))

        rows.append(f"| {b} | {mean(p, 'psnr'):.2f} | {mean(o, 'psnr'):.2f} | {d.mean():+.2f} ({d.min():+.2f}) | "
                    f"{mean(p, 'colour_drift'):.2f} | {mean(o, 'colour_drift'):.2f} | {e.mean():+.2f} | "
                    f"{mean(p, 'bytes'):.0f} | {mean(o, 'bytes'):.0f} |")
    return f"{len(records)} images\n\n" + "\n".join(rows)


def main() -> None:
    from tqdm import tqdm

    from gsc.codec import Codec

    ap = arguments(__doc__)
    ap.add_argument("--one-shot-from", type=Path, help="records whose one-shot streams to reuse")
    a = ap.parse_args()
    earlier = json.loads(a.one_shot_from.read_text()) if a.one_shot_from else {}
    budgets = [float(b) for b in a.budgets.split(",")]
    codec = Codec()
    records = json.loads(a.out.read_text()) if a.out.exists() else {}
    for path in tqdm(sorted(a.images), desc="images"):
        if path.name not in records:
            records[path.name] = measure(path, budgets, codec, earlier.get(path.name))
            save(records, a.out)
    print(table(records, budgets))


if __name__ == "__main__":
    main()
