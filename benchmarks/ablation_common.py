"""Shared plumbing of the ``ablation_*.py`` scripts: options, one bench run per ablation, its docs section.

Each ablation is one ``gsc.eval.bench.Bench`` on the channel axis (as ``gsc eval``): its settings are gsc
codecs (``GscBench``: a selection, a caption override), each measured at every C, with the driver's
metrics, record cache, summary, JSON and plot, so an interrupted ablation resumes with ``--resume``. It
writes ``benchmarks/results/ablation_<ablation>_<dataset>_<preset>.json`` (a bundle), one CompressAI file
per setting beside it (``…json`` → ``….<codec>.json``), the driver's table (``.md``), the plot (``.png``),
the cache (``.cache/``) and a section of ``docs/results.md``. With ``--limit N`` (a smoke run) the names get
a ``_firstN`` suffix and the docs are left alone unless ``--doc`` is given.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def parser(description: str, channels: str) -> argparse.ArgumentParser:
    from gsc.eval.commands import DEFAULT_METRICS

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("dataset", nargs="?", type=Path, default=ROOT.parent / "shared/data/kodak")
    ap.add_argument("--preset", default="lite")
    ap.add_argument("--channels", default=channels, help="operating points C, comma-separated")
    ap.add_argument("--captions", type=Path, default=None,
                    help="JSON {file name: caption} (default: DATASET/captions.json when it exists)")
    ap.add_argument("--selection", default=None, help="default: the preset's")
    ap.add_argument("--step", type=float, default=None, help="default: the encoder's")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (a smoke run)")
    ap.add_argument("--resume", action="store_true", help="reuse per-image records from the cache")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks/results")
    ap.add_argument("--doc", type=Path, default=None, help="markdown to update (default: docs/results.md, "
                                                           "not on --limit runs)")
    ap.add_argument("--no-learned", action="store_true", help="skip LPIPS/DISTS/FID/KID")
    ap.add_argument("--metrics", default=DEFAULT_METRICS,
                    help="full-reference metrics (JSON keys, comma-separated; docs/evaluation.md)")
    ap.add_argument("--st-lpips-vgg", action="store_true", help="also ST-LPIPS with the VGG net (≈ 5× alex's time)")
    return ap


def captions_path(args) -> Path | None:
    if args.captions is not None:
        return args.captions
    default = args.dataset / "captions.json"
    return default if default.is_file() else None


def tag(args, ablation: str) -> str:
    t = f"{ablation}_{args.dataset.name}_{args.preset}"
    return t + (f"_first{args.limit}" if args.limit else "")


def doc_path(args) -> Path | None:
    if args.doc is not None:
        return args.doc
    return None if args.limit else ROOT / "docs/results.md"


def images(args) -> list[Path]:
    from gsc.image import list_dataset

    return list_dataset(args.dataset, args.limit)


def codec(args, selection: str | None = None, **override):
    """One setting: the preset with ``--selection`` (or ``selection``), ``--step``, and a caption override."""
    from gsc.eval.codecs import GscBench

    return GscBench(args.preset, selection or args.selection, step=args.step, **override)


def run(args, ablation: str, title: str, codecs: list, channels: str | None = None, compare=()):
    """The ablation's bench, run over every C; returns (bench, bundle)."""
    from gsc.eval.bench import Bench, captions_by_name
    from gsc.eval.evaluate import EvalSettings, check_metrics, parse_channels
    from gsc.eval.metrics import parse_metrics

    settings = EvalSettings(learned=not args.no_learned, metrics=parse_metrics(args.metrics, args.st_lpips_vgg))
    out = args.out_dir / f"ablation_{tag(args, ablation)}.json"
    ok, measure, unavailable = check_metrics(settings, out.with_suffix(".cache") / "images")
    cs = parse_channels(channels or args.channels)
    bench = Bench(codecs, cs, ok, measures=[measure] if measure else [], name=title,
                  description=f"{title}: C = {', '.join(map(str, cs))}", unavailable=unavailable, axis="channels",
                  compare=list(compare))
    cap_file = captions_path(args)
    bundle = bench.run(images(args), out, captions=captions_by_name(cap_file), fresh=not args.resume,
                       command=command_line())
    return bench, bundle


def finish(args, ablation: str, title: str, body: str) -> None:
    """The ablation's table (with the command that made it and the metrics that could not run) into the docs."""
    from gsc.eval.results import update_section

    text = f"`{command_line()}`\n\n{body}"
    doc = doc_path(args)
    if doc is not None:
        update_section(doc, f"ablation-{tag(args, ablation)}", text, title=title)
    print(text)


def command_line() -> str:
    return " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", *sys.argv[1:]])


def delta(a, b):
    return None if a is None or b is None else a - b


def points(bundle: dict, codec) -> dict:
    """{C: point} of one codec's curve."""
    (c,) = [c for c in bundle["curves"] if c["codec"] == codec.name]
    return {p["target_channels"]: p for p in c["points"]}
