"""A gsc preset against WebP at the same bytes, per image, at the budgets users run (a gsc bench configuration).

    python benchmarks/lite_kodak.py [--data ../shared/data/kodak] [--captions FILE] [--preset lite]
        [--budgets 0.005,0.0075,0.01,0.015,0.02] [--limit N] [--reuse EARLIER.json ...] [--no-captions-check]
        [--cli N] [--fresh] [--doc docs/lite-kodak.md]
    python benchmarks/lite_kodak.py --data ../shared/data/bsds500/test --captions data/captions/bsds500_test.json \\
        --limit 8 --budgets 0.005,0.01,0.02

For every image and budget B (``gsc.eval.bench``, one record per image × codec × budget):

- gsc: ``Codec.encode(max_bpp=B)`` with the image's reference caption (the sender picks what it sends), the
  stream decoded by a receiver that is not told the selection; every field of ``Codec.info`` kept in the
  record as the stream reports it (a lite v3 step is a pair or a dict, with scale and texture beside it);
- WebP at ≤ that stream's own bytes, the downscale × quality chosen per image separately on each metric it
  is compared on (``WEBP_PICK``: one ``ClassicalBench`` per metric, sharing one search per image and
  budget; PSNR's pick for HaarPSI and MS-GMSD), so gsc meets the strongest classical setting on every axis;
- every metric of ``gsc.eval.metrics.DEFAULT`` (PSNR, MS-SSIM, chroma PSNR, colour drift, ST-LPIPS, FLIP,
  HaarPSI, MS-GMSD) on the 8-bit images.

Then, unless switched off: C = 1 at the smallest budget with the right caption against the next image's
(a second bench, same cache), and ``gsc encode``/``gsc decode`` as separate processes on ``--cli`` images
(wall time, peak RSS, same PNG twice). bpp is always the stream's real bytes.

Resumable: records are cached in ``benchmarks/results/<name>.cache/``, keyed by the image, the codec's
settings and the *content* of the weight files, the budget and the metric versions; run the same command
again after an interruption, and after retraining only the gsc records (and WebP at their new bytes) are
measured again; ``--reuse`` starts the cache from an earlier run's records (``earlier_run``). Writes
``benchmarks/results/<name>.json`` (CompressAI curves for ``gsc plot`` and every per-image record), ``.md``,
``.png``, and the sections ``<!-- gsc:lite-<name> -->`` (the table against WebP, issue 16's targets with
wins, the caption check) and ``<!-- gsc:lite-<name>-cli -->`` (the timing) of ``--doc``, each with the
command that made it. ``<name>`` defaults to ``<preset>_<data set>``
(``lite_kodak``, ``lite_bsds500_test``).
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
# The metrics WebP is picked on, each compared with the pick best on it (the rest with PSNR's pick).
WEBP_PICK = ["psnr", "ms_ssim", "psnr_chroma", "colour_drift", "st_lpips_alex", "flip"]
# (metric, header, digits) of the table, gsc / WebP in each cell
COLUMNS = [("psnr", "PSNR ↑", 2), ("ms_ssim", "MS-SSIM ↑", 4), ("psnr_chroma", "chroma PSNR ↑", 2),
           ("colour_drift", "colour drift ↓", 2), ("st_lpips_alex", "ST-LPIPS ↓", 4), ("flip", "FLIP ↓", 4),
           ("haarpsi", "HaarPSI ↑", 3), ("ms_gmsd", "MS-GMSD ↓", 3)]


def earlier_run(files: list[Path], gsc: str) -> tuple[list[dict], dict[str, dict]]:
    """An earlier run's records ({"IMAGE@BUDGET": {"bytes", "bpp", "encode_s", "decode_s", "info", "gsc": {metric:
    value}, "webp_best": {metric: {"size", "quality", "bytes"}}}}, as issue 16's runner wrote them): gsc's as
    bench records for ``Bench.run(seed=…)`` (imported where the cache has none, marked ``seeded``), and per
    pick {(image, budget bytes): record} for ``ClassicalBench.known``, which rebuilds that file instead of searching."""
    import json

    seed, known = [], {m: {} for m in WEBP_PICK}
    for f in files:
        for tag, r in json.loads(Path(f).read_text()).items():
            image, budget = tag.rsplit("@", 1)
            seed.append({"image": image, "codec": gsc, "target_bpp": float(budget), "fit": True,
                         **{k: r[k] for k in ("bytes", "bpp", "encode_s", "decode_s")}, **r["info"], **r["gsc"]})
            for m, c in r["webp_best"].items():
                if m in known:
                    known[m][(image, r["bytes"])] = {"fit": False} if c is None else {
                        "fit": True, "scaled_width": c["size"][0], "scaled_height": c["size"][1],
                        "quality": c["quality"], "bytes": c["bytes"]}
    return seed, known


def benches(preset: str, budgets: list[float], captions: dict, names: list[str], channels: int | None = None,
            known: dict | None = None):
    """The main bench (gsc, WebP per pick at ≤ gsc's bytes) and the caption check (right vs next image's)."""
    from gsc.eval.bench import Bench
    from gsc.eval.codecs import ClassicalBench, GscBench
    from gsc.eval.metrics import DEFAULT

    gsc = GscBench(preset, channels=channels)
    webp = [ClassicalBench("webp", s, known=(known or {}).get(s, {})) for s in WEBP_PICK]
    # a pick is scored on its own metric only (PSNR's on all): the table reads nothing else of it
    main = Bench([gsc, *webp], budgets, list(DEFAULT), matched={w.name: gsc.name for w in webp},
                 scored_on={w.name: [w.select] for w in webp[1:]}, name=f"gsc {preset} and WebP at ≤ its bytes")
    swapped = {n: captions[names[(i + 1) % len(names)]] for i, n in enumerate(names)}
    # the captions kept, so that the check compares what the receiver makes of them
    check = Bench([GscBench(preset, channels=1, caption_policy="keep"),
                   GscBench(preset, channels=1, captions=swapped, caption_note="swapped", caption_policy="keep")],
                  budgets[:1], ["psnr_chroma", "st_lpips_alex"], name="caption check")
    return main, check


def paired(bundle: dict, gsc: str, budget: float) -> tuple[list[dict], list[dict], int]:
    """gsc's records at ``budget`` and, per metric pick, WebP's on the same images (those where both fit)."""
    from gsc.eval.metrics import METRICS

    by = {(r["codec"], r["target_bpp"], r["image"]): r for r in bundle["per_image"]}
    images = sorted({r["image"] for r in bundle["per_image"]})
    pick = {m: "webp" if s == "psnr" else f"webp:{METRICS[s].key}" for m, s in
            ((m, m if m in WEBP_PICK else "psnr") for m, _, _ in COLUMNS)}
    ok = [i for i in images if all(by.get((c, budget, i), {}).get("fit") for c in (gsc, *pick.values()))]
    g = [by[(gsc, budget, i)] for i in ok]
    w = [{m: by[(pick[m], budget, i)].get(m) for m, _, _ in COLUMNS} | {"bytes": by[("webp", budget, i)]["bytes"]}
         for i in ok]
    return g, w, len(images)


def rows(bundle: dict, gsc: str, budgets: list[float]) -> list[dict]:
    from gsc.eval.metrics import METRICS
    from gsc.eval.results import mean

    out = []
    for b in budgets:
        g, w, n = paired(bundle, gsc, b)
        row = {"budget": b, "images": len(g), "of": n}
        if g:
            row.update(bpp=mean(r["bpp"] for r in g), max_bpp=max(r["bpp"] for r in g),
                       channels=mean(r.get("channels") for r in g),
                       gsc={m: mean(r.get(m) for r in g) for m, _, _ in COLUMNS},
                       webp={m: mean(r.get(m) for r in w) for m, _, _ in COLUMNS},
                       # images where gsc beats WebP's pick for that metric
                       wins={m: sum((a[m] > c[m]) == METRICS[m].higher_is_better and a[m] != c[m]
                                    for a, c in zip(g, w)) for m, _, _ in COLUMNS})
        out.append(row)
    return out


def main_table(table_rows: list[dict]) -> list[str]:
    """Means per budget (no times: a bench record's time is whatever else ran then; the CLI section times)."""
    fmt = lambda v, d: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = ["| --max-bpp | images | bpp (max) | C | " + " | ".join(h + " gsc / WebP" for _, h, _ in COLUMNS)
             + " | ST-LPIPS wins |", "|" + "---|" * (len(COLUMNS) + 5)]
    for r in table_rows:
        if not r["images"]:
            lines.append(f"| {r['budget']:g} | 0/{r['of']} | no point |" + " – |" * (len(COLUMNS) + 2))
            continue
        cells = [f"{fmt(r['gsc'][m], d)} / {fmt(r['webp'][m], d)}" for m, _, d in COLUMNS]
        lines.append(f"| {r['budget']:g} | {r['images']}/{r['of']} | {r['bpp']:.4f} ({r['max_bpp']:.4f}) | "
                     f"{fmt(r['channels'], 1)} | " + " | ".join(cells) +
                     f" | {r['wins']['st_lpips_alex']}/{r['images']} |")
    return lines


# Issue 16's targets: (metric, header, least gsc − WebP allowed (sign-corrected: ≥ it is met), digits)
TARGETS = [("psnr", "PSNR ≥ WebP − 0.5", -0.5, 2), ("ms_ssim", "MS-SSIM ≥ WebP", 0.0, 4),
           ("psnr_chroma", "chroma ≥ WebP − 1", -1.0, 2), ("colour_drift", "drift ≤ WebP", 0.0, 2),
           ("flip", "FLIP ≤ WebP", 0.0, 4)]


def targets_table(table_rows: list[dict]) -> list[str]:
    from gsc.eval.metrics import METRICS

    ok = lambda c: "✓" if c else "✗"  # noqa: E731
    lines = ["Issue 16's targets (gsc − WebP's pick for that metric, means over the images):", "",
             "| --max-bpp | " + " | ".join(h for _, h, _, _ in TARGETS) +
             " | ST-LPIPS wins ≥ 5/6 | PSNR +≥ 0.3 dB over the previous budget |",
             "|---|" + "---|" * (len(TARGETS) + 2)]
    prev = None
    for r in (r for r in table_rows if r["images"]):
        g, w, cells = r["gsc"], r["webp"], []
        for m, _, least, d in TARGETS:
            gap = g[m] - w[m]
            cells.append(f"{ok((gap if METRICS[m].higher_is_better else -gap) >= least)} {gap:+.{d}f}")
        wins, rise = r["wins"]["st_lpips_alex"], None if prev is None else g["psnr"] - prev
        lines.append(f"| {r['budget']:g} | " + " | ".join(cells) + f" | {ok(wins * 6 >= 5 * r['images'])} "
                     f"{wins}/{r['images']} | " + ("–" if rise is None else f"{ok(rise >= 0.3)} {rise:+.2f}") + " |")
        prev = g["psnr"]
    return lines


def caption_line(bundle: dict, budget: float) -> str:
    recs = {(r["codec"], r["image"]): r for r in bundle["per_image"] if r["fit"]}
    right, swapped = bundle["codecs"]
    pairs = [(recs[(right, i)], recs[(swapped, i)]) for c, i in recs if c == right and (swapped, i) in recs]
    if not pairs:
        return f"Captions, C = 1 at --max-bpp {budget:g}: no image fits."
    st = sum(a["st_lpips_alex"] < b["st_lpips_alex"] for a, b in pairs)
    ch = sum(a["psnr_chroma"] > b["psnr_chroma"] for a, b in pairs)
    either = sum(a["st_lpips_alex"] < b["st_lpips_alex"] or a["psnr_chroma"] > b["psnr_chroma"] for a, b in pairs)
    mean = lambda side, k: sum(p[side][k] for p in pairs) / len(pairs)  # noqa: E731
    n = len(pairs)
    return (f"Captions, C = 1 at --max-bpp {budget:g}: the right caption against the next image's (same channels). "
            f"Right better on ST-LPIPS or chroma PSNR: **{either}/{n}** (ST-LPIPS {st}/{n}, chroma {ch}/{n}); mean "
            f"ST-LPIPS {mean(0, 'st_lpips_alex'):.4f} right vs {mean(1, 'st_lpips_alex'):.4f} swapped, chroma PSNR "
            f"{mean(0, 'psnr_chroma'):.2f} vs {mean(1, 'psnr_chroma'):.2f} dB.")


def cli_round_trip(image: Path, caption: str, budget: float, work: Path, preset: str,
                   channels: int | None = None) -> dict:
    """Wall time and peak RSS of `gsc encode` and `gsc decode` as separate processes (what a user runs)."""
    from gsc.errors import GSCError

    stream, out = work / f"{image.stem}.gsc", work / f"{image.stem}.png"

    def run(*a) -> float:
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "gsc", *map(str, a)], capture_output=True, text=True)
        if done.returncode:
            raise GSCError(f"gsc {a[0]} {image.name}: {done.stderr.strip().splitlines()[-1]}")
        return time.perf_counter() - t0

    enc = run("encode", image, "-o", stream, "--preset", preset, "--max-bpp", budget, "--caption", caption,
              *(() if channels is None else ("--channels", channels)))
    dec = run("decode", stream, "-o", out, "-q")
    first = hashlib.sha256(out.read_bytes()).hexdigest()
    run("decode", stream, "-o", out, "-q")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"image": image.name, "encode_s": round(enc, 2), "decode_s": round(dec, 2), "peak_rss_mb": round(peak),
            "same_png_twice": first == hashlib.sha256(out.read_bytes()).hexdigest()}


def timing_lines(timing: list[dict], budget: float) -> list[str]:
    if not timing:
        return []
    import os

    load = os.getloadavg()[0]  # other jobs on the machine slow every column: say how busy it was
    return ["", f"CLI (`gsc encode --max-bpp {budget:g}`, `gsc decode`; separate processes, model loading included; "
            f"{os.cpu_count()} cores, load average {load:.1f} when it ended):", "",
            "| image | encode s | decode s | peak RSS MB | same PNG twice |", "|---|---|---|---|---|",
            *[f"| {t['image']} | {t['encode_s']} | {t['decode_s']} | {t['peak_rss_mb']} | {t['same_png_twice']} |"
              for t in timing]]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/kodak", help="folder of images (default: ../shared/data/kodak)")
    ap.add_argument("--captions", type=Path, default=None, help="JSON {file name: caption} (default: "
                    "DATA/captions.json); only images that have a caption are measured")
    ap.add_argument("--preset", default="lite", help="gsc preset (default: lite)")
    ap.add_argument("--channels", type=int, default=None, help="gsc: fixed C (default: the sender's choice)")
    ap.add_argument("--name", default=None, help="results name (default: <preset>_<data folder>)")
    ap.add_argument("--budgets", default="0.005,0.0075,0.01,0.015,0.02", help="--max-bpp values, comma-separated (default: %(default)s)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (sorted by name)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    ap.add_argument("--no-captions-check", action="store_true", help="skip right-vs-swapped captions")
    ap.add_argument("--cli", type=int, default=2, help="images for the CLI timing and determinism check (default 2; 0: none)")
    ap.add_argument("--cli-budget", type=float, default=0.01, help="--max-bpp of the CLI timing (default: 0.01)")
    ap.add_argument("--reuse", type=Path, nargs="+", default=[], help="an earlier run's records "
                    "(benchmarks/results/lite_targets_*.json): gsc's are imported where the cache has none, and "
                    "WebP's pick per metric at gsc's bytes is rebuilt and scored instead of searched")
    ap.add_argument("--fresh", action="store_true", help="measure again, ignoring the cache (default: reuse every record whose key holds)")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs/lite-kodak.md", help="markdown to update (default: docs/lite-kodak.md; '-': none)")
    return ap


def command_line(args, ap) -> str:
    """The command that reproduces this run (paths relative to the repository), for the doc beside the table."""
    import os

    rel = lambda p: None if p is None else os.path.relpath(Path(p).resolve(), ROOT)  # noqa: E731
    parts = ["python benchmarks/lite_kodak.py"]
    for opt, value in (("--data", None if args.data == ap.get_default("data") else rel(args.data)),
                       ("--captions", rel(args.captions)), ("--name", args.name),
                       ("--preset", None if args.preset == "lite" else args.preset), ("--channels", args.channels),
                       ("--budgets", None if args.budgets == ap.get_default("budgets") else args.budgets),
                       ("--limit", args.limit), ("--reuse", " ".join(rel(p) for p in args.reuse) or None),
                       ("--no-captions-check", "" if args.no_captions_check else None),
                       ("--cli", None if args.cli == ap.get_default("cli") else args.cli),
                       ("--cli-budget", None if args.cli_budget == ap.get_default("cli_budget") else args.cli_budget)):
        if value is not None:
            parts.append(f"{opt} {value}".rstrip())
    return " ".join(parts)


def main(argv=None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    import torch

    from gsc.eval.bench import captions_by_name, dataset_name
    from gsc.eval.classical import parse_targets
    from gsc.image import list_dataset
    from gsc.eval.results import update_section

    torch.set_num_threads(args.threads)
    name = args.name or f"{args.preset}_{dataset_name(args.data)}"
    captions = captions_by_name(args.captions or args.data / "captions.json")
    images = [p for p in list_dataset(args.data) if p.name in captions][: args.limit]
    budgets = parse_targets(args.budgets)
    from gsc.eval.codecs import GscBench

    seed, known = earlier_run(args.reuse, GscBench(args.preset, channels=args.channels).name)
    bench, check = benches(args.preset, budgets, captions, [p.name for p in images], args.channels, known)
    out = ROOT / "benchmarks/results" / f"{name}.json"
    bundle = bench.run(images, out, captions=captions, fresh=args.fresh, seed=seed)
    table_rows = rows(bundle, bench.codecs[0].name, budgets)
    lines = [f"`{command_line(args, ap)}`", "",
             f"{len(images)} images, reference captions; bpp from the stream's bytes (header and caption included). "
             "WebP: best downscale × quality at ≤ gsc's bytes per image, picked separately on each metric compared "
             f"({', '.join(WEBP_PICK)}; PSNR's pick for the rest); the means are over the images where gsc fits "
             "(images column). ↑ higher is better, ↓ lower.", "",
             *main_table(table_rows), "", *targets_table(table_rows)]
    if not args.no_captions_check:
        cap = check.run(images, out.with_name(f"{name}_captions.json"), captions=captions, fresh=args.fresh)
        lines += ["", caption_line(cap, budgets[0])]
    sections = {f"lite-{name}": lines}
    if args.cli:  # its own section: the doc shows it apart from the quality tables
        import tempfile

        with tempfile.TemporaryDirectory() as work:
            timing = [cli_round_trip(p, captions[p.name], args.cli_budget, Path(work), args.preset, args.channels)
                      for p in images[: args.cli]]
        sections[f"lite-{name}-cli"] = [f"`{command_line(args, ap)}`", *timing_lines(timing, args.cli_budget)]
    for section, text in sections.items():
        if str(args.doc) != "-":
            update_section(args.doc, section, "\n".join(text))
        print("\n".join(text))
    return 0


if __name__ == "__main__":
    from gsc.eval.bench import script

    script(main)
