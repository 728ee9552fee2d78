"""Bits per character of each caption coder, on Kodak's 24 captions and on the BSDS caption corpus.

    python benchmarks/caption_bits.py [--kodak ../shared/data/kodak/captions.json]
                                      [--corpus data/captions/bsds500.json] [--doc docs/caption-coding.md]

bits/char = 8 × bytes / characters. "mean" averages the per-caption ratio; "total" divides the summed
bits by the summed characters. Kodak is measured only: no coder is built or tuned on it. The BSDS
numbers are in-sample for zstd-dict and model (both are built from that corpus). Rewrites the
"Measured" section of the doc between its markers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

START, END = "<!-- measured:start -->", "<!-- measured:end -->"


def load(path: Path) -> list[str]:
    d = json.loads(path.read_text(encoding="utf-8"))
    return [v for k, v in sorted(d.items()) if not k.startswith("_") and v]


def measure(captions: list[str]) -> dict[str, dict]:
    from gsc.format.caption import CAPTION_CODERS

    rows = {"utf-8 (no coding)": {"bytes": [len(c.encode("utf-8")) for c in captions], "ms": [0.0]}}
    for name, (enc, dec) in CAPTION_CODERS.items():
        dec(enc(captions[0]))                         # load tables before timing
        sizes, ms = [], []
        for c in captions:
            data = enc(c)
            t = time.perf_counter()
            if dec(data) != c:
                raise SystemExit(f"{name} failed to round-trip {c!r}")
            ms.append(1000 * (time.perf_counter() - t))
            sizes.append(len(data))
        rows[name] = {"bytes": sizes, "ms": ms}
    chars = [len(c) for c in captions]
    for r in rows.values():
        r["mean_bpc"] = statistics.mean(8 * b / n for b, n in zip(r["bytes"], chars))
        r["total_bpc"] = 8 * sum(r["bytes"]) / sum(chars)
        r["mean_bytes"] = statistics.mean(r["bytes"])
        r["decode_ms"] = statistics.median(r["ms"])
    return rows


def table(title: str, captions: list[str], rows: dict) -> str:
    chars = sum(len(c) for c in captions)
    lines = [f"**{title}** ({len(captions)} captions, {chars} characters, "
             f"{chars / len(captions):.0f} per caption)", "",
             "| coder | bits/char (mean) | bits/char (total) | bytes/caption | decode ms (median) |",
             "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['mean_bpc']:.3f} | {r['total_bpc']:.3f} | {r['mean_bytes']:.1f} | "
                     f"{r['decode_ms']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kodak", type=Path, default=ROOT.parent / "shared" / "data" / "kodak" / "captions.json")
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "captions" / "bsds500.json")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "caption-coding.md")
    ap.add_argument("--no-doc", action="store_true", help="print only")
    args = ap.parse_args(argv)

    from gsc.format.caption import DEFAULT_CAPTION_CODER

    parts = []
    kodak = load(args.kodak)
    parts.append(table("Kodak", kodak, measure(kodak)))
    if args.corpus.exists():
        corpus = load(args.corpus)
        parts.append(table("BSDS500 caption corpus (in-sample for zstd-dict and model)", corpus, measure(corpus)))
    params = json.loads((ROOT / "src" / "gsc" / "caption" / "data" / "caption_model_params.json").read_text())
    if "_cv_bits_per_char" in params:
        parts.append(f"Out of sample, the model coder's cross-validated ideal code length on the corpus "
                     f"({params['_corpus_captions']} captions, held-out folds) is "
                     f"**{params['_cv_bits_per_char']:.3f} bits/char**. The in-sample figure above is what "
                     "memorised trigrams give and says little.")
    text = "\n\n".join(parts)
    print(text)
    print(f"\ndefault coder: {DEFAULT_CAPTION_CODER}")
    if args.no_doc:
        return
    from gsc.image import write_atomic

    doc = args.doc.read_text(encoding="utf-8")
    if START not in doc or END not in doc:
        raise SystemExit(f"{args.doc} lacks the markers {START} … {END}")
    stamp = f"_Written by `benchmarks/caption_bits.py` on {datetime.date.today().isoformat()}; " \
            f"default coder: `{DEFAULT_CAPTION_CODER}`._"
    head, rest = doc.split(START, 1)
    tail = rest.split(END, 1)[1]
    new = f"{head}{START}\n{stamp}\n\n{text}\n{END}{tail}"
    write_atomic(args.doc, lambda f: f.write(new.encode("utf-8")))
    print(f"updated {args.doc}")


if __name__ == "__main__":
    main()
